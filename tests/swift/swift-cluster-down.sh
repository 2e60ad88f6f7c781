#!/usr/bin/env bash
# Stop a Swift cluster started by swift-cluster-up.sh: signals exactly the pids
# it recorded in $SWIFT_CLUSTER_HOME/run (each server runs in its own session,
# so its worker children, which share that session id, are ended too; a pid
# whose command line does not name this home is left alone), then unmounts the
# data tmpfs if up mounted one. Safe to run again (and on a home that is gone).
#
# Usage:
#   swift-cluster-down.sh                     stop everything, unmount the tmpfs
#                                             (its data is lost); etc/ and log/ stay
#   swift-cluster-down.sh --wipe              the same, then delete the home dir
#                                             (only if it carries up's marker file)
#   swift-cluster-down.sh --object-server N   stop only object server N (1..3);
#                                             restart it with
#                                             swift-cluster-up.sh --object-server N
# Env:
#   SWIFT_CLUSTER_HOME  (required) the home given to / printed by swift-cluster-up.sh
#   SWIFT_CLUSTER_KEEP_TMPFS=1  leave the tmpfs (and its data) mounted
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source-path=SCRIPTDIR source=swift-cluster-lib.sh
. "$here/swift-cluster-lib.sh"
die() { echo "swift-cluster-down: ERROR: $*" >&2; exit 1; }
log() { echo "swift-cluster-down: $*" >&2; }

ONLY_OBJ="" WIPE=0
while (($#)); do
  case $1 in
    --object-server) sc_obj_arg "${2:-}"; ONLY_OBJ=$2; shift 2 ;;
    --wipe) WIPE=1; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
done
[[ -n ${SWIFT_CLUSTER_HOME:-} ]] || die "SWIFT_CLUSTER_HOME is required (the HOME= line printed by swift-cluster-up.sh)"
if [[ ! -d $SWIFT_CLUSTER_HOME ]]; then
  log "$SWIFT_CLUSTER_HOME does not exist, nothing to stop"
  exit 0
fi
sc_paths "$(cd "$SWIFT_CLUSTER_HOME" && pwd -P)"
[[ -f $H/$SC_MARKER ]] || die "$H is not a swift-cluster home (no $SC_MARKER)"

if [[ -n $ONLY_OBJ ]]; then
  if sc_stop "object-server-$ONLY_OBJ"; then
    log "stopped object-server-$ONLY_OBJ"
  else
    log "object-server-$ONLY_OBJ was not running"
  fi
  exit 0
fi

stopped=0
for ((i = ${#SC_SERVERS[@]} - 1; i >= 0; i--)); do
  s=${SC_SERVERS[$i]}
  if sc_stop "$s"; then log "stopped $s"; stopped=$((stopped + 1)); fi
done

if [[ -f $RUN/tmpfs-mounted && ${SWIFT_CLUSTER_KEEP_TMPFS:-0} != 1 ]]; then
  mnt=$(cat "$RUN/tmpfs-mounted")
  if [[ -n $mnt ]] && sc_mounted "$mnt"; then
    umount "$mnt" || die "cannot unmount the tmpfs on $mnt (busy? see: fuser -vm $mnt)"
    log "unmounted tmpfs $mnt"
  fi
  rm -f "$RUN/tmpfs-mounted"
fi
rm -f "$RUN/cluster.env" "$RUN/memcached.mcpid"

if ((WIPE)); then
  if [[ -f $RUN/tmpfs-mounted ]] && sc_mounted "$(cat "$RUN/tmpfs-mounted")"; then
    die "not wiping $H: its tmpfs is still mounted (SWIFT_CLUSTER_KEEP_TMPFS=1?)"
  fi
  rm -rf --one-file-system -- "$H"
  log "removed $H"
fi
log "done ($stopped server(s) stopped)"
