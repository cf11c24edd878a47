"""A quick "is Kafka there?" check that every broker-using command runs before it starts work.

Kafka clients retry for 30-60 s when no broker answers, and then fail with a traceback from deep
inside the client. ``probe_broker`` asks for cluster metadata once, bounded by a few seconds, and
raises ``BrokerUnavailableError`` with a sentence that says what to do.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager

from kafka import KafkaAdminClient
from kafka.errors import KafkaError

from schemas.error_text import connection_failure
from schemas.errors import BrokerUnavailableError
from streams.runtime.kafka_clients import check_access, kafka_python_bootstrap, kafka_python_config
from streams.runtime.settings import Settings


def probe_broker(settings: Settings, timeout_s: float | None = None) -> None:
    """Return when a broker of ``settings.broker`` answers a metadata request within ``timeout_s``
    (default ``PREEMPT_BROKER_PROBE_SECONDS``, 5 s).

    Raises ``BrokerUnavailableError`` otherwise (refused, unresolvable, timed out, malformed address).
    """
    _check_addresses(settings)
    if timeout_s is None:
        timeout_s = settings.broker_probe_seconds
    where = ", ".join(settings.bootstrap_servers)
    unreachable = (
        f"cannot reach Kafka at {where} within {timeout_s:g} s ({{reason}}); "
        "start the broker (`make kafka`) or point PREEMPT_BROKER at a running one"
    )
    # One deadline for both steps below, so that the time the error states is the time it took.
    deadline = time.monotonic() + timeout_s
    # A broker that answers but refuses the login or the TLS handshake would look "unreachable" to
    # the admin client below; check_access names the real cause (wrong password, untrusted CA) and
    # returns at once when nothing answers, leaving that case to the probe — with why nothing did.
    silent = check_access(settings, timeout_s=timeout_s)
    why = "; ".join(f"{server}: {found.reason}" for server, found in silent.items())
    if len(silent) == len(settings.bootstrap_servers) and all(found.unresolved for found in silent.values()):
        # a typo in a (managed) broker's host name: no broker to start, nothing to wait for
        raise BrokerUnavailableError(
            f"cannot resolve the Kafka host name of {where} ({', '.join(f.reason for f in silent.values())}); "
            "check the host names in PREEMPT_BROKER (and this machine's DNS)"
        )
    remaining = deadline - time.monotonic()
    if remaining <= 0:  # connections accepted, no answer (a hung broker, a port-forward to nothing)
        raise BrokerUnavailableError(unreachable.format(reason="no answer"))
    timeout_ms = max(1, int(remaining * 1000))
    try:
        with client_logs_quiet():
            admin = KafkaAdminClient(
                bootstrap_servers=kafka_python_bootstrap(settings),
                client_id="preempt-probe",
                request_timeout_ms=timeout_ms,
                bootstrap_timeout_ms=timeout_ms,
                **kafka_python_config(settings),  # TLS/SASL: the probe connects like the command will
            )
    except (KafkaError, OSError, ValueError) as exc:
        raise BrokerUnavailableError(unreachable.format(reason=why or connection_failure(exc))) from exc
    admin.close()


@contextmanager
def client_logs_quiet(name: str = "kafka", level: int = logging.CRITICAL) -> Iterator[None]:
    """Hold back a client library's log lines below ``level`` from logger ``name`` and its children.

    The probe's: kafka-python's own lines about its connection ("Connection failed: … ECONNREFUSED",
    "Bootstrap failed"), which the probe's one ``Error:`` line says, with what to do."""
    logger = logging.getLogger(name)
    previous = logger.level
    logger.setLevel(level)
    try:
        yield
    finally:
        logger.setLevel(previous)


def _check_addresses(settings: Settings) -> None:
    """A malformed PREEMPT_BROKER is the user's to fix, not a broker to wait for."""
    servers = settings.bootstrap_servers
    if not servers:
        raise BrokerUnavailableError(
            f"PREEMPT_BROKER={settings.broker!r} names no broker; write kafka://host:port[;host:port…]"
        )
    for server in servers:
        scheme, found, _ = server.partition("://")
        if found:
            raise BrokerUnavailableError(
                f"PREEMPT_BROKER={settings.broker!r}: {scheme}:// is not a Kafka address; "
                "write kafka://host:port[;host:port…]"
            )
        host, sep, port = server.rpartition(":")
        if sep and (not host or not port.isdigit()):
            raise BrokerUnavailableError(
                f"PREEMPT_BROKER={settings.broker!r}: {server!r} is not host:port; write kafka://host:port[;host:port…]"
            )
        if sep and not 1 <= int(port) <= 65535:
            raise BrokerUnavailableError(
                f"PREEMPT_BROKER={settings.broker!r}: port {port} of {server!r} is not 1-65535; "
                "write kafka://host:port[;host:port…]"
            )
