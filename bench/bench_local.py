"""Benchmark: a whole `mlpipe run` against a plain single-process script doing the same
preprocessing, training and evaluation, side by side in one run, on abalone and on 100x the
abalone rows. Reports median wall time and peak memory (largest single process).

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
        "runs each; peak memory, from one more run of each, is the largest sum of proportional set size (PSS: shared pages split between the processes that share them) over "
        "the whole process tree (sampled every 10 ms), so mlpipe's fork server, stage processes and "
        "emulator all count.",
        "The baseline (`bench/baseline_pipeline.py`) does preprocessing, training and evaluation in one process. "
        "`mlpipe run` runs the whole abalone pipeline (10 stages: processing, training, evaluation, gate, model, "
        "registry, approval, endpoint, batch transform, and the Lambda against the embedded moto server), each "
        "stage in its own process, without the cache (`--no-cache`). Targets: wall-time ratio <= 1.15 at 1x; "
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
        "Where the difference goes: both pay the same imports of pandas, scikit-learn and xgboost, mlpipe once, "
        "in its fork server, while the parent loads the config (xgboost and the bookkeeping modules between the "
        "first jobs). On top, mlpipe starts the moto server for the Lambda stage (in its own process since "
        "2026-11-25, forked from the warm server, and without moto.ec2's import: about 1.1 s of CPU, on the second "
        "core; it was 2 s inside the parent, whose threads then waited on it), serves the model over HTTP for the "
        "endpoint stage, writes report.html, and writes and re-reads each stage's CSV files in the container "
        "contract's paths. At 100x both grow exact trees (what xgboost 1.7 resolves `auto` to at this size); the "
        "emulator reproduces xgboost 1.7.4's row draws by growing each tree on a sliced copy of the training "
        "matrix, which costs little (about 0.02 s a round against 0.19 s for the round's trees). Where the rest "
        "of the difference goes at 100x, from one run on a quiet machine: the train stage took 13.2 s against "
        "5.5 s for the baseline's xgb.train (each round grows its tree on a new, sliced DMatrix, so xgboost sorts "
        "its columns again and has no cached predictions for it: about 0.2 s a round against 0.11 s), and the "
        "preprocess stage 7.0 s against about 2.5 s for the baseline's reading, encoding and writing (not "
        "profiled further). "
        "The memory is mostly the fork server's preloaded libraries and the emulator. A second run in the same "
        "process (a notebook, the test suite) reuses the warm server: about 1.3 s for the quick-start pipeline "
        "instead of 4.5 s, not measured here.",
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
    if not misses:
        return f"Within every target{spread}."
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
