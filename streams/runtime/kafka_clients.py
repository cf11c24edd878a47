"""Kafka client security configuration, made in ONE place from the ``PREEMPT_KAFKA_*`` settings.

Every Kafka client of Preempt takes its security set-up from here, one function per client library:

* :func:`faust_credentials` — ``broker_credentials=`` of both Faust apps (rules worker, notifier);
* :func:`kafka_python_config` — keyword arguments of kafka-python's ``KafkaProducer`` / ``KafkaConsumer``
  / ``KafkaAdminClient`` (the SDK, topic admin, the CLI, simulate, the dead-letter reader, bench);
* :func:`aiokafka_config` — keyword arguments of aiokafka's clients (ingest, gap repair, bench).

The settings are validated together in ``Settings`` (a SASL protocol without a mechanism or
credentials is one clear error at start); the options are described in docs/operations.md
("Connecting to a secured Kafka"). One TLS context serves every library, so a CA bundle, a client
certificate and its key are read the same way everywhere: hostnames are always checked.
"""

from __future__ import annotations

import asyncio
import ssl
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from schemas.errors import ConfigError
from streams.runtime.logs import get_logger
from streams.runtime.settings import Settings

if TYPE_CHECKING:
    from faust.types.auth import CredentialsT

# faust and aiokafka are imported where they are used: the SDK (kafka-python only) imports this
# module and should not pay for them.
log = get_logger(__name__)


class KafkaAccessError(ConfigError):
    """The brokers refused this client's security set-up (credentials, mechanism, TLS trust)."""


def ssl_context(settings: Settings) -> ssl.SSLContext | None:
    """The TLS context for an SSL/SASL_SSL protocol (CA bundle, optional client cert); None without TLS."""
    if not settings.kafka_security_protocol.endswith("SSL"):
        return None
    ca = settings.kafka_ssl_ca_file
    try:
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(ca) if ca else None)
        if settings.kafka_ssl_cert_file is not None and settings.kafka_ssl_key_file is not None:
            password = settings.kafka_ssl_key_password
            context.load_cert_chain(
                str(settings.kafka_ssl_cert_file),
                str(settings.kafka_ssl_key_file),
                password=password.get_secret_value() if password is not None else None,
            )
    except (ssl.SSLError, OSError) as exc:
        # Name the files, never the key password.
        raise ConfigError(
            f"PREEMPT_KAFKA_SSL_*: cannot load the CA bundle / client certificate "
            f"(ca={ca}, cert={settings.kafka_ssl_cert_file}, key={settings.kafka_ssl_key_file}): "
            f"{getattr(exc, 'reason', None) or exc.strerror or type(exc).__name__}"
        ) from None
    return context


def _sasl(settings: Settings) -> tuple[str, str, str] | None:
    """(mechanism, username, password) for a SASL protocol (Settings guarantees all three), else None."""
    if not settings.kafka_security_protocol.startswith("SASL_"):
        return None
    password = settings.kafka_sasl_password
    assert settings.kafka_sasl_mechanism
    assert settings.kafka_sasl_username
    assert password is not None
    return settings.kafka_sasl_mechanism, settings.kafka_sasl_username, password.get_secret_value()


def faust_credentials(settings: Settings) -> CredentialsT | None:
    """``broker_credentials`` for ``faust.App``: SASL (over TLS for SASL_SSL), TLS alone, or None."""
    from faust.auth import SASLCredentials, SSLCredentials

    context = ssl_context(settings)
    sasl = _sasl(settings)
    if sasl is not None:
        mechanism, username, password = sasl
        return SASLCredentials(username=username, password=password, ssl_context=context, mechanism=mechanism)
    if context is not None:
        return SSLCredentials(context)
    return None


def _shared(settings: Settings) -> dict[str, Any]:
    config: dict[str, Any] = {"security_protocol": settings.kafka_security_protocol}
    context = ssl_context(settings)
    if context is not None:
        config["ssl_context"] = context
    sasl = _sasl(settings)
    if sasl is not None:
        mechanism, username, password = sasl
        config |= {"sasl_mechanism": mechanism, "sasl_plain_username": username, "sasl_plain_password": password}
    return config


def kafka_python_config(settings: Settings) -> dict[str, Any]:
    """Security keyword arguments for kafka-python's KafkaProducer / KafkaConsumer / KafkaAdminClient."""
    return _shared(settings)


def aiokafka_config(settings: Settings) -> dict[str, Any]:
    """Security keyword arguments for aiokafka's AIOKafkaProducer / AIOKafkaConsumer."""
    return _shared(settings)


def check_access(settings: Settings, timeout_s: float = 15.0) -> None:
    """Fail fast when the brokers refuse the security set-up; called before a process starts its clients.

    kafka-python and Faust retry a refused login until their own timeouts run out (kafka-python's
    admin client: 30 s, then "Unable to bootstrap"), which hides the cause. This opens one connection
    to each bootstrap server in turn with the same settings: a refused login or an untrusted
    certificate raises :class:`KafkaAccessError` with one line naming what to fix; an unreachable
    broker is left to the clients' own retries (it may still be starting). Runs in a thread of its
    own, so it can be called from synchronous code and from inside a running event loop alike.
    """
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="kafka-access-check") as pool:
        pool.submit(asyncio.run, _check_access(settings, timeout_s)).result()


async def _check_access(settings: Settings, timeout_s: float) -> None:
    closed: list[str] = []
    for attempt in range(2):  # a listener that closes on us twice, a second apart, is not a restart
        if attempt:
            await asyncio.sleep(1.0)
        closed.clear()
        for server in settings.bootstrap_servers:
            outcome = await _try_server(settings, server, timeout_s)
            if outcome == "ok":
                return
            if outcome == "closed":
                closed.append(server)
        if not closed:
            return  # nothing reachable yet: the clients' own retries take it from here
    protocol = settings.kafka_security_protocol
    raise KafkaAccessError(
        f"Kafka at {', '.join(closed)} closed the connection during the {protocol} handshake; "
        "check that PREEMPT_KAFKA_SECURITY_PROTOCOL matches the listener (SSL/SASL_SSL need TLS)"
    )


async def _try_server(settings: Settings, server: str, timeout_s: float) -> str:
    """``ok``, ``unreachable`` or ``closed`` (TCP connected, then the handshake was cut); raises on refusals."""
    from aiokafka import errors as aiokafka_errors

    from streams.runtime.faust_compat import open_connection

    # Broker answers that mean the credentials or the mechanism are wrong: retrying cannot help.
    auth_errors = (
        aiokafka_errors.SaslAuthenticationFailed,
        aiokafka_errors.AuthenticationFailedError,
        aiokafka_errors.UnsupportedSaslMechanismError,
        aiokafka_errors.AuthenticationMethodNotSupported,
        aiokafka_errors.IllegalSaslStateError,
    )
    protocol = settings.kafka_security_protocol
    host, _, port = server.rpartition(":")
    try:
        conn = await asyncio.wait_for(
            open_connection(
                host.strip("[]"),
                int(port),
                client_id="preempt-access-check",
                request_timeout_ms=int(timeout_s * 1000),
                **aiokafka_config(settings),
            ),
            timeout_s,
        )
    except auth_errors as exc:
        raise KafkaAccessError(
            f"Kafka at {server} refused the login of user {settings.kafka_sasl_username!r} "
            f"({settings.kafka_sasl_mechanism} over {protocol}): {_reason(exc)}; "
            "check PREEMPT_KAFKA_SASL_USERNAME, PREEMPT_KAFKA_SASL_PASSWORD and PREEMPT_KAFKA_SASL_MECHANISM"
        ) from None
    except ssl.SSLCertVerificationError as exc:
        raise KafkaAccessError(
            f"Kafka at {server}: the broker's TLS certificate is not trusted ({exc.verify_message}); "
            "set PREEMPT_KAFKA_SSL_CA_FILE to the CA bundle that signed it"
        ) from None
    except ssl.SSLError as exc:
        raise KafkaAccessError(
            f"Kafka at {server}: the TLS handshake failed ({exc.reason or exc}); "
            f"does the listener speak {protocol}? check PREEMPT_KAFKA_SECURITY_PROTOCOL"
        ) from None
    except aiokafka_errors.KafkaConnectionError as exc:
        log.warning("kafka access check: connection closed during the handshake", server=server, error=_reason(exc))
        return "closed"
    except (OSError, TimeoutError, aiokafka_errors.KafkaError) as exc:
        log.warning("kafka access check: broker not reachable yet", server=server, error=_reason(exc))
        return "unreachable"
    conn.close()
    return "ok"


def _reason(exc: BaseException) -> str:
    # Broker errors carry the broker's own sentence; never include settings (they may hold secrets).
    return " ".join(str(exc).split())[:300] or type(exc).__name__


async def unreachable_reason(settings: Settings, timeout_s: float) -> str | None:
    """None when a bootstrap server accepts a connection (with this process's security set-up)
    within ``timeout_s``; otherwise one line saying why none did (no secret in it).

    Used by the running apps' broker watch (``streams.runtime.ops_web``): the clients inside Faust
    retry for ever without telling anyone, so the process asks the brokers itself.
    """
    from aiokafka import errors as aiokafka_errors

    from streams.runtime.faust_compat import open_connection

    reasons: list[str] = []
    for server in settings.bootstrap_servers:
        host, _, port = server.rpartition(":")
        try:
            conn = await asyncio.wait_for(
                open_connection(
                    host.strip("[]"),
                    int(port),
                    client_id="preempt-broker-watch",
                    request_timeout_ms=max(1, int(timeout_s * 1000)),
                    **aiokafka_config(settings),
                ),
                timeout_s,
            )
        except (OSError, TimeoutError, ValueError, aiokafka_errors.KafkaError) as exc:
            reasons.append(f"{server}: {_reason(exc)}")
            continue
        conn.close()
        return None
    return "; ".join(reasons) or "no bootstrap server configured"
