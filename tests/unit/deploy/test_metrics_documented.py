"""docs/operations.md's metric tables and what a process's /metrics page serves name the same metrics."""

from __future__ import annotations

import fnmatch
import re
from pathlib import Path

from faust.sensors.prometheus import FaustMetrics
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram

from streams.runtime import metrics

REPO = Path(__file__).resolve().parents[3]
TEXT = (REPO / "docs" / "operations.md").read_text()
# The first cell of each row of the "## Metrics" section's tables: one or more `names`, `prefix_*` for a family.
SECTION = TEXT.split("\n## Metrics\n", 1)[1].split("\n## ", 1)[0]
ROWS = re.findall(r"^\| (`[a-z_*]+`(?:, `[a-z_*]+`)*) \|(.*)$", SECTION, re.MULTILINE)
DOCUMENTED = {name for cell, _ in ROWS for name in re.findall(r"`([a-z_*]+)`", cell)}


def _exposed(registry: CollectorRegistry) -> set[str]:
    """The metric names a /metrics page of ``registry`` shows (counters with their ``_total``)."""
    return {m.name + "_total" if m.type == "counter" else m.name for m in registry.collect()}


def _faust_sensor() -> set[str]:
    """The names of Faust's own sensor, as the rules worker registers it."""
    registry = CollectorRegistry()
    FaustMetrics.create(registry, "preempt_rules")
    return _exposed(registry)


def _is_documented(name: str) -> bool:
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in DOCUMENTED)


def test_every_declared_metric_has_a_row_in_the_operations_metrics_tables() -> None:
    """Each preempt_* metric of the one metrics module appears as a table row in docs/operations.md."""
    declared = {
        (m._name + "_total" if isinstance(m, Counter) else m._name)
        for m in vars(metrics).values()
        if isinstance(m, Counter | Gauge | Histogram)
    }
    rows = set(re.findall(r"^\| `(preempt_[a-z_]+)` \|", TEXT, re.MULTILINE))
    assert declared
    assert declared - rows == set()


def test_every_metric_a_page_serves_is_documented() -> None:
    """Everything /metrics serves — Preempt's metrics, the Python client's process_* and python_* collectors,
    Faust's sensor — is in a row of the tables (process_* and python_* were served and named nowhere)."""
    served = _exposed(REGISTRY) | _faust_sensor()
    assert {"preempt_events_total", "process_resident_memory_bytes", "preempt_rules_messages_received_total"} <= served
    assert sorted(name for name in served if not _is_documented(name)) == []


def test_every_documented_metric_is_served() -> None:
    """Each row names a metric a page serves, and each `prefix_*` row matches one (a renamed or removed metric
    left behind in the docs sends the on-call after a series that does not exist)."""
    served = (
        _exposed(REGISTRY)
        | _faust_sensor()
        | {n.replace("preempt_rules_", "preempt_notify_", 1) for n in _faust_sensor()}
    )
    assert sorted(p for p in DOCUMENTED if not fnmatch.filter(served, p)) == []


def test_the_faust_sensor_metrics_the_docs_name_exist() -> None:
    """The Faust sensor row's examples (`messages_received_total`, …) are names the sensor registers."""
    [meaning] = [meaning for cell, meaning in ROWS if "`preempt_rules_*`" in cell]
    named = set(re.findall(r"`([a-z_]+)`", meaning)) - {"topic", "partition", "stream", "table"}
    assert named
    assert sorted(n for n in named if f"preempt_rules_{n}" not in _faust_sensor()) == []
