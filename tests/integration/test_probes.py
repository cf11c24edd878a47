"""/healthz and /readyz on real rules workers: a worker becomes ready once the group assigned it
partitions and its tables recovered, and after a second worker joins, both are ready again and
split the source partitions between them (changelog partitions are not counted)."""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest

from streams.runtime.settings import Settings
from streams.runtime.testing import free_port, listening_addresses
from streams.runtime.topics import ensure_topics
from tests.integration.conftest import ManagedProcess


def _get(port: int, path: str) -> tuple[int, dict[str, Any] | None]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return 0, None


def _wait_ready(proc: ManagedProcess, port: int, timeout_s: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    last: tuple[int, dict[str, Any] | None] = (0, None)
    while time.monotonic() < deadline:
        last = _get(port, "/readyz")
        if last[0] == 200 and last[1] is not None:
            return last[1]
        if proc.proc.poll() is not None:
            pytest.fail(f"worker exited:\n{proc.log_text()[-3000:]}")
        if last[0] not in (0, 503):
            pytest.fail(f"/readyz answered {last}")
        time.sleep(0.3)
    pytest.fail(f"/readyz not 200 within {timeout_s}s (last {last}):\n{proc.log_text()[-3000:]}")


def _partitions(body: dict[str, Any]) -> int:
    match = re.match(r"(\d+) partitions assigned", body["detail"])
    assert match is not None, body
    return int(match.group(1))


@pytest.mark.parametrize("store", ["memory://", "rocksdb://"])
def test_workers_are_ready_after_assignment_and_after_a_rebalance(
    store: str, settings_factory: Callable[..., Settings], process_factory: Callable[..., ManagedProcess]
) -> None:
    """One worker holds all 4 event partitions; when a second joins, both are ready and hold 4 together —
    also on RocksDB with one PREEMPT_DATA_DIR for both, as two workers on one machine run by default."""
    first = settings_factory(worker_web_port=free_port(), store=store)
    ensure_topics(first)
    worker_a = process_factory(["preempt", "worker"], first, name="worker-a")
    alone = _wait_ready(worker_a, first.worker_web_port)
    assert alone["status"] == "ready"
    assert _partitions(alone) == first.topic_partitions
    assert _get(first.worker_web_port, "/healthz") == (200, {"status": "alive", "app": f"{first.topic_prefix}-rules"})
    assert listening_addresses(first.worker_web_port) == {"127.0.0.1"}  # PREEMPT_WEB_HOST, not every interface

    second = first.model_copy(update={"worker_web_port": free_port()})
    worker_b = process_factory(["preempt", "worker"], second, name="worker-b")
    deadline = time.monotonic() + 120
    split: tuple[int, int] = (0, 0)
    while time.monotonic() < deadline:
        b = _wait_ready(worker_b, second.worker_web_port)
        a = _wait_ready(worker_a, first.worker_web_port)
        split = (_partitions(a), _partitions(b))
        if sum(split) == first.topic_partitions and min(split) > 0:
            break
        time.sleep(0.5)
    assert sum(split) == first.topic_partitions
    assert min(split) > 0
