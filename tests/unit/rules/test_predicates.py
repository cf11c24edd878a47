"""``match`` predicates compiled to callables: every op, dotted paths, missing values."""

from __future__ import annotations

import re

import pytest
from pydantic import ValidationError

from rules.measures import check_measure
from rules.models import Match
from rules.predicates import compile_match


def _matches(make_event, where, **event_fields):
    return compile_match(Match(event="E", where=where))(make_event(event="E", **event_fields))


@pytest.mark.parametrize(
    ("where", "properties", "expected"),
    [
        ({"properties.status": 500}, {"status": 500}, True),
        ({"properties.status": 500}, {"status": 500.0}, True),
        ({"properties.status": 500}, {"status": "500"}, False),
        ({"properties.flag": 1}, {"flag": True}, False),
        ({"properties.flag": True}, {"flag": True}, True),
        ({"properties.status": {"ne": 200}}, {"status": 500}, True),
        ({"properties.status": {"ne": 200}}, {}, True),
        ({"properties.status": {"gte": 500}}, {"status": 500}, True),
        ({"properties.status": {"gt": 500}}, {"status": 500}, False),
        ({"properties.status": {"lt": 500}}, {"status": 499}, True),
        ({"properties.status": {"lte": 500}}, {"status": 501}, False),
        ({"properties.status": {"gte": 500}}, {"status": "boom"}, False),
        ({"properties.status": {"gte": 500}}, {}, False),
        ({"properties.status": {"gte": 500, "lt": 600}}, {"status": 599}, True),
        ({"properties.status": {"gte": 500, "lt": 600}}, {"status": 600}, False),
        ({"properties.plan": {"in": ["pro", "enterprise"]}}, {"plan": "pro"}, True),
        ({"properties.plan": {"in": ["pro", "enterprise"]}}, {"plan": "free"}, False),
        ({"properties.plan": ["pro", "enterprise"]}, {"plan": "enterprise"}, True),  # a bare list means in
        ({"properties.plan": ["pro", "enterprise"]}, {"plan": "free"}, False),
        ({"properties.status": [500, 503]}, {"status": 503.0}, True),
        ({"properties.plan": {"not_in": ["free"]}}, {"plan": "pro"}, True),
        ({"properties.plan": {"not_in": ["free"]}}, {"plan": "free"}, False),
        ({"properties.plan": {"not_in": ["free"]}}, {}, True),
        ({"properties.path": {"contains": "cancel"}}, {"path": "/billing/cancel"}, True),
        ({"properties.tags": {"contains": "vip"}}, {"tags": ["vip", "eu"]}, True),
        ({"properties.tags": {"contains": "vip"}}, {"tags": 3}, False),
        ({"properties.sso": {"exists": True}}, {"sso": "okta"}, True),
        ({"properties.sso": {"exists": True}}, {"sso": None}, False),
        ({"properties.sso": {"exists": False}}, {}, True),
        ({"properties.a.b": {"eq": 1}}, {"a": {"b": 1}}, True),
        ({"properties.a.b": {"eq": 1}}, {"a": 5}, False),
        ({"properties.a.b.c": {"exists": False}}, {"a": {"b": "x"}}, True),
        ({"properties.day": {"gte": "2026-11-01"}}, {"day": "2026-11-23"}, True),
    ],
)
def test_where_ops(make_event, where, properties, expected):
    """Each op holds or not as documented, never raising on odd values."""
    assert _matches(make_event, where, properties=properties) is expected


def test_a_key_with_dots_in_its_name_is_found_by_the_same_path(make_event):
    """``properties.http.code`` finds a flat ``{"http.code": 503}`` (OpenTelemetry-style attribute names) as well as
    ``{"http": {"code": 503}}``, at any depth; where both hold a value, the nested object's is the one compared."""
    where = {"properties.http.code": {"gte": 500}}
    assert _matches(make_event, where, properties={"http.code": 503})
    assert _matches(make_event, where, properties={"http": {"code": 503}})
    assert _matches(make_event, where, properties={"http": {"method": "GET"}, "http.code": 503})
    assert not _matches(make_event, where, properties={"http": {"code": 200}, "http.code": 503})
    assert not _matches(make_event, where, properties={"http.code.x": 503})
    assert _matches(make_event, {"properties.a.b.c": 1}, properties={"a": {"b.c": 1}})
    assert _matches(make_event, {"properties.a.b.c": 1}, properties={"a.b": {"c": 1}})
    assert _matches(make_event, {"context.page.url": {"contains": "/cancel"}}, context={"page.url": "/x/cancel"})


def test_event_name_or_list_or_any(make_event):
    """``event`` is one name, a list of names, or absent (every event)."""
    login, other = make_event(event="Login"), make_event(event="Other")
    assert compile_match(Match(event="Login"))(login)
    assert not compile_match(Match(event="Login"))(other)
    assert compile_match(Match(event=["Login", "Other"]))(other)
    assert compile_match(Match())(other)
    assert compile_match(None)(other)


def test_a_match_written_as_names_alone_is_those_event_names(make_rule, make_event):
    """``start: Signed Up``, ``expect: [A, B]``, ``steps: [A, B]``, ``match: X``: names alone are ``{event: …}``."""
    absence = make_rule("absence", start="Signed Up", expect=["Onboarded", "Project Created"])
    assert (absence.start.event, absence.expect.event) == ("Signed Up", ["Onboarded", "Project Created"])
    sequence = make_rule("sequence", steps=["Payment Failed", "Cancel Page Viewed"])
    assert [step.event for step in sequence.steps] == ["Payment Failed", "Cancel Page Viewed"]
    any_rule = make_rule("any", match="NPS Submitted")
    assert compile_match(any_rule.match)(make_event(event="NPS Submitted"))
    assert not compile_match(any_rule.match)(make_event(event="Login"))
    with pytest.raises(ValidationError, match="valid dictionary"):  # anything else is still refused
        make_rule("any", match=5)


def test_top_level_paths(make_event):
    """``user_id`` and ``context.*`` are reachable; a missing user does not exist."""
    match = Match(where={"user_id": {"exists": True}, "context.app": "web"})
    assert compile_match(match)(make_event(user_id="u1", context={"app": "web"}))
    assert not compile_match(match)(make_event(context={"app": "web"}))


@pytest.mark.parametrize("path", ["props.x", "properties", "user_id.x", "properties..x", "ts.day"])
def test_bad_paths_are_refused_at_load(path):
    """A path that cannot exist in an event is a validation error."""
    with pytest.raises(ValidationError):
        Match(where={path: 1})


def test_empty_ops_are_refused():
    """A where entry with no op is a mistake, not match-everything."""
    with pytest.raises(ValidationError, match="at least one op"):
        Match(where={"properties.x": {}})


@pytest.mark.parametrize(
    ("where", "problem"),
    [
        ({"ts": {"gte": "2026-11-01T00:00:00Z"}}, 'where.ts: gte: "2026-11-01T00:00:00Z" never matches'),
        ({"ts": {"in": [1793491200, "2026-11-01"]}}, 'where.ts: in: the item "2026-11-01" is never equal to it'),
        ({"user_id": 42}, "where.user_id: eq: 42 never matches: user_id is always text; quote it ('42')"),
        (
            {"user_id": {"eq": None}},
            "where.user_id: eq: null is never equal to a user_id (text when present); write exists: false",
        ),
        ({"user_id": {"ne": None}}, "write exists: true"),
        ({"account_id": {"ne": 7}}, "where.account_id: ne: 7 always holds: account_id is always text"),
        ({"event": {"contains": True}}, "where.event: contains: true never matches: event is always text"),
        ({"event_id": {"not_in": ["a", 1.5]}}, "where.event_id: not_in: the item 1.5 is never equal to it"),
    ],
)
def test_an_operand_an_event_field_can_never_equal_is_refused_at_load(where, problem):
    """``ts`` is a number and ``event``, ``event_id``, ``account_id``, ``user_id`` are text (or a missing
    user): a rule comparing them with the other type loaded and never fired (or its test always held)."""
    with pytest.raises(ValidationError, match=re.escape(problem)):
        Match.model_validate({"event": "Login", "where": where})


def test_operands_of_the_field_type_still_load(make_event):
    where = {
        "ts": {"gte": 1793491200, "lt": 1793491200.5},
        "user_id": {"exists": False},
        "account_id": {"in": ["acme", "globex"]},
        "event_id": {"contains": "x"},
        "properties.n": {"eq": "5"},
        "context.n": {"gt": 5},
    }
    matcher = compile_match(Match.model_validate({"event": "Login", "where": where}))
    fields = {"event": "Login", "account_id": "acme", "event_id": "ex1", "properties": {"n": "5"}, "context": {"n": 6}}
    assert matcher(make_event(ts=1793491200.25, **fields))
    assert not matcher(make_event(ts=1793491201.0, **fields))


@pytest.mark.parametrize("path", ["event", "event_id", "account_id", "user_id"])
def test_a_sum_of_a_text_field_is_refused_at_load(path):
    """``sum:user_id`` loaded, skipped every value as not a number and never fired."""
    with pytest.raises(ValueError, match=f"'sum:{path}' never adds anything: {path} is text"):
        check_measure(f"sum:{path}")
    assert check_measure("sum:ts") == "sum:ts"
    assert check_measure(f"distinct:{path}") == f"distinct:{path}"


@pytest.mark.parametrize(
    ("written", "read"),
    [
        ("sum: properties.amount", "sum:properties.amount"),
        (" distinct : properties.plan name ", "distinct:properties.plan name"),
        (" count ", "count"),
    ],
)
def test_spaces_around_a_measures_parts_are_not_part_of_it(written, read, make_rule, make_event):
    """``sum: properties.amount`` (YAML's space after a colon) is ``sum:properties.amount``; it was refused as a
    path starting with a space. A key's own inner spaces stay."""
    assert check_measure(written) == read
    assert make_rule("threshold", measure=written).measure == read


@pytest.mark.parametrize(
    ("ops", "problem"),
    [
        ({"gte": 10, "lte": 5}, "gte: 10 and lte: 5 never match together: no value lies between them"),
        ({"gt": 5, "lt": 5}, "gt: 5 and lt: 5 never match together"),
        ({"gt": 5, "lte": 5}, "gt: 5 and lte: 5 never match together"),
        ({"gte": "2026-12-01", "lt": "2026-11-01"}, 'gte: "2026-12-01" and lt: "2026-11-01" never match together'),
        ({"gt": 5, "lt": "9"}, 'gt: 5 and lt: "9" never match together: a value is a number or a string, not both'),
        ({"exists": False, "eq": 3}, "exists: false with eq never matches"),
        ({"exists": False, "in": ["a"], "gt": 1}, "exists: false with gt, in never matches"),
    ],
)
def test_ops_no_value_can_satisfy_together_are_refused_at_load(ops, problem):
    """Such a predicate loaded and silently never matched: its rule never fired."""
    with pytest.raises(ValidationError, match=re.escape(problem)):
        Match.model_validate({"event": "Login", "where": {"properties.x": ops}})


@pytest.mark.parametrize(
    "ops",
    [
        {"gte": 5, "lte": 5},
        {"gt": 1, "lt": 1.5},
        {"gte": "2026-11-01", "lt": "2026-12-01"},
        {"exists": False, "ne": 3},
        {"exists": False, "not_in": ["a"]},
        {"exists": True, "eq": 3},
    ],
)
def test_ops_some_value_satisfies_still_load(ops):
    assert Match.model_validate({"event": "Login", "where": {"properties.x": ops}}).where
