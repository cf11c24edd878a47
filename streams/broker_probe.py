"""A quick "is Kafka there?" check that every broker-using command runs before it starts work.

Kafka clients retry for 30-60 s when no broker answers, and then fail with a traceback from deep
inside the client. ``probe_broker`` asks for cluster metadata once, bounded by a few seconds, and
raises ``BrokerUnavailableError`` with a sentence that says what to do.
"""

from __future__ import annotations

from kafka import KafkaAdminClient
from kafka.errors import KafkaError

from schemas.errors import BrokerUnavailableError
from schemas.settings import Settings

PROBE_TIMEOUT_S = 5.0


def probe_broker(settings: Settings, timeout_s: float = PROBE_TIMEOUT_S) -> None:
    """Return when a broker of ``settings.broker`` answers a metadata request within ``timeout_s``.

    Raises ``BrokerUnavailableError`` otherwise (refused, unresolvable, timed out).
    """
    where = ", ".join(settings.bootstrap_servers) or settings.broker
    timeout_ms = max(1, int(timeout_s * 1000))
    try:
        admin = KafkaAdminClient(
            bootstrap_servers=settings.bootstrap_servers,
            client_id="preempt-probe",
            request_timeout_ms=timeout_ms,
            bootstrap_timeout_ms=timeout_ms,
        )
    except (KafkaError, OSError, ValueError) as exc:
        raise BrokerUnavailableError(
            f"cannot reach Kafka at {where} within {timeout_s:g} s ({type(exc).__name__}); "
            "start the broker (`make kafka`) or point PREEMPT_BROKER at a running one"
        ) from exc
    admin.close()
