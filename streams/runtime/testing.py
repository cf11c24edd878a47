"""Helpers for tests and benchmarks that start Preempt processes (shared by tests/ and bench/)."""

from __future__ import annotations

import json
import socket

from streams.runtime.settings import Settings


def settings_env(settings: Settings) -> dict[str, str]:
    """``settings`` as PREEMPT_* environment variables (secrets revealed, for child processes only)."""
    env: dict[str, str] = {}
    for name, value in settings.model_dump().items():
        if value is None:
            continue
        if hasattr(value, "get_secret_value"):
            value = value.get_secret_value()
        if isinstance(value, (tuple, list)):
            value = json.dumps([v.get_secret_value() if hasattr(v, "get_secret_value") else v for v in value])
        elif isinstance(value, bool):
            value = "true" if value else "false"
        env[f"PREEMPT_{name.upper()}"] = str(value)
    return env


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
