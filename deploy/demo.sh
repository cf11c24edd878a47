#!/usr/bin/env bash
# make demo: the whole service on the local broker — topics, rules worker, notifier (console
# preview unless PREEMPT_ROUTES_PATH is set), three days of simulated history, then live
# simulated traffic. Alerts (account, rule, evidence, playbook) print as the notifier delivers
# them. Ctrl-C stops every process this script started and waits for each to exit.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
OUT="${DEMO_OUT:-demo-out}"  # where each process logs
mkdir -p "$OUT"
export PREEMPT_TOPIC_PREFIX="${PREEMPT_TOPIC_PREFIX:-demo$(date +%s)}"  # fresh topics each run
export PREEMPT_STORE="${PREEMPT_STORE:-memory://}"
export PREEMPT_LOG_FORMAT="${PREEMPT_LOG_FORMAT:-console}"
# Event-time clock: the history below replays with alerts at once, and live traffic keeps
# every partition's clock moving (docs/pipeline.md explains live mode and the wall clock).
export PREEMPT_EVENT_TIME_ONLY="${PREEMPT_EVENT_TIME_ONLY:-true}"
ACCOUNTS="${DEMO_ACCOUNTS:-40}"
RATE="${DEMO_RATE:-40}"
pids=()

cleanup() {
  trap - INT TERM EXIT
  echo
  echo "demo: stopping…"
  for pid in "${pids[@]}"; do kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do
    for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  echo "demo: stopped (the broker stays up; make kafka-stop stops it). Logs in $OUT/"
}
trap cleanup INT TERM EXIT

start() {  # start NAME CMD…: run CMD in its own process group, logging to $OUT/NAME.log
  local name=$1
  shift
  setsid "$@" >"$OUT/$name.log" 2>&1 &
  pids+=($!)
}

echo "demo: topics ${PREEMPT_TOPIC_PREFIX}.*"
start worker "$BIN/preempt" worker
start notifier "$BIN/preempt" notifier
echo "demo: waiting for the rules worker (log: $OUT/worker.log)…"
for _ in $(seq 1 240); do
  grep -q "rules worker ready" "$OUT/worker.log" 2>/dev/null && break
  for i in 0 1; do  # the worker or the notifier stopped (a bad setting, a port in use): say why at once
    if ! kill -0 "${pids[$i]}" 2>/dev/null; then
      name=$([[ $i == 0 ]] && echo worker || echo notifier)
      echo "demo: the $name stopped before it was ready; the end of $OUT/$name.log:"
      tail -n 5 "$OUT/$name.log" | sed 's/^/  /'
      exit 1
    fi
  done
  sleep 0.5
done
grep -q "rules worker ready" "$OUT/worker.log" || { echo "demo: the worker did not start within 120 s; see $OUT/worker.log"; exit 1; }

echo "demo: publishing 3 days of history for $ACCOUNTS accounts (preempt simulate --backfill)…"
"$BIN/preempt" simulate --accounts "$ACCOUNTS" --days 3 --seed 7 --backfill >"$OUT/backfill.log" 2>&1
echo "demo: live traffic at $RATE events/s (preempt simulate); alerts follow (Ctrl-C stops everything)"
start simulate "$BIN/preempt" simulate --accounts "$ACCOUNTS" --seed 7 --rate "$RATE"
tail -n +1 -f "$OUT/notifier.log" &
pids+=($!)
wait "${pids[0]}"
