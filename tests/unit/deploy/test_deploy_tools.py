"""The deploy tests' tool lookup runs the install script when a tool is missing and fails (never
skips) when the tool is still missing afterwards."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.integration import deploy_tools


@pytest.fixture
def install_script_factory(tmp_path: Path) -> Callable[[], Path]:
    """Factory: a stand-in install script that records that it ran and installs nothing."""

    def factory() -> Path:
        marker = tmp_path / "ran"
        script = tmp_path / "ensure.sh"
        script.write_text(f"#!/bin/sh\ntouch {marker}\nexit 0\n")
        script.chmod(0o755)
        return script

    return factory


def test_missing_prometheus_runs_the_setup_then_fails(
    monkeypatch: pytest.MonkeyPatch, install_script_factory: Callable[[], Path], tmp_path: Path
) -> None:
    """No promtool on PATH: ensure-prometheus runs, and the test fails with its report."""
    script = install_script_factory()
    monkeypatch.setattr(deploy_tools, "REPO", tmp_path)
    monkeypatch.setattr(deploy_tools, "ENSURE_PROMETHEUS", script)
    monkeypatch.setattr(deploy_tools.shutil, "which", lambda _name: None)
    with pytest.raises(pytest.fail.Exception, match="missing after the setup tried to install them"):
        deploy_tools.require_prometheus_tools()
    assert (tmp_path / "ran").exists()


def test_missing_compose_runs_the_setup_then_fails(
    monkeypatch: pytest.MonkeyPatch, install_script_factory: Callable[[], Path], tmp_path: Path
) -> None:
    """No working docker compose: ensure-compose runs, and the test fails with its report."""
    script = install_script_factory()
    monkeypatch.setattr(deploy_tools, "REPO", tmp_path)
    monkeypatch.setattr(deploy_tools, "ENSURE_COMPOSE", script)
    monkeypatch.setattr(deploy_tools, "_compose_works", lambda _command: False)
    with pytest.raises(pytest.fail.Exception, match="docker compose missing"):
        deploy_tools.require_compose()
    assert (tmp_path / "ran").exists()
