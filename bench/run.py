#!/usr/bin/env python3
"""Whole-process benchmarks of hydrant on generated fleets.

    bench/run.py                       # N = 100, 1000, 3000, 10000; 3 runs each
    bench/run.py --sizes 100,1000 --runs 3 --json results.json
    bench/run.py --sizes 10000 --scenarios render,noop

For each fleet size N (see bench/fleet.py) it times, over several runs, with
the median and the spread (min–max) of wall time, CPU time (user + system)
and peak RSS of the hydrant process (from wait4):

  startup  `hydrant --version` and `hydrant render --help` (10 runs each,
           once): what every process pays before doing anything
  render   hydrant render --all --out DIR          (render, validate, write)
           and again over its own unchanged output (render_unchanged)
  noop     hydrant reconcile --once, nothing changed (warm work dir), also
           reporting the time beyond the git fetch (from hydrant's own
           `fetched` log event)
  bump     hydrant reconcile --once after both channels published a release
           (local forge; every environment changes), once for each kind of
           remote (--kinds): a local path, a file:// URL, and smart HTTP
           (`git http-backend` behind bench/githttp.py on 127.0.0.1, started
           by the harness)
  floor    git's own cost for the same delivery, in the same run and for
           the same kinds of remote: the commits the bump made (one per
           environment on `hydrant/<env>`: the base commit with
           rendered/<env>/ as hydrant wrote it, read back from the first
           bump's branches) through ONE `git fast-import` into a copy of the
           base repository and ONE `git push` of all the branches; reported
           with the ratio bump ÷ floor

Fleets are made by one fast-import each and bumped by fast-import straight
into the remote, so no `git gc` runs behind a timed run; the remotes have
`receive.autogc` off, as a forge collects garbage on its own schedule, and
the harness still waits for any gc.pid to go before timing.

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

The release binary is built first unless --hydrant names one. --json FILE
writes every sample and every summary as JSON.
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
GITHTTP = ROOT / "bench" / "githttp.py"
CHART = ROOT / "bench" / "chart"
# Environments of a fleet compared object by object between helm and hydrant:
# every bucket provider, with and without LDAP, pinned.yaml and Redis.
HELM_CHECKED = 15


def measure(cmd, cwd=None, stdin=None):
    """Runs cmd (its standard input from the file `stdin`); returns (wall s,
    cpu s, peak RSS MiB, stderr)."""
    err = tempfile.TemporaryFile()
    source = open(stdin, "rb") if stdin else subprocess.DEVNULL
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, stdin=source, stdout=subprocess.DEVNULL, stderr=err)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    if stdin:
        source.close()
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


def reconcile_cmd(hydrant, repo, work, state):
    return [
        hydrant, "reconcile", "--once", "--repo", str(repo),
        "--work-dir", str(work), "--state-dir", str(state), "--forge", "local",
        "--output", "json", "--log-format", "json", "--log-level", "info",
        # The bump opens a pull request per environment at once: lift the
        # pull-request budget (50 an hour by default) out of the way.
        "--max-new-pull-requests-per-hour", "1000000",
    ]


def wait_for_gc(*git_dirs):
    """Waits while a `git gc` holds one of the repositories (its gc.pid)."""
    for git_dir in git_dirs:
        deadline = time.monotonic() + 600
        while (Path(git_dir) / "gc.pid").exists() and time.monotonic() < deadline:
            time.sleep(0.1)


class GitHttp:
    """bench/githttp.py serving every repository under `root` on 127.0.0.1."""

    def __init__(self, root):
        self.root = Path(root)
        self.proc = subprocess.Popen([sys.executable, GITHTTP, str(root)], stdout=subprocess.PIPE)
        port = self.proc.stdout.readline().strip()
        if not port:
            sys.exit("bench/githttp.py did not start")
        self.base = f"http://127.0.0.1:{int(port)}"

    def url(self, git_dir):
        return f"{self.base}/{Path(git_dir).relative_to(self.root).as_posix()}"

    def stop(self):
        self.proc.terminate()
        self.proc.wait()


KINDS = ["path", "file", "http"]


def remote_url(kind, git_dir, http):
    if kind == "path":
        return str(git_dir)
    if kind == "file":
        return f"file://{git_dir}"
    return http.url(git_dir)


class CatFile:
    """One `git cat-file --batch` on a repository."""

    def __init__(self, git_dir):
        self.proc = subprocess.Popen(["git", "-C", str(git_dir), "cat-file", "--batch"],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE)

    def read(self, name):
        self.proc.stdin.write(f"{name}\n".encode())
        self.proc.stdin.flush()
        header = self.proc.stdout.readline().decode().split()
        if len(header) != 3:
            sys.exit(f"cannot read `{name}`: {' '.join(header)}")
        data = self.proc.stdout.read(int(header[2]))
        self.proc.stdout.read(1)
        return header[1], data

    def tree(self, name, prefix):
        """Every file under a tree: (mode, path, blob id)."""
        _, data = self.read(name)
        i = 0
        while i < len(data):
            space = data.index(b" ", i)
            nul = data.index(b"\0", space)
            mode, entry = data[i:space].decode(), data[space + 1:nul].decode()
            oid = data[nul + 1:nul + 21].hex()
            i = nul + 21
            if mode == "40000":
                yield from self.tree(oid, f"{prefix}/{entry}")
            else:
                yield mode, f"{prefix}/{entry}", oid

    def close(self):
        self.proc.stdin.close()
        self.proc.wait()


def floor_stream(git_dir, base, out):
    """Writes the fast-import stream of the commits a bump left on the
    `hydrant/*` branches of `git_dir`: per branch, one commit on `base` with
    the same author, committer, message and rendered/<env>/ files. Checks
    on a sample that each commit changes nothing but rendered/<env>/.
    Returns the number of commits."""
    refs = subprocess.run(["git", "-C", str(git_dir), "for-each-ref", "--format=%(refname) %(objectname)",
                           "refs/heads/hydrant/"], check=True, capture_output=True, text=True).stdout.split("\n")
    tips = [line.split() for line in refs if line]
    for ref, _ in tips[:20]:
        changed = subprocess.run(["git", "-C", str(git_dir), "diff-tree", "-r", "--name-only", base, ref],
                                 check=True, capture_output=True, text=True).stdout.split()
        env = ref.removeprefix("refs/heads/hydrant/")
        stray = [p for p in changed if not p.startswith(f"rendered/{env}/")]
        if stray:
            sys.exit(f"{ref} changes more than rendered/{env}/: {stray[:5]}")
    cat = CatFile(git_dir)
    with open(out, "wb") as stream:
        for ref, tip in tips:
            env = ref.removeprefix("refs/heads/hydrant/")
            _, commit = cat.read(tip)
            head, _, message = commit.partition(b"\n\n")
            fields = dict(line.split(b" ", 1) for line in head.split(b"\n"))
            if fields[b"parent"].decode() != base:
                sys.exit(f"{ref} is not a child of {base}")
            stream.write(f"commit {ref}\n".encode())
            stream.write(b"author " + fields[b"author"] + b"\n")
            stream.write(b"committer " + fields[b"committer"] + b"\n")
            stream.write(f"data {len(message)}\n".encode() + message + b"\n")
            stream.write(f"from {base}\nD rendered/{env}\n".encode())
            for mode, path, oid in cat.tree(f"{tip}:rendered/{env}", f"rendered/{env}"):
                _, blob = cat.read(oid)
                stream.write(f"M {mode} inline {path}\ndata {len(blob)}\n".encode() + blob + b"\n")
    cat.close()
    return len(tips)


def floor_run(kind, pristine, stream, dest, http):
    """git's floor for a delivery: the commits through one fast-import into
    a copy of the base repository, then one push of every branch to a copy
    of the remote. Returns (wall, cpu, rss) summed (largest RSS)."""
    source, remote = dest / "source.git", dest / "remote.git"
    shutil.copytree(pristine, source, symlinks=True)
    shutil.copytree(pristine, remote, symlinks=True)
    wait_for_gc(source, remote)
    imported = measure(["git", "-C", str(source), "fast-import", "--quiet"], stdin=stream)
    pushed = measure(["git", "-C", str(source), "push", "-q", remote_url(kind, remote, http),
                      "refs/heads/hydrant/*:refs/heads/hydrant/*"])
    return imported[0] + pushed[0], imported[1] + pushed[1], max(imported[2], pushed[2])


def count_branches(git_dir):
    refs = subprocess.run(["git", "-C", str(git_dir), "for-each-ref", "--format=%(refname)", "refs/heads/hydrant/"],
                          check=True, capture_output=True, text=True).stdout
    return len(refs.split())


def bench_size(hydrant, n, runs, scratch, scenarios, kinds, http):
    fleet = scratch / f"fleet-{n}"
    start = time.perf_counter()
    subprocess.run([sys.executable, FLEET, "create", fleet, "--envs", str(n), "--hydrant", hydrant],
                   check=True, stdout=subprocess.DEVNULL)
    print(f"fleet of {n} created in {time.perf_counter() - start:.1f} s", file=sys.stderr)
    results = {}

    if "render" in scenarios:
        # Each run writes a new directory: deleting thousands of files just
        # before creating as many makes ext4's inode allocator crawl, which
        # would measure the file system rather than hydrant.
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

    # The no-op's work dir also starts each bump warm.
    work, state = scratch / f"work-{n}", scratch / f"state-{n}"
    remote = fleet / "remote.git"
    measure(reconcile_cmd(hydrant, remote, work, state))
    if "noop" in scenarios:
        samples, beyond = [], []
        for _ in range(runs):
            wait_for_gc(remote, work / "repo.git")
            wall, cpu, rss, log = measure(reconcile_cmd(hydrant, remote, work, state))
            samples.append((wall, cpu, rss))
            fetched = fetch_seconds(log)
            if fetched is not None:
                beyond.append(wall - fetched)
        results["noop"] = samples
        results["noop_beyond_fetch"] = beyond

    if "bump" not in scenarios and "floor" not in scenarios:
        return results
    # The remote after the channels' new releases, copied for every run.
    bumped = scratch / f"bumped-{n}"
    shutil.copytree(fleet / "remote.git", bumped / "remote.git", symlinks=True)
    subprocess.run([sys.executable, FLEET, "bump", bumped], check=True, stdout=subprocess.DEVNULL)
    pristine = bumped / "remote.git"
    base = subprocess.run(["git", "-C", str(pristine), "rev-parse", "main"],
                          check=True, capture_output=True, text=True).stdout.strip()
    stream = scratch / f"floor-{n}.fi"
    runs_dir = scratch / f"runs-{n}"
    runs_dir.mkdir(exist_ok=True)
    for kind in kinds:
        samples = []
        for i in range(runs):
            dest = runs_dir / f"bump-{kind}-{i}"
            shutil.copytree(pristine, dest / "remote.git", symlinks=True)
            # A warm work dir: hydrant points it at this remote itself.
            shutil.copytree(work, dest / "work", symlinks=True)
            wait_for_gc(dest / "remote.git", dest / "work" / "repo.git")
            url = remote_url(kind, dest / "remote.git", http)
            wall, cpu, rss, log = measure(reconcile_cmd(hydrant, url, dest / "work", dest / "state"))
            samples.append((wall, cpu, rss))
            pulls = len(list((dest / "state" / "pulls").glob("*.json")))
            branches = count_branches(dest / "remote.git")
            if pulls != n or branches != n:
                sys.exit(f"bump over {n} environments ({kind}) opened {pulls} pull requests, "
                         f"pushed {branches} branches")
            if not stream.exists():
                floor_stream(dest / "remote.git", base, stream)
        results[f"bump_{kind}"] = samples
    if "floor" in scenarios and stream.exists():
        for kind in kinds:
            results[f"floor_{kind}"] = [
                floor_run(kind, pristine, stream, runs_dir / f"floor-{kind}-{i}", http) for i in range(runs)
            ]
            for i in range(runs):
                if count_branches(runs_dir / f"floor-{kind}-{i}" / "remote.git") != n:
                    sys.exit(f"the git floor ({kind}) did not push {n} branches")
    shutil.rmtree(runs_dir, ignore_errors=True)
    return results


def bench_startup(hydrant, runs):
    return {
        "version": [measure([hydrant, "--version"])[:3] for _ in range(runs)],
        "render_help": [measure([hydrant, "render", "--help"])[:3] for _ in range(runs)],
    }


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


def summaries(samples):
    return {k: summary([s[i] for s in samples]) for i, k in enumerate(["wall", "cpu", "rss"])}


LABELS = {
    "render": "render",
    "render_unchanged": "render, output unchanged",
    "noop": "no-op reconcile",
    "noop_beyond_fetch": "no-op reconcile beyond the fetch",
    "bump_path": "channel bump, remote a path",
    "bump_file": "channel bump, remote a file:// URL",
    "bump_http": "channel bump, remote over smart HTTP",
    "floor_path": "git floor, remote a path",
    "floor_file": "git floor, remote a file:// URL",
    "floor_http": "git floor, remote over smart HTTP",
}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="100,1000,3000,10000")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--scenarios", default="startup,render,noop,bump,floor",
                   help="which of startup, render, noop, bump, floor (floor needs bump)")
    p.add_argument("--kinds", default=",".join(KINDS), help="remotes for bump and floor: path, file, http")
    p.add_argument("--hydrant", help="the binary [default: build target/release/hydrant]")
    p.add_argument("--json", help="also write every sample and summary here")
    p.add_argument("--keep", help="keep the fleets and work dirs in this directory")
    p.add_argument("--floor-sizes", help="the sizes to run the git floor at [default: every size]; "
                   "git's own floor over 10,000 environments takes minutes")
    args = p.parse_args()
    scenarios = set(args.scenarios.split(","))
    kinds = [k for k in args.kinds.split(",") if k]
    unknown = scenarios - {"startup", "render", "noop", "bump", "floor"} or set(kinds) - set(KINDS)
    if unknown:
        sys.exit(f"unknown scenario or kind: {', '.join(sorted(unknown))}")
    hydrant = args.hydrant
    if not hydrant:
        subprocess.run(["cargo", "build", "--release", "--locked", "--quiet"], cwd=ROOT, check=True)
        hydrant = str(ROOT / "target" / "release" / "hydrant")
    hydrant = str(Path(hydrant).resolve())
    scratch = Path(args.keep).resolve() if args.keep else Path(tempfile.mkdtemp(prefix="hydrant-bench-"))
    scratch.mkdir(parents=True, exist_ok=True)
    helm = os.environ.get("HELM")
    print(f"machine: {os.cpu_count()} cores; {args.runs} runs per cell; median (min–max)")
    print()
    raw = {"cores": os.cpu_count(), "runs": args.runs, "hydrant": hydrant, "sizes": {}}
    if helm:
        # The bundled environments use the template branches the fleet does
        # not: CA certificates, Redis CA and parameters, LDAP over TLS,
        # ServiceAccounts, Ingress TLS.
        HelmFleet(helm, ROOT, scratch / "helm-bundled").check(hydrant, 3)
    print("| N | scenario | wall | CPU (user+sys) | peak RSS |")
    print("| ---: | --- | ---: | ---: | ---: |")

    def row(n, label, s):
        print(f"| {n} | {label} | {fmt(s['wall'], 's', 3)} | {fmt(s['cpu'], 's', 3)} | {fmt(s['rss'], 'MiB', 0)} |")

    if "startup" in scenarios:
        startup = bench_startup(hydrant, 10)
        raw["startup"] = {k: {"samples": v, **summaries(v)} for k, v in startup.items()}
        row("—", "`hydrant --version` (10 runs)", raw["startup"]["version"])
        row("—", "`hydrant render --help` (10 runs)", raw["startup"]["render_help"])
        sys.stdout.flush()
    http = GitHttp(scratch) if "http" in kinds and scenarios & {"bump", "floor"} else None
    try:
        for n in [int(x) for x in args.sizes.split(",") if x]:
            at = scenarios
            if args.floor_sizes is not None and str(n) not in args.floor_sizes.split(","):
                at = scenarios - {"floor"}
            r = bench_size(hydrant, n, args.runs, scratch, at, kinds, http)
            if helm:
                r.update(bench_helm(helm, hydrant, scratch / f"fleet-{n}", n, args.runs, scratch))
            out = {}
            for scenario, samples in r.items():
                if scenario == "noop_beyond_fetch":
                    out[scenario] = {"samples": samples, "wall": summary(samples)} if samples else {}
                else:
                    out[scenario] = {"samples": samples, **summaries(samples)}
            for scenario in ["render", "render_unchanged", "noop"]:
                if scenario in out:
                    row(n, LABELS[scenario], out[scenario])
                if scenario == "noop" and out.get("noop_beyond_fetch"):
                    print(f"| {n} | … beyond the fetch | {fmt(out['noop_beyond_fetch']['wall'], 's', 3)} | | |")
            for kind in kinds:
                for scenario in [f"bump_{kind}", f"floor_{kind}"]:
                    if scenario in out:
                        row(n, LABELS[scenario], out[scenario])
                bump, floor = out.get(f"bump_{kind}"), out.get(f"floor_{kind}")
                if bump and floor:
                    ratio = {k: bump[k]["median"] / floor[k]["median"] for k in ["wall", "cpu"]}
                    out[f"bump_over_floor_{kind}"] = ratio
                    print(f"| {n} | bump ÷ git floor, {kind} | {ratio['wall']:.2f}× | {ratio['cpu']:.2f}× | |")
            if helm:
                row(n, "helm_startup", out["helm_startup"])
                for scenario in ["helm", "helm_pool"]:
                    row(n, scenario, out[scenario])
                    wall, cpu = (out[scenario][k]["median"] / out["render"][k]["median"] for k in ["wall", "cpu"])
                    print(f"| {n} | {scenario} / render | {wall:.0f}× | {cpu:.0f}× | |")
            raw["sizes"][n] = out
            sys.stdout.flush()
            if args.json:
                Path(args.json).write_text(json.dumps(raw, indent=2))
        # How each scenario grows from the smallest size to the largest.
        sizes = sorted(raw["sizes"])
        if len(sizes) > 1:
            small, large = raw["sizes"][sizes[0]], raw["sizes"][sizes[-1]]
            print()
            print(f"| growth {sizes[0]} → {sizes[-1]} ({sizes[-1] / sizes[0]:.0f}× the environments) | wall | peak RSS |")
            print("| --- | ---: | ---: |")
            for scenario in ["render", "noop", "noop_beyond_fetch"] + [f"bump_{k}" for k in kinds]:
                if scenario in small and scenario in large and "wall" in small[scenario]:
                    a, b = small[scenario], large[scenario]
                    rss = f"{b['rss']['median'] / a['rss']['median']:.1f}×" if "rss" in a else ""
                    print(f"| {LABELS.get(scenario, scenario)} | {b['wall']['median'] / a['wall']['median']:.1f}× | {rss} |")
    finally:
        if http:
            http.stop()
    if args.json:
        Path(args.json).write_text(json.dumps(raw, indent=2))
    if not args.keep:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
