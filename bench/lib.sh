# Shared by the benchmarks that put part of the system behind a slow link
# (mapreduce.sh, swift_mapreduce.sh); source it.

# rate_limited_link NS HOST_IF PEER_IF HOST_IP PEER_IP RATE: a network namespace NS
# reached from the host through a veth pair (HOST_IF here with HOST_IP, PEER_IF in NS
# with PEER_IP, both /24), limited to RATE each way by `tc` (tbf). The caller removes
# it (ip link del HOST_IF; ip netns del NS).
rate_limited_link() {
  local ns=$1 host_if=$2 peer_if=$3 host_ip=$4 peer_ip=$5 rate=$6
  ip netns add "$ns"
  ip link add "$host_if" type veth peer name "$peer_if"
  ip link set "$peer_if" netns "$ns"
  ip addr add "$host_ip/24" dev "$host_if"
  ip link set "$host_if" up
  ip -n "$ns" addr add "$peer_ip/24" dev "$peer_if"
  ip -n "$ns" link set "$peer_if" up
  ip -n "$ns" link set lo up
  tc qdisc add dev "$host_if" root tbf rate "$rate" burst 256kb latency 50ms
  ip netns exec "$ns" tc qdisc add dev "$peer_if" root tbf rate "$rate" burst 256kb latency 50ms
}

# listening FILE WHAT: waits for `WHAT listening on ADDR` in FILE (a server's output)
# and prints ADDR; shows FILE and exits if it does not come.
listening() {
  local file=$1 what=$2
  for _ in $(seq 1 200); do
    if grep -q "$what listening on" "$file" 2>/dev/null; then
      grep -m1 "$what listening on" "$file" | awk '{print $NF}'
      return
    fi
    sleep 0.05
  done
  echo "$(basename "$0"): $what did not start; its output:" >&2
  cat "$file" >&2
  exit 1
}
