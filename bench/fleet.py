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
unchanged fleet has nothing to do. `bump` commits new versions (and image
tags) of both channels to the remote's main branch, which changes every
environment.

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
    git(work, "init", "-q", "-b", "main")
    git(work, "add", "-A")
    git(work, "-c", "user.name=fleet", "-c", "user.email=fleet@example.com", "commit", "-q", "-m", f"A fleet of {args.envs} environments")
    git(out, "clone", "-q", "--bare", str(work), "remote.git")
    git(work, "remote", "add", "origin", str(out / "remote.git"))
    git(work, "fetch", "-q", "origin")
    print(f"{out}/remote.git: {args.envs} environments")


def bump(args):
    out = Path(args.dir).resolve()
    work = out / "work"
    # A copied fleet still names the original remote.
    git(work, "remote", "set-url", "origin", str(out / "remote.git"))
    git(work, "pull", "-q", "--ff-only", "origin", "main")
    for channel in ["stable", "canary"]:
        path = work / "channels" / f"{channel}.yaml"
        text = path.read_text()
        version = re.search(r'version: "([^"]+)"', text).group(1)
        parts = version.split("-")[0].split(".")
        parts[1] = str(int(parts[1]) + 1)
        new = ".".join(parts) + ("-rc.1" if "-" in version else "")
        text = text.replace(f'"{version}"', f'"{new}"').replace(f":{version}", f":{new}")
        path.write_text(text)
        print(f"{channel}: {version} -> {new}")
    git(work, "-c", "user.name=fleet", "-c", "user.email=fleet@example.com", "commit", "-q", "-am", "Publish new channel releases")
    git(work, "push", "-q", "origin", "main")


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
