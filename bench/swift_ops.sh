#!/usr/bin/env bash
# swift_ops.sh: PUT/GET/DELETE ops/s and p50/p99 of zerocloud (data dir on disk, and on a tmpfs when
# root) and, when the shared tools are present, of real OpenStack Swift; then a summary with ratios.
#
# Shapes: 4 KiB x BENCH_N_4K (2000) and 1 MiB x BENCH_N_1M (200), both at concurrency BENCH_CONC (16).
# Env (all optional):
#   BENCH_USER / BENCH_KEY  TempAuth credentials for every server (test:tester / testing)
#   BENCH_TMPDIR            parent of the temporary dir holding the on-disk data dir (${TMPDIR:-/tmp})
#   BENCH_TMPFS_SIZE        size of the tmpfs for the zerocloud-tmpfs run (1g)
#   BENCH_SKIP              labels to skip, space separated: zerocloud-disk zerocloud-tmpfs swift
#                           zerocloud-front (`zerocloud proxy --swift-proxy` in front of that Swift)
#   BENCH_JSON              file to append the per-phase JSON lines to (default: not kept)
#   SHARED_TOOLS            dir with swift-peer-up.sh / swift-peer-down.sh (<repo>/../shared/tools)
#   ZEROCLOUD_BIN           server binary to run (<repo>/target/release/zerocloud, built here)
# Everything binds to 127.0.0.1; every process started here is stopped on exit, tmpfs unmounted.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SHARED_TOOLS="${SHARED_TOOLS:-$(dirname "$repo")/shared/tools}"
N_4K="${BENCH_N_4K:-2000}" N_1M="${BENCH_N_1M:-200}" CONC="${BENCH_CONC:-16}"
B_USER="${BENCH_USER:-test:tester}" B_KEY="${BENCH_KEY:-testing}"
TMPFS_SIZE="${BENCH_TMPFS_SIZE:-1g}" SKIP=" ${BENCH_SKIP:-} "
PEER_HOME="${SWIFT_PEER_HOME:-$HOME/.cache/zc-tools/swift-peer}"
ZC_BIN="${ZEROCLOUD_BIN:-$repo/target/release/zerocloud}"
if [[ -n ${BENCH_JSON:-} && $BENCH_JSON != /* ]]; then BENCH_JSON="$PWD/$BENCH_JSON"; fi

log() { echo "swift_ops.sh: $*" >&2; }
die() { log "ERROR: $*"; exit 1; }
skipped() { [[ $SKIP == *" $1 "* ]]; }

work="$(mktemp -d "${BENCH_TMPDIR:-${TMPDIR:-/tmp}}/swift_ops.XXXXXX")"
results="$work/results.txt"; : >"$results"
zc_pid="" bench_pid="" mounted="" peer_started=0

# ---- cleanup: only what this script started -----------------------------------------------------
running() { local s; s=$(ps -o stat= -p "$1" 2>/dev/null) && [[ $s != Z* ]]; }
stop_zc() {
  [[ -n $zc_pid ]] || return 0
  kill -TERM -- "-$zc_pid" 2>/dev/null || kill -TERM "$zc_pid" 2>/dev/null || true
  for _ in $(seq 100); do running "$zc_pid" || break; sleep 0.1; done
  running "$zc_pid" && log "zerocloud ($zc_pid) needed SIGKILL"
  kill -KILL -- "-$zc_pid" 2>/dev/null || true # its process group (setsid), if anything is left
  wait "$zc_pid" 2>/dev/null || true
  zc_pid=""
}
unmount_tmpfs() {
  [[ -n $mounted ]] || return 0
  umount "$mounted" 2>/dev/null || { sleep 1; umount "$mounted"; } || umount -l "$mounted" || log "could not unmount $mounted"
  mounted=""
}
cleanup() {
  set +e
  if [[ -n $bench_pid ]]; then kill -TERM "$bench_pid" 2>/dev/null; wait "$bench_pid" 2>/dev/null; fi
  stop_zc
  unmount_tmpfs
  if ((peer_started)); then bash "$SHARED_TOOLS/swift-peer-down.sh" >&2; peer_started=0; fi
  awk -v d="$work" 'index($2, d) == 1 {f = 1} END {exit !f}' /proc/mounts || rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- helpers ------------------------------------------------------------------------------------
free_port() { # unused port below the ephemeral range (Swift's peer: 8080, 6200-6202, 11211)
  local p
  for p in $(shuf -i 20000-32767 -n 50); do
    (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return 0; }
  done
  return 1
}

# bench LABEL AUTH_URL: runs both shapes, shows the table lines, appends them to $results
bench() {
  local label=$1 url=$2 size n out
  for shape in "4k $N_4K" "1m $N_1M"; do
    read -r size n <<<"$shape"
    out="$work/$label-$size.out"
    "$repo/target/release/swift_ops" --auth-url "$url" --user "$B_USER" --key "$B_KEY" --size "$size" \
      --objects "$n" --concurrency "$CONC" --label "$label" --json >"$out" &
    bench_pid=$! # waited for in the background so that a signal reaches the trap at once
    wait "$bench_pid" || log "$label $size: swift_ops reported failures (see above)"
    bench_pid=""
    grep -v '^{' "$out" || true
    awk '$2 ~ /^(PUT|GET|DELETE)$/ && NF == 9' "$out" >>"$results"
    if [[ -n ${BENCH_JSON:-} ]]; then grep '^{' "$out" >>"$BENCH_JSON" || true; fi
  done
}

# wait_info LABEL PORT LOG: waits (30 s at most) for the server started as $zc_pid to serve
# /info on PORT; else shows the end of its LOG, stops it and fails
wait_info() {
  local label=$1 port=$2 zlog=$3 deadline=$((SECONDS + 30))
  until curl -sf -o /dev/null --max-time 2 "http://127.0.0.1:$port/info"; do
    if ! running "$zc_pid" || ((SECONDS >= deadline)); then
      log "$label: zerocloud did not serve /info within 30 s; its log:"; tail -n 20 "$zlog" >&2
      stop_zc; return 1
    fi
    sleep 0.1
  done
}

# run_zc LABEL DATA_DIR: starts `zerocloud up` on a free port, waits for /info, benchmarks, stops it
run_zc() {
  local label=$1 data=$2 port zlog auth
  mkdir -p "$data"
  port=$(free_port) || die "no free port found"
  zlog="$work/$label.log"
  log "$label: zerocloud up on 127.0.0.1:$port, data dir $data ($(stat -f -c %T "$data"))"
  # No background image install competing with the measured requests.
  setsid "$ZC_BIN" up --bind "127.0.0.1:$port" --data-dir "$data" --no-image-install >"$zlog" 2>&1 &
  zc_pid=$!
  wait_info "$label" "$port" "$zlog" || return 1
  auth=$(grep -oE "http://127\.0\.0\.1:$port/[^[:space:]\"']*auth/v1\.0" "$zlog" | head -n 1 || true)
  bench "$label" "${auth:-http://127.0.0.1:$port/auth/v1.0}"
  stop_zc
}

# run_front SWIFT_BASE: `zerocloud proxy --swift-proxy` in front of Swift on a free port (plain
# requests passed through: docs/swift-backend.md), benchmarked through it with Swift's auth
run_front() {
  local swift=$1 port zlog
  port=$(free_port) || die "no free port found"
  zlog="$work/zerocloud-front.log"
  log "zerocloud-front: zerocloud proxy on 127.0.0.1:$port in front of $swift"
  setsid "$ZC_BIN" proxy --bind "127.0.0.1:$port" --swift-proxy "$swift" >"$zlog" 2>&1 &
  zc_pid=$!
  wait_info zerocloud-front "$port" "$zlog" || return 1
  bench zerocloud-front "http://127.0.0.1:$port/auth/v1.0"
  stop_zc
}

# ---- build --------------------------------------------------------------------------------------
cd "$repo"
have_zc=1
if ! cargo build --release -p bench -p zerocloud; then
  cargo build --release -p bench || die "building bench failed"
  [[ -n ${ZEROCLOUD_BIN:-} ]] || { log "building proxy failed: benchmarking without zerocloud"; have_zc=0; }
fi
if ((have_zc)) && ! "$ZC_BIN" up --help >/dev/null 2>&1; then
  log "$ZC_BIN up --help failed: benchmarking without zerocloud"; have_zc=0
fi

# ---- 1. zerocloud, data on disk, then (root only) on a tmpfs -----------------------------------
if ((have_zc)); then
  skipped zerocloud-disk || run_zc zerocloud-disk "$work/disk-data" || log "zerocloud-disk run failed"
  if skipped zerocloud-tmpfs; then :
  elif [[ $(id -u) == 0 ]]; then
    mkdir -p "$work/tmpfs"
    if mount -t tmpfs -o "size=$TMPFS_SIZE,mode=0700" zc-bench "$work/tmpfs"; then
      mounted="$work/tmpfs"
      run_zc zerocloud-tmpfs "$mounted/data" || log "zerocloud-tmpfs run failed"
      unmount_tmpfs
    else
      log "mounting a tmpfs failed: no zerocloud-tmpfs run"
    fi
  else
    log "not root: skipping zerocloud-tmpfs (Swift's peer keeps its data on a tmpfs)"
  fi
fi

# ---- 2. real Swift, if the shared tools are there ----------------------------------------------
if ! skipped swift && [[ -f $SHARED_TOOLS/swift-peer-up.sh ]]; then
  # a peer that was already running is somebody else's: use it, but leave it running
  pidf="$PEER_HOME/run/proxy.pid"
  if [[ -f $pidf ]] && kill -0 "$(cat "$pidf")" 2>/dev/null; then
    log "swift peer already running: will not stop it"
  else
    peer_started=1
  fi
  if up_out=$(bash "$SHARED_TOOLS/swift-peer-up.sh"); then
    swift_auth=$(sed -n 's/^AUTH_URL=//p' <<<"$up_out" | tail -n 1)
    if [[ -n $swift_auth ]]; then
      bench swift "$swift_auth"
      if ((have_zc)) && ! skipped zerocloud-front; then
        run_front "${swift_auth%/auth/v1.0}" || log "zerocloud-front run failed"
      fi
    else
      log "swift-peer-up.sh printed no AUTH_URL"
    fi
  else
    log "swift-peer-up.sh failed: no Swift run"
  fi
  if ((peer_started)); then bash "$SHARED_TOOLS/swift-peer-down.sh" >&2 || true; peer_started=0; fi
elif ! skipped swift; then
  log "no $SHARED_TOOLS/swift-peer-up.sh: no Swift run"
fi

# ---- 3. summary ---------------------------------------------------------------------------------
echo
echo "== summary (concurrency $CONC; 4KiB n=$N_4K, 1MiB n=$N_1M) =="
printf '%-16s %-6s %7s %4s %6s %9s %8s %8s %6s\n' label op size conc n ops/s p50_ms p99_ms errors
cat "$results"
echo
awk '$3 == "4KiB" {
       ops[$1 " " $2] = $6
       if (!($1 in seen)) { seen[$1] = 1; order[++n] = $1 }
     }
     END {
       if (!("swift" in seen)) { print "no Swift 4KiB run: no ratios"; exit }
       for (i = 1; i <= n; i++) {
         l = order[i]; if (l == "swift") continue; shown++
         line = sprintf("ratio %s/swift, 4KiB ops/s:", l)
         split("PUT GET DELETE", opn, " ")
         for (j = 1; j <= 3; j++) {
           o = opn[j]; a = ops[l " " o]; b = ops["swift " o]
           line = line sprintf("  %s %s", o, (a != "" && b > 0) ? sprintf("%.2fx", a / b) : "n/a")
         }
         print line
       }
       if (!shown) print "no zerocloud 4KiB run: no ratios"
     }' "$results"
