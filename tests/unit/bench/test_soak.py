"""``make soak``'s verdicts: the slope per hour past the warm-up against each bound, and the series a label per
account would make."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.soak import Resource, Sample, judge, slope, soak_settings, suspect_series, table
from streams.runtime.settings import Settings


def samples(values: list[float | None], every_s: float = 60.0, name: str = "worker.rss_mb") -> list[Sample]:
    """One sample a minute of ``name``."""
    return [Sample(i * every_s, {name: v}) for i, v in enumerate(values)]


def test_slope_is_the_least_squares_line() -> None:
    """A straight line's slope, whatever the noise around it cancels; flat and single points are 0."""
    assert slope([(0, 1), (1, 3), (2, 5)]) == pytest.approx(2.0)
    assert slope([(0, 1), (1, 2), (2, 1), (3, 2)]) == pytest.approx(0.2)
    assert slope([(0, 7)]) == 0.0


def test_growth_past_the_warmup_is_judged_per_hour() -> None:
    """What grows in the warm-up and stays flat after it passes; 1 MB a minute past it (60 MB/h) fails a
    40 MB/h bound."""
    rss = Resource("worker.rss_mb", 40.0, "/h")
    flat = judge([rss], samples([100, 150, 200, 200, 200, 200]), warmup_s=120, new_accounts_per_hour=0)[0]
    assert flat.ok
    assert flat.slope_per_hour == pytest.approx(0.0)
    assert (flat.start, flat.end) == (200, 200)
    leak = judge([rss], samples([100, 101, 102, 103, 104, 105]), warmup_s=120, new_accounts_per_hour=0)[0]
    assert not leak.ok
    assert leak.slope_per_hour == pytest.approx(60.0)
    assert "FAIL" in table([leak])
    assert "60.0" in table([leak])


def test_a_resource_per_new_account_is_judged_per_account() -> None:
    """A data dir growing 6,000 KB/h while 100 accounts arrive an hour is 60 KB per account."""
    data = Resource("worker.data_dir_kb", 64.0, "/acct")
    verdict = judge([data], samples([0, 100, 200, 300], name="worker.data_dir_kb"), 0, new_accounts_per_hour=100)[0]
    assert verdict.growth == pytest.approx(60.0)
    assert verdict.ok


def test_a_resource_that_stopped_answering_fails() -> None:
    """A process that died part-way (its readings None) is no flat line."""
    rss = Resource("worker.rss_mb", 40.0, "/h")
    assert not judge([rss], samples([100, 100, None, None]), warmup_s=0, new_accounts_per_hour=0)[0].ok


def test_series_of_partitions_are_bounded_the_others_suspect() -> None:
    """A series born with a topic or partition label is one of a bounded set; one with an account's id is not."""
    born = [
        'preempt_notify_topic_partition_offset_commited{partition="3",topic="p.alerts"}',
        'preempt_consumer_lag{app="preempt-rules",topic="p.events"}',
        'preempt_alerts_sent_total{account="soak-new-41"}',
    ]
    assert suspect_series(born) == ['preempt_alerts_sent_total{account="soak-new-41"}']


def test_no_new_accounts_is_refused_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    """The data dirs are judged per new account: without any, the verdict would divide by nothing (it judged
    the hour's growth against the per-account bound and failed); refused before anything starts."""
    from bench.soak import main

    assert main(["--new-accounts-per-minute", "0", "--minutes", "2", "--warmup-minutes", "1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "--new-accounts-per-minute (0) must be above 0" in err


def test_stores_bounded_by_design_are_full_before_the_warmup_ends(tmp_path: Path) -> None:
    """The worker's stores bounded by design fill within the soak's 5-minute warm-up, so that their filling is not
    judged as growth: at their defaults the dedup ids (a day of them, up to 5,000 an account: 83 minutes at an
    event a second) and the RocksDB write buffers (4 MiB, 36 databases) filled through a 20-minute run and read
    as 110-125 MB/h; --default-bounds keeps the defaults."""
    ports = {"worker": 1, "notifier": 2, "ingest": 3}
    small = soak_settings("127.0.0.1:9092", "soak1", "rocksdb://", tmp_path, ports)
    warmup_s = 5 * 60.0
    live_accounts, new_accounts_per_minute = 40, 30.0
    assert small.dedup_horizon_seconds <= warmup_s / 2
    assert small.worker_state_cache_accounts <= live_accounts + new_accounts_per_minute * warmup_s / 60 / 2
    assert small.table_write_buffer_bytes == 64 * 1024  # the smallest Settings allows
    defaults = soak_settings("127.0.0.1:9092", "soak1", "rocksdb://", tmp_path, ports, default_bounds=True)
    assert (defaults.dedup_horizon_seconds, defaults.table_write_buffer_bytes) == (86400.0, 4 * 1024 * 1024)
    assert defaults.worker_state_cache_accounts == Settings().worker_state_cache_accounts
