"""The hot-path decoder: every rejection reason, the field it names, and the accepted shapes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
import pydantic
import pytest

from schemas.decoder import Reason, Rejection, decode_event, loads_exact, validate_event_dict
from schemas.event import Event, UsageEvent
from schemas.rfc3339 import parse_rfc3339

NOW = parse_rfc3339("2026-11-23T06:00:00Z")
LIMIT = 32 * 1024
SKEW = 300.0


@pytest.fixture
def make_payload() -> Callable[..., dict[str, Any]]:
    """Factory: a valid canonical event as a dict; keyword overrides replace fields, ``drop`` removes them."""

    def factory(*, drop: tuple[str, ...] = (), **overrides: Any) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "event_id": "8f1c2a7e",
            "event": "Report Exported",
            "account_id": "acme",
            "user_id": "u-42",
            "timestamp": "2026-11-23T05:59:00.120Z",
            "properties": {"format": "csv"},
            "context": {"app": "web"},
        }
        payload.update(overrides)
        for name in drop:
            del payload[name]
        return payload

    return factory


def decode(
    raw: bytes | bytearray | memoryview | None, *, now: float = NOW, max_bytes: int = LIMIT
) -> Event | Rejection:
    return decode_event(raw, max_bytes=max_bytes, max_future_skew=SKEW, now=now)


def rejection_of(raw: bytes | None, **kwargs: Any) -> Rejection:
    result = decode(raw, **kwargs)
    assert isinstance(result, Rejection), f"expected a rejection, got {result!r}"
    return result


def test_valid_event_decodes_to_the_same_event_as_the_pydantic_model(
    make_payload: Callable[..., dict[str, Any]],
) -> None:
    """A valid event decodes to an Event equal to UsageEvent's own conversion, ts included."""
    raw = orjson.dumps(make_payload())
    result = decode(raw)
    assert isinstance(result, Event)
    assert result == UsageEvent.model_validate_json(raw).to_event()
    assert result.ts == parse_rfc3339("2026-11-23T05:59:00.120Z")


def test_optional_fields_default_when_absent(make_payload: Callable[..., dict[str, Any]]) -> None:
    """Without user_id, properties and context the event gets None, {} and {}."""
    result = decode(orjson.dumps(make_payload(drop=("user_id", "properties", "context"))))
    assert isinstance(result, Event)
    assert (result.user_id, result.properties, result.context) == (None, {}, {})


def test_null_user_id_is_accepted(make_payload: Callable[..., dict[str, Any]]) -> None:
    """user_id may be JSON null, which means no user."""
    result = decode(orjson.dumps(make_payload(user_id=None)))
    assert isinstance(result, Event)
    assert result.user_id is None


@pytest.mark.parametrize(
    ("timestamp", "expected"),
    [
        ("2026-11-23T06:00:00+01:00", "2026-11-23T05:00:00Z"),
        ("2026-11-23t05:00:00z", "2026-11-23T05:00:00Z"),
        ("2026-11-23T05:00:00.123456789Z", "2026-11-23T05:00:00.123456Z"),
        ("2026-11-22T23:30:00-05:30", "2026-11-23T05:00:00Z"),
    ],
)
def test_timestamps_with_offsets_lower_case_and_long_fractions_are_accepted(
    make_payload: Callable[..., dict[str, Any]], timestamp: str, expected: str
) -> None:
    """Offsets are applied, lower-case t/z are accepted and nanosecond fractions are truncated."""
    result = decode(orjson.dumps(make_payload(timestamp=timestamp)))
    assert isinstance(result, Event)
    assert result.ts == parse_rfc3339(expected)


@pytest.mark.parametrize(
    "timestamp", ["2026-11-23T06:00:00+01:99", "2026-11-23T06:00:00-00:60", "2026-11-23T06:00:00+24:00"]
)
def test_offsets_beyond_23_hours_59_minutes_are_rejected_not_moved(
    make_payload: Callable[..., dict[str, Any]], timestamp: str
) -> None:
    """RFC 3339's offset is hh 00-23 : mm 00-59; fromisoformat read '+01:99' as 2 h 39 min and moved the event."""
    rejection = rejection_of(orjson.dumps(make_payload(timestamp=timestamp)))
    assert (rejection.reason, rejection.field) == (Reason.INVALID_FIELD, "timestamp")
    with pytest.raises(ValueError, match="RFC 3339"):
        parse_rfc3339(timestamp)
    with pytest.raises(pydantic.ValidationError):
        UsageEvent.model_validate(make_payload(timestamp=timestamp))


@pytest.mark.parametrize("raw", [b"", None], ids=["no-bytes", "tombstone"])
def test_empty_values_are_rejected_as_empty(raw: bytes | None) -> None:
    """An empty record value or a tombstone is rejected as empty."""
    assert rejection_of(raw).reason is Reason.EMPTY


def test_whitespace_only_value_is_rejected_as_empty() -> None:
    """A value of only whitespace counts as empty, not as broken JSON."""
    assert rejection_of(b" \n\t ").reason is Reason.EMPTY


def test_oversize_value_is_rejected_before_parsing(make_payload: Callable[..., dict[str, Any]]) -> None:
    """A value above max_bytes is too_large, and the detail gives both sizes."""
    raw = orjson.dumps(make_payload(properties={"blob": "x" * 2000}))
    rejection = rejection_of(raw, max_bytes=1024)
    assert rejection.reason is Reason.TOO_LARGE
    assert str(len(raw)) in rejection.detail
    assert "1024" in rejection.detail


def test_value_exactly_at_the_limit_is_accepted(make_payload: Callable[..., dict[str, Any]]) -> None:
    """The limit is inclusive: a value of exactly max_bytes is decoded."""
    raw = orjson.dumps(make_payload())
    assert isinstance(decode(raw, max_bytes=len(raw)), Event)


def test_invalid_utf8_is_named_as_such() -> None:
    """Bytes that are not UTF-8 are invalid_utf8, with the byte position."""
    rejection = rejection_of(b'{"event": "caf\xe9"}')
    assert rejection.reason is Reason.INVALID_UTF8
    assert "byte 14" in rejection.detail


@pytest.mark.parametrize("raw", [b"{", b'{"event": }', b"{'event': 'x'}", b'{"a": NaN}', b"nul"])
def test_malformed_json_is_invalid_json(raw: bytes) -> None:
    """UTF-8 text that is not JSON (including NaN, which JSON lacks) is invalid_json."""
    assert rejection_of(raw).reason is Reason.INVALID_JSON


@pytest.mark.parametrize(
    ("raw", "kind"),
    [(b"[]", "an array"), (b'"event"', "a string"), (b"42", "a number"), (b"null", "null"), (b"true", "a boolean")],
)
def test_json_that_is_not_an_object_is_rejected(raw: bytes, kind: str) -> None:
    """Any JSON value other than an object is not_an_object, and the detail says what it was."""
    rejection = rejection_of(raw)
    assert rejection.reason is Reason.NOT_AN_OBJECT
    assert kind in rejection.detail


def test_unknown_top_level_field_is_named(make_payload: Callable[..., dict[str, Any]]) -> None:
    """An extra top-level field is unknown_field and names that field."""
    rejection = rejection_of(orjson.dumps(make_payload(userId="u-42")))
    assert (rejection.reason, rejection.field) == (Reason.UNKNOWN_FIELD, "userId")


def test_unknown_field_wins_over_missing_field(make_payload: Callable[..., dict[str, Any]]) -> None:
    """A misspelt required field is reported as the unknown spelling, which is the actionable fix."""
    rejection = rejection_of(orjson.dumps(make_payload(drop=("account_id",), accountId="acme")))
    assert (rejection.reason, rejection.field) == (Reason.UNKNOWN_FIELD, "accountId")


@pytest.mark.parametrize("name", ["event_id", "event", "account_id", "timestamp"])
def test_each_missing_required_field_is_named(make_payload: Callable[..., dict[str, Any]], name: str) -> None:
    """Leaving out a required field is missing_field naming it."""
    rejection = rejection_of(orjson.dumps(make_payload(drop=(name,))))
    assert (rejection.reason, rejection.field) == (Reason.MISSING_FIELD, name)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("event_id", 42),
        ("event_id", ""),
        ("event_id", "x" * 257),
        ("event", ""),
        ("event", "x" * 129),
        ("event", None),
        ("account_id", ""),
        ("account_id", ["acme"]),
        ("user_id", ""),
        ("user_id", 7),
        ("properties", None),
        ("properties", ["a"]),
        ("properties", "csv"),
        ("context", 1),
        ("timestamp", 1795413600),
        ("timestamp", "2026-11-23T06:00:00"),
        ("timestamp", "2026-11-23 06:00:00Z"),
        ("timestamp", "2026-11-23T06:00:00+0100"),
        ("timestamp", "2026-02-30T06:00:00Z"),
        ("timestamp", "2026-11-23T06:00:60Z"),
        ("timestamp", "2026-11-23T06:00:00.1234567890Z"),
        ("timestamp", "1969-12-31T23:59:59Z"),
        ("timestamp", "２０２６-11-23T06:00:00Z"),
    ],
)
def test_invalid_field_values_are_named(make_payload: Callable[..., dict[str, Any]], name: str, value: Any) -> None:
    """A wrong type, length or timestamp format is invalid_field naming the field."""
    rejection = rejection_of(orjson.dumps(make_payload(**{name: value})))
    assert (rejection.reason, rejection.field) == (Reason.INVALID_FIELD, name)


def test_event_name_of_128_characters_is_accepted(make_payload: Callable[..., dict[str, Any]]) -> None:
    """Event names may be up to 128 characters (counted as characters, not bytes)."""
    assert isinstance(decode(orjson.dumps(make_payload(event="é" * 128))), Event)


def test_timestamp_beyond_the_skew_is_a_future_timestamp(make_payload: Callable[..., dict[str, Any]]) -> None:
    """A timestamp more than max_future_skew ahead of now is future_timestamp."""
    rejection = rejection_of(orjson.dumps(make_payload(timestamp="2026-11-23T06:05:01Z")))
    assert (rejection.reason, rejection.field) == (Reason.FUTURE_TIMESTAMP, "timestamp")


def test_timestamp_within_the_skew_is_accepted(make_payload: Callable[..., dict[str, Any]]) -> None:
    """A timestamp exactly max_future_skew ahead of now is still accepted."""
    assert isinstance(decode(orjson.dumps(make_payload(timestamp="2026-11-23T06:05:00Z"))), Event)


def test_every_reason_is_covered_by_a_test_in_this_module() -> None:
    """The reason codes are exactly the documented ones, so a new one cannot slip in untested."""
    assert {r.value for r in Reason} == {
        "empty",
        "too_large",
        "invalid_utf8",
        "invalid_json",
        "not_an_object",
        "unknown_field",
        "missing_field",
        "invalid_field",
        "future_timestamp",
        "too_deep",
        "too_many_properties",
        "string_too_long",
        "control_character",
        "number_out_of_range",
    }


def test_validate_event_dict_applies_the_same_rules_to_a_dict(make_payload: Callable[..., dict[str, Any]]) -> None:
    """validate_event_dict accepts a good dict and names the field of a bad one."""
    good = validate_event_dict(make_payload(), max_future_skew=SKEW, now=NOW)
    bad = validate_event_dict(make_payload(event=""), max_future_skew=SKEW, now=NOW)
    assert isinstance(good, Event)
    assert isinstance(bad, Rejection)
    assert (bad.reason, bad.field) == (Reason.INVALID_FIELD, "event")


def test_validate_event_dict_rejects_non_string_keys() -> None:
    """A Python dict with a non-string key is unknown_field, not a crash."""
    rejection = validate_event_dict({1: "x"}, max_future_skew=SKEW, now=NOW)
    assert isinstance(rejection, Rejection)
    assert (rejection.reason, rejection.field) == (Reason.UNKNOWN_FIELD, "1")


def test_decoder_accepts_bytearray_and_memoryview(make_payload: Callable[..., dict[str, Any]]) -> None:
    """Any bytes-like value decodes the same as bytes."""
    raw = orjson.dumps(make_payload())
    assert decode(bytearray(raw)) == decode(memoryview(raw)) == decode(raw)


# --- the content bounds (schemas/bounds.py) --------------------------------------------------------


def _nested(depth: int) -> dict[str, Any]:
    """An object whose innermost value sits ``depth`` containers deep (the object itself is 1)."""
    node: dict[str, Any] = {"leaf": 1}
    for _ in range(depth - 1):
        node = {"n": node}
    return node


@pytest.mark.parametrize("field", ["properties", "context"])
def test_nesting_beyond_the_bound_is_too_deep(make_payload: Callable[..., dict[str, Any]], field: str) -> None:
    """33 levels of objects in properties or context is too_deep naming the field; 32 is accepted."""
    assert isinstance(decode(orjson.dumps(make_payload(**{field: _nested(32)}))), Event)
    rejection = rejection_of(orjson.dumps(make_payload(**{field: _nested(33)})))
    assert (rejection.reason, rejection.field) == (Reason.TOO_DEEP, field)


def test_hundreds_of_levels_of_arrays_are_too_deep(make_payload: Callable[..., dict[str, Any]]) -> None:
    """The issue's poison — a few hundred nested arrays, a couple of KB of valid JSON — is too_deep."""
    deep = b'"properties":{"x":' + b"[" * 300 + b"]" * 300 + b"}"
    raw = orjson.dumps(make_payload(properties={})).replace(b'"properties":{}', deep)
    assert len(raw) < 1024
    assert rejection_of(raw).reason is Reason.TOO_DEEP


def test_more_values_than_the_bound_is_too_many_properties(make_payload: Callable[..., dict[str, Any]]) -> None:
    """Keys and array items of properties and context count together: 1,000 pass, 1,001 do not."""
    ok = make_payload(properties={f"k{i}": i for i in range(500)}, context={"ids": list(range(499))})
    assert isinstance(decode(orjson.dumps(ok)), Event)
    over = make_payload(properties={f"k{i}": i for i in range(500)}, context={"ids": list(range(500))})
    rejection = rejection_of(orjson.dumps(over))
    assert (rejection.reason, rejection.field) == (Reason.TOO_MANY_PROPERTIES, "context")


@pytest.mark.parametrize(
    ("properties", "ok"),
    [
        ({"s": "x" * 8192}, True),
        ({"s": "x" * 8193}, False),
        ({"k" * 256: 1}, True),
        ({"k" * 257: 1}, False),
        ({"deep": [{"s": "é" * 8193}]}, False),
    ],
)
def test_long_strings_and_keys_are_string_too_long(
    make_payload: Callable[..., dict[str, Any]], properties: dict[str, Any], ok: bool
) -> None:
    """A property string over 8,192 characters or a key over 256, at any depth, is string_too_long."""
    result = decode(orjson.dumps(make_payload(properties=properties)), max_bytes=1 << 20)
    if ok:
        assert isinstance(result, Event)
    else:
        assert isinstance(result, Rejection)
        assert (result.reason, result.field) == (Reason.STRING_TOO_LONG, "properties")


@pytest.mark.parametrize("name", ["event_id", "event", "account_id", "user_id"])
@pytest.mark.parametrize("char", ["\x00", "\n", "\x1b", "\x7f", "\x85"])
def test_control_characters_in_ids_are_control_character(
    make_payload: Callable[..., dict[str, Any]], name: str, char: str
) -> None:
    """A C0, DEL or C1 control character in an id or the event name is control_character naming the field."""
    rejection = rejection_of(orjson.dumps(make_payload(**{name: f"acme{char}x"})))
    assert (rejection.reason, rejection.field) == (Reason.CONTROL_CHARACTER, name)


def test_printable_unicode_ids_are_accepted(make_payload: Callable[..., dict[str, Any]]) -> None:
    """Non-ASCII letters, spaces and symbols are not control characters."""
    payload = make_payload(event_id="é-\u00a0-\u2028", account_id="Ünïcode Co", event="Rapport exporté ✓")
    assert isinstance(decode(orjson.dumps(payload)), Event)


@pytest.mark.parametrize(
    ("value", "ok"),
    [(2**53 - 1, True), (-(2**53 - 1), True), (2**53, False), (-(2**53), False), (2**63, False), (1e308, True)],
)
def test_integers_outside_the_safe_range_are_number_out_of_range(
    make_payload: Callable[..., dict[str, Any]], value: float, ok: bool
) -> None:
    """Integers must be within ±(2^53 - 1) at any depth; large finite floats are fine."""
    result = decode(orjson.dumps(make_payload(properties={"list": [{"n": value}]})))
    if ok:
        assert isinstance(result, Event)
    else:
        assert isinstance(result, Rejection)
        assert (result.reason, result.field) == (Reason.NUMBER_OUT_OF_RANGE, "properties")


@pytest.mark.parametrize(
    "literal", ["18446744073709551616", "-9223372036854775809", "99999999999999999999", "[1, 123456789012345678901234]"]
)
def test_integer_literals_past_64_bits_are_number_out_of_range_not_floats(
    make_payload: Callable[..., dict[str, Any]], literal: str
) -> None:
    """An integer literal orjson cannot hold in 64 bits is refused as number_out_of_range, as UsageEvent does,
    instead of being read as a float and accepted with a changed value."""
    raw = orjson.dumps(make_payload(context={"n": 0})).replace(b'"n":0', b'"n":' + literal.encode())
    result = rejection_of(raw)
    assert (result.reason, result.field) == (Reason.NUMBER_OUT_OF_RANGE, "context")
    assert literal.strip("[1, ]") in result.detail
    with pytest.raises(pydantic.ValidationError):
        UsageEvent.model_validate_json(raw)


@pytest.mark.parametrize("literal", ["1e19", "-9.3e18", "1.5e300", "18446744073709551616.0"])
def test_large_float_literals_are_accepted_with_their_value(
    make_payload: Callable[..., dict[str, Any]], literal: str
) -> None:
    """Float literals of any finite size stay accepted, with the value they were written with."""
    raw = orjson.dumps(make_payload(properties={"n": 0})).replace(b'"n":0', b'"n":' + literal.encode())
    result = decode(raw)
    assert isinstance(result, Event)
    assert result.properties == {"n": float(literal)}
    assert result == UsageEvent.model_validate_json(raw).to_event()


def test_loads_exact_keeps_integer_literals_past_64_bits_exact() -> None:
    """loads_exact (HTTP ingest, --prop) parses like orjson but keeps huge integers as integers."""
    assert loads_exact(b'{"a": [18446744073709551616, 1e19, 2]}') == {"a": [2**64, 1e19, 2]}
    assert type(loads_exact(b"1e19")) is float
    with pytest.raises(orjson.JSONDecodeError):
        loads_exact(b"NaN")


def test_loads_exact_refuses_a_huge_number_it_cannot_read_exactly() -> None:
    """A document nested too deep for the standard library that holds a number of magnitude 2^63 or more is
    refused, not kept with orjson's float (a Segment call's deep `integrations` let 2^64 through as 1.8e19)."""
    deep = b"[" * 1010 + b"]" * 1010
    body = b'{"integrations": ' + deep + b', "properties": {"n": 18446744073709551616}}'
    with pytest.raises(orjson.JSONDecodeError, match="nested too deep"):
        loads_exact(body)
    assert loads_exact(b'{"integrations": ' + deep + b', "properties": {"n": 5}}')["properties"] == {"n": 5}


@pytest.mark.parametrize("value", [float("inf"), float("-inf"), float("nan"), 10**400])
def test_sdk_dicts_with_unstorable_numbers_are_number_out_of_range(
    make_payload: Callable[..., dict[str, Any]], value: float
) -> None:
    """From Python (SDK, ingest): NaN, infinities and integers past 64 bits are number_out_of_range."""
    result = validate_event_dict(make_payload(properties={"amount": value}), max_future_skew=SKEW, now=NOW)
    assert isinstance(result, Rejection)
    assert result.reason is Reason.NUMBER_OUT_OF_RANGE


def test_usage_event_refuses_what_the_bounds_refuse(make_payload: Callable[..., dict[str, Any]]) -> None:
    """The pydantic model shares the bounds: deep nesting and control characters fail validation there too."""

    for payload in (make_payload(properties=_nested(33)), make_payload(account_id="a\tb")):
        with pytest.raises(pydantic.ValidationError):
            UsageEvent.model_validate_json(orjson.dumps(payload))
