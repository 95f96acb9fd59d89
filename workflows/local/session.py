"""A local run's life beyond one process: building its spec from the run options, resuming it,
answering its approval, finding its model. No printing: ``workflows/cli/local.py`` shows results.

Every function that changes a run takes the run's lock (``store.RunLock``): a second resume,
approve or reject of the same run at the same time gets a UserError, never a second decision.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from config.errors import UserError
from workflows.local import store
from workflows.local.record import DONE, Status


def spec_for(options):
    """Load the config with the run's data options (``config.loader.apply_data_options``) and
    check its gate threshold before the spec is built, so every stage sees the same data section."""
    from config.loader import apply_data_options, load_config
    from steps.pipeline import build_spec

    config = apply_data_options(load_config(options.config), input_data=options.input, target=options.target_column,
                                delimiter=options.delimiter, header=options.header,
                                categorical=options.categorical, problem_type=options.problem_type)
    if options.gate_threshold is not None and not any(getattr(s, "gate", None) for s in config.stages):
        raise UserError("--gate-threshold given, but this pipeline has no quality gate")
    from workflows.local.fanout import expand_for_run

    return expand_for_run(build_spec(config), options)  # a fan-out: its group once per item


def prepare_resume(root: Path, run_id: str, decision: tuple[str, str] | None = None,
                   overrides: dict[str, Any] | None = None):
    """(spec, options, record) to continue a run from where it stopped; the caller holds the
    run's lock and executes it."""
    from workflows.local.runner import Options

    path = store.find_run(root, run_id)
    record = store.read_record(path)
    status = store.effective_status(record)
    if status == Status.RUNNING:
        raise UserError(f"run {record['run_id']} is still running (pid {(record.get('owner') or {}).get('pid')})",
                        fix="wait for it to finish, or stop it first")
    if status == Status.SUCCEEDED and decision is None:
        raise UserError(f"run {record['run_id']} already succeeded; nothing to resume")
    if status == Status.REJECTED:
        raise UserError(f"run {record['run_id']} was rejected; nothing to resume", fix="start a new run")
    overrides = overrides or {}
    try:
        options = Options.from_record(record.get("options") or {})
    except TypeError as exc:
        raise UserError(f"the run record {path / 'run.json'} is damaged (its options: {exc})",
                        fix="start a new run with `mlpipe run`") from None
    if "gate_threshold" in overrides:  # the run's threshold from now on
        gates = [n for n in record["order"] if record["stages"][n]["kind"] == "gate"]
        passed = [n for n in gates if record["stages"][n]["status"] in DONE]
        if passed and overrides["gate_threshold"] != options.gate_threshold:
            raise UserError(f"the quality gate {passed[0]} of run {record['run_id']} already passed; a new "
                            "--gate-threshold cannot apply to it", fix="start a new run with --gate-threshold")
        options.gate_threshold = overrides["gate_threshold"]
        record["options"]["gate_threshold"] = overrides["gate_threshold"]
    if "tracking_uri" in overrides:
        options.tracking_uri = record["options"]["tracking_uri"] = overrides["tracking_uri"]
    if overrides.get("no_cache"):
        options.no_cache = True  # this resume recomputes (and refreshes) what it runs
    spec = spec_for(options)
    if [s.name for s in spec.stages] != record["order"]:
        raise UserError("the pipeline's stages changed since this run started", fix="start a new run")
    for name in record["order"]:
        entry = record["stages"][name]
        if entry["status"] not in DONE:
            entry["status"] = Status.PENDING
            for key in ("reason", "error", "error_kind", "exit_code", "warnings"):
                entry.pop(key, None)
    if decision is not None:
        stage, verdict = decision
        record["approvals"][stage] = verdict
    return spec, options, record


def waiting_approval(root: Path, run_id: str) -> tuple[Path, dict, str]:
    path = store.find_run(root, run_id)
    record = store.read_record(path)
    waiting = [n for n in record["order"] if record["stages"][n]["kind"] == "approval"
               and record["stages"][n]["status"] == Status.WAITING]
    if not waiting or store.effective_status(record) not in (Status.WAITING, Status.FAILED, Status.INTERRUPTED):
        raise UserError(f"run {record['run_id']} is not waiting for an approval (status "
                        f"{store.effective_status(record)})", fix="start it with `mlpipe run --approval manual`")
    return path, record, waiting[0]


def set_version_status(root: Path, record: dict, status: str, reason: str = "") -> None:
    from workflows.local import registry

    for name in record["order"]:
        stage = record["stages"][name]
        if stage["kind"] == "register" and "version" in stage.get("outputs", {}):
            registry.set_status(root, stage["outputs"]["group"]["value"], str(stage["outputs"]["version"]["value"]),
                                status, reason)
            stage["outputs"]["approval_status"] = {"value": status}


def reject(root: Path, run_id: str, reason: str) -> tuple[dict, str, list[str]]:
    """A rejection ends the run cleanly: the approval stage records it, nothing is deployed,
    the run's status is ``Rejected``. Returns (record, stage, skipped stages); the caller holds
    the run's lock."""
    path, record, stage = waiting_approval(root, run_id)
    reason = store.bounded(reason or "")
    set_version_status(root, record, "Rejected", reason)
    record["approvals"][stage] = "rejected"
    entry = record["stages"][stage]
    entry.update(status=Status.REJECTED, reason=reason, outputs={"decision": {"value": "rejected"}})
    entry.pop("error", None)
    entry.pop("exit_code", None)
    downstream = _downstream(record, stage)
    for name in downstream:
        record["stages"][name].update(status=Status.SKIPPED, reason=f"{stage} rejected")
    work = path / "stages" / f".{stage}.work"
    if work.is_dir():
        store.write_json(work / "stage.json", entry)
        store.replace_dir(work, path / "stages" / stage)
    if not any(record["stages"][n]["status"] == Status.FAILED for n in record["order"]):
        record["status"] = Status.REJECTED
    record.pop("error", None)
    if record.get("lineage", {}).get("registry"):
        record["lineage"]["registry"]["approval_status"] = "Rejected"
    record["ended"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    store.write_json(path / "run.json", record)
    return record, stage, downstream


def _downstream(record: dict, stage: str) -> list[str]:
    from workflows.local.runner import Options

    spec = spec_for(Options.from_record(record["options"]))
    return list(spec.downstream(stage))


def model_path(root: Path, model: str) -> Path:
    candidate = Path(model)
    if candidate.is_file():
        return candidate.resolve()
    path = store.find_run(root, model)
    record = store.read_record(path)
    artifact = ((record.get("lineage") or {}).get("model") or {}).get("artifact")
    if not artifact:
        for name in record["order"]:
            outs = record["stages"][name].get("outputs", {})
            if record["stages"][name]["kind"] == "training" and "model" in outs:
                artifact = str(path / "stages" / name / outs["model"]["path"] / "model.tar.gz")
    if not artifact or not Path(artifact).is_file():
        raise UserError(f"run {record['run_id']} has no trained model", fix="serve a run whose training succeeded")
    return Path(artifact)
