"""Scenario 10: every log line and dead letter the run produced, searched for secrets.

The run's secrets are fresh random values (Slack bot token, signing secret, SMTP password, the secret
path of a webhook URL, the SASL password, the ingest API key and signing secret), so finding one
anywhere is a leak, not a coincidence. Also looked for: anything shaped like a Slack token or a real
Slack webhook URL.
"""

from __future__ import annotations

import re

from tests.chaos.harness import Context, Row

SHAPES = {
    "slack token shape": re.compile(rb"xox[abposr]-[A-Za-z0-9-]{10,}"),
    "slack webhook shape": re.compile(rb"hooks\.slack\.com/services/[A-Za-z0-9/]+"),
}


def run_secrets_scan(ctx: Context) -> Row:
    """Scenario 10: 0 tokens, webhook URLs, passwords or signing secrets in logs and dead letters."""
    row = Row("10 secrets in logs and dead letters")
    blobs = [(path.name, path.read_bytes()) for path in sorted((ctx.workdir / "logs").glob("*.log"))]
    ctx.collect_dead_letters()
    letters = len(ctx.dead_letters)
    blobs.extend(ctx.dead_letters)
    lines = sum(blob.count(b"\n") + 1 for _, blob in blobs)
    row.load = f"{len(blobs)} files/records, {lines} lines, {letters} dead letters"
    row.faults = f"{len(ctx.secrets)} secrets in use: " + ", ".join(sorted(ctx.secrets))
    leaks: list[str] = []
    for where, blob in blobs:
        for name, value in ctx.secrets.items():
            if value and value.encode() in blob:
                leaks.append(f"{name} in {where}")
        for name, shape in SHAPES.items():
            if shape.search(blob):
                leaks.append(f"{name} in {where}")
    row.expected, row.emitted, row.delivered, row.lost, row.duplicated = "—", "—", "—", "—", "—"
    row.check(bool(blobs) and letters > 0, "there were logs and dead letters to scan")
    row.check(not leaks, "0 secrets found")
    row.notes.extend(leaks[:10])
    return row.finish()
