"""``preempt simulate`` on the command line: files for backtests, summary, determinism."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner
from kafka.errors import KafkaTimeoutError

from streams.cli import simulate as command
from streams.cli.main import main
from streams.cli.simulate import simulate
from streams.simulate import publishing
from tests.unit.streams.fake_producer import FakeFuture, FakeProducer

START = "2026-11-02T00:00:00Z"


def _run(tmp_path: Path, *extra: str, name: str = "events") -> tuple[str, Path, Path]:
    events, accounts = tmp_path / f"{name}.jsonl", tmp_path / f"{name}-accounts.jsonl"
    args = ["--accounts", "12", "--days", "3", "--seed", "9", "--start", START]
    args += ["--output", str(events), "--accounts-output", str(accounts), *extra]
    result = CliRunner().invoke(simulate, args)
    assert result.exit_code == 0, result.output
    return result.output, events, accounts


def test_files_are_byte_identical_for_the_same_seed_and_start(tmp_path: Path) -> None:
    """Two runs with the same --seed and --start write the same two files."""
    _, events_a, accounts_a = _run(tmp_path, name="a")
    _, events_b, accounts_b = _run(tmp_path, name="b")
    assert events_a.read_bytes() == events_b.read_bytes()
    assert accounts_a.read_bytes() == accounts_b.read_bytes()
    assert len(accounts_a.read_text().splitlines()) == 12


def test_the_files_do_not_depend_on_the_wall_clock_when_start_is_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With --start the files are the same whatever the machine's clock says (it is read only for the note
    on a history that ends after it, on stderr)."""
    monkeypatch.setattr(command.time, "time", lambda: 0.0)
    before, events_a, accounts_a = _run(tmp_path, name="a")
    monkeypatch.setattr(command.time, "time", lambda: 4_102_444_800.0)
    after, events_b, accounts_b = _run(tmp_path, name="b")
    assert events_a.stat().st_size > 0
    assert (events_a.read_bytes(), accounts_a.read_bytes()) == (events_b.read_bytes(), accounts_b.read_bytes())
    assert "note: the history ends at 2026-11-05T00:00:00.000Z, after this machine's clock" in before
    assert "after this machine's clock" not in after


def test_a_history_ending_after_today_says_how_to_backtest_it(tmp_path: Path) -> None:
    """Files of a future period are written (a backtest of next quarter), with the --until that replays them."""
    events = tmp_path / "e.jsonl"
    args = ["--accounts", "3", "--days", "2", "--seed", "1", "--start", "2100-01-01T00:00:00Z", "--output", str(events)]
    result = CliRunner().invoke(simulate, args)
    assert result.exit_code == 0, result.output
    assert (
        "note: the history ends at 2100-01-03T00:00:00.000Z, after this machine's clock: replay it with "
        "`preempt backtest --until 2100-01-03T00:00:00.000Z` (without it, and in the stream, its events are "
        "future_timestamp)"
    ) in result.stderr
    replay = CliRunner().invoke(main, ["backtest", "--events", str(events), "--until", "2100-01-03T00:00:00.000Z"])
    assert replay.exit_code == 0, replay.output
    assert "future_timestamp" not in replay.stderr


def test_summary_lists_accounts_and_events_per_persona(tmp_path: Path) -> None:
    """The summary names every persona with its accounts and events, and the total."""
    output, events, _ = _run(tmp_path)
    assert "decaying" in output
    assert "payment-not-recovered" in output
    lines = events.read_text().splitlines()
    assert f"total{'':<19}{12:>9}{len(lines):>10}" in output


def test_start_without_an_offset_is_rejected(tmp_path: Path) -> None:
    """A naive --start is a usage error naming the option."""
    result = CliRunner().invoke(simulate, ["--start", "2026-11-02T00:00:00", "--output", str(tmp_path / "e.jsonl")])
    assert result.exit_code == 2
    assert "--start" in result.output


def test_start_that_is_not_a_timestamp_is_rejected(tmp_path: Path) -> None:
    """A malformed --start is a usage error naming the option."""
    result = CliRunner().invoke(simulate, ["--start", "yesterday", "--output", str(tmp_path / "e.jsonl")])
    assert result.exit_code == 2
    assert "RFC 3339" in result.output


def test_the_same_seed_without_start_gives_the_same_files_all_day(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without --start, runs with the same --seed at different times of one UTC day write identical files,
    starting --days before that day's midnight."""
    outputs = []
    for name, clock in (("morning", 1_795_996_800.0 + 3_600.5), ("evening", 1_795_996_800.0 + 80_000.25)):
        monkeypatch.setattr(command.time, "time", lambda clock=clock: clock)
        events = tmp_path / f"{name}.jsonl"
        args = ["--accounts", "5", "--days", "2", "--seed", "4", "--output", str(events)]
        result = CliRunner().invoke(simulate, args)
        assert result.exit_code == 0, result.output
        assert "start 2026-11-28T00:00:00.000Z" in result.output
        outputs.append(events.read_bytes())
    assert outputs[0] == outputs[1]
    assert outputs[0]


@pytest.mark.parametrize(
    ("start", "days", "message"),
    [
        ("1969-12-31T00:00:00Z", 2, "must lie between 1970-01-01T00:00:00Z and 9999-12-31T23:59:59Z"),
        ("9999-12-30T00:00:00Z", 5, "--start + --days runs past 9999-12-31"),
        # events end by 9999-12-31, but the accounts' renewal dates reach past it
        ("9999-12-31T00:00:00Z", 1, "renewal dates reach up to 1 day after --start, past 9999-12-31"),
        (
            "9999-01-01T00:00:00Z",
            360,
            "renewal dates reach up to 480 days after --start, past 9999-12-31 where dates end; "
            "choose a --start before 9998-09-08T00:00:00.000Z",
        ),
        ("2026-11-02 00:00:00Z", 1, "must be an RFC 3339 timestamp with an offset"),
    ],
)
def test_a_start_whose_events_the_contract_refuses_is_one_line(
    tmp_path: Path, start: str, days: int, message: str
) -> None:
    """A --start before 1970, or a period running past 9999, is refused in one line (it wrote events the
    stream rejects, or ended in an OverflowError traceback), and no file is written."""
    events = tmp_path / "e.jsonl"
    args = ["--accounts", "2", "--days", str(days), "--seed", "1", "--start", start, "--output", str(events)]
    result = CliRunner().invoke(simulate, args)
    assert result.exit_code == 2
    assert message in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert not events.exists()


def test_lower_case_rfc3339_start_is_accepted(tmp_path: Path) -> None:
    """--start takes the grammar every Preempt timestamp takes, lower-case t and z included."""
    result = CliRunner().invoke(
        simulate,
        [
            "--accounts",
            "2",
            "--days",
            "1",
            "--seed",
            "1",
            "--start",
            "2026-11-02t00:00:00z",
            "--output",
            str(tmp_path / "e.jsonl"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "start 2026-11-02T00:00:00.000Z" in result.output


def test_backfill_of_a_period_ending_in_the_future_is_refused_before_connecting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """--backfill publishes history: a --start + --days ending in the future (which the stream would
    dead-letter as future_timestamp) is refused in one line before any broker is contacted."""
    monkeypatch.setattr(command.time, "time", lambda: 1_796_040_000.0)  # 2026-11-30T12:00:00Z
    monkeypatch.setattr(command, "probe_broker", lambda settings: pytest.fail("the broker was contacted"))
    args = ["--accounts", "2", "--days", "3", "--seed", "1", "--start", "2026-11-29T00:00:00Z", "--backfill"]
    result = CliRunner().invoke(simulate, args, env={"PREEMPT_BROKER": "kafka://127.0.0.1:1"})
    assert result.exit_code == 2
    assert "ends at 2026-12-02T00:00:00+00:00, in the future" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--backfill", "--output", "{tmp}/e.jsonl"],
            "--backfill publishes to Kafka and writes no --output/--accounts-output file",
        ),
        (
            ["--backfill", "--accounts-output", "{tmp}/a.jsonl"],
            "--backfill publishes to Kafka and writes no --output/--accounts-output file",
        ),
        (
            ["--output", "{tmp}/e.jsonl", "--rate", "5"],
            "--rate is for live traffic; writing files goes as fast as it can",
        ),
        (["--backfill", "--duration", "5"], "--duration is for live traffic; --backfill goes as fast as it can"),
        (
            ["--rate", "5"],
            "--days is for files (--output) and --backfill; live traffic runs until Ctrl-C, or give --duration SECONDS",
        ),
    ],
)
def test_an_option_of_another_mode_is_a_usage_error_not_ignored(tmp_path: Path, args: list[str], message: str) -> None:
    """--output with --backfill wrote no file, --rate/--duration outside live traffic and --days in live traffic
    did nothing: now exit 2 at once, before any connection."""
    argv = ["--accounts", "2", "--days", "1", "--seed", "1", *(a.format(tmp=tmp_path) for a in args)]
    result = CliRunner().invoke(simulate, argv, env={"PREEMPT_BROKER": "kafka://127.0.0.1:1"})
    assert result.exit_code == 2, result.output
    assert f"Error: {message}" in result.output
    assert list(tmp_path.iterdir()) == []


def test_the_start_is_printed_in_the_event_contracts_timestamp_form(tmp_path: Path) -> None:
    """The first line names the start as RFC 3339 (as --start takes it), not Python's '2026-11-02 00:00:00+00:00'."""
    result = CliRunner().invoke(simulate, ["--accounts", "2", "--days", "1", "--seed", "1", "--start", START,
                                           "--output", str(tmp_path / "e.jsonl")])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines()[0] == "seed 1, 2 accounts, start 2026-11-02T00:00:00.000Z"


class _InterruptingProducer(FakeProducer):
    """A fake producer that takes a few events, then gets Ctrl-C (KeyboardInterrupt) on the next send."""

    def send(self, topic: str, *, key: bytes, value: bytes, headers: list[tuple[str, bytes]]) -> FakeFuture:
        if topic.endswith(".events") and sum(m["topic"].endswith(".events") for m in self.sent) >= 5:
            raise KeyboardInterrupt
        return super().send(topic, key=key, value=value, headers=headers)


@pytest.mark.parametrize(
    ("mode", "exit_code"), [(["--backfill", "--days", "3"], 130), (["--rate", "1000", "--duration", "60"], 0)]
)
def test_ctrl_c_cuts_a_backfill_short_with_exit_130_and_stops_live_traffic_with_exit_0(
    monkeypatch: pytest.MonkeyPatch, mode: list[str], exit_code: int
) -> None:
    """Ctrl-C is how live traffic ends (exit 0); a backfill it stops is incomplete history, so exit 130, not 0.
    Both flush what was sent first."""
    producer = _InterruptingProducer()
    monkeypatch.setattr(command, "probe_broker", lambda settings: None)
    monkeypatch.setattr(publishing, "ensure_topics", lambda settings: None)
    monkeypatch.setattr(command, "KafkaSink", lambda settings: publishing.KafkaSink(settings, producer=producer))
    args = ["simulate", "--accounts", "2", "--seed", "1", *mode]
    result = CliRunner().invoke(main, args, env={"PREEMPT_BROKER": "kafka://127.0.0.1:1"})
    assert result.exit_code == exit_code, result.output
    assert "interrupted; flushing what was sent" in result.stderr
    assert producer.closed
    assert ("Interrupted (Ctrl-C)" in result.stderr) is (exit_code == 130)


class _BrokerGoneProducer(FakeProducer):
    """kafka-python's producer when the broker goes away for good after ``acknowledged`` events: later
    records are never acknowledged, ``flush`` and ``close`` (which flushes first) raise KafkaTimeoutError
    and, with ``send_blocks``, a send waiting for metadata that never comes raises it too."""

    def __init__(self, acknowledged: int, send_blocks: bool = False) -> None:
        super().__init__()
        self.acknowledged = acknowledged
        self.send_blocks = send_blocks
        self.close_attempts = 0

    def send(self, topic: str, *, key: bytes, value: bytes, headers: list[tuple[str, bytes]]) -> FakeFuture:
        events = sum(m["topic"].endswith(".events") for m in self.sent)
        if events < self.acknowledged or not topic.endswith(".events"):
            return super().send(topic, key=key, value=value, headers=headers)
        if self.send_blocks:
            raise KafkaTimeoutError("Failed to update metadata after 60.0 secs.")
        self.sent.append({"topic": topic, "key": key, "value": value, "headers": headers})
        return FakeFuture(None, pending=True)

    def flush(self, timeout: float | None = None) -> None:
        super().flush(timeout)
        if any(m["topic"].endswith(".events") for m in self.sent[self.acknowledged + 2 :]):
            raise KafkaTimeoutError("Timeout waiting for future")

    def close(self, timeout: float | None = None) -> None:
        self.close_attempts += 1
        self.flush(timeout)
        super().close(timeout)


@pytest.mark.parametrize(
    ("mode", "send_blocks"),
    [
        (["--rate", "1000", "--duration", "0.05"], False),
        (["--backfill", "--days", "3"], False),
        (["--backfill", "--days", "3"], True),
    ],
    ids=["live", "backfill", "backfill-send-blocks"],
)
def test_a_broker_that_goes_away_for_good_is_one_line_not_a_traceback(
    monkeypatch: pytest.MonkeyPatch, mode: list[str], send_blocks: bool
) -> None:
    """A broker that went away during a live run or a backfill and did not come back ended the command with
    the KafkaTimeoutError traceback of the final flush (and a second one from kafka-python's exit hook); it
    is one line saying how many records Kafka did not acknowledge, and exit 1."""
    producer = _BrokerGoneProducer(acknowledged=10, send_blocks=send_blocks)
    monkeypatch.setattr(command, "probe_broker", lambda settings: None)
    monkeypatch.setattr(publishing, "ensure_topics", lambda settings: None)
    monkeypatch.setattr(command, "KafkaSink", lambda settings: publishing.KafkaSink(settings, producer=producer))
    args = ["simulate", "--accounts", "2", "--seed", "1", *mode]
    result = CliRunner().invoke(main, args, env={"PREEMPT_BROKER": "kafka://127.0.0.1:1"})
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("Error: "), result.stderr
    # 2 account records and 10 events acknowledged, then the ones never acknowledged (how many the
    # live mode sends in its 0.05 s depends on the machine's load: the line must add up, not hit a number)
    if send_blocks:
        says = (
            "Kafka stopped taking records (KafkaTimeoutError: Failed to update metadata after 60.0 secs.); "
            "the 12 records sent before were acknowledged"
        )
        assert says in last, last
    else:
        counts = re.search(
            r"Kafka did not acknowledge (\d+) of the (\d+) records sent \(0 refused, the rest not in time\)", last
        )
        assert counts is not None, last
        unacknowledged, sent = int(counts[1]), int(counts[2])
        assert sent > 12, last
        assert sent - unacknowledged == 12, last
    assert last.endswith("check that the broker is up, then run the command again"), last
    assert producer.close_attempts == 1
