"""``preempt notifier`` — run the Faust notifier app (``preempt-notify``)."""

from __future__ import annotations

import click

from streams.runtime.logs import (
    configure_logging,
    faust_loglevel_option,
    get_logger,
    run_faust_worker,
)
from streams.runtime.settings import Settings


@click.command()
@faust_loglevel_option
def notifier(loglevel: str) -> None:
    """Run a notifier: consume preempt.alerts, route, group and deliver to Slack, email or the console.

    The routing file comes from PREEMPT_ROUTES_PATH (without it every alert is printed to the
    console). Start more notifiers with the same settings to scale out (on one machine each with its own
    PREEMPT_NOTIFIER_WEB_PORT); they share the partitions. Slack and SMTP credentials and every other
    PREEMPT_* setting: docs/settings.md.
    """

    from alerts.app import console_routing, create_app, ensure_notifier_topics
    from alerts.channels.factory import build_notifiers
    from alerts.routing.config import RoutingConfig
    from schemas.errors import ConfigError
    from streams.runtime.broker_probe import probe_broker
    from streams.runtime.faust_compat import (
        UntestedFaustError,
        leader_topic_name,
        require_tested_versions,
        watch_store_writes,
    )
    from streams.runtime.kafka_permissions import check_permissions
    from streams.runtime.missing_topics import discard_stale_stores
    from streams.runtime.ops_web import check_web_port
    from streams.runtime.store_full import StopOnFullDisk, expose_data_dir_space
    from streams.runtime.topics import changelog_topics, ensure_changelog_topics

    settings = Settings()
    try:
        require_tested_versions(settings.allow_untested_faust)
    except UntestedFaustError as exc:
        raise click.ClickException(str(exc)) from None
    configure_logging(settings.log_format, settings.log_level)
    log = get_logger("alerts.notifier")
    for warning in settings.smtp_warnings():
        log.warning("smtp settings", problem=warning)
    for warning in settings.guarantee_warnings():
        log.warning("processing guarantee", problem=warning)
    try:
        routing = RoutingConfig.load(settings.routes_path) if settings.routes_path is not None else console_routing()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    try:  # a destination these settings cannot send to: one line naming the file and the entry, before the broker
        notifiers = build_notifiers(routing, settings, source=settings.routes_path)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    check_web_port(settings.web_host, settings.notifier_web_port, "PREEMPT_NOTIFIER_WEB_PORT")
    probe_broker(settings)
    ensure_notifier_topics(settings)
    app = create_app(settings, routing, notifiers)
    # The tables' changelogs exist before the group forms (see ensure_changelog_topics).
    changelogs = changelog_topics(app, settings.topic_partitions)
    # The group first (its committed offsets decide whether a missing changelog may be made): one line if refused.
    check_permissions(settings, group_id=app.conf.id, client_id="preempt-notify-admin")
    created = ensure_changelog_topics(
        settings, changelogs, source=settings.topic("alerts"), group=app.conf.id, client_id="preempt-notify-admin"
    )
    discard_stale_stores(app, created)  # a changelog made anew: the local files of its deleted one go
    # A missing consumer-group or CREATE ACL: one line now, not a silent wait or Faust's traceback.
    declared = [t.name for t in changelogs] + [name for name in (leader_topic_name(app),) if name]
    check_permissions(settings, group_id=app.conf.id, declared_topics=declared, client_id="preempt-notify-admin")
    log.info(
        "notifier starting",
        routes=str(settings.routes_path) if settings.routes_path else "console (PREEMPT_ROUTES_PATH unset)",
        web_port=settings.notifier_web_port,
    )
    app.stop_deadline_seconds = settings.stop_timeout_seconds  # a stop that hangs ends with an ERROR line
    # A full disk under the table store: one CRITICAL line and exit 1, never a dead letter (store_full.py).
    watch_store_writes(StopOnFullDisk("notifier", settings.data_dir))
    expose_data_dir_space(app.conf.name, settings.data_dir)
    run_faust_worker(app, loglevel, settings.log_format, settings.log_level, redirect_stdouts=False)
