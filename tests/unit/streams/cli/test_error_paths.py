"""The ``preempt`` CLI's error paths: one ``Error:`` line saying what is wrong and what to do, a
non-zero exit, no traceback, and — with the broker down (a closed port) — a failure from the 5 s
broker probe, not from the Kafka clients' 30 s+ of retries.

The broker-down cases and a few others run the installed command as a user does (a subprocess);
the rest go through ``streams.cli.main.main`` in-process with click's runner, which exercises the same
top-level handler.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner

from alerts.testing.factories import build_alert
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
    """With no broker, each command exits 1 within the bound with one line saying where it looked and what to do."""
    run = broker_down[name]
    assert run.returncode == 1, run
    assert "Traceback" not in run.stderr
    lines = run.stderr.splitlines()
    assert len(lines) == 1, run.stderr  # no log warning before it
    assert run.stdout == ""  # nor a log line on stdout, where scripts read a command's output
    assert lines[0].startswith("Error: cannot reach Kafka at 127.0.0.1:1 within 5 s"), run.stderr
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


@pytest.mark.parametrize("secret", ["", "   "])
def test_ingest_with_an_empty_signing_secret_is_refused_before_any_connection(tmp_path: Path, secret: str) -> None:
    """PREEMPT_INGEST_HMAC_SECRET set but empty (an unset ${VAR} in compose) is one line: signing with an empty
    key looked on and protected nothing."""
    run = _invoke(
        ["ingest", "--port", "0"],
        tmp_path,
        PREEMPT_BROKER=CLOSED_BROKER,
        PREEMPT_INGEST_API_KEYS='["' + "0" * 64 + '"]',
        PREEMPT_INGEST_HMAC_SECRET=secret,
    )
    assert run.returncode == 1
    assert run.stderr.strip() == (
        "Error: PREEMPT_INGEST_HMAC_SECRET is set but empty: give the signing secret, or unset it to turn signing off"
    )


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        (
            "PREEMPT_MAX_EVENT_BYTES",
            "abc",
            "Error: PREEMPT_MAX_EVENT_BYTES='abc' is not valid: expected a whole number. Fix it or unset it "
            "(default: 32768)",
        ),
        (
            "PREEMPT_ALLOWED_LATENESS_SECONDS",
            "-5",
            "Error: PREEMPT_ALLOWED_LATENESS_SECONDS='-5' is not valid: must be at least 0; "
            "expected a number. Fix it or unset it (default: 5.0)",
        ),
        (
            "PREEMPT_LOG_FORMAT",
            "xml",
            "Error: PREEMPT_LOG_FORMAT='xml' is not valid: expected one of json, console. "
            "Fix it or unset it (default: 'json')",
        ),
        (
            "PREEMPT_LOG_LEVEL",
            "verbose",
            "Error: PREEMPT_LOG_LEVEL='verbose' is not valid: not a log level: use one of DEBUG, INFO, WARNING, ERROR, "
            "CRITICAL (any case); expected text. Fix it or unset it (default: 'INFO')",
        ),
        (
            "PREEMPT_DELIVERY_GIVE_UP_SECONDS",
            "-5",
            "Error: PREEMPT_DELIVERY_GIVE_UP_SECONDS='-5' is not valid: must be more than 0; "
            "expected a number. Fix it or unset it (default: 3600.0)",
        ),
        (
            "PREEMPT_SMTP_PORT",
            "70000",
            "Error: PREEMPT_SMTP_PORT='70000' is not valid: must be at most 65535; "
            "expected an integer. Fix it or unset it (default: 25)",
        ),
        (
            "PREEMPT_NOTIFIER_WEB_PORT",
            "0",
            "Error: PREEMPT_NOTIFIER_WEB_PORT='0' is not valid: must be at least 1; "
            "expected an integer. Fix it or unset it (default: 6067)",
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


@pytest.mark.parametrize(
    ("variable", "default"),
    [("PREEMPT_RULES_PATH", None), ("PREEMPT_DATA_DIR", "'.preempt-data'"), ("PREEMPT_ROUTES_PATH", "none")],
)
def test_an_empty_path_setting_is_refused_not_taken_as_the_working_folder(
    tmp_path: Path, variable: str, default: str | None
) -> None:
    """A path setting a script left empty was Path(""), the working folder: ``PREEMPT_RULES_PATH=`` loaded
    every rule file under it (here one that is not meant as a rule), ``PREEMPT_DATA_DIR=`` kept state there.
    It is one line naming the variable."""
    (tmp_path / "events.jsonl").write_bytes(VALID_EVENT)
    (tmp_path / "compose.yaml").write_text("services: {}\n")
    run = _invoke(["backtest", "--events", "events.jsonl"], tmp_path, **{variable: ""})
    assert run.returncode == 1, run.stdout
    [line] = run.stderr.splitlines()
    assert line.startswith(
        f"Error: {variable}='' is not valid: an empty path means the working folder; expected a path. "
        "Fix it or unset it (default: "
    ), line
    if default is not None:
        assert line.endswith(f"(default: {default})"), line


def test_a_bad_setting_in_a_real_process_has_no_traceback(tmp_path: Path) -> None:
    """Run as a user runs it, a bad setting prints the one line and nothing else."""
    run = _run(["events", "validate", "-"], tmp_path, stdin=VALID_EVENT, PREEMPT_MAX_EVENT_BYTES="abc")
    assert run.returncode == 1
    assert run.stderr.splitlines() == [
        "Error: PREEMPT_MAX_EVENT_BYTES='abc' is not valid: expected a whole number. Fix it or unset it "
        "(default: 32768)"
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
    assert run.stderr.strip() == "Error: nope.yaml: cannot read routing file: No such file or directory"


def test_notifier_with_a_bad_routing_file_says_so_before_the_broker(tmp_path: Path) -> None:
    """The notifier checks its routing file first: an invalid one is reported even with no broker."""
    (tmp_path / "routes.yaml").write_text("receivers: [{name: a}]\nroute: {receiver: b}\n")
    run = _invoke(["notifier"], tmp_path, PREEMPT_BROKER=CLOSED_BROKER, PREEMPT_ROUTES_PATH="routes.yaml")
    assert run.returncode == 1
    assert "Error: routes.yaml: route.receiver: unknown receiver 'b' (known: a)" in run.stderr


def test_notifier_with_a_slack_entry_it_cannot_send_with_names_file_and_field_before_the_broker(
    tmp_path: Path,
) -> None:
    """A Slack entry with a channel but neither a bot token nor a webhook in the settings cannot send: the
    notifier says so in one line naming the routing file and the entry, before it reaches for the broker
    (it named neither, and said it only after the broker probe and topic creation)."""
    (tmp_path / "routes.yaml").write_text(
        "receivers:\n  - name: console\n    console_configs: [{}]\n"
        "  - name: owners\n    email_configs: [{to: a@example.com}]\n    slack_configs: [{channel: '#cs'}]\n"
        "route: {receiver: owners}\n"
    )
    run = _invoke(["notifier"], tmp_path, PREEMPT_BROKER=CLOSED_BROKER, PREEMPT_ROUTES_PATH="routes.yaml")
    assert run.returncode == 1
    assert run.stderr.strip() == (
        "Error: routes.yaml: receivers[1].slack_configs[0]: receiver 'owners' cannot post to channel '#cs': "
        "PREEMPT_SLACK_BOT_TOKEN is not set (or give the entry a webhook_url, or set PREEMPT_SLACK_WEBHOOK_URL)"
    )


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
        (
            "http://127.0.0.1:9092",
            "Error: PREEMPT_BROKER='http://127.0.0.1:9092': http:// is not a Kafka address; "
            "write kafka://host:port[;host:port…]",
        ),
        (
            "kafka://127.0.0.1:99999",
            "Error: PREEMPT_BROKER='kafka://127.0.0.1:99999': port 99999 of '127.0.0.1:99999' is not 1-65535; "
            "write kafka://host:port[;host:port…]",
        ),
    ],
)
def test_a_malformed_broker_address_is_named_at_once(tmp_path: Path, broker: str, expected: str) -> None:
    """A PREEMPT_BROKER that is not host:port is reported as such, without waiting for a connection."""
    run = _invoke(["events", "dead-letters"], tmp_path, PREEMPT_BROKER=broker)
    assert run.returncode == 1
    assert run.stderr.strip() == expected


def test_a_broker_address_without_a_port_is_probed_on_kafkas_default_port(tmp_path: Path) -> None:
    """PREEMPT_BROKER=kafka://host (no port, as Faust and the Kafka clients accept it) is probed on port 9092:
    an unreachable one is the probe's one line, not a traceback from the access check's ``int(port)``."""
    run = _invoke(["events", "dead-letters"], tmp_path, PREEMPT_BROKER="kafka://no-such-broker.invalid")
    assert run.returncode == 1
    assert "Traceback" not in run.stderr
    assert run.stderr.startswith("Error: cannot resolve the Kafka host name of no-such-broker.invalid (")


def test_ingest_on_a_taken_port_is_one_line_before_any_connection(tmp_path: Path) -> None:
    """`preempt ingest` on a port already in use says which address and what to change in one line, before
    reaching for the broker (it probed Kafka, made the topics and logged 'ingest listening' first)."""
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        run = _run(
            ["ingest", "--port", str(port)],
            tmp_path,
            PREEMPT_BROKER=CLOSED_BROKER,
            PREEMPT_INGEST_API_KEYS='["' + "0" * 64 + '"]',
        )
    assert run.returncode == 1
    assert run.stderr.splitlines() == [
        f"Error: cannot listen on 127.0.0.1:{port} (another process listens there); set --port / "
        "PREEMPT_INGEST_PORT to a free port, or PREEMPT_WEB_HOST to an address of this machine"
    ]


@pytest.mark.parametrize(
    ("command", "setting"),
    [("worker", "PREEMPT_WORKER_WEB_PORT"), ("notifier", "PREEMPT_NOTIFIER_WEB_PORT")],
)
def test_a_worker_or_notifier_on_a_taken_web_port_is_one_line_before_any_connection(
    tmp_path: Path, command: str, setting: str
) -> None:
    """`preempt worker` / `preempt notifier` whose web port is taken says so in one line and exits 1
    before reaching for the broker (Faust reported it as an error line carrying its whole traceback)."""
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        run = _invoke([command], tmp_path, PREEMPT_BROKER=CLOSED_BROKER, **{setting: str(port)})
    assert run.returncode == 1
    assert run.stderr.strip() == (
        f"Error: cannot listen on 127.0.0.1:{port} (another process listens there); "
        f"set {setting} to a free port, or PREEMPT_WEB_HOST to an address of this machine"
    )


def test_the_probe_timeout_is_a_setting(tmp_path: Path) -> None:
    """PREEMPT_BROKER_PROBE_SECONDS bounds the wait (a slow remote cluster may need more than 5 s)."""
    run = _invoke(
        ["events", "dead-letters"], tmp_path, PREEMPT_BROKER=CLOSED_BROKER, PREEMPT_BROKER_PROBE_SECONDS="0.5"
    )
    assert run.returncode == 1
    assert "Error: cannot reach Kafka at 127.0.0.1:1 within 0.5 s" in run.stderr


@pytest.mark.parametrize(
    ("args", "env", "expected"),
    [
        (
            ["ingest", "--port", "99999"],
            {},
            "Error: Invalid value for '--port': give a whole number, from 0 to 65535 (got '99999'). "
            "Try 'preempt ingest -h' for help.",
        ),
        (
            ["ingest"],
            {"PREEMPT_INGEST_PORT": "70000"},
            "Error: PREEMPT_INGEST_PORT='70000' is not valid: must be at most 65535; "
            "expected an integer. Fix it or unset it (default: 6068)",
        ),
        (
            ["worker"],
            {"PREEMPT_WORKER_WEB_PORT": "0"},
            "Error: PREEMPT_WORKER_WEB_PORT='0' is not valid: must be at least 1; "
            "expected an integer. Fix it or unset it (default: 6066)",
        ),
    ],
)
def test_a_port_outside_1_to_65535_is_one_line_not_a_bind_traceback(
    tmp_path: Path, args: list[str], env: dict[str, str], expected: str
) -> None:
    """A port no socket can bind (--port or a PREEMPT_*_PORT setting) is refused in one line before anything
    starts, instead of an OverflowError traceback from bind()."""
    run = _invoke(args, tmp_path, PREEMPT_INGEST_API_KEYS='["' + "0" * 64 + '"]', PREEMPT_BROKER=CLOSED_BROKER, **env)
    assert run.returncode in (1, 2)
    assert run.stderr.strip().splitlines()[-1] == expected
    assert "Traceback" not in run.stderr


@pytest.mark.parametrize("command", ["worker", "notifier"])
def test_an_unknown_faust_log_level_is_refused_before_starting(tmp_path: Path, command: str) -> None:
    """--loglevel bogus is a usage error naming the accepted levels (Faust crashed on it at start-up,
    after connecting, with a traceback in the log); a level in capitals is accepted."""
    run = _invoke([command, "--loglevel", "bogus"], tmp_path, PREEMPT_BROKER=CLOSED_BROKER)
    assert run.returncode == 2
    assert (
        "Error: Invalid value for '--loglevel': 'bogus' is not one of "
        "'debug', 'info', 'warn', 'warning', 'error', 'critical'." in run.stderr
    )
    assert "Traceback" not in run.stderr + run.stdout
    capitals = _invoke([command, "--loglevel", "WARNING"], tmp_path, PREEMPT_BROKER=CLOSED_BROKER)
    assert "--loglevel" not in capitals.stderr  # got past the option (then failed on the closed broker)
    assert "cannot reach Kafka" in capitals.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["backtest", "--events", "events.jsonl", "--output", "./events.jsonl"],
            "Error: --output events.jsonl is also the --events file: writing it would replace the input",
        ),
        (
            ["train", "--events", "events.jsonl", "--outcomes", "outcomes.jsonl", "--output", "outcomes.jsonl"],
            "Error: --output outcomes.jsonl is also the --outcomes file: writing it would replace the input",
        ),
        (
            [
                "simulate",
                "--seed",
                "1",
                "--days",
                "1",
                "--accounts",
                "1",
                "--output",
                "x.jsonl",
                "--outcomes-output",
                "x.jsonl",
            ],
            "Error: --output and --outcomes-output both name x.jsonl: one would overwrite the other",
        ),
        (
            ["alerts", "preview", "events.jsonl", "--html", "events.jsonl"],
            "Error: --html events.jsonl is also the ALERTS file: writing it would replace the input",
        ),
    ],
    ids=["backtest", "train", "simulate", "preview"],
)
def test_an_output_that_is_an_input_is_refused_before_anything_is_written(
    tmp_path: Path, args: list[str], message: str
) -> None:
    """An output naming an input (or another output) is a usage error, and the input is left as it was."""
    (tmp_path / "events.jsonl").write_bytes(VALID_EVENT)
    (tmp_path / "outcomes.jsonl").write_bytes(
        b'{"account_id":"acme","outcome":"churned","at":"2026-11-24T00:00:00Z"}\n'
    )
    run = _invoke(args, tmp_path)
    assert run.returncode == 2
    assert message in run.stderr
    assert (tmp_path / "events.jsonl").read_bytes() == VALID_EVENT
    assert not (tmp_path / "x.jsonl").exists()


# Linux's /proc/self/mem fails its first read at offset 0 (nothing is mapped there) with EIO, as a bad disk does
UNREADABLE = "/proc/self/mem"


@pytest.mark.parametrize(
    "args",
    [
        ["events", "validate", UNREADABLE],
        ["backtest", "--events", UNREADABLE],
        ["backtest", "--events", "events.jsonl", "--accounts", UNREADABLE],
        ["train", "--events", UNREADABLE, "--output", "model.json"],
        ["evaluate", "--alerts", UNREADABLE, "--outcomes", "events.jsonl"],
        ["publish", "--file", UNREADABLE],
    ],
    ids=["validate", "backtest-events", "backtest-accounts", "train", "evaluate", "publish"],
)
def test_an_input_that_fails_to_read_is_one_line(tmp_path: Path, args: list[str]) -> None:
    """A JSONL input whose reading fails (an I/O error: a bad disk, a network file system gone) ended
    ``events validate``, ``backtest``, ``train`` and ``publish --file`` with an OSError traceback; every
    command says which file and what to do, in one line, before any broker is needed."""
    (tmp_path / "events.jsonl").write_bytes(VALID_EVENT)
    run = _invoke(args, tmp_path, PREEMPT_BROKER=CLOSED_BROKER)
    assert run.returncode == 1, run.stderr
    assert "Traceback" not in run.stderr, run.stderr
    assert run.stderr.splitlines()[-1] == (
        f"Error: {UNREADABLE}: cannot read it: Input/output error; check the disk or file system it is on, "
        "then run the command again"
    )


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full, a device every write to fails with ENOSPC")
@pytest.mark.parametrize(
    "args",
    [
        ["backtest", "--events", "events.jsonl", "--rules", "rules.yaml", "--output", "/dev/full"],
        ["simulate", "--seed", "1", "--days", "1", "--accounts", "1", "--output", "/dev/full"],
        ["simulate", "--seed", "1", "--days", "1", "--accounts", "1", "--accounts-output", "/dev/full"],
        ["simulate", "--seed", "1", "--days", "1", "--accounts", "1", "--outcomes-output", "/dev/full"],
    ],
    ids=["backtest", "simulate-events", "simulate-accounts", "simulate-outcomes"],
)
def test_a_full_disk_while_writing_an_output_is_one_line(tmp_path: Path, args: list[str]) -> None:
    """A write the folder checks cannot foresee (a full disk) fails with the file and the reason, not a traceback."""
    (tmp_path / "events.jsonl").write_bytes(VALID_EVENT)
    (tmp_path / "rules.yaml").write_text(  # an alert for the one event, so that there is something to write
        "rules:\n  - {id: login, kind: any, title: t, severity: low, priority: 3, match: {event: Login}}\n"
    )
    run = _invoke(args, tmp_path)
    assert run.returncode == 1
    assert run.stderr.splitlines()[-1] == "Error: cannot write /dev/full: No space left on device"


def test_ctrl_c_is_one_line_and_exit_130() -> None:
    """A KeyboardInterrupt in a command is one line and exit 130 (click's default is 'Aborted!' and exit 1)."""

    @click.group(cls=PreemptGroup)
    def group() -> None:
        """A test group."""

    @group.command()
    def slow() -> None:
        raise KeyboardInterrupt

    result = CliRunner().invoke(group, ["slow"])
    assert result.exit_code == 130
    assert result.stderr == "Interrupted (Ctrl-C); stopped before finishing: any file it was writing is incomplete.\n"


# What the installed ``preempt`` script does, with a Ctrl-C arriving while a command's module is imported
# (a second or more on a loaded machine): a finder raises KeyboardInterrupt when kafka is first imported.
_CTRL_C_WHILE_IMPORTING = """
import sys


class CtrlC:
    def find_spec(self, name, path=None, target=None):
        if name == "kafka":
            raise KeyboardInterrupt
        return None


sys.meta_path.insert(0, CtrlC())
from streams.cli.main import main
sys.exit(main())
"""


def _run_to_end(argv: list[str], cwd: Path, **extra: Any) -> subprocess.CompletedProcess[str]:
    """``argv`` run to its end in ``cwd`` with the test environment, its output captured as text."""
    return subprocess.run(
        argv, env=_env(), cwd=cwd, capture_output=True, text=True, timeout=BOUND_S, check=False, **extra
    )


def test_ctrl_c_while_the_commands_load_is_one_line_and_exit_130(tmp_path: Path) -> None:
    """A Ctrl-C while a command's module is imported (``publish`` imports the Kafka client) is the same one line
    and exit 130, not a traceback through the Kafka client's modules."""
    done = _run_to_end([sys.executable, "-c", _CTRL_C_WHILE_IMPORTING, "publish", "--help"], tmp_path)
    assert done.returncode == 130, done.stderr
    assert done.stderr == "Interrupted (Ctrl-C); stopped before finishing: any file it was writing is incomplete.\n"
    assert done.stdout == ""


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["events", "validate", "-"], "Error: <stdin>: no events (the input is empty or only blank lines)"),
        (["backtest", "--events", "-"], "Error: <stdin>: no events (the file is empty or only blank lines)"),
        (["alerts", "preview", "-"], "Error: stdin: empty; expected an alert JSON object or a backtest's alerts JSONL"),
    ],
    ids=["validate", "backtest", "preview"],
)
def test_a_closed_stdin_read_as_dash_is_empty_input_not_a_traceback(
    tmp_path: Path, args: list[str], message: str
) -> None:
    """A command started with stdin closed (`<&-`, some service managers) and told to read `-` was a
    RuntimeError/AttributeError traceback from click; it is the one line of an empty input."""
    done = _run_to_end([PREEMPT, *args], tmp_path, preexec_fn=lambda: os.close(0))
    assert done.returncode == 1, done.stderr
    assert done.stderr.strip().splitlines()[-1] == message
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("earlier", [None, b"the earlier run's events\n"], ids=["new", "existing"])
def test_sigint_in_a_long_simulation_exits_130_and_leaves_no_partial_file(
    tmp_path: Path, earlier: bytes | None
) -> None:
    """SIGINT to a real ``preempt simulate`` writing a big file ends it at once: exit 130, one line, no traceback,
    and no partial file — none at all, or the earlier file of that name untouched (before: the events of the days
    written so far, which a backtest replayed without a word)."""
    if earlier is not None:
        (tmp_path / "events.jsonl").write_bytes(earlier)
    args = ["simulate", "--seed", "1", "--days", "3650", "--accounts", "1000", "--output", "events.jsonl"]
    args += ["--accounts-output", "accounts.jsonl", "--outcomes-output", "outcomes.jsonl"]
    process = subprocess.Popen(
        [PREEMPT, *args],
        env=_env(),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # a shell without job control starts background jobs with SIGINT ignored; a terminal's Ctrl-C does not
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    assert process.stderr is not None
    first = process.stderr.readline()  # "seed 1, 1000 accounts, …": generating has begun
    process.send_signal(signal.SIGINT)
    run = _finish(process, time.monotonic())
    assert first.startswith("seed 1, 1000 accounts")
    assert run.returncode == 130
    assert "Traceback" not in run.stderr
    assert run.stderr.strip() == (
        "Interrupted (Ctrl-C); nothing written: outcomes.jsonl, accounts.jsonl, events.jsonl left as before "
        "(or not made)"
    )
    assert sorted(path.name for path in tmp_path.iterdir()) == ([] if earlier is None else ["events.jsonl"])
    if earlier is not None:
        assert (tmp_path / "events.jsonl").read_bytes() == earlier


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["backtest", "--events", "events.jsonl", "--output", "-"], "'--output'"),
        (
            ["simulate", "--seed", "1", "--days", "1", "--accounts", "1", "--accounts-output", "-"],
            "'--accounts-output'",
        ),
        (["train", "--events", "events.jsonl", "--output", "-"], "'--output'"),
        (["alerts", "preview", "alert.json", "--html", "-"], "--html"),
    ],
    ids=["backtest", "simulate", "train", "preview"],
)
def test_an_output_of_dash_is_refused_instead_of_making_a_file_named_dash(
    tmp_path: Path, args: list[str], option: str
) -> None:
    """``-`` reads stdin for the inputs; as an output it made a file named "-" in the current folder (exit 0)."""
    (tmp_path / "events.jsonl").write_bytes(VALID_EVENT)
    run = _invoke(args, tmp_path)
    assert run.returncode == 2
    assert (
        f"Error: Invalid value for {option}: - (stdout) is not an output file here (the summary goes to stdout); "
        "give a file name"
    ) in run.stderr
    assert not (tmp_path / "-").exists()


def test_a_read_only_output_file_is_refused_before_the_replay(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An existing --output this user cannot write is a usage error at once, not 'cannot write' after the whole
    replay (or training); os.access is faked because root may write any file."""
    from streams.cli import output_paths

    (tmp_path / "events.jsonl").write_bytes(VALID_EVENT)
    (tmp_path / "alerts.jsonl").write_text("")
    real_access = os.access
    monkeypatch.setattr(
        output_paths.os,
        "access",
        lambda path, mode: (Path(path).name != "alerts.jsonl" or not mode & os.W_OK) and real_access(path, mode),
    )
    run = _invoke(["backtest", "--events", "events.jsonl", "--output", "alerts.jsonl"], tmp_path)
    assert run.returncode == 2
    assert (
        "Error: Invalid value for '--output': alerts.jsonl exists and is read-only; give another file name, "
        "or make it writable (chmod u+w alerts.jsonl)"
    ) in run.stderr
    assert "lines:" not in run.stdout  # no replay


def test_paths_in_a_folder_closed_to_the_user_are_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An --output or --routes inside a folder without the x permission could not even be looked at: a
    PermissionError traceback from is_dir/exists. Now one line naming the path (stat is faked: root may look
    anywhere)."""
    (tmp_path / "events.jsonl").write_bytes(VALID_EVENT)
    real_stat = Path.stat

    def stat(self: Path, **kwargs: bool) -> os.stat_result:
        if self.parent.name == "closed":
            raise PermissionError(13, "Permission denied", str(self))
        return real_stat(self, **kwargs)

    monkeypatch.setattr(Path, "stat", stat)
    run = _invoke(["backtest", "--events", "events.jsonl", "--output", "closed/alerts.jsonl"], tmp_path)
    assert run.returncode == 2
    assert (
        "Error: Invalid value for '--output': cannot look at closed/alerts.jsonl: Permission denied "
        "(a folder on the way is closed to this user)"
    ) in run.stderr
    (tmp_path / "alert.json").write_text(build_alert().model_dump_json())
    run = _invoke(["alerts", "preview", "alert.json", "--routes", "closed/routes.yaml"], tmp_path)
    assert run.returncode == 1
    assert run.stderr.strip().startswith("Error: closed/routes.yaml: cannot read routing file:")


@pytest.mark.parametrize(
    ("args", "output"),
    [
        (["backtest", "--events", "events.jsonl", "--output", "out.jsonl"], "out.jsonl"),
        (["simulate", "--days", "1", "--accounts", "1", "--seed", "1", "--output", "out.jsonl"], "out.jsonl"),
        (
            [
                "simulate",
                "--days",
                "1",
                "--accounts",
                "1",
                "--seed",
                "1",
                "--output",
                "e.jsonl",
                "--accounts-output",
                "out.jsonl",
            ],
            "out.jsonl",
        ),
        (["alerts", "preview", "alert.json", "--html", "out.html"], "out.html"),
    ],
)
def test_an_output_file_is_never_refused_as_not_readable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], output: str
) -> None:
    """An output file that exists and may be written but not read (mode 200) was refused with "File 'out.jsonl' is
    not readable": the command only writes it. os.access is faked (root may read any file)."""
    (tmp_path / "events.jsonl").write_bytes(VALID_EVENT)
    (tmp_path / "alert.json").write_text(build_alert().model_dump_json())
    (tmp_path / output).write_text("old\n")
    real_access = os.access
    monkeypatch.setattr(
        os,
        "access",
        lambda path, mode, **kw: not (Path(path).name == output and mode & os.R_OK) and real_access(path, mode, **kw),
    )
    run = _invoke(args, tmp_path)
    assert "not readable" not in run.stderr
    assert run.returncode == 0, run.stderr
    assert (tmp_path / output).read_text() != "old\n"


def test_publish_file_with_the_broker_down_still_names_its_invalid_lines(tmp_path: Path) -> None:
    """`publish --file` with no broker said only "cannot reach Kafka": the user fixed the broker and only then
    learnt the file's lines were invalid. The invalid lines come first (checked offline), then the broker's line."""
    (tmp_path / "events.jsonl").write_bytes(VALID_EVENT + b"not json\n" + b'{"event": "x"}\n')
    run = _invoke(["publish", "--file", "events.jsonl"], tmp_path, PREEMPT_BROKER=CLOSED_BROKER)
    assert run.returncode == 1
    lines = run.stderr.strip().splitlines()
    assert lines[0] == "events.jsonl:2: invalid_json: not valid JSON (line 1, column 1)"
    assert lines[1].startswith("events.jsonl:3: missing_field (")
    assert lines[2] == "events.jsonl: 1 valid, 2 invalid (nothing was sent)"
    assert lines[3].startswith("Error: cannot reach Kafka at 127.0.0.1:1 ")
    assert len(lines) == 4
