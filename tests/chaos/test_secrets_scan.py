"""The chaos secrets scan finds a planted secret, so its PASS means something."""

from __future__ import annotations

from pathlib import Path

from tests.chaos.harness import Context
from tests.chaos.secrets_scan import run_secrets_scan


def _context(tmp_path: Path, log: str, letter: bytes) -> Context:
    ctx = Context.create(tmp_path, "127.0.0.1:1", seed=1, quick=True)
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "notifier-0.log").write_text(log)
    ctx.dead_letters.append(("x alerts.dlq", letter))
    return ctx


def test_clean_logs_and_dead_letters_pass(tmp_path: Path) -> None:
    """Logs and dead letters without any of the run's secrets give a PASS row."""
    row = run_secrets_scan(_context(tmp_path, '{"event": "alert delivered"}\n', b'{"alert_id": "a"} error=404'))
    assert row.result == "PASS", row.notes


def test_a_leaked_secret_or_token_shape_fails(tmp_path: Path) -> None:
    """The SMTP password in a log line, or a Slack-token-shaped string in a dead letter, fails the row."""
    ctx = _context(tmp_path, "", b"")
    (tmp_path / "logs" / "notifier-0.log").write_text(f"login failed for {ctx.secrets['smtp password']}\n")
    ctx.dead_letters.append(("y alerts.dlq", b"error=invalid_auth xoxp-1234567890-abcdef"))
    row = run_secrets_scan(ctx)
    assert row.result == "FAIL"
    assert "not met: 0 secrets found" in row.notes
    assert "smtp password in notifier-0.log" in row.notes
    assert "slack token shape in y alerts.dlq" in row.notes
