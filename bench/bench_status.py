"""`mlpipe status` vs a bare boto3 script making the same call, against a moto server.

Both run as fresh subprocesses (interpreter start-up and imports included, which is what a
person waits for). Setup: a moto server on 127.0.0.1, a state machine under the name deploy
gives it, one execution. Each side runs N times, interleaved; the table reports the medians.

    .venv/bin/python bench/bench_status.py [-n 15] [--write]

``--write`` replaces the section "## mlpipe status vs bare boto3" of BENCHMARKS.md (creating
the file if needed) and leaves every other section alone.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "config" / "examples" / "abalone.yaml"
SECTION = "## mlpipe status vs bare boto3"
LIMIT = 1.1


def _time(cmd: list[str], env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{proc.stderr}")
    return elapsed


def run(n: int) -> dict:
    sys.path.insert(0, str(ROOT))
    import boto3
    from moto.server import ThreadedMotoServer

    import logging

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_REGION": "us-east-1",
           "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true", "AWS_CONFIG_FILE": "/dev/null",
           "AWS_SHARED_CREDENTIALS_FILE": "/dev/null"}
    env.pop("AWS_PROFILE", None)
    env.pop("AWS_ENDPOINT_URL", None)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        url = f"http://{host}:{port}"
        sfn = boto3.client("stepfunctions", endpoint_url=url, region_name="us-east-1",
                           aws_access_key_id="bench", aws_secret_access_key="bench")
        sm = sfn.create_state_machine(name="mlpipe-abalone", roleArn="arn:aws:iam::123456789012:role/bench",
                                      definition=json.dumps({"StartAt": "a", "States": {"a": {"Type": "Succeed"}}}))
        arn = sfn.start_execution(stateMachineArn=sm["stateMachineArn"], name="bench-run")["executionArn"]
        mlpipe = [sys.executable, "-m", "workflows.cli", "--endpoint-url", url, "status", "--config", str(CONFIG),
                  "bench-run"]
        bare = [sys.executable, "-c",
                "import boto3, sys; c = boto3.client('stepfunctions', endpoint_url=sys.argv[1]); "
                "d = c.describe_execution(executionArn=sys.argv[2]); print(d['name'], d['status'])", url, arn]
        for cmd in (mlpipe, bare):  # warm the OS file cache
            _time(cmd, env)
        a, b = [], []
        load = [os.getloadavg()[0]]
        for i in range(n):
            for side, cmd in ((a, mlpipe), (b, bare))[:: 1 if i % 2 == 0 else -1]:  # alternate who goes first
                side.append(_time(cmd, env))
            load.append(os.getloadavg()[0])
    finally:
        server.stop()
    ma, mb = statistics.median(a), statistics.median(b)
    return {"n": n, "mlpipe": ma, "bare": mb, "ratio": ma / mb, "mlpipe_min": min(a), "bare_min": min(b),
            "load": load}


def table(r: dict) -> str:
    verdict = "within the" if r["ratio"] <= LIMIT else "ABOVE the"
    return "\n".join([
        f"Measured {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC by `bench/bench_status.py` "
        f"(Python {platform.python_version()}, {platform.machine()}, moto server on 127.0.0.1; "
        f"{r['n']} runs each, fresh subprocesses, interleaved; the same `DescribeExecution` call). "
        f"The machine ({os.cpu_count()} cores) was shared with other engineers' work while this ran "
        f"(1-minute load average {min(r['load']):.1f} to {max(r['load']):.1f}).",
        "",
        "| command | median (s) | min (s) |",
        "|---|---:|---:|",
        f"| `mlpipe status --config abalone.yaml bench-run` | {r['mlpipe']:.3f} | {r['mlpipe_min']:.3f} |",
        f"| bare `boto3.client('stepfunctions').describe_execution(...)` | {r['bare']:.3f} | {r['bare_min']:.3f} |",
        f"| **ratio** | **{r['ratio']:.2f}x** | {r['mlpipe_min'] / r['bare_min']:.2f}x |",
        "",
        f"Target: at most {LIMIT}x ({verdict} target).",
    ])


def write(section_body: str, path: Path, section: str = SECTION) -> None:
    """Replace (or append) one ``## `` section of BENCHMARKS.md, leaving the others alone."""
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    block = f"{section}\n\n{section_body}\n"
    pattern = re.compile(rf"^{re.escape(section)}\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(text):
        text = pattern.sub(lambda _: block + "\n", text, count=1).rstrip("\n") + "\n"
    else:
        text = text.rstrip("\n") + "\n\n" + block
    tmp = path.with_suffix(".md.tmp")
    tmp.write_text(text)
    tmp.replace(path)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=15, help="repetitions of each side (default 15)")
    ap.add_argument("--write", action="store_true", help="update the section in BENCHMARKS.md")
    ns = ap.parse_args()
    r = run(ns.n)
    body = table(r)
    print(body)
    if ns.write:
        write(body, ROOT / "BENCHMARKS.md")
    return 0 if r["ratio"] <= LIMIT else 1


if __name__ == "__main__":
    sys.exit(main())
