"""Every PREEMPT_* variable the deploy files and the docs set is one the code reads."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from streams.cli.settings_errors import env_name
from streams.runtime.settings import Settings

REPO = Path(__file__).resolve().parents[3]
# Not settings, on purpose: a shell variable of the docs' curl examples, knobs of test runs, and the
# README's example of a near-miss name (which the commands point out with a note).
NOT_SETTINGS = {
    "PREEMPT_KEY",
    "PREEMPT_E2E_METRICS_OUT",
    "PREEMPT_STRESS_CYCLES",
    "PREEMPT_STRESS_MAX_KILL_AFTER",
    "PREEMPT_BROKERS",
    "PREEMPT_CHAOS_CLUSTER_PORT",
    "PREEMPT_CHAOS_WEB_PORT",
    "PREEMPT_UPGRADE_FROM",
    "PREEMPT_UPGRADE_STOP",
}
KNOWN = {env_name(field) for field in Settings.model_fields} | NOT_SETTINGS
FILES = sorted(
    [
        *(REPO / "deploy").rglob("*.yaml"),
        *(REPO / "deploy").rglob("*.yml"),
        REPO / "deploy" / "Dockerfile",
        REPO / "deploy" / "demo.sh",
        REPO / "README.md",
        *(REPO / "docs").glob("*.md"),
    ]
)


@pytest.mark.parametrize("path", FILES, ids=[str(p.relative_to(REPO)) for p in FILES])
def test_every_preempt_variable_named_is_a_setting(path: Path) -> None:
    """A misspelt variable in a manifest, the compose file or the docs would be ignored silently
    (settings ignore unknown variables): each PREEMPT_* name there is a field of Settings."""
    names = set(re.findall(r"\bPREEMPT_[A-Z0-9_]*[A-Z0-9]\b", path.read_text()))
    assert names - KNOWN == set()
