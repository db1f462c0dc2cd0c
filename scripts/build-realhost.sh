#!/usr/bin/env bash
# Build the real wasmCloud 1.9.2 host used by wadm's real-host tests (fixtures/realhost) and cache
# the binary. Idempotent: a binary built from the same fixture sources is reused.
#
#   scripts/build-realhost.sh            # build (12-25 min on 2 cores, ~3 GB RAM, ~4.6 GB disk)
#   WADM_REALHOST_BIN=/x/host scripts/build-realhost.sh   # put the binary at /x/host instead
#
# Environment:
#   WADM_REALHOST_BIN     where the binary goes (default ~/.cache/wadm-realhost/bin/wasmcloud-host-1.9.2);
#                         the tests look there too
#   WADM_REALHOST_CACHE   cache dir: patched source, scratch manifest, target dir
#                         (default ~/.cache/wadm-realhost)
#   WADM_REALHOST_PROFILE cargo profile (default release; dev builds faster, runs slower)
#   CARGO_BUILD_JOBS      parallel jobs (default 1: the build runs at nice 19 next to other work)
#   WADM_REALHOST_FORCE=1 rebuild even when the cached binary is current
#
# Order matters: the fixture's manifest patches wasmcloud-host with a local copy, so that copy must
# exist before cargo reads the fixture manifest. The crate is first fetched through a scratch
# manifest without the patch, then copied and patched, then the fixture is built (--locked).
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
FIXTURE="$ROOT/fixtures/realhost"
CACHE="${WADM_REALHOST_CACHE:-$HOME/.cache/wadm-realhost}"
BIN="${WADM_REALHOST_BIN:-$CACHE/bin/wasmcloud-host-1.9.2}"
PROFILE="${WADM_REALHOST_PROFILE:-release}"
export CARGO_BUILD_JOBS="${CARGO_BUILD_JOBS:-1}"
export CARGO_TARGET_DIR="$CACHE/target"
CRATE=wasmcloud-host
VERSION=0.27.1
PATCHED="$CACHE/patched/$CRATE-$VERSION"
ATTR='#![recursion_limit = "256"]'

log() { echo "build-realhost: $*" >&2; }

mkdir -p "$CACHE" "$(dirname "$BIN")"

# Fingerprint of everything that decides the binary.
stamp="$(cat "$FIXTURE/Cargo.toml" "$FIXTURE/Cargo.lock" "$FIXTURE"/src/*.rs \
  | sha256sum | cut -d' ' -f1)-$PROFILE-$(rustc --version | tr ' ' '_')"
if [ "${WADM_REALHOST_FORCE:-0}" != 1 ] && [ -x "$BIN" ] && [ -f "$BIN.stamp" ] \
  && [ "$(cat "$BIN.stamp")" = "$stamp" ]; then
  log "up to date"
  echo "$BIN"
  exit 0
fi

# 1. Fetch the published crate through a scratch manifest (no patch table).
if [ ! -f "$PATCHED/Cargo.toml" ]; then
  scratch="$CACHE/scratch"
  mkdir -p "$scratch/src"
  cat >"$scratch/Cargo.toml" <<TOML
[package]
name = "wadm-realhost-fetch"
version = "0.0.0"
edition = "2021"
publish = false

[workspace]

[dependencies]
$CRATE = "=$VERSION"
TOML
  echo 'fn main() {}' >"$scratch/src/main.rs"
  log "fetching $CRATE $VERSION"
  if command -v jq >/dev/null 2>&1; then
    manifest_dir="$(cd "$scratch" && nice -n 19 cargo metadata --format-version 1 \
      | jq -r --arg n "$CRATE" --arg v "$VERSION" \
        '.packages[] | select(.name == $n and .version == $v) | .manifest_path' \
      | xargs dirname)"
  else
    (cd "$scratch" && nice -n 19 cargo fetch)
    manifest_dir="$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/"$CRATE-$VERSION" | head -n1)"
  fi
  [ -f "$manifest_dir/src/lib.rs" ] || { log "no registry source for $CRATE $VERSION"; exit 1; }

  # 2. Copy it and insert the recursion limit at the top of src/lib.rs.
  tmp="$PATCHED.tmp"
  rm -rf "$tmp"
  mkdir -p "$(dirname "$PATCHED")"
  cp -R "$manifest_dir" "$tmp"
  chmod -R u+w "$tmp"
  { echo "$ATTR"; cat "$manifest_dir/src/lib.rs"; } >"$tmp/src/lib.rs"
  rm -rf "$PATCHED"
  mv "$tmp" "$PATCHED"
  log "patched copy at $PATCHED"
fi
grep -qF "$ATTR" "$PATCHED/src/lib.rs" || { log "$PATCHED/src/lib.rs lacks $ATTR"; exit 1; }

# 3. Point the fixture's patch table at it (fixtures/realhost/patched -> $CACHE/patched).
ln -sfn "$CACHE/patched" "$FIXTURE/patched"

# 4. Build at low priority and cache the binary.
log "building ($PROFILE, $CARGO_BUILD_JOBS job(s), nice 19) into $CARGO_TARGET_DIR"
start=$(date +%s)
if [ ! -f "$FIXTURE/Cargo.lock" ]; then
  log "no Cargo.lock in $FIXTURE: generating one (commit it)"
  (cd "$FIXTURE" && cargo generate-lockfile)
fi
(cd "$FIXTURE" && nice -n 19 cargo build --locked --profile "$PROFILE" --bin wadm-realhost)
dir="$PROFILE"; [ "$PROFILE" = dev ] && dir=debug
install -m 0755 "$CARGO_TARGET_DIR/$dir/wadm-realhost" "$BIN.tmp"
mv "$BIN.tmp" "$BIN"
echo "$stamp" >"$BIN.stamp"
log "built in $(( $(date +%s) - start ))s"
echo "$BIN"
