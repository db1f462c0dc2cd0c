#!/usr/bin/env bash
# Build the main workspace's `wadm` binary, then drive `wadm serve` with wadm-client 0.10.
# Needs `nats-server` on PATH. Uses its own target dir so the two dependency graphs never mix.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
cargo build --quiet -p wadm --manifest-path "$root/Cargo.toml"
WADM_BIN="$root/target/debug/wadm" \
  CARGO_TARGET_DIR="${COMPAT_TARGET_DIR:-$root/target/compat}" \
  cargo run --quiet --manifest-path "$here/Cargo.toml"
