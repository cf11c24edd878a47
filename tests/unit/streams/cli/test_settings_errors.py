"""Every command reports invalid settings as one line and exit 1, never a traceback or a secret."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from pydantic import ValidationError

from streams.cli.main import main
from streams.cli.settings_errors import expected
from streams.runtime.settings import Settings
from streams.runtime.testing import free_port


@pytest.mark.parametrize("args", [["worker"], ["notifier"], ["events", "dead-letters"]])
def test_invalid_kafka_security_settings_are_one_line(args: list[str]) -> None:
    """SASL_SSL without credentials stops the command before any connection, naming the missing settings."""
    env = {"PREEMPT_KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "PREEMPT_KAFKA_SASL_PASSWORD": "hunter2-secret"}
    result = CliRunner().invoke(main, args, env=env)
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert lines == [
        "Error: invalid settings: PREEMPT_KAFKA_SECURITY_PROTOCOL=SASL_SSL needs "
        "PREEMPT_KAFKA_SASL_MECHANISM, PREEMPT_KAFKA_SASL_USERNAME"
    ]
    assert "hunter2" not in result.output


def test_invalid_field_names_the_variable() -> None:
    """A field-level error names the PREEMPT_* variable."""
    result = CliRunner().invoke(main, ["worker"], env={"PREEMPT_KAFKA_SASL_MECHANISM": "KERBEROS"})
    assert result.exit_code == 1
    assert result.output.startswith("Error: PREEMPT_KAFKA_SASL_MECHANISM='KERBEROS' is not valid: ")
    assert len(result.output.strip().splitlines()) == 1


def test_a_missing_kafka_ca_file_says_an_existing_file_is_expected(tmp_path: Path) -> None:
    """A CA file setting that names no file says so in words, not with a Python type name."""
    missing = tmp_path / "nowhere" / "ca.pem"
    env = {"PREEMPT_KAFKA_SECURITY_PROTOCOL": "SSL", "PREEMPT_KAFKA_SSL_CA_FILE": str(missing)}
    result = CliRunner().invoke(main, ["publish", "--event", "x", "--account", "a"], env=env)
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        f"Error: PREEMPT_KAFKA_SSL_CA_FILE={str(missing)!r} is not valid: path does not point to a file; "
        "expected the path of an existing file. Fix it or unset it (default: none)"
    ]


def test_every_setting_type_is_described_in_words() -> None:
    """No setting's expected value is described by a bare Python type name (Annotated, dict, …)."""
    for name, field in Settings.model_fields.items():
        words = expected(field.annotation)
        assert words == "text" or " " in words, f"{name}: {words!r}"


def test_a_missing_smtp_ca_file_stops_the_notifier_at_start(tmp_path: Path) -> None:
    """An SMTP CA bundle that does not exist is refused when the notifier starts (like the Kafka one),
    not at the first e-mail, where every delivery would fail."""
    missing = tmp_path / "smtp-ca.pem"
    env = {"PREEMPT_SMTP_CA_FILE": str(missing), "PREEMPT_SMTP_STARTTLS": "true"}
    result = CliRunner().invoke(main, ["notifier"], env=env)
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        f"Error: PREEMPT_SMTP_CA_FILE={str(missing)!r} is not valid: path does not point to a file; "
        "expected the path of an existing file. Fix it or unset it (default: none)"
    ]


def test_an_smtp_username_without_a_password_stops_the_notifier_at_start() -> None:
    """A username without a password logged every email in with an empty password (each one refused): one
    line at start."""
    # Nothing listens on port 1: without the check the notifier stops at the broker probe, another line.
    env = {"PREEMPT_BROKER": "kafka://127.0.0.1:1", "PREEMPT_SMTP_STARTTLS": "true", "PREEMPT_SMTP_USERNAME": "preempt"}
    result = CliRunner().invoke(main, ["notifier"], env=env)
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("Error: invalid settings: PREEMPT_SMTP_USERNAME is set without PREEMPT_SMTP_PASSWORD")


@pytest.mark.parametrize(
    ("env", "says"),
    [
        (
            {"PREEMPT_SMTP_STARTTLS": "true", "PREEMPT_SMTP_USE_TLS": "true"},
            "PREEMPT_SMTP_STARTTLS and PREEMPT_SMTP_USE_TLS are both on: USE_TLS wins",
        ),
        (
            {"PREEMPT_SMTP_STARTTLS": "true", "PREEMPT_SMTP_PASSWORD": "hunter2-secret"},
            "PREEMPT_SMTP_PASSWORD is set without PREEMPT_SMTP_USERNAME: emails are sent without logging in",
        ),
    ],
)
def test_smtp_settings_that_worked_before_are_a_warning_not_a_refusal(env: dict[str, str], says: str) -> None:
    """Both TLS modes on (the shipped configmap turns STARTTLS on; implicit TLS wins), or a password without
    a username (the documented Secret used to give only the password; no login is made), ran before: the
    notifier starts with a WARNING saying what it does, and goes on (here to the broker probe, nothing on port 1)."""
    port = str(free_port())  # the web port is checked before the broker: not 6067, which a notifier may hold
    result = CliRunner().invoke(
        main, ["notifier"], env={"PREEMPT_BROKER": "kafka://127.0.0.1:1", "PREEMPT_NOTIFIER_WEB_PORT": port, **env}
    )
    assert result.exit_code == 1
    assert "invalid settings" not in result.output
    assert result.output.strip().splitlines()[-1].startswith("Error: cannot reach Kafka"), result.output
    settings = Settings(**{k.removeprefix("PREEMPT_").lower(): v for k, v in env.items()})
    assert settings.smtp_warnings()[0].startswith(says)
    assert says in result.output
    assert "hunter2" not in result.output


@pytest.mark.parametrize(
    ("variable", "value", "says"),
    [
        ("PREEMPT_SLACK_BOT_TOKEN", "", "it is set but empty: give the value, or unset it"),
        ("PREEMPT_SLACK_SIGNING_SECRET", "", "it is set but empty: give the value, or unset it"),
        ("PREEMPT_SLACK_SIGNING_SECRET", "  ", "it is set but empty: give the value, or unset it"),
        ("PREEMPT_SLACK_WEBHOOK_URL", "", "must be an http(s) URL (value hidden)"),
        ("PREEMPT_SLACK_WEBHOOK_URL", "hooks.slack.com/services/T0/B0/hunter2-secret", "must be an http(s) URL"),
        ("PREEMPT_SMTP_HOST", "", "must not be empty"),
    ],
)
def test_slack_and_smtp_settings_that_fail_every_message_stop_the_notifier_at_start(
    variable: str, value: str, says: str
) -> None:
    """An empty bot token (every post not_authed, every alert dead-lettered), an empty signing secret (every
    Slack button answered 503 "not configured", which the operator had configured — an unset key of the k8s
    Secret), a webhook URL that is no URL or an empty SMTP host (every message retried for an hour, then given
    up) are one line at start, secrets hidden."""
    result = CliRunner().invoke(main, ["notifier"], env={"PREEMPT_BROKER": "kafka://127.0.0.1:1", variable: value})
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"Error: {variable}")
    assert says in lines[0]
    assert "hunter2" not in result.output


@pytest.mark.parametrize("value", ["", "  ", "http://0.0.0.0", "[]"])
def test_a_web_host_that_is_no_address_is_one_line(value: str) -> None:
    """PREEMPT_WEB_HOST set but empty (an unset ${VAR} in compose) or not an address stops a worker or notifier
    with one line naming the variable; empty was a traceback from Faust ("host is required")."""
    for command in ("worker", "notifier"):
        result = CliRunner().invoke(
            main, [command], env={"PREEMPT_BROKER": "kafka://127.0.0.1:1", "PREEMPT_WEB_HOST": value}
        )
        assert result.exit_code == 1
        lines = result.output.strip().splitlines()
        assert len(lines) == 1, result.output
        assert lines[0].startswith("Error: PREEMPT_WEB_HOST="), lines[0]
        assert "an interface address or host name" in lines[0]


@pytest.mark.parametrize("value", ["inf", "-inf", "Infinity", "nan"])
def test_a_setting_in_seconds_that_is_not_finite_is_one_line(value: str) -> None:
    """PREEMPT_BROKER_PROBE_SECONDS=inf is refused as a setting (it was an OverflowError traceback in the probe)."""
    result = CliRunner().invoke(main, ["events", "dead-letters"], env={"PREEMPT_BROKER_PROBE_SECONDS": value})
    assert result.exit_code == 1
    assert result.output.startswith(f"Error: PREEMPT_BROKER_PROBE_SECONDS={value!r} is not valid: ")
    assert len(result.output.strip().splitlines()) == 1


def test_a_topic_prefix_written_with_its_dot_names_the_same_topics(monkeypatch: pytest.MonkeyPatch) -> None:
    """``staging.`` gives ``staging.events``, as ``staging`` does, not ``staging..events``."""
    monkeypatch.setenv("PREEMPT_TOPIC_PREFIX", "staging.")
    assert Settings().topic("events") == "staging.events"
    monkeypatch.setenv("PREEMPT_TOPIC_PREFIX", "staging")
    assert Settings().topic("events") == "staging.events"


@pytest.mark.parametrize(
    ("variable", "value", "says"),
    [
        ("PREEMPT_TOPIC_PREFIX", "bad prefix!", "the characters Kafka allows in topic names"),
        ("PREEMPT_TOPIC_PREFIX", "", "the characters Kafka allows in topic names"),
        ("PREEMPT_TOPIC_PREFIX", "..", "the characters Kafka allows in topic names"),
        ("PREEMPT_STORE", "bogus://", "the store is rocksdb:// (production) or memory://"),
        ("PREEMPT_LOG_LEVEL", "LOUD", "not a log level: use one of DEBUG, INFO, WARNING"),
    ],
)
def test_a_setting_faust_or_kafka_would_refuse_later_is_one_line_now(variable: str, value: str, says: str) -> None:
    """A topic prefix Kafka refuses ('cannot reach Kafka'), a store Faust does not know (its traceback) or an
    unknown log level (silently INFO) is refused as a setting, before any connection."""
    env = {variable: value, "PREEMPT_BROKER": "kafka://127.0.0.1:1"}
    for args in (["worker"], ["publish", "--event", "Login", "--account", "acme"]):
        result = CliRunner().invoke(main, args, env=env)
        assert result.exit_code == 1, result.output
        assert result.output.startswith(f"Error: {variable}={value!r} is not valid: "), result.output
        assert says in result.output
        assert len(result.output.strip().splitlines()) == 1


def test_a_data_dir_that_is_a_file_is_one_line_naming_the_default(tmp_path: Path) -> None:
    """PREEMPT_DATA_DIR naming a file is refused at start (RocksDB's traceback), and the default reads as a path."""
    a_file = tmp_path / "data"
    a_file.write_text("")
    result = CliRunner().invoke(main, ["worker"], env={"PREEMPT_DATA_DIR": str(a_file)})
    assert result.exit_code == 1
    assert result.output.strip() == (
        f"Error: PREEMPT_DATA_DIR={str(a_file)!r} is not valid: {a_file} exists and is not a folder; point it at a "
        "folder (it is made when missing); expected a path. Fix it or unset it (default: '.preempt-data')"
    )


def test_store_and_log_level_are_read_in_any_case() -> None:
    """MEMORY:// and 'debug' are the names they spell, normalised (the apps compare the store's lower-case form)."""
    settings = Settings(store=" MEMORY:// ", log_level="debug")
    assert settings.store == "memory://"
    assert settings.log_level == "DEBUG"


def test_a_misspelt_setting_is_named_with_the_one_it_nearly_spells(tmp_path: Path) -> None:
    """PREEMPT_TOPIC_PARTITON=3 (a typo, silently ignored: the default 12 was used) gets a note naming
    PREEMPT_TOPIC_PARTITIONS; variables that merely share the prefix (PREEMPT_KEY in the docs' curl) get none."""
    env = {"PREEMPT_TOPIC_PARTITON": "3", "PREEMPT_KEY": "pk_x", "PREEMPT_TEST_HOST": "h"}
    result = CliRunner().invoke(main, ["events", "validate", str(tmp_path / "none.jsonl")], env=env)
    notes = [line for line in result.stderr.splitlines() if line.startswith("note:")]
    assert notes == [
        "note: PREEMPT_TOPIC_PARTITON is not a Preempt setting and is ignored; did you mean PREEMPT_TOPIC_PARTITIONS?"
    ]


@pytest.mark.parametrize(
    ("broker", "address"),
    [
        ("kafka://preempt:hunter2-secret@kafka.example.com:9093", "kafka.example.com:9093"),
        ("preempt:hunter2-secret@kafka.example.com:9093", "kafka.example.com:9093"),
        (
            "kafka://a.example.com:9093;kafka://preempt:hunter2-secret@b.example.com:9093",
            "a.example.com:9093;b.example.com:9093",
        ),
        ("kafka://hunter2-secret@kafka.example.com:9093", "kafka.example.com:9093"),
    ],
)
def test_credentials_written_into_the_broker_address_are_refused_without_showing_them(
    broker: str, address: str
) -> None:
    """A PREEMPT_BROKER copied with its credentials (``user:password@host:port``, as service URIs carry
    them) is one line naming the settings the credentials belong in, without the password; it was taken
    for a host name, and the command waited 5 s to print "cannot reach Kafka at preempt:<password>@…"."""
    for args in (["worker"], ["publish", "--event", "Login", "--account", "acme"], ["events", "dead-letters"]):
        result = CliRunner().invoke(main, args, env={"PREEMPT_BROKER": broker})
        assert result.exit_code == 1, result.output
        assert "hunter2" not in result.output
        lines = result.output.strip().splitlines()
        assert len(lines) == 1, result.output
        assert lines[0].startswith("Error: invalid settings: PREEMPT_BROKER holds credentials before '@'"), lines
        assert f"write PREEMPT_BROKER=kafka://{address} and put them in PREEMPT_KAFKA_SASL_USERNAME and " in lines[0]


def test_a_settings_error_raised_in_python_code_does_not_show_the_inputs() -> None:
    """Settings() built by a product's own code (for the SDK's ``Publisher.from_settings``) that fails a
    check across fields raised a ValidationError whose message listed every input, the SASL password too."""
    with pytest.raises(ValidationError) as raised:
        Settings(_env_file=None, kafka_security_protocol="SASL_SSL", kafka_sasl_password="hunter2-secret")  # type: ignore[call-arg]
    assert "PREEMPT_KAFKA_SECURITY_PROTOCOL=SASL_SSL needs" in str(raised.value)
    assert "hunter2" not in str(raised.value)
    assert "hunter2" not in repr(raised.value)


@pytest.mark.parametrize("command", ["worker", "notifier"])
def test_exactly_once_starts_with_a_warning_of_what_it_does_not_give(command: str) -> None:
    """PREEMPT_PROCESSING_GUARANTEE=exactly_once runs (it reads committed records only), but the outputs are
    not transactional: worker and notifier say so in one WARNING at start; the default says nothing."""
    says = "PREEMPT_PROCESSING_GUARANTEE=exactly_once reads only committed records"
    outputs = {}
    for guarantee in ("exactly_once", "at_least_once"):
        port = str(free_port())
        result = CliRunner().invoke(
            main,
            [command],
            env={
                "PREEMPT_BROKER": "kafka://127.0.0.1:1",
                "PREEMPT_WORKER_WEB_PORT": port,
                "PREEMPT_NOTIFIER_WEB_PORT": port,
                "PREEMPT_PROCESSING_GUARANTEE": guarantee,
            },
        )
        assert result.output.strip().splitlines()[-1].startswith("Error: cannot reach Kafka"), result.output
        outputs[guarantee] = result.output
    assert outputs["exactly_once"].count(says) == 1
    assert "processing guarantee" not in outputs["at_least_once"]
    assert Settings(processing_guarantee="at_least_once").guarantee_warnings() == []


@pytest.mark.parametrize(("value", "says"), [("0", "at least 1024"), ("-1", "at least 1024"), ("67108865", "at most")])
def test_an_ingest_body_limit_no_request_could_meet_is_one_line(value: str, says: str) -> None:
    """PREEMPT_INGEST_MAX_BODY_BYTES=0 (or -1) started an ingest that answered every request 413 "larger than
    -1 bytes" — which the SDKs never retry, so each batch was dropped — while /readyz said ready."""
    env = {"PREEMPT_INGEST_MAX_BODY_BYTES": value, "PREEMPT_BROKER": "kafka://127.0.0.1:1"}
    result = CliRunner().invoke(main, ["ingest"], env=env)
    assert result.exit_code == 1, result.output
    assert result.output.startswith(f"Error: PREEMPT_INGEST_MAX_BODY_BYTES={value!r} is not valid: "), result.output
    assert says in result.output
    assert len(result.output.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ('["*"]', "'*' is not supported"),
        ('["app.example.com"]', "is not an origin: write scheme://host[:port]"),
        ('["https://app.example.com/signup"]', "without a path"),
    ],
)
def test_a_cors_origin_no_browser_sends_is_one_line(value: str, says: str) -> None:
    """PREEMPT_INGEST_CORS_ORIGINS entries are compared with the browser's Origin exactly: "*" or a host without
    its scheme never matched (every analytics.js call refused by the browser, nothing said by ingest)."""
    env = {"PREEMPT_INGEST_CORS_ORIGINS": value, "PREEMPT_BROKER": "kafka://127.0.0.1:1"}
    result = CliRunner().invoke(main, ["ingest"], env=env)
    assert result.exit_code == 1, result.output
    assert result.output.startswith("Error: PREEMPT_INGEST_CORS_ORIGINS"), result.output
    assert says in result.output
    assert len(result.output.strip().splitlines()) == 1
