"""Find the external tools the deploy tests run (promtool, prometheus, docker compose), installing
them with the project's own scripts when they are missing. A tool still missing after that fails
the test: these checks are part of `make test` and are never skipped."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ENSURE_PROMETHEUS = REPO / "deploy" / "prometheus" / "ensure-prometheus.sh"
ENSURE_COMPOSE = REPO / "deploy" / "ensure-compose.sh"
ENSURE_CHROMIUM = REPO / "deploy" / "ensure-chromium.sh"
COMPOSE_PLUGIN = Path(os.environ.get("DOCKER_CONFIG", Path.home() / ".docker")) / "cli-plugins" / "docker-compose"


def _run_setup(script: Path) -> str:
    result = subprocess.run([str(script)], capture_output=True, text=True, check=False, timeout=600)
    return f"{script.relative_to(REPO)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"


def require_prometheus_tools() -> tuple[str, str]:
    """Paths of ``prometheus`` and ``promtool``; runs ensure-prometheus.sh (apt) when either is missing."""
    report = ""
    if not (shutil.which("prometheus") and shutil.which("promtool")):
        report = _run_setup(ENSURE_PROMETHEUS)
    prometheus, promtool = shutil.which("prometheus"), shutil.which("promtool")
    if not (prometheus and promtool):
        pytest.fail(f"prometheus/promtool missing after the setup tried to install them. {report}", pytrace=False)
    return prometheus, promtool


def require_chromium() -> str:
    """Path of Debian's headless ``chromium``; runs ensure-chromium.sh (apt) when it is missing."""
    report = "" if shutil.which("chromium") else _run_setup(ENSURE_CHROMIUM)
    chromium = shutil.which("chromium")
    if not chromium:
        pytest.fail(f"chromium missing after the setup tried to install it. {report}", pytrace=False)
    return chromium


def _compose_works(command: list[str]) -> bool:
    try:
        result = subprocess.run([*command, "version"], capture_output=True, check=False, timeout=60)
    except (FileNotFoundError, PermissionError):
        return False
    return result.returncode == 0


def require_compose() -> list[str]:
    """The Docker Compose v2 command (``docker compose``, or the plugin binary run on its own)."""
    candidates = [["docker", "compose"], [str(COMPOSE_PLUGIN)]]
    report = ""
    if not any(_compose_works(c) for c in candidates):
        report = _run_setup(ENSURE_COMPOSE)
    for command in candidates:
        if _compose_works(command):
            return command
    pytest.fail(f"docker compose missing after the setup tried to install it. {report}", pytrace=False)
