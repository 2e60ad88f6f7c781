#!/usr/bin/env bash
# The seed tutorial's "Run a ZeroVM application with an object GET" (docs
# §3.3.5): prettyprint.py registered in .zvm for application/json objects
# runs when data.json is read with X-Zerovm-Execute: open/1.0 (or through
# the /open/ URL).
# Usage: examples/prettyprint/run.sh
# Server and user: ST_AUTH, ST_USER, ST_KEY (as zpm and the swift CLI).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
name=prettyprint
# shellcheck source=../lib.sh
. "$here/../lib.sh"

login

step "upload the test data (swift post example; swift upload example data.json)"
req PUT "$STORAGE_URL/example" >/dev/null
req PUT "$STORAGE_URL/example/data.json" -H 'Content-Type: application/json' \
    -T "$here/data.json" >/dev/null

step "bundle and upload the application (swift upload example prettyprint.tar)"
(cd "$here" && tar cf "$work/prettyprint.tar" prettyprint.py)
req PUT "$STORAGE_URL/example/prettyprint.tar" -T "$work/prettyprint.tar" >/dev/null

step "register it for application/json (swift upload .zvm config --object-name=application/json/config)"
req PUT "$STORAGE_URL/.zvm" >/dev/null
req PUT "$STORAGE_URL/.zvm/application/json/config" -T "$here/config" >/dev/null

step "GET example/data.json: the raw object"
req GET "$STORAGE_URL/example/data.json"

step "GET example/data.json with X-Zerovm-Execute: open/1.0: run through prettyprint.py"
req GET "$STORAGE_URL/example/data.json" -H 'X-Zerovm-Execute: open/1.0'

open_url=${STORAGE_URL/\/v1\///open/}
[[ $open_url != "$STORAGE_URL" ]] || die "storage URL $STORAGE_URL has no /v1/ to make the /open/ URL from"
step "the same through the /open/ URL: GET $open_url/example/data.json"
req GET "$open_url/example/data.json"
