"""``preempt routes check FILE`` and ``preempt routes test FILE --alert alert.json`` (like amtool).

``check`` validates a routing file and prints its tree; ``test`` prints which receivers an alert
reaches and why (the route path), and whether a configured silence or quiet hours would hold it.
Both exit 1 with the error on stderr when the file (or the alert) is invalid.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path

import click

from alerts.cli import logs_to_stderr
from alerts.cli.preview import PreviewError, load_alert
from alerts.dispatch import alert_timezone
from alerts.routing.config import ReceiverConfig, RouteConfig, RoutingConfig
from alerts.routing.matchers import Matcher, describe
from alerts.routing.names import shadowed_field_note
from alerts.routing.quiet_hours import defer_until, quiet_zone
from alerts.routing.silences import SilenceSet
from alerts.routing.tree import RoutingTree
from schemas.errors import ConfigError
from schemas.formatting import datetime_text
from schemas.rfc3339 import MAX_EPOCH, MIN_EPOCH


def _seconds(value: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if value >= size and value % size == 0:
            return f"{int(value // size)}{unit}"
    return f"{value:g}s"


def _channels(receiver: ReceiverConfig) -> str:
    parts = [
        f"{len(configs)} {kind}"
        for kind, configs in (
            ("slack", receiver.slack_configs),
            ("email", receiver.email_configs),
            ("console", receiver.console_configs),
        )
        if configs
    ]
    return ", ".join(parts) or "no channels (drops what it receives)"


def _tree_lines(route: RouteConfig, depth: int = 1) -> list[str]:
    label = route.name or (describe(route.matchers) if route.matchers else "root" if depth == 1 else "{}")
    extras = []
    if route.receiver:
        extras.append(f"receiver={route.receiver}")
    if route.group_by is not None:
        extras.append(f"group_by=[{','.join(route.group_by)}]")
    for name in ("group_wait", "group_interval", "repeat_interval"):
        value = getattr(route, name)
        if value is not None:
            extras.append(f"{name}={_seconds(value)}")
    if route.continue_:
        extras.append("continue")
    lines = [f"{'  ' * depth}- {label}  {' '.join(extras)}".rstrip()]
    for child in route.routes:
        lines += _tree_lines(child, depth + 1)
    return lines


def _notes(config: RoutingConfig) -> list[str]:
    """Valid but likely unintended: bare matcher names reading a label spelled like a field; unreachable routes."""
    where: list[tuple[str, tuple[Matcher, ...]]] = []

    def walk(route: RouteConfig, at: str) -> None:
        where.append((f"{at}.matchers", route.matchers))
        for i, child in enumerate(route.routes):
            walk(child, f"{at}.routes[{i}]")

    walk(config.route, "route")
    for i, rule in enumerate(config.inhibit_rules):
        where += [(f"inhibit_rules[{i}].source_matchers", rule.source_matchers)]
        where += [(f"inhibit_rules[{i}].target_matchers", rule.target_matchers)]
    where += [(f"silences[{i}].matchers", s.matchers) for i, s in enumerate(config.silences)]
    notes = []
    for at, matchers in where:
        for matcher in matchers:
            note = shadowed_field_note(matcher.name)
            if note is not None:
                notes.append(f"{at}: {note}")
    notes += _unreachable(config.route, "route")
    return list(dict.fromkeys(notes))


def _unreachable(route: RouteConfig, at: str) -> list[str]:
    """Routes after a catch-all sibling (no matchers, no ``continue``): it takes every alert that gets to it, as in
    Alertmanager, so they never match — usually a default route written first."""
    notes: list[str] = []
    catch_all: str | None = None
    for i, child in enumerate(route.routes):
        here = f"{at}.routes[{i}]"
        named = f"{here} ({child.name})" if child.name else here
        if catch_all is not None:
            notes.append(
                f"{named}: never reached: {catch_all} has no matchers and no continue, so it takes every alert "
                "that gets past the routes before it"
            )
            continue
        notes += _unreachable(child, here)
        if not child.matchers and not child.continue_:
            catch_all = named
    return notes


def _load(path: Path) -> RoutingConfig:
    try:
        return RoutingConfig.load(path)
    except ConfigError as exc:
        for line in str(exc).splitlines():  # one problem per line, each naming the file
            click.echo(f"Error: {line}", err=True)
        sys.exit(1)


@click.group("routes")
def routes() -> None:
    """Check and test notification routing files (docs/notifications.md)."""
    logs_to_stderr()


@routes.command("check")
@click.argument("path", type=click.Path(path_type=Path))
def check(path: Path) -> None:
    """Validate a routing FILE and print a summary of its receivers and route tree.

    \b
      preempt routes check deploy/routes.example.yaml
    """
    config = _load(path)
    now = datetime.now(UTC).timestamp()
    active = sum(1 for s in config.silences if s.active_at(now))
    click.echo(f"{path}: OK")
    for note in _notes(config):
        click.echo(f"note: {note}")
    click.echo(f"receivers ({len(config.receivers)}):")
    for receiver in config.receivers:
        click.echo(f"  {receiver.name}: {_channels(receiver)}")
    click.echo("route tree:")
    for line in _tree_lines(config.route):
        click.echo(line)
    click.echo(f"inhibit rules: {len(config.inhibit_rules)}")
    click.echo(f"silences: {len(config.silences)} ({active} active now)")
    quiet = config.quiet_hours
    if quiet is None:
        click.echo("quiet hours: none")
    else:
        weekends = ", weekends" if quiet.weekends else ""
        bypass = ",".join(quiet.bypass_severities) or "none"
        click.echo(
            f"quiet hours: {quiet.start:%H:%M}–{quiet.end:%H:%M}{weekends} in the owner's timezone "
            f"(default {quiet.timezone}); bypass: {bypass}"
        )


# Quiet hours look up to a week past --now (the end of a weekend) in the owner's timezone: a later --now ran
# past the last date Python has (an OverflowError traceback), as did one before 1970 in a zone ahead of UTC.
_LATEST_NOW = MAX_EPOCH - 8 * 86400  # 9999-12-24T00:00:00Z


def _parse_now(text: str | None) -> float:
    if text is None:
        return datetime.now(UTC).timestamp()
    not_a_time = f"{text!r} is not an RFC 3339 time; write e.g. 2026-11-27T21:00:00+01:00"
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise click.BadParameter(not_a_time, param_hint="'--now'") from None
    if "T" not in text.upper():  # a date alone: fromisoformat reads it as midnight, with no zone
        raise click.BadParameter(not_a_time, param_hint="'--now'")
    if when.tzinfo is None:
        raise click.BadParameter(
            f"{text!r} has no timezone; add one, e.g. {text}Z or {text}+01:00", param_hint="'--now'"
        )
    try:
        now = when.timestamp()
    except (ValueError, OverflowError):  # year 1 at an offset ahead of UTC is year 0 in UTC
        now = -1.0
    if not MIN_EPOCH <= now <= _LATEST_NOW:
        raise click.BadParameter(
            f"{text!r} must lie between 1970-01-01T00:00:00Z and 9999-12-24T00:00:00Z", param_hint="'--now'"
        )
    return now


@routes.command("test")
@click.argument("path", type=click.Path(path_type=Path))
@click.option(
    "--alert",
    "alert_path",
    required=True,
    help="alert JSON file (the preempt.alerts value), - for stdin, or a JSONL of alerts with --alert-id/--index",
)
@click.option("--alert-id", default=None, help="the alert with this alert_id in a JSONL file (e.g. a backtest's)")
@click.option("--index", type=int, default=None, help="the N-th alert of a JSONL file, counting from 1")
@click.option(
    "--now", "now_text", metavar="TIME", default=None, help="RFC 3339 time for silences and quiet hours (default: now)"
)
@click.option("--verify-receivers", default=None, help="comma-separated receivers expected; exit 1 if different")
def test(
    path: Path,
    alert_path: str,
    alert_id: str | None,
    index: int | None,
    now_text: str | None,
    verify_receivers: str | None,
) -> None:
    """Print which receivers the alert in --alert reaches through routing FILE, and why. Examples:

    \b
      preempt routes test deploy/routes.example.yaml --alert docs/examples/alert.json
      preempt routes test deploy/routes.example.yaml --alert alerts.jsonl --index 3 --verify-receivers csm-owner
    """
    if alert_id is not None and index is not None:
        raise PreviewError("give --alert-id or --index, not both")
    now = _parse_now(now_text)
    config = _load(path)
    alert = load_alert(alert_path, alert_id, index)
    tree = RoutingTree(config)
    matches = tree.match(alert)
    receivers = list(dict.fromkeys(m.receiver for m in matches))  # the notifier sends once per receiver
    click.echo(",".join(receivers))
    seen: set[str] = set()
    for m in matches:
        if m.receiver in seen:
            click.echo(f"  {m.receiver}: also via {' → '.join(m.path)} (not sent twice: the first route's grouping)")
            continue
        seen.add(m.receiver)
        click.echo(
            f"  {m.receiver}: via {' → '.join(m.path)}; group_by=[{','.join(m.group_by)}] "
            f"group_wait={_seconds(m.group_wait)} group_interval={_seconds(m.group_interval)} "
            f"repeat_interval={_seconds(m.repeat_interval)}"
        )
    silence = SilenceSet(config.silences).silenced_by(alert, now)
    if silence is not None:
        click.echo(f"silenced by {silence.id} until {silence.ends_at.isoformat()}: {silence.reason}")
    quiet = config.quiet_hours
    if quiet is not None and quiet.applies_to(alert):
        zone_name = alert_timezone(alert)
        until = defer_until(quiet, zone_name, now)
        if until is not None:
            # In the clock quiet hours follow (the owner's), as RFC 3339 and as the words alerts use.
            zone = quiet_zone(quiet, zone_name)
            local = datetime.fromtimestamp(until, UTC).astimezone(zone)
            click.echo(f"quiet hours: deferred until {local.isoformat()} ({datetime_text(until, zone.key)})")
    if verify_receivers is not None:
        expected = [r.strip() for r in verify_receivers.split(",") if r.strip()]
        if receivers != expected:
            # "(none)" rather than nothing: '--verify-receivers ""' (a silenced alert) read "expected receivers , got"
            click.echo(
                f"Error: expected receivers {','.join(expected) or '(none)'}, got {','.join(receivers) or '(none)'}",
                err=True,
            )
            sys.exit(1)
