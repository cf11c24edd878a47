"""Settings helpers that other modules build on."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from streams.runtime.settings import Settings


def test_app_data_dir_stays_short_and_distinct_for_many_brokers(tmp_path: Path) -> None:
    """A long bootstrap list gives a folder name of bounded length that still differs per broker set."""
    many = ";".join(f"kafka://broker-{i}.kafka.internal.example.com:9093" for i in range(12))
    one = Settings(data_dir=tmp_path, broker=many).app_data_dir("preempt-rules")
    other = Settings(data_dir=tmp_path, broker=many.replace("broker-11", "broker-12")).app_data_dir("preempt-rules")
    assert len(one.name) <= 120
    assert one.parent == tmp_path
    assert one != other


def test_log_level_is_case_insensitive_and_a_typo_is_refused() -> None:
    """PREEMPT_LOG_LEVEL takes a level in any case; a name that is not a level is an error, not INFO."""
    assert Settings(log_level=" debug ").log_level == "DEBUG"
    assert Settings(log_level="Warning").log_level == "WARNING"
    assert Settings(log_level="warn").log_level == "WARNING"
    with pytest.raises(ValidationError, match="log_level"):
        Settings(log_level="verbose")
