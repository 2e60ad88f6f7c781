#!/usr/bin/env bash
# The seed tutorial's MapReduce wordcount (docs §3.3.6): one mapper per text
# file in mapreduce-data, each run where its file is stored, piping its count
# to one reducer; bundled, deployed and run with zpm.
# Usage: examples/wordcount/run.sh (again and again: a second run deploys
# with --force over the first).
# Server and user: ST_AUTH, ST_USER, ST_KEY (as zpm and the swift CLI).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export ST_AUTH=${ST_AUTH:-http://127.0.0.1:8080/auth/v1.0}
export ST_USER=${ST_USER:-test:tester}
export ST_KEY=${ST_KEY:-testing}

step() { printf '==> %s\n' "$*" >&2; }
die() { printf 'examples/wordcount: error: %s\n' "$*" >&2; exit 1; }

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

# zpm: the one on PATH, else this repo's build.
if command -v zpm >/dev/null; then
    zpm=$(command -v zpm)
elif [[ -x $here/../../target/release/zpm ]]; then
    zpm=$(cd "$here/../../target/release" && pwd)/zpm
else
    die "zpm not found on PATH nor in target/release: build it with \`cargo build --release -p deploy\`"
fi

login

step "create the containers (swift post mapreduce-data; swift post mapreduce-app)"
req PUT "$STORAGE_URL/mapreduce-data" >/dev/null
req PUT "$STORAGE_URL/mapreduce-app" >/dev/null

step "upload the sample data (swift upload mapreduce-data mrdata1.txt mrdata2.txt mrdata3.txt)"
for f in mrdata1.txt mrdata2.txt mrdata3.txt; do
    req PUT "$STORAGE_URL/mapreduce-data/$f" -H 'Content-Type: text/plain' -T "$here/$f" >/dev/null
done

# The project directory (~/mapreduce in the tutorial): a copy, so that the
# bundle is built outside the source tree.
project=$work/mapreduce
mkdir "$project"
cp "$here"/{zapp.yaml,mapper.py,reducer.py,mrdata1.txt,mrdata2.txt,mrdata3.txt} "$project/"
cd "$project"

step "zpm bundle"
"$zpm" bundle
[[ -f mapreduce.zapp ]] || die "zpm bundle did not create mapreduce.zapp"
members=$(tar tf mapreduce.zapp) || die "mapreduce.zapp is not a tar"
if grep -q 'mrdata' <<<"$members"; then
    die "the bundle holds the data files: $(tr '\n' ' ' <<<"$members")"
fi

# `zpm deploy` refuses a container that is not empty (the app of an earlier
# run): then, and only then, deploy over it with --force.
force=()
if [[ -n $(req GET "$STORAGE_URL/mapreduce-app") ]]; then
    step "mapreduce-app is not empty (an earlier deploy): deploying with --force"
    force=(--force)
fi
step "zpm deploy mapreduce-app mapreduce.zapp${force:+ ${force[*]}}"
"$zpm" deploy mapreduce-app mapreduce.zapp "${force[@]}"

step "zpm execute mapreduce.zapp --container mapreduce-app"
"$zpm" execute mapreduce.zapp --container mapreduce-app
