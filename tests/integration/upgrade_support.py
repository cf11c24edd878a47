"""In-place upgrades: an older release's worker and notifier, run from this repository's history, hand their
topics, committed offsets, changelogs and RocksDB folders to the current code (or the other way round).

The old release is unpacked into a temporary folder — the pinned one from its ``git archive`` kept in
``fixtures/`` (a shallow clone has no history to take it from), another from this clone's history — and run
with the same interpreter and virtualenv, ``PYTHONPATH`` pointing at it.
"""

from __future__ import annotations

import json
import lzma
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from alerts.testing.slack_server import FakeSlack
from tests.integration.conftest import REPO, ManagedProcess

# One Slack channel, one message per alert (group_by alert_id): each message names the one alert it carries.
ROUTES = """
receivers:
  - name: csm
    slack_configs:
      - channel: C-UPGRADE
route:
  receiver: csm
  group_by: [alert_id]
  group_wait: 0s
"""


FIXTURES = Path(__file__).parent / "fixtures"
RELEASE_PATHS = ("streams", "rules", "alerts", "schemas", "pyproject.toml")
"""What a release needs to run its worker and notifier: its packages (the default pack in ``rules/``) and the
``preempt`` entry point's name in pyproject.toml."""


def _in_clone(rev: str) -> bool:
    found = subprocess.run(
        ["git", "-C", str(REPO), "cat-file", "-e", f"{rev}^{{commit}}"], capture_output=True, check=False
    )
    return found.returncode == 0


def _archive(rev: str) -> bytes:
    return subprocess.run(
        ["git", "-C", str(REPO), "archive", "--format=tar", rev, *RELEASE_PATHS], capture_output=True, check=True
    ).stdout


def checkout(rev: str, into: Path) -> Path:
    """The tree of ``rev`` (its :data:`RELEASE_PATHS`), written under ``into``.

    A pinned release comes from ``fixtures/release-<rev[:8]>.tar.xz`` (``git archive --format=tar <rev>
    streams rules alerts schemas pyproject.toml | xz -9``), so the test runs from a shallow clone too; where
    the clone has the commit, the fixture is checked against it byte for byte. Another release comes from the
    clone's history; a clone without it fails with one line saying so."""
    into.mkdir(parents=True, exist_ok=True)
    fixture = FIXTURES / f"release-{rev[:8]}.tar.xz"
    if fixture.exists():
        archive = lzma.decompress(fixture.read_bytes())
        if _in_clone(rev):
            assert archive == _archive(rev), f"{fixture.name} is not `git archive` of {rev}: make it again"
    elif _in_clone(rev):
        archive = _archive(rev)
    else:
        pytest.fail(
            f"commit {rev} is not in this clone (shallow?) and has no fixture: the upgrade test runs that "
            "release; run `git fetch --unshallow` or clone without --depth",
            pytrace=False,
        )
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, capture_output=True, check=True)
    return into


def preempt_command(tree: Path) -> list[str]:
    """The ``preempt`` command of the release in ``tree``, run with this interpreter: its own entry point (the
    installed script names the current one, which moved since ``streams.cli:main``)."""
    found = re.search(r'^preempt = "([\w.]+):(\w+)"', (tree / "pyproject.toml").read_text(), re.MULTILINE)
    assert found, f"no preempt script in {tree / 'pyproject.toml'}"
    module, function = found.groups()
    code = f"import sys; from {module} import {function} as main; sys.argv[0] = 'preempt'; sys.exit(main())"
    return [sys.executable, "-P", "-c", code]  # -P: not the working directory (this checkout) first on the path


def code_env(tree: Path) -> dict[str, str]:
    """Environment that makes a child process import the code of ``tree`` (before the editable install)."""
    return {"PYTHONPATH": str(tree)}


def current_env() -> dict[str, str]:
    """Environment for the current code: this checkout first on the path."""
    return {"PYTHONPATH": str(REPO)}


def http_status(port: int, path: str) -> int:
    """Status of GET 127.0.0.1:``port````path`` (0 when nothing answers)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=3) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except OSError:
        return 0


def seconds_to_ready(port: int, proc: ManagedProcess, started: float, timeout_s: float = 90.0) -> float:
    """Seconds from ``started`` until /readyz on ``port`` answers 200; fails if the process exits first."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if http_status(port, "/readyz") == 200:
            return time.monotonic() - started
        if proc.proc.poll() is not None:
            pytest.fail(f"exited ({proc.proc.returncode}) before ready:\n{proc.log_text()[-4000:]}")
        time.sleep(0.2)
    pytest.fail(f"/readyz not 200 within {timeout_s}s:\n{proc.log_text()[-4000:]}")


@dataclass
class SlackCount:
    """Slack messages per alert id (each message carries one alert: the routes group by alert_id)."""

    per_alert: Counter[str] = field(default_factory=Counter)

    @classmethod
    def of(cls, slack: FakeSlack, ids: set[str]) -> SlackCount:
        """Count the delivered messages of ``slack`` by the alert id of ``ids`` each one names."""
        count = cls()
        pattern = re.compile(r"[0-9a-f]{16,64}")
        for request in slack.delivered():
            named = set(pattern.findall(json.dumps(request.body))) & ids
            assert len(named) <= 1, f"a message naming {len(named)} alerts: {request.body}"
            # releases before the buttons' block ids named no alert id: counted by their text
            count.per_alert.update(named or {f"text:{request.body.get('text')}"})
        return count

    @property
    def duplicates(self) -> int:
        """Messages beyond the first of their alert."""
        return sum(n - 1 for n in self.per_alert.values())


def log_problems(*procs: ManagedProcess) -> list[str]:
    """Lines of the processes' output that show a traceback, an ERROR/CRITICAL record or an ``Error:`` line."""
    found: list[str] = []
    for proc in procs:
        for line in proc.log_text().splitlines():
            if "Traceback" in line or line.startswith("Error:"):
                found.append(f"{proc.log_path.name}: {line}")
                continue
            start = line.find("{")
            if start < 0:
                continue
            try:
                record = json.loads(line[start:])
            except ValueError:
                continue
            if isinstance(record, dict) and str(record.get("level", "")).lower() in ("error", "critical"):
                found.append(f"{proc.log_path.name}: {line[:600]}")
    return found


def env_with(base: dict[str, str], **extra: str) -> dict[str, str]:
    """``base`` and ``extra``, for a process factory's keyword environment."""
    merged = dict(base)
    merged.update(extra)
    return merged
