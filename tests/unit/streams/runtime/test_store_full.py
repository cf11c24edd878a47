"""A full disk under the table store: recognised from any of its forms, one CRITICAL line, exit 1."""

from __future__ import annotations

import contextlib
import errno
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from streams.runtime.store_full import EXIT_STATUS, StopOnFullDisk, expose_data_dir_space, is_disk_full

ROCKSDB_FULL = "IO error: No space left on device: While appending to file: /data/t/state-0.db/000004.log"


def test_a_full_disk_is_recognised_from_errno_rocksdb_text_quota_and_cause() -> None:
    """ENOSPC and EDQUOT as errno or in RocksDB's message, also as the cause of another error; nothing else."""
    assert is_disk_full(OSError(errno.ENOSPC, "No space left on device"))
    assert is_disk_full(OSError(errno.EDQUOT, "Disk quota exceeded"))
    assert is_disk_full(Exception(ROCKSDB_FULL))
    assert is_disk_full(Exception("IO error: Disk quota exceeded: While appending to file"))
    outer = RuntimeError("table write failed")
    outer.__cause__ = Exception(ROCKSDB_FULL)
    assert is_disk_full(outer)
    assert not is_disk_full(OSError(errno.EIO, "Input/output error"))
    assert not is_disk_full(Exception("IO error: lock hold by current process"))
    assert not is_disk_full(ValueError("bad event"))


def test_the_stop_logs_one_critical_line_with_the_data_dir_and_remedy_then_exits_1() -> None:
    """The first full-disk failure logs one CRITICAL line and exits 1; later ones (other stores failing on
    the way down) add nothing; another failure is left to its caller."""
    exits: list[int] = []
    stop = StopOnFullDisk("rules worker", Path("/var/lib/preempt"), exit_process=exits.append)
    with capture_logs() as logs:
        stop(ValueError("not a disk"))
        assert exits == []
        stop(Exception(ROCKSDB_FULL))
        stop(OSError(errno.ENOSPC, "No space left on device"))
    assert exits == [EXIT_STATUS] == [1]
    assert len(logs) == 1
    line = logs[0]
    assert line["log_level"] == "critical"
    assert line["event"] == "state store disk full; stopping"
    assert line["data_dir"] == "/var/lib/preempt"
    assert line["error"] == ROCKSDB_FULL
    assert "PREEMPT_DATA_DIR" in line["remedy"]
    assert "nothing is lost" in line["remedy"]


def test_the_stop_exits_also_when_its_log_line_cannot_be_written(monkeypatch: pytest.MonkeyPatch) -> None:
    """The log stream on the full disk too (stderr redirected to a file on it; /dev/full here): the CRITICAL
    line cannot be written, and the process still exits 1 (before, the write's OSError came out of the handler
    and the exit was never reached, nor on the next failure)."""
    import structlog

    import streams.runtime.store_full as store_full

    full = open("/dev/full", "w")  # noqa: SIM115 - closed below; its close fails too (the line still buffered)
    monkeypatch.setattr(store_full, "log", structlog.wrap_logger(structlog.PrintLogger(file=full)))
    exits: list[int] = []
    stop = StopOnFullDisk("notifier", Path("/var/lib/preempt"), exit_process=exits.append)
    try:
        stop(Exception(ROCKSDB_FULL))
        stop(Exception(ROCKSDB_FULL))
    finally:
        with contextlib.suppress(OSError):
            full.close()
    assert exits == [EXIT_STATUS]


def test_the_data_dir_space_gauges_read_the_volume_at_each_scrape(tmp_path: Path) -> None:
    """Free and total bytes of the data dir's volume, as statvfs gives them; NaN once the folder is gone."""
    import math
    import os

    from prometheus_client import REGISTRY

    folder = tmp_path / "data"
    folder.mkdir()
    expose_data_dir_space("t-space-rules", folder)
    stat = os.statvfs(folder)
    free = REGISTRY.get_sample_value("preempt_data_dir_free_bytes", {"app": "t-space-rules"})
    size = REGISTRY.get_sample_value("preempt_data_dir_size_bytes", {"app": "t-space-rules"})
    assert size == stat.f_blocks * stat.f_frsize > 0
    assert free is not None
    assert abs(free - stat.f_bavail * stat.f_frsize) < 64 * 1024 * 1024  # other writers on the volume meanwhile
    folder.rmdir()
    free = REGISTRY.get_sample_value("preempt_data_dir_free_bytes", {"app": "t-space-rules"})
    assert free is not None
    assert math.isnan(free)
