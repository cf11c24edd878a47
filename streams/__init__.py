"""Everything that runs: the shared runtime, the rules worker, HTTP ingest, the SDK, the simulator,
the churn-risk training and the ``preempt`` command.

runtime/    what every process shares (settings, logs, metrics, ops web, Kafka clients, topics,
            dead-letter headers, the one Faust-compatibility module)
worker/     the rules app ``preempt-rules``
ingest/     HTTP ingest (canonical and tracking-API routes)
sdk/        the publisher for product engineers
simulate/   persona traffic, accounts and outcomes
prescient/  offline training of the ``risk`` rule and its report
cli/        the ``preempt`` command
"""
