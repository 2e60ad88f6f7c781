# shellcheck shell=bash
# Shared by the examples' run.sh scripts (sourced; not run on its own).
# The caller sets `name` (examples/<name>) before sourcing. Gives:
#   ST_AUTH, ST_USER, ST_KEY   server and user, as zpm and the swift CLI read
#                              them (defaults: zerocloud up's test:tester)
#   step MSG / die MSG         progress on stderr / an error that ends the script
#   $work                      a temporary directory, removed at exit
#   login                      sets TOKEN and STORAGE_URL from the auth answer
#   call METHOD URL [curl args...]
#                              sets CODE, the body in $work/body; a 503 with
#                              Retry-After (the Python image still installing)
#                              is retried for a while, a 503 `Slot not
#                              available` (a job larger than the server) is not
#   req METHOD URL [curl args...]
#                              as the owner (the token); prints the body; a
#                              status outside 2xx ends the script
#   find_zpm                   sets zpm: the one on PATH, else this repo's build

export ST_AUTH=${ST_AUTH:-http://127.0.0.1:8080/auth/v1.0}
export ST_USER=${ST_USER:-test:tester}
export ST_KEY=${ST_KEY:-testing}

step() { printf '==> %s\n' "$*" >&2; }
die() { printf 'examples/%s: error: %s\n' "${name:?set by run.sh}" "$*" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

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

call() {
    local method=$1 url=$2 tries=0
    shift 2
    while :; do
        CODE=$(curl -sS -X "$method" -D "$work/head" -o "$work/body" \
            -w '%{http_code}' "$@" "$url") || die "$method $url: no answer from the server"
        if [[ $CODE == 503 ]] && grep -qi '^retry-after:' "$work/head" &&
            ! grep -q 'Slot not available' "$work/body" && ((tries++ < 120)); then
            printf '    %s, retrying in 5 s\n' "$(head -c 200 "$work/body")" >&2
            sleep 5
            continue
        fi
        return
    done
}

req() {
    call "$1" "$2" -H "X-Auth-Token: $TOKEN" "${@:3}"
    [[ $CODE == 2?? ]] || die "$1 $2: HTTP $CODE: $(cat "$work/body")"
    cat "$work/body"
}

# shellcheck disable=SC2034  # zpm is the caller's
find_zpm() {
    local repo_bin
    repo_bin="$(dirname "${BASH_SOURCE[0]}")/../target/release"
    if command -v zpm >/dev/null; then
        zpm=$(command -v zpm)
    elif [[ -x $repo_bin/zpm ]]; then
        zpm=$(cd "$repo_bin" && pwd)/zpm
    else
        die "zpm not found on PATH nor in target/release: build it with \`cargo build --release -p deploy\`"
    fi
}
