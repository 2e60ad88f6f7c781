#!/usr/bin/env bash
# The seed tutorial's "Run a ZeroVM application with an object GET" (docs
# §3.3.5): prettyprint.py registered in .zvm for application/json objects
# runs when data.json is read with X-Zerovm-Execute: open/1.0 (or through
# the /open/ URL).
# Usage: examples/prettyprint/run.sh
# Server and user: ST_AUTH, ST_USER, ST_KEY (as zpm and the swift CLI).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export ST_AUTH=${ST_AUTH:-http://127.0.0.1:8080/auth/v1.0}
export ST_USER=${ST_USER:-test:tester}
export ST_KEY=${ST_KEY:-testing}

step() { printf '==> %s\n' "$*" >&2; }
die() { printf 'examples/prettyprint: error: %s\n' "$*" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# login: sets TOKEN and STORAGE_URL from the auth answer's headers.
login() {
    local code
    code=$(curl -sS -o /dev/null -D "$work/auth" -w '%{http_code}' \
        -H "X-Auth-User: $ST_USER" -H "X-Auth-Key: $ST_KEY" "$ST_AUTH") ||
        die "no answer from $ST_AUTH (is \`zerocloud up\` running? set ST_AUTH)"
    [[ $code == 2?? ]] || die "auth as $ST_USER at $ST_AUTH: HTTP $code"
    TOKEN=$(awk -F': ' 'tolower($1)=="x-auth-token" {print $2}' "$work/auth" | tr -d '\r')
    STORAGE_URL=$(awk -F': ' 'tolower($1)=="x-storage-url" {print $2}' "$work/auth" | tr -d '\r')
    [[ -n $TOKEN && -n $STORAGE_URL ]] || die "auth at $ST_AUTH gave no X-Auth-Token/X-Storage-Url"
}

# req METHOD URL [curl args...]: prints the response body; a status outside
# 2xx ends the script with the status and the body. A 503 with Retry-After
# (the Python image still installing, no free slot) is retried for a while.
req() {
    local method=$1 url=$2 code tries=0
    shift 2
    while :; do
        code=$(curl -sS -X "$method" -H "X-Auth-Token: $TOKEN" -D "$work/head" \
            -o "$work/body" -w '%{http_code}' "$@" "$url") ||
            die "$method $url: no answer from the server"
        if [[ $code == 503 ]] && grep -qi '^retry-after:' "$work/head" && ((tries++ < 120)); then
            printf '    %s, retrying in 5 s\n' "$(head -c 200 "$work/body")" >&2
            sleep 5
            continue
        fi
        [[ $code == 2?? ]] || die "$method $url: HTTP $code: $(cat "$work/body")"
        cat "$work/body"
        return
    done
}

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
