#!/usr/bin/env bash
# Runs OpenStack Swift's own functional tests (core files: tests.py,
# test_account.py, test_container.py, test_object.py) against a fresh
# `zerocloud up`, using the runner in ../shared/tools (SHARED_TOOLS overrides).
# Prints the summary; fails when fewer tests pass than FUNCTESTS_MIN_PASSED
# (a floor that guards against regressions; docs/compatibility.md has the figure).
# Usage: scripts/functests.sh      (ALL=1 for the 14-file set)
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
tools="${SHARED_TOOLS:-$(dirname "$repo")/shared/tools}"
[[ -x $tools/swift-functests.sh ]] || { echo "functests: no $tools/swift-functests.sh" >&2; exit 2; }

cargo build --release --bin zerocloud
work=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
# Swift's tests run no jobs: no background image install competing for the cores.
./target/release/zerocloud up --bind "127.0.0.1:$port" --data-dir "$work/data" --no-image-install >"$work/server.log" 2>&1 &
pid=$!
cleanup() {
  local rc=$?
  # (errexit applies inside traps: a killed server's status must not leak out)
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  rm -rf "$work"
  exit "$rc"
}
trap cleanup EXIT
for _ in $(seq 100); do
  curl -sf "http://127.0.0.1:$port/info" >/dev/null && break
  sleep 0.1
done

out="${FUNCTESTS_OUT:-$repo/functests-out}"
FUNCTESTS_OUT="$out" FUNCTESTS_STRICT=0 "$tools/swift-functests.sh" "http://127.0.0.1:$port/auth/v1.0"
passed=$(sed -n 's/^\([0-9]*\) passed, .*/\1/p' "$out/summary.txt" | tail -1)
min="${FUNCTESTS_MIN_PASSED:-0}"
if [[ -n $min && ${passed:-0} -lt $min ]]; then
  echo "functests: $passed passed, fewer than the floor of $min" >&2
  echo "failing tests:" >&2; cat "$out/failed.txt" >&2
  exit 1
fi
