#!/usr/bin/env bash
# Compiles the C guests (sandbox/guests/*.c) to wasm with clang + Debian's
# wasi-libc, with the flags sandbox/tests/c_guests.rs uses (tests/common/mod.rs),
# and, with --native, also to static native executables with gcc (for benchmarks).
# Usage: sandbox/build-guests.sh OUT_DIR [--native]
# Env: WASM_CC (clang), WASM_TARGET (wasm32-wasi), WASI_SYSROOT (clang's default),
#      NATIVE_CC (gcc).
# Needs: apt-get install -y clang lld wasi-libc libclang-rt-14-dev-wasm32
set -euo pipefail
src="$(cd "$(dirname "${BASH_SOURCE[0]}")/guests" && pwd)"
out="${1:?usage: $0 OUT_DIR [--native]}"
native="${2:-}"
mkdir -p "$out"
cc="${WASM_CC:-clang}"
flags=(--target="${WASM_TARGET:-wasm32-wasi}" -O2 -Wall -Wextra -Werror)
[[ -n ${WASI_SYSROOT:-} ]] && flags+=(--sysroot "$WASI_SYSROOT")
command -v "$cc" >/dev/null || {
  echo "build-guests.sh: $cc not found; run scripts/test.sh or apt-get install -y clang lld wasi-libc libclang-rt-14-dev-wasm32" >&2
  exit 1
}
for c in "$src"/*.c; do
  stem="$(basename "$c" .c)"
  "$cc" "${flags[@]}" -o "$out/$stem.wasm" "$c"
  if [[ $native == --native ]]; then
    "${NATIVE_CC:-gcc}" -O2 -static -o "$out/$stem.native" "$c"
  fi
done
echo "build-guests.sh: $(ls "$out" | wc -l) files in $out" >&2
