#!/usr/bin/env python3
"""The fleet page at scale: `GET /` over a fleet of N environments.

    python3 bench/ui.py                          # N = 10000, 50 requests
    python3 bench/ui.py --envs 1000 --requests 20 --hydrant target/debug/hydrant

It creates the fleet with bench/fleet.py (a config repository with a bare
remote, `rendered/` committed), publishes a new release on both channels
(so that every environment has something to show: a plan, a version change),
starts `hydrant status --serve` on it (the same page and model as the daemon's,
with the local forge), waits for the first model, then requests `/`, page 2
of the table, a filtered table, `/environments/NAME` and `/api/v1/status`
N times each over one connection at a time, and reports the median and the
slowest latency and the size of each answer. Nothing is asserted: the numbers
go to BENCHMARKS.md ("The fleet page").

The release binary is built first unless --hydrant names one.
"""

import argparse
import http.client
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FLEET = ROOT / "bench" / "fleet.py"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(port, path):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    start = time.perf_counter()
    conn.request("GET", path)
    answer = conn.getresponse()
    body = answer.read()
    took = time.perf_counter() - start
    conn.close()
    return answer.status, body, took


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--envs", type=int, default=10000)
    p.add_argument("--requests", type=int, default=50)
    p.add_argument("--hydrant", help="a hydrant binary (default: build the release one)")
    p.add_argument("--json", help="also write the results here")
    args = p.parse_args()
    hydrant = args.hydrant
    if not hydrant:
        subprocess.run(["cargo", "build", "--release", "--locked"], cwd=ROOT, check=True)
        hydrant = str(ROOT / "target" / "release" / "hydrant")
    scratch = Path(tempfile.mkdtemp(prefix="hydrant-ui-bench-"))
    fleet = scratch / "fleet"
    t0 = time.perf_counter()
    subprocess.run([sys.executable, FLEET, "create", fleet, "--envs", str(args.envs), "--hydrant", hydrant], check=True)
    subprocess.run([sys.executable, FLEET, "bump", fleet], check=True)
    print(f"fleet of {args.envs} created in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    port = free_port()
    log = open(scratch / "serve.log", "w")
    server = subprocess.Popen(
        [hydrant, "status", "--serve", f"127.0.0.1:{port}", "--refresh", "1h",
         "--repo", str(fleet / "remote.git"), "--work-dir", str(scratch / "work"),
         "--state-dir", str(scratch / "state"), "--forge", "local"],
        stdout=subprocess.DEVNULL, stderr=log)
    try:
        t0 = time.perf_counter()
        while True:
            try:
                status, _, _ = get(port, "/api/v1/status?page=1")
                if status == 200:
                    break
            except OSError:
                pass
            if server.poll() is not None:
                sys.exit(f"hydrant status --serve exited; see {scratch / 'serve.log'}")
            time.sleep(0.5)
        observed = time.perf_counter() - t0
        print(f"first model after {observed:.1f} s", file=sys.stderr)
        paths = {
            "GET /": "/",
            "GET /?page=2": "/?q=&state=&page=2",
            "GET /?q=customer-0042": "/?q=customer-0042&state=",
            "GET /environments/customer-00042": "/environments/customer-00042",
            "GET /api/v1/status": "/api/v1/status",
            "GET /api/v1/status?page=1": "/api/v1/status?page=1",
        }
        results = {"envs": args.envs, "first_model_s": observed, "requests": {}}
        for name, path in paths.items():
            times, size = [], 0
            for _ in range(args.requests):
                status, body, took = get(port, path)
                assert status == 200, (path, status, body[:300])
                times.append(took)
                size = len(body)
            results["requests"][name] = {
                "median_ms": statistics.median(times) * 1000,
                "max_ms": max(times) * 1000,
                "bytes": size,
            }
        print(f"| request | median | slowest | size |\n| --- | ---: | ---: | ---: |")
        for name, r in results["requests"].items():
            print(f"| `{name}` | {r['median_ms']:.1f} ms | {r['max_ms']:.1f} ms | {r['bytes'] / 1024:.0f} KiB |")
        if args.json:
            Path(args.json).write_text(json.dumps(results, indent=2))
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
