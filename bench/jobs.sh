#!/usr/bin/env bash
# jobs.sh: jobs POSTed over HTTP to `zerocloud up` (proxy + one storage node with its exec
# agent), end to end, by target/release/jobs (bench/src/jobs.rs); prints one table per part:
#   script    a Python script POSTed as the body: p50/p99 and jobs/s at c=1 and c=2, for
#             print(sum(range(1000))) and a json+sqlite3 script, beside native python3 started
#             per run, and the speedup (native p50 / HTTP p50)
#   wildcard  one job of 100 nodes over swift://~/<container>/*.txt: total ms, ms per node
#   attach    a job read-attached to a 4 KiB and to a 64 MiB object (reads 16 bytes), beside
#             one std::fs::copy of 64 MiB on the same filesystem
#   open      a 4 KiB JSON object fetched with a plain GET and with open/1.0 (a Python app in
#             .zvm renders it), interleaved: p50/p99 of each and the difference
#   burst     1000 script POSTs at once, one connection each: statuses, time, peak VmRSS of
#             the server and each of its worker processes, and their sum
# The server runs with --no-fsync on a fresh data dir under $BENCH_TMPDIR (/dev/shm) and is
# stopped (by pid) at the end. Installs the Python image when missing (into $ZEROCLOUD_IMAGES,
# default ~/.cache/zerocloud/images). Never asserts on time; exits non-zero if a run failed.
# Arguments are passed to the binary (--json for JSON lines, --url for a running server,
# --help for all). Env (optional): BENCH_RUNS (300), BENCH_NATIVE_RUNS (100), BENCH_NODES
# (100), BENCH_WILDCARD_RUNS (5), BENCH_ATTACH_RUNS (20), BENCH_BIG (64m), BENCH_BURST (1000),
# BENCH_PHASES (script,wildcard,attach,open,burst), BENCH_OPEN_RUNS (200), BENCH_NATIVE_PYTHON (python3), BENCH_TMPDIR.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
TOOLS="${ZC_TOOLS:-$HOME/.cache/zerocloud}"
export ZEROCLOUD_IMAGES="${ZEROCLOUD_IMAGES:-$TOOLS/images}"
cargo build --release -q --bin zerocloud
cargo build --release -q -p bench --bin jobs
target/release/zerocloud image install python --images-dir "$ZEROCLOUD_IMAGES"
# The burst holds 2 x BENCH_BURST sockets (client and server side) open at once.
want=$((2 * ${BENCH_BURST:-1000} + 256))
if [[ $(ulimit -n) != unlimited && $(ulimit -n) -lt $want ]]; then
  ulimit -n "$want" 2>/dev/null || ulimit -n "$(ulimit -Hn)" || true
fi
echo "jobs.sh: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg), $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet 2>/dev/null || echo ' (+ uncommitted changes)')"
exec target/release/jobs --zerocloud target/release/zerocloud "$@"
