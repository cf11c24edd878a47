"""Routing files written for Alertmanager: the braces matcher form, match/match_re, api_url, and
a specific message for every Alertmanager key Preempt does not support."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from alerts.cli.routes import routes
from alerts.routing.config import RoutingConfig
from alerts.routing.tree import RoutingTree
from schemas.alert import Alert
from schemas.errors import ConfigError

GOLDEN = Path(__file__).parent / "golden"


@pytest.fixture(scope="module")
def tree() -> RoutingTree:
    """The Alertmanager-style golden file, loaded as it is."""
    return RoutingTree(RoutingConfig.load(GOLDEN / "alertmanager_style.yaml"))


@pytest.mark.parametrize(
    ("labels", "overrides", "receivers"),
    [
        ({"owner": "team-A", "level": "critical"}, {}, ["team-A-slack"]),
        ({"owner": "team-A", "level": "warning"}, {}, ["team-A-mails"]),
        ({"owner": "team-B"}, {"severity": "high"}, ["team-B-slack", "team-B-mails"]),
        ({"owner": "team-B"}, {"severity": "low"}, ["team-B-mails"]),
        ({}, {"rule_id": "nps-detractor"}, ["team-X-mails"]),
        ({"owner": "team-C"}, {}, ["team-X-mails"]),
    ],
)
def test_alertmanager_tree_routes_as_alertmanager_would(
    tree: RoutingTree,
    make_alert: Callable[..., Alert],
    labels: dict[str, str],
    overrides: dict[str, str],
    receivers: list[str],
) -> None:
    """Braces matchers, match/match_re maps and continue route exactly as in Alertmanager."""
    alert = make_alert(labels=labels, **overrides)
    assert [m.receiver for m in tree.match(alert)] == receivers


def test_braces_set_and_match_maps_become_plain_matchers() -> None:
    """'{a="x", b=~"y"}' becomes two matchers; match/match_re and source_match* become matchers too."""
    config = RoutingConfig.load(GOLDEN / "alertmanager_style.yaml")
    team_b = config.route.routes[1]
    assert [str(m) for m in team_b.matchers] == ['owner="team-B"', 'severity=~"critical|high"']
    assert [str(m) for m in config.route.routes[2].matchers] == ['owner="team-B"']
    assert [str(m) for m in config.route.routes[3].matchers] == ['alertname=~"^(?:nps-detractor|churn-.*)$"']
    inhibit = config.inhibit_rules[1]
    assert [str(m) for m in inhibit.source_matchers] == ['kind="composite"']
    assert [str(m) for m in inhibit.target_matchers] == ['kind=~"^(?:threshold|spike)$"']


def test_match_map_booleans_and_numbers_read_as_written(tmp_path: Path, make_alert: Callable[..., Alert]) -> None:
    """`match: {page: true, tier: 1}` matches the labels a rule file's `page: true, tier: 1` give ("true",
    "1"), as in Alertmanager; Python's spelling "True" matched no alert."""
    path = tmp_path / "routes.yaml"
    path.write_text(
        "route:\n  receiver: all\n  routes:\n    - match: {page: true, tier: 1}\n      receiver: pager\n"
        "receivers:\n  - name: all\n    console_configs: [{}]\n  - name: pager\n    console_configs: [{}]\n"
    )
    tree = RoutingTree(RoutingConfig.load(path))
    assert [m.receiver for m in tree.match(make_alert(labels={"page": "true", "tier": "1"}))] == ["pager"]


def test_slack_api_url_is_the_webhook_url() -> None:
    """Alertmanager's slack api_url is read as Preempt's webhook_url."""
    config = RoutingConfig.load(GOLDEN / "alertmanager_style.yaml")
    webhook = config.receiver("team-A-slack").slack_configs[0].webhook_url
    assert webhook is not None
    assert webhook.get_secret_value() == "https://hooks.slack.com/services/T0/B0/XXXX"


def test_every_unsupported_alertmanager_key_is_named_in_one_pass() -> None:
    """Each Alertmanager-only key gets its own line saying it is not supported and what to use instead."""
    path = GOLDEN / "alertmanager_unsupported.yaml"
    with pytest.raises(ConfigError) as caught:
        RoutingConfig.load(path)
    lines = str(caught.value).splitlines()
    assert all(line.startswith(f"{path}: ") for line in lines)
    body = [line.removeprefix(f"{path}: ") for line in lines]
    expected_starts = [
        "global: Alertmanager's global is not supported: Preempt takes Slack and SMTP settings from PREEMPT_*",
        "templates: Alertmanager's templates is not supported",
        "time_intervals: Alertmanager's time_intervals is not supported: Preempt has quiet_hours",
        "route.routes[0].mute_time_intervals: Alertmanager's mute_time_intervals is not supported",
        "receivers[0].webhook_configs: Alertmanager's webhook_configs is not supported: Preempt delivers to Slack",
        "receivers[0].slack_configs[0].send_resolved: Alertmanager's send_resolved is not supported",
        "receivers[1].pagerduty_configs: Alertmanager's pagerduty_configs is not supported",
        "receivers[1].email_configs[0].smarthost: Alertmanager's smarthost is not supported: "
        "the SMTP server comes from PREEMPT_SMTP_HOST",
    ]
    for start in expected_starts:
        assert any(line.startswith(start) for line in body), (start, body)
    assert len(body) == len(expected_starts), body
    assert "Extra inputs" not in str(caught.value)


def test_routes_check_prints_unsupported_keys_without_a_traceback() -> None:
    """`preempt routes check` on an Alertmanager file exits 1 and lists the unsupported keys on stderr."""
    result = CliRunner().invoke(routes, ["check", str(GOLDEN / "alertmanager_unsupported.yaml")])
    assert result.exit_code == 1
    assert "webhook_configs: Alertmanager's webhook_configs is not supported" in result.stderr
    assert "Traceback" not in result.output


def test_routes_check_accepts_the_alertmanager_style_file() -> None:
    """`preempt routes check` passes an Alertmanager-style file that only uses supported concepts."""
    result = CliRunner().invoke(routes, ["check", str(GOLDEN / "alertmanager_style.yaml")])
    assert result.exit_code == 0, result.output
    assert '{owner="team-B",severity=~"critical|high"}  receiver=team-B-slack continue' in result.output


def test_go_templates_from_alertmanager_are_named_as_such(tmp_path: Path) -> None:
    """A Slack title or text written as Alertmanager's Go template ({{ .CommonLabels.alertname }},
    {{ range .Alerts }}) says that Preempt templates are Jinja2 and shows one, instead of "unexpected '.'"."""
    path = tmp_path / "am.yml"
    path.write_text(
        "receivers:\n  - name: slack\n    slack_configs:\n"
        "      - channel: '#alerts'\n"
        "        title: '{{ .CommonLabels.alertname }}'\n"
        '        text: "{{ range .Alerts }}{{ .Annotations.description }}{{ end }}"\n'
        "route: {receiver: slack}\n"
    )
    with pytest.raises(ConfigError) as caught:
        RoutingConfig.load(path)
    lines = str(caught.value).splitlines()
    assert [line.split(": ")[1] for line in lines] == [
        "receivers[0].slack_configs[0].title",
        "receivers[0].slack_configs[0].text",
    ]
    assert all("an Alertmanager (Go) template is not supported: Preempt templates are Jinja2" in line for line in lines)
    with pytest.raises(ValueError, match="invalid template: unexpected end of template"):
        RoutingConfig.model_validate(
            {"receivers": [{"name": "a", "console_configs": [{"text": "{{ x"}]}], "route": {"receiver": "a"}}
        )


def test_a_silence_as_alertmanager_writes_it_loads(tmp_path: Path, make_alert: Callable[..., Alert]) -> None:
    """A silence copied from Alertmanager (``amtool silence query -o json``, the API's shape) loads: its
    ``matchers`` objects (``name``, ``value``, ``isRegex``, ``isEqual``), ``startsAt``, ``endsAt``, ``createdBy`` and
    ``comment`` (the reason). Each of those keys was refused ("unknown key"), ``comment`` with no hint."""
    path = tmp_path / "routes.yaml"
    path.write_text(
        """
receivers: [{name: a}]
route: {receiver: a}
silences:
  - matchers:
      - {name: account_id, value: acme, isRegex: false}
      - {name: alertname, value: "usage-.*", isRegex: true}
      - {name: severity, value: critical, isRegex: false, isEqual: false}
    startsAt: "2026-11-27T18:00:00Z"
    endsAt: "2026-11-30T08:00:00Z"
    createdBy: jane@example.com
    comment: planned migration (CS-4711)
""",
        encoding="utf-8",
    )
    (silence,) = RoutingConfig.load(path).silences
    assert [str(m) for m in silence.matchers] == ['account_id="acme"', 'alertname=~"usage-.*"', 'severity!="critical"']
    assert silence.reason == "planned migration (CS-4711)"
    assert silence.created_by == "jane@example.com"
    assert silence.starts_at is not None
    assert silence.starts_at.isoformat() == "2026-11-27T18:00:00+00:00"
    assert silence.ends_at.isoformat() == "2026-11-30T08:00:00+00:00"
    assert silence.matches(make_alert(account_id="acme", rule_id="usage-drop", severity="high"))
    assert not silence.matches(make_alert(account_id="acme", rule_id="usage-drop", severity="critical"))


def test_an_alertmanager_silence_key_given_twice_or_a_bad_matcher_object_is_named(tmp_path: Path) -> None:
    """``comment`` beside ``reason`` (the same field twice) and a matcher object without ``value`` are one line each."""
    path = tmp_path / "routes.yaml"
    path.write_text(
        """
receivers: [{name: a}]
route: {receiver: a}
silences:
  - matchers: [{name: account_id}]
    endsAt: "2026-11-30T08:00:00Z"
    comment: x
    reason: y
""",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as info:
        RoutingConfig.load(path)
    assert str(info.value).splitlines() == [
        f"{path}: silences[0].comment: give the reason once, as reason (Alertmanager's comment)",
        f"{path}: silences[0].matchers[0]: a matcher is a string like 'severity=\"critical\"', got a mapping "
        "{'name': 'account_id'} (a silence also takes Alertmanager's matcher object: name, value, and optionally "
        "isRegex and isEqual)",
    ]
