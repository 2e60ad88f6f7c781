#!/usr/bin/env bash
# Compares two `zerocloud` builds on the same load, interleaved finely enough
# that this VM's drift (±20 % between neighbouring minutes) hits both alike.
#
#   bench/ab.sh OLD_BIN NEW_BIN [ROUNDS] [OBJECTS] [CONC] [OP]
#
# Both builds run `zerocloud up` at once, each with its data dir on a tmpfs
# (/dev/shm). Each gets the same objects (4 KiB) once; then OP rounds
# (`get` by default) alternate between them, old first in odd rounds and new
# first in even ones. Prints each round, the median of the rounds' new/old
# ratios, each side's median, and the CPU seconds each server used over the
# rounds (from /proc; the seeding PUTs not counted).
set -euo pipefail
old=${1:?usage: bench/ab.sh OLD_BIN NEW_BIN [ROUNDS] [OBJECTS] [CONC] [OP]}
new=${2:?usage: bench/ab.sh OLD_BIN NEW_BIN [ROUNDS] [OBJECTS] [CONC] [OP]}
rounds=${3:-10} objects=${4:-8000} conc=${5:-16} op=${6:-get}
here=$(cd "$(dirname "$0")/.." && pwd)
ops=${SWIFT_OPS:-$here/target/release/swift_ops}
[[ -x $ops ]] || (cd "$here" && cargo build --release -q -p bench --bin swift_ops)

work=$(mktemp -d /dev/shm/zc-ab.XXXXXX)
pids=()
cleanup() {
    for p in ${pids[@]+"${pids[@]}"}; do kill -TERM -- "-$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
declare -A port pid
for side in old new; do
    bin=$old; [[ $side == new ]] && bin=$new
    port[$side]=$(free_port)
    setsid "$bin" up --bind "127.0.0.1:${port[$side]}" --no-image-install \
        --data-dir "$work/$side" >"$work/$side.log" 2>&1 &
    pid[$side]=$!
    pids+=("$!")
done
for side in old new; do
    for _ in $(seq 100); do
        curl -sf "http://127.0.0.1:${port[$side]}/info" >/dev/null && break
        sleep 0.1
    done
done

run() { # side phases
    "$ops" --auth-url "http://127.0.0.1:${port[$1]}/auth/v1.0" --size 4k \
        --objects "$objects" --concurrency "$conc" --container ab --label "$1" \
        --phases "$2" | awk 'NR>1'
}
cpu() { # the server's process group: user+sys seconds
    local t=0
    for p in $(pgrep -g "${pid[$1]}"); do
        t=$((t + $(awk '{print $14+$15}' "/proc/$p/stat" 2>/dev/null || echo 0)))
    done
    echo "scale=2; $t / $(getconf CLK_TCK)" | bc
}

for side in old new; do run "$side" put >/dev/null; done
declare -A start
for side in old new; do start[$side]=$(cpu "$side"); done
: >"$work/rounds"
median() { # of the numbers on stdin
    sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'
}
for r in $(seq "$rounds"); do
    order="old new"; ((r % 2 == 0)) && order="new old"
    for side in $order; do run "$side" "$op" | tee -a "$work/rounds"; done
done
# Each round's new/old ratio: neighbours in time, so drift mostly cancels.
awk '{v[NR]=$6; s[NR]=$1} END {for (i=1;i<NR;i+=2) print (s[i]=="new" ? v[i]/v[i+1] : v[i+1]/v[i])}' \
    "$work/rounds" | sort -n >"$work/ratios"
printf 'new/old, median of the rounds: %.3f (range %.3f to %.3f)\n' \
    "$(median <"$work/ratios")" "$(head -1 "$work/ratios")" "$(tail -1 "$work/ratios")"
for side in old new; do
    echo "$side: median $(awk -v s="$side" '$1==s {print $6}' "$work/rounds" | median) ops/s," \
        "server CPU $(echo "$(cpu "$side") - ${start[$side]}" | bc) s"
done
