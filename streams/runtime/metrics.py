"""Every Preempt metric, declared once (listed with their meaning in docs/operations.md, "Metrics").

Label values are bounded: outcomes, reasons, rule ids, severities, receiver types —
never an account id, user id or alert id. Rule ids are bounded by the rule pack.
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import Counter, Gauge, Histogram

from schemas import observed
from schemas.observed import Anomaly

# --- events (rules worker, ingest) -------------------------------------------------------------
EVENTS = Counter(
    "preempt_events_total",
    "Events read by the rules worker, by outcome (accepted, dead_lettered, duplicate, late).",
    ["outcome"],
)
EVENTS_ACKED = Counter(
    "preempt_events_acked_total",
    "Records of preempt.events whose output is written and whose offsets are acked (committable).",
)
EVENTS_DEAD_LETTERED = Counter(
    "preempt_events_dead_lettered_total",
    "Records sent to the events dead-letter topic, by reason code.",
    ["reason"],
)
LATE_EVENTS = Counter(
    "preempt_late_events_total",
    "Events older than the watermark, counted and ignored, by partition of preempt.events.",
    ["partition"],
)
DUPLICATE_EVENTS = Counter(
    "preempt_duplicate_events_total",
    "Events whose event_id was already seen for the account within the dedup horizon, by source: read_again "
    "(records evaluated before, read again from the committed offset after a restart or rebalance) or producer "
    "(the same event published again).",
    ["source"],
)
DUPLICATE_READ_AGAIN = "read_again"
DUPLICATE_FROM_PRODUCER = "producer"
INGEST_REQUESTS = Counter(
    "preempt_ingest_requests_total",
    "HTTP ingest requests, by HTTP status code.",
    ["status"],
)
INGEST_EVENTS = Counter(
    "preempt_ingest_events_total",
    "Events received over HTTP ingest, by outcome (accepted, rejected).",
    ["outcome"],
)
INGEST_TRACKING_CALLS = Counter(
    "preempt_ingest_tracking_calls_total",
    "Segment/RudderStack tracking-API calls, by type (track, identify, group, page, screen, alias, unknown) "
    "and outcome (accepted, rejected, ignored, skipped).",
    ["type", "outcome"],
)
INGEST_TRACKING_CALLS_SKIPPED = Counter(
    "preempt_ingest_tracking_calls_skipped_total",
    "Tracking-API calls that are not errors and became no event, by type (identify, page, screen) and reason "
    "(no_account: an anonymous visitor's call without an account); never dead-lettered.",
    ["type", "reason"],
)
INGEST_ACCOUNT_UPDATES_REFUSED = Counter(
    "preempt_ingest_account_updates_refused_total",
    "Group calls whose account traits were not written to the accounts topic because the key's source is "
    "event-only (PREEMPT_INGEST_EVENT_ONLY_SOURCES: a browser's public key); the calls' events were taken.",
    ["source"],
)
INGEST_DEAD_LETTERS = Counter(
    "preempt_ingest_dead_letters_total",
    "Items rejected by HTTP ingest sent to the events dead-letter topic, by outcome "
    "(written; failed: not acknowledged, may be lost).",
    ["outcome"],
)
INGEST_WRITES_FAILING = Gauge(
    "preempt_ingest_writes_failing",
    "Kinds of write of this ingest process (events, account_updates, account_merges, dead_letters) whose every "
    "attempt has failed for PREEMPT_INGEST_WRITES_FAILING_SECONDS, with no success since: /readyz 503 'writes "
    "failing' for events, listed under 'degraded' for the others (streams/ingest/write_health.py).",
    ["write"],
)
INGEST_ACCOUNT_MERGES = Counter(
    "preempt_ingest_account_merges_total",
    "Account patches from group calls folded into preempt.accounts, by outcome (merged, unchanged, "
    "invalid_patch, replaced_invalid_record).",
    ["outcome"],
)

# --- rules -------------------------------------------------------------------------------------
RULE_EVALUATIONS = Counter(
    "preempt_rule_evaluations_total",
    "Rule evaluations (an event or clock advance applied to one rule's state).",
    ["rule"],
)
ALERTS = Counter(
    "preempt_alerts_total",
    "Alerts emitted to the alerts topic, by rule and severity.",
    ["rule", "severity"],
)
EVENT_TO_ALERT = Histogram(
    "preempt_event_to_alert_seconds",
    "Wall-clock time from when the alert was due (its newest event's time, or the deadline or tick that fired "
    "it) to the alert being emitted.",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300),
)
WATERMARK = Gauge(
    "preempt_watermark_seconds",
    "The rules worker's event-time clock (epoch seconds), per worker.",
)
DEADLINE_WORK_BEHIND = Gauge(
    "preempt_deadline_work_behind_seconds",
    "Per partition of preempt.events: how far, in event time, the oldest account whose deadline or tick has "
    "fallen due but is not yet advanced is behind the watermark (0: none waiting). A batch or tick spends at "
    "most 0.1 s on such accounts and leaves the rest to the next (a risk rule makes every account due at "
    "each UTC midnight).",
    ["partition"],
)
CLOCK_HELD_PARTITIONS = Gauge(
    "preempt_clock_held_partitions",
    "Partitions of preempt.events whose watermark this rules worker holds after a broker outage "
    "(PREEMPT_CLOCK_OUTAGE_GRACE_SECONDS); 0 otherwise.",
)
MEASURE_VALUES_SKIPPED = Counter(
    "preempt_measure_values_skipped_total",
    "Event values a sum: measure could not add, by reason (out_of_range: magnitude above 2^53, so sums stay "
    "finite; not_a_number: a string or boolean; missing: absent or null in an event the rule matched).",
    ["reason"],
)
INVALID_TIMEZONES = Counter(
    "preempt_invalid_timezones_total",
    "Distinct account timezones that are not IANA zones; times in their alerts are shown in UTC instead",
)
# The pure packages report these through schemas.observed (they may not import this module).
observed.subscribe(Anomaly.MEASURE_VALUE_SKIPPED, lambda reason: MEASURE_VALUES_SKIPPED.labels(reason=reason).inc())
observed.subscribe(Anomaly.INVALID_TIMEZONE, lambda _reason: INVALID_TIMEZONES.inc())
USER_EVENTS_NOT_TRACKED = Counter(
    "preempt_user_events_not_tracked_total",
    "Events a group_by: user rule did not evaluate because their user is new to the account and the rule already "
    "tracks rules.engine.MAX_USER_KEYS users of it (the account and its other rules and users go on; "
    "docs/rules.md, State). Per rule.",
    ["rule"],
)
USER_COOLDOWNS_NOT_KEPT = Counter(
    "preempt_user_cooldowns_not_kept_total",
    "Alerts of a group_by: user rule sent without recording their cooldown, because the rule's cooldown table of "
    "the account already holds rules.engine.MAX_USER_KEYS users still in their cooldown (such a user's next "
    "finding alerts again rather than being suppressed). Per rule.",
    ["rule"],
)
RISK_DAYS_SKETCHED = Counter(
    "preempt_risk_days_sketched_total",
    "Days of an account's users a risk rule's features turned from an exact list into a sketch (more than "
    "rules.risk.features.MAX_USERS_PER_DAY (256) users that day, or the account's user table full): the user "
    "features of the days in view are then estimates (about 3 %). Per rule.",
    ["rule"],
)
USER_EVENTS_WITHOUT_USER = Counter(
    "preempt_user_events_without_user_total",
    "Events of a group_by: user rule's event names (that passed its where, where the engine tests it first) that "
    "the rule did not evaluate because they carry no user_id (the account's other rules evaluate them). Per rule.",
    ["rule"],
)
observed.subscribe(Anomaly.USER_NOT_TRACKED, lambda rule: USER_EVENTS_NOT_TRACKED.labels(rule=rule).inc())
observed.subscribe(Anomaly.USER_MISSING, lambda rule: USER_EVENTS_WITHOUT_USER.labels(rule=rule).inc())
observed.subscribe(Anomaly.RISK_DAY_SKETCHED, lambda rule: RISK_DAYS_SKETCHED.labels(rule=rule).inc())
observed.subscribe(Anomaly.USER_COOLDOWN_NOT_KEPT, lambda rule: USER_COOLDOWNS_NOT_KEPT.labels(rule=rule).inc())
RULE_STATES_RESTARTED = Counter(
    "preempt_rule_states_restarted_total",
    "Account states of a rule started afresh because they were kept under another layout: a risk rule's model "
    "replaced by one with another vocabulary (its features rebuild from the events that come next).",
    ["rule"],
)
ACCOUNTS_QUARANTINED = Counter(
    "preempt_accounts_quarantined_total",
    "Accounts whose stored state could not be read or written: old state dead-lettered, a fresh state started. "
    "By reason (state_unreadable, state_unwritable, state_too_large, evaluation_error).",
    ["reason"],
)
EVENTS_EVALUATED_EARLY = Counter(
    "preempt_events_evaluated_early_total",
    "Events of an account evaluated before the watermark passed them: its buffered events outgrew a quarter of "
    "PREEMPT_MAX_STATE_BYTES (a client sending thousands of events a second); its later events older than them "
    "are late for it.",
)
ACCOUNT_STATE_BYTES = Histogram(
    "preempt_account_state_bytes",
    "Encoded size of each account state written to the state table (the largest must stay under the "
    "Kafka record limit; PREEMPT_MAX_STATE_BYTES refuses bigger ones).",
    buckets=(1024, 4096, 16384, 65536, 131072, 262144, 524288, 786432, 1048576),
)
FUTURE_EVENTS = Counter(
    "preempt_future_events_total",
    "Accepted events stamped ahead of the wall clock (beyond the tolerance) in live mode: they do not move "
    "their partition's clock, so they cannot make other accounts' events late.",
)
# rules.clock.EventTimeClock reports these through schemas.observed (rules may not import this module).
observed.subscribe(Anomaly.FUTURE_EVENT, lambda _reason: FUTURE_EVENTS.inc())
INVALID_ACCOUNT_RECORDS = Counter(
    "preempt_invalid_account_records_total",
    "Records of preempt.accounts the rules worker could not read, counted as they are dead-lettered (once per "
    "record across the group and its restarts): the account's alerts go out without account context until a "
    "valid record replaces it.",
)
INVALID_ACCOUNT_LETTER_FAILURES = Counter(
    "preempt_invalid_account_letters_failed_total",
    "Invalid preempt.accounts records whose dead letter was never written, by reason: buffer_full (more arrived "
    "while no worker held their partition than a worker keeps waiting), write_failed (the dead-letter topic "
    "refused the write). Each is logged at ERROR; the records stay on the accounts topic.",
    ["reason"],
)
INVALID_ACCOUNT_LETTER_FAILURE_REASONS = ("buffer_full", "write_failed")
ALERTS_NOT_BUILT = Counter(
    "preempt_alerts_not_built_total",
    "Findings that could not become an alert even without account context (dead-lettered as alert_build_failed).",
)
CHANGELOG_WRITES = Counter(
    "preempt_state_writes_total",
    "State-table writes (each becomes one changelog record), by table.",
    ["table"],
)

# --- notifier ----------------------------------------------------------------------------------
ALERTS_SUPPRESSED = Counter(
    "preempt_alerts_suppressed_total",
    "Alerts or notifications not sent, by reason (grouped, silenced, inhibited, quiet_hours, duplicate, cooldown, "
    "after_churn).",
    ["reason"],
)
NOTIFICATIONS = Counter(
    "preempt_notifications_total",
    "Notification attempts, by receiver type (slack, email, console) and outcome (sent, retried, dead_lettered).",
    ["receiver_type", "outcome"],
)
NOTIFICATION_LATENCY = Histogram(
    "preempt_notification_latency_seconds",
    "Wall-clock time from the alert's emitted_at to a successful delivery.",
    ["receiver_type"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 900, 3600),
)
NOTIFICATION_RETRIES = Counter(
    "preempt_notification_retries_total",
    "Retries scheduled after a retryable delivery failure, by receiver type.",
    ["receiver_type"],
)
NOTIFICATIONS_DEAD_LETTERED = Counter(
    "preempt_notifications_dead_lettered_total",
    "Notifications sent to the alerts dead-letter topic, by receiver type and reason.",
    ["receiver_type", "reason"],
)
NOTIFIER_FALLBACKS = Counter(
    "preempt_notifier_fallbacks_total",
    "Alerts the notifier delivered with a fallback instead of failing them, by reason (invalid_timezone: quiet "
    "hours in the default zone; template_error: the built-in template; quiet_hours_error: sent at once; "
    "invalid_link: a Slack link button left out, its URL not http(s)).",
    ["reason"],
)
NOTIFIER_DEAD_LETTER_PENDING_SECONDS = Gauge(
    "preempt_notifier_dead_letter_pending_seconds",
    "Age of the oldest dead letter this notifier is still writing to preempt.alerts.dlq (0: none). Past "
    "PREEMPT_PARTITION_STALL_SECONDS the broker is not taking it: /readyz 503.",
)
NOTIFIER_ALERTS_REKEYED = Counter(
    "preempt_notifier_alerts_rekeyed_total",
    "Alerts read from preempt.alerts under another key (or partition) than their account_id's (a producer not "
    "keying by account_id), produced again keyed by account_id and delivered from there.",
)
NOTIFIER_SKIPPED_ALERTS = Counter(
    "preempt_notifier_skipped_alerts_total",
    "Alert records of preempt.alerts Faust acknowledged without handing them to the notifier, by outcome "
    "(repaired: re-read from Kafka and handled; lost: could not be re-read, e.g. deleted by retention). "
    "Should stay 0.",
    ["outcome"],
)
NOTIFIER_ALERTS_HELD = Gauge(
    "preempt_notifier_alerts_held",
    "Alerts read by this notifier whose offset cannot be committed yet: not settled (quiet hours, group_wait, "
    "retries) or behind one of their partition that is not. They are in preempt_consumer_lag until settled.",
)
NOTIFIER_TARGETS_FAILING = Gauge(
    "preempt_notifier_targets_failing",
    "Delivery targets (receiver/channel) of this notifier whose every attempt has failed for "
    "PREEMPT_DELIVERY_FAILING_SECONDS, with no success since: /readyz 503 'deliveries failing' "
    "(alerts/delivery_health.py).",
    ["receiver_type"],
)
NOTIFIER_BREAKERS_OPEN = Gauge(
    "preempt_notifier_breakers_open",
    "Delivery destinations (an SMTP server, the Slack bot token, a webhook) whose breaker is open: they refuse "
    "every message (DestinationFailingError), so one delivery at a time probes them at the retry backoff and "
    "the others wait without trying (alerts/retry.py).",
    ["receiver_type"],
)
NOTIFIER_DELIVERIES_PACED = Gauge(
    "preempt_notifier_deliveries_paced",
    "Deliveries queued for their channel's next slot (a Slack channel's one message a second, or a channel a 429 "
    "closed): waiting, not failing, so never given up (alerts/retry.py, alerts/held_log.py).",
)
NOTIFIER_PACED_OLDEST_SECONDS = Gauge(
    "preempt_notifier_paced_oldest_seconds",
    "How long the delivery queued longest for its channel's slot has waited for it (0: none waits); past the "
    "give-up window /readyz reports it (alerts/held_log.py).",
)
NOTIFIER_DELIVERIES_PENDING = Gauge(
    "preempt_notifier_deliveries_pending",
    "Deliveries (alert x target) this notifier holds in memory, not settled yet: in a group, in quiet hours, "
    "waiting for a retry or a pacing slot, or in flight. At PREEMPT_NOTIFIER_MAX_PENDING_DELIVERIES the notifier "
    "stops reading new alerts (alerts/intake.py).",
)
NOTIFIER_INTAKE_PAUSED = Gauge(
    "preempt_notifier_intake_paused",
    "1 while the notifier does not read new alerts because PREEMPT_NOTIFIER_MAX_PENDING_DELIVERIES deliveries are "
    "pending (they wait in preempt.alerts; /readyz 503), else 0 (alerts/intake.py).",
)
NOTIFIER_INTAKE_PAUSES = Counter(
    "preempt_notifier_intake_pauses_total",
    "Times the notifier stopped reading new alerts because too many deliveries were pending (alerts/intake.py).",
)
NOTIFIER_INTAKE_PAUSED_SECONDS = Counter(
    "preempt_notifier_intake_paused_seconds_total",
    "Seconds the notifier spent not reading new alerts because too many deliveries were pending, counted as "
    "each pause ends (alerts/intake.py).",
)
FEEDBACK = Counter(
    "preempt_feedback_total",
    "CSM feedback actions from Slack, by rule and action (acknowledge, snooze, not_helpful).",
    ["rule", "action"],
)
FEEDBACK_INVALID = Counter(
    "preempt_feedback_invalid_total",
    "Records on preempt.feedback the notifier skipped because they are not valid feedback (logged with their offset).",
)
SLACK_MESSAGE_UPDATES = Counter(
    "preempt_slack_message_updates_total",
    "Slack messages re-rendered after a button press (acknowledged by whom, snoozed until when), by outcome: "
    "updated, skipped (the message or alert is unknown here, or no Slack receiver can edit it: logged at INFO), "
    "failed (chat.update and the response_url both failed or were spent: logged at WARNING). The press itself is "
    "recorded on preempt.feedback whatever the outcome.",
    ["outcome"],
)
SLACK_MESSAGE_UPDATE_OUTCOMES = ("updated", "skipped", "failed")
SLACK_ACTIONS_REFUSED = Counter(
    "preempt_slack_actions_refused_total",
    "POST /slack/actions requests refused, by reason (too_large, too_slow, bad_signature, replayed, replay_guard_full, "
    "not_configured, bad_request, not_recorded).",
    ["reason"],
)

# --- Kafka -------------------------------------------------------------------------------------
CONSUMER_LAG = Gauge(
    "preempt_consumer_lag",
    "Records between the committed offset and the end of each assigned partition, per app and topic (offsets "
    "known to hold no record, a transactional producer's markers, left out).",
    ["app", "topic"],
)
BROKER_REACHABLE = Gauge(
    "preempt_broker_reachable",
    "1 while a Kafka bootstrap server answers the process's periodic connection attempt, 0 while none does.",
    ["app"],
)
READY = Gauge(
    "preempt_ready",
    "1 when /readyz would answer 200: rules worker and notifier with their partitions assigned and tables "
    "recovered, ingest with a broker that answers and takes its writes.",
    ["app"],
)
DATA_DIR_FREE_BYTES = Gauge(
    "preempt_data_dir_free_bytes",
    "Bytes free for the process on the volume of PREEMPT_DATA_DIR (its RocksDB table store), read at each "
    "scrape; a full one stops the rules worker or notifier (streams/runtime/store_full.py).",
    ["app"],
)
DATA_DIR_SIZE_BYTES = Gauge(
    "preempt_data_dir_size_bytes", "Size in bytes of the volume of PREEMPT_DATA_DIR, read at each scrape.", ["app"]
)
TOPIC_MISSING = Gauge(
    "preempt_topic_missing",
    "1 while a changelog topic of the app, or a topic it writes (the rules worker's alerts topic), is gone from "
    "its clients' metadata after it was there (deleted under the process; streams/runtime/missing_topics.py).",
    ["app", "topic"],
)
EVENT_OFFSET_GAPS = Counter(
    "preempt_event_offset_gaps_total",
    "Records of preempt.events that were acked without reaching the rules worker and could not be "
    "re-read (should stay 0).",
)

EVENTS_SKIPPED = Counter(
    "preempt_events_skipped_total",
    "Records of preempt.events no rules worker read: the consumer group's committed offset moved past them "
    "(reason offset_moved: an operator's offset reset to latest) or retention deleted them first (reason "
    "retention); found when a worker takes the partition.",
    ["reason"],
)

# Liveness watchdog (streams/worker/liveness.py): an assigned partition with lag whose committed and
# processed offsets did not move for PREEMPT_PARTITION_STALL_SECONDS. Partition labels are bounded
# by the topic's partition count.
PARTITION_STALLED = Gauge(
    "preempt_partition_stalled",
    "1 while an assigned partition has lag and no committed or processed progress",
    ["topic", "partition"],
)
PARTITION_STALLS = Counter(
    "preempt_partition_stalls_total",
    "Partition stalls detected by the liveness watchdog (one per stall episode)",
    ["topic"],
)


INHIBIT_RECALL_OUTCOMES = ("complete", "incomplete")
INHIBIT_RECALLS = Counter(
    "preempt_notifier_inhibit_recalls_total",
    "Partitions of preempt.alerts whose last inhibit horizon of alerts the notifier read back, after a restart or "
    "a rebalance, to know the inhibit_rules sources active now, by outcome: complete, incomplete (not read whole "
    "in time, or the read failed: a source among the rest is not known here, and an alert it would mute may be "
    "sent; logged at WARNING).",
    ["outcome"],
)


# --- series that exist before their first increment ----------------------------------------------
# Prometheus's increase() and rate() need two samples of a series: a labelled counter whose series
# is born at 1 (its first increment came before any scrape saw it at 0) shows no increase, so an
# alert rule on it missed the first dead letter or quarantine (deploy/prometheus/alerts.yml also
# catches such newborn series). Each process gives the series its alert rules read a 0 at start.
NOTIFICATION_OUTCOMES = ("sent", "retried", "dead_lettered")
NO_RECEIVER_TYPE = "none"  # ``receiver_type`` of a notification dead-lettered before it had a receiver
# ``preempt_alerts_suppressed_total{reason}`` of the notifier (alerts/dispatch.py, alerts/runtime.py).
NOTIFIER_SUPPRESSION_REASONS = (
    "grouped",
    "silenced",
    "inhibited",
    "quiet_hours",
    "duplicate",
    "invalid",
    "no_destination",
)


def expose_notifier_series(receiver_types: Iterable[str]) -> None:
    """A 0 for every ``preempt_notifications_total`` outcome (and the latency histogram) of each receiver type the
    notifier delivers to, and for every ``preempt_alerts_suppressed_total`` reason of the notifier."""
    for reason in NOTIFIER_SUPPRESSION_REASONS:
        ALERTS_SUPPRESSED.labels(reason=reason)
    for receiver_type in receiver_types:
        for outcome in NOTIFICATION_OUTCOMES:
            NOTIFICATIONS.labels(receiver_type=receiver_type, outcome=outcome)
        NOTIFIER_TARGETS_FAILING.labels(receiver_type=receiver_type)
        NOTIFIER_BREAKERS_OPEN.labels(receiver_type=receiver_type)
        NOTIFICATION_LATENCY.labels(receiver_type=receiver_type)
    NOTIFICATIONS.labels(receiver_type=NO_RECEIVER_TYPE, outcome="dead_lettered")
    for outcome in ("repaired", "lost"):
        NOTIFIER_SKIPPED_ALERTS.labels(outcome=outcome)
    for outcome in SLACK_MESSAGE_UPDATE_OUTCOMES:
        SLACK_MESSAGE_UPDATES.labels(outcome=outcome)
    for outcome in INHIBIT_RECALL_OUTCOMES:
        INHIBIT_RECALLS.labels(outcome=outcome)


INGEST_DEAD_LETTER_OUTCOMES = ("written", "failed")
INGEST_WRITES = ("events", "account_updates", "account_merges", "dead_letters")  # preempt_ingest_writes_failing{write}


def expose_ingest_series(tracking_skips: Iterable[tuple[str, str]] = ()) -> None:
    """A 0 for every ``preempt_ingest_dead_letters_total`` outcome and ``preempt_ingest_writes_failing`` write
    (HTTP ingest), and for each
    ``(type, reason)`` of ``preempt_ingest_tracking_calls_skipped_total`` in ``tracking_skips``."""
    for outcome in INGEST_DEAD_LETTER_OUTCOMES:
        INGEST_DEAD_LETTERS.labels(outcome=outcome)
    for write in INGEST_WRITES:
        INGEST_WRITES_FAILING.labels(write=write).set(0)
    for call, reason in tracking_skips:
        INGEST_TRACKING_CALLS_SKIPPED.labels(type=call, reason=reason)


def expose_worker_series(
    outcomes: Iterable[str],
    dead_letter_reasons: Iterable[str],
    quarantine_reasons: Iterable[str],
    skip_reasons: Iterable[str] = (),
    alert_rules: Iterable[tuple[str, str]] = (),
) -> None:
    """A 0 for the rules worker's event outcomes, duplicate sources, dead-letter, quarantine and skip reasons,
    and for ``preempt_alerts_total`` of each ``(rule id, severity)`` in ``alert_rules`` (the rules it runs: each
    rule's alerts have its severity), so that the first alert of a rule shows in increase() and rate()."""
    for rule, severity in alert_rules:
        ALERTS.labels(rule=rule, severity=severity)
    for outcome in outcomes:
        EVENTS.labels(outcome=outcome)
    for source in (DUPLICATE_READ_AGAIN, DUPLICATE_FROM_PRODUCER):
        DUPLICATE_EVENTS.labels(source=source)
    for reason in skip_reasons:
        EVENTS_SKIPPED.labels(reason=reason)
    for reason in dead_letter_reasons:
        EVENTS_DEAD_LETTERED.labels(reason=reason)
    for reason in quarantine_reasons:
        ACCOUNTS_QUARANTINED.labels(reason=reason)
    for reason in INVALID_ACCOUNT_LETTER_FAILURE_REASONS:
        INVALID_ACCOUNT_LETTER_FAILURES.labels(reason=reason)
