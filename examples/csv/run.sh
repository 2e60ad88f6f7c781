#!/usr/bin/env bash
# The seed tutorial's "POST a job description to a ZeroVM application"
# (docs §3.3.4): the csv sampleapp stored in Swift, run twice by POSTing a
# job description, once on data1.csv and once on data2.csv.
# Usage: examples/csv/run.sh
# Server and user: ST_AUTH, ST_USER, ST_KEY (as zpm and the swift CLI).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
name=csv
# shellcheck source=../lib.sh
. "$here/../lib.sh"

# upload CONTAINER FILE: PUT FILE as CONTAINER/<its name> (swift upload).
upload() {
    req PUT "$STORAGE_URL/$1/${2##*/}" -T "$2" >/dev/null
}

login

step "create the container 'example' (swift post example)"
req PUT "$STORAGE_URL/example" >/dev/null

step "upload the application: example.tar = main.py (swift upload example example.tar)"
(cd "$here" && tar cf "$work/example.tar" main.py)
upload example "$work/example.tar"

step "upload the data: swift upload example data1.csv data2.csv"
upload example "$here/data1.csv"
upload example "$here/data2.csv"

step "POST job.json (input: swift://~/example/data1.csv)"
req POST "$STORAGE_URL" -H 'X-Zerovm-Execute: 1.0' \
    -H 'Content-Type: application/json' --data-binary "@$here/job.json"

step "POST job.json changed to read swift://~/example/data2.csv"
sed 's#swift://~/example/data1.csv#swift://~/example/data2.csv#' "$here/job.json" >"$work/job.json"
grep -q data2.csv "$work/job.json" || die "could not make the data2.csv job from job.json"
req POST "$STORAGE_URL" -H 'X-Zerovm-Execute: 1.0' \
    -H 'Content-Type: application/json' --data-binary "@$work/job.json"
