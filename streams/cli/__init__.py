"""The ``preempt`` command: the group in ``main`` and one module per subcommand.

``main`` is the one place that also names the notifier's commands (``alerts.cli``), imported when one runs.
"""
