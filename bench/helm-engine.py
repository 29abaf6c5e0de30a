#!/usr/bin/env python3
"""Times Helm's Go template engine alone, without a process per environment.

    bench/helm-engine.py FLEET_WORK_DIR      # e.g. DIR/work of bench/fleet.py create DIR

In one process, for every environment of the fleet it does what
bench/helm-template does for one: load bench/chart, read and merge the
environment's values files, render. It prints the CPU and wall time per
environment, which is `helm template`'s own cost once process start-up is
left out (compare `helm_startup` and `helm` in bench/run.py's table).
Needs helm-python-sdk and pyyaml.
"""

import importlib.machinery
import importlib.util
import sys
import time
from pathlib import Path

import helm_python as helm

from run import CHART, HelmFleet

HERE = Path(__file__).resolve().parent


def shim():
    """bench/helm-template as a module, for its merge of values files."""
    loader = importlib.machinery.SourceFileLoader("helm_template", str(HERE / "helm-template"))
    module = importlib.util.module_from_spec(importlib.util.spec_from_loader(loader.name, loader))
    loader.exec_module(module)
    return module


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    merge = shim().merge
    # The channel values files go to a scratch directory beside the fleet.
    work = Path(sys.argv[1]).resolve()
    fleet = HelmFleet("helm", work, work.parent / "helm-engine")
    cpu, wall = time.process_time(), time.perf_counter()
    for files, namespace in fleet.envs.values():
        values = {}
        for f in files:
            merge(values, helm.values_from_yaml(f.read_text()) or {})
        with helm.Chart.load(CHART) as chart:
            chart.render(values, name="wandb", namespace=namespace, is_install=True)
    n = len(fleet.envs)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    print(f"{n} environments: {cpu / n * 1000:.1f} ms CPU, {wall / n * 1000:.1f} ms wall per environment")


if __name__ == "__main__":
    main()
