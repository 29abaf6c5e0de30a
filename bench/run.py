#!/usr/bin/env python3
"""Whole-process benchmarks of hydrant on generated fleets.

    bench/run.py                       # N = 10, 100, 1000; 5 runs each
    bench/run.py --sizes 1000 --runs 3 --json results.json

For each fleet size N (see bench/fleet.py) it times, over several runs, with
the median and the spread (min–max) of wall time, CPU time (user + system)
and peak RSS of the hydrant process:

  render   hydrant render --all --out DIR          (render, validate, write)
           and again over its own unchanged output (render_unchanged)
  noop     hydrant reconcile --once, nothing changed (warm work dir), also
           reporting the time beyond the git fetch (from hydrant's own
           `fetched` log event)
  bump     hydrant reconcile --once after both channels published a release
           (local forge; every environment changes)

The release binary is built first unless --hydrant names one.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FLEET = ROOT / "bench" / "fleet.py"


def measure(cmd, cwd=None):
    """Runs cmd; returns (wall s, cpu s, peak RSS MiB, stderr)."""
    err = tempfile.TemporaryFile()
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=err)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    err.seek(0)
    text = err.read().decode(errors="replace")
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        sys.exit(f"{' '.join(map(str, cmd))} exited {code}:\n{text[-3000:]}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, text


def fetch_seconds(log):
    for line in log.splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if event.get("fields", {}).get("message") == "fetched":
            return float(event["fields"]["seconds"])
    return None


def summary(samples):
    med = statistics.median(samples)
    return {"median": med, "min": min(samples), "max": max(samples)}


def reconcile_cmd(hydrant, fleet, work, state):
    return [
        hydrant, "reconcile", "--once", "--repo", str(fleet / "remote.git"),
        "--work-dir", str(work), "--state-dir", str(state), "--forge", "local",
        "--output", "json", "--log-format", "json", "--log-level", "info",
    ]


def bench_size(hydrant, n, runs, scratch):
    fleet = scratch / f"fleet-{n}"
    subprocess.run([sys.executable, FLEET, "create", fleet, "--envs", str(n), "--hydrant", hydrant],
                   check=True, stdout=subprocess.DEVNULL)
    results = {}

    # Each run writes a new directory: deleting thousands of files just
    # before creating as many makes ext4's inode allocator crawl, which would
    # measure the file system rather than hydrant.
    samples, outs = [], []
    for i in range(runs):
        out = scratch / f"out-{n}-{i}"
        outs.append(out)
        samples.append(measure([hydrant, "render", "--all", "--repo", fleet / "work", "--out", out])[:3])
    results["render"] = samples
    results["render_unchanged"] = [
        measure([hydrant, "render", "--all", "--repo", fleet / "work", "--out", outs[-1]])[:3]
        for _ in range(runs)
    ]
    for out in outs:
        shutil.rmtree(out, ignore_errors=True)

    work, state = scratch / f"work-{n}", scratch / f"state-{n}"
    measure(reconcile_cmd(hydrant, fleet, work, state))  # warm the work dir
    samples, beyond = [], []
    for _ in range(runs):
        wall, cpu, rss, log = measure(reconcile_cmd(hydrant, fleet, work, state))
        samples.append((wall, cpu, rss))
        fetched = fetch_seconds(log)
        if fetched is not None:
            beyond.append(wall - fetched)
    results["noop"] = samples
    results["noop_beyond_fetch"] = beyond

    samples = []
    for i in range(runs):
        copy = scratch / f"bump-{n}"
        shutil.rmtree(copy, ignore_errors=True)
        shutil.copytree(fleet, copy, symlinks=True)
        bwork, bstate = scratch / f"bwork-{n}", scratch / f"bstate-{n}"
        shutil.rmtree(bwork, ignore_errors=True)
        shutil.rmtree(bstate, ignore_errors=True)
        # A warm work dir: hydrant points it at the copy's remote itself.
        shutil.copytree(work, bwork, symlinks=True)
        subprocess.run([sys.executable, FLEET, "bump", copy], check=True, stdout=subprocess.DEVNULL)
        wall, cpu, rss, log = measure(reconcile_cmd(hydrant, copy, bwork, bstate))
        samples.append((wall, cpu, rss))
        pulls = len(list((bstate / "pulls").glob("*.json")))
        if pulls != n:
            sys.exit(f"bump over {n} environments opened {pulls} pull requests")
    results["bump"] = samples
    return results


def fmt(s, unit, digits):
    return f"{s['median']:.{digits}f} {unit} ({s['min']:.{digits}f}–{s['max']:.{digits}f})"


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="10,100,1000")
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--hydrant", help="the binary [default: build target/release/hydrant]")
    p.add_argument("--json", help="also write the raw results here")
    p.add_argument("--keep", help="keep the fleets and work dirs in this directory")
    args = p.parse_args()
    hydrant = args.hydrant
    if not hydrant:
        subprocess.run(["cargo", "build", "--release", "--locked", "--quiet"], cwd=ROOT, check=True)
        hydrant = str(ROOT / "target" / "release" / "hydrant")
    scratch = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="hydrant-bench-"))
    scratch.mkdir(parents=True, exist_ok=True)
    print(f"machine: {os.cpu_count()} cores; {args.runs} runs per cell; median (min–max)")
    print()
    print("| N | scenario | wall | CPU (user+sys) | peak RSS |")
    print("| ---: | --- | ---: | ---: | ---: |")
    raw = {}
    for n in [int(x) for x in args.sizes.split(",")]:
        r = bench_size(hydrant, n, args.runs, scratch)
        raw[n] = r
        for scenario in ["render", "render_unchanged", "noop", "bump"]:
            wall = summary([s[0] for s in r[scenario]])
            cpu = summary([s[1] for s in r[scenario]])
            rss = summary([s[2] for s in r[scenario]])
            print(f"| {n} | {scenario} | {fmt(wall, 's', 3)} | {fmt(cpu, 's', 3)} | {fmt(rss, 'MiB', 0)} |")
        if r["noop_beyond_fetch"]:
            b = summary(r["noop_beyond_fetch"])
            print(f"| {n} | noop beyond the fetch | {fmt(b, 's', 3)} | | |")
        sys.stdout.flush()
    if args.json:
        Path(args.json).write_text(json.dumps(raw, indent=2))
    if not args.keep:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
