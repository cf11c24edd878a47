"""``preempt publish``: option parsing, local rejection, and per-line reports for --file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner

from streams.cli import publish as publish_module
from streams.cli.main import main
from streams.cli.publish import parse_prop, publish
from streams.sdk.publisher import Publisher
from tests.unit.streams.fake_producer import FakeProducer


@pytest.fixture
def fake_publishers(monkeypatch: pytest.MonkeyPatch) -> list[FakeProducer]:
    """Replace the broker-backed Publisher with one on a FakeProducer; returns the producers made."""
    made: list[FakeProducer] = []

    def from_settings(settings: Any, **kwargs: Any) -> Publisher:
        producer = FakeProducer()
        made.append(producer)
        return Publisher(topic="t.events", producer=producer)

    monkeypatch.setattr(publish_module.Publisher, "from_settings", staticmethod(from_settings))
    monkeypatch.setattr(publish_module, "probe_broker", lambda settings: None)
    return made


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("format=csv", ("format", "csv")),
        ("rows=3", ("rows", 3)),
        ("trial=true", ("trial", True)),
        ("a==b", ("a", "=b")),
    ],
)
def test_props_read_json_values_and_fall_back_to_strings(text: str, expected: tuple[str, Any]) -> None:
    """--prop key=value reads the value as JSON when it is JSON, else as a string."""
    assert parse_prop(text) == expected


def test_one_event_is_published_with_its_properties(fake_publishers: list[FakeProducer]) -> None:
    """--event/--account/--user/--prop publish one event keyed by account."""
    result = CliRunner().invoke(
        publish, ["--event", "Report Exported", "--account", "acme", "--user", "u-1", "--prop", "rows=3"]
    )
    assert result.exit_code == 0, result.output
    [record] = fake_publishers[0].sent
    body = orjson.loads(record["value"])
    assert record["key"] == b"acme"
    assert (body["event"], body["user_id"], body["properties"]) == ("Report Exported", "u-1", {"rows": 3})


def test_invalid_single_event_is_refused_with_the_reason(fake_publishers: list[FakeProducer]) -> None:
    """An event that breaks the contract exits 1 with the reason and field, before any connection."""
    result = CliRunner().invoke(publish, ["--event", "x" * 200, "--account", "acme"])
    assert result.exit_code == 1
    assert "rejected: invalid_field (event)" in result.output
    assert fake_publishers == []


def test_file_publishes_valid_lines_and_reports_rejected_ones(
    fake_publishers: list[FakeProducer], tmp_path: Path
) -> None:
    """--file sends the valid lines as they are, reports each bad line by number and reason, and exits 1."""
    good = orjson.dumps({"event_id": "a", "event": "Login", "account_id": "acme", "timestamp": "2026-11-23T06:00:00Z"})
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"\n".join([good, b"[1]", good.replace(b'"a"', b'"b"'), b'{"event":"x"}']) + b"\n")
    result = CliRunner().invoke(publish, ["--file", str(path)])
    assert result.exit_code == 1
    assert [r["value"] for r in fake_publishers[0].sent] == [good, good.replace(b'"a"', b'"b"')]
    assert f"{path}:2: not_an_object: " in result.stderr  # diagnostics on stderr, as in `events validate`
    assert f"{path}:4: missing_field (event_id): event_id is required" in result.output
    assert "published 2 events" in result.output


def test_file_cannot_be_mixed_with_single_event_options(tmp_path: Path) -> None:
    """--file together with --event is a usage error (exit 2)."""
    path = tmp_path / "e.jsonl"
    path.write_bytes(b"")
    result = CliRunner().invoke(publish, ["--file", str(path), "--event", "x"])
    assert result.exit_code == 2


def test_missing_account_is_a_usage_error() -> None:
    """--event without --account is a usage error (exit 2)."""
    assert CliRunner().invoke(publish, ["--event", "Login"]).exit_code == 2


@pytest.mark.parametrize("content", [b"", b"\n  \n\r\n"])
def test_file_without_any_event_is_one_line_error_before_connecting(
    fake_publishers: list[FakeProducer], tmp_path: Path, content: bytes
) -> None:
    """An empty (or all-blank) --file exits 1 with one line naming the file, as `events validate` does,
    and never connects to Kafka."""
    path = tmp_path / "events.jsonl"
    path.write_bytes(content)
    result = CliRunner().invoke(publish, ["--file", str(path)])
    assert result.exit_code == 1
    assert result.output.strip() == f"Error: {path}: no events (the file is empty or only blank lines)"
    assert fake_publishers == []


def test_file_without_any_valid_event_is_reported_without_connecting(
    fake_publishers: list[FakeProducer], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A --file none of whose lines is a valid event (an accounts file given by mistake) has nothing to
    send: its lines are reported and it exits 1 at once, without waiting for Kafka (with the broker down
    the user waited 5 s for the probe and was then told to start the broker)."""
    probed: list[object] = []
    monkeypatch.setattr(publish_module, "probe_broker", probed.append)
    path = tmp_path / "accounts.jsonl"
    path.write_bytes(b'{"account_id": "acme", "name": "Acme"}\n[1]\n')
    result = CliRunner().invoke(publish, ["--file", str(path)])
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        f"{path}:1: unknown_field (name): unknown top-level field 'name'; allowed: event_id, event, account_id, "
        "user_id, timestamp, properties, context",
        f"{path}:2: not_an_object: an event must be a JSON object, got an array",
        f"{path}: 0 valid, 2 invalid (nothing was sent); it holds account records, not events: give it to "
        "`preempt backtest --accounts` (their schema: `preempt events schema --account`)",
    ]
    assert probed == []
    assert fake_publishers == []


@pytest.mark.parametrize(
    ("args", "field"),
    [(["--event", "", "--account", "acme"], "event"), (["--event", "Login", "--account", ""], "account_id")],
)
def test_an_empty_event_name_or_account_is_rejected_by_the_contract_naming_the_field(
    fake_publishers: list[FakeProducer], args: list[str], field: str
) -> None:
    """--event "" or --account "" is refused with the contract's reason and field (not "give --event and --account")."""
    result = CliRunner().invoke(publish, args)
    assert result.exit_code == 1
    assert f"rejected: invalid_field ({field}): {field} must be 1 to" in result.output
    assert fake_publishers == []


def test_a_property_given_twice_is_a_usage_error_before_connecting() -> None:
    """--prop plan=a --prop plan=b names the property (the last one silently won), with no broker needed."""
    result = CliRunner().invoke(
        publish,
        ["--event", "Login", "--account", "acme", "--prop", "plan=a", "--prop", "plan=b"],
        env={"PREEMPT_BROKER": "kafka://127.0.0.1:1"},
    )
    assert result.exit_code == 2
    assert "Error: Invalid value for --prop: property 'plan' is given twice" in result.output


class _CtrlCOnThirdSend(FakeProducer):
    """A producer that acknowledges two sends, then the user presses Ctrl-C during the third."""

    def send(self, topic: str, *, key: bytes, value: bytes, headers: list[tuple[str, bytes]]) -> Any:
        if len(self.sent) == 2:
            raise KeyboardInterrupt
        return super().send(topic, key=key, value=value, headers=headers)


def test_ctrl_c_in_a_file_says_how_far_it_got(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Ctrl-C during --file only said "Interrupted": not which line it stopped at, nor how many events Kafka had;
    it flushes what was sent, says both on stderr, and exits 130."""
    producer = _CtrlCOnThirdSend()
    monkeypatch.setattr(
        publish_module.Publisher, "from_settings", staticmethod(lambda *a, **k: Publisher(topic="t", producer=producer))
    )
    monkeypatch.setattr(publish_module, "probe_broker", lambda settings: None)
    event = {"event": "Login", "account_id": "acme", "timestamp": "2026-11-23T06:00:00Z"}
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"".join(orjson.dumps({"event_id": f"e{i}", **event}) + b"\n" for i in range(5)) + b"[]\n")
    result = CliRunner().invoke(main, ["publish", "--file", str(path)])
    assert result.exit_code == 130, result.output
    assert result.stderr.splitlines() == [
        f"{path}: stopped at line 3: Kafka acknowledged 2 of the 2 events sent to t; 0 lines rejected",
        "Interrupted (Ctrl-C); stopped before finishing: any file it was writing is incomplete.",
    ]
    assert producer.flushed == 1


def test_an_accounts_file_given_to_publish_is_named_as_one(fake_publishers: list[FakeProducer], tmp_path: Path) -> None:
    """publish --file of an accounts JSONL says what the file is, as `events validate` does."""
    path = tmp_path / "accounts.jsonl"
    path.write_bytes(b'{"account_id": "acme", "name": "Acme", "tier": "growth"}\n')
    result = CliRunner().invoke(publish, ["--file", str(path)])
    assert result.exit_code == 1
    assert result.stderr.splitlines()[-1] == (
        f"{path}: 0 valid, 1 invalid (nothing was sent); it holds account records, not events: give it to "
        "`preempt backtest --accounts` (their schema: `preempt events schema --account`)"
    )
    assert fake_publishers == []
