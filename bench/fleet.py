#!/usr/bin/env python3
"""Generate a fleet: a config repository with N environments of the bundled
W&B stack, as a git repository with a bare remote, for hydrant's benchmarks.

    bench/fleet.py create DIR --envs 1000     # DIR/remote.git and DIR/work
    bench/fleet.py bump DIR                   # publish a new release on both channels

Each environment has its own, varied overrides: host, bucket provider (S3, GCS,
Azure), database, extra environment variables, replica counts, ingress
annotations, LDAP for some; a third carry a `pinned.yaml` that holds values
above the channel. Two thirds follow `stable`, one third `canary`. `rendered/`
is filled by `hydrant render --all` and committed, so that a reconcile on an
unchanged fleet has nothing to do. DIR/work holds the files (for `hydrant
render --repo DIR/work`); DIR/remote.git gets them as one commit on `main`,
written by one `git fast-import`. `bump` commits new versions (and image
tags) of both channels to the remote's main branch, which changes every
environment, again by fast-import straight into the remote.

Deterministic: the same N gives the same repository.
"""

import argparse
import random
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

PROVIDERS = ["s3", "gcs", "az"]


def git(cwd, *args):
    subprocess.run(["git", *args], cwd=cwd, check=True, stdout=subprocess.DEVNULL)


# Fixed dates keep the repository the same for the same N.
COMMITTER = "fleet <fleet@example.com>"
CREATED = 1767225600  # 2026-01-01
BUMPED = CREATED + 86400


def commit_header(ref, when, message, parent=None):
    """The start of a `git fast-import` commit command."""
    msg = message.encode()
    head = f"commit {ref}\ncommitter {COMMITTER} {when} +0000\ndata {len(msg)}\n".encode() + msg + b"\n"
    if parent:
        head += f"from {parent}\n".encode()
    return head


def inline_file(path, data, mode="100644"):
    """A fast-import file change with its content inline."""
    return f"M {mode} inline {path}\ndata {len(data)}\n".encode() + data + b"\n"


def fast_import(git_dir, stream):
    """Feeds one fast-import stream to the repository: one pack, no loose
    object, no `git gc` started behind the caller's back."""
    subprocess.run(["git", "-C", str(git_dir), "fast-import", "--quiet"], input=stream, check=True)


def environment_files(i, rng):
    """The environment.yaml, values.yaml and (maybe) pinned.yaml of environment i."""
    name = f"customer-{i:05d}"
    channel = "canary" if i % 3 == 2 else "stable"
    env_yaml = f"channel: {channel}\nnamespace: wandb-{i:05d}\n"
    provider = PROVIDERS[i % 3]
    bucket = {
        "s3": f"    provider: s3\n    name: acme-{name}\n    region: {rng.choice(['us-east-1', 'eu-west-1', 'ap-south-1'])}\n",
        "gcs": f"    provider: gcs\n    name: acme-{name}\n",
        "az": (
            f"    provider: az\n    name: wandb\n    accountName: acme{i:05d}\n"
            "    secretKeySecret:\n      name: wandb-bucket\n      key: storage-account-key\n"
        ),
    }[provider]
    extra = "".join(
        f"    {k}: \"{v}\"\n"
        for k, v in rng.sample(
            [
                ("LOGGING_ENABLED", "true"),
                ("GORILLA_LOG_LEVEL", rng.choice(["info", "debug", "warn"])),
                ("WANDB_TEAM", name),
                ("REGION", rng.choice(["us", "eu", "apac"])),
                ("FEATURE_FLAGS", rng.choice(["a,b", "b", "c,d,e"])),
            ],
            k=rng.randint(1, 4),
        )
    )
    ldap = ""
    if i % 7 == 0:
        ldap = (
            "  ldap:\n    enabled: true\n    host: ldaps://ldap.example.com:636\n"
            "    baseDN: dc=example,dc=com\n    bindDN: cn=wandb,dc=example,dc=com\n"
            "    bindPWSecret:\n      name: wandb-ldap\n      key: bind-password\n"
        )
    values = (
        f"global:\n  host: https://{name}.wandb.example.com\n"
        "  licenseSecret:\n    name: wandb-license\n    key: license\n"
        f"  mysql:\n    host: db-{i:05d}.mysql.example.com\n    database: wandb_{i:05d}\n"
        "    passwordSecret:\n      name: wandb-mysql\n      key: password\n"
        f"  bucket:\n{bucket}"
        f"  extraEnv:\n{extra}"
        f"{ldap}"
        f"app:\n  replicas: {rng.randint(1, 6)}\n"
        f"console:\n  replicas: {rng.randint(1, 2)}\n"
        f"weave:\n  replicas: {rng.randint(1, 3)}\n"
        f"ingress:\n  class: nginx\n  host: {name}.wandb.example.com\n"
        "  annotations:\n"
        f"    nginx.ingress.kubernetes.io/proxy-body-size: {rng.choice(['64m', '128m', '1g'])}\n"
        f"    nginx.ingress.kubernetes.io/proxy-read-timeout: \"{rng.choice([60, 300, 600])}\"\n"
        f"redis:\n  install: {'true' if i % 2 else 'false'}\n"
    )
    pinned = None
    if i % 3 == 0:
        pinned = (
            "# Held above the channel by the customer's change board.\n"
            f"app:\n  replicas: {rng.randint(2, 8)}\n"
            "parquet:\n  resources:\n    limits: null\n"
        )
    return name, env_yaml, values, pinned


def create(args):
    out = Path(args.dir).resolve()
    if out.exists():
        shutil.rmtree(out)
    work = out / "work"
    work.mkdir(parents=True)
    shutil.copytree(ROOT / "templates", work / "templates")
    shutil.copytree(ROOT / "channels", work / "channels")
    rng = random.Random(args.envs)
    for i in range(args.envs):
        name, env_yaml, values, pinned = environment_files(i, rng)
        d = work / "environments" / name
        d.mkdir(parents=True)
        (d / "environment.yaml").write_text(env_yaml)
        (d / "values.yaml").write_text(values)
        if pinned:
            (d / "pinned.yaml").write_text(pinned)
    hydrant = args.hydrant or str(ROOT / "target" / "release" / "hydrant")
    subprocess.run(
        [hydrant, "render", "--all", "--repo", str(work), "--out", str(work / "rendered")],
        check=True,
        stderr=subprocess.DEVNULL,
    )
    # The whole tree as one commit through one fast-import: at 10,000
    # environments that is some 170,000 files, which `git add` and `git
    # commit` take minutes over (and leave as loose objects for a `git gc`).
    remote = out / "remote.git"
    git(out, "init", "-q", "--bare", "-b", "main", str(remote))
    stream = [commit_header("refs/heads/main", CREATED, f"A fleet of {args.envs} environments")]
    for path in sorted(p for p in work.rglob("*") if p.is_file()):
        mode = "100755" if path.stat().st_mode & 0o100 else "100644"
        stream.append(inline_file(path.relative_to(work).as_posix(), path.read_bytes(), mode))
    fast_import(remote, b"".join(stream))
    # A forge collects garbage on its own schedule, not after each push: a
    # `git gc --auto` that a push starts in the background would race with
    # the next timed run.
    git(remote, "config", "receive.autogc", "false")
    git(remote, "config", "gc.auto", "0")
    print(f"{remote}: {args.envs} environments")


def bump(args):
    """Commits new releases of both channels straight into the remote's
    main branch (no clone, no push, so no `git gc` either)."""
    remote = Path(args.dir).resolve() / "remote.git"
    files = []
    for channel in ["stable", "canary"]:
        text = subprocess.run(["git", "-C", str(remote), "cat-file", "blob", f"main:channels/{channel}.yaml"],
                              check=True, capture_output=True, text=True).stdout
        version = re.search(r'version: "([^"]+)"', text).group(1)
        parts = version.split("-")[0].split(".")
        parts[1] = str(int(parts[1]) + 1)
        new = ".".join(parts) + ("-rc.1" if "-" in version else "")
        text = text.replace(f'"{version}"', f'"{new}"').replace(f":{version}", f":{new}")
        files.append(inline_file(f"channels/{channel}.yaml", text.encode()))
        print(f"{channel}: {version} -> {new}")
    head = commit_header("refs/heads/main", BUMPED, "Publish new channel releases", "refs/heads/main^0")
    fast_import(remote, head + b"".join(files))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    c = sub.add_parser("create", help="create DIR/work and DIR/remote.git")
    c.add_argument("dir")
    c.add_argument("--envs", type=int, default=100)
    c.add_argument("--hydrant", help="the hydrant binary [default: target/release/hydrant]")
    b = sub.add_parser("bump", help="commit new releases of both channels to the remote")
    b.add_argument("dir")
    args = p.parse_args()
    {"create": create, "bump": bump}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
