"""aiokafka's undocumented single-connection API, for the Kafka access check — and nothing else.

Every other reach into faust-streaming's, mode's and aiokafka's private API lives in
``streams.runtime.faust_compat``; this one is apart because the command-line clients that run the
access check (``streams.runtime.kafka_clients.check_access``: topic admin, publish, the dead-letter
reader) must not pay for importing Faust. The aiokafka version it was verified on is in
``faust_compat.TESTED_VERSIONS``; ``tests/unit/streams/runtime/test_faust_compat.py`` fails when an
upgrade changes the assumption.

Upstream behaviour: ``aiokafka.conn.create_conn`` (not in aiokafka's documented API) opens one
connection to one broker and performs the TLS handshake and the SASL login in it, raising the
broker's own refusal (``SaslAuthenticationFailed``…) or the ``ssl`` error at once. The public
clients retry a refused login until their bootstrap timeout and then report "Unable to bootstrap",
which hides the cause the access check exists to name.
"""

from __future__ import annotations

from typing import Any

from aiokafka.conn import create_conn


async def open_connection(host: str, port: int, *, client_id: str, request_timeout_ms: int, **security: Any) -> Any:
    """An open, logged-in connection to the broker at ``host:port`` (the caller closes it).

    ``security`` is ``streams.runtime.kafka_clients.aiokafka_config``'s keyword arguments.
    """
    return await create_conn(host, port, client_id=client_id, request_timeout_ms=request_timeout_ms, **security)
