#!/usr/bin/env bash
# python.sh: per-run time (p50/p99) and runs/s of a script using json, sqlite3 and
# numpy: through the worker pool with the daemon snapshot, through the pool with the
# plain start, and as a native python3 process (a venv with numpy, created once under
# $ZC_TOOLS), at concurrency 1 and 2; plus the pool's resident memory idle and under
# load. Installs the Python image when missing (into $ZEROCLOUD_IMAGES, default
# ~/.cache/zerocloud/images). Never asserts on time.
# Env (optional): BENCH_RUNS (200), BENCH_SLOW_RUNS (20), BENCH_WORKERS (2).
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
TOOLS="${ZC_TOOLS:-$HOME/.cache/zerocloud}"
export ZEROCLOUD_IMAGES="${ZEROCLOUD_IMAGES:-$TOOLS/images}"
cargo build --release --workspace --bins -q   # zerovm, zerocloud and this bench
target/release/zerocloud image install python --images-dir "$ZEROCLOUD_IMAGES"
if [[ ! -x $TOOLS/bench-venv/bin/python ]] || ! "$TOOLS/bench-venv/bin/python" -c 'import numpy' 2>/dev/null; then
  echo "python.sh: creating $TOOLS/bench-venv with numpy (native comparison)" >&2
  python3 -m venv "$TOOLS/bench-venv"
  "$TOOLS/bench-venv/bin/pip" install -q numpy
fi
exec target/release/python --zerovm target/release/zerovm \
  --native-python "$TOOLS/bench-venv/bin/python" \
  --runs "${BENCH_RUNS:-200}" --slow-runs "${BENCH_SLOW_RUNS:-20}" --workers "${BENCH_WORKERS:-2}"
