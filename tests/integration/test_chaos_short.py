"""The short version of `make chaos` in `make test`: delivery faults, injection, ingest abuse and the secrets scan."""

from __future__ import annotations

import sys
from pathlib import Path

from tests.chaos.run import print_table, run


def test_chaos_delivery_faults_ingest_abuse_and_secrets_scan(kafka_bootstrap: str, tmp_path: Path) -> None:
    """Slack 429 → 503 → recovery, permanent errors, SMTP 421/451, hostile alert text (real notifiers) and ingest
    abuse (a real `preempt ingest`), at quick loads, all pass their criteria, and no secret appears in any log line
    or dead letter."""
    rows = run({4, 5, 6, 8, 9, 10}, quick=True, bootstrap=kafka_bootstrap, seed=7, workdir=tmp_path)
    print_table(rows, sys.stderr)
    assert [r.scenario.split()[0] for r in rows] == ["4", "5", "6", "8", "9", "10"]
    failed = {r.scenario: r.notes for r in rows if r.result != "PASS"}
    assert failed == {}
