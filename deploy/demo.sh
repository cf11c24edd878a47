#!/usr/bin/env bash
# make demo: the whole service on the local broker. Ctrl-C stops everything this script started.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
OUT=demo-out
mkdir -p "$OUT"
export PREEMPT_STORE="${PREEMPT_STORE:-memory://}"
export PREEMPT_LOG_FORMAT="${PREEMPT_LOG_FORMAT:-console}"
pids=()

cleanup() {
  trap - INT TERM EXIT
  echo
  echo "demo: stopping…"
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do
    for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    kill -KILL "$pid" 2>/dev/null || true
  done
  echo "demo: stopped (the broker stays up; make kafka-stop stops it)"
}
trap cleanup INT TERM EXIT

echo "demo: starting the rules worker (log: $OUT/worker.log)"
$BIN/preempt worker >"$OUT/worker.log" 2>&1 &
pids+=($!)
sleep 8
echo "demo: publishing events"
for i in $(seq 1 5); do
  $BIN/preempt publish --event "Report Exported" --account "acme" --user "u-$i"
done
echo "demo: the worker consumed (Ctrl-C to stop):"
tail -n +1 -f "$OUT/worker.log" | grep --line-buffered "event consumed" &
pids+=($!)
wait
