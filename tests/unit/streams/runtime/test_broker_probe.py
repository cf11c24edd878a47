"""``probe_broker``: the time its error states is the time it took, however many silent brokers it asks."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from schemas.errors import BrokerUnavailableError
from streams.runtime.broker_probe import probe_broker
from streams.runtime.settings import Settings


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections and never answers (a hung broker, a port-forward to nothing)."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.1)
    stop = threading.Event()
    held: list[socket.socket] = []

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            held.append(conn)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    thread.join(5)
    for conn in held:
        conn.close()
    listener.close()


def test_silent_brokers_fail_the_probe_within_the_time_it_states(silent_port: int) -> None:
    """Three bootstrap servers that accept and never answer fail within about the stated 1 s, not 1 s each
    for the access check plus 1 s for the admin client (4 s, or 21 s for the default 5 s)."""
    settings = Settings(_env_file=None, broker=";".join([f"kafka://127.0.0.1:{silent_port}"] * 3))  # type: ignore[call-arg]
    began = time.monotonic()
    with pytest.raises(BrokerUnavailableError) as raised:
        probe_broker(settings, timeout_s=1.0)
    took = time.monotonic() - began
    assert str(raised.value).startswith(f"cannot reach Kafka at 127.0.0.1:{silent_port}, ")
    assert "within 1 s (no answer); start the broker" in str(raised.value)
    assert took < 2.5, f"the probe took {took:.1f} s"


def test_a_host_name_that_does_not_resolve_is_named_at_once() -> None:
    """A typo in a managed Kafka's host name (``*.invalid`` never resolves) is one line saying the name does
    not resolve and which setting holds it, at once; it took the whole 5 s and said "(KafkaTimeoutError);
    start the broker (`make kafka`)", which is no help against a cloud broker."""
    settings = Settings(_env_file=None, broker="kafka://pkc-typo.eu-west-1.aws.invalid:9092")  # type: ignore[call-arg]
    began = time.monotonic()
    with pytest.raises(BrokerUnavailableError) as raised:
        probe_broker(settings, timeout_s=5.0)
    took = time.monotonic() - began
    message = str(raised.value)
    assert message.startswith("cannot resolve the Kafka host name of pkc-typo.eu-west-1.aws.invalid:9092 ("), message
    assert message.endswith("); check the host names in PREEMPT_BROKER (and this machine's DNS)"), message
    assert "make kafka" not in message
    assert took < 4, f"the probe took {took:.1f} s"


def test_a_refused_connection_is_named_in_the_probes_line(unused_port: int) -> None:
    """A port where nothing listens is reported with the connection's own error, not as a KafkaTimeoutError."""
    settings = Settings(_env_file=None, broker=f"kafka://127.0.0.1:{unused_port}")  # type: ignore[call-arg]
    with pytest.raises(BrokerUnavailableError) as raised:
        probe_broker(settings, timeout_s=1.0)
    message = str(raised.value)
    assert message.startswith(f"cannot reach Kafka at 127.0.0.1:{unused_port} within 1 s (127.0.0.1:{unused_port}: "), (
        message
    )
    assert "connection refused: nothing listens there" in message
    assert "Errno" not in message
    assert "Connect call failed" not in message
    assert "KafkaTimeoutError" not in message


@pytest.fixture
def unused_port() -> int:
    """A local port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
