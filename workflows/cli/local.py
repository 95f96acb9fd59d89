"""``mlpipe run`` and the local side of ``approve``/``reject``: arguments in, progress and
results out. The work is in ``workflows/local/`` (the runner, and ``session.py`` for resume and
approvals). What a run leaves behind (``runs``, ``lineage``, ``serve``, ``models``) is ``runs.py``.

Exit codes of ``mlpipe run`` (and of ``approve``, which continues the run): 0 succeeded,
1 a stage failed (or the run store could not be written), 2 bad input (a ``UserError``: one
message, no traceback; also a damaged ``run.json``, or a run busy in another command), 3 paused
for approval, 128 + signal when interrupted (130 SIGINT, 143 SIGTERM, 129 SIGHUP; the run is
``Interrupted`` and ``--resume`` continues it). A rejected run's status is ``Rejected``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from config.errors import UserError
from workflows.local import session, store
from workflows.local.record import Status

EXIT_FAILED, EXIT_WAITING = 1, 3
STATUS_STYLE = {Status.SUCCEEDED: "green", Status.CACHED: "cyan", Status.FAILED: "red", Status.RUNNING: "yellow",
                Status.WAITING: "magenta", Status.SKIPPED: "dim", Status.PENDING: "dim", Status.REJECTED: "magenta",
                Status.INTERRUPTED: "red", Status.DAMAGED: "red"}


def _options_from_args(args: argparse.Namespace):
    from steps.params import split_params
    from workflows.local.runner import Options

    if args.target_column is not None and not args.input:
        raise UserError("--target names the column to predict in --input; it needs --input PATH",
                        fix="pass --input PATH --target COL, or drop --target to run on the example's own data")
    if args.region:  # where S3 inputs are read: an unknown region is refused before the run exists
        from workflows.aws.session import check_region_name

        check_region_name(args.region)

    return Options(config=str(Path(args.config).resolve()) if args.config else None, input=args.input,
                   target_column=args.target_column, delimiter=args.delimiter, header=args.header,
                   categorical=args.categorical, problem_type=args.problem_type, gate_threshold=args.gate_threshold,
                   approval=args.approval, params=split_params(args.param), no_cache=args.no_cache,
                   tracking_uri=args.tracking_uri, exact=bool(getattr(args, "exact", False)),
                   aws={"endpoint_url": args.endpoint_url, "region": args.region, "profile": args.profile})


# --- progress and summary ----------------------------------------------------------------------

class Progress:
    """Live per-stage progress on stderr (a table on a terminal, one line per change otherwise)."""

    def __init__(self) -> None:
        from rich.console import Console

        self.console = Console(stderr=True, highlight=False)
        self.seen: dict[str, str] = {}
        self.live = None
        if self.console.is_terminal:
            from rich.live import Live

            self.live = Live(console=self.console, refresh_per_second=8, transient=False)
            self.live.start()

    def __call__(self, record: dict[str, Any]) -> None:
        if self.live is not None:
            self.live.update(_table(record, live=True))
            return
        for name in record["order"]:
            status = record["stages"][name]["status"]
            if self.seen.get(name) != status and status != Status.PENDING:
                self.seen[name] = status
                duration = record["stages"][name].get("duration")
                extra = f" ({duration:.2f}s)" if duration is not None and status != Status.RUNNING else ""
                self.console.print(f"  {name:<16} {status}{extra}")

    def close(self) -> None:
        if self.live is not None:
            self.live.stop()


def _table(record: dict[str, Any], live: bool = False):
    from rich.table import Table

    table = Table(title=f"{record['pipeline']} · {record['run_id']}", title_justify="left")
    for col in ("stage", "kind", "status", "seconds", "detail"):
        table.add_column(col, justify="right" if col == "seconds" else "left")
    for name in record["order"]:
        s = record["stages"][name]
        status = s["status"]
        if live and status == Status.RUNNING:
            status = "Running…"
        detail = ""
        outs = s.get("outputs", {})
        if "value" in outs and s["kind"] == "gate":
            detail = f"value {outs['value']['value']:.4g}"
        elif s["kind"] == "register" and "version" in outs:
            detail = f"v{outs['version']['value']} {outs.get('approval_status', {}).get('value', '')}"
        elif s["kind"] == "lambda" and "parameter" in outs:
            detail = f"{outs['parameter']['value']['name']} = {outs['parameter']['value']['value']}"
        elif s["kind"] == "transform" and "rows" in outs:
            detail = f"{outs['rows']['value']} rows"
        elif s.get("reason"):
            detail = s["reason"]
        elif s.get("error") and status == Status.FAILED and s["error"].strip():
            detail = s["error"].strip().splitlines()[-1][:70]
        dur = s.get("duration")
        table.add_row(name, s["kind"], f"[{STATUS_STYLE.get(s['status'], '')}]{status}[/]",
                      f"{dur:.2f}" if dur is not None else "", detail)
    return table


def summary(record: dict[str, Any]) -> dict[str, Any]:
    return {
        "status": record["status"],
        "run_id": record["run_id"],
        "run_dir": record["run_dir"],
        "duration": record.get("duration"),
        "stages": [{"name": n, "kind": record["stages"][n]["kind"], "status": record["stages"][n]["status"],
                    "duration": record["stages"][n].get("duration")} for n in record["order"]],
        "metrics": record.get("metrics", {}),
        "parameters": record.get("parameters", {}),
        "ssm": record.get("ssm", {}),
        "model": (record.get("lineage") or {}).get("model"),
        "registry": (record.get("lineage") or {}).get("registry"),
        "exact": record.get("exact"),
        "library_drift": record.get("library_drift") or [],
    }


def _report(record: dict[str, Any], output: str, progress: Progress | None) -> int:
    if progress is not None:
        progress.close()
    if output == "json":
        print(json.dumps(summary(record), indent=2, sort_keys=True, default=str))
    else:
        from rich.console import Console

        console = Console(stderr=False, highlight=False)
        if progress is None or progress.live is None:
            console.print(_table(record))
        metrics = record.get("metrics") or {}
        if metrics:
            console.print("metrics: " + ", ".join(f"{k}={v:.4g}" for k, v in sorted(metrics.items())))
        for name, value in (record.get("ssm") or {}).items():
            console.print(f"SSM parameter {name} = {value} (read back from the embedded emulator)")
        if record.get("library_drift"):
            console.print("library versions differ from the images' (mlpipe run --exact runs theirs):")
            for line in record["library_drift"]:
                console.print(f"  {line}", markup=False, soft_wrap=True)
        for image, python in (record.get("exact") or {}).items():
            console.print(f"exact: the {image} stages ran under {python}", markup=False, soft_wrap=True)
        console.print(f"run {record['status']}: {record['run_dir']}")
    failed = [n for n in record["order"] if record["stages"][n]["status"] == Status.FAILED]
    for name in failed:
        stage = record["stages"][name]
        error = store.bounded(stage.get("error", ""))
        if stage.get("error_kind") == "input":  # a UserError: one message, as for any bad input
            print(f"\nerror: stage {name}: {error}", file=sys.stderr)
        else:
            print(f"\nstage {name} failed; last lines of {record['run_dir']}/{stage.get('log', '')}:\n{error}",
                  file=sys.stderr)
    for warning in record.get("warnings") or []:
        print(f"warning: {warning}", file=sys.stderr)
    if record["status"] == Status.INTERRUPTED:
        from workflows.local.supervise import exit_code

        print(f"\nrun {record['run_id']} interrupted ({record.get('signal', 'signal')}); continue it with: "
              f"mlpipe run --resume {record['run_id']}", file=sys.stderr)
        return exit_code(record.get("signal_number") or 2)
    if record["status"] == Status.SUCCEEDED:
        return 0
    if record["status"] == Status.WAITING:
        print(f"\npaused for approval: mlpipe approve {record['run_id']}   (or: mlpipe reject {record['run_id']} "
              "--reason ...)", file=sys.stderr)
        return EXIT_WAITING
    # Bad input data is a user error (exit 2), like any other bad input.
    if any(record["stages"][n].get("exit_code") == 2 for n in failed):
        return 2
    return EXIT_FAILED


def _execute(spec, options, root: Path, record: dict | None, output: str, lock=None) -> int:
    from workflows.local.runner import LocalRun

    progress = Progress()
    try:
        if options.exact:  # built once, with a line on stderr while it is (minutes)
            from workflows.local.envs import prepare

            prepare(spec, log=lambda line: progress.console.print(line, highlight=False, markup=False))
        run = LocalRun(spec, options, root, record=record, observer=progress, lock=lock)
        if record is None:
            progress.console.print(f"run {run.record['run_id']} → {run.run_dir}")
        result = run.execute()
    except BaseException:
        progress.close()
        raise
    return _report(result, output, progress)


# --- commands ----------------------------------------------------------------------------------

def run(args: argparse.Namespace) -> int:
    """``mlpipe run``: a new run, or ``--resume RUN`` (which takes only ``--no-cache``,
    ``--gate-threshold`` and ``--tracking-uri`` besides). SIGINT/SIGTERM/SIGHUP before the run
    exists end it with exit 128 + signal; during the run, see ``runner.LocalRun``."""
    from workflows.local.supervise import Interrupted, signals
    from workflows.local.worker import Workers

    try:
        with signals(None):
            Workers().warm()  # first thing: the warm server's imports overlap with loading the config
            root = store.runs_dir(args.runs_dir)
            if args.resume:
                return _resume(root, args.resume, args.output, overrides=_resume_overrides(args))
            options = _options_from_args(args)
            spec = session.spec_for(options)
            from steps.params import parse_params

            parse_params(args.param, spec.parameters)  # every --param checked before anything runs
            return _execute(spec, options, root, None, args.output)
    except Interrupted as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code


def _resume_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """What a resume may change: --no-cache (this time), --gate-threshold (from now on),
    --tracking-uri. Options that define the run's data or parameters are refused."""
    fixed = {"--config": args.config, "--input": args.input, "--target": args.target_column,
             "--delimiter": args.delimiter, "--header/--no-header": args.header, "--categorical": args.categorical,
             "--problem-type": args.problem_type, "--param": args.param, "--exact": getattr(args, "exact", False)}
    given = [flag for flag, value in fixed.items() if value not in (None, [], False)]
    if given:
        raise UserError(f"--resume continues a run with the options it started with; {', '.join(given)} cannot "
                        "change", fix="start a new run with these options, or resume without them "
                                      "(--no-cache, --gate-threshold and --tracking-uri may be given)")
    out: dict[str, Any] = {}
    if args.no_cache:
        out["no_cache"] = True
    if args.gate_threshold is not None:
        out["gate_threshold"] = args.gate_threshold
    if getattr(args, "tracking_uri", None):
        out["tracking_uri"] = args.tracking_uri
    return out


def _resume(root: Path, run_id: str, output: str, decision: tuple[str, str] | None = None,
            overrides: dict[str, Any] | None = None, lock: store.RunLock | None = None) -> int:
    """Continue a run from where it stopped, holding its lock (taken here unless the caller
    holds it): a second resume/approve/reject of the same run gets a UserError."""
    if lock is None:
        with store.lock_run(root, run_id, "resume") as held:
            return _resume(root, run_id, output, decision, overrides, lock=held)
    spec, options, record = session.prepare_resume(root, run_id, decision, overrides)
    return _execute(spec, options, root, record, output, lock=lock)


def approve_local(args: argparse.Namespace) -> int:
    """Approve a paused run and continue it (the approval stage sets the registry version to
    Approved before the endpoint deploys); exactly one decision under the run's lock."""
    root = store.runs_dir(getattr(args, "runs_dir", None))
    with store.lock_run(root, args.execution, "approve") as lock:
        _, record, stage = session.waiting_approval(root, args.execution)
        return _resume(root, record["run_id"], getattr(args, "output", "table"), decision=(stage, "approved"),
                       lock=lock)


def reject_local(args: argparse.Namespace) -> int:
    """Reject a paused run: it ends ``Rejected``, nothing deployed; under the run's lock."""
    root = store.runs_dir(getattr(args, "runs_dir", None))
    with store.lock_run(root, args.execution, "reject"):
        record, stage, downstream = session.reject(root, args.execution, args.reason or "")
    if getattr(args, "output", "table") == "json":
        print(json.dumps(summary(record), indent=2, sort_keys=True, default=str))
    else:
        print(f"run {record['run_id']}: {stage} rejected ({args.reason}); skipped: {', '.join(downstream) or 'nothing'}")
    return 0
