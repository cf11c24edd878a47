"""What every Preempt process shares: settings, logging, metrics, the ops web surface, Kafka clients
and their security settings, topic creation, dead-letter headers, and the one module that reaches
into Faust's, mode's and aiokafka's private internals (``faust_compat``).

The rules worker (``streams.worker``), HTTP ingest, the SDK, the simulator and the notifier
(``alerts``) import from here; nothing here imports them.
"""
