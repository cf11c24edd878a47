"""Every Preempt metric, declared once (DESIGN.md section 9).

Label values are bounded: outcomes, reasons, rule ids, severities, receiver types —
never an account id, user id or alert id. Rule ids are bounded by the rule pack.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

# --- events (rules worker, ingest) -------------------------------------------------------------
EVENTS = Counter(
    "preempt_events_total",
    "Events read by the rules worker, by outcome (accepted, dead_lettered, duplicate, late).",
    ["outcome"],
)
EVENTS_DEAD_LETTERED = Counter(
    "preempt_events_dead_lettered_total",
    "Records sent to the events dead-letter topic, by reason code.",
    ["reason"],
)
LATE_EVENTS = Counter(
    "preempt_late_events_total",
    "Events older than the watermark, counted and ignored.",
)
DUPLICATE_EVENTS = Counter(
    "preempt_duplicate_events_total",
    "Events whose event_id was already seen for the account within the dedup horizon.",
)
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
    "Wall-clock time from the newest contributing event's arrival to the alert being emitted.",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300),
)
WATERMARK = Gauge(
    "preempt_watermark_seconds",
    "The rules worker's event-time clock (epoch seconds), per worker.",
)
CHANGELOG_WRITES = Counter(
    "preempt_state_writes_total",
    "State-table writes (each becomes one changelog record), by table.",
    ["table"],
)

# --- notifier ----------------------------------------------------------------------------------
ALERTS_SUPPRESSED = Counter(
    "preempt_alerts_suppressed_total",
    "Alerts or notifications not sent, by reason (grouped, silenced, inhibited, quiet_hours, duplicate, cooldown).",
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
FEEDBACK = Counter(
    "preempt_feedback_total",
    "CSM feedback actions from Slack, by rule and action (acknowledge, snooze, not_helpful).",
    ["rule", "action"],
)
SLACK_ACTIONS_REFUSED = Counter(
    "preempt_slack_actions_refused_total",
    "POST /slack/actions requests refused, by reason (too_large, bad_signature, not_configured, bad_request).",
    ["reason"],
)

# --- Kafka -------------------------------------------------------------------------------------
CONSUMER_LAG = Gauge(
    "preempt_consumer_lag",
    "Records between the committed offset and the end of each assigned partition, per app and topic.",
    ["app", "topic"],
)
READY = Gauge(
    "preempt_ready",
    "1 when the process has its partitions assigned and its tables recovered.",
    ["app"],
)
EVENT_OFFSET_GAPS = Counter(
    "preempt_event_offset_gaps_total",
    "Records of preempt.events that were acked without reaching the rules worker and could not be "
    "re-read (should stay 0).",
)
