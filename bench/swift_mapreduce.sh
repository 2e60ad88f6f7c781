#!/usr/bin/env bash
# swift_mapreduce.sh: the seed's MapReduce wordcount on the OpenStack Swift backend, data-local
# versus every input streamed from Swift. A real Swift (tests/swift/swift-cluster-up.sh: 3 object
# servers, 3 replicas) and an exec agent beside each object server run on the host; our proxy runs
# in a network namespace behind a veth pair limited to BENCH_MR_RATE (1gbit) each way by `tc`
# (tbf): the link between the front host and the storage nodes. Two proxies, same Swift, same
# agents: "local" maps each agent to its object server (each map session runs beside a replica of
# its input and reads it on the storage node), "streamed" maps the agents to an object server that
# does not exist (no agent beside any replica: our proxy reads every input through the Swift
# proxy and sends it to an agent, both across the link). BENCH_MR_OBJECTS (30) inputs of
# BENCH_MR_SIZE (4 MiB); each job runs once cold, then BENCH_MR_RUNS (3) times. Prints seconds and
# bytes over the link per job. Needs root (ip netns), iproute2, Swift (swift-install.sh).
# Creates and removes the namespace, the veth pair, the cluster and a work dir under BENCH_TMPDIR
# (/dev/shm); stops what it started by pid. Never asserts on time; exits non-zero if a job failed
# or the counts differ.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
# shellcheck source=lib.sh
. bench/lib.sh
N="${BENCH_MR_OBJECTS:-30}" SIZE="${BENCH_MR_SIZE:-4194304}" RATE="${BENCH_MR_RATE:-1gbit}"
RUNS="${BENCH_MR_RUNS:-3}"
TOOLS="${ZC_TOOLS:-$HOME/.cache/zerocloud}"
export ZEROCLOUD_IMAGES="${ZEROCLOUD_IMAGES:-$TOOLS/images}"
export SHARED_TOOLS="${SHARED_TOOLS:-$(dirname "$repo")/shared/tools}"
[[ $(id -u) -eq 0 ]] || { echo "swift_mapreduce.sh: needs root (network namespaces)" >&2; exit 1; }
command -v ip >/dev/null && command -v tc >/dev/null \
  || { echo "swift_mapreduce.sh: needs iproute2 (ip, tc)" >&2; exit 1; }
cargo build --release -q --bin zerocloud --bin object-server
target/release/zerocloud image install python --images-dir "$ZEROCLOUD_IMAGES" >/dev/null

work="$(mktemp -d "${BENCH_TMPDIR:-/dev/shm}/zc-swift-mr.XXXXXX")"
ns="zcsw$$" host_if="zcswh$$" front_if="zcswf$$"
host_ip=10.204.0.1 front_ip=10.204.0.2
pids=()
cluster_up=0
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  if ((cluster_up)); then
    SWIFT_CLUSTER_HOME="$work/swift" tests/swift/swift-cluster-down.sh >/dev/null 2>&1 || true
  fi
  ip link del "$host_if" 2>/dev/null || true
  ip netns del "$ns" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# The front host: a namespace reached through a rate-limited veth pair.
rate_limited_link "$ns" "$host_if" "$front_if" "$host_ip" "$front_ip" "$RATE"

# Swift on the host side of the link.
mkdir -p "$work/swift"
cluster_up=1
out="$(SWIFT_CLUSTER_HOME="$work/swift" SWIFT_CLUSTER_BIND="$host_ip" tests/swift/swift-cluster-up.sh)"
swift_proxy="$(sed -n 's/^PROXY=//p' <<<"$out")"
mapfile -t object_servers < <(sed -n 's/^OBJECT_SERVER_[0-9]=\([^ ]*\).*/\1/p' <<<"$out")

# An agent beside each object server, with room for every session of the job at once.
local_agents=() streamed_agents=()
for i in 0 1 2; do
  cat >"$work/agent$i.toml" <<EOF
[exec]
cluster_workers = $((N / 2 + 8))
network_host = "$host_ip"
swift_object_server = "${object_servers[$i]}"
EOF
  target/release/object-server --bind "$host_ip:0" --data-dir "$work/agent$i" \
    --config "$work/agent$i.toml" >"$work/agent$i.log" 2>&1 &
  pids+=($!)
  agent="$(listening "$work/agent$i.log" object-server)"
  local_agents+=(--swift-agent "$agent=${object_servers[$i]}")
  streamed_agents+=(--swift-agent "$agent=$host_ip:9")
done
cat >"$work/proxy.toml" <<EOF
[zerocloud]
timeout = 300
EOF
front() {  # label, agent flags...
  local label=$1; shift
  ip netns exec "$ns" target/release/zerocloud proxy --bind "$front_ip:0" --config "$work/proxy.toml" \
    --swift-proxy "$swift_proxy" "$@" >"$work/front-$label.log" 2>&1 &
  pids+=($!)
  listening "$work/front-$label.log" zerocloud
}
local_url="$(front local "${local_agents[@]}")"
streamed_url="$(front streamed "${streamed_agents[@]}")"

echo "swift_mapreduce.sh: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg), $(git rev-parse --short HEAD 2>/dev/null || echo '?'); front link $RATE each way (tc tbf on a veth pair); Swift 3 object servers, 3 replicas; $N inputs of $SIZE bytes"
python3 bench/mapreduce_client.py setup "$swift_proxy" "$N" "$SIZE"
python3 bench/mapreduce_client.py job local "$local_url" "$N" "$host_if" "$RUNS" | tee "$work/local.txt"
python3 bench/mapreduce_client.py job streamed "$streamed_url" "$N" "$host_if" "$RUNS" | tee "$work/streamed.txt"
a="$(sed -n 's/^total words //p' "$work/local.txt")" b="$(sed -n 's/^total words //p' "$work/streamed.txt")"
[[ -n $a && $a == "$b" ]] || { echo "swift_mapreduce.sh: the counts differ: $a vs $b" >&2; exit 1; }
