"""The ``preempt`` command: the group in ``main`` and one module per subcommand.

This is the one place that also imports the notifier's commands (``alerts.cli``).
"""
