"""Benchmark: a whole `mlpipe run` against a plain single-process script doing the same
preprocessing, training and evaluation, side by side in one run, on abalone and on 100x the
abalone rows. Reports median wall time and the peak of the whole process tree's memory (PSS).

Usage: .venv/bin/python bench/bench_local.py [--repeat N] [--write]
Needs ../shared/data/abalone.csv. With --write, updates its section of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ABALONE = ROOT.parent / "shared" / "data" / "abalone.csv"
SECTION = "## Local run vs a plain script"
PACKAGES = ["workflows", "steps", "config", "lambda_handlers"]
# issue 12's targets: wall time at 1x; wall time and whole-tree peak memory at 100x
TARGETS = {"abalone": {"wall": 1.15}, "abalone x100": {"wall": 1.3, "memory": 1.3}}

# Runs one command and reports its wall time and the peak of the *summed* resident memory of
# its whole process tree (sampled every 10 ms with psutil), since mlpipe spreads a run over a
# fork server, stage processes and the emulator while the baseline is one process.
MEASURE = (
    "import json, subprocess, sys, time, psutil\n"
    "t = time.perf_counter()\n"
    "p = subprocess.Popen(sys.argv[2:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)\n"
    "root, peak = psutil.Process(p.pid), 0\n"
    "while sys.argv[1] == 'memory' and p.poll() is None:\n"
    "    try:\n"
    "        procs = [root] + root.children(recursive=True)\n"
    "        peak = max(peak, sum(q.memory_full_info().pss for q in procs if q.is_running()))\n"
    "    except psutil.Error:\n"
    "        pass\n"
    "    time.sleep(0.01)\n"
    "err = p.communicate()[1]\n"
    "wall = time.perf_counter() - t\n"
    "print(json.dumps({'code': p.returncode, 'wall': wall, 'rss_kb': peak // 1024, 'err': err[-2000:]}))\n"
)


def measure(cmd: list[str], memory: bool = False) -> dict:
    """Wall time (memory=False: nothing else runs beside it), or peak tree memory."""
    out = subprocess.run([sys.executable, "-c", MEASURE, "memory" if memory else "time", *cmd],
                         capture_output=True, text=True, cwd=ROOT)
    result = json.loads(out.stdout)
    if result["code"] != 0:
        raise SystemExit(f"command failed: {' '.join(cmd)}\n{result['err']}")
    return result


def scenario(name: str, data: Path, repeat: int, tmp: Path) -> dict:
    mlpipe = [sys.executable, "-m", "workflows.cli", "run", "--config", str(ROOT / "config/examples/abalone.yaml"),
              "--input", str(data), "--target", "8", "--categorical", "0", "--no-header", "--no-cache",
              "--runs-dir", str(tmp / "runs"), "--output", "json"]
    baseline = [sys.executable, str(ROOT / "bench/baseline_pipeline.py"), str(data), str(tmp / "baseline")]
    # mlpipe's bytecode, as an installed package has it: a checkout whose environment sets
    # PYTHONDONTWRITEBYTECODE would otherwise compile every changed module again in every run.
    subprocess.run([sys.executable, "-m", "compileall", "-q", *PACKAGES], cwd=ROOT, check=True, capture_output=True)
    measure(baseline)  # warm the page cache and pyc files for both, then interleave
    measure(mlpipe)
    runs: dict[str, list[dict]] = {"baseline": [], "mlpipe": []}
    for _ in range(repeat):
        runs["baseline"].append(measure(baseline))
        runs["mlpipe"].append(measure(mlpipe))
    row = {"scenario": name, "rows": sum(1 for _ in open(data))}
    for key, results in runs.items():
        row[f"{key}_s"] = statistics.median(r["wall"] for r in results)
    row["baseline_rss_mb"] = measure(baseline, memory=True)["rss_kb"] / 1024
    row["mlpipe_rss_mb"] = measure(mlpipe, memory=True)["rss_kb"] / 1024
    row["ratio"] = row["mlpipe_s"] / row["baseline_s"]
    pairs = [m["wall"] / b["wall"] for m, b in zip(runs["mlpipe"], runs["baseline"])]
    row["pair_min"], row["pair_max"] = min(pairs), max(pairs)
    return row


def table(rows: list[dict], repeat: int) -> str:
    lines = [
        SECTION, "",
        f"`python bench/bench_local.py --repeat {repeat}` on {platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, {time.strftime('%Y-%m-%d')}. Median wall time of {repeat} interleaved "
        f"runs each at 1x and {max(1, repeat // 2)} at 100x; peak memory, from one more run of each, is the largest sum of proportional set size (PSS: shared pages split between the processes that share them) over "
        "the whole process tree (sampled every 10 ms), so mlpipe's fork server, stage processes and "
        "emulator all count.",
        "The baseline (`bench/baseline_pipeline.py`) does preprocessing, training and evaluation in one process. "
        "`mlpipe run` runs the whole abalone pipeline (10 stages: processing, training, evaluation, gate, model, "
        "registry, approval, endpoint, batch transform, and the Lambda against the embedded moto server), each "
        "job in a process of its own (the bookkeeping stages in the run's), without the cache (`--no-cache`). Targets: wall-time ratio <= 1.15 at 1x; "
        "wall-time and peak-memory ratios <= 1.3 at 100x.", "",
        "| data | rows | baseline s | mlpipe run s | ratio | ratio of each pair | baseline peak MB | mlpipe peak MB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(f"| {r['scenario']} | {r['rows']:,} | {r['baseline_s']:.2f} | {r['mlpipe_s']:.2f} | "
                     f"{r['ratio']:.2f} | {r['pair_min']:.2f}–{r['pair_max']:.2f} | {r['baseline_rss_mb']:.0f} | "
                     f"{r['mlpipe_rss_mb']:.0f} |")
    lines += [
        "",
        verdict(rows),
        "",
        "Where the time goes, from runs traced stage by stage on 2026-12-07 (mlpipe's bytecode compiled first, "
        "as an installed package has it). Both pay the same imports of pandas and scikit-learn (about 0.9 s "
        "here); mlpipe pays them in its fork server, which `mlpipe run` starts before it parses its arguments. "
        "The server imports one module per turn of its loop (a job waits on one import at most) with the garbage "
        "collector off (a full collection among the imports' objects cost a tenth of their time), then freezes "
        "what they made, so no stage process scans it again. At 1x the first stage starts when those imports end "
        "(0.9 to 1.0 s); preprocessing, training and evaluation then take about 0.09, 0.15 and 0.06 s in their "
        "processes (the baseline does all three in about 0.12 s in one); the bookkeeping stages (gate, model, "
        "registry, approval) run in the run's own process, about 5 ms in all; each job's process reports its "
        "own exit code; the endpoint (21 requests on one kept-alive connection, checked against the served "
        "model in process), the batch transform and the Lambda stage run side by side, about 0.14 s. What "
        "remains above the baseline is mostly what it does not do: the Lambda stage against the embedded moto "
        "server (for an input of at most 4 MB started with the run, beside the fork server's imports: about "
        "0.4 s of CPU on the other core, which slows those imports by about a tenth; measured without the "
        "Lambda stage, the run took 1.04x the baseline), the endpoint and the transform, a process per job, and "
        "the record and report.html (about 0.03 s at the end). At 100x: preprocessing takes 2.3 to 2.6 s and "
        "training 5.2 to 5.7 s (each tree grows on the whole matrix, with a negative hessian on the rows outside "
        "xgboost 1.7.4's draw: the same model byte for byte), then the tail. Memory peaks while preprocessing "
        "(the fork server with its libraries, the stage, the run's owner): above 4 MB of input the emulator "
        "starts only beside the last SageMaker job before the Lambda, so its memory never adds to that peak. "
        "A second run in the same process (a notebook, the test suite) reuses the warm server; not measured here.",
    ]
    return "\n".join(lines) + "\n"


def verdict(rows: list[dict]) -> str:
    misses = []
    for r in rows:
        target = TARGETS.get(r["scenario"], {})
        if r["ratio"] > target.get("wall", float("inf")):
            misses.append(f"{r['scenario']} wall {r['ratio']:.2f}x (target {target['wall']}x)")
        memory = r["mlpipe_rss_mb"] / r["baseline_rss_mb"]
        if memory > target.get("memory", float("inf")):
            misses.append(f"{r['scenario']} memory {memory:.2f}x (target {target['memory']}x)")
    spread = "; timings on this machine vary from run to run (see the ratio of each pair)"
    close = [f"{r['scenario']} wall {r['ratio']:.2f}x against {TARGETS[r['scenario']]['wall']}x"
             for r in rows if 0 <= TARGETS.get(r["scenario"], {}).get("wall", 0) - r["ratio"] <= 0.03]
    if not misses:
        return f"Within every target{spread}." + (f" Close to its target: {'; '.join(close)}." if close else "")
    return f"Targets missed: {'; '.join(misses)}{spread}."


def write_section(text: str) -> None:
    path = ROOT / "BENCHMARKS.md"
    doc = path.read_text() if path.exists() else "# Benchmarks\n\nMeasured, not asserted: these are not timed tests.\n"
    if SECTION in doc:
        head, _, rest = doc.partition(SECTION)
        tail = rest.split("\n## ", 1)
        doc = head + text + ("\n## " + tail[1] if len(tail) > 1 else "")
    else:
        doc = doc.rstrip("\n") + "\n\n" + text
    path.write_text(doc)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--write", action="store_true", help="update BENCHMARKS.md")
    parser.add_argument("--only", choices=["1x", "100x"], help="one scenario (not with --write)")
    args = parser.parse_args()
    if args.write and args.only:
        parser.error("--write records both scenarios; drop --only")
    if not ABALONE.is_file():
        raise SystemExit(f"{ABALONE} is missing; this benchmark measures on the real abalone data")
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        big = tmp / "abalone_x100.csv"
        text = ABALONE.read_text()
        big.write_text(text * 100)
        rows = ([scenario("abalone", ABALONE, args.repeat, tmp)] if args.only != "100x" else []) \
            + ([scenario("abalone x100", big, max(1, args.repeat // 2), tmp)] if args.only != "1x" else [])
    text = table(rows, args.repeat)
    print(text)
    if args.write:
        write_section(text)


if __name__ == "__main__":
    main()
