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

When HELM names a `helm` binary (or bench/helm-template, which renders with
Helm's own Go engine through its SDK), it also renders every environment
with `helm template` on bench/chart, the same stack as a Helm chart, with the
environment's layered values files as `-f` (the channel's values, then
values.yaml, then pinned.yaml), one process per environment as a script or
Argo CD's Helm source would run it:

  helm          one after the other, each written to a file
  helm_pool     the same with one worker per core
  helm_startup  one `helm template` of a chart with no template (10 runs):
                what each process pays before rendering anything

(CPU time summed over the processes, peak RSS of the largest one) and prints
the ratio of their wall and CPU time to `render`'s. Before timing, it checks
on the bundled environments and on a sample of each fleet's that both
render the same objects.

The release binary is built first unless --hydrant names one.
"""

import argparse
import concurrent.futures
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
CHART = ROOT / "bench" / "chart"
# Environments of a fleet compared object by object between helm and hydrant:
# every bucket provider, with and without LDAP, pinned.yaml and Redis.
HELM_CHECKED = 15


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


def measure_each(cmds, workers):
    """Runs every (cmd, stdout path) with `workers` at a time; returns (wall
    s of all, CPU s summed over the processes, peak RSS MiB of the largest)."""

    def one(job):
        cmd, out = job
        with open(out, "wb") as stdout:
            proc = subprocess.Popen(cmd, stdout=stdout, stderr=subprocess.PIPE)
            err = proc.stderr.read()
            _, status, usage = os.wait4(proc.pid, 0)
        code = os.waitstatus_to_exitcode(status)
        if code != 0:
            sys.exit(f"{' '.join(map(str, cmd))} exited {code}:\n{err.decode(errors='replace')[-3000:]}")
        return usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024

    start = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        done = list(pool.map(one, cmds))
    wall = time.perf_counter() - start
    return wall, sum(c for c, _ in done), max(r for _, r in done)


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
        # The bump opens a pull request per environment at once: lift the
        # pull-request budget (50 an hour by default) out of the way.
        "--max-new-pull-requests-per-hour", "1000000",
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


class HelmFleet:
    """The `helm template` command of each environment of a fleet: the
    channel's values (written once per channel, with `channel.version` for
    the version label), then the environment's values.yaml and pinned.yaml."""

    def __init__(self, helm, work, scratch):
        try:
            import yaml  # only needed with HELM
        except ImportError:
            sys.exit("the helm comparison reads YAML with PyYAML: pip install pyyaml")

        self.yaml = yaml
        self.helm, self.work = helm, work
        channels = scratch / "helm-channels"
        channels.mkdir(parents=True, exist_ok=True)
        self.envs = {}
        for env in sorted(p for p in (work / "environments").iterdir() if p.is_dir()):
            config = yaml.safe_load((env / "environment.yaml").read_text())
            if config.get("release"):
                sys.exit(f"{env}/environment.yaml pins a release, which the helm comparison does not read")
            channel = config["channel"]
            values = channels / f"{channel}.yaml"
            if not values.exists():
                spec = yaml.safe_load((work / "channels" / f"{channel}.yaml").read_text())
                layer = dict(spec["values"], channel={"version": spec["metadata"]["version"]})
                values.write_text(json.dumps(layer))
            files = [values] + [env / f for f in ("values.yaml", "pinned.yaml") if (env / f).exists()]
            self.envs[env.name] = (files, config.get("namespace", "default"))

    def command(self, env):
        files, namespace = self.envs[env]
        cmd = [self.helm, "template", "wandb", str(CHART), "--namespace", namespace]
        for f in files:
            cmd += ["-f", str(f)]
        return cmd

    def jobs(self, out):
        out.mkdir(parents=True, exist_ok=True)
        return [(self.command(env), out / f"{env}.yaml") for env in self.envs]

    def objects(self, text):
        """The objects of a YAML stream by (kind, name), as the API server
        would store them: keys whose value is null dropped (Helm leaves
        `limits: null` where a layer deleted a key the chart has no default
        for), and without the `managed-by` label, which names the tool."""

        def clean(v):
            if isinstance(v, dict):
                return {k: clean(x) for k, x in v.items() if x is not None}
            if isinstance(v, list):
                return [clean(x) for x in v]
            return v

        objects = {}
        for doc in self.yaml.safe_load_all(text):
            if not doc:
                continue
            doc = clean(doc)
            for meta in (doc["metadata"], doc.get("spec", {}).get("template", {}).get("metadata", {})):
                meta.get("labels", {}).pop("app.kubernetes.io/managed-by", None)
            objects[(doc["kind"], doc["metadata"]["name"])] = doc
        return objects

    def check(self, hydrant, count):
        """Exits unless helm and hydrant render the same objects for the
        first `count` environments, and says what it compared."""
        checked = 0
        envs = list(self.envs)[:count]
        for env in envs:
            ours = subprocess.run([hydrant, "render", "--env", env, "--repo", self.work],
                                  check=True, capture_output=True, text=True).stdout
            theirs = subprocess.run(self.command(env), check=True, capture_output=True, text=True).stdout
            a, b = self.objects(ours), self.objects(theirs)
            if a.keys() != b.keys():
                sys.exit(f"{env}: hydrant renders {sorted(a)}, helm {sorted(b)}")
            for key in a:
                where = first_difference(a[key], b[key])
                if where:
                    path, ours, theirs = where
                    sys.exit(f"{env}: {key[0]} {key[1]} differs at {path or '.'}: "
                             f"hydrant {json.dumps(ours)}, helm {json.dumps(theirs)}")
            checked += len(a)
        print(f"{self.work}: helm and hydrant render the same {checked} objects "
              f"for {len(envs)} environments", file=sys.stderr)


def first_difference(a, b, path=""):
    """The first path where two parsed objects differ, with both values."""
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(a.keys() | b.keys()):
            found = first_difference(a.get(k), b.get(k), f"{path}.{k}")
            if found:
                return found
        return None
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b)):
            found = first_difference(x, y, f"{path}[{i}]")
            if found:
                return found
        return None
    return None if a == b else (path, a, b)


def helm_startup(helm, scratch, runs):
    """Wall, CPU and RSS of `helm template` on a chart with no template:
    what each process pays before rendering anything."""
    chart = scratch / "empty-chart"
    (chart / "templates").mkdir(parents=True, exist_ok=True)
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: empty\nversion: 0.1.0\n")
    return [measure([helm, "template", "empty", chart])[:3] for _ in range(runs)]


def bench_helm(helm, hydrant, fleet, n, runs, scratch):
    helm_fleet = HelmFleet(helm, fleet / "work", scratch / f"helm-{n}")
    helm_fleet.check(hydrant, HELM_CHECKED)
    # Measured beside the runs it explains, under the same load.
    results = {"helm_startup": helm_startup(helm, scratch, 10)}
    for scenario, workers in [("helm", 1), ("helm_pool", os.cpu_count())]:
        samples = []
        for i in range(runs):
            out = scratch / f"helm-out-{n}-{scenario}-{i}"
            samples.append(measure_each(helm_fleet.jobs(out), workers))
            shutil.rmtree(out, ignore_errors=True)
        results[scenario] = samples
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
    helm = os.environ.get("HELM")
    print(f"machine: {os.cpu_count()} cores; {args.runs} runs per cell; median (min–max)")
    print()
    raw = {}
    if helm:
        # The bundled environments use the template branches the fleet does
        # not: CA certificates, Redis CA and parameters, LDAP over TLS,
        # ServiceAccounts, Ingress TLS.
        HelmFleet(helm, ROOT, scratch / "helm-bundled").check(hydrant, 3)
    print("| N | scenario | wall | CPU (user+sys) | peak RSS |")
    print("| ---: | --- | ---: | ---: | ---: |")
    for n in [int(x) for x in args.sizes.split(",")]:
        r = bench_size(hydrant, n, args.runs, scratch)
        if helm:
            r.update(bench_helm(helm, hydrant, scratch / f"fleet-{n}", n, args.runs, scratch))
        raw[n] = r

        def row(scenario):
            wall, cpu, rss = (summary([s[i] for s in r[scenario]]) for i in range(3))
            print(f"| {n} | {scenario} | {fmt(wall, 's', 3)} | {fmt(cpu, 's', 3)} | {fmt(rss, 'MiB', 0)} |")

        for scenario in ["render", "render_unchanged", "noop", "bump"]:
            row(scenario)
        if r["noop_beyond_fetch"]:
            b = summary(r["noop_beyond_fetch"])
            print(f"| {n} | noop beyond the fetch | {fmt(b, 's', 3)} | | |")
        if helm:
            row("helm_startup")
            for scenario in ["helm", "helm_pool"]:
                row(scenario)
                wall, cpu = (summary([s[i] for s in r[scenario]])["median"]
                             / summary([s[i] for s in r["render"]])["median"] for i in range(2))
                print(f"| {n} | {scenario} / render | {wall:.0f}× | {cpu:.0f}× | |")
        sys.stdout.flush()
    if args.json:
        Path(args.json).write_text(json.dumps(raw, indent=2))
    if not args.keep:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
