"""build_notifiers: receiver name → its channels."""

from __future__ import annotations

from pathlib import Path

import pytest

from alerts.channels.console import ConsoleNotifier
from alerts.channels.email import EmailNotifier
from alerts.channels.factory import build_notifiers
from alerts.channels.slack import SlackNotifier
from alerts.routing.config import RoutingConfig
from schemas.errors import ConfigError
from streams.runtime.settings import Settings


def _config(*receivers: dict[str, object]) -> RoutingConfig:
    return RoutingConfig.model_validate({"receivers": list(receivers), "route": {"receiver": receivers[0]["name"]}})


def test_every_receiver_gets_its_channels_in_order() -> None:
    """Slack, email and console configs become notifiers under the receiver's name."""
    config = _config(
        {
            "name": "owner",
            "slack_configs": [{"channel": "{{ account.owner.slack }}"}],
            "email_configs": [{"to": "{{ account.owner.email }}"}],
        },
        {"name": "demo", "console_configs": [{}]},
        {"name": "void"},
    )
    notifiers = build_notifiers(config, Settings(slack_bot_token="xoxb-test"))
    assert [type(n) for n in notifiers["owner"]] == [SlackNotifier, EmailNotifier]
    assert [type(n) for n in notifiers["demo"]] == [ConsoleNotifier]
    assert notifiers["void"] == []
    assert {n.receiver_type for n in notifiers["owner"]} == {"slack", "email"}


def test_misconfigured_slack_fails_at_build() -> None:
    """A Slack config that cannot post is a ConfigError at start, before any alert."""
    config = _config({"name": "owner", "slack_configs": [{"channel": "#cs"}]})
    with pytest.raises(ConfigError, match="owner"):
        build_notifiers(config, Settings())


def test_an_smtp_ca_file_that_is_not_pem_fails_at_build(tmp_path: Path) -> None:
    """An SMTP CA bundle that is not PEM is a ConfigError naming the setting at start; it failed every email's
    TLS handshake instead, retried for an hour."""
    junk = tmp_path / "smtp-ca.pem"
    junk.write_text("not a certificate\n")
    config = _config({"name": "mail", "email_configs": [{"to": "ops@example.com"}]})
    with pytest.raises(ConfigError, match=r"^PREEMPT_SMTP_CA_FILE=.*smtp-ca.pem: not a PEM bundle of CA certificates"):
        build_notifiers(config, Settings(smtp_starttls=True, smtp_ca_file=junk))


def test_demo_routes_build_without_credentials() -> None:
    """deploy/routes.demo.yaml needs no secrets."""
    from pathlib import Path

    repo = Path(__file__).resolve().parents[4]
    notifiers = build_notifiers(RoutingConfig.load(repo / "deploy" / "routes.demo.yaml"), Settings())
    assert [type(n) for n in notifiers["console"]] == [ConsoleNotifier]


def test_slack_notifiers_share_one_limiter_spaced_a_little_over_a_second() -> None:
    """Every Slack notifier shares one per-channel limiter, spaced over one second so that the jitter of the
    requests themselves cannot bring two posts to one channel closer than Slack's one a second."""
    config = _config(
        {"name": "a", "slack_configs": [{"channel": "#cs"}]},
        {"name": "b", "slack_configs": [{"channel": "#cs"}, {"channel": "#ops"}]},
    )
    notifiers = build_notifiers(config, Settings(slack_bot_token="xoxb-test"))
    limiters = {id(n._limiter) for name in ("a", "b") for n in notifiers[name] if isinstance(n, SlackNotifier)}
    assert len(limiters) == 1
    limiter = next(n._limiter for n in notifiers["a"] if isinstance(n, SlackNotifier))
    assert 1.0 < limiter.min_interval <= 1.1


@pytest.mark.parametrize(
    ("entry", "settings", "why"),
    [
        ({"channel": "{{ account.owner.slack }}"}, {"slack_webhook_url": "https://hooks.example.com/x"}, "is not set"),
        (
            {"channel": "#cs", "webhook_url": "https://hooks.example.com/y"},
            {"slack_bot_token": "xoxb-test"},
            "the entry has a webhook_url",
        ),
    ],
)
def test_a_channel_a_webhook_ignores_is_a_warning_naming_the_entry(
    entry: dict[str, str], settings: dict[str, str], why: str, tmp_path: Path
) -> None:
    """An entry whose ``channel`` goes unused (it posts through an incoming webhook, which has one channel of its own)
    says so once at start, naming the file and the field: owners' DMs went to the webhook's channel without a word."""
    from structlog.testing import capture_logs

    config = _config({"name": "console", "console_configs": [{}]}, {"name": "owner", "slack_configs": [entry]})
    with capture_logs() as logs:
        notifiers = build_notifiers(config, Settings(**settings), source=tmp_path / "routes.yaml")
    assert [getattr(n, "mode", None) for n in notifiers["owner"]] == ["webhook"]
    (warning,) = [r for r in logs if r["event"].startswith("slack channel ignored")]
    assert warning["log_level"] == "warning"
    assert warning["field"] == f"{tmp_path / 'routes.yaml'}: receivers[1].slack_configs[0].channel"
    assert why in warning["why"]


def test_a_bot_channel_or_a_webhook_without_channel_warns_nothing() -> None:
    """The usual entries (a bot token's channel, a webhook with no channel) build without a warning."""
    from structlog.testing import capture_logs

    config = _config(
        {"name": "owner", "slack_configs": [{"channel": "#cs"}, {"webhook_url": "https://hooks.example.com/z"}]}
    )
    with capture_logs() as logs:
        build_notifiers(config, Settings(slack_bot_token="xoxb-test"))
    assert not [r for r in logs if r["event"].startswith("slack channel ignored")]
