"""``make soak`` in short: a minute of steady traffic in which new accounts keep arriving, on the real broker."""

from __future__ import annotations

from pathlib import Path

from bench.soak import soak

MINUTES = 1.25
WARMUP_S = 30.0
NEW_ACCOUNTS_PER_MINUTE = 60.0


def test_new_accounts_grow_no_metric_series_fds_or_threads(kafka_bootstrap: str, tmp_path: Path) -> None:
    """The rules worker, the notifier and the ingest under steady traffic (a live simulation, plus new accounts
    arriving every second over the ingest, each with new users, an NPS detractor that alerts, an event name of
    its own and two rejected items): past a warm-up, no /metrics page gains a series per account, user, event
    name or error text (only per partition as each sees its first record), and no process gains open fds or threads."""
    result = soak(
        kafka_bootstrap,
        tmp_path,
        minutes=MINUTES,
        interval_s=5.0,
        warmup_s=WARMUP_S,
        accounts=12,
        rate=20.0,
        new_accounts_per_minute=NEW_ACCOUNTS_PER_MINUTE,
        echo=False,
    )
    assert not result.dead, result.dead
    assert not result.post_failures, result.post_failures[:5]
    past = [s for s in result.samples if s.at >= WARMUP_S]
    assert len(past) >= 6, f"only {len(past)} samples past the warm-up"
    arrived_past_warmup = result.new_accounts - int(WARMUP_S / 60.0 * NEW_ACCOUNTS_PER_MINUTE)
    assert arrived_past_warmup >= 30, f"only {arrived_past_warmup} accounts arrived past the warm-up"
    first, last = past[0].values, past[-1].values
    for app in ("worker", "notifier", "ingest"):
        # Series of a topic's partitions are born as each partition sees its first record (bounded by them).
        suspects = result.suspects[app]
        assert len(suspects) <= 3, f"{app}: {len(suspects)} series born past the warm-up: {suspects[:10]}"
        for resource, slack in (("fds", 3), ("threads", 2)):
            name = f"{app}.{resource}"
            start, end = first[name], last[name]
            assert start is not None, f"{name} not read: {result.samples}"
            assert end is not None, f"{name} not read: {result.samples}"
            assert end - start <= slack, (
                f"{name}: {start:g} -> {end:g} while {arrived_past_warmup} new accounts arrived "
                f"(series born: {result.grown.get(app)})"
            )
