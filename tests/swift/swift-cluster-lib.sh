# shellcheck shell=bash disable=SC2034  # variables are used by the sourcing scripts
# Shared helpers for swift-cluster-up.sh / swift-cluster-down.sh (sourced,
# not run). Layout of a cluster home ($SWIFT_CLUSTER_HOME):
#   zc-swift-cluster.home  marker: this dir belongs to these scripts
#   etc/   swift.conf, rings, *-server.conf, ports.env, launch.py
#   run/   <server>.pid, tmpfs-mounted, recon cache
#   log/   <server>.log (stdout/stderr of each server, Swift logs with -v)
#   srv/   data (a tmpfs when root): acct/sda1 (account+container),
#          obj1/sdb1, obj2/sdb2, obj3/sdb3 (one devices root per object server)

SC_MARKER=zc-swift-cluster.home
SC_NOBJ=3
# start order; stop order is the reverse
SC_SERVERS=(memcached account-server container-server object-server-1
            object-server-2 object-server-3 proxy-server)

sc_paths() {  # home
  H=$1
  ETC="$H/etc"; RUN="$H/run"; LOGD="$H/log"
  DATA="${SWIFT_CLUSTER_DATA:-$H/srv}"
}

# live (non-zombie) processes whose session id is $1 (a server and its
# workers; the session leader is the server, so its pid is the session id).
# Zombies count as gone: an exited server is reaped only when its parent
# (init or a subreaper) gets to it, which can take a second.
sc_session_pids() { ps -e -o pid=,sid=,stat= | awk -v s="$1" '$2==s && $3!~/^Z/{print $1}'; }

# Is pid $2 the server $1 this home started (guards against pid reuse)?
# Every server's command line names a file under this home.
sc_ours() {
  local cmd
  [[ $2 =~ ^[0-9]+$ ]] || return 1
  cmd=$(tr '\0' ' ' 2>/dev/null <"/proc/$2/cmdline") || return 1
  case $1 in
    memcached) [[ $cmd == *memcached*" $RUN/memcached.mcpid "* ]] ;;
    *)         [[ $cmd == *" $ETC/$1.conf "* ]] ;;
  esac
}

sc_pid() { local f="$RUN/$1.pid"; [[ -f $f ]] && cat "$f"; }
sc_alive() { local p; p=$(sc_pid "$1") && sc_ours "$1" "$p"; }

sc_stop() {  # name -> 0 if it was running and is now stopped, 1 if not running
  local name=$1 pid pids left p
  pid=$(sc_pid "$name") || return 1
  [[ $pid =~ ^[0-9]+$ ]] || { rm -f "$RUN/$name.pid"; return 1; }
  # the server and its workers (also the workers of a master that died)
  pids=$(for p in $(sc_session_pids "$pid"); do if sc_ours "$name" "$p"; then echo "$p"; fi; done)
  if [[ -z $pids ]]; then rm -f "$RUN/$name.pid"; return 1; fi
  # shellcheck disable=SC2086  # word splitting of the pid list is intended
  kill -TERM $pids 2>/dev/null || true
  for _ in $(seq 100); do
    left=$(sc_session_pids "$pid")
    [[ -z $left ]] && break
    sleep 0.1
  done
  if [[ -n $left ]]; then
    # shellcheck disable=SC2086
    kill -KILL $left 2>/dev/null || true
    echo "swift-cluster: $name (pid $pid) needed SIGKILL" >&2
  fi
  rm -f "$RUN/$name.pid"
  return 0
}

sc_mounted() { awk -v d="$1" '$2==d{f=1} END{exit !f}' /proc/mounts; }

sc_obj_arg() {  # validate the N of --object-server N
  if ! [[ ${1:-} =~ ^[1-9][0-9]*$ ]] || (($1 > SC_NOBJ)); then
    echo "swift-cluster: ERROR: --object-server needs a number 1..$SC_NOBJ (got '${1:-}')" >&2
    exit 2
  fi
}
