"""Tests for streams/runtime/logs.py: secrets never logged, personal data only at debug, JSON vs console."""

from __future__ import annotations

import json
import logging
import sys
import threading
from collections.abc import Iterator

import pytest
import structlog
from pydantic import SecretStr
from structlog.testing import capture_logs

from streams.runtime.logs import MASK, REDACTED, configure_logging, get_logger, privacy_processors

WEBHOOK = "https://hooks.slack.com/services/T000/B000/XXXXSECRET"
BOT_TOKEN = "xoxb-1234-5678-abcdefSECRET"


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """Each test configures logging itself; put structlog and the stdlib back afterwards."""
    root_handlers = list(logging.root.handlers)
    root_level = logging.root.level
    thread_hook, unraisable_hook = threading.excepthook, sys.unraisablehook
    yield
    threading.excepthook, sys.unraisablehook = thread_hook, unraisable_hook
    structlog.reset_defaults()
    logging.root.handlers[:] = root_handlers
    logging.root.setLevel(root_level)


def test_secret_named_keys_are_masked_at_every_level() -> None:
    """Values bound under secret-sounding keys are masked, at debug as much as at error."""
    log = get_logger("t")
    with capture_logs(processors=privacy_processors()) as logs:
        log.error("delivery failed", webhook_url=WEBHOOK, slack_bot_token=BOT_TOKEN, password="hunter2")
        log.debug("delivery failed", smtp_password="hunter2", api_key="k")
    for entry in logs:
        secret_values = {k: v for k, v in entry.items() if k not in {"event", "log_level", "module"}}
        assert set(secret_values.values()) == {MASK}


def test_secretstr_values_are_masked_wherever_they_sit() -> None:
    """A pydantic SecretStr is masked, also inside nested dicts and lists."""
    log = get_logger("t")
    with capture_logs(processors=privacy_processors()) as logs:
        log.warning("config", receiver={"name": "cs", "auth": SecretStr("s3cr3t")}, keys=[SecretStr("a")])
    assert logs[0]["receiver"] == {"name": "cs", "auth": MASK}
    assert logs[0]["keys"] == [MASK]


def test_credentials_inside_free_text_are_scrubbed() -> None:
    """Slack webhook URLs, Slack tokens and bearer credentials are scrubbed from any string."""
    log = get_logger("t")
    with capture_logs(processors=privacy_processors()) as logs:
        log.error(f"POST {WEBHOOK} failed", error=f"invalid_auth for {BOT_TOKEN}", header="Bearer abc.def")
    rendered = json.dumps(logs[0])
    assert WEBHOOK not in rendered
    assert BOT_TOKEN not in rendered
    assert "abc.def" not in rendered


def test_personal_data_is_redacted_at_info_and_above() -> None:
    """Owner e-mails and event properties do not appear at info, warning or error."""
    log = get_logger("t")
    with capture_logs(processors=privacy_processors()) as logs:
        log.info("sent", to=["jane@acme.example"], properties={"plan": "pro"}, account_id="acme")
        log.warning("bounced: jane@acme.example", owner={"email": "jane@acme.example"})
    assert logs[0]["to"] == REDACTED
    assert logs[0]["properties"] == REDACTED
    assert logs[0]["account_id"] == "acme"
    assert "jane@acme.example" not in json.dumps(logs)


def test_addresses_in_any_domain_are_redacted_and_folder_names_with_an_at_sign_are_not() -> None:
    """E-mail addresses (sub-domains, plus tags, non-ASCII top-level domains) are redacted at info; the
    RocksDB folder 'preempt-rules@127.0.0.1_9092@6066' in a Faust error stays readable."""
    log = get_logger("t")
    folder = "/var/lib/preempt/preempt-rules@127.0.0.1_9092@6066/v1/tables/account-state-1.db/LOCK"
    addresses = ("jane.doe+csm@eu.mail.acme.io", "josé@exämple.рф", "OPS@Example.COM")
    with capture_logs(processors=privacy_processors()) as logs:
        log.error(f"IO error: While lock file: {folder}", owners=" / ".join(addresses))
    rendered = json.dumps(logs[0], ensure_ascii=False)
    assert folder in rendered
    assert not [a for a in addresses if a in rendered]


def test_an_address_match_starts_only_where_its_run_of_characters_starts() -> None:
    """The address pattern does not try every position of a long run of word characters (a 100 KB rule id
    in a feedback record was one log line that held the notifier's event loop for about 100 s, quadratic in
    the length): searched from inside a run, it finds nothing; from its start, the whole address."""
    from streams.runtime.logs import _EMAIL

    text = "csm.jane+tag@eu.acme.io"
    assert _EMAIL.search(text, 1) is None
    match = _EMAIL.search(f"owner: {text}.")
    assert match is not None
    assert match.group() == text


def test_a_long_value_without_an_address_is_logged_whole() -> None:
    """A long id (no address in it) passes the redaction unchanged; one ending in an address is redacted."""
    log = get_logger("t")
    long_id = "r0-" + "y" * 200_000
    with capture_logs(processors=privacy_processors()) as logs:
        log.info("snooze recorded", rule_id=long_id, other=long_id + "@acme.io")
    assert logs[0]["rule_id"] == long_id
    assert logs[0]["other"] == REDACTED


def test_personal_data_is_kept_at_debug() -> None:
    """Debug lines (never enabled in production) keep owner e-mails and properties for diagnosis."""
    log = get_logger("t")
    with capture_logs(processors=privacy_processors()) as logs:
        log.debug("routing", to="jane@acme.example", properties={"plan": "pro"})
    assert logs[0]["to"] == "jane@acme.example"
    assert logs[0]["properties"] == {"plan": "pro"}


def test_ids_bound_in_context_reach_the_line(capsys: pytest.CaptureFixture[str]) -> None:
    """rule_id, account_id and alert_id bound with contextvars appear in the JSON line."""
    configure_logging("json", "INFO")
    log = get_logger("streams.test")
    with structlog.contextvars.bound_contextvars(rule_id="error-spike", account_id="acme", alert_id="a1"):
        log.info("alert emitted")
    line = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
    assert (line["rule_id"], line["account_id"], line["alert_id"]) == ("error-spike", "acme", "a1")
    assert line["module"] == "streams.test"


def test_production_format_is_one_json_object_per_line(capsys: pytest.CaptureFixture[str]) -> None:
    """json format writes parseable JSON with level and an ISO UTC timestamp; debug is filtered."""
    configure_logging("json", "INFO")
    log = get_logger("t")
    log.debug("hidden")
    log.info("shown", count=3)
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1
    record = json.loads(lines[0])
    assert (record["event"], record["level"], record["count"]) == ("shown", "info", 3)
    assert record["timestamp"].endswith("Z")


def test_an_uncaught_exception_in_a_thread_is_one_json_line_with_its_traceback(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A thread that dies (aiokafka's consumer thread stopped while the broker is away) logs one ERROR record,
    not Python's multi-line plain-text traceback on stderr."""
    configure_logging("json", "INFO")

    def consumer_thread() -> None:
        raise RuntimeError(f"node not ready {BOT_TOKEN}")

    thread = threading.Thread(target=consumer_thread, name="AIOKafkaConsumerThread")
    thread.start()
    thread.join()
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    record = json.loads(lines[0])
    assert record["level"] == "error"
    assert "AIOKafkaConsumerThread" in record["event"]
    assert "RuntimeError: node not ready" in record["exception"]
    assert BOT_TOKEN not in lines[0]


def test_an_exception_python_can_only_ignore_is_one_json_line(capsys: pytest.CaptureFixture[str]) -> None:
    """'Exception ignored in …' (a destructor that raises) is one ERROR record, not lines of text."""
    configure_logging("json", "INFO")

    class Closing:
        def __del__(self) -> None:
            raise ValueError("close failed")

    Closing()
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    record = json.loads(lines[0])
    assert record["level"] == "error"
    assert "ValueError: close failed" in record["exception"]


def test_development_format_is_readable_text(capsys: pytest.CaptureFixture[str]) -> None:
    """console format writes a human-readable line, not JSON."""
    configure_logging("console", "DEBUG")
    get_logger("t").info("worker started", partitions=4)
    out = capsys.readouterr().err
    assert "worker started" in out
    assert "partitions=4" in out
    with pytest.raises(json.JSONDecodeError):
        json.loads(out.strip().splitlines()[-1])


def test_library_records_are_rendered_and_redacted_too(capsys: pytest.CaptureFixture[str]) -> None:
    """A stdlib warning (as Faust or aiokafka write) comes out as JSON with secrets scrubbed."""
    configure_logging("json", "INFO")
    logging.getLogger("faust.transport").warning("cannot reach %s", WEBHOOK)
    record = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
    assert record["logger"] == "faust.transport"
    assert record["level"] == "warning"
    assert WEBHOOK not in record["event"]


def test_faust_worker_runs_quietly_and_logs_like_structlog(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``run_faust_worker`` runs Faust's quiet Worker with the spinner removed (it set the root logger to DEBUG)
    and with the structlog rendering of library records (the rules worker's were Faust's plain text,
    unredacted, while the notifier's were JSON)."""
    import faust

    from streams.runtime.logs import run_faust_worker

    seen: dict[str, object] = {}

    class FakeWorker:
        def __init__(self, app: object, **options: object) -> None:
            seen["options"] = options
            self.spinner: object | None = "spinner"

        def execute_from_commandline(self) -> None:
            seen["spinner at start"] = self.spinner

    monkeypatch.setattr(faust, "Worker", FakeWorker)
    run_faust_worker(object(), "warn", "json", redirect_stdouts=False)
    options = seen["options"]
    assert isinstance(options, dict)
    logging_config = options.pop("logging_config")
    assert options == {"loglevel": "warn", "quiet": True, "redirect_stdouts": False}
    assert seen["spinner at start"] is None
    assert logging_config["formatters"]["structlog"]["()"] is structlog.stdlib.ProcessorFormatter


@pytest.mark.parametrize(
    ("loglevel", "level"), [("warn", logging.WARNING), ("info", logging.INFO), ("debug", logging.DEBUG)]
)
def test_the_loglevel_option_sets_the_level_of_library_records(
    monkeypatch: pytest.MonkeyPatch, loglevel: str, level: int
) -> None:
    """``preempt worker --loglevel debug`` lets Faust's and aiokafka's debug records through (the logging set-up
    handed to Faust's Worker kept them at WARNING whatever the option said); the default stays WARNING."""
    import faust

    from streams.runtime.logs import run_faust_worker

    seen: dict[str, object] = {}

    class FakeWorker:
        def __init__(self, app: object, **options: object) -> None:
            seen.update(options)
            self.spinner: object | None = None

        def execute_from_commandline(self) -> None:
            pass

    monkeypatch.setattr(faust, "Worker", FakeWorker)
    run_faust_worker(object(), loglevel, "json")
    config = seen["logging_config"]
    assert isinstance(config, dict)
    assert logging.getLevelNamesMapping()[config["root"]["level"]] == level


def test_faust_worker_renders_library_records_like_structlog(capsys: pytest.CaptureFixture[str]) -> None:
    """The logging set-up ``run_faust_worker`` hands Faust's Worker turns an aiokafka error into one JSON line
    (without it mode installed its own plain-text handler and the rules worker's log was not JSON)."""
    import logging.config

    from streams.runtime.logs import stdlib_logging_config

    logging.config.dictConfig(stdlib_logging_config("json"))
    logging.getLogger("aiokafka").error("Unable connect to node with id %s: %s", 1, "Connect call failed")
    record = json.loads(capsys.readouterr().err.strip())
    assert record["logger"] == "aiokafka"
    assert record["event"] == "Unable connect to node with id 1: Connect call failed"


def test_faust_table_recovery_progress_is_logged_at_info(capsys: pytest.CaptureFixture[str]) -> None:
    """Faust's recovery progress (INFO) reaches the log, as the PreemptNotReady runbook says; other library
    INFO records stay out, and so does the progress with PREEMPT_LOG_LEVEL=WARNING."""
    import logging.config

    from streams.runtime.logs import stdlib_logging_config

    logging.config.dictConfig(stdlib_logging_config("json", app_level="INFO"))
    logging.getLogger("faust.tables.recovery").info(
        "Still fetching changelog topics for recovery, estimated time remaining %s (total remaining=%r):\n%s",
        "2 minutes",
        120000,
        "table",
    )
    logging.getLogger("aiokafka.consumer").info("fetching")
    logging.getLogger("faust.transport").info("consumer ready")
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    record = json.loads(lines[0])
    assert (record["logger"], record["level"]) == ("faust.tables.recovery", "info")
    assert "total remaining=120000" in record["event"]

    logging.config.dictConfig(stdlib_logging_config("json", app_level="WARNING"))
    logging.getLogger("faust.tables.recovery").info("Recovery complete")
    assert capsys.readouterr().err == ""


def test_a_repeated_library_record_is_held_back_and_counted(monkeypatch: pytest.MonkeyPatch) -> None:
    """The same logger, level and template (for an error: the same message) within the interval passes once;
    the next one let through says how many were held back (a broker outage made aiokafka log 150 lines a
    second)."""
    from streams.runtime import logs

    now = [100.0]
    monkeypatch.setattr(logs.time, "monotonic", lambda: now[0])
    gate = logs.RepeatedRecordFilter(interval_s=10.0)

    def record(msg: str, *args: object, name: str = "aiokafka", level: int = logging.ERROR) -> logging.LogRecord:
        return logging.LogRecord(name, level, __file__, 1, msg, args, None)

    first = record("Unable connect to node with id %s", 1)
    assert gate.filter(first)
    assert not hasattr(first, "repeated")
    assert [gate.filter(record("Unable connect to node with id %s", 1)) for _ in range(5)] == [False] * 5
    assert gate.filter(record("Unable to update metadata from [%s]", 1))  # another template passes
    assert gate.filter(record("Unable connect to node with id %s", 1, level=logging.WARNING))  # another level
    assert gate.filter(record("Unable connect to node with id %s", 1, name="faust"))  # another logger
    now[0] += 10.0
    later = record("Unable connect to node with id %s", 1)
    assert gate.filter(later)
    assert later.repeated == 5  # type: ignore[attr-defined]
    again = record("Unable connect to node with id %s", 1)
    now[0] += 10.0
    assert gate.filter(again)
    assert not hasattr(again, "repeated")


def test_the_repeat_filter_remembers_a_bounded_number_of_templates() -> None:
    """Past ``MAX_KEYS`` distinct templates the filter forgets them all rather than grow without bound."""
    from streams.runtime.logs import RepeatedRecordFilter

    gate = RepeatedRecordFilter()
    for n in range(RepeatedRecordFilter.MAX_KEYS + 5):
        assert gate.filter(logging.LogRecord("lib", logging.ERROR, __file__, 1, f"message {n}", (), None))
    assert len(gate._last) <= RepeatedRecordFilter.MAX_KEYS


def test_a_bad_http_request_is_one_warning_line_without_a_traceback(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """aiohttp's "Error handling request" for a request the client got wrong (a header over 8 KiB) or
    abandoned (connection lost mid-body) is one warning line, not an ERROR with a traceback."""
    from aiohttp.http_exceptions import LineTooLong

    from streams.runtime import logs

    clock = iter(range(0, 10_000, 60))  # a minute between requests: the repeat filter lets each through
    monkeypatch.setattr(logs.time, "monotonic", lambda: float(next(clock)))
    configure_logging("json", "INFO")
    server_log = logging.getLogger("aiohttp.server")
    for exc in (LineTooLong(b"a" * 100, "8190"), ConnectionResetError("Connection lost")):
        try:
            raise exc
        except Exception:
            server_log.exception("Error handling request from %s", "127.0.0.1")
    lines = [json.loads(line) for line in capsys.readouterr().err.strip().splitlines()]
    assert [(r["level"], r["event"].split(":")[0]) for r in lines] == [
        ("warning", "Error handling request from 127.0.0.1"),
        ("warning", "Error handling request from 127.0.0.1"),
    ]
    assert "LineTooLong" in lines[0]["event"]
    assert "ConnectionResetError" in lines[1]["event"]
    assert all("exception" not in r for r in lines)


def test_a_server_bug_in_a_request_keeps_its_error_and_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    """Any other exception while handling a request stays an ERROR with its traceback (a bug)."""
    configure_logging("json", "INFO")
    try:
        raise KeyError("boom")
    except KeyError:
        logging.getLogger("aiohttp.server").exception("Error handling request from %s", "127.0.0.1")
    record = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
    assert record["level"] == "error"
    assert "KeyError" in record["exception"]


def test_different_errors_with_one_template_are_both_let_through(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two ERROR records of one template that say different things (another partition, another crash
    reason) both pass; only the same error said again within the interval is held back."""
    from streams.runtime import logs

    monkeypatch.setattr(logs.time, "monotonic", lambda: 100.0)
    gate = logs.RepeatedRecordFilter(interval_s=10.0)

    def record(*args: object) -> logging.LogRecord:
        return logging.LogRecord("faust", logging.ERROR, __file__, 1, "Crashed reason=%r", args, None)

    assert gate.filter(record(RuntimeError("first")))
    assert gate.filter(record(RuntimeError("the real cause")))
    assert not gate.filter(record(RuntimeError("the real cause")))


def test_a_refused_outbound_connection_in_a_request_stays_an_error(capsys: pytest.CaptureFixture[str]) -> None:
    """A handler's own refused connection (to Kafka, to Slack) is a server problem: ERROR with its traceback,
    not demoted like a client that went away."""
    configure_logging("json", "INFO")
    try:
        raise ConnectionRefusedError("Connect call failed ('127.0.0.1', 9092)")
    except ConnectionRefusedError:
        logging.getLogger("aiohttp.server").exception("Error handling request from %s", "127.0.0.1")
    record = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
    assert record["level"] == "error"
    assert "ConnectionRefusedError" in record["exception"]


def test_a_partition_whose_leader_is_moving_is_a_warning_other_fetch_errors_stay_errors(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """aiokafka's "Failed fetch offsets … NotLeaderForPartitionError" (a topic made a moment ago, a leader
    election: retried until the leader answers) is a warning; another fetch error stays an ERROR."""
    configure_logging("json", "INFO")
    fetcher = logging.getLogger("aiokafka.consumer.fetcher")
    fetcher.error("Failed fetch offsets from %s: %s", 1, "[Error 6] NotLeaderForPartitionError: TopicPartition(t, 1)")
    fetcher.error("Unexpected error while fetching data: %s", "[Error 3] UnknownTopicOrPartitionError")
    lines = [json.loads(line) for line in capsys.readouterr().err.strip().splitlines()]
    assert [(r["level"], r["event"].split(":")[0]) for r in lines] == [
        ("warning", "Failed fetch offsets from 1"),
        ("error", "Unexpected error while fetching data"),
    ]


def test_a_commit_refused_by_a_rebalance_in_progress_is_a_warning_being_thrown_out_stays_an_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """aiokafka's "OffsetCommit failed … RebalanceInProgressError …, will rejoin" (every scale-out or
    restart of a peer) is a warning; a commit refused because this member was thrown out stays an ERROR."""
    configure_logging("json", "INFO")
    coordinator = logging.getLogger("aiokafka.consumer.group_coordinator")
    template = "OffsetCommit failed for group %s due to group error (%s), will rejoin"
    coordinator.error(template, "preempt-notify", "[Error 27] RebalanceInProgressError: preempt-notify")
    coordinator.error(template, "preempt-notify", "[Error 25] UnknownMemberIdError: preempt-notify")
    lines = [json.loads(line) for line in capsys.readouterr().err.strip().splitlines()]
    assert [r["level"] for r in lines] == ["warning", "error"]
    assert "RebalanceInProgressError" in lines[0]["event"]
    assert "UnknownMemberIdError" in lines[1]["event"]


@pytest.mark.parametrize("tty", [False, True])
def test_faust_recovery_tables_become_data_on_one_line(capsys: pytest.CaptureFixture[str], tty: bool) -> None:
    """Faust's recovery logs a table under a one-line head (its own ``logtable``, ASCII or, on a terminal,
    box-drawing): one JSON line whose ``event`` is the head and ``table`` the rows (the topic repeated
    where Faust writes a ditto mark), not 10-40 lines of ASCII art inside ``event``."""
    import logging.config

    from faust.utils.terminal import logtable

    from streams.runtime.logs import stdlib_logging_config

    table = logtable(
        [["preempt-account-state-changelog", "0", "41"], ["\u3003", "1", "-1"], ["preempt-clock-changelog", "0", "7"]],
        title="Highwater - Active",
        headers=["topic", "partition", "highwater"],
        tty=tty,
    )
    logging.config.dictConfig(stdlib_logging_config("json", app_level="INFO"))
    logging.getLogger("faust.tables.recovery").info("Highwater for %s changelog partitions:\n%s", "active", table)
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    record = json.loads(lines[0])
    assert record["event"] == "Highwater for active changelog partitions"
    assert record["table_title"] == "Highwater - Active"
    assert record["table"] == [
        {"topic": "preempt-account-state-changelog", "partition": 0, "highwater": 41},
        {"topic": "preempt-account-state-changelog", "partition": 1, "highwater": -1},
        {"topic": "preempt-clock-changelog", "partition": 0, "highwater": 7},
    ]


def test_other_multi_line_library_records_keep_their_lines_as_data(capsys: pytest.CaptureFixture[str]) -> None:
    """A library message of several lines that is not a table: the first line is the event, the rest ``lines``."""
    import logging.config

    from streams.runtime.logs import stdlib_logging_config

    logging.config.dictConfig(stdlib_logging_config("json"))
    logging.getLogger("aiokafka").warning("Heartbeat failed:\n  reason one\n\n  reason two")
    record = json.loads(capsys.readouterr().err.strip())
    assert (record["event"], record["lines"]) == ("Heartbeat failed", ["  reason one", "  reason two"])
