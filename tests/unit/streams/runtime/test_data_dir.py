"""The RocksDB folder a process prepares at start, and what it says about older versions' folders."""

from __future__ import annotations

from pathlib import Path

from structlog.testing import capture_logs

from streams.runtime.data_dir import UNREAD_LAYOUT, prepared_data_dir
from streams.runtime.settings import Settings


def _settings(data_dir: Path) -> Settings:
    return Settings(data_dir=data_dir, broker="kafka://127.0.0.1:9092")


def test_the_unread_folder_of_a_version_before_the_per_app_folders_is_named_at_each_start(tmp_path: Path) -> None:
    """PREEMPT_DATA_DIR/v1 (every app's tables, before 2026-11-30) is read by no version: each start logs one
    WARNING naming it, so its files do not fill the volume unnoticed; the process's own folder is made."""
    (tmp_path / "v1" / "tables" / "account-state-0.db").mkdir(parents=True)
    for _ in range(2):
        with capture_logs() as logs:
            folder = prepared_data_dir(_settings(tmp_path), "preempt-rules", 6066)
        assert folder == tmp_path / "preempt-rules@127.0.0.1_9092" / "port-6066"
        assert folder.parent.is_dir()
        assert [(e["log_level"], e["event"], e["folder"]) for e in logs] == [
            ("warning", UNREAD_LAYOUT, str(tmp_path / "v1"))
        ]


def test_a_data_dir_of_this_layout_starts_without_a_line(tmp_path: Path) -> None:
    """Nothing of an older layout: nothing is logged."""
    with capture_logs() as logs:
        prepared_data_dir(_settings(tmp_path), "preempt-notify", 6067)
    assert logs == []


def test_the_per_app_folder_of_the_version_before_the_ports_is_moved_and_said(tmp_path: Path) -> None:
    """<app>@<brokers>/v1 moves into the first process's port folder, logged at INFO with both paths."""
    (tmp_path / "preempt-rules@127.0.0.1_9092" / "v1" / "tables").mkdir(parents=True)
    with capture_logs() as logs:
        folder = prepared_data_dir(_settings(tmp_path), "preempt-rules", 6066)
    assert (folder / "v1" / "tables").is_dir()
    assert [(e["log_level"], e["event"]) for e in logs] == [
        ("info", "rocksdb files of the previous folder layout moved")
    ]
