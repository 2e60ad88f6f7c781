#!/usr/bin/env bash
# Start a small real OpenStack Swift cluster on one machine, for tests:
#   memcached, 1 account server, 1 container server (1-replica rings),
#   3 object servers object-server-1..3, each with its own port and device
#   (sdb1..sdb3, a 3-replica object ring, part power 10, min_part_hours 0),
#   a proxy with tempauth, the SAIO middlewares of ../shared/tools/swift-peer-up.sh
#   and list_endpoints (GET /endpoints/..., unauthenticated, before tempauth).
# No replicator/updater/auditor daemons run.
#
# Usage:
#   swift-cluster-up.sh                     start the cluster (or the missing
#                                           servers of a running one), wait
#                                           until an authenticated PUT/GET works
#   swift-cluster-up.sh --object-server N   (re)start object server N (1..3)
#                                           of a running cluster, e.g. after
#                                           swift-cluster-down.sh --object-server N
# Prints (stdout, one per line; progress goes to stderr):
#   AUTH_URL=http://127.0.0.1:<proxy port>/auth/v1.0
#   PROXY=http://127.0.0.1:<proxy port>
#   OBJECT_SERVER_1=127.0.0.1:<port> DEVICE=sdb1 DATA=<device dir>
#   OBJECT_SERVER_2=...  OBJECT_SERVER_3=...
#   ACCOUNT_SERVER=127.0.0.1:<port>  CONTAINER_SERVER=...  MEMCACHED=...
#   HOME=<state dir>
# (with --object-server N only the OBJECT_SERVER_N line). Users (tempauth):
# test:tester/testing (.admin), test:tester2/testing2, test:tester3/testing3,
# test2:tester2/testing2, test5:tester5/testing5 (service), admin:admin/admin.
#
# Env (all optional):
#   SWIFT_CLUSTER_HOME   state dir (default: a new mktemp -d dir, printed as
#                        HOME=; pass it to swift-cluster-down.sh). Holds
#                        etc/ run/ log/ srv/; see swift-cluster-lib.sh
#   SWIFT_CLUSTER_DATA   storage dir (default $SWIFT_CLUSTER_HOME/srv)
#   SWIFT_CLUSTER_TMPFS  auto|yes|no (default auto: mount a tmpfs on the data
#                        dir when root, else require the dir to hold Swift's
#                        xattrs); swift-cluster-down.sh unmounts it
#   SWIFT_CLUSTER_TMPFS_SIZE  (default 2g)
#   SWIFT_CLUSTER_BIND   (default 127.0.0.1)
#   SWIFT_CLUSTER_PROXY_PORT  SWIFT_CLUSTER_ACCOUNT_PORT
#   SWIFT_CLUSTER_CONTAINER_PORT  SWIFT_CLUSTER_MEMCACHED_PORT
#   SWIFT_CLUSTER_OBJECT_PORT_1 .. _3
#                        ports; each unset one gets a free port (bind to 0).
#                        A running cluster keeps the ports it started with
#                        (recorded in etc/ports.env); a restarted one reuses
#                        them when they are still free
#   SWIFT_CLUSTER_WORKERS  proxy workers (default 1; backends always 1)
#   SWIFT_CLUSTER_TIMEOUT  seconds to wait for the servers (default 90)
#   SHARED_TOOLS         dir with swift-install.sh (default ../shared/tools
#                        relative to the repository)
#   SWIFT_VENV / SWIFT_VERSION / SWIFT_SRC: see swift-install.sh
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source-path=SCRIPTDIR source=swift-cluster-lib.sh
. "$here/swift-cluster-lib.sh"
die() { echo "swift-cluster-up: ERROR: $*" >&2; exit 1; }
log() { echo "swift-cluster-up: $*" >&2; }

ONLY_OBJ=""
while (($#)); do
  case $1 in
    --object-server) sc_obj_arg "${2:-}"; ONLY_OBJ=$2; shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
done

command -v curl >/dev/null || die "curl not found"
SHARED_TOOLS="${SHARED_TOOLS:-$(cd "$here/../../.." && pwd)/shared/tools}"
export SWIFT_VENV="${SWIFT_VENV:-$HOME/.cache/zc-tools/swift-venv}"
BIN="$SWIFT_VENV/bin"
TMPFS="${SWIFT_CLUSTER_TMPFS:-auto}"
TMPFS_SIZE="${SWIFT_CLUSTER_TMPFS_SIZE:-2g}"
WORKERS="${SWIFT_CLUSTER_WORKERS:-1}"
TIMEOUT="${SWIFT_CLUSTER_TIMEOUT:-90}"
[[ $TMPFS =~ ^(auto|yes|no)$ ]] || die "SWIFT_CLUSTER_TMPFS must be auto, yes or no"
[[ $WORKERS =~ ^[0-9]+$ ]] || die "SWIFT_CLUSTER_WORKERS must be a number"
[[ $TIMEOUT =~ ^[0-9]+$ ]] || die "SWIFT_CLUSTER_TIMEOUT must be a number of seconds"

# ---- home ----------------------------------------------------------------------
if [[ -z ${SWIFT_CLUSTER_HOME:-} ]]; then
  [[ -z $ONLY_OBJ ]] || die "--object-server needs SWIFT_CLUSTER_HOME (the running cluster's home)"
  SWIFT_CLUSTER_HOME=$(mktemp -d "${TMPDIR:-/tmp}/zc-swift-cluster.XXXXXX") || die "mktemp failed"
  log "SWIFT_CLUSTER_HOME not set, using $SWIFT_CLUSTER_HOME (export it for swift-cluster-down.sh)"
fi
if [[ -n $ONLY_OBJ && ! -f $SWIFT_CLUSTER_HOME/$SC_MARKER ]]; then
  die "$SWIFT_CLUSTER_HOME is not a swift-cluster home; start the cluster first"
fi
mkdir -p "$SWIFT_CLUSTER_HOME" || die "cannot create $SWIFT_CLUSTER_HOME"
sc_paths "$(cd "$SWIFT_CLUSTER_HOME" && pwd -P)"
if [[ ! -f $H/$SC_MARKER ]]; then
  [[ -z $(ls -A "$H") ]] || die "$H is not empty and not a swift-cluster home (no $SC_MARKER); use an empty or new dir"
  echo "created by tests/swift/swift-cluster-up.sh" >"$H/$SC_MARKER"
fi
mkdir -p "$ETC" "$RUN" "$LOGD" "$DATA"

# ---- helpers ---------------------------------------------------------------------
port_of() {  # server name -> port (needs etc/ports.env loaded)
  case $1 in
    memcached) echo "$MEMCACHED_PORT" ;;
    account-server) echo "$ACCOUNT_PORT" ;;
    container-server) echo "$CONTAINER_PORT" ;;
    proxy-server) echo "$PROXY_PORT" ;;
    object-server-*) local v="OBJECT_PORT_${1#object-server-}"; echo "${!v}" ;;
  esac
}
port_busy() { (exec 3<>"/dev/tcp/$BIND/$1") 2>/dev/null; }
healthy() {  # name: answers on its port
  local p; p=$(port_of "$1")
  case $1 in
    memcached) port_busy "$p" ;;
    proxy-server) curl -sf -o /dev/null --max-time 3 "http://$BIND:$p/info" ;;
    *) curl -sf -o /dev/null --max-time 3 "http://$BIND:$p/healthcheck" ;;
  esac
}
start_server() {  # name; no-op if already running
  local name=$1 kind
  if sc_alive "$name"; then return 0; fi
  sc_stop "$name" || true  # leftovers (workers of a dead master), pid file
  port_busy "$(port_of "$name")" \
    && die "port $BIND:$(port_of "$name") for $name is taken by something else"
  if [[ $name == memcached ]]; then
    # -P is only honoured with -d, but puts this home in the command line
    # (swift-cluster-lib.sh: sc_ours)
    set -- "$(command -v memcached)" -l "$BIND" -p "$MEMCACHED_PORT" -U 0 -m 64 \
      -u "$(id -un)" -P "$RUN/memcached.mcpid"
  else
    kind=${name%%-*}
    set -- "$BIN/python" "$ETC/launch.py" "$ETC/swift.conf" "$kind" "$ETC/$name.conf" -v
  fi
  # own session: down signals the server and its workers by session id
  setsid "$@" >>"$LOGD/$name.log" 2>&1 </dev/null &
  echo $! >"$RUN/$name.pid"
  started+=("$name")
}
wait_healthy() {  # names...
  local deadline=$((SECONDS + TIMEOUT)) s pending
  while :; do
    pending=()
    for s in "$@"; do
      sc_alive "$s" || { tail -n 30 "$LOGD/$s.log" >&2; die "$s exited during start (log: $LOGD/$s.log)"; }
      healthy "$s" || pending+=("$s")
    done
    ((${#pending[@]} == 0)) && return 0
    ((SECONDS < deadline)) || die "not answering after ${TIMEOUT}s: ${pending[*]} (logs in $LOGD)"
    sleep 0.3
  done
}
obj_line() {  # n
  local v="OBJECT_PORT_$1"
  echo "OBJECT_SERVER_$1=$BIND:${!v} DEVICE=sdb$1 DATA=$DATA/obj$1/sdb$1"
}
load_ports() {
  [[ -f $ETC/ports.env ]] || die "no $ETC/ports.env: this cluster was never started (run swift-cluster-up.sh without --object-server)"
  # shellcheck source=/dev/null
  . "$ETC/ports.env"
}

started=()

# ---- one object server -------------------------------------------------------------
if [[ -n $ONLY_OBJ ]]; then
  load_ports
  [[ -f $ETC/object-server-$ONLY_OBJ.conf && -f $ETC/object.ring.gz ]] \
    || die "cluster in $H is not configured (run swift-cluster-up.sh first)"
  any=0
  for s in "${SC_SERVERS[@]}"; do sc_alive "$s" && any=1; done
  ((any)) || die "cluster in $H is down; start all of it with swift-cluster-up.sh"
  if [[ -f $RUN/tmpfs-mounted ]] && ! sc_mounted "$(cat "$RUN/tmpfs-mounted")"; then
    die "the data tmpfs of $H is no longer mounted; restart the whole cluster"
  fi
  mkdir -p "$DATA/obj$ONLY_OBJ/sdb$ONLY_OBJ"
  start_server "object-server-$ONLY_OBJ"
  if ((${#started[@]})); then log "starting object-server-$ONLY_OBJ"; else log "object-server-$ONLY_OBJ already running"; fi
  wait_healthy "object-server-$ONLY_OBJ"
  obj_line "$ONLY_OBJ"
  exit 0
fi

# ---- install (no-op when present) ---------------------------------------------------
[[ -x $SHARED_TOOLS/swift-install.sh ]] || die "no swift-install.sh in $SHARED_TOOLS (set SHARED_TOOLS)"
"$SHARED_TOOLS/swift-install.sh" >/dev/null || die "swift-install.sh failed"
[[ -x $BIN/swift-proxy-server && -x $BIN/swift-ring-builder ]] || die "no Swift in $BIN"
command -v memcached >/dev/null || die "memcached not found"

# ---- running already (fully or partly)? Then only start what is missing. -------------
active=0
for s in "${SC_SERVERS[@]}"; do sc_alive "$s" && active=1; done
if ((active)); then
  load_ports
  for v in PROXY ACCOUNT CONTAINER MEMCACHED OBJECT_PORT_1 OBJECT_PORT_2 OBJECT_PORT_3; do
    if [[ $v == OBJECT_* ]]; then e="SWIFT_CLUSTER_$v" r=$v; else e="SWIFT_CLUSTER_${v}_PORT" r="${v}_PORT"; fi
    if [[ -n ${!e:-} && ${!e} != "${!r}" ]]; then
      log "warning: cluster already running, ignoring $e=${!e} (keeps ${!r})"
    fi
  done
  if [[ -f $RUN/tmpfs-mounted ]] && ! sc_mounted "$(cat "$RUN/tmpfs-mounted")"; then
    die "servers of $H are running but its data tmpfs is gone; run swift-cluster-down.sh first"
  fi
else
  # ---- fresh start: ports ----------------------------------------------------------
  rm -f "$RUN"/*.pid
  BIND="${SWIFT_CLUSTER_BIND:-127.0.0.1}"
  declare -A want=(
    [PROXY_PORT]="${SWIFT_CLUSTER_PROXY_PORT:-}"
    [ACCOUNT_PORT]="${SWIFT_CLUSTER_ACCOUNT_PORT:-}"
    [CONTAINER_PORT]="${SWIFT_CLUSTER_CONTAINER_PORT:-}"
    [MEMCACHED_PORT]="${SWIFT_CLUSTER_MEMCACHED_PORT:-}"
    [OBJECT_PORT_1]="${SWIFT_CLUSTER_OBJECT_PORT_1:-}"
    [OBJECT_PORT_2]="${SWIFT_CLUSTER_OBJECT_PORT_2:-}"
    [OBJECT_PORT_3]="${SWIFT_CLUSTER_OBJECT_PORT_3:-}"
  )
  for k in "${!want[@]}"; do
    p=${want[$k]}
    [[ -z $p ]] && continue
    if ! [[ $p =~ ^[0-9]+$ ]] || ((p < 1 || p > 65535)); then die "bad port for $k: '$p'"; fi
    port_busy "$p" && die "port $BIND:$p ($k) is already in use"
  done
  # reuse the ports of a previous run of this home when all of them are free
  if [[ -f $ETC/ports.env ]]; then
    declare -A old=()
    while IFS='=' read -r k v; do [[ -n ${want[$k]+x} ]] && old[$k]=$v; done <"$ETC/ports.env"
    reuse=1
    for k in "${!want[@]}"; do
      [[ -n ${want[$k]} ]] && continue
      if [[ -z ${old[$k]:-} ]] || port_busy "${old[$k]}"; then reuse=0; fi
    done
    if ((reuse)); then
      for k in "${!want[@]}"; do [[ -n ${want[$k]} ]] || want[$k]=${old[$k]}; done
    fi
  fi
  missing=0
  for k in "${!want[@]}"; do [[ -n ${want[$k]} ]] || missing=$((missing + 1)); done
  if ((missing)); then
    # hold all sockets at once so the free ports are distinct
    read -r -a free < <("$BIN/python" - "$BIND" "$missing" <<'PY'
import socket, sys
ss = [socket.socket() for _ in range(int(sys.argv[2]))]
for s in ss:
    s.bind((sys.argv[1], 0))
print(" ".join(str(s.getsockname()[1]) for s in ss))
PY
    ) || die "cannot pick free ports on $BIND"
    ((${#free[@]} == missing)) || die "cannot pick free ports on $BIND"
    i=0
    for k in "${!want[@]}"; do
      [[ -n ${want[$k]} ]] && continue
      want[$k]=${free[$i]}; i=$((i + 1))
    done
  fi
  {
    echo "BIND=$BIND"
    for k in PROXY_PORT ACCOUNT_PORT CONTAINER_PORT MEMCACHED_PORT OBJECT_PORT_1 OBJECT_PORT_2 OBJECT_PORT_3; do
      echo "$k=${want[$k]}"
    done
  } >"$ETC/ports.env"
  load_ports
  dups=$(grep '_PORT' "$ETC/ports.env" | cut -d= -f2 | sort | uniq -d)
  [[ -z $dups ]] || die "the same port is given to two servers: $dups"

  # ---- storage: tmpfs (root) + xattr check -------------------------------------------
  xattr_probe() {  # Swift stores metadata as 254-byte xattr chunks; try ~6 KiB
    "$BIN/python" - "$1" <<'PY'
import os, sys, xattr
p = os.path.join(sys.argv[1], '.xattr-probe')
open(p, 'w').close()
try:
    blob = b'x' * 6000
    for i in range(0, len(blob), 254):
        xattr.setxattr(p, 'user.swift.metadata%s' % (i // 254 or ''), blob[i:i + 254])
finally:
    os.unlink(p)
PY
  }
  ddir=$(cd "$DATA" && pwd -P)
  if ! sc_mounted "$ddir"; then
    if [[ $TMPFS == yes ]] || [[ $TMPFS == auto && $(id -u) == 0 ]]; then
      [[ $(id -u) == 0 ]] || die "SWIFT_CLUSTER_TMPFS=yes needs root (mount -t tmpfs)"
      mount -t tmpfs -o "size=$TMPFS_SIZE,mode=0755" zc-swift-cluster "$ddir" \
        || die "tmpfs mount on $ddir failed; set SWIFT_CLUSTER_TMPFS=no and SWIFT_CLUSTER_DATA to a dir on tmpfs/xfs"
      echo "$ddir" >"$RUN/tmpfs-mounted"
      log "mounted a tmpfs (size $TMPFS_SIZE) on $ddir (data is lost on down)"
    fi
  elif [[ ! -f $RUN/tmpfs-mounted ]] && awk -v d="$ddir" '$2==d && $1=="zc-swift-cluster"{f=1} END{exit !f}' /proc/mounts; then
    echo "$ddir" >"$RUN/tmpfs-mounted"  # ours from a run whose record was lost
  fi
  xattr_probe "$ddir" 2>/dev/null \
    || die "$ddir cannot hold Swift's xattrs (need >4 KiB of user xattrs per file); run as root (tmpfs) or set SWIFT_CLUSTER_DATA to a dir on tmpfs/xfs"
  mkdir -p "$DATA/acct/sda1"
  for n in $(seq "$SC_NOBJ"); do mkdir -p "$DATA/obj$n/sdb$n"; done

  # ---- swift.conf + rings ---------------------------------------------------------
  cat >"$ETC/swift.conf" <<EOF
[swift-hash]
swift_hash_path_prefix = zc-cluster-prefix
swift_hash_path_suffix = zc-cluster-suffix

[storage-policy:0]
name = gold
policy_type = replication
default = yes
EOF
  build_ring() {  # name replicas dev...
    local b="$ETC/$1.builder" ring="$ETC/$1.ring.gz" reps=$2 rc=0; shift 2
    rm -f "$b" "$ring"
    "$BIN/swift-ring-builder" "$b" create 10 "$reps" 0 >/dev/null || die "ring create $b failed"
    local args=() d
    for d in "$@"; do args+=("$d" 1); done
    "$BIN/swift-ring-builder" "$b" add "${args[@]}" >/dev/null || die "ring add to $b failed"
    "$BIN/swift-ring-builder" "$b" rebalance >/dev/null 2>&1 || rc=$?
    ((rc <= 1)) || die "ring rebalance of $b failed (rc=$rc)"
    [[ -f $ring ]] || die "ring $ring not written"
  }
  build_ring account 1 "r1z1-$BIND:$ACCOUNT_PORT/sda1"
  build_ring container 1 "r1z1-$BIND:$CONTAINER_PORT/sda1"
  objdevs=()
  for n in $(seq "$SC_NOBJ"); do
    v="OBJECT_PORT_$n"; objdevs+=("r1z$n-$BIND:${!v}/sdb$n")
  done
  build_ring object "$SC_NOBJ" "${objdevs[@]}"
  rm -rf "$ETC/backups"

  # ---- server configs -------------------------------------------------------------
  common_default() {  # port workers devices log_name
    cat <<EOF
[DEFAULT]
swift_dir = $ETC
devices = $3
mount_check = false
disable_fallocate = true
bind_ip = $BIND
bind_port = $1
workers = $2
user = $(id -un)
recon_cache_path = $RUN
log_name = $4
log_level = INFO
EOF
  }
  backend_conf() {  # kind port devices log_name
    common_default "$2" 1 "$3" "$4"
    cat <<EOF

[pipeline:main]
pipeline = healthcheck recon $1-server

[app:$1-server]
use = egg:swift#$1
EOF
    [[ $1 == container ]] && echo "allow_versions = true"
    cat <<EOF

[filter:recon]
use = egg:swift#recon

[filter:healthcheck]
use = egg:swift#healthcheck
EOF
  }
  backend_conf account "$ACCOUNT_PORT" "$DATA/acct" account-server >"$ETC/account-server.conf"
  backend_conf container "$CONTAINER_PORT" "$DATA/acct" container-server >"$ETC/container-server.conf"
  for n in $(seq "$SC_NOBJ"); do
    v="OBJECT_PORT_$n"
    backend_conf object "${!v}" "$DATA/obj$n" "object-server-$n" >"$ETC/object-server-$n.conf"
  done

  cat >"$ETC/proxy-server.conf" <<EOF
$(common_default "$PROXY_PORT" "$WORKERS" "$DATA/acct" proxy-server)

[pipeline:main]
# swift-peer-up.sh's SAIO pipeline (minus container_sync and s3api) plus
# list-endpoints, placed before the auth middleware as Swift's docs do
pipeline = catch_errors gatekeeper healthcheck proxy-logging cache etag-quoter listing_formats bulk tempurl ratelimit crossdomain list-endpoints tempauth staticweb copy container-quotas account-quotas slo dlo versioned_writes symlink proxy-logging proxy-server

[filter:catch_errors]
use = egg:swift#catch_errors
[filter:gatekeeper]
use = egg:swift#gatekeeper
[filter:healthcheck]
use = egg:swift#healthcheck
[filter:proxy-logging]
use = egg:swift#proxy_logging
[filter:cache]
use = egg:swift#memcache
memcache_servers = $BIND:$MEMCACHED_PORT
[filter:etag-quoter]
use = egg:swift#etag_quoter
enable_by_default = false
[filter:listing_formats]
use = egg:swift#listing_formats
[filter:bulk]
use = egg:swift#bulk
[filter:tempurl]
use = egg:swift#tempurl
[filter:ratelimit]
use = egg:swift#ratelimit
[filter:crossdomain]
use = egg:swift#crossdomain
[filter:list-endpoints]
use = egg:swift#list_endpoints
list_endpoints_path = /endpoints/
[filter:staticweb]
use = egg:swift#staticweb
[filter:copy]
use = egg:swift#copy
[filter:container-quotas]
use = egg:swift#container_quotas
[filter:account-quotas]
use = egg:swift#account_quotas
[filter:slo]
use = egg:swift#slo
[filter:dlo]
use = egg:swift#dlo
[filter:versioned_writes]
use = egg:swift#versioned_writes
allow_versioned_writes = true
allow_object_versioning = true
[filter:symlink]
use = egg:swift#symlink

[filter:tempauth]
use = egg:swift#tempauth
# the users of Swift's functional tests (test/sample.conf), as swift-peer-up.sh
reseller_prefix = AUTH, SERVICE
SERVICE_require_group = service
user_admin_admin = admin .admin .reseller_admin
user_admin_auditor = admin_ro .reseller_reader
user_test_tester = testing .admin
user_test_tester2 = testing2 .admin
user_test_tester3 = testing3
user_test2_tester2 = testing2 .admin
user_test5_tester5 = testing5 service

[app:proxy-server]
use = egg:swift#proxy
allow_account_management = true
account_autocreate = true
EOF

  # Swift reads storage policies and constraints from the fixed path
  # /etc/swift/swift.conf at import time (swift_dir only moves rings and the
  # hash prefix), so point it at our swift.conf before the server module runs
  # (the same launcher as swift-peer-up.sh).
  cat >"$ETC/launch.py" <<'EOF'
import importlib, sys
from swift.common import utils
utils.SWIFT_CONF_FILE = sys.argv[1]
from swift.common import storage_policy, constraints
storage_policy.reload_storage_policies()
constraints.reload_constraints()
mod = importlib.import_module(
    'swift.%s.server' % {'object': 'obj'}.get(sys.argv[2], sys.argv[2]))
sys.argv = ['swift-%s-server' % sys.argv[2]] + sys.argv[3:]
sys.exit(mod.main())
EOF
fi

# ---- start whatever is not running ------------------------------------------------------
for s in "${SC_SERVERS[@]}"; do start_server "$s"; done
if ((${#started[@]})); then log "starting: ${started[*]}"; else log "already running (pids in $RUN)"; fi
wait_healthy "${SC_SERVERS[@]}"

# ---- authenticated round trip (cleaned up afterwards) -----------------------------------
PROXY="http://$BIND:$PROXY_PORT"
AUTH_URL="$PROXY/auth/v1.0"
hdrs=$(curl -sf -o /dev/null -D - --max-time 10 -H 'X-Auth-User: test:tester' \
       -H 'X-Auth-Key: testing' "$AUTH_URL" | tr -d '\r') \
  || die "tempauth login test:tester failed (logs in $LOGD)"
tok=$(awk -F': ' 'tolower($1)=="x-auth-token"{print $2}' <<<"$hdrs")
surl=$(awk -F': ' 'tolower($1)=="x-storage-url"{print $2}' <<<"$hdrs")
[[ -n $tok && -n $surl ]] || die "tempauth login gave no token/storage URL (logs in $LOGD)"
cont="zc-cluster-check-$$"
body="zc-swift-cluster check $RANDOM"
req() { curl -sS -o /dev/null -w '%{http_code}' --max-time 20 -H "X-Auth-Token: $tok" "$@"; }
code=$(req -X PUT "$surl/$cont") || true
[[ $code == 20? ]] || die "PUT container $surl/$cont answered '$code' (logs in $LOGD)"
code=$(req -X PUT --data-binary "$body" "$surl/$cont/o") || true
[[ $code == 201 ]] || die "PUT object $surl/$cont/o answered '$code' (logs in $LOGD)"
got=$(curl -sf --max-time 20 -H "X-Auth-Token: $tok" "$surl/$cont/o") || die "GET $surl/$cont/o failed"
[[ $got == "$body" ]] || die "GET $surl/$cont/o returned other bytes than were PUT"
neps=$(curl -sf --max-time 10 "$PROXY/endpoints/v2/${surl##*/}/$cont/o" \
       | "$BIN/python" -c 'import json,sys; print(len(json.load(sys.stdin)["endpoints"]))') \
  || die "list_endpoints ($PROXY/endpoints/) does not answer"
[[ $neps == "$SC_NOBJ" ]] || die "list_endpoints gave $neps endpoints, expected $SC_NOBJ"
req -X DELETE "$surl/$cont/o" >/dev/null || true
for _ in 1 2 3 4 5; do
  code=$(req -X DELETE "$surl/$cont") || true
  [[ $code == 204 || $code == 404 ]] && break
  sleep 0.5
done
[[ $code == 204 || $code == 404 ]] || log "warning: could not delete check container $cont ($code)"

log "up: proxy $PROXY_PORT, account $ACCOUNT_PORT, container $CONTAINER_PORT, objects $OBJECT_PORT_1 $OBJECT_PORT_2 $OBJECT_PORT_3, memcached $MEMCACHED_PORT"
log "pids in $RUN, logs in $LOGD, data in $DATA; stop: SWIFT_CLUSTER_HOME=$H $here/swift-cluster-down.sh"
out=$(
  echo "AUTH_URL=$AUTH_URL"
  echo "PROXY=$PROXY"
  for n in $(seq "$SC_NOBJ"); do obj_line "$n"; done
  echo "ACCOUNT_SERVER=$BIND:$ACCOUNT_PORT"
  echo "CONTAINER_SERVER=$BIND:$CONTAINER_PORT"
  echo "MEMCACHED=$BIND:$MEMCACHED_PORT"
  echo "HOME=$H"
)
echo "$out" >"$RUN/cluster.env"
echo "$out"
