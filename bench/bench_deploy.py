"""`mlpipe deploy` of an unchanged pipeline against a bare boto3 script making the same calls,
against a moto server on 127.0.0.1 that this benchmark starts.

Setup: the server, then one deploy of config/examples/abalone.yaml (``--target stepfunctions``
by default), which creates everything and fills the render cache, in a cache directory of the
benchmark's own (the Lambda dependency wheels are copied in from the usual cache when there).
A second deploy runs with every botocore call recorded (service, operation, parameters): that
list is what an unchanged deploy asks AWS. The baseline replays exactly those calls, in order,
from a bare ``python -c "import boto3 ..."`` (one client per service): the same number of
calls, the same requests, nothing else. Both sides run as fresh subprocesses, side by side
(alternating who goes first), N times; the table reports medians.

    .venv/bin/python bench/bench_deploy.py [-n 9] [--target stepfunctions|sagemaker] [--write]

``--write`` replaces the section "## mlpipe deploy (unchanged) vs the same boto3 calls" of
BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from bench_build import timed  # noqa: E402
from bench_status import write  # noqa: E402

CONFIG = ROOT / "config" / "examples" / "abalone.yaml"
SECTION = "## mlpipe deploy (unchanged) vs the same boto3 calls"

# Runs the real CLI entry with every botocore call appended to a JSON-lines file.
RECORD = r"""
import base64, json, sys
import botocore.client

log = open(sys.argv[1], "w")
real = botocore.client.BaseClient._make_api_call

def enc(v):
    if isinstance(v, (bytes, bytearray)):
        return {"__bytes__": base64.b64encode(bytes(v)).decode()}
    if isinstance(v, dict):
        return {k: enc(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [enc(x) for x in v]
    return v

def recording(self, operation_name, api_params):
    log.write(json.dumps([self.meta.service_model.service_name, operation_name, enc(api_params)]) + "\n")
    log.flush()
    return real(self, operation_name, api_params)

botocore.client.BaseClient._make_api_call = recording
from workflows.cli.main import main
sys.exit(main(sys.argv[2:]))
"""

# The baseline: the recorded calls, replayed with plain boto3.
REPLAY = r"""
import base64, json, sys
import boto3
from botocore import xform_name

def dec(v):
    if isinstance(v, dict):
        if set(v) == {"__bytes__"}:
            return base64.b64decode(v["__bytes__"])
        return {k: dec(x) for k, x in v.items()}
    if isinstance(v, list):
        return [dec(x) for x in v]
    return v

clients = {}
for line in open(sys.argv[2]):
    service, operation, params = json.loads(line)
    if service not in clients:
        clients[service] = boto3.client(service, endpoint_url=sys.argv[1])
    getattr(clients[service], xform_name(operation))(**dec(params))
print(len(clients), "clients")
"""


def environment(cache: Path) -> dict[str, str]:
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_REGION": "us-east-1",
           "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true", "AWS_CONFIG_FILE": "/dev/null",
           "AWS_SHARED_CREDENTIALS_FILE": "/dev/null", "MLPIPE_CACHE_DIR": str(cache)}
    for k in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_SESSION_TOKEN", "MLPIPE_AWS_REGION", "MLPIPE_AWS_ACCOUNT_ID",
              "MLPIPE_AWS_BUCKET", "MLPIPE_AWS_PREFIX"):
        env.pop(k, None)
    return env


def seed_lambda_deps(cache: Path) -> None:
    """Copy the Lambda dependency wheels from the usual cache, so setup does not download."""
    default = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "mlpipe"
    source = Path(os.environ["MLPIPE_CACHE_DIR"]) if os.environ.get("MLPIPE_CACHE_DIR") else default
    if (source / "lambda-deps").is_dir():
        shutil.copytree(source / "lambda-deps", cache / "lambda-deps", symlinks=True)


def run(n: int, target: str) -> dict:
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    work = Path(tempfile.mkdtemp(prefix="mlpipe-bench-deploy-"))
    cache = work / "cache"
    cache.mkdir()
    seed_lambda_deps(cache)
    env = environment(cache)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        url = f"http://{host}:{port}"
        argv = ["--endpoint-url", url, "deploy", "--config", str(CONFIG), "--target", target, "--output", "json"]
        mlpipe = [sys.executable, "-m", "workflows.cli", *argv]
        timed(mlpipe, env, ROOT)                          # creates everything, fills the render cache
        calls_file = work / "calls.jsonl"
        proc = subprocess.run([sys.executable, "-c", RECORD, str(calls_file), *argv], capture_output=True, text=True,
                              env=env, cwd=ROOT)
        if proc.returncode != 0:
            raise SystemExit(f"recording deploy failed:\n{proc.stderr}")
        rows = json.loads(proc.stdout[proc.stdout.index("["):])
        actions = collections.Counter(r["action"] for r in rows)
        calls = [json.loads(line) for line in calls_file.read_text().splitlines()]
        operations = collections.Counter(op for _, op, _ in calls)
        bare = [sys.executable, "-c", REPLAY, url, str(calls_file)]
        timed(bare, env, ROOT)                            # warm the OS file cache
        a, b, load = [], [], [os.getloadavg()[0]]
        for i in range(n):
            for side, cmd in ((a, mlpipe), (b, bare))[:: 1 if i % 2 == 0 else -1]:
                side.append(timed(cmd, env, ROOT))
            load.append(os.getloadavg()[0])
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)
    med = lambda xs, i: statistics.median(x[i] for x in xs)  # noqa: E731
    return {"n": n, "target": target, "calls": len(calls), "operations": operations, "actions": actions,
            "services": len({s for s, _, _ in calls}), "load": load,
            "mlpipe": med(a, 0), "bare": med(b, 0), "mlpipe_min": min(x[0] for x in a),
            "bare_min": min(x[0] for x in b), "mlpipe_cpu": med(a, 1), "bare_cpu": med(b, 1)}


def table(r: dict) -> str:
    ops = ", ".join(f"{op} x{k}" if k > 1 else op for op, k in sorted(r["operations"].items()))
    actions = ", ".join(f"{k} {a}" for a, k in sorted(r["actions"].items()))
    ratio = r["mlpipe"] / r["bare"]
    return "\n".join([
        f"Measured {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC by `bench/bench_deploy.py -n {r['n']} --target "
        f"{r['target']}` (Python {platform.python_version()}, {platform.machine()}, moto server on 127.0.0.1). "
        f"Fresh subprocesses, side by side (alternating who goes first). The machine ({os.cpu_count()} cores) was "
        f"shared with other engineers' work while this ran (1-minute load average {min(r['load']):.1f} to "
        f"{max(r['load']):.1f}).",
        "",
        f"The deploy is of an unchanged pipeline (its plan: {actions}; moto cannot show the S3 EventBridge "
        f"setting, so that one is re-applied each time) with the render cache warm, so it imports neither SDK. "
        f"It makes {r['calls']} AWS calls to {r['services']} services: {ops}. The baseline replays exactly "
        f"those {r['calls']} calls with bare boto3.",
        "",
        "| command | median wall (s) | min wall (s) | median CPU (s) |",
        "|---|---:|---:|---:|",
        f"| `mlpipe deploy --config abalone.yaml --target {r['target']}` (unchanged) | {r['mlpipe']:.2f} | "
        f"{r['mlpipe_min']:.2f} | {r['mlpipe_cpu']:.2f} |",
        f"| bare boto3, the same {r['calls']} calls | {r['bare']:.2f} | {r['bare_min']:.2f} | {r['bare_cpu']:.2f} |",
        f"| **ratio** | **{ratio:.2f}x** | {r['mlpipe_min'] / r['bare_min']:.2f}x | "
        f"{r['mlpipe_cpu'] / r['bare_cpu']:.2f}x |",
    ])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=9, help="repetitions of each side (default 9)")
    ap.add_argument("--target", choices=("stepfunctions", "sagemaker"), default="stepfunctions")
    ap.add_argument("--write", action="store_true", help="update the section in BENCHMARKS.md")
    ns = ap.parse_args()
    r = run(ns.n, ns.target)
    body = table(r)
    print(body)
    if ns.write:
        write(body, ROOT / "BENCHMARKS.md", SECTION)
    return 0


if __name__ == "__main__":
    sys.exit(main())
