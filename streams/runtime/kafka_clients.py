"""Kafka client security configuration, made in ONE place from the ``PREEMPT_KAFKA_*`` settings.

Every Kafka client of Preempt takes its security set-up from here, one function per client library:

* :func:`faust_credentials` — ``broker_credentials=`` of both Faust apps (rules worker, notifier);
* :func:`kafka_python_config` — keyword arguments of kafka-python's ``KafkaProducer`` / ``KafkaConsumer``
  / ``KafkaAdminClient`` (the SDK, topic admin, the CLI, simulate, the dead-letter reader, bench);
* :func:`aiokafka_config` — keyword arguments of aiokafka's clients (ingest, gap repair, bench);
* :func:`kafka_python_bootstrap` — the ``bootstrap_servers`` to give kafka-python: the server that
  answered :func:`check_access` (kafka-python can hang for good on a silent one in the list).
* :func:`metadata_max_age_ms` — how often every producer and consumer refreshes its topic metadata
  (``PREEMPT_METADATA_MAX_AGE_SECONDS``; the client libraries' own default is 5 minutes).

The settings are validated together in ``Settings`` (a SASL protocol without a mechanism or
credentials is one clear error at start); the options are described in docs/operations.md
("Connecting to a secured Kafka"). One TLS context serves every library, so a CA bundle, a client
certificate and its key are read the same way everywhere: hostnames are always checked.
"""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
import threading
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import SecretStr

from schemas.error_text import connection_failure, unreadable
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


KAFKA_DEFAULT_PORT = 9092


def host_and_port(server: str) -> tuple[str, int]:
    """``host`` and port of one bootstrap server; a server written without a port is on Kafka's default
    port, as kafka-python, aiokafka and Faust read it (``kafka://localhost`` is ``localhost:9092``)."""
    host, sep, port = server.rpartition(":")
    if not sep or not port.isdigit():  # "localhost", "[::1]": no port given
        return server.strip("[]"), KAFKA_DEFAULT_PORT
    return host.strip("[]"), int(port)


class _KeyNeedsPasswordError(Exception):
    """Raised from OpenSSL's password callback: the client key is encrypted and no password is set."""


def ssl_context(settings: Settings) -> ssl.SSLContext | None:
    """The TLS context for an SSL/SASL_SSL protocol (CA bundle, optional client cert); None without TLS.

    Each file that cannot be used is one :class:`ConfigError` naming the file and the setting to fix,
    never the key password. An encrypted key without ``PREEMPT_KAFKA_SSL_KEY_PASSWORD`` is refused
    here: left to OpenSSL, it would ask for a pass phrase on the terminal and wait.
    """
    if not settings.kafka_security_protocol.endswith("SSL"):
        return None
    for setting, path in (
        ("PREEMPT_KAFKA_SSL_CERT_FILE", settings.kafka_ssl_cert_file),
        ("PREEMPT_KAFKA_SSL_KEY_FILE", settings.kafka_ssl_key_file),
    ):
        if path is not None:
            _check_readable(setting, path)
    context = ca_bundle_context("PREEMPT_KAFKA_SSL_CA_FILE", settings.kafka_ssl_ca_file)
    cert, key = settings.kafka_ssl_cert_file, settings.kafka_ssl_key_file
    if cert is None or key is None:
        return context
    password = settings.kafka_ssl_key_password
    asked: list[bool] = []

    def key_password() -> str:
        asked.append(True)
        if password is None:
            raise _KeyNeedsPasswordError
        return password.get_secret_value()

    try:
        context.load_cert_chain(str(cert), str(key), password=key_password)
    except _KeyNeedsPasswordError:
        raise ConfigError(
            f"PREEMPT_KAFKA_SSL_KEY_FILE={key} is encrypted; set PREEMPT_KAFKA_SSL_KEY_PASSWORD to its password"
        ) from None
    except (ssl.SSLError, OSError) as exc:
        if getattr(exc, "reason", None) == "KEY_VALUES_MISMATCH":
            problem = f"the key {key} does not belong to the certificate {cert}"
        elif asked:
            problem = f"cannot decrypt the key {key} with PREEMPT_KAFKA_SSL_KEY_PASSWORD (is it the right password?)"
        else:
            problem = f"cannot read the certificate {cert} and its key {key} (PEM files expected)"
        raise ConfigError(f"PREEMPT_KAFKA_SSL_CERT_FILE / PREEMPT_KAFKA_SSL_KEY_FILE: {problem}") from None
    return context


def ca_bundle_context(setting: str, ca: Path | None) -> ssl.SSLContext:
    """A client TLS context (hostnames checked) trusting the PEM CA bundle ``ca`` (None: the system CAs).

    A file that cannot be used is one :class:`ConfigError` naming ``setting`` — Kafka's CA file here,
    the SMTP server's in ``alerts.channels.email`` — at start, not at the first connection.
    """
    if ca is not None:
        _check_readable(setting, ca)
    try:
        return ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(ca) if ca else None)
    except (ssl.SSLError, OSError) as exc:
        raise ConfigError(f"{setting}={ca}: not a PEM bundle of CA certificates ({_ssl_reason(exc)})") from None


def _check_readable(setting: str, path: Path) -> None:
    """A file this process may not open is named as such: OpenSSL's own errors for it read as a file
    that is not PEM ("not a PEM bundle (Permission denied)", "PEM files expected")."""
    try:
        with path.open("rb"):
            pass
    except OSError as exc:
        raise ConfigError(
            f"{setting}={path}: cannot read it ({unreadable(exc)}); "
            f"make it readable by the user this process runs as (uid {os.geteuid()})"
        ) from None


def _ssl_reason(exc: BaseException) -> str:
    return str(getattr(exc, "reason", None) or getattr(exc, "strerror", None) or type(exc).__name__)


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
    config = _shared(settings)
    if str(config.get("sasl_mechanism", "")).startswith("SCRAM-"):
        # SCRAM writes ',' and '=' of a user name as '=2C' and '=3D' (RFC 5802, 5.1); aiokafka does so
        # itself, kafka-python sends the name as given, and the broker refuses the login.
        config["sasl_plain_username"] = config["sasl_plain_username"].replace("=", "=3D").replace(",", "=2C")
    return config


@dataclass(frozen=True, slots=True)
class _Found:
    """What this process's last :func:`check_access` of a bootstrap list found, and when (time.monotonic())."""

    answered: str | None  # the server that answered
    silent: frozenset[str]  # when none did: the servers that gave no answer in time (none refused or cut)
    at: float


_FOUND: dict[tuple[str, ...], _Found] = {}
_FOUND_LOCK = threading.Lock()
ANSWER_FRESH_S = 60.0  # older than this, a server's answer says little about it now


def kafka_python_bootstrap(settings: Settings) -> list[str]:
    """``bootstrap_servers`` for a kafka-python client: the server that answered this process's
    :func:`check_access` in the last minute; when none did, every server of ``PREEMPT_BROKER`` but those
    that gave that check no answer in time (all of them when every one was silent); else every server.

    kafka-python 3.0 picks its bootstrap server at random and waits for a TLS handshake without a
    deadline: one server in the list that takes connections and never answers (a hung broker, a
    port-forward to nothing) hung `preempt publish`, `events dead-letters` and the start of every
    process for good (in plain text it gave up after 42 s with a live broker in the list) — also when the
    live broker was only starting at the check (refusing connections: it answered nothing yet), and came
    up while the client waited on the silent one. A server that refused the connection fails fast and is
    retried, so it stays in the list. Once bootstrapped, the client talks to the brokers the cluster's
    metadata names, as before.

    Not tried here: the servers after the one that answered (the check stops there). When that one dies
    within the minute, the client cannot bootstrap (its own timeout, an error; a restart checks again)
    rather than risk a silent one."""
    servers = list(settings.bootstrap_servers)
    with _FOUND_LOCK:
        found = _FOUND.get(tuple(servers))
    if found is None or time.monotonic() - found.at > ANSWER_FRESH_S:
        return servers
    if found.answered is not None:
        return [found.answered]
    return [server for server in servers if server not in found.silent] or servers


def _remember(servers: list[str], answered: str | None, silent: Iterable[str] = ()) -> None:
    with _FOUND_LOCK:
        _FOUND[tuple(servers)] = _Found(answered, frozenset(silent), time.monotonic())


def aiokafka_config(settings: Settings) -> dict[str, Any]:
    """Security keyword arguments for aiokafka's AIOKafkaProducer / AIOKafkaConsumer."""
    return _shared(settings)


def metadata_max_age_ms(settings: Settings) -> int:
    """``metadata_max_age_ms`` of every producer and consumer Preempt makes (Faust's ``producer_`` and
    ``consumer_metadata_max_age_ms``): a client learns of a topic deleted or made again, or of partitions
    added, at its next refresh. The libraries' default (5 minutes) left the producers that long behind
    the consumers: the rules worker's topic watch did not see its alerts topic gone, an ingest producer
    kept writing by a stale partition count."""
    return int(settings.metadata_max_age_seconds * 1000)


@dataclass(frozen=True, slots=True)
class Unreachable:
    """Why a bootstrap server gave the access check no answer (a retry may cure it)."""

    reason: str  # why, in words ("connection refused: nothing listens there"), no setting in it
    unresolved: bool = False  # its host name does not resolve
    silent: bool = False  # it gave no answer in time (took the connection, or the handshake, and said nothing)


def check_access(settings: Settings, timeout_s: float = 15.0) -> dict[str, Unreachable]:
    """Fail fast when the brokers refuse the security set-up; called before a process starts its clients.

    kafka-python and Faust retry a refused login until their own timeouts run out (kafka-python's
    admin client: 30 s, then "Unable to bootstrap"), which hides the cause. This opens one connection
    to each bootstrap server in turn with the same settings: a refused login or an untrusted
    certificate raises :class:`KafkaAccessError` with one line naming what to fix; an unreachable
    broker is left to the clients' own retries (it may still be starting). Runs in a thread of its
    own, so it can be called from synchronous code and from inside a running event loop alike.

    ``timeout_s`` bounds the whole check, however many bootstrap servers there are: a server that
    accepts the connection and never answers (a hung broker, a port-forward to nothing) took
    ``timeout_s`` each, so a probe that said "within 5 s" took 20 s with three of them.

    Returns why each server that was tried gave no answer, when none answered (empty when one did):
    the caller's own "cannot reach" line names the real cause (a refused connection, a host name that
    does not resolve) instead of its client's timeout.
    """
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="kafka-access-check") as pool:
        return pool.submit(asyncio.run, _check_access(settings, timeout_s)).result()


# kafka-python's keyword arguments for what the PREEMPT_* settings say, and the setting each one stands for.
_KAFKA_PYTHON_SECURITY = {
    "security_protocol": ("kafka_security_protocol", "PREEMPT_KAFKA_SECURITY_PROTOCOL"),
    "sasl_mechanism": ("kafka_sasl_mechanism", "PREEMPT_KAFKA_SASL_MECHANISM"),
    "sasl_plain_username": ("kafka_sasl_username", "PREEMPT_KAFKA_SASL_USERNAME"),
    "sasl_plain_password": ("kafka_sasl_password", "PREEMPT_KAFKA_SASL_PASSWORD"),
    "ssl_cafile": ("kafka_ssl_ca_file", "PREEMPT_KAFKA_SSL_CA_FILE"),
    "ssl_certfile": ("kafka_ssl_cert_file", "PREEMPT_KAFKA_SSL_CERT_FILE"),
    "ssl_keyfile": ("kafka_ssl_key_file", "PREEMPT_KAFKA_SSL_KEY_FILE"),
    "ssl_password": ("kafka_ssl_key_password", "PREEMPT_KAFKA_SSL_KEY_PASSWORD"),
}
_SECRET_FIELDS = ("kafka_sasl_password", "kafka_ssl_key_password")
_PATH_FIELDS = ("kafka_ssl_ca_file", "kafka_ssl_cert_file", "kafka_ssl_key_file")


def check_kafka_python_access(bootstrap_servers: str | Sequence[str], config: dict[str, Any], timeout_s: float) -> None:
    """:func:`check_access` for a client made from kafka-python keyword arguments (the SDK's plain
    ``Publisher(bootstrap_servers=…, security_protocol=…, sasl_…=…, ssl_cafile=…)``): a refused login, an
    untrusted certificate or a protocol that does not match the listener raises :class:`KafkaAccessError`
    at once, naming the keyword arguments to fix. kafka-python itself saw only "socket disconnected" and
    retried until its ``bootstrap_timeout_ms`` (30 s), then said it could not reach the broker.

    Nothing is checked for a plain-text client, nor for one given TLS options beyond those four files and
    password (its own ``ssl_context``, ``ssl_check_hostname=False``…: the check could refuse what the client
    accepts), nor for a SASL mechanism other than PLAIN and SCRAM, nor when no server answers (the client's own
    timeout says so)."""
    protocol = str(config.get("security_protocol", "PLAINTEXT"))
    if protocol not in ("SSL", "SASL_PLAINTEXT", "SASL_SSL"):
        return
    # TLS options this check cannot reproduce (its own context, ssl_check_hostname=False, a CRL, ciphers…): the
    # check could refuse what the client would accept.
    if any(argument.startswith("ssl_") and argument not in _KAFKA_PYTHON_SECURITY for argument in config):
        return
    sasl = ("sasl_mechanism", "sasl_plain_username", "sasl_plain_password")
    if protocol.startswith("SASL_") and (
        not all(config.get(argument) for argument in sasl)
        or config["sasl_mechanism"] not in ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
    ):
        return  # kafka-python refuses what is missing itself, or uses another SASL set-up (OAUTHBEARER, GSSAPI)
    servers = bootstrap_servers if isinstance(bootstrap_servers, str) else ",".join(bootstrap_servers)
    fields: dict[str, Any] = {"broker": servers}
    for argument, (field_name, _setting) in _KAFKA_PYTHON_SECURITY.items():
        value = config.get(argument)
        if value is None:
            continue
        if field_name in _SECRET_FIELDS:
            value = SecretStr(str(value))
        elif field_name in _PATH_FIELDS:
            value = Path(value)
        fields[field_name] = value
    settings = Settings.model_construct(**fields)  # as given: kafka-python validates its own arguments
    try:
        check_access(settings, timeout_s=timeout_s)
    except ConfigError as exc:  # KafkaAccessError, or a TLS file that cannot be used
        message = str(exc)
        for argument, (_field, setting) in _KAFKA_PYTHON_SECURITY.items():
            message = message.replace(setting, argument)
        message = message.replace("PREEMPT_BROKER", "bootstrap_servers").replace("PREEMPT_KAFKA_SASL_*", "sasl_*")
        raise type(exc)(message) from None


# What one connection attempt found (besides "ok", an Unreachable server and the refusals, which raise at once).
_CLOSED = "closed"  # TCP connected, then the broker cut the TLS / SASL handshake
_CUT_AFTER_HANDSHAKE = "cut after handshake"  # the handshake passed, the first request was cut


async def _check_access(settings: Settings, timeout_s: float) -> dict[str, Unreachable]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    cut: dict[str, str] = {}
    unreachable: dict[str, Unreachable] = {}
    for attempt in range(2):  # a listener that closes on us twice, a second apart, is not a restart
        if attempt:
            await asyncio.sleep(min(1.0, max(0.0, deadline - loop.time())))
        cut.clear()
        servers = settings.bootstrap_servers
        for position, server in enumerate(servers):
            remaining = deadline - loop.time()
            if remaining <= 0:
                _remember_silent(servers, unreachable)
                return unreachable  # out of time: nothing refused us, so the caller's timeout or retries decide
            # an equal share of what is left, so that a silent server does not use up the time of the next
            share = remaining / (len(servers) - position)
            try:
                outcome = await asyncio.wait_for(_try_server(settings, server, share), share)
            except TimeoutError:
                outcome = Unreachable("no answer", silent=True)
            if outcome == "ok":
                _remember(servers, server)
                return {}
            if isinstance(outcome, Unreachable):
                unreachable[server] = outcome
            else:
                cut[server] = outcome
        if not cut:
            _remember_silent(servers, unreachable)
            return unreachable  # nothing reachable yet: the clients' own retries take it from here
    protocol = settings.kafka_security_protocol
    if all(outcome == _CUT_AFTER_HANDSHAKE for outcome in cut.values()) and not protocol.startswith("SASL_"):
        wanted = "SASL_SSL" if protocol == "SSL" else "SASL_PLAINTEXT (or SASL_SSL)"
        raise KafkaAccessError(
            f"Kafka at {', '.join(cut)} accepted the {protocol} connection but cut it at the first request: "
            f"the listener expects a SASL login; set PREEMPT_KAFKA_SECURITY_PROTOCOL={wanted} and "
            "PREEMPT_KAFKA_SASL_MECHANISM, PREEMPT_KAFKA_SASL_USERNAME, PREEMPT_KAFKA_SASL_PASSWORD"
        )
    raise KafkaAccessError(
        f"Kafka at {', '.join(cut)} closed the connection during the {protocol} handshake: {_other_side(protocol)}"
    )


def _remember_silent(servers: list[str], unreachable: dict[str, Unreachable]) -> None:
    """No server answered: remember the silent ones, for :func:`kafka_python_bootstrap` to leave out."""
    _remember(servers, None, (server for server, found in unreachable.items() if found.silent))


def _padded_credentials(settings: Settings) -> str:
    """ "; PREEMPT_KAFKA_SASL_… ends with white space …" for a user name or password with white space at
    either end (the newline a secret file or `echo` leaves, a space pasted along), else "". The broker
    refuses such a login like any wrong one; the value itself is never shown."""
    password = settings.kafka_sasl_password.get_secret_value() if settings.kafka_sasl_password else ""
    padded = [
        name
        for name, value in (
            ("PREEMPT_KAFKA_SASL_USERNAME", settings.kafka_sasl_username or ""),
            ("PREEMPT_KAFKA_SASL_PASSWORD", password),
        )
        if value != value.strip()
    ]
    if not padded:
        return ""
    ends = "ends" if len(padded) == 1 else "end"
    return f"; {' and '.join(padded)} {ends} with white space (a newline or a space); remove it"


def _other_side(protocol: str) -> str:
    """What to set when a listener cut the handshake: the protocol on the other side of TLS (each side
    fails the same way, so which one this client is on says which way to go)."""
    plain = {"SSL": "PLAINTEXT", "SASL_SSL": "SASL_PLAINTEXT"}
    if protocol in plain:
        return (
            f"the listener does not seem to speak TLS; set PREEMPT_KAFKA_SECURITY_PROTOCOL={plain[protocol]}, "
            f"or point PREEMPT_BROKER at the broker's {protocol} listener"
        )
    tls = {"PLAINTEXT": "SSL (or SASL_SSL)", "SASL_PLAINTEXT": "SASL_SSL"}
    return (
        f"the listener seems to expect TLS; set PREEMPT_KAFKA_SECURITY_PROTOCOL={tls[protocol]} "
        "(and PREEMPT_KAFKA_SSL_CA_FILE if a private CA signed the broker's certificate)"
    )


async def _try_server(settings: Settings, server: str, timeout_s: float) -> str | Unreachable:
    """``ok``, or what went wrong that a retry might cure (see the constants above); raises on refusals."""
    from aiokafka import errors as aiokafka_errors

    from streams.runtime.faust_compat import open_connection, request_metadata

    host, port = host_and_port(server)
    connect: dict[str, Any] = {"client_id": "preempt-access-check", "request_timeout_ms": int(timeout_s * 1000)}
    try:
        conn = await asyncio.wait_for(open_connection(host, port, **connect, **aiokafka_config(settings)), timeout_s)
    except (OSError, TimeoutError, aiokafka_errors.KafkaError) as exc:
        refusal = _refusal(settings, server, host, exc)
        if isinstance(exc, aiokafka_errors.UnsupportedSaslMechanismError):  # and name the ones it offers
            refusal = _unsupported_mechanism(settings, server, await _offered(settings, host, port, connect, timeout_s))
        if refusal is not None:
            raise KafkaAccessError(refusal) from None
        if isinstance(
            exc, (aiokafka_errors.KafkaConnectionError, ConnectionResetError, ConnectionAbortedError, BrokenPipeError)
        ):
            # Connected, then cut: e.g. a TLS hello sent to a listener without TLS.
            log.debug("kafka access check: connection closed during the handshake", server=server, error=_reason(exc))
            return _CLOSED
        # Not a warning: the caller says so (the probe's one Error line, or the clients' own retries).
        log.debug("kafka access check: broker not reachable yet", server=server, error=_reason(exc))
        timed_out = (TimeoutError, aiokafka_errors.KafkaTimeoutError, aiokafka_errors.RequestTimedOutError)
        return Unreachable(
            connection_failure(exc), unresolved=isinstance(exc, socket.gaierror), silent=isinstance(exc, timed_out)
        )
    try:
        # The handshake alone proves little: a SASL listener accepts ApiVersions before any login.
        await asyncio.wait_for(request_metadata(conn), timeout_s)
    except aiokafka_errors.KafkaConnectionError as exc:
        refusal = _refused_certificate(settings, server, exc)
        if refusal is not None:
            raise KafkaAccessError(refusal) from None
        log.debug("kafka access check: connection cut at the first request", server=server, error=_reason(exc))
        return _CUT_AFTER_HANDSHAKE
    except (OSError, TimeoutError, aiokafka_errors.KafkaError) as exc:
        log.debug("kafka access check: no answer to a metadata request", server=server, error=_reason(exc))
        return Unreachable(f"no answer to a metadata request ({connection_failure(exc)})")
    finally:
        conn.close()
    return "ok"


def _refusal(settings: Settings, server: str, host: str, exc: BaseException) -> str | None:
    """The one line (what is wrong, what to set) for a connection that failed because the broker refuses
    this client's security set-up — a retry cannot help; None for anything else (not reachable yet).

    Shared by the start-up check (it raises the line) and the running processes' broker watch (its
    reason), so a broker that starts refusing a running process is named the same way."""
    from aiokafka import errors as aiokafka_errors

    protocol = settings.kafka_security_protocol
    if isinstance(exc, aiokafka_errors.UnsupportedSaslMechanismError):
        return _unsupported_mechanism(settings, server, "")
    if isinstance(exc, aiokafka_errors.IllegalSaslStateError):
        # The broker's answer to a SASL handshake on a listener that has no SASL.
        return (
            f"Kafka at {server} does not take SASL logins on this listener; set PREEMPT_KAFKA_SECURITY_PROTOCOL="
            f"{protocol.removeprefix('SASL_')} and unset PREEMPT_KAFKA_SASL_*, or point PREEMPT_BROKER at its "
            f"{protocol} listener"
        )
    # Broker answers that mean the credentials or the mechanism are wrong.
    auth_errors = (
        aiokafka_errors.SaslAuthenticationFailed,
        aiokafka_errors.AuthenticationFailedError,
        aiokafka_errors.AuthenticationMethodNotSupported,
    )
    if isinstance(exc, auth_errors):
        return (
            f"Kafka at {server} refused the login of user {settings.kafka_sasl_username!r} "
            f"({settings.kafka_sasl_mechanism} over {protocol}): {_reason(exc)}; "
            "check PREEMPT_KAFKA_SASL_USERNAME, PREEMPT_KAFKA_SASL_PASSWORD and PREEMPT_KAFKA_SASL_MECHANISM"
            f"{_padded_credentials(settings)}"
        )
    if isinstance(exc, ssl.SSLCertVerificationError):
        return _untrusted_certificate(server, host, exc)
    if isinstance(exc, ssl.SSLError):
        return (
            f"Kafka at {server}: the TLS handshake failed ({exc.reason or exc}); "
            f"does the listener speak {protocol}? check PREEMPT_KAFKA_SECURITY_PROTOCOL"
        )
    if isinstance(exc, aiokafka_errors.KafkaConnectionError):
        return _refused_certificate(settings, server, exc)
    return None


def _unsupported_mechanism(settings: Settings, server: str, offered: str) -> str:
    return (
        f"Kafka at {server} does not offer the SASL mechanism {settings.kafka_sasl_mechanism} on its "
        f"{settings.kafka_security_protocol} listener{offered}; set PREEMPT_KAFKA_SASL_MECHANISM to one it offers"
    )


# OpenSSL's verify codes that a different setting (or the broker's operator) fixes, not the CA file.
_CERT_NOT_YET_VALID, _CERT_HAS_EXPIRED, _HOSTNAME_MISMATCH, _IP_ADDRESS_MISMATCH = 9, 10, 62, 64


def _untrusted_certificate(server: str, host: str, exc: ssl.SSLCertVerificationError) -> str:
    """The one line for a broker certificate this client does not accept, with what fixes it."""
    if exc.verify_code in (_CERT_HAS_EXPIRED, _CERT_NOT_YET_VALID):
        return (
            f"Kafka at {server}: the broker's TLS certificate is out of its validity period ({exc.verify_message}); "
            "it must be renewed on the broker (or this machine's clock is wrong)"
        )
    if exc.verify_code in (_HOSTNAME_MISMATCH, _IP_ADDRESS_MISMATCH):
        return (
            f"Kafka at {server}: the broker's TLS certificate is not for {host!r} ({exc.verify_message}); "
            "write in PREEMPT_BROKER a host name the certificate names"
        )
    return (
        f"Kafka at {server}: the broker's TLS certificate is not trusted ({exc.verify_message}); "
        "set PREEMPT_KAFKA_SSL_CA_FILE to the CA bundle that signed it"
    )


def _refused_certificate(settings: Settings, server: str, exc: BaseException) -> str | None:
    """A connection the broker cut with a TLS alert (TLS 1.3 checks the client's certificate after the
    client's side of the handshake): the broker refused this client's certificate, or its absence."""
    cause = exc.__cause__ or exc.__context__
    if not isinstance(cause, ssl.SSLError) or "ALERT" not in str(cause.reason or ""):
        return None
    alert = str(cause.reason).split("ALERT_", 1)[-1].replace("_", " ").lower()
    if settings.kafka_ssl_cert_file is None:
        advice = (
            "the listener wants a client certificate: set PREEMPT_KAFKA_SSL_CERT_FILE and PREEMPT_KAFKA_SSL_KEY_FILE"
        )
    else:
        advice = (
            f"check that PREEMPT_KAFKA_SSL_CERT_FILE={settings.kafka_ssl_cert_file} is valid today and signed by a CA "
            "the broker trusts"
        )
    return f"Kafka at {server} refused this client's TLS certificate (TLS alert: {alert}); {advice}"


async def _offered(settings: Settings, host: str, port: int, connect: dict[str, Any], timeout_s: float) -> str:
    """`` (it offers PLAIN, SCRAM-SHA-512)`` — or nothing when the broker does not say."""
    from aiokafka import errors as aiokafka_errors

    from streams.runtime.faust_compat import offered_sasl_mechanisms

    try:
        offered = await asyncio.wait_for(
            offered_sasl_mechanisms(host, port, **connect, **aiokafka_config(settings)), timeout_s
        )
    except (OSError, TimeoutError, ssl.SSLError, aiokafka_errors.KafkaError):
        return ""
    return f" (it offers {', '.join(offered)})" if offered else ""


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
        host, port = host_and_port(server)
        try:
            conn = await asyncio.wait_for(
                open_connection(
                    host,
                    port,
                    client_id="preempt-broker-watch",
                    request_timeout_ms=max(1, int(timeout_s * 1000)),
                    **aiokafka_config(settings),
                ),
                timeout_s,
            )
        except (OSError, TimeoutError, ValueError, aiokafka_errors.KafkaError) as exc:
            # A broker that refuses this client (a rotated password or CA, a client certificate now
            # required or expired) is named as at start, with what to set: it will not come back by itself.
            reasons.append(_refusal(settings, server, host, exc) or f"{server}: {connection_failure(exc)}")
            continue
        conn.close()
        return None
    return "; ".join(reasons) or "no bootstrap server configured"
