#!/usr/bin/env bash
# Make sure a headless Chromium is on PATH (`chromium`): install Debian's `chromium` package when it
# is missing (apt-get update once, then apt-get install -y chromium). Idempotent; a no-op when it is
# there. Used by `make test` before pytest and by the preview page test (tests/integration/
# test_preview_chromium.py), which opens `preempt alerts preview --html` output and screenshots it.
set -euo pipefail

if command -v chromium >/dev/null 2>&1; then
  exit 0
fi

if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo -n"; fi
echo "ensure-chromium: installing Debian's chromium package" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null

if ! command -v chromium >/dev/null 2>&1; then
  echo "ensure-chromium: chromium still missing after apt-get install" >&2
  exit 1
fi
chromium --version 2>&1 | head -1 >&2
