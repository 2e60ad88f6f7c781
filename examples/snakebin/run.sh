#!/usr/bin/env bash
# The seed's Snakebin tutorial (ZeroVM docs §3.4), all three parts, in
# Python 3: vendor the page's libraries, `zpm bundle`, create the three
# containers, `zpm deploy snakebin-app snakebin.zapp` (--force when it is
# there already), make snakebin-api a REST endpoint anyone may use
# (Rest-Endpoint + Zerovm-Suid on the three containers), print the page's
# URL, then save, fetch, run and search example.py with curl, anonymously,
# as the tutorial does. Runnable again (a redeploy).
# Usage: examples/snakebin/run.sh
# Server and user: ST_AUTH, ST_USER, ST_KEY (as zpm and the swift CLI).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
name=snakebin
# shellcheck source=../lib.sh
. "$here/../lib.sh"

# anon METHOD URL [curl args...]: as anyone (no token); prints the body and
# the status on stderr; a status outside 2xx ends the script.
anon() {
    call "$@"
    printf '    HTTP %s, %s bytes\n' "$CODE" "$(wc -c <"$work/body")" >&2
    [[ $CODE == 2?? ]] || die "$1 $2: HTTP $CODE: $(cat "$work/body")"
    cat "$work/body"
}

find_zpm
command -v python3 >/dev/null || die "python3 is needed (vendor.py)"

login
account=${STORAGE_URL##*/}
root=${STORAGE_URL%/v1/*}
api=$root/api/$account/snakebin-api
endpoint=swift://$account/snakebin-app/snakebin.zapp

# The project, copied where zpm bundle can write (the source tree stays
# clean, and two runs at once do not meet).
project=$work/snakebin
mkdir "$project"
cp "$here"/{zapp.yaml,snakebin.py,get_file.py,save_file.py,search_mapper.py,search_reducer.py} "$project/"

step "vendor jQuery 2.1.1 and CodeMirror 4.6.0 (npm, pinned) and build index.html"
python3 "$here/vendor.py" --out "$project" >&2

step "zpm bundle"
(cd "$project" && "$zpm" bundle >&2)
[[ -f $project/snakebin.zapp ]] || die "zpm bundle did not create snakebin.zapp"

step "create the containers (swift post snakebin-api; ... snakebin-app; ... snakebin-store)"
for c in snakebin-api snakebin-app snakebin-store; do
    req PUT "$STORAGE_URL/$c" >/dev/null
done

force=()
if [[ -n $(req GET "$STORAGE_URL/snakebin-app") ]]; then
    step "snakebin-app is not empty (an earlier deploy): deploying with --force"
    force=(--force)
fi
step "zpm deploy snakebin-app snakebin.zapp${force[*]:+ ${force[*]}}"
(cd "$project" && "$zpm" deploy snakebin-app snakebin.zapp "${force[@]}" >&2)

step "REST endpoint and setuid on the three containers:"
step "  X-Container-Meta-Rest-Endpoint: $endpoint"
step "  X-Container-Meta-Zerovm-Suid: .r:*,.rlistings"
for c in snakebin-api snakebin-app snakebin-store; do
    req POST "$STORAGE_URL/$c" \
        -H "X-Container-Meta-Rest-Endpoint: $endpoint" \
        -H 'X-Container-Meta-Zerovm-Suid: .r:*,.rlistings' >/dev/null
done

echo "Snakebin is at $api"

step "save example.py (anonymous): curl -X POST -H 'X-Zerovm-Execute: api/1.0' $STORAGE_URL/snakebin-api --data-binary @example.py"
url=$(anon POST "$STORAGE_URL/snakebin-api" -H 'X-Zerovm-Execute: api/1.0' \
    --data-binary "@$here/example.py")
url=${url%$'\n'}
[[ $url == "$api/"* ]] || die "saving gave '$url', not a URL under $api/"
echo "saved: $url"

step "fetch it: curl $url"
got=$(anon GET "$url")
[[ $got == "$(cat "$here/example.py")" ]] || die "fetched '$got', not example.py"
echo "$got"

step "run it: curl $url/execute"
anon GET "$url/execute"

step "run a posted script: curl -X POST $api/execute --data-binary @example.py"
anon POST "$api/execute" --data-binary "@$here/example.py"

step "search: curl '$api/search?q=hello'"
call GET "$api/search?q=hello"
if [[ $CODE == 503 ]] && grep -q 'Slot not available' "$work/body"; then
    # One mapper per stored script and the reducer run at once, in the
    # storage nodes' slots for connected jobs ([exec] cluster_workers).
    printf 'examples/snakebin: the search needs more slots for connected jobs than the server has: %s\n' \
        "$(cat "$work/body")" >&2
    printf '    (one per stored script, plus one; raise [exec] cluster_workers, see examples/snakebin/README.md)\n' >&2
else
    [[ $CODE == 200 ]] || die "GET $api/search?q=hello: HTTP $CODE: $(cat "$work/body")"
    cat "$work/body"
    echo
fi

echo "Open $api in a browser."
