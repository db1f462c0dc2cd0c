#!/usr/bin/env bash
# Follows the README literally, as a newcomer would: runs the "Set up" block's first command (the
# local stack) in the background, then every command of the walk-through block after it in a
# second "terminal", failing on the first one that fails. Commands that never end on their own
# (`--watch`) are skipped. CI runs this on its fresh clone after the tests (.ci/run); run it
# yourself with `bash scripts/readme-walkthrough.sh` (it needs port 4222 free, as the README does).
set -euo pipefail
cd "$(dirname "$0")/.."

# The first two ```sh blocks after "## Set up": the set-up commands, then the walk-through.
blocks="$(python3 - <<'PY'
import re, sys
text = open("README.md").read()
setup = text[text.index("## Set up"):]
blocks = re.findall(r"```sh\n(.*?)```", setup, re.S)[:2]
for i, block in enumerate(blocks):
    for line in block.splitlines():
        line = line.split("  #")[0].rstrip()
        if line and not line.lstrip().startswith("#"):
            print(f"{i}\t{line}")
PY
)"
run_line="$(printf '%s\n' "$blocks" | awk -F'\t' '$1 == 0 { print $2; exit }')"
mapfile -t walk < <(printf '%s\n' "$blocks" | awk -F'\t' '$1 == 1 { print $2 }')
[ -n "$run_line" ] && [ "${#walk[@]}" -gt 0 ] || { echo "README: set-up or walk-through block not found" >&2; exit 1; }

# A data directory of its own, so an earlier run's store plays no part.
WADM_DATA_DIR="$(mktemp -d)"
export WADM_DATA_DIR
log="$WADM_DATA_DIR/up.log"
echo "+ $run_line   (in the background, log: $log)"
setsid bash -c "$run_line" > "$log" 2>&1 &
stack=$!
cleanup() {
  kill -INT -- "-$stack" 2>/dev/null || true
  for _ in $(seq 1 50); do kill -0 "$stack" 2>/dev/null || break; sleep 0.2; done
  kill -KILL -- "-$stack" 2>/dev/null || true
  rm -rf "$WADM_DATA_DIR"
}
trap cleanup EXIT

# Up when the banner says so (the first run compiles: allow for it).
for _ in $(seq 1 1200); do
  grep -q "wadm is up" "$log" && break
  kill -0 "$stack" 2>/dev/null || { cat "$log" >&2; echo "the stack exited before it was up" >&2; exit 1; }
  sleep 0.5
done
grep -q "wadm is up" "$log" || { cat "$log" >&2; echo "the stack did not come up" >&2; exit 1; }
grep -q "nats://127.0.0.1:4222 " "$log" \
  || { cat "$log" >&2; echo "port 4222 was taken: the README's commands cannot reach this stack" >&2; exit 1; }

for line in "${walk[@]}"; do
  case "$line" in
    *--watch*) echo "- $line   (skipped: follows until Ctrl-C)"; continue ;;
  esac
  echo "+ $line"
  if ! timeout 300 bash -c "$line"; then
    echo "README walk-through failed at: $line" >&2
    tail -n 30 "$log" >&2
    exit 1
  fi
done
echo "README walk-through: every command succeeded"
