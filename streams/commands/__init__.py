"""Subcommands of the ``preempt`` CLI, one module per command or command group."""
