"""Property tests: the decoder never raises, and it accepts exactly what ``UsageEvent`` accepts."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import orjson
import pydantic
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.decoder import Rejection, decode_event
from schemas.event import Event, UsageEvent

NOW = 1_795_413_600.0

json_scalars = st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats(allow_nan=False) | st.text()
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


def decode(raw: bytes) -> Event | Rejection:
    return decode_event(raw, max_bytes=1 << 30, max_future_skew=math.inf, now=NOW)


@settings(max_examples=600)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_never_raise(raw: bytes) -> None:
    """Any byte string yields an Event or a Rejection, never an exception."""
    assert isinstance(decode_event(raw, max_bytes=200, max_future_skew=300.0, now=NOW), Event | Rejection)


@settings(max_examples=600)
@given(json_values)
def test_arbitrary_json_never_raises(value: Any) -> None:
    """Any JSON document yields an Event or a Rejection, never an exception."""
    assert isinstance(decode(orjson.dumps(value)), Event | Rejection)


@settings(max_examples=300)
@given(st.dictionaries(st.sampled_from(["event_id", "event", "account_id", "timestamp", "x"]), json_values))
def test_arbitrary_objects_with_contract_keys_never_raise(value: dict[str, Any]) -> None:
    """Objects whose keys are the contract's, holding any JSON, never make the decoder raise."""
    assert isinstance(decode(orjson.dumps(value)), Event | Rejection)


offsets = st.integers(-23 * 60 - 59, 23 * 60 + 59).map(lambda m: timezone(timedelta(minutes=m)))
instants = st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(9999, 12, 30), timezones=offsets)


@st.composite
def rfc3339_text(draw: st.DrawFn) -> str:
    """A valid timestamp written in one of the accepted styles."""
    value = draw(instants)
    text = value.strftime("%Y-%m-%dT%H:%M:%S")
    digits = draw(st.integers(0, 9))
    if digits:
        text += "." + (f"{value.microsecond:06d}" + "123")[:digits]
    offset = value.utcoffset() or timedelta(0)
    if offset == timedelta(0) and draw(st.booleans()):
        text += draw(st.sampled_from(["Z", "z"]))
    else:
        minutes = int(offset.total_seconds()) // 60
        sign = "-" if minutes < 0 else "+"
        text += f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"
    if draw(st.booleans()):
        text = text.replace("T", "t")
    return text


def _mutate(text: str, index: int, char: str) -> str:
    index %= len(text) + 1
    return text[:index] + char + text[index + 1 :]


timestamps = st.one_of(
    rfc3339_text(),
    st.builds(_mutate, rfc3339_text(), st.integers(0, 40), st.sampled_from(list("0 9:-+.TZtz,_xé٣"))),
    st.sampled_from(
        [
            "2026-11-23 06:00:00Z",
            "2026-11-23T06:00Z",
            "2026-11-23T06:00:00+0100",
            "2026-11-23T06:00:00",
            "2026-11-23",
            "2026-W47-1T06:00:00Z",
            "20261123T060000Z",
            "2026-11-23T06:00:00,5Z",
            "2026-11-23T24:00:00Z",
            "2026-11-23T06:00:60Z",
            "0001-01-01T00:00:00+01:00",
            "9999-12-31T23:59:59-01:00",
            "1970-01-01T00:00:00Z",
            "2024-02-29T00:00:00Z",
            "2026-02-29T00:00:00Z",
        ]
    ),
    st.integers(0, 2**40),
    st.floats(allow_nan=False, allow_infinity=False),
    json_values,
)
names = st.one_of(st.text(min_size=0, max_size=130), st.sampled_from(["x" * 128, "x" * 129, "é" * 128]), json_values)
ids = st.one_of(st.text(min_size=0, max_size=5), st.sampled_from(["x" * 256, "x" * 257]), json_values)
objects = st.one_of(st.dictionaries(st.text(max_size=5), json_values, max_size=3), json_values)

field_values: dict[str, st.SearchStrategy[Any]] = {
    "event_id": ids,
    "event": names,
    "account_id": ids,
    "user_id": st.one_of(st.none(), ids),
    "timestamp": timestamps,
    "properties": objects,
    "context": objects,
}


@st.composite
def candidate_events(draw: st.DrawFn) -> dict[str, Any]:
    """Near-valid events: each field present or not, valid or not, sometimes with an extra key."""
    out: dict[str, Any] = {}
    for name, strategy in field_values.items():
        if draw(st.integers(0, 9)) == 0:
            continue  # field left out
        valid = draw(st.integers(0, 3)) != 0
        if valid:
            out[name] = draw(
                {
                    "event_id": st.text(min_size=1, max_size=8),
                    "event": st.text(min_size=1, max_size=20),
                    "account_id": st.text(min_size=1, max_size=8),
                    "user_id": st.none() | st.text(min_size=1, max_size=8),
                    "timestamp": rfc3339_text(),
                    "properties": st.dictionaries(st.text(max_size=5), json_values, max_size=3),
                    "context": st.dictionaries(st.text(max_size=5), json_values, max_size=3),
                }[name]
            )
        else:
            out[name] = draw(strategy)
    if draw(st.integers(0, 9)) == 0:
        out[draw(st.text(max_size=10))] = draw(json_values)
    return out


@settings(max_examples=1500)
@given(candidate_events())
def test_decoder_and_usage_event_agree(payload: dict[str, Any]) -> None:
    """decode_event accepts exactly the inputs UsageEvent.model_validate_json accepts, with equal results."""
    raw = orjson.dumps(payload)
    result = decode(raw)
    model: UsageEvent | None = None
    pydantic_error = ""
    try:
        model = UsageEvent.model_validate_json(raw)
    except pydantic.ValidationError as exc:
        pydantic_error = str(exc)
    if model is None:
        assert isinstance(result, Rejection), f"decoder accepted what pydantic rejects: {pydantic_error}"
    else:
        assert isinstance(result, Event), f"decoder rejected what pydantic accepts: {result}"
        assert result == model.to_event()


@given(rfc3339_text())
def test_valid_timestamps_decode_to_their_instant(text: str) -> None:
    """Every accepted timestamp style decodes to the instant it names."""
    payload = {"event_id": "e", "event": "x", "account_id": "a", "timestamp": text}
    result = decode(orjson.dumps(payload))
    assert isinstance(result, Event)
    expected = datetime.fromisoformat(text.upper())
    assert result.ts == expected.astimezone(UTC).timestamp()
