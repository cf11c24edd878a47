"""docs/operations.md lists every metric streams/runtime/metrics.py declares (the on-call's reference)."""

from __future__ import annotations

import re
from pathlib import Path

from prometheus_client import Counter, Gauge, Histogram

from streams.runtime import metrics

REPO = Path(__file__).resolve().parents[3]


def test_every_declared_metric_has_a_row_in_the_operations_metrics_tables() -> None:
    """Each preempt_* metric of the one metrics module appears as a table row in docs/operations.md."""
    declared = {
        (m._name + "_total" if isinstance(m, Counter) else m._name)
        for m in vars(metrics).values()
        if isinstance(m, Counter | Gauge | Histogram)
    }
    rows = set(re.findall(r"^\| `(preempt_[a-z_]+)` \|", (REPO / "docs" / "operations.md").read_text(), re.MULTILINE))
    assert declared
    assert declared - rows == set()
