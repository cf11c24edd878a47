"""Helpers for tests and benchmarks that start Preempt processes (shared by tests/ and bench/).

* ``settings_env`` / ``free_port`` — settings for a child process, a port for its web server.
* ``scrape`` / ``metric_sum`` — read a process's ``/metrics`` page and sum a metric over its labels.
* ``listening_addresses`` — the interfaces a process's web server listens on.
* ``FakeConsumer`` / ``NotStartedConsumer`` / ``TP`` — the consumer surface ``ops_web`` reads, for unit
  tests of both apps' web surfaces.

Nothing in a running process imports this module.
"""

from __future__ import annotations

import json
import re
import socket
import urllib.request
from pathlib import Path
from typing import NamedTuple

from faust.exceptions import ConsumerNotStarted

from streams.runtime.faust_compat import stand_in_consumer_state
from streams.runtime.settings import Settings


def settings_env(settings: Settings) -> dict[str, str]:
    """``settings`` as PREEMPT_* environment variables (secrets revealed, for child processes only)."""
    env: dict[str, str] = {}
    for name, value in settings.model_dump().items():
        if value is None:
            continue
        if hasattr(value, "get_secret_value"):
            value = value.get_secret_value()
        if isinstance(value, (tuple, list)):
            value = json.dumps([v.get_secret_value() if hasattr(v, "get_secret_value") else v for v in value])
        elif isinstance(value, bool):
            value = "true" if value else "false"
        env[f"PREEMPT_{name.upper()}"] = str(value)
    return env


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def listening_addresses(port: int) -> set[str]:
    """The IPv4 addresses a TCP socket listens on at ``port`` on this host (from ``/proc/net/tcp``)."""
    found: set[str] = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        address, _, hex_port = fields[1].partition(":")
        if fields[3] == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
            found.add(socket.inet_ntoa(bytes.fromhex(address)[::-1]))
    return found


def scrape(port: int, timeout_s: float = 5.0) -> dict[str, float]:
    """The ``/metrics`` page on 127.0.0.1:``port`` as ``{'name{labels}': value}`` (samples only).

    Raises ``OSError`` when nothing answers.
    """
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=timeout_s) as resp:
        text = resp.read().decode()
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


def metric_sum(samples: dict[str, float], prefix: str) -> float:
    """Sum of every sample of the metric ``prefix`` (all label values)."""
    pattern = re.compile(re.escape(prefix) + r"(\{.*\})?$")
    return sum(v for k, v in samples.items() if pattern.match(k))


class TP(NamedTuple):
    """A topic partition, as Faust's consumer hands them out."""

    topic: str
    partition: int


class FakeConsumer:
    """The consumer surface the ops web reads: assignment, end offsets, committed offsets."""

    def __init__(self, assigned: set[TP], ends: dict[TP, int], committed: dict[TP, int | None]) -> None:
        self.assigned = assigned
        self.ends = ends
        stand_in_consumer_state(self, committed=committed)
        self.randomly_assigned_topics = {"app-__assignor-__leader"}

    def assignment(self) -> set[TP]:
        return set(self.assigned)

    async def highwaters(self, *tps: TP) -> dict[TP, int]:
        return {tp: self.ends[tp] for tp in tps}

    async def earliest_offsets(self, *tps: TP) -> dict[TP, int]:
        return dict.fromkeys(tps, 0)


class NotStartedConsumer:
    """A consumer whose thread has not started yet."""

    def assignment(self) -> set[TP]:
        raise ConsumerNotStarted("Consumer thread not yet started")
