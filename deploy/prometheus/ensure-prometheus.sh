#!/usr/bin/env bash
# Make sure `prometheus` and `promtool` are on PATH: install Debian's `prometheus` package when
# either is missing (apt-get update once, then apt-get install -y prometheus). Idempotent; a no-op
# when both are there. The Debian package's service is not started by this script (tests start
# their own Prometheus on a free port). Run by `make test` before pytest and by the test setup.
set -euo pipefail

have_both() { command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1; }

if have_both; then
  exit 0
fi

if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo -n"; fi
echo "ensure-prometheus: installing Debian's prometheus package (promtool + prometheus)" >&2
export DEBIAN_FRONTEND=noninteractive
# policy-rc.d exit 101 keeps the package's postinst from starting a system Prometheus on :9090.
POLICY=/usr/sbin/policy-rc.d
CREATED_POLICY=0
if [ ! -e "$POLICY" ]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$POLICY" >/dev/null
  $SUDO chmod +x "$POLICY"
  CREATED_POLICY=1
fi
cleanup() { if [ "$CREATED_POLICY" -eq 1 ]; then $SUDO rm -f "$POLICY"; fi; }
trap cleanup EXIT

$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends prometheus >/dev/null

if ! have_both; then
  echo "ensure-prometheus: prometheus/promtool still missing after apt-get install" >&2
  exit 1
fi
prometheus --version 2>&1 | head -1 >&2
