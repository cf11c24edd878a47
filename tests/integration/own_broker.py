"""A PLAINTEXT broker of a test's own (``deploy/kafka/kafka.sh`` in a temporary directory, ports 194xx),
which the test may SIGKILL and start again: the broker going away under a running process.
The ``own_broker`` fixture (tests/integration/conftest.py) starts one and stops it at teardown."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

KAFKA_SCRIPT = Path(__file__).resolve().parents[2] / "deploy" / "kafka" / "kafka.sh"
PORT_RANGE = range(19440, 19500, 2)  # broker port, controller port = broker port + 1


def port_free(port: int) -> bool:
    """Whether nothing listens on ``port`` of 127.0.0.1 (a broker of a test's own may take it)."""
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


class OwnBroker:
    """A PLAINTEXT broker of this test's own, which the test may kill and start again."""

    def __init__(self, home: Path) -> None:
        port = next((p for p in PORT_RANGE if port_free(p) and port_free(p + 1)), None)
        if port is None:
            pytest.fail("no free port pair in 19440-19499 for the test's own broker", pytrace=False)
        self.port = port
        self.home = home
        self.env = {
            **os.environ,
            "KAFKA_HOME_DIR": str(home),
            "KAFKA_PORT": str(port),
            "KAFKA_CONTROLLER_PORT": str(port + 1),
            "KAFKA_HEAP_OPTS": "-Xms256m -Xmx512m",
            "KAFKA_START_TIMEOUT": "180",
        }

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        result = subprocess.run(
            [str(KAFKA_SCRIPT), "start"], env=self.env, check=False, capture_output=True, text=True, timeout=600
        )
        if result.returncode != 0:
            pytest.fail(f"the test's broker did not start:\n{result.stderr[-3000:]}", pytrace=False)

    def kill(self) -> None:
        """SIGKILL the broker (only this one: its own pid file)."""
        pid = int((self.home / "kafka.pid").read_text().strip())
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and _alive(pid):
            time.sleep(0.1)

    def stop(self) -> None:
        subprocess.run([str(KAFKA_SCRIPT), "stop"], env=self.env, check=False, capture_output=True, timeout=120)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/status")
    return not (status.exists() and "\nState:\tZ" in status.read_text())
