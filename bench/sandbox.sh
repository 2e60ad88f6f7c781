#!/usr/bin/env bash
# sandbox.sh: per-run time (p50/p99) of the C guests hello and wc (1 MiB channel):
# in process (module prepared), the zerovm binary as a process per run, the same C
# compiled natively, and natively under bubblewrap. Prints one table per work
# directory (where the channel files live): on disk ($TMPDIR or /tmp) and, when
# present, on a tmpfs (/dev/shm). Each run writes a new output file: re-truncating
# the last run's output costs 1-4 ms on ext4 (auto_da_alloc writeback).
# Env (all optional):
#   BENCH_RUNS      timed runs per row (200)
#   BENCH_WORKDIRS  space-separated work directories (default: "${TMPDIR:-/tmp} /dev/shm")
# Installs (apt, as root or with sudo) what is missing: clang lld wasi-libc
# libclang-rt-14-dev-wasm32 (guests), bubblewrap (bwrap rows). Never asserts on time.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
log() { echo "sandbox.sh: $*" >&2; }
SUDO=""
[[ $(id -u) -ne 0 ]] && command -v sudo >/dev/null && SUDO=sudo

need_apt=()
command -v clang >/dev/null || need_apt+=(clang)
command -v wasm-ld >/dev/null || need_apt+=(lld)
[[ -f /usr/lib/wasm32-wasi/libc.a ]] || need_apt+=(wasi-libc)
compgen -G '/usr/lib/llvm-*/lib/clang/*/lib/wasi/libclang_rt.builtins-wasm32.a' >/dev/null \
  || need_apt+=(libclang-rt-14-dev-wasm32)
command -v gcc >/dev/null || need_apt+=(gcc)
command -v bwrap >/dev/null || need_apt+=(bubblewrap)
if ((${#need_apt[@]})); then
  log "installing ${need_apt[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null \
    || log "apt-get failed; rows needing those tools may fail or be skipped"
fi

cargo build --release -p sandbox -p bench
guests="$repo/target/bench-guests"
sandbox/build-guests.sh "$guests" --native

workdirs="${BENCH_WORKDIRS:-${TMPDIR:-/tmp} /dev/shm}"
for w in $workdirs; do
  [[ -d $w && -w $w ]] || { log "skipping work dir $w (missing or not writable)"; continue; }
  echo
  target/release/sandbox --guests "$guests" --runs "${BENCH_RUNS:-200}" \
    --zerovm target/release/zerovm --workdir "$w"
done
