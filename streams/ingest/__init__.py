"""HTTP ingest: ``POST /v1/events`` and the Segment/RudderStack tracking API into ``preempt.events``.

A standalone aiohttp app served by ``preempt ingest`` (not the rules worker's web port), so that
ingest scales, restarts and is exposed to the network independently of the stream workers,
and a slow or failing HTTP client never touches a worker's event loop. ``gate`` admits a request
(``auth``: API keys, signatures, replays; ``body``: size and gzip limits) and stores its records
(``sink``); ``payload`` turns a ``/v1/events`` body into records, ``tracking`` maps tracking-API
calls (served by ``tracking_routes``); ``rejected`` keeps each rejected item for the events
dead-letter topic (``gate.queue_dead_letters``, written in the background by
``dead_letter_writer``); ``group_traits`` and ``account_merger`` keep ``preempt.accounts`` current
from group calls; ``app`` wires them together.
"""
