"""HTTP ingest: ``POST /v1/events`` from product back ends and Segment-style pipelines into ``preempt.events``.

A standalone aiohttp app served by ``preempt ingest`` (not the rules worker's web port), so that
ingest scales, restarts and is exposed to the network independently of the stream workers,
and a slow or failing HTTP client never touches a worker's event loop. ``auth`` checks API keys
and signatures, ``payload`` turns a body into validated records, ``sink`` sends them to Kafka,
``app`` wires the three together.
"""
