#!/usr/bin/env bash
# The README's first command: a local NATS with JetStream, wadm (API + reconciler) and 3 simulated
# hosts, all in one process tree; Ctrl-C stops everything. Obtains nats-server first when missing
# (scripts/nats-server.sh). Extra arguments go to `wadm up` (see `cargo run -p wadm -- up --help`).
set -euo pipefail
cd "$(dirname "$0")/.."
NATS_SERVER_BIN="$(bash scripts/nats-server.sh)"
export NATS_SERVER_BIN
echo "using nats-server at $NATS_SERVER_BIN" >&2
exec cargo run -q -p wadm -- up "$@"
