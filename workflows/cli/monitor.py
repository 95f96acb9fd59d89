"""``mlpipe monitor RUN_OR_MODEL [--data NEW.csv]``: check new data, or the requests a local
endpoint captured, against a run's Model Monitor baseline (its baseline stage's statistics.json
and constraints.json), as a monitoring schedule's execution would; write
``constraint_violations.json`` (and the data's ``statistics.json``) in Model Monitor's format.

RUN_OR_MODEL: a local run id or directory, a registered model (``GROUP/VERSION`` or
``local:model-package/GROUP/VERSION``: the run that registered it), or a folder holding
statistics.json and constraints.json (e.g. a baseline computed on AWS, downloaded).
``--data`` is a CSV file in the endpoint's input format (features only; a header only if the
baseline has one), or a data-capture file (JSON lines); without it, the run's endpoint captures.

Exit codes: 0 no violation, 1 a constraint is violated, 2 bad input (one message, no traceback).
"""

from __future__ import annotations

import argparse
import json
import re
import time
from pathlib import Path

from config.errors import UserError
from workflows.local import store
from workflows.local.record import DONE

EXIT_VIOLATED = 1
_MODEL = re.compile(r"^(?:local:model-package/)?(?P<group>[^/\s]+)/(?P<version>\d+)$")
CAPTURE = "outputs/data-capture/capture.jsonl"


def _run_of_model(root: Path, ref: str) -> Path | None:
    """The run that registered ``GROUP/VERSION`` (None: not a registered model)."""
    from workflows.local import registry

    m = _MODEL.match(ref)
    if not m:
        return None
    for v in registry.versions(root, m["group"]):
        if str(v.get("version")) == m["version"] and v.get("run_id"):
            return store.find_run(root, v["run_id"])
    raise UserError(f"no version {m['version']} of model package group {m['group']!r} in the local registry",
                    fix="list models with `mlpipe models list`")


def baseline_of(root: Path, ref: str, stage: str | None) -> tuple[Path, Path, Path | None, Path | None]:
    """(statistics.json, constraints.json, run directory, the endpoint's capture file) of RUN_OR_MODEL."""
    folder = Path(ref)
    if folder.is_dir() and (folder / "constraints.json").is_file():
        return folder / "statistics.json", folder / "constraints.json", None, None
    run_dir = None
    if not (folder / "run.json").is_file() and not (root / ref / "run.json").is_file():
        run_dir = _run_of_model(root, ref)
    run_dir = run_dir or store.find_run(root, ref)
    record = store.read_record(run_dir)
    kinds = {n: record["stages"][n].get("kind") for n in record["order"]}
    baselines = [n for n, k in kinds.items() if k == "baseline"]
    if not baselines:
        raise UserError(f"run {record['run_id']} has no baseline stage",
                        fix="add a stage with kind: baseline (see config/examples/abalone_monitored.yaml) and run "
                            "again, or give a folder holding statistics.json and constraints.json")
    if stage is None and len(baselines) > 1:
        raise UserError(f"run {record['run_id']} has several baseline stages ({', '.join(baselines)})",
                        fix=f"choose one with --baseline {baselines[0]}")
    name = stage or baselines[0]
    if name not in baselines:
        raise UserError(f"{name!r} is not a baseline stage of run {record['run_id']}",
                        fix=f"use --baseline {' or '.join(baselines)}")
    entry = record["stages"][name]
    outputs = entry.get("outputs") or {}
    if entry.get("status") not in DONE or "constraints" not in outputs or "statistics" not in outputs:
        raise UserError(f"the baseline stage {name!r} of run {record['run_id']} has not succeeded "
                        f"(status {entry.get('status')})", fix=f"finish the run first: mlpipe run --resume {record['run_id']}")
    stage_dir = run_dir / "stages" / name
    captures = [run_dir / "stages" / n / CAPTURE for n, k in kinds.items() if k == "endpoint"]
    capture = next((c for c in captures if c.is_file()), None)
    return (stage_dir / outputs["statistics"]["path"], stage_dir / outputs["constraints"]["path"], run_dir, capture)


def main(args: argparse.Namespace) -> int:
    from workflows.local import monitor

    root = store.runs_dir(args.runs_dir)
    statistics, constraints, run_dir, capture = baseline_of(root, args.run, args.baseline)
    if args.data:
        data = Path(args.data)
        if not data.is_file():
            raise UserError(f"--data {args.data}: no such file", fix="give a CSV file (features only, as the endpoint "
                                                                  "receives them) or a data-capture .jsonl file")
    elif capture is not None:
        data = capture
    else:
        raise UserError(f"nothing to check: {args.run} has no captured requests",
                        fix="pass --data NEW.csv (features only, as the endpoint receives them)")
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    out = Path(args.out) if args.out else (run_dir or Path.cwd()) / "monitoring" / stamp
    try:
        result = monitor.execute(str(statistics), str(constraints), str(data), str(out), args.header)
    except monitor.MonitorInputError as exc:
        raise UserError(str(exc), fix="check --data: a CSV in the endpoint's input format (features only"
                                      + (", with a header row" if args.header else ", no header") + ") or a "
                                      "data-capture file") from None
    except OSError as exc:
        raise UserError(f"cannot write the report to {out}: {exc.strerror or exc}", fix="choose another --out") from None
    violations = result["violations"]
    if args.output == "json":
        print(json.dumps({"data": str(data), "baseline": {"statistics": str(statistics), "constraints": str(constraints)},
                          **result}, indent=2))
    else:
        print(f"{result['rows']} rows of {data} checked against {constraints.parent}")
        for v in violations:
            print(f"  {v['feature_name'] or '(dataset)':<12} {v['constraint_check_type']:<24} {v['description']}")
        print(f"{len(violations)} violation(s); report: {result['report']}")
    return EXIT_VIOLATED if violations else 0
