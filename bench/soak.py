"""``make soak``: does anything grow without bound in a long-running worker, notifier or ingest?

Run:  python -m bench.soak [--minutes 20] [--interval 30] [--warmup-minutes 5]

On one broker and a fresh topic prefix it runs the rules worker (rocksdb:// store), the notifier
(console preview) and the HTTP ingest, then for ``--minutes`` keeps steady traffic on them:

* ``preempt simulate`` live (``--accounts`` accounts, ``--rate`` events/s): the personas' users;
* this process posts to the ingest every second a batch in which NEW accounts keep arriving
  (``--new-accounts-per-minute``), each with new users, an NPS detractor (so the notifier gets a
  steady stream of alerts, each of an account it has not seen), a custom event name of its own
  (an unbounded event-name label would show) and two items the ingest rejects with error texts
  that name the account (an unbounded error label would show).

Every ``--interval`` seconds it samples, per process: RSS (MB), open fds (RocksDB's ``*.sst`` files left
out), threads, the number of series on ``/metrics``; and the size of the worker's and the notifier's data
dirs (their RocksDB tables). The rules worker's stores bounded by design (its state cache, each account's
dedup ids, RocksDB's write buffers) are made small (soak_settings()), so that they are full past the warm-up:
a store bounded by design must not read as growth (``--default-bounds`` keeps their defaults). At the end it
prints one table: per resource the value past the warm-up, at the end, the least-squares slope per hour past the
warm-up and the bound that slope must stay under; exit 1 when one is over, a process died, or series
without a topic or partition label were born past the warm-up. The RocksDB tables hold one state per
account, so the data dir's bound is per account that arrived (bounded by accounts by design), not per hour.
docs/operations.md ("Soak") gives the figures measured.

``tests/integration/test_soak_short.py`` runs the same loop for about a minute.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from schemas.event import format_ts
from streams.ingest.auth import key_digest, sign
from streams.runtime.settings import Settings
from streams.runtime.testing import free_port, settings_env
from streams.runtime.topics import delete_topics_under, ensure_topics

KEY = "pk_soak"
SECRET = "whsec_soak"  # noqa: S105 - a throwaway signing secret of this run's own ingest
APPS = ("worker", "notifier", "ingest")

# Bounds on the growth per hour past the warm-up. RSS: allocator noise and the state cache filling
# up to its bound stay well under it; a leak of a few hundred bytes per event (40+ events/s) does not.
# Series: none may be born per account, user, event name or error text, so a few per hour at most
# (a rule's first alert, a receiver's first retry). fds and threads: flat.
RSS_MB_PER_HOUR = 40.0
FDS_PER_HOUR = 20.0
THREADS_PER_HOUR = 10.0
SERIES_PER_HOUR = 30.0
DATA_DIR_KB_PER_NEW_ACCOUNT = 64.0
# Stores bounded by design are made small in the soak (see soak_settings()), so that each is full before the
# warm-up ends and what grows past it is unbounded. At their defaults they fill for hours under the soak's load
# and their filling read as a leak of 110-125 MB/h (docs/operations.md, "Soak"): --default-bounds runs with them.
# The rules worker's state cache (PREEMPT_WORKER_STATE_CACHE_ACCOUNTS, default 25,000 accounts).
STATE_CACHE_ACCOUNTS = 100
# The event ids each account remembers to drop duplicates (PREEMPT_DEDUP_HORIZON_SECONDS, default a day, at most
# 5,000 ids an account): an account sending an event a second holds a minute of ids after a minute, not 5,000
# after 83 minutes (40 live accounts x 5,000 ids x ~140 bytes in the heap, plus their encoded states).
DEDUP_HORIZON_SECONDS = 60.0
# Each RocksDB database's write buffers (PREEMPT_TABLE_WRITE_BUFFER_BYTES, default 4 MiB, at most 2 per database,
# 3 tables x 12 partitions in the rules worker): the smallest allowed, so that the state table's flush within
# seconds; the clock and progress tables write a few bytes a second and hold at most 64 KiB each.
TABLE_WRITE_BUFFER_BYTES = 64 * 1024
# Series born past the warm-up without a topic or partition label (a rule's first alert, a reason's first
# dead letter): a few; one per new account would be hundreds.
MAX_SUSPECT_SERIES = 10


@dataclass
class Sample:
    """One sampling round: seconds since the start and each resource's value (None: unreadable)."""

    at: float
    values: dict[str, float | None]


@dataclass
class Resource:
    """A resource the soak watches and the bound on its growth."""

    name: str
    bound: float
    unit: str  # of the bound: "/h" (per hour) or "/acct" (per new account)


@dataclass
class Verdict:
    """One row of the table."""

    resource: Resource
    start: float | None
    end: float | None
    slope_per_hour: float | None
    growth: float | None  # what the bound is compared with (slope per hour, or growth per new account)
    ok: bool


def slope(points: Sequence[tuple[float, float]]) -> float:
    """Least-squares slope of ``(x, y)`` points (0 for fewer than two distinct x)."""
    if len(points) < 2:
        return 0.0
    n = len(points)
    mean_x = sum(x for x, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    var = sum((x - mean_x) ** 2 for x, _ in points)
    if var == 0:
        return 0.0
    return sum((x - mean_x) * (y - mean_y) for x, y in points) / var


def judge(
    resources: Sequence[Resource], samples: Sequence[Sample], warmup_s: float, new_accounts_per_hour: float
) -> list[Verdict]:
    """Per resource: the value at the first sample past ``warmup_s`` and at the last, the slope per hour over
    the samples past the warm-up and whether it is under the bound. A resource never read is a failure: a
    process that died, or a page that stopped answering, must not pass as flat."""
    past = [s for s in samples if s.at >= warmup_s] or list(samples[-2:])
    verdicts = []
    for resource in resources:
        points = [(s.at / 3600.0, v) for s in past if (v := s.values.get(resource.name)) is not None]
        if len(points) < 2 or len(points) < len(past):
            verdicts.append(Verdict(resource, None, None, None, None, ok=False))
            continue
        per_hour = slope(points)
        growth = per_hour / new_accounts_per_hour if resource.unit == "/acct" and new_accounts_per_hour else per_hour
        verdicts.append(Verdict(resource, points[0][1], points[-1][1], per_hour, growth, ok=growth <= resource.bound))
    return verdicts


def resources() -> list[Resource]:
    """What is watched, per process, and the data dirs."""
    found = []
    for app in APPS:
        found += [
            Resource(f"{app}.rss_mb", RSS_MB_PER_HOUR, "/h"),
            Resource(f"{app}.fds", FDS_PER_HOUR, "/h"),
            Resource(f"{app}.threads", THREADS_PER_HOUR, "/h"),
            Resource(f"{app}.series", SERIES_PER_HOUR, "/h"),
        ]
    found += [Resource(f"{app}.data_dir_kb", DATA_DIR_KB_PER_NEW_ACCOUNT, "/acct") for app in ("worker", "notifier")]
    return found


def table(verdicts: Sequence[Verdict]) -> str:
    """The verdicts as one fixed-width table."""

    def fmt(value: float | None) -> str:
        return "—" if value is None else f"{value:,.1f}"

    rows = [("resource", "start", "end", "slope/h", "growth", "bound", "result")]
    rows += [
        (
            v.resource.name,
            fmt(v.start),
            fmt(v.end),
            fmt(v.slope_per_hour),
            fmt(v.growth) + (" /acct" if v.resource.unit == "/acct" and v.growth is not None else ""),
            f"{v.resource.bound:g} {v.resource.unit}",
            "ok" if v.ok else "FAIL",
        )
        for v in verdicts
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows)


# --- reading the processes -------------------------------------------------------------------------
def proc_status(pid: int) -> dict[str, float] | None:
    """RSS (MB), threads and open fds of ``pid`` from /proc; None when it is gone. RocksDB's table files
    (``*.sst``) are left out of ``fds``: each database keeps its files open, and their number follows
    flushes and compactions (its data dir is judged instead); sockets, pipes and every other file count."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        fd_dir = Path(f"/proc/{pid}/fd")
        targets = []
        for fd in os.listdir(fd_dir):
            with contextlib.suppress(FileNotFoundError):  # closed while listed
                targets.append(os.readlink(fd_dir / fd))
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    return {
        "rss_mb": int(fields["VmRSS"].split()[0]) / 1024.0,
        "threads": float(fields["Threads"].strip()),
        "fds": float(sum(1 for target in targets if not target.endswith(".sst"))),
    }


def metrics_page(port: int) -> str | None:
    """The ``/metrics`` page at ``port``; None when it does not answer."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
            return str(response.read().decode())
    except OSError:
        return None


def series_names(page: str) -> set[str]:
    """The series of a ``/metrics`` page (name and labels of each sample line)."""
    return {line.rsplit(" ", 1)[0] for line in page.splitlines() if line and not line.startswith("#")}


def dir_kb(data_dir: Path, pattern: str) -> float:
    """Bytes under the folders of ``data_dir`` matching ``pattern`` in KB (0 while there is none)."""
    total = 0
    for path in data_dir.glob(pattern):
        for root, _dirs, files in os.walk(path):
            for name in files:
                with contextlib.suppress(FileNotFoundError):
                    total += (Path(root) / name).stat().st_size
    return total / 1024.0


# Label names whose values are bounded by the topics and their partitions: Faust's sensor and the consumer-lag
# gauges give a series to each partition as it sees its first record or commit, which on a quiet topic may
# come after any warm-up. A series born past the warm-up without one of them is what a per-account, per-user,
# per-event-name or per-error label would make.
PARTITION_LABELS = ('topic="', 'partition="')


def born_series(before: str, after: str) -> list[str]:
    """The series on the ``/metrics`` page ``after`` that were not on ``before`` (sorted)."""
    return sorted(series_names(after) - series_names(before))


def suspect_series(born: Sequence[str]) -> list[str]:
    """Of ``born``, the series not bounded by a topic or partition label (see PARTITION_LABELS)."""
    return [s for s in born if not any(label in s for label in PARTITION_LABELS)]


def grown_series(before: str, after: str, top: int = 8) -> list[tuple[str, int]]:
    """The metrics with more series on ``after`` than on ``before``, most new series first."""
    counts: dict[str, int] = {}
    for series in born_series(before, after):
        name = series.split("{", 1)[0]
        counts[name] = counts.get(name, 0) + 1
    return sorted(counts.items(), key=lambda kv: -kv[1])[:top]


# --- the traffic of new accounts ---------------------------------------------------------------------
@dataclass
class NewAccounts:
    """Posts to the ingest, once a second, events of accounts that keep arriving (see the module docstring)."""

    port: int
    per_minute: float
    stop: threading.Event = field(default_factory=threading.Event)
    arrived: int = 0
    posted: int = 0
    failures: list[str] = field(default_factory=list)

    def batch(self, now: float, first: int, count: int) -> list[dict[str, object]]:
        stamp = format_ts(now - 1)
        items: list[dict[str, object]] = []
        for n in range(first, first + count):
            account = f"soak-new-{n}"
            login: dict[str, object] = {"event": "Login", "account_id": account, "timestamp": stamp}
            items += [login | {"event_id": f"{account}-login-{k}", "user_id": f"{account}-u{k}"} for k in range(3)]
            items.append(
                {
                    "event_id": f"{account}-nps",
                    "event": "NPS Submitted",
                    "account_id": account,
                    "user_id": f"{account}-u0",
                    "timestamp": stamp,
                    "properties": {"score": 2, "comment": f"soak {n}"},
                }
            )
            items.append(
                {"event_id": f"{account}-x", "event": f"Custom {n}", "account_id": account, "timestamp": stamp}
            )
            # rejected: a timestamp that is no timestamp, an event name far too long, both naming the account
            items.append({"event_id": f"{account}-bad1", "event": "Login", "account_id": account, "timestamp": account})
            items.append({"event_id": f"{account}-bad2", "event": "x" * 300 + account, "account_id": account})
        return items

    def post(self, items: list[dict[str, object]], now: float) -> None:
        body = orjson.dumps({"batch": items})
        headers = {
            "Authorization": f"Bearer {KEY}",
            "Content-Type": "application/json",
            "X-Preempt-Signature": sign(SECRET.encode(), body, int(now)),
        }
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/v1/events", data=body, headers=headers, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - 127.0.0.1 only
                status = response.status
        except urllib.error.HTTPError as exc:
            status = exc.code
        except OSError as exc:
            self.failures.append(f"{type(exc).__name__}: {exc}")
            return
        if status != 202:
            self.failures.append(f"HTTP {status}")
        self.posted += len(items)

    def run(self) -> None:
        started = time.monotonic()
        while not self.stop.wait(1.0):
            due = int((time.monotonic() - started) / 60.0 * self.per_minute)
            if due > self.arrived:
                now = time.time()
                self.post(self.batch(now, self.arrived, due - self.arrived), now)
                self.arrived = due


# --- the run ----------------------------------------------------------------------------------------
@dataclass
class Running:
    """The child processes of one soak and where they log."""

    procs: dict[str, subprocess.Popen[bytes]]
    logs: dict[str, Path]

    def dead(self) -> list[str]:
        """The processes that stopped, the end of each one's log."""
        return [
            f"{name} exited {p.returncode}; the end of {self.logs[name]}:\n"
            + self.logs[name].read_text(errors="replace")[-1500:]
            for name, p in self.procs.items()
            if name in APPS and p.poll() is not None
        ]


@contextlib.contextmanager
def processes(settings: Settings, workdir: Path, accounts: int, rate: float, seconds: float) -> Iterator[Running]:
    """The worker, notifier, ingest and live ``preempt simulate``, each in its own process group; every one is
    stopped (SIGTERM, then SIGKILL) when the block ends."""
    env = os.environ | settings_env(settings) | {"PREEMPT_LOG_FORMAT": "json"}
    preempt = str(Path(sys.executable).parent / "preempt")
    commands = {
        "worker": [preempt, "worker"],
        "notifier": [preempt, "notifier"],
        "ingest": [preempt, "ingest"],
    }
    procs: dict[str, subprocess.Popen[bytes]] = {}
    logs: dict[str, Path] = {}
    try:
        for name, args in commands.items():
            logs[name] = workdir / f"{name}.log"
            with logs[name].open("wb") as log:
                procs[name] = subprocess.Popen(
                    args, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
                )
        wait_for(logs["worker"], "rules worker ready", procs["worker"], 180)
        logs["simulate"] = workdir / "simulate.log"
        simulate = [preempt, "simulate", "--accounts", str(accounts), "--seed", "7", "--rate", f"{rate:g}"]
        with logs["simulate"].open("wb") as log:
            procs["simulate"] = subprocess.Popen(
                [*simulate, "--duration", f"{seconds:.0f}"],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        yield Running(procs, logs)
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs.values():
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)


def wait_for(log: Path, needle: str, proc: subprocess.Popen[bytes], timeout_s: float) -> None:
    """Return once ``needle`` is in ``log``; raise when ``proc`` exits or time runs out."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if needle in log.read_text(errors="replace"):
            return
        if proc.poll() is not None:
            raise RuntimeError(f"{log.stem} exited ({proc.returncode}):\n{log.read_text(errors='replace')[-3000:]}")
        time.sleep(0.5)
    raise RuntimeError(f"{needle!r} not in {log} within {timeout_s:g} s")


def sample(
    at: float, running: Running, ports: dict[str, int], data_dirs: dict[str, tuple[Path, str]], pages: dict[str, str]
) -> Sample:
    """One round of readings; each process's ``/metrics`` page is left in ``pages``."""
    values: dict[str, float | None] = {}
    for app in APPS:
        status = proc_status(running.procs[app].pid) if running.procs[app].poll() is None else None
        for key in ("rss_mb", "fds", "threads"):
            values[f"{app}.{key}"] = None if status is None else status[key]
        page = metrics_page(ports[app])
        values[f"{app}.series"] = None if page is None else float(len(series_names(page)))
        if page is not None:
            pages[app] = page
    for app, (data_dir, pattern) in data_dirs.items():
        values[f"{app}.data_dir_kb"] = dir_kb(data_dir, pattern)
    return Sample(at, values)


@dataclass
class SoakResult:
    """What one soak measured."""

    samples: list[Sample]
    verdicts: list[Verdict]
    new_accounts: int
    events_posted: int
    post_failures: list[str]
    dead: list[str]
    grown: dict[str, list[tuple[str, int]]]  # per app, the metrics that gained series past the warm-up
    suspects: dict[str, list[str]]  # per app, the series born past the warm-up without a topic/partition label

    @property
    def ok(self) -> bool:
        """Every resource under its bound, no process died, every post answered, no suspect series."""
        suspects = any(len(s) > MAX_SUSPECT_SERIES for s in self.suspects.values())
        return all(v.ok for v in self.verdicts) and not self.dead and not self.post_failures and not suspects


def soak_settings(
    bootstrap: str, prefix: str, store: str, data_dir: Path, ports: dict[str, int], *, default_bounds: bool = False
) -> Settings:
    """The three apps' settings: the stores bounded by design made small (STATE_CACHE_ACCOUNTS,
    DEDUP_HORIZON_SECONDS, TABLE_WRITE_BUFFER_BYTES), so that they are full past the warm-up, unless
    ``default_bounds`` (they then fill for hours: docs/operations.md, "Soak")."""
    bounds: dict[str, Any] = (
        {}
        if default_bounds
        else {
            "worker_state_cache_accounts": STATE_CACHE_ACCOUNTS,
            "dedup_horizon_seconds": DEDUP_HORIZON_SECONDS,
            "table_write_buffer_bytes": TABLE_WRITE_BUFFER_BYTES,
        }
    )
    return Settings(
        broker=f"kafka://{bootstrap}",
        topic_prefix=prefix,
        store=store,
        data_dir=data_dir,
        worker_web_port=ports["worker"],
        notifier_web_port=ports["notifier"],
        ingest_port=ports["ingest"],
        ingest_api_keys=(key_digest(KEY),),
        ingest_hmac_secret=SECRET,
        event_time_only=False,
        **bounds,
    )


def soak(
    bootstrap: str,
    workdir: Path,
    minutes: float,
    interval_s: float,
    warmup_s: float,
    accounts: int = 40,
    rate: float = 40.0,
    new_accounts_per_minute: float = 30.0,
    echo: bool = True,
    store: str = "rocksdb://",
    default_bounds: bool = False,
) -> SoakResult:
    """Run the service under steady load for ``minutes`` and judge each resource's growth (module docstring)."""
    ports = {"worker": free_port(), "notifier": free_port(), "ingest": free_port()}
    prefix = f"soak{int(time.time())}"
    settings = soak_settings(bootstrap, prefix, store, workdir / "data", ports, default_bounds=default_bounds)
    ensure_topics(settings)
    # the apps' folders: PREEMPT_DATA_DIR/<app id>@<bootstrap>/ (Settings.app_data_dir)
    data_dirs = {"worker": (workdir / "data", "*-rules@*"), "notifier": (workdir / "data", "*-notify@*")}
    seconds = minutes * 60.0
    samples: list[Sample] = []
    first_pages: dict[str, str] = {}  # each /metrics page at the last sample of the warm-up
    last_pages: dict[str, str] = {}
    traffic = NewAccounts(ports["ingest"], new_accounts_per_minute)
    try:
        with processes(settings, workdir, accounts, rate, seconds + 60) as running:
            wait_for(running.logs["notifier"], "notifier ready", running.procs["notifier"], 120)
            thread = threading.Thread(target=traffic.run, name="soak-new-accounts", daemon=True)
            thread.start()
            started = time.monotonic()
            try:
                for k in range(int(seconds // interval_s) + 1):  # a sample at each interval, the last at the end
                    time.sleep(max(0.0, started + k * interval_s - time.monotonic()))
                    elapsed = time.monotonic() - started
                    pages: dict[str, str] = {}
                    samples.append(sample(elapsed, running, ports, data_dirs, pages))
                    if elapsed < warmup_s or not first_pages:
                        first_pages = pages
                    last_pages = pages or last_pages
                    if echo:
                        line = " ".join(f"{k}={v:.1f}" for k, v in samples[-1].values.items() if v is not None)
                        print(f"[{elapsed:6.0f}s] accounts+{traffic.arrived} {line}", file=sys.stderr, flush=True)
                    if running.dead():
                        break
            finally:
                traffic.stop.set()
                thread.join(timeout=40)
            dead = running.dead()
    finally:
        with contextlib.suppress(Exception):
            delete_topics_under(settings, [prefix])
    per_hour = new_accounts_per_minute * 60.0
    compared = [app for app in APPS if app in first_pages and app in last_pages]
    grown = {app: grown_series(first_pages[app], last_pages[app]) for app in compared}
    suspects = {app: suspect_series(born_series(first_pages[app], last_pages[app])) for app in compared}
    return SoakResult(
        samples,
        judge(resources(), samples, warmup_s, per_hour),
        traffic.arrived,
        traffic.posted,
        traffic.failures,
        dead,
        grown,
        suspects,
    )


def default_bootstrap() -> str:
    """The broker ``make soak`` uses: the integration tests' (PREEMPT_TEST_BOOTSTRAP), else PREEMPT_BROKER's first."""
    if test_broker := os.environ.get("PREEMPT_TEST_BOOTSTRAP"):
        return test_broker
    first = os.environ.get("PREEMPT_BROKER", "kafka://127.0.0.1:9092").split(";")[0]
    return first.split("://", 1)[-1]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=float(os.environ.get("SOAK_MINUTES", "20")))
    parser.add_argument("--interval", type=float, default=30.0, help="seconds between samples")
    parser.add_argument(
        "--warmup-minutes", type=float, default=5.0, help="minutes not judged (tables and caches filling)"
    )
    parser.add_argument("--accounts", type=int, default=40, help="accounts of the live simulation")
    parser.add_argument("--rate", type=float, default=40.0, help="events/s of the live simulation")
    parser.add_argument(
        "--new-accounts-per-minute",
        type=float,
        default=30.0,
        help="accounts arriving over the ingest (> 0: the data dirs are judged per new account)",
    )
    parser.add_argument(
        "--bootstrap",
        default=default_bootstrap(),
        help="host:port of the broker (default: PREEMPT_TEST_BOOTSTRAP, else PREEMPT_BROKER's, else make kafka's)",
    )
    parser.add_argument("--store", default="rocksdb://", help="the apps' table store (memory:// tells RocksDB's share)")
    parser.add_argument(
        "--default-bounds",
        action="store_true",
        help="run the worker's state cache, dedup ids and RocksDB write buffers at their defaults (they fill for "
        "hours: past a 20-minute warm-up they read as growth)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the work dir (logs, data) and print it")
    args = parser.parse_args(argv)
    if args.minutes <= args.warmup_minutes:
        print(f"--minutes ({args.minutes:g}) must exceed --warmup-minutes ({args.warmup_minutes:g})", file=sys.stderr)
        return 2
    if args.new_accounts_per_minute <= 0:
        print(
            f"--new-accounts-per-minute ({args.new_accounts_per_minute:g}) must be above 0: the data dirs' growth "
            "is judged per new account",
            file=sys.stderr,
        )
        return 2
    workdir = Path(tempfile.mkdtemp(prefix="preempt-soak-"))
    result = soak(
        args.bootstrap,
        workdir,
        args.minutes,
        args.interval,
        args.warmup_minutes * 60,
        args.accounts,
        args.rate,
        args.new_accounts_per_minute,
        store=args.store,
        default_bounds=args.default_bounds,
    )
    print(
        f"soak: {args.minutes:g} min ({args.warmup_minutes:g} min warm-up), {len(result.samples)} samples, "
        f"{args.accounts} simulated accounts at {args.rate:g} events/s + {result.new_accounts} new accounts "
        f"({result.events_posted} items posted to the ingest)"
    )
    print(table(result.verdicts))
    for app, grown in result.grown.items():
        if grown:
            print(f"soak: {app}: series born past the warm-up: " + ", ".join(f"{n} {name}" for name, n in grown))
    for app, suspects in result.suspects.items():
        if len(suspects) > MAX_SUSPECT_SERIES:
            print(f"soak: FAIL {app}: {len(suspects)} series born past the warm-up with no topic or partition label:")
            print("\n".join(f"  {s}" for s in suspects[:10]))
    for problem in [*result.dead, *result.post_failures[:5]]:
        print(f"soak: {problem}")
    if args.keep:
        print(f"soak: logs and data in {workdir}")
    else:
        import shutil

        shutil.rmtree(workdir, ignore_errors=True)
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
