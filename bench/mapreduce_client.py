#!/usr/bin/env python3
"""The client side of bench/mapreduce.sh (standard library only).

  mapreduce_client.py setup URL N SIZE       store N objects of SIZE bytes of words in
                                             container `mr` (run where the link is fast)
  mapreduce_client.py job LABEL URL N DEV RUNS
                                             the MapReduce job alone, RUNS times after a
                                             first (cold) one; prints seconds and the bytes
                                             that crossed DEV per run, and the placement
                                             (X-Zerocloud-Placement) of the last run
  mapreduce_client.py run URL N DEV CORES    from behind the slow link (inside the client's
                                             network namespace, DEV its veth): the MapReduce
                                             job, then download-and-count; prints both times,
                                             the bytes that crossed DEV and the map phase's
                                             CPU-bound floor

The job is the seed's wordcount (examples/wordcount/{mapper,reducer}.py) over
swift://~/mr/*.txt; its total must equal the local count, else the run fails.
"""

import io
import json
import os
import random
import sys
import tarfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
MR = os.path.join(HERE, "..", "examples", "wordcount")
USER, KEY = "test:tester", "testing"


def auth(url):
    req = urllib.request.Request(url + "/auth/v1.0", headers={"X-Auth-User": USER, "X-Auth-Key": KEY})
    with urllib.request.urlopen(req) as r:
        return r.headers["X-Storage-Url"], r.headers["X-Auth-Token"]


def call(method, url, token, body=None, headers=None):
    h = {"X-Auth-Token": token}
    h.update(headers or {})
    req = urllib.request.Request(url, data=body, method=method, headers=h)
    with urllib.request.urlopen(req, timeout=600) as r:
        return r.status, dict(r.headers), r.read()


def words(seed, size):
    rng = random.Random(seed)
    vocab = ["w%03d" % i for i in range(1000)] + ["lorem", "ipsum", "data", "locality"]
    out, n = [], 0
    while n < size:
        line = " ".join(rng.choice(vocab) for _ in range(12)) + "\n"
        out.append(line)
        n += len(line)
    return "".join(out).encode()[:size].rsplit(b" ", 1)[0] + b"\n"


def setup(url, n, size):
    storage, token = auth(url)
    call("PUT", storage + "/mr", token)
    def put(i):
        call("PUT", "%s/mr/part%03d.txt" % (storage, i), token, words(i, size),
             {"Content-Type": "text/plain"})
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(put, range(n)))
    print("stored %d objects of %d bytes in %s/mr" % (n, size, storage))


def link_bytes(dev):
    stats = "/sys/class/net/%s/statistics/" % dev
    return sum(int(open(stats + f).read()) for f in ("rx_bytes", "tx_bytes"))


def zapp():
    system_map = [
        {"name": "map", "exec": {"path": "file://python:python", "args": "mapper.py"},
         "devices": [{"name": "python"}, {"name": "input", "path": "swift://~/mr/*.txt"}],
         "connect": ["reduce"]},
        {"name": "reduce", "exec": {"path": "file://python:python", "args": "reducer.py"},
         "devices": [{"name": "python"}, {"name": "stdout"}]},
    ]
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        members = [("boot/system.map", json.dumps(system_map).encode())]
        for f in ("mapper.py", "reducer.py"):
            members.append((f, open(os.path.join(MR, f), "rb").read()))
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def timed_job(storage, token, body, dev):
    """POSTs the zapp `body` as a job; returns its seconds, the bytes that
    crossed `dev` meanwhile, its headers and its output lines (the last one
    the total), or exits if it failed."""
    before = link_bytes(dev)
    t = time.monotonic()
    status, headers, out = call("POST", storage, token, body,
                                {"X-Zerovm-Execute": "1.0", "Content-Type": "application/x-tar"})
    took = time.monotonic() - t
    moved = link_bytes(dev) - before
    lines = out.decode().strip().splitlines()
    if status != 200 or not lines or not lines[-1].strip().endswith("total"):
        sys.exit("mapreduce: job failed: %s %s\n%s" % (status, headers.get("X-Nexe-Error"), out[:2000]))
    return took, moved, headers, lines


def cpu_of_sessions(cdr, count):
    """Per session CPU seconds (system + user) from X-Nexe-Cdr-Line:
    `total, elapsed1, acct1, elapsed2, acct2, ...`."""
    parts = [p.strip() for p in cdr.split(",")]
    out = []
    for i in range(count):
        acct = parts[2 + 2 * i].split()
        out.append(float(acct[0]) + float(acct[1]))
    return out


def run(url, n, dev, cores):
    storage, token = auth(url)
    body = zapp()

    def job():
        took, moved, headers, lines = timed_job(storage, token, body, dev)
        statuses = headers["X-Nexe-Status"].split(",")
        cpu = cpu_of_sessions(headers["X-Nexe-Cdr-Line"], len(statuses))
        servers = sorted(set(headers.get("X-Nexe-Server", "").split(",")[:n]))
        return took, moved, int(lines[-1].split()[0]), cpu, servers

    # The first job meets workers that never ran Python (their first run maps
    # the interpreter's memory in); the second is the steady state.
    cold_s, cold_bytes, _, cold_cpu, _ = job()
    job_s, job_bytes, job_total, cpu, servers = job()
    map_cpu = cpu[:n]

    def fetch(i):
        _, _, data = call("GET", "%s/mr/part%03d.txt" % (storage, i), token)
        return len(data.split()), len(data)
    before = link_bytes(dev)
    t = time.monotonic()
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(fetch, range(n)))
    dl_s = time.monotonic() - t
    dl_bytes = link_bytes(dev) - before
    local_total = sum(w for w, _ in got)
    payload = sum(b for _, b in got)
    if local_total != job_total:
        sys.exit("mapreduce: totals differ: job %d, local %d" % (job_total, local_total))

    floor = max(map_cpu) * n / cores
    print("how                                   seconds   bytes over the client's link")
    print("MapReduce job, first (cold workers)    %8.3f   %12d   (slowest map session %.2f s CPU)"
          % (cold_s, cold_bytes, max(cold_cpu[:n])))
    print("MapReduce job (%3d mappers + reducer)  %8.3f   %12d" % (n, job_s, job_bytes))
    print("download %3d objects and count         %8.3f   %12d   (%d bytes of objects)" % (n, dl_s, dl_bytes, payload))
    print("words counted: %d by both; map sessions ran on %d servers" % (job_total, len(servers)))
    print("speedup: download-and-count / job = %.1fx; bytes: %.0fx fewer over the link"
          % (dl_s / job_s, dl_bytes / max(job_bytes, 1)))
    print("map phase CPU-bound floor: slowest map session %.2f s CPU x %d mappers / %d cores = %.3f s;"
          " job / floor = %.2f" % (max(map_cpu), n, cores, floor, job_s / floor if floor else float("inf")))
    print("map session CPU (s): min %.2f, median %.2f, max %.2f; reducer %.2f"
          % (min(map_cpu), sorted(map_cpu)[len(map_cpu) // 2], max(map_cpu), cpu[n]))


def job_only(label, url, n, dev, runs):
    storage, token = auth(url)
    body = zapp()
    rows = []
    for i in range(runs + 1):
        took, moved, headers, lines = timed_job(storage, token, body, dev)
        rows.append((took, moved, headers.get("X-Zerocloud-Placement", "")))
    placement = rows[-1][2].split(",")
    counts = {p: placement.count(p) for p in sorted(set(placement))}
    warm = sorted(r[0] for r in rows[1:])
    print("%-10s cold %7.3f s   warm median %7.3f s (min %.3f, max %.3f, %d runs)   %12d bytes over the link per run   placement %s"
          % (label, rows[0][0], warm[len(warm) // 2], warm[0], warm[-1], runs,
             sorted(r[1] for r in rows[1:])[len(warm) // 2], counts))
    print("total words %s" % lines[-1].split()[0])


if __name__ == "__main__":
    if len(sys.argv) >= 7 and sys.argv[1] == "job":
        job_only(sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5], int(sys.argv[6]))
        sys.exit(0)
    if len(sys.argv) >= 5 and sys.argv[1] == "setup":
        setup(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    elif len(sys.argv) >= 6 and sys.argv[1] == "run":
        run(sys.argv[2], int(sys.argv[3]), sys.argv[4], int(sys.argv[5]))
    else:
        sys.exit(__doc__)
