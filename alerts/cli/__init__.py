"""The notifier's commands, registered in the ``preempt`` group by ``streams.cli.main``:
``routes`` (check/test a routing file), ``notifier`` (run it) and ``alerts preview``."""
