"""The ``preempt`` CLI's error paths: one ``Error:`` line saying what is wrong and what to do, a
non-zero exit, no traceback, and — with the broker down (a closed port) — a failure from the 5 s
broker probe, not from the Kafka clients' 30 s+ of retries.

The broker-down cases and a few others run the installed command as a user does (a subprocess);
the rest go through ``streams.cli.main.main`` in-process with click's runner, which exercises the same
top-level handler.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from streams.cli.main import PreemptGroup, main

PREEMPT = str(Path(sys.executable).parent / "preempt")
CLOSED_BROKER = "kafka://127.0.0.1:1"  # nothing listens on port 1: connections are refused
# A guard against a hang only (the machine may be heavily loaded): that the probe, not a client's
# retries, ended a command is shown by its message, which only the probe writes.
BOUND_S = 90.0
VALID_EVENT = b'{"event_id":"e1","event":"Login","account_id":"acme","timestamp":"2026-11-23T06:00:00Z"}\n'


@dataclass(frozen=True)
class Run:
    """What one finished command did."""

    returncode: int
    stdout: str
    stderr: str
    seconds: float


def _env(**overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREEMPT_")}
    env.update({"PREEMPT_LOG_FORMAT": "console", **overrides})
    return env


def _start(args: list[str], env: dict[str, str], cwd: Path) -> tuple[subprocess.Popen[str], float]:
    process = subprocess.Popen(
        [PREEMPT, *args], env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    return process, time.monotonic()


def _finish(process: subprocess.Popen[str], began: float) -> Run:
    try:
        stdout, stderr = process.communicate(timeout=BOUND_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        pytest.fail(f"{process.args} did not exit within {BOUND_S} s")
    return Run(process.returncode, stdout, stderr, time.monotonic() - began)


BROKER_DOWN = {
    "worker": ["worker"],
    "notifier": ["notifier"],
    "dead-letters": ["events", "dead-letters"],
    "simulate-live": ["simulate", "--accounts", "2", "--duration", "1", "--seed", "1"],
    "simulate-backfill": ["simulate", "--accounts", "2", "--days", "1", "--seed", "1", "--backfill"],
    "publish-event": ["publish", "--event", "Login", "--account", "acme"],
    "publish-file": ["publish", "--file", "events.jsonl"],
}


@pytest.fixture(scope="module")
def broker_down(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Run]:
    """Every broker-using command run at once against a closed port (they wait concurrently)."""
    cwd = tmp_path_factory.mktemp("broker-down")
    (cwd / "events.jsonl").write_bytes(VALID_EVENT)
    env = _env(PREEMPT_BROKER=CLOSED_BROKER, PREEMPT_INGEST_API_KEYS='["' + "0" * 64 + '"]')
    started = {name: _start(args, env, cwd) for name, args in BROKER_DOWN.items()}
    started["ingest"] = _start(["ingest", "--port", "0"], env, cwd)
    return {name: _finish(*pair) for name, pair in started.items()}


@pytest.mark.parametrize("name", [*BROKER_DOWN, "ingest"])
def test_broker_down_fails_fast_with_one_line(broker_down: dict[str, Run], name: str) -> None:
    """With no broker, each command exits 1 within the bound, saying where it looked and what to do."""
    run = broker_down[name]
    assert run.returncode == 1, run
    assert "Traceback" not in run.stderr
    assert "Error: cannot reach Kafka at 127.0.0.1:1 within 5 s" in run.stderr, run.stderr
    assert "start the broker (`make kafka`) or point PREEMPT_BROKER at a running one" in run.stderr


def _invoke(args: list[str], cwd: Path, stdin: bytes | None = None, **env: str) -> Run:
    """Run ``preempt ARGS`` in-process (click's runner) in ``cwd`` with only the given PREEMPT_* settings."""
    unset: dict[str, str | None] = {k: None for k in os.environ if k.startswith("PREEMPT_")}
    began = time.monotonic()
    previous = Path.cwd()
    os.chdir(cwd)
    try:
        result = CliRunner().invoke(main, args, input=stdin, env={**unset, **env})
    finally:
        os.chdir(previous)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exc_info
    return Run(result.exit_code, result.stdout, result.stderr, time.monotonic() - began)


def _run(args: list[str], cwd: Path, stdin: bytes | None = None, **env: str) -> Run:
    began = time.monotonic()
    done = subprocess.run(
        [PREEMPT, *args], env=_env(**env), cwd=cwd, input=stdin, capture_output=True, timeout=BOUND_S, check=False
    )
    return Run(done.returncode, done.stdout.decode(), done.stderr.decode(), time.monotonic() - began)


def test_publish_refuses_an_invalid_event_before_connecting(tmp_path: Path) -> None:
    """An invalid event is rejected at once with its reason, even though no broker is reachable."""
    run = _invoke(["publish", "--event", "x" * 200, "--account", "acme"], tmp_path, PREEMPT_BROKER=CLOSED_BROKER)
    assert run.returncode == 1
    assert run.stderr.strip() == "Error: rejected: invalid_field (event): event must be 1 to 128 characters, got 200"


def test_ingest_without_api_keys_reaches_its_own_check_with_the_broker_down(tmp_path: Path) -> None:
    """`preempt ingest` with no API keys says so first, before any broker connection."""
    run = _run(["ingest", "--port", "0"], tmp_path, PREEMPT_BROKER=CLOSED_BROKER)
    assert run.returncode == 1
    assert "Traceback" not in run.stderr
    assert "Error: HTTP ingest needs at least one API key digest in PREEMPT_INGEST_API_KEYS" in run.stderr


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        (
            "PREEMPT_MAX_EVENT_BYTES",
            "abc",
            "Error: PREEMPT_MAX_EVENT_BYTES='abc' is not valid: input should be a valid integer, unable to parse "
            "string as an integer; expected an integer. Fix it or unset it (default: 32768)",
        ),
        (
            "PREEMPT_ALLOWED_LATENESS_SECONDS",
            "-5",
            "Error: PREEMPT_ALLOWED_LATENESS_SECONDS='-5' is not valid: input should be greater than or equal to 0; "
            "expected a number. Fix it or unset it (default: 5.0)",
        ),
        (
            "PREEMPT_LOG_FORMAT",
            "xml",
            "Error: PREEMPT_LOG_FORMAT='xml' is not valid: input should be 'json' or 'console'; "
            "expected one of json, console. Fix it or unset it (default: 'json')",
        ),
        (
            "PREEMPT_INGEST_API_KEYS",
            "not-json",
            "Error: PREEMPT_INGEST_API_KEYS is not valid: cannot be parsed (a list or mapping is written as JSON); "
            "expected a JSON list. Fix it or unset it (default: none)",
        ),
    ],
)
def test_a_bad_setting_names_the_variable_and_the_expected_type(
    tmp_path: Path, variable: str, value: str, expected: str
) -> None:
    """A bad PREEMPT_* value is one line naming the variable, its value, the expected type and the default."""
    run = _invoke(["events", "validate", "-"], tmp_path, stdin=VALID_EVENT, **{variable: value})
    assert run.returncode == 1
    assert run.stderr.strip() == expected


def test_a_bad_setting_in_a_real_process_has_no_traceback(tmp_path: Path) -> None:
    """Run as a user runs it, a bad setting prints the one line and nothing else."""
    run = _run(["events", "validate", "-"], tmp_path, stdin=VALID_EVENT, PREEMPT_MAX_EVENT_BYTES="abc")
    assert run.returncode == 1
    assert run.stderr.splitlines() == [
        "Error: PREEMPT_MAX_EVENT_BYTES='abc' is not valid: input should be a valid integer, unable to parse "
        "string as an integer; expected an integer. Fix it or unset it (default: 32768)"
    ]


def test_a_secret_setting_value_is_never_echoed(tmp_path: Path) -> None:
    """A bad secret setting is named but its value is not printed."""
    run = _invoke(["events", "validate", "-"], tmp_path, stdin=VALID_EVENT, PREEMPT_INGEST_API_KEYS='[1, {"a": 2}]')
    assert run.returncode == 1
    assert "PREEMPT_INGEST_API_KEYS is not valid" in run.stderr
    assert '"a"' not in run.stderr


def test_backtest_output_folder_is_checked_before_the_replay(tmp_path: Path) -> None:
    """--output into a missing folder fails at option parsing (exit 2) with what to do."""
    (tmp_path / "events.jsonl").write_bytes(VALID_EVENT)
    run = _invoke(["backtest", "--events", "events.jsonl", "--output", "missing/alerts.jsonl"], tmp_path)
    assert run.returncode == 2
    assert "Error: Invalid value for '--output': folder missing does not exist; create it first" in run.stderr


def test_simulate_output_folder_is_checked_before_generating(tmp_path: Path) -> None:
    """simulate --output into a missing folder fails at option parsing, before generating anything."""
    run = _invoke(["simulate", "--seed", "1", "--output", "nope/events.jsonl"], tmp_path)
    assert run.returncode == 2
    assert "Error: Invalid value for '--output': folder nope does not exist" in run.stderr


def test_routes_check_on_a_missing_file_is_one_line(tmp_path: Path) -> None:
    """A routing file that does not exist is reported without a traceback."""
    run = _invoke(["routes", "check", "nope.yaml"], tmp_path)
    assert run.returncode == 1
    assert run.stderr.strip() == "error: nope.yaml: cannot read routing file: No such file or directory"


def test_notifier_with_a_bad_routing_file_says_so_before_the_broker(tmp_path: Path) -> None:
    """The notifier checks its routing file first: an invalid one is reported even with no broker."""
    (tmp_path / "routes.yaml").write_text("receivers: [{name: a}]\nroute: {receiver: b}\n")
    run = _invoke(["notifier"], tmp_path, PREEMPT_BROKER=CLOSED_BROKER, PREEMPT_ROUTES_PATH="routes.yaml")
    assert run.returncode == 1
    assert "Error: routes.yaml: route.receiver: unknown receiver 'b' (known: a)" in run.stderr


def test_an_unexpected_exception_keeps_its_traceback() -> None:
    """A bug (not a PreemptError or a settings error) is not turned into a one-liner: it propagates."""

    @click.group(cls=PreemptGroup)
    def group() -> None:
        """A test group."""

    @group.command()
    def boom() -> None:
        raise RuntimeError("a bug")

    result = CliRunner().invoke(group, ["boom"])
    assert isinstance(result.exception, RuntimeError)
    assert result.exit_code == 1


def test_worker_reports_invalid_rules_before_probing_the_broker(tmp_path: Path) -> None:
    """`preempt worker` validates its rules first: with bad rules and no broker, the rules error comes out."""
    (tmp_path / "rules.yaml").write_text("id: x\nkind: nope\n")
    run = _run(["worker"], tmp_path, PREEMPT_BROKER=CLOSED_BROKER, PREEMPT_RULES_PATH="rules.yaml")
    assert run.returncode == 1
    assert "Traceback" not in run.stderr
    assert "rules.yaml: rule 'x': field 'kind': unknown kind 'nope'" in run.stderr
    assert "cannot reach Kafka" not in run.stderr


@pytest.mark.parametrize(
    ("broker", "expected"),
    [
        ("kafka://", "Error: PREEMPT_BROKER='kafka://' names no broker; write kafka://host:port[;host:port…]"),
        (
            "kafka://127.0.0.1:notaport",
            "Error: PREEMPT_BROKER='kafka://127.0.0.1:notaport': '127.0.0.1:notaport' is not host:port; "
            "write kafka://host:port[;host:port…]",
        ),
    ],
)
def test_a_malformed_broker_address_is_named_at_once(tmp_path: Path, broker: str, expected: str) -> None:
    """A PREEMPT_BROKER that is not host:port is reported as such, without waiting for a connection."""
    run = _invoke(["events", "dead-letters"], tmp_path, PREEMPT_BROKER=broker)
    assert run.returncode == 1
    assert run.stderr.strip() == expected


def test_ingest_on_a_taken_port_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`preempt ingest` on a port already in use says which address and what to change, without a traceback."""
    import socket

    import streams.ingest.account_merger
    import streams.ingest.sink
    import streams.runtime.broker_probe
    import streams.runtime.topics

    class Sink:
        """Stands in for the Kafka sink and the account merger: this test is about the listening socket."""

        def __init__(self, *args: object, **kwargs: object) -> None:
            pass

        async def start(self) -> None:
            pass

        async def stop(self) -> None:
            pass

    monkeypatch.setattr(streams.runtime.broker_probe, "probe_broker", lambda settings: None)
    monkeypatch.setattr(streams.runtime.topics, "ensure_topics", lambda settings: None)
    monkeypatch.setattr(streams.ingest.sink, "KafkaEventSink", Sink)
    monkeypatch.setattr(streams.ingest.account_merger, "AccountMerger", Sink)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        run = _invoke(["ingest", "--port", str(port)], tmp_path, PREEMPT_INGEST_API_KEYS='["' + "0" * 64 + '"]')
    assert run.returncode == 1
    assert f"Error: cannot listen on 127.0.0.1:{port}: " in run.stderr
    assert "choose another --port / PREEMPT_INGEST_PORT" in run.stderr


def test_the_probe_timeout_is_a_setting(tmp_path: Path) -> None:
    """PREEMPT_BROKER_PROBE_SECONDS bounds the wait (a slow remote cluster may need more than 5 s)."""
    run = _invoke(
        ["events", "dead-letters"], tmp_path, PREEMPT_BROKER=CLOSED_BROKER, PREEMPT_BROKER_PROBE_SECONDS="0.5"
    )
    assert run.returncode == 1
    assert "Error: cannot reach Kafka at 127.0.0.1:1 within 0.5 s" in run.stderr


@pytest.mark.parametrize(
    ("command", "setting"),
    [("worker", "PREEMPT_WORKER_WEB_PORT"), ("notifier", "PREEMPT_NOTIFIER_WEB_PORT")],
)
def test_a_web_port_in_use_is_one_line_before_any_connection(command: str, setting: str) -> None:
    """A worker or notifier whose web port is taken (a second worker on the machine, `make demo` beside a
    running one) stops with one line naming the port and the setting, not with Faust's crash traceback."""
    import socket

    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        result = CliRunner().invoke(main, [command], env={setting: str(port), "PREEMPT_BROKER": CLOSED_BROKER})
    assert result.exit_code == 1, result.output
    assert result.output.strip().splitlines() == [
        f"Error: cannot listen on 127.0.0.1:{port}: Address already in use; stop what uses it, or set {setting} "
        "(or PREEMPT_WEB_HOST) to a free port"
    ]


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["worker", "--loglevel", "loud"], {}, "Error: Invalid value for '--loglevel': 'loud' is not one of"),
        (["notifier", "--loglevel", "loud"], {}, "Error: Invalid value for '--loglevel': 'loud' is not one of"),
        (
            ["ingest", "--port", "99999"],
            {},
            "Error: Invalid value for '--port': 99999 is not in the range 0<=x<=65535.",
        ),
        (["worker"], {"PREEMPT_WORKER_WEB_PORT": "99999"}, "Error: PREEMPT_WORKER_WEB_PORT='99999' is not valid"),
        (["notifier"], {"PREEMPT_NOTIFIER_WEB_PORT": "0"}, "Error: PREEMPT_NOTIFIER_WEB_PORT='0' is not valid"),
    ],
    ids=["worker-loglevel", "notifier-loglevel", "ingest-port", "worker-port-setting", "notifier-port-setting"],
)
def test_a_bad_log_level_or_port_is_one_line(
    args: list[str], env: dict[str, str], message: str, tmp_path: Path
) -> None:
    """An unknown --loglevel or a port outside 1-65535 is refused before anything starts (Faust crashed
    with a TypeError traceback, the socket layer with an OverflowError one)."""
    run = _finish(*_start(args, _env(PREEMPT_BROKER=CLOSED_BROKER, **env), tmp_path))
    assert run.returncode in (1, 2), run.stderr
    assert "Traceback" not in run.stderr
    errors = [line for line in run.stderr.splitlines() if line.startswith("Error")]
    assert len(errors) == 1, run.stderr  # (click prints its usage line above a bad option)
    assert errors[0].startswith(message), errors[0]
