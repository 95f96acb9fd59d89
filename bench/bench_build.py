"""`mlpipe build --target all` against `python -c "import sagemaker, stepfunctions"`.

Three commands, each a fresh subprocess (interpreter start-up and imports included, which is
what a person waits for), run side by side: every repetition runs each once, in a rotating
order, so load from anything else on the machine falls on all of them alike.

- ``import``: ``python -c "import sagemaker, stepfunctions"``, the floor a render pays;
- ``cold``: ``mlpipe build --config config/examples/abalone.yaml --target all`` with an empty
  render cache (a new ``MLPIPE_CACHE_DIR`` each time) into a new directory;
- ``unchanged``: the same build again, the cache holding both definitions (rebuilt into the
  same directory).

``--before PATH`` adds a fourth command, the same cold build run from another checkout (e.g.
``git worktree add /tmp/before <commit>``), to measure a change.

Wall time (median, min) and CPU time (user + system of the child; less disturbed by other work
on a shared machine) are reported, and the ratio of each to the import.

    .venv/bin/python bench/bench_build.py [-n 7] [--before PATH] [--write]

``--write`` replaces the section "## mlpipe build vs importing the SDKs" of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from bench_status import write  # noqa: E402

CONFIG = ROOT / "config" / "examples" / "abalone.yaml"
SECTION = "## mlpipe build vs importing the SDKs"
TARGETS = {"cold": 1.3, "unchanged": 0.3}


def timed(cmd: list[str], env: dict[str, str], cwd: Path) -> tuple[float, float]:
    """(wall, cpu) seconds of one subprocess."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=cwd)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{proc.stderr}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def base_env() -> dict[str, str]:
    env = {**os.environ, "AWS_CONFIG_FILE": "/dev/null", "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
           "AWS_EC2_METADATA_DISABLED": "true"}
    for k in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "MLPIPE_AWS_REGION", "MLPIPE_AWS_ACCOUNT_ID", "MLPIPE_AWS_BUCKET",
              "MLPIPE_AWS_PREFIX"):
        env.pop(k, None)
    return env


def run(n: int, before: Path | None = None) -> dict:
    work = Path(tempfile.mkdtemp(prefix="mlpipe-bench-build-"))
    env = base_env()
    warm_cache = work / "warm-cache"
    build = [sys.executable, "-m", "workflows.cli", "build", "--config", str(CONFIG), "--target", "all", "--out"]
    counter = iter(range(10**6))

    def cold(tree: Path):
        def go():
            i = next(counter)
            return timed(build + [str(work / f"cold-{i}")], {**env, "MLPIPE_CACHE_DIR": str(work / f"cache-{i}")}, tree)
        return go

    commands = {
        "import": lambda: timed([sys.executable, "-c", "import sagemaker, stepfunctions"], env, ROOT),
        "cold": cold(ROOT),
        "unchanged": lambda: timed(build + [str(work / "unchanged")], {**env, "MLPIPE_CACHE_DIR": str(warm_cache)},
                                   ROOT),
    }
    if before is not None:
        commands["before"] = cold(before)
    load = [os.getloadavg()[0]]
    try:
        for name, go in commands.items():  # warm the OS file cache; fill the render cache
            go()
        samples: dict[str, list[tuple[float, float]]] = {k: [] for k in commands}
        names = list(commands)
        for rep in range(n):
            for name in names[rep % len(names):] + names[:rep % len(names)]:
                samples[name].append(commands[name]())
            load.append(os.getloadavg()[0])
    finally:
        shutil.rmtree(work, ignore_errors=True)
    out = {"n": n, "load": load, "cmds": {}}
    for name, s in samples.items():
        wall, cpu = [w for w, _ in s], [c for _, c in s]
        out["cmds"][name] = {"wall": statistics.median(wall), "min": min(wall), "cpu": statistics.median(cpu)}
    base = out["cmds"]["import"]
    for name, r in out["cmds"].items():
        r["ratio"] = r["wall"] / base["wall"]
        r["ratio_min"] = r["min"] / base["min"]
        r["ratio_cpu"] = r["cpu"] / base["cpu"]
        pairs = [a[0] / b[0] for a, b in zip(samples[name], samples["import"])]
        r["pairs"] = (min(pairs), max(pairs))
    return out


LABELS = {
    "import": '`python -c "import sagemaker, stepfunctions"`',
    "cold": "`mlpipe build --target all`, empty render cache",
    "unchanged": "`mlpipe build --target all`, unchanged (cache hit)",
    "before": "`mlpipe build --target all` before this change (`--before` checkout)",
}


def table(r: dict) -> str:
    rows = [
        f"Measured {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC by `bench/bench_build.py -n {r['n']}` "
        f"(Python {platform.python_version()}, {platform.machine()}, {os.cpu_count()} cores; "
        f"config/examples/abalone.yaml). Fresh subprocesses, run side by side: each repetition runs every "
        f"command once, in rotating order. The machine was shared with other engineers' work while this ran "
        f"(1-minute load average {min(r['load']):.1f} to {max(r['load']):.1f} on {os.cpu_count()} cores), so "
        f"absolute times are inflated and noisy; the ratios of medians and the CPU times are the figures to "
        f"compare.",
        "",
        "| command | median wall (s) | min wall (s) | median CPU (s) | ratio (median wall) | ratio (min) "
        "| ratio (CPU) | ratio of each pair |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, c in r["cmds"].items():
        rows.append(f"| {LABELS[name]} | {c['wall']:.2f} | {c['min']:.2f} | {c['cpu']:.2f} | "
                    f"{c['ratio']:.2f}x | {c['ratio_min']:.2f}x | {c['ratio_cpu']:.2f}x | "
                    f"{c['pairs'][0]:.2f}–{c['pairs'][1]:.2f} |")
    rows.append("")
    verdicts = []
    for name, limit in TARGETS.items():
        c = r["cmds"][name]
        met = c["ratio"] <= limit
        verdicts.append(f"{name} <= {limit}x the import: {'met' if met else 'NOT met'} ({c['ratio']:.2f}x by "
                        f"median wall time, {c['ratio_cpu']:.2f}x by CPU time)")
    rows.append("Targets: " + "; ".join(verdicts) + ".")
    return "\n".join(rows)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=7, help="repetitions of each command (default 7)")
    ap.add_argument("--before", type=Path, help="another checkout whose cold build to measure alongside")
    ap.add_argument("--write", action="store_true", help="update the section in BENCHMARKS.md")
    ns = ap.parse_args()
    r = run(ns.n, ns.before)
    body = table(r)
    print(body)
    if ns.write:
        write(body, ROOT / "BENCHMARKS.md", SECTION)
    return 0 if all(r["cmds"][k]["ratio"] <= v for k, v in TARGETS.items()) else 1


if __name__ == "__main__":
    sys.exit(main())
