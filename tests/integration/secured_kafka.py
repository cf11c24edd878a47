"""Extra local brokers with a SASL_SSL listener only, for the security tests.

``deploy/kafka/kafka.sh`` with ``KAFKA_SECURITY=SASL_SSL`` does the work: it makes a CA, a broker
certificate (SAN 127.0.0.1/localhost) and a client certificate with openssl, creates the user ``preempt``
while formatting the storage, and writes the client settings to ``client.env``. Each broker lives in its
own temporary directory on ports of the 197xx range and is stopped at the end of the session.

Fixtures: ``sasl_broker`` (TLS + SCRAM-SHA-512, the managed-Kafka default),
``mtls_plain_scram256_broker`` (PLAIN and SCRAM-SHA-256, client certificates required) and
``acl_broker`` (TLS + SCRAM-SHA-512 with ACLs on: the user ``preempt`` may do nothing until granted):
``from tests.integration.secured_kafka import sasl_broker  # noqa: F401``.
``PREEMPT_TEST_SECURED_PORT`` moves the range of ports tried (default 19700) to one of your own.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.integration.own_broker import KAFKA_SCRIPT, port_free

_FIRST_PORT = int(os.environ.get("PREEMPT_TEST_SECURED_PORT", "19700"))
PORT_RANGE = range(_FIRST_PORT, _FIRST_PORT + 100, 2)  # broker port, controller port = broker port + 1


@dataclass(frozen=True)
class SaslBroker:
    """A running SASL_SSL broker: where it is and the PREEMPT_* settings its user needs."""

    bootstrap: str
    home: Path
    env: dict[str, str]

    def settings(self, **overrides: Any) -> dict[str, Any]:
        """Settings fields (lower-case names) for a client of this broker; ``overrides`` apply."""
        fields: dict[str, Any] = {key.removeprefix("PREEMPT_").lower(): value for key, value in self.env.items()}
        fields.update(overrides)
        return fields

    def admin_settings(self, **overrides: Any) -> dict[str, Any]:
        """Settings fields for the broker's own user, which ACLs do not bind (``acl_broker`` only)."""
        env = _read_env(self.home / "admin.env")
        fields: dict[str, Any] = {key.removeprefix("PREEMPT_").lower(): value for key, value in env.items()}
        fields.update(overrides)
        return fields


def _read_env(path: Path) -> dict[str, str]:
    env: dict[str, str] = {}
    for line in path.read_text().splitlines():
        if line.startswith("export "):
            key, _, value = line.removeprefix("export ").partition("=")
            env[key] = shlex.split(value)[0] if value else ""
    return env


def start_sasl_broker(home: Path, **script_settings: str) -> tuple[SaslBroker, dict[str, str]]:
    """Start a SASL_SSL broker in ``home`` on the first free pair of ports; returns it and its script env.

    ``script_settings`` are extra ``deploy/kafka/kafka.sh`` variables (``KAFKA_SASL_MECHANISMS``,
    ``KAFKA_SSL_CLIENT_AUTH``)."""
    port = next((p for p in PORT_RANGE if port_free(p) and port_free(p + 1)), None)
    if port is None:
        pytest.fail("no free port pair in 19700-19799 for the SASL_SSL broker", pytrace=False)
    script_env = {
        **os.environ,
        "KAFKA_SECURITY": "SASL_SSL",
        "KAFKA_HOME_DIR": str(home),
        "KAFKA_PORT": str(port),
        "KAFKA_CONTROLLER_PORT": str(port + 1),
        "KAFKA_HEAP_OPTS": "-Xms256m -Xmx512m",
        "KAFKA_START_TIMEOUT": "180",
        **script_settings,
    }
    result = subprocess.run(
        [str(KAFKA_SCRIPT), "start"], env=script_env, check=False, capture_output=True, text=True, timeout=600
    )
    if result.returncode != 0:
        pytest.fail(f"the SASL_SSL broker did not start:\n{result.stderr[-3000:]}", pytrace=False)
    return SaslBroker(f"127.0.0.1:{port}", home, _read_env(home / "client.env")), script_env


def stop_sasl_broker(script_env: dict[str, str]) -> None:
    """Stop the broker started with ``script_env`` (only that one: the script kills its own pid)."""
    subprocess.run([str(KAFKA_SCRIPT), "stop"], env=script_env, check=False, capture_output=True, timeout=120)


@pytest.fixture(scope="session")
def sasl_broker() -> Iterator[SaslBroker]:
    """A running SASL_SSL-only broker (own temp dir, 197xx ports), stopped at the end of the session."""
    with tempfile.TemporaryDirectory(prefix="preempt-sasl-") as tmp:
        broker, script_env = start_sasl_broker(Path(tmp))
        try:
            yield broker
        finally:
            stop_sasl_broker(script_env)


@pytest.fixture(scope="session")
def mtls_plain_scram256_broker() -> Iterator[SaslBroker]:
    """A second SASL_SSL broker that offers PLAIN and SCRAM-SHA-256 (not SCRAM-SHA-512) and requires a
    client certificate (mutual TLS); its ``settings()`` use PLAIN and the client certificate."""
    with tempfile.TemporaryDirectory(prefix="preempt-mtls-") as tmp:
        broker, script_env = start_sasl_broker(
            Path(tmp), KAFKA_SASL_MECHANISMS="PLAIN,SCRAM-SHA-256", KAFKA_SSL_CLIENT_AUTH="required"
        )
        try:
            yield broker
        finally:
            stop_sasl_broker(script_env)


@pytest.fixture(scope="session")
def acl_broker() -> Iterator[SaslBroker]:
    """A SASL_SSL broker (SCRAM-SHA-512) with Kafka's ACLs on, as a managed Kafka has them: its
    ``settings()`` user ``preempt`` may do nothing until granted; ``admin_settings()`` may do anything."""
    with tempfile.TemporaryDirectory(prefix="preempt-acl-") as tmp:
        broker, script_env = start_sasl_broker(Path(tmp), KAFKA_AUTHORIZER="acl")
        try:
            yield broker
        finally:
            stop_sasl_broker(script_env)


__all__ = [
    "SaslBroker",
    "acl_broker",
    "mtls_plain_scram256_broker",
    "sasl_broker",
    "start_sasl_broker",
    "stop_sasl_broker",
]
