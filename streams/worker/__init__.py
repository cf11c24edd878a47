"""The rules worker, Faust app ``preempt-rules``: ``preempt.events`` → rules → ``preempt.alerts``.

``app.create_app`` builds the Faust app and a ``WorkerRuntime``; ``agents`` feeds each poll's
records to the pure ``processor.RulesProcessor`` as one batch; ``emit`` performs the I/O the
processor returns as data; the rest (clock, wakeups, state cache, gap repair, liveness, late
events, enrichment) is one idea per module.
"""
