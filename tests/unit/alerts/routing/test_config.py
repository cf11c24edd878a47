"""Loading routing files: good files load, bad ones raise ConfigError naming the file and the field."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from alerts.routing.config import RoutingConfig, Silence
from schemas.alert import Alert
from schemas.errors import ConfigError

GOLDEN = Path(__file__).parent / "golden"
REPO = Path(__file__).resolve().parents[4]


def test_full_file_loads_with_inherited_defaults() -> None:
    """A file using every section loads into typed, frozen models."""
    config = RoutingConfig.load(GOLDEN / "good_full.yaml")
    assert [r.name for r in config.receivers] == ["owner", "support", "console"]
    assert config.route.group_wait == 10.0
    assert config.route.routes[0].continue_ is True
    assert config.route.routes[1].group_interval == 3600.0
    assert str(config.route.routes[0].matchers[0]) == 'labels.team="support"'
    assert config.quiet_hours is not None
    assert config.quiet_hours.weekends
    assert config.silences[0].account_id == "acme"
    with pytest.raises(ValueError, match="frozen"):
        config.route.receiver = "x"  # type: ignore[misc]


@pytest.mark.parametrize("name", ["routes.example.yaml", "routes.demo.yaml"])
def test_shipped_routing_files_load(name: str) -> None:
    """The routing files in deploy/ are valid."""
    assert RoutingConfig.load(REPO / "deploy" / name).receivers


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("bad_unknown_receiver.yaml", "route.receiver: unknown receiver 'b' (known: a)"),
        ("bad_duplicate_receiver.yaml", "receivers[1].name: duplicate receiver name 'a'"),
        ("bad_matcher.yaml", "route.routes[0].matchers[0]: invalid matcher 'sev==x'"),
        ("bad_duration.yaml", "route.routes[0].group_wait: 'soon' is not a duration"),
        ("bad_unknown_field.yaml", "route.recevier: unknown key: did you mean 'receiver'? (allowed here: continue, "),
        ("bad_template.yaml", "receivers[0].email_configs[0].to[0]: invalid template"),
        ("bad_silence_everything.yaml", "silences[0]: a silence needs account_id, rule_id or matchers"),
        ("bad_timezone.yaml", "quiet_hours.timezone: unknown IANA timezone 'Mars/Olympus'"),
        ("bad_root_matchers.yaml", "route.matchers: the root route matches every alert"),
        ("bad_yaml.yaml", "line 2, column 3: not valid YAML: "),
        ("bad_root_without_receiver.yaml", "route.receiver: the root route needs a receiver"),
        ("bad_silence_naive_time.yaml", "silences[0].ends_at: needs a timezone, e.g. 2026-12-01T08:00:00Z"),
    ],
)
def test_bad_files_name_file_and_field(name: str, expected: str) -> None:
    """Each invalid file raises ConfigError with the file path and the dotted field path."""
    path = GOLDEN / name
    with pytest.raises(ConfigError) as info:
        RoutingConfig.load(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ")
    assert expected in message


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    """A path that does not exist raises ConfigError, not OSError."""
    with pytest.raises(ConfigError, match="cannot read routing file"):
        RoutingConfig.load(tmp_path / "nope.yaml")


def test_non_mapping_file_is_a_config_error(tmp_path: Path) -> None:
    """A YAML list instead of a mapping is refused with a reason."""
    path = tmp_path / "list.yaml"
    path.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="expected a mapping"):
        RoutingConfig.load(path)


@pytest.mark.parametrize(
    ("text", "got"), [("", "an empty file"), ("# just a comment\n", "an empty file"), ("hello\n", "a string")]
)
def test_an_empty_or_scalar_file_is_named_in_words(tmp_path: Path, text: str, got: str) -> None:
    """An empty routing file says 'got an empty file', never Python's 'NoneType'."""
    path = tmp_path / "routes.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        RoutingConfig.load(path)
    assert str(info.value) == f"{path}: expected a mapping with receivers and route, got {got}"


def test_silence_time_span_and_matching(make_alert: Callable[..., Alert]) -> None:
    """A silence is active in [starts_at, ends_at) and matches on its account, rule and matchers."""
    silence = Silence(
        account_id="acme",
        matchers=('severity="high"',),  # type: ignore[arg-type]
        starts_at=datetime(2026, 11, 23, tzinfo=UTC),
        ends_at=datetime(2026, 11, 24, tzinfo=UTC),
        reason="known incident",
    )
    start = datetime(2026, 11, 23, tzinfo=UTC).timestamp()
    assert silence.active_at(start)
    assert not silence.active_at(start - 1)
    assert not silence.active_at(start + 86400)
    assert silence.matches(make_alert(severity="high"))
    assert not silence.matches(make_alert(severity="low"))
    assert not silence.matches(make_alert(account_id="globex"))


def test_silence_must_start_before_it_ends() -> None:
    """starts_at after ends_at is refused."""
    with pytest.raises(ValueError, match="starts_at must be before ends_at"):
        Silence(
            rule_id="r",
            starts_at=datetime(2026, 11, 25, tzinfo=UTC),
            ends_at=datetime(2026, 11, 24, tzinfo=UTC),
            reason="x",
        )


def test_bad_webhook_url_error_hides_the_value(tmp_path: Path) -> None:
    """A malformed webhook URL is refused without echoing the (secret) value."""
    path = tmp_path / "routes.yaml"
    path.write_text(
        "receivers:\n  - name: a\n    slack_configs:\n      - webhook_url: hooks.slack.com/T0/B0/SECRETXYZ\n"
        "route:\n  receiver: a\n"
    )
    with pytest.raises(ConfigError) as info:
        RoutingConfig.load(path)
    assert "receivers[0].slack_configs[0].webhook_url: must be an http(s) URL" in str(info.value)
    assert "SECRETXYZ" not in str(info.value)
    assert "too_short" not in str(info.value)
    assert "at least 1 item" not in str(info.value)


def _load_text(tmp_path: Path, text: str) -> RoutingConfig:
    path = tmp_path / "routes.yaml"
    path.write_text(text)
    return RoutingConfig.load(path)


def test_field_and_reference_errors_are_reported_in_one_pass(tmp_path: Path) -> None:
    """A bad matcher, a bad duration and an unknown receiver are all reported at once, one per line."""
    with pytest.raises(ConfigError) as info:
        _load_text(
            tmp_path,
            "receivers: [{name: a}, {name: a}]\n"
            "route:\n  receiver: a\n  routes:\n"
            "    - {matchers: ['sev==x'], receiver: b}\n"
            "    - {group_wait: soon, receiver: a}\n",
        )
    lines = str(info.value).splitlines()
    assert len(lines) == 4, lines
    text = str(info.value)
    assert "receivers[1].name: duplicate receiver name 'a'" in text
    assert "route.routes[0].receiver: unknown receiver 'b' (known: a)" in text
    assert "route.routes[0].matchers[0]: invalid matcher 'sev==x'" in text
    assert "route.routes[1].group_wait: 'soon' is not a duration" in text


@pytest.mark.parametrize(
    ("matcher", "expected"),
    [
        ('severty="critical"', "unknown name 'severty': did you mean 'severity'?"),
        ('acount.tier="enterprise"', "unknown name 'acount.tier': a dotted name starts with account., labels."),
        (
            'account.tierr="enterprise"',
            "account.tierr is not a field of account (it has: account_id, customer_since, links",
        ),
        ('account.owner.mail="x"', "account.owner.mail is not a field of account.owner (it has: email, name, slack)"),
    ],
)
def test_unknown_matcher_names_are_errors_at_load(tmp_path: Path, matcher: str, expected: str) -> None:
    """A matcher naming a field an alert does not have is refused at load, with the known names."""
    with pytest.raises(ConfigError) as info:
        _load_text(
            tmp_path, f"receivers: [{{name: a}}]\nroute:\n  receiver: a\n  routes: [{{matchers: ['{matcher}']}}]\n"
        )
    assert "route.routes[0].matchers[0]: " + expected in str(info.value)


@pytest.mark.parametrize(
    "matcher", ['team="support"', 'labels.team="x"', 'evidence.value="3"', 'alertname="x"', 'owner="team-A"']
)
def test_labels_and_open_fields_are_valid_matcher_names(tmp_path: Path, matcher: str) -> None:
    """Bare label names (as in Alertmanager), labels.*, evidence.* and alertname load."""
    config = _load_text(
        tmp_path, f"receivers: [{{name: a}}]\nroute:\n  receiver: a\n  routes: [{{matchers: ['{matcher}']}}]\n"
    )
    assert len(config.route.routes[0].matchers) == 1


def test_group_by_refuses_what_alertmanager_refuses(tmp_path: Path) -> None:
    """'...' with other names and a name listed twice are load errors (Alertmanager refuses both)."""
    with pytest.raises(ConfigError) as info:
        _load_text(
            tmp_path,
            "receivers: [{name: a}]\nroute:\n  receiver: a\n  group_by: ['...', account_id]\n"
            "  routes: [{matchers: [team=x], group_by: [rule_id, account_id, rule_id]}]\n",
        )
    assert str(info.value).splitlines() == [
        f"{tmp_path / 'routes.yaml'}: route.group_by: '...' (every alert alone) cannot be combined with other "
        "names; use ['...'] alone",
        f"{tmp_path / 'routes.yaml'}: route.routes[0].group_by: 'rule_id' listed more than once",
    ]
    assert _load_text(tmp_path, "receivers: [{name: a}]\nroute: {receiver: a, group_by: ['...']}\n").route.group_by == (
        "...",
    )
    assert _load_text(tmp_path, "receivers: [{name: a}]\nroute: {receiver: a, group_by: []}\n").route.group_by == ()


def test_unknown_group_by_and_equal_names_are_errors(tmp_path: Path) -> None:
    """group_by and inhibit equal names are checked like matcher names."""
    with pytest.raises(ConfigError) as info:
        _load_text(
            tmp_path,
            "receivers: [{name: a}]\nroute: {receiver: a, group_by: [acount_id]}\n"
            "inhibit_rules: [{source_matchers: ['kind=composite'], target_matchers: ['kind=any'], equal: [rule]}]\n",
        )
    text = str(info.value)
    assert "route.group_by: unknown name 'acount_id': did you mean 'account_id'?" in text
    assert "inhibit_rules[0].equal: unknown name 'rule'" not in text  # a bare label, not close to a field
    assert len(text.splitlines()) == 1


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{ account.ownr.slack }}", "template uses account.ownr is not a field of account"),
        (
            "{{ acount.owner.slack }}",
            "template uses unknown variable 'acount' (templates see: account, accounts, alert",
        ),
        ("{% for a in alerts %}{{ a.titel }}{% endfor %}", "template uses a.titel is not a field of a"),
    ],
)
def test_unknown_template_variables_are_errors_at_load(tmp_path: Path, template: str, expected: str) -> None:
    """A template naming a variable or field that does not exist is refused at load."""
    with pytest.raises(ConfigError) as info:
        _load_text(
            tmp_path,
            f"receivers:\n  - name: a\n    slack_configs: [{{channel: '{template}'}}]\nroute: {{receiver: a}}\n",
        )
    assert "receivers[0].slack_configs[0].channel: " + expected in str(info.value)


def test_known_template_names_load(tmp_path: Path) -> None:
    """Templates using the context, loop variables, dict methods and open fields load."""
    template = (
        "{{ account.owner.slack }}{{ alert.labels.team }}{{ alert.evidence.anything }}{{ count }}{{ severity }}"
        "{% for a in alerts %}{{ a.account.name }}{% for k, v in a.account.links.items() %}{{ k }}{% endfor %}"
        "{% endfor %}"
    )
    config = _load_text(
        tmp_path, f"receivers:\n  - name: a\n    slack_configs: [{{channel: '{template}'}}]\nroute: {{receiver: a}}\n"
    )
    assert config.receivers[0].slack_configs[0].channel == template


def test_duplicate_keys_are_refused_with_their_line(tmp_path: Path) -> None:
    """A key given twice (the second silently winning before) is an error naming its line."""
    with pytest.raises(ConfigError, match=r"line 4, column 3: not valid YAML: duplicate key 'receiver'"):
        _load_text(tmp_path, "receivers: [{name: a}, {name: b}]\nroute:\n  receiver: a\n  receiver: b\n")


def test_yes_and_no_are_strings_where_strings_are_expected(tmp_path: Path) -> None:
    """`no` as a receiver name and `on` as a matcher value stay strings (YAML 1.2)."""
    config = _load_text(
        tmp_path, "receivers: [{name: no}]\nroute:\n  receiver: no\n  routes: [{matchers: [team=on]}]\n"
    )
    assert config.route.receiver == "no"
    assert config.route.routes[0].matchers[0].value == "on"


def test_field_errors_say_what_to_write(tmp_path: Path) -> None:
    """A misspelt key gets a "did you mean" and the keys allowed there, a single value where a list
    belongs says a list is expected, an empty required list says it needs an item — all in one pass."""
    path = tmp_path / "routes.yaml"
    path.write_text(
        "receivers: [{name: a, slack_config: [{channel: x}], email_configs: [{to: []}]}]\n"
        "route: {receiver: a, group_by: account_id}\n"
        "inhibit_rules: [{source_matchers: ['x=y'], target_matchers: ['x=z'], equals: [account_id]}]\n"
    )
    with pytest.raises(ConfigError) as caught:
        RoutingConfig.load(path)
    assert sorted(str(caught.value).splitlines()) == [
        f"{path}: inhibit_rules[0].equals: unknown key: did you mean 'equal'? "
        "(allowed here: equal, name, source_matchers, target_matchers)",
        f"{path}: receivers[0].email_configs[0].to: needs at least 1 item",
        f"{path}: receivers[0].slack_config: unknown key: did you mean 'slack_configs'? "
        "(allowed here: console_configs, email_configs, name, slack_configs)",
        f"{path}: route.group_by: expected a list, e.g. [a, b], not 'account_id'",
    ]


def test_quiet_hours_take_times_written_as_people_write_them(tmp_path: Path) -> None:
    """'8:00' is eight o'clock (pydantic alone refused it as 'input is too short'); '25:00' is refused in words."""
    base = "receivers: [{name: a}]\nroute: {receiver: a}\nquiet_hours: {start: '%s', end: '%s'}\n"
    config = _load_text(tmp_path, base % ("19:30", "8:00"))
    assert config.quiet_hours is not None
    assert (str(config.quiet_hours.start), str(config.quiet_hours.end)) == ("19:30:00", "08:00:00")
    with pytest.raises(ConfigError) as info:
        _load_text(tmp_path, base % ("25:00", "7"))
    assert str(info.value).splitlines() == [
        f"{tmp_path / 'routes.yaml'}: quiet_hours.start: expected a time of day like 08:00 or 20:30, got '25:00'",
        f"{tmp_path / 'routes.yaml'}: quiet_hours.end: expected a time of day like 08:00 or 20:30, got '7'",
    ]


def test_wrong_types_are_explained_without_pydantic_jargon(tmp_path: Path) -> None:
    """A number where text belongs, 'maybe' for continue, an empty reason and an unknown severity each
    get a plain sentence, not 'Input should be a valid string' or 'String should have at least 1 character'."""
    with pytest.raises(ConfigError) as info:
        _load_text(
            tmp_path,
            "receivers: [{name: a, slack_configs: [{channel: 5}]}]\n"
            "route: {receiver: a, routes: [{receiver: a, continue: maybe}]}\n"
            "silences: [{rule_id: r, ends_at: '2099-01-01T00:00:00Z', reason: ''}]\n"
            "quiet_hours: {start: '20:00', end: '08:00', bypass_severities: [urgent]}\n",
        )
    where = tmp_path / "routes.yaml"
    assert str(info.value).splitlines() == [
        f"{where}: receivers[0].slack_configs[0].channel: expected text, not 5",
        f"{where}: route.routes[0].continue: expected true or false, not 'maybe'",
        f"{where}: silences[0].reason: must not be empty",
        f"{where}: quiet_hours.bypass_severities[0]: expected one of critical, high, medium, low, info, not 'urgent'",
    ]


@pytest.mark.parametrize("to", ["not-an-address", "ops@example.com; oops", "<>"])
def test_a_literal_recipient_that_is_not_an_address_is_refused_at_load(tmp_path: Path, to: str) -> None:
    """A fixed (untemplated) ``to`` that holds no valid address would dead-letter every email: refused at load."""
    text = f'receivers: [{{name: a, email_configs: [{{to: ["{to}"]}}]}}]\nroute: {{receiver: a}}\n'
    with pytest.raises(ConfigError, match=r"email_configs\[0\]\.to: .*not an email address"):
        _load_text(tmp_path, text)


def test_literal_and_templated_recipients_load(tmp_path: Path) -> None:
    """Addresses with display names, lists and templates stay accepted."""
    text = (
        "receivers: [{name: a, email_configs: [{to: ['Ops <ops@example.com>', 'a@example.com, b@example.com',"
        " '{{ account.owner.email }}']}]}]\nroute: {receiver: a}\n"
    )
    assert _load_text(tmp_path, text).receivers[0].email_configs[0].to[0] == "Ops <ops@example.com>"


def test_a_receiver_type_written_without_configs_is_named(tmp_path: Path) -> None:
    """``slack:`` / ``email:`` in a receiver (the types as the docs say them) read "unknown key: (allowed here:
    …)" with no hint, while ``console:`` got one; each now names the key it means, and a key with no close
    match reads "unknown key (allowed here: …)"."""
    path = tmp_path / "routes.yaml"
    path.write_text(
        "receivers: [{name: a, slack: {channel: x}}, {name: b, email: {to: x@example.com}}, {name: c, pager: {}}]\n"
        "route: {receiver: a}\n"
    )
    with pytest.raises(ConfigError) as caught:
        RoutingConfig.load(path)
    allowed = "(allowed here: console_configs, email_configs, name, slack_configs)"
    assert sorted(str(caught.value).splitlines()) == [
        f"{path}: receivers[0].slack: unknown key: did you mean 'slack_configs'? {allowed}",
        f"{path}: receivers[1].email: unknown key: did you mean 'email_configs'? {allowed}",
        f"{path}: receivers[2].pager: unknown key {allowed}",
    ]
