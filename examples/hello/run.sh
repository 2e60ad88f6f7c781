#!/usr/bin/env bash
# The seed tutorial's first two ways to run code on ZeroCloud (docs §3.3.2,
# §3.3.3): POST a Python script, then POST a ZeroVM image (a tar with
# boot/system.map, main.py and mymath.py). Usage: examples/hello/run.sh
# Server and user: ST_AUTH, ST_USER, ST_KEY (as zpm and the swift CLI).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
name=hello
# shellcheck source=../lib.sh
. "$here/../lib.sh"

login

step "POST the Python script 'example' (Content-Type: application/python)"
req POST "$STORAGE_URL" -H 'X-Zerovm-Execute: 1.0' \
    -H 'Content-Type: application/python' --data-binary "@$here/example"

step "POST a ZeroVM image: example.tar = boot/system.map main.py mymath.py"
(cd "$here" && tar cf "$work/example.tar" boot/system.map main.py mymath.py)
req POST "$STORAGE_URL" -H 'X-Zerovm-Execute: 1.0' \
    -H 'Content-Type: application/x-tar' --data-binary "@$work/example.tar"
