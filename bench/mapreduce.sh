#!/usr/bin/env bash
# mapreduce.sh: data locality over a slow link. The seed's MapReduce wordcount over
# BENCH_MR_OBJECTS (100) objects of BENCH_MR_SIZE (1 MiB) on 3 object servers (each map
# session runs on the server holding its object), next to a client that downloads every
# object and counts locally. The client sits in its own network namespace behind a veth
# pair limited to BENCH_MR_RATE (100mbit) each way by `tc` (tbf); the proxy listens on the
# host end. Prints both times, the bytes that crossed the client's link, and the map phase's
# CPU-bound floor (slowest map session's CPU time x mappers / cores). Creates and removes
# the namespace, the veth pair and a data dir under BENCH_TMPDIR (/dev/shm); stops the
# servers by pid. Needs root (ip netns) and iproute2. Never asserts on time; exits non-zero
# if a run failed or the two counts differ.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
# shellcheck source=lib.sh
. bench/lib.sh
N="${BENCH_MR_OBJECTS:-100}" SIZE="${BENCH_MR_SIZE:-1048576}" RATE="${BENCH_MR_RATE:-100mbit}"
TOOLS="${ZC_TOOLS:-$HOME/.cache/zerocloud}"
export ZEROCLOUD_IMAGES="${ZEROCLOUD_IMAGES:-$TOOLS/images}"
[[ $(id -u) -eq 0 ]] || { echo "mapreduce.sh: needs root (network namespaces)" >&2; exit 1; }
command -v ip >/dev/null && command -v tc >/dev/null \
  || { echo "mapreduce.sh: needs iproute2 (ip, tc)" >&2; exit 1; }
cargo build --release -q --bin zerocloud --bin object-server
target/release/zerocloud image install python --images-dir "$ZEROCLOUD_IMAGES" >/dev/null

work="$(mktemp -d "${BENCH_TMPDIR:-/dev/shm}/zc-mapreduce.XXXXXX")"
ns="zcmr$$" host_if="zcmrh$$" client_if="zcmrc$$"
host_ip=10.203.0.1 client_ip=10.203.0.2
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  ip link del "$host_if" 2>/dev/null || true
  ip netns del "$ns" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# The client's side: a namespace reached through a rate-limited veth pair.
rate_limited_link "$ns" "$host_if" "$client_if" "$host_ip" "$client_ip" "$RATE"

# Three object servers with room for every session of the job at once in their
# cluster pools (a connected job runs all its sessions together or not at all).
cat >"$work/node.toml" <<EOF
[exec]
cluster_workers = $((N / 2 + 8))
EOF
nodes=()
for i in 0 1 2; do
  target/release/object-server --bind 127.0.0.1:0 --data-dir "$work/node$i" \
    --config "$work/node.toml" >"$work/node$i.log" 2>&1 &
  pids+=($!)
  nodes+=(--object-server "$(listening "$work/node$i.log" object-server)")
done
cat >"$work/proxy.toml" <<EOF
[zerocloud]
timeout = 120
EOF
target/release/zerocloud proxy --bind "$host_ip:0" --config "$work/proxy.toml" "${nodes[@]}" \
  >"$work/proxy.log" 2>&1 &
pids+=($!)
url="$(listening "$work/proxy.log" zerocloud)"

echo "mapreduce.sh: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg), $(git rev-parse --short HEAD 2>/dev/null || echo '?'); client link $RATE each way (tc tbf on a veth pair), proxy $url, 3 object servers"
python3 bench/mapreduce_client.py setup "$url" "$N" "$SIZE"
ip netns exec "$ns" python3 bench/mapreduce_client.py run "$url" "$N" "$client_if" "$(nproc)"
