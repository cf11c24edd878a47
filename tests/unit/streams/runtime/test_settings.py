"""Settings helpers that other modules build on."""

from __future__ import annotations

from pathlib import Path

from streams.runtime.settings import Settings


def test_app_data_dir_stays_short_and_distinct_for_many_brokers(tmp_path: Path) -> None:
    """A long bootstrap list gives a folder name of bounded length that still differs per broker set."""
    many = ";".join(f"kafka://broker-{i}.kafka.internal.example.com:9093" for i in range(12))
    one = Settings(data_dir=tmp_path, broker=many).app_data_dir("preempt-rules", 6066)
    moved = Settings(data_dir=tmp_path, broker=many.replace("broker-11", "broker-12"))
    other = moved.app_data_dir("preempt-rules", 6066)
    assert len(one.parent.name) <= 120
    assert one.parent.parent == tmp_path
    assert one != other


def test_two_processes_of_one_app_on_one_machine_get_their_own_data_dirs(tmp_path: Path) -> None:
    """Two workers with the same settings but their own web ports (two on one machine) never share a
    RocksDB folder (RocksDB locks a partition's database for one process); a restart finds its own."""
    settings = Settings(data_dir=tmp_path, broker="kafka://127.0.0.1:9092")
    first, second = settings.app_data_dir("preempt-rules", 6066), settings.app_data_dir("preempt-rules", 6166)
    assert first != second
    assert first.parent == second.parent == tmp_path / "preempt-rules@127.0.0.1_9092"
    assert first.name == "port-6066"
    assert settings.app_data_dir("preempt-rules", 6066) == first
