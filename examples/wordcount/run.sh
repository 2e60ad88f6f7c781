#!/usr/bin/env bash
# The seed tutorial's MapReduce wordcount (docs §3.3.6): one mapper per text
# file in mapreduce-data, each run where its file is stored, piping its count
# to one reducer; bundled, deployed and run with zpm.
# Usage: examples/wordcount/run.sh (again and again: a second run deploys
# with --force over the first).
# Server and user: ST_AUTH, ST_USER, ST_KEY (as zpm and the swift CLI).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
name=wordcount
# shellcheck source=../lib.sh
. "$here/../lib.sh"

find_zpm

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
