"""Kafka security end to end: every client over a SASL_SSL-only broker, and refused logins fail fast."""

from __future__ import annotations

import os
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import KafkaError

from alerts.testing.slack_server import FakeSlack, slack_server  # noqa: F401
from streams.ingest.auth import key_digest
from streams.runtime.kafka_clients import KafkaAccessError, kafka_python_config
from streams.runtime.settings import Settings
from streams.runtime.testing import free_port, listening_addresses
from streams.runtime.topics import TopicNames, ensure_topics
from streams.sdk.publisher import Publisher
from tests.integration.conftest import ManagedProcess
from tests.integration.ingest_support import KEY, post, wait_healthy
from tests.integration.notifier_harness import log_records, notifier_settings, start_notifier, write_routes
from tests.integration.own_broker import KAFKA_SCRIPT
from tests.integration.pipeline_support import (
    append_heartbeats,
    backtest_alert_ids,
    count_lines,
    publish_lines,
    simulate,
    wait_for_metric,
)
from tests.integration.secured_kafka import (  # noqa: F401
    SaslBroker,
    mtls_plain_scram256_broker,
    sasl_broker,
    start_sasl_broker,
    stop_sasl_broker,
)

OPERATIONS_DOC = Path(__file__).resolve().parents[2] / "docs" / "operations.md"
ROUTES = """
receivers:
  - name: csm
    slack_configs:
      - channel: C-CSM
route:
  receiver: csm
  group_by: [account_id, rule_id]
  group_wait: 0s
  group_interval: 1s
"""


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 (127.0.0.1 only)
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def _run(process_factory: Callable[..., ManagedProcess], args: list[str], settings: Settings, name: str) -> str:
    """Run a CLI command to completion (bounded); returns its output."""
    proc = process_factory(args, settings, name=name)
    proc.proc.wait(timeout=120)
    assert proc.proc.returncode == 0, proc.log_text()[-3000:]
    return proc.log_text()


def test_publish_worker_notifier_over_sasl_ssl(
    sasl_broker: SaslBroker,  # noqa: F811
    settings_factory: Callable[..., Settings],
    process_factory: Callable[..., ManagedProcess],
    slack_server: FakeSlack,  # noqa: F811
    tmp_path: Path,
) -> None:
    """Over TLS + SCRAM-SHA-512 only, `preempt publish` → rules worker → notifier delivers exactly the
    backtest's alerts to Slack, once each; neither app serves Faust's /table or /router pages."""
    settings = notifier_settings(
        settings_factory,
        write_routes(tmp_path, ROUTES),
        slack_api_url=slack_server.api_url,
        event_time_only=True,
        worker_web_port=free_port(),
        **sasl_broker.settings(),
    )
    assert settings.kafka_security_protocol == "SASL_SSL"
    ensure_topics(settings)
    names = TopicNames.from_settings(settings)
    events, accounts = simulate(tmp_path, days=3, accounts=12, seed=7)
    append_heartbeats(events, settings.topic_partitions)
    expected = backtest_alert_ids(events, accounts, tmp_path / "backtest.jsonl")
    assert expected

    producer = KafkaProducer(bootstrap_servers=settings.bootstrap_servers, acks="all", **kafka_python_config(settings))
    try:
        publish_lines(producer, names.accounts, accounts)
    finally:
        producer.close()
    _run(process_factory, ["preempt", "publish", "--file", str(events)], settings, "publish")

    worker = process_factory(["preempt", "worker"], settings, name="worker")
    notifier = start_notifier(process_factory, settings)
    wait_for_metric(settings.worker_web_port, "preempt_events_total", count_lines(events), timeout_s=180)
    deadline = time.monotonic() + 120
    delivered: list[str] = []
    while time.monotonic() < deadline:
        delivered = [r["alert_id"] for r in log_records(notifier, "alert delivered")]
        if set(delivered) >= expected:
            break
        time.sleep(0.5)
    time.sleep(2.0)  # a duplicate, if any, would be delivered right behind the last one
    delivered = [r["alert_id"] for r in log_records(notifier, "alert delivered")]
    assert set(delivered) == expected, worker.log_text()[-3000:]
    assert [a for a, n in Counter(delivered).items() if n > 1] == []
    assert len(slack_server.delivered(target="C-CSM")) >= 1

    for proc, port in ((worker, settings.worker_web_port), (notifier, settings.notifier_web_port)):
        assert proc.proc.poll() is None, f"{proc.log_path.name} exited ({proc.proc.poll()}):\n{proc.log_text()[-3000:]}"
        try:
            status = _status(f"http://127.0.0.1:{port}/metrics")
        except urllib.error.URLError as exc:  # e.g. refused: the process is stopping (its log says why)
            pytest.fail(f"{proc.log_path.name}: /metrics on {port}: {exc.reason}\n{proc.log_text()[-3000:]}")
        assert status == 200, f"{proc.log_path.name}: /metrics on {port}"
        assert listening_addresses(port) == {"127.0.0.1"}, f"{proc.log_path.name} listens beyond PREEMPT_WEB_HOST"
        for path in ("/table/", "/table/state/", "/table/deliveries/", "/router/", "/router/state/"):
            assert _status(f"http://127.0.0.1:{port}{path}") == 404, (port, path)


@pytest.mark.parametrize(
    "args",
    [
        ["preempt", "worker"],
        ["preempt", "notifier"],
        ["preempt", "publish", "--event", "Login", "--account", "acme"],
        ["preempt", "events", "dead-letters"],
    ],
    ids=["worker", "notifier", "publish", "dead-letters"],
)
def test_wrong_credentials_fail_fast_with_one_line(
    sasl_broker: SaslBroker,  # noqa: F811
    settings_factory: Callable[..., Settings],
    process_factory: Callable[..., ManagedProcess],
    args: list[str],
) -> None:
    """A wrong SCRAM password stops the worker, the notifier and the CLI within seconds, exit 1, with one
    line that names the refused user and the settings to check (no traceback, no password)."""
    wrong = "not-the-password-7f3a"
    settings = settings_factory(**sasl_broker.settings(kafka_sasl_password=wrong))
    proc = process_factory(args, settings, name=args[1])
    started = time.monotonic()
    proc.proc.wait(timeout=60)
    took = time.monotonic() - started
    output = proc.log_text()
    lines = [line for line in output.splitlines() if line.strip()]
    assert proc.proc.returncode == 1, output[-3000:]
    assert took < 30, f"took {took:.1f}s"
    assert lines[-1].startswith("Error: Kafka at 127.0.0.1:"), output[-3000:]
    assert "refused the login of user 'preempt' (SCRAM-SHA-512 over SASL_SSL)" in lines[-1]
    assert "PREEMPT_KAFKA_SASL_PASSWORD" in lines[-1]
    assert "Traceback" not in output
    assert wrong not in output
    if args[1] == "worker":  # the line docs/operations.md shows, with the docs' port
        assert lines[-1].replace(sasl_broker.bootstrap, "127.0.0.1:19092") in OPERATIONS_DOC.read_text()


def test_the_sdks_plain_constructor_refuses_a_wrong_password_at_once_naming_its_argument(
    sasl_broker: SaslBroker,  # noqa: F811
) -> None:
    """``Publisher(bootstrap_servers=…, security_protocol=…, sasl_…=…, ssl_cafile=…)``, the SDK's constructor
    with kafka-python's own security arguments (docs/events.md): a wrong password is a KafkaAccessError naming
    the arguments to check, never the password. It was kafka-python's 30 s of retries ("socket disconnected")
    and then BrokerUnavailableError "cannot reach Kafka … is the broker running". The right one publishes."""
    fields = sasl_broker.settings()
    arguments: dict[str, Any] = {
        "bootstrap_servers": sasl_broker.bootstrap,
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": fields["kafka_sasl_mechanism"],
        "sasl_plain_username": fields["kafka_sasl_username"],
        "ssl_cafile": fields["kafka_ssl_ca_file"],
    }
    wrong = "not-the-password-51c2"
    with pytest.raises(KafkaAccessError) as refused:
        Publisher(**arguments, sasl_plain_password=wrong)
    message = str(refused.value)
    assert "refused the login of user 'preempt' (SCRAM-SHA-512 over SASL_SSL)" in message, message
    assert "check sasl_plain_username, sasl_plain_password and sasl_mechanism" in message, message
    assert wrong not in message
    settings = Settings(**fields, topic_prefix="sdkplain")
    ensure_topics(settings)
    with Publisher(**arguments, sasl_plain_password=fields["kafka_sasl_password"], topic="sdkplain.events") as sdk:
        sdk.track("acme", "Report Exported")
    assert sdk.sent == 1


@pytest.mark.parametrize(("field", "padding"), [("kafka_sasl_password", "\n"), ("kafka_sasl_username", " ")])
def test_a_credential_with_a_trailing_newline_or_space_is_named_in_the_refusal(
    sasl_broker: SaslBroker,  # noqa: F811
    settings_factory: Callable[..., Settings],
    process_factory: Callable[..., ManagedProcess],
    field: str,
    padding: str,
) -> None:
    """The right password with the newline a secret file or `echo` leaves at its end is refused like any
    wrong one; the refusal now says the setting ends with white space (without showing the password)."""
    fields = sasl_broker.settings()
    password = fields["kafka_sasl_password"]
    output = _publish_error(
        settings_factory(**{**fields, field: fields[field] + padding}), process_factory, f"padded-{field}"
    )
    assert "refused the login of user" in output
    setting = f"PREEMPT_{field.upper()}"
    assert f"{setting} ends with white space (a newline or a space); remove it" in output, output
    assert password not in output


def test_a_silent_server_in_the_bootstrap_list_does_not_hang_the_cli(
    sasl_broker: SaslBroker,  # noqa: F811
    settings_factory: Callable[..., Settings],
    process_factory: Callable[..., ManagedProcess],
) -> None:
    """A bootstrap list with one server that takes the connection and never answers (a hung broker, a
    port-forward to nothing) next to a live one: `publish` and `events dead-letters` finish in seconds
    through the live one. kafka-python picks a bootstrap server at random and waits for a TLS handshake
    without a deadline, so they hung for good (or, in plain text, gave up after 42 s) on most runs."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(64)  # never accepted: the kernel takes the connection, nobody answers the TLS hello
        broker = f"kafka://127.0.0.1:{silent.getsockname()[1]};{sasl_broker.bootstrap}"
        settings = settings_factory(**sasl_broker.settings(broker=broker))
        commands = [["publish", "--event", "Report Exported", "--account", f"acme-{n}"] for n in range(3)]
        for n, args in enumerate([*commands, ["events", "dead-letters"]]):
            proc = process_factory(["preempt", *args], settings, name=f"silent-{n}")
            started = time.monotonic()
            try:
                proc.proc.wait(timeout=40)
            except subprocess.TimeoutExpired:
                pytest.fail(f"`preempt {' '.join(args)}` still running after 40 s:\n{proc.log_text()[-2000:]}")
            output = proc.log_text()
            assert proc.proc.returncode == 0, output[-3000:]
            assert time.monotonic() - started < 30, output[-3000:]


def test_anonymous_client_cannot_write(sasl_broker: SaslBroker) -> None:  # noqa: F811
    """A client without credentials (plain text) cannot write to the secured broker's topics."""

    def forge() -> None:
        producer = KafkaProducer(bootstrap_servers=[sasl_broker.bootstrap], max_block_ms=3000)
        try:
            producer.send("preempt.alerts", b"forged").get(timeout=5)
        finally:
            producer.close(timeout=2)

    with pytest.raises(KafkaError):
        forge()


def test_untrusted_broker_certificate_is_one_clear_error(
    sasl_broker: SaslBroker,  # noqa: F811
    settings_factory: Callable[..., Settings],
    process_factory: Callable[..., ManagedProcess],
) -> None:
    """Without the CA that signed the broker's certificate, the CLI stops at once and says which setting to set."""
    fields = sasl_broker.settings()
    fields.pop("kafka_ssl_ca_file")
    proc = process_factory(["preempt", "events", "dead-letters"], settings_factory(**fields), name="no-ca")
    proc.proc.wait(timeout=60)
    output = proc.log_text()
    assert proc.proc.returncode == 1, output[-3000:]
    assert "TLS certificate is not trusted" in output
    assert "PREEMPT_KAFKA_SSL_CA_FILE" in output
    assert "Traceback" not in output


def _access_error(**fields: Any) -> str:
    """The one line ``check_access`` refuses these settings with ("" when access is granted)."""
    from streams.runtime.kafka_clients import KafkaAccessError, check_access

    settings = Settings(_env_file=None, **fields)
    try:
        check_access(settings, timeout_s=10)
    except KafkaAccessError as exc:
        return str(exc)
    return ""


def test_a_mechanism_the_broker_does_not_offer_names_the_ones_it_does(sasl_broker: SaslBroker) -> None:  # noqa: F811
    """SCRAM-SHA-256 or PLAIN against the SCRAM-SHA-512 listener is one line that lists what it offers
    (aiokafka's own message was the connection's repr)."""
    for mechanism in ("SCRAM-SHA-256", "PLAIN"):
        message = _access_error(**sasl_broker.settings(kafka_sasl_mechanism=mechanism))
        assert f"does not offer the SASL mechanism {mechanism} on its SASL_SSL listener" in message
        assert "(it offers SCRAM-SHA-512); set PREEMPT_KAFKA_SASL_MECHANISM" in message


def test_tls_without_sasl_on_a_sasl_listener_says_a_login_is_expected(sasl_broker: SaslBroker) -> None:  # noqa: F811
    """PREEMPT_KAFKA_SECURITY_PROTOCOL=SSL against the SASL_SSL listener is refused at the check, saying
    the listener wants a SASL login; it used to pass the check (the broker answers ApiVersions before any
    login) and end as "cannot reach Kafka … start the broker"."""
    fields = {k: v for k, v in sasl_broker.settings().items() if not k.startswith("kafka_sasl_")}
    message = _access_error(**{**fields, "kafka_security_protocol": "SSL"})
    assert "accepted the SSL connection but cut it at the first request: the listener expects a SASL login" in message
    assert "PREEMPT_KAFKA_SECURITY_PROTOCOL=SASL_SSL" in message


def test_sasl_or_tls_on_a_plaintext_listener_is_a_protocol_mismatch(kafka_bootstrap: str) -> None:
    """A SASL login or a TLS hello sent to the plain-text broker is one line naming the protocol setting."""
    sasl = {"kafka_sasl_mechanism": "PLAIN", "kafka_sasl_username": "preempt", "kafka_sasl_password": "x"}
    message = _access_error(broker=f"kafka://{kafka_bootstrap}", kafka_security_protocol="SASL_PLAINTEXT", **sasl)
    assert "does not take SASL logins on this listener; set PREEMPT_KAFKA_SECURITY_PROTOCOL=PLAINTEXT" in message
    message = _access_error(broker=f"kafka://{kafka_bootstrap}", kafka_security_protocol="SSL")
    assert "closed the connection during the SSL handshake" in message
    assert _access_error(broker=f"kafka://{kafka_bootstrap}") == ""


def _publish_error(settings: Settings, process_factory: Callable[..., ManagedProcess], name: str) -> str:
    """Run `preempt publish` (bounded) and return its output; it must fail at once with one Error line."""
    proc = process_factory(
        ["preempt", "publish", "--event", "Report Exported", "--account", "acme"], settings, name=name
    )
    started = time.monotonic()
    proc.proc.wait(timeout=60)
    output = proc.log_text()
    assert proc.proc.returncode == 1, output[-3000:]
    assert time.monotonic() - started < 30, output[-3000:]
    assert "Traceback" not in output, output[-3000:]
    assert [line for line in output.splitlines() if line.strip()] == [
        next(line for line in output.splitlines() if line.startswith("Error: "))
    ], output[-3000:]
    return output


def test_a_protocol_on_the_wrong_side_of_tls_says_which_protocol_to_set(
    kafka_bootstrap: str,
    sasl_broker: SaslBroker,  # noqa: F811
    settings_factory: Callable[..., Settings],
    process_factory: Callable[..., ManagedProcess],
) -> None:
    """TLS to the plain-text listener says the listener does not speak TLS and names the plain-text
    protocol to set; plain text to the TLS listener names the TLS protocol. Both said "check that
    PREEMPT_KAFKA_SECURITY_PROTOCOL matches the listener (SSL/SASL_SSL need TLS)", which sends an
    operator whose client already speaks TLS looking for the fault on the wrong side."""
    ca_file = sasl_broker.settings()["kafka_ssl_ca_file"]
    output = _publish_error(
        settings_factory(kafka_security_protocol="SSL", kafka_ssl_ca_file=ca_file), process_factory, "ssl-to-plain"
    )
    assert "the listener does not seem to speak TLS; set PREEMPT_KAFKA_SECURITY_PROTOCOL=PLAINTEXT" in output
    sasl_ssl = {k: v for k, v in sasl_broker.settings().items() if k != "broker"}
    output = _publish_error(settings_factory(**sasl_ssl), process_factory, "sasl-ssl-to-plain")
    assert "the listener does not seem to speak TLS; set PREEMPT_KAFKA_SECURITY_PROTOCOL=SASL_PLAINTEXT" in output
    output = _publish_error(settings_factory(broker=sasl_broker.settings()["broker"]), process_factory, "plain-to-tls")
    assert "the listener seems to expect TLS; set PREEMPT_KAFKA_SECURITY_PROTOCOL=SSL" in output
    sasl_plain = {k: v for k, v in sasl_broker.settings().items() if k != "kafka_ssl_ca_file"}
    output = _publish_error(
        settings_factory(**{**sasl_plain, "kafka_security_protocol": "SASL_PLAINTEXT"}), process_factory, "sasl-to-tls"
    )
    assert "the listener seems to expect TLS; set PREEMPT_KAFKA_SECURITY_PROTOCOL=SASL_SSL" in output


def test_plain_and_scram_sha_256_with_mutual_tls_carry_events_to_the_worker(
    mtls_plain_scram256_broker: SaslBroker,  # noqa: F811
    settings_factory: Callable[..., Settings],
    process_factory: Callable[..., ManagedProcess],
) -> None:
    """Over a listener offering PLAIN and SCRAM-SHA-256 with client certificates required, `preempt
    publish` works with either mechanism and a rules worker logged in with PLAIN consumes the events."""
    broker = mtls_plain_scram256_broker
    port = free_port()
    settings = settings_factory(**broker.settings(), worker_web_port=port)
    worker = process_factory(["preempt", "worker"], settings, name="worker")
    for n, mechanism in enumerate(("PLAIN", "SCRAM-SHA-256", "PLAIN")):
        args = ["preempt", "publish", "--event", "Report Exported", "--account", f"acme-{n}"]
        output = _run(process_factory, args, settings.model_copy(update={"kafka_sasl_mechanism": mechanism}), f"p{n}")
        assert "published" in output
    assert wait_for_metric(port, 'preempt_events_total{outcome="accepted"}', 3, timeout_s=120)
    assert "Traceback" not in worker.log_text()


def test_a_listener_requiring_a_client_certificate_refuses_a_client_without_one_in_one_line(
    mtls_plain_scram256_broker: SaslBroker,  # noqa: F811
    settings_factory: Callable[..., Settings],
    process_factory: Callable[..., ManagedProcess],
) -> None:
    """Without PREEMPT_KAFKA_SSL_CERT_FILE/KEY_FILE against mutual TLS, the worker stops at once with one
    line naming the two settings (it said "check the protocol")."""
    fields = {k: v for k, v in mtls_plain_scram256_broker.settings().items() if "cert" not in k and "key" not in k}
    proc = process_factory(["preempt", "worker"], settings_factory(**fields), name="no-cert")
    proc.proc.wait(timeout=60)
    output = proc.log_text()
    lines = [line for line in output.splitlines() if line.strip()]
    assert proc.proc.returncode == 1, output[-3000:]
    assert lines[-1].startswith("Error: Kafka at 127.0.0.1:"), output[-3000:]
    assert "refused this client's TLS certificate" in lines[-1]
    assert "set PREEMPT_KAFKA_SSL_CERT_FILE and PREEMPT_KAFKA_SSL_KEY_FILE" in lines[-1]
    assert "Traceback" not in output


def test_http_ingest_writes_to_a_sasl_ssl_broker(
    sasl_broker: SaslBroker,  # noqa: F811
    settings_factory: Callable[..., Settings],
    process_factory: Callable[..., ManagedProcess],
) -> None:
    """`preempt ingest` logged in over TLS + SCRAM-SHA-512 answers 202 and its events are on the topic."""
    port = free_port()
    settings = settings_factory(**sasl_broker.settings(), ingest_api_keys=(key_digest(KEY),), ingest_port=port)
    proc = process_factory(["preempt", "ingest"], settings, name="ingest")
    wait_healthy(port, proc, timeout_s=90)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 60))
    items = [
        {"event_id": f"sec-{i}", "event": "Login", "account_id": f"acct-{i}", "timestamp": stamp} for i in range(3)
    ]
    status, answer = post(port, orjson.dumps(items), {"Authorization": f"Bearer {KEY}"})
    assert (status, answer.get("accepted")) == (202, 3), answer

    topic = TopicNames.from_settings(settings).events
    consumer = KafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers, consumer_timeout_ms=500, **kafka_python_config(settings)
    )
    try:
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        seen: set[str] = set()
        deadline = time.monotonic() + 60
        while len(seen) < 3 and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=500).values():
                seen |= {orjson.loads(r.value)["event_id"] for r in records}
    finally:
        consumer.close()
    assert seen == {"sec-0", "sec-1", "sec-2"}
    assert "Traceback" not in proc.log_text()


def test_the_local_sasl_broker_takes_a_password_with_shell_characters_and_refuses_one_it_cannot_carry(
    tmp_path: Path,
    settings_factory: Callable[..., Settings],
    process_factory: Callable[..., ManagedProcess],
) -> None:
    """deploy/kafka/kafka.sh with KAFKA_SCRAM_USER/KAFKA_SCRAM_PASSWORD of one's own: a password with '=', '!' and
    '$' logs in through the client.env it writes (written unquoted, `$x` was expanded away when sourced, and the
    login refused), and one with a comma is one clear line before anything starts (Kafka's storage tool
    failed with "Unknown SCRAM configurations")."""
    refused = subprocess.run(
        [str(KAFKA_SCRIPT), "start"],
        env={
            **os.environ,
            "KAFKA_SECURITY": "SASL_SSL",
            "KAFKA_SCRAM_PASSWORD": "Pa,ss",
            "KAFKA_HOME_DIR": str(tmp_path / "no"),
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert refused.returncode == 2, refused.stderr
    assert "KAFKA_SCRAM_PASSWORD may not hold , [ ]" in refused.stderr
    assert not (tmp_path / "no" / "data").exists()

    password = "ok=fine!$x"
    broker, script_env = start_sasl_broker(
        tmp_path / "broker", KAFKA_SCRAM_USER="svc-preempt", KAFKA_SCRAM_PASSWORD=password
    )
    try:
        assert broker.env["PREEMPT_KAFKA_SASL_PASSWORD"] == password
        sourced = subprocess.run(
            ["bash", "-c", f'source {broker.home / "client.env"} && printf %s "$PREEMPT_KAFKA_SASL_PASSWORD"'],
            capture_output=True,
            text=True,
            check=True,
        )
        assert sourced.stdout == password
        settings = settings_factory(**broker.settings())
        output = _run(process_factory, ["preempt", "publish", "--event", "Login", "--account", "acme"], settings, "pw")
        assert "published" in output
    finally:
        stop_sasl_broker(script_env)
