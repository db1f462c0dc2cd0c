#!/usr/bin/env bash
# The test command: makes sure a nats-server is available (tests start real ones), then runs every
# test of the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."
NATS_SERVER_BIN="$(bash scripts/nats-server.sh)"
export NATS_SERVER_BIN
"$NATS_SERVER_BIN" --version >&2 || true
exec cargo test --workspace --no-fail-fast "$@"
