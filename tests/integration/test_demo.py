"""``make demo`` (deploy/demo.sh) on the test broker: the whole service starts, alerts print, Ctrl-C stops it all.

The README promises a newcomer alerts within a minute of ``make demo`` and a clean stop on Ctrl-C; nothing else
runs the script end to end. Here it runs as a terminal would run it (its own process group, SIGINT to the group
for Ctrl-C), on this test's topics and free web ports, with its logs in the test's folder.
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import threading
import time
from pathlib import Path

from streams.runtime.testing import free_port

REPO = Path(__file__).resolve().parents[2]
FIRST_ALERT_S = 240.0  # a bound for a loaded CI machine, not a speed figure (the README says about a minute)
STOP_S = 60.0


def _sigint_by_default() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _kill_leftovers(topic_prefix: str) -> None:
    """SIGKILL every process started with this test's topic prefix: the demo's worker, notifier and simulate run in
    sessions of their own, so killing the script's group leaves them running (and loading the rest of the run)."""
    mark = f"PREEMPT_TOPIC_PREFIX={topic_prefix}".encode()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            if mark in (proc / "environ").read_bytes().split(b"\0"):
                os.kill(int(proc.name), signal.SIGKILL)
        except (OSError, ProcessLookupError):
            continue  # gone meanwhile, or not ours to read


def _lines(stream: object, into: queue.Queue[str]) -> None:
    for line in stream:  # type: ignore[attr-defined]
        into.put(line)
    into.put("")  # end of output


def test_make_demo_prints_alerts_with_their_context_and_ctrl_c_stops_every_process(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    out = tmp_path / "demo-out"
    env = {
        **os.environ,
        "PREEMPT_BROKER": kafka_bootstrap,
        "PREEMPT_TOPIC_PREFIX": topic_prefix,
        "PREEMPT_WORKER_WEB_PORT": str(free_port()),
        "PREEMPT_NOTIFIER_WEB_PORT": str(free_port()),
        "PREEMPT_DATA_DIR": str(tmp_path / "data"),
        "DEMO_OUT": str(out),
        "DEMO_ACCOUNTS": "20",
    }
    demo = subprocess.Popen(
        ["bash", "deploy/demo.sh"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # a process group of its own, as a terminal's foreground job
        # Ctrl-C as a terminal's foreground job gets it: a shell cannot trap a signal ignored when it starts, and a
        # test run started in the background of a script (``make test &``) ignores SIGINT, passed on to the demo.
        preexec_fn=_sigint_by_default,
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=_lines, args=(demo.stdout, lines), daemon=True).start()
    seen: list[str] = []
    try:
        deadline = time.monotonic() + FIRST_ALERT_S
        while time.monotonic() < deadline and not any("alert delivered" in line for line in seen):
            try:
                line = lines.get(timeout=1.0)
            except queue.Empty:
                continue
            if line == "":
                break  # the script ended by itself
            seen.append(line)
        text = "".join(seen)
        assert "alert delivered" in text, f"no alert within {FIRST_ALERT_S:.0f} s; demo printed:\n{text[-3000:]}"
        # What a CSM reads in the console preview: severity and title, why, the account, its owner, the playbook.
        for part in ("preempt → console", "why:", "account:", "owner:", "playbook:"):
            assert part in text, part
        assert "Traceback" not in text

        os.killpg(demo.pid, signal.SIGINT)  # Ctrl-C: the terminal signals the whole foreground group
        demo.wait(timeout=STOP_S)
        end = time.monotonic() + 5.0
        while time.monotonic() < end:
            line = lines.get(timeout=5.0)
            if line == "":
                break
            seen.append(line)
        text = "".join(seen)
        assert "demo: stopped" in text, text[-2000:]
        for name in ("worker", "notifier", "simulate", "backfill"):
            assert (out / f"{name}.log").exists(), name
        assert "Traceback" not in (out / "worker.log").read_text(errors="replace")
        try:
            os.killpg(demo.pid, 0)
        except ProcessLookupError:
            pass  # every process the demo started has exited
        else:
            raise AssertionError("processes of the demo are still running after Ctrl-C")
    finally:
        if demo.poll() is None:
            os.killpg(demo.pid, signal.SIGKILL)
            demo.wait(timeout=10)
        _kill_leftovers(topic_prefix)
