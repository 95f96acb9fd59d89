"""``mlpipe start/status/list/history/stop/schedule/approve/reject/resume/versions/rollback`` for
either target.

Each command addresses the pipeline (``ops.target``), asks the target's backend
(``ops.backend``) and prints the answer. They stay fast: neither SDK is imported, and only
``start`` validates the whole config (its ``--param`` values are checked against the declared
parameters before anything is sent), and ``status --format`` (the picture draws its stages).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import datetime, timezone

from config.errors import UserError
from steps import naming
from workflows.aws.session import aws_errors
from workflows.cli.output import emit, ts
from workflows.ops.backend import backend_for
from workflows.ops.target import command, target_of


def start(args: argparse.Namespace, clients=None) -> int:
    params = {}
    if args.param:                                         # before any AWS call: nothing sent if wrong
        from steps.pipeline import load_spec
        from steps.params import parse_params

        params = parse_params(args.param, load_spec(args.config).parameters)
    t = target_of(args, clients)
    b = backend_for(t)
    name = args.name or f"manual-{datetime.now(timezone.utc):%Y%m%d-%H%M%S}-{os.urandom(2).hex()}"
    arn = b.start(t, params, name)
    started = {"name": name, "arn": arn, "target": t.target, "parameters": params}
    if not args.wait:
        emit(args.output, started)
        return 0
    if args.output != "json":
        print(f"started {name}; waiting (Ctrl-C stops waiting, not the run)", file=sys.stderr)
    deadline = None if args.timeout is None else time.monotonic() + args.timeout
    while True:
        info = b.describe(t, arn, name)
        if info["status"] in b.terminal:
            break
        if deadline is not None and time.monotonic() >= deadline:
            emit(args.output, {**info, "waited": "timed out"})
            print(f"error: {name} is still {info['status']} after {args.timeout:g}s", file=sys.stderr)
            return 1
        time.sleep(max(0.05, args.poll))
    emit(args.output, info)
    return 0 if info["status"] in b.succeeded else 1


def status(args: argparse.Namespace, clients=None) -> int:
    if getattr(args, "format", None):
        return _status_picture(args, clients)
    if getattr(args, "out", None):
        raise UserError("--out writes a picture: give --format svg or png with it", field="--out",
                        fix=command("status", args.execution or "EXECUTION", "--format", "svg", "--out", "run.svg",
                                    config=getattr(args, "config", None), target=getattr(args, "target", None)))
    t = target_of(args, clients)
    b = backend_for(t)
    arn = b.resolve(t, args.execution)
    info = b.describe(t, arn, args.execution or arn)
    if args.output != "json":
        info.pop("input", None)
    emit(args.output, info)
    return 0


def _status_picture(args: argparse.Namespace, clients=None) -> int:
    """``status --format svg|png``: the DAG coloured by each stage's state in the execution, its
    duration and the gate's value, drawn as ``runs show`` draws a local run. The DAG is the
    config's (validated, since the stages come from it); the states come from the backend."""
    from steps.pipeline import load_spec
    from workflows.cli.output import picture_out, write_picture

    out = picture_out(args.format, args.out, f"mlpipe status {args.execution or 'EXECUTION'}")  # before any call
    spec = load_spec(args.config)
    t = target_of(args, clients)
    b = backend_for(t)
    arn = b.resolve(t, args.execution)
    info = b.describe(t, arn, args.execution or arn)
    states = b.stage_states(t, info["arn"], spec)
    write_picture(spec, states, args.format, out, title=f"{spec.name} execution {info['name']} ({info['status']})")
    return 0


def list_(args: argparse.Namespace, clients=None) -> int:
    t = target_of(args, clients)
    items = backend_for(t).list(t, args.max)
    if args.output != "json" and not items:
        print(f"no executions of {t.resource} yet", file=sys.stderr)
        return 0
    emit(args.output, items, [("name", "NAME"), ("status", "STATUS"), ("started", "STARTED"), ("stopped", "STOPPED")])
    return 0


def stop(args: argparse.Namespace, clients=None) -> int:
    t = target_of(args, clients)
    b = backend_for(t)
    arn = b.resolve(t, args.execution)
    info = b.describe(t, arn, args.execution)        # validates it exists (clear error otherwise)
    if info["status"] in b.terminal:
        raise UserError(f"execution {info['name']} already ended ({info['status']}); nothing to stop",
                        source=t.source)
    b.stop(t, info["arn"])
    emit(args.output, {"name": info["name"], "arn": info["arn"], "previous_status": info["status"], "action": "stopped"})
    return 0


def history(args: argparse.Namespace, clients=None) -> int:
    t = target_of(args, clients)
    b = backend_for(t)
    arn = b.resolve(t, args.execution)
    info = b.describe(t, arn, args.execution)
    rows = b.history(t, info["arn"])
    if args.output == "json":
        emit("json", {"execution": info, "stages": rows})
        return 0
    print(f"{info['name']}  {info['status']}  started {ts(info['started'])}"
          + (f"  stopped {ts(info['stopped'])}" if info.get("stopped") else ""))
    emit("table", [{**r, "duration": r.get("duration") or "", "detail": r.get("error") or ""} for r in rows],
         [("stage", "STAGE"), ("type", "TYPE"), ("status", "STATUS"), ("entered", "ENTERED"),
          ("exited", "EXITED"), ("duration", "DURATION"), ("detail", "DETAIL")])
    return 0


def schedule(args: argparse.Namespace, clients=None) -> int:
    from workflows.aws import scheduler_client as scc

    t = target_of(args, clients)
    name = naming.schedule_name(t.name, t.target)
    with aws_errors("reading the schedule"):
        current = scc.get_schedule(t.aws.client("scheduler"), name)
    if current is None:
        raise UserError(f"no schedule {name} is deployed", source=t.source,
                        fix="add a schedule: section to the config and run "
                            f"`{command('deploy', config=t.source, target=t.target)}`")
    action = "unchanged"
    if args.action in ("enable", "disable"):
        with aws_errors(f"{args.action[:-1]}ing the schedule"):
            action = scc.set_state(t.aws.client("scheduler"), name, args.action == "enable")
            current = scc.get_schedule(t.aws.client("scheduler"), name)
    target = current.get("Target") or {}
    info = {"name": name, "state": current.get("State"), "expression": current.get("ScheduleExpression"),
            "timezone": current.get("ScheduleExpressionTimezone") or "UTC", "target": target.get("Arn"),
            "retries": (target.get("RetryPolicy") or {}).get("MaximumRetryAttempts"),
            "dead_letter_queue": (target.get("DeadLetterConfig") or {}).get("Arn")}
    if args.action != "show":
        info["action"] = action
    emit(args.output, info)
    return 0


def approve(args: argparse.Namespace, clients=None) -> int:
    return _answer(args, "approved", clients)


def reject(args: argparse.Namespace, clients=None) -> int:
    return _answer(args, "rejected", clients)


def _answer(args: argparse.Namespace, decision: str, clients=None) -> int:
    """A local run (``--local``, or a run directory of that name) or a deployed execution."""
    from workflows.ops.approvals import is_local

    if is_local(args.execution, getattr(args, "local", False), getattr(args, "runs_dir", None)):
        from workflows.cli import local

        return local.approve_local(args) if decision == "approved" else local.reject_local(args)
    reason = getattr(args, "reason", "") or ""
    if decision == "rejected" and not reason.strip():
        raise UserError("a rejection needs a reason", field="--reason", fix='--reason "why the model is not good enough"')
    t = target_of(args, clients)
    out = backend_for(t).answer(t, args.execution, decision, reason)
    if getattr(args, "output", "table") == "json":
        emit("json", out)
    elif "model_package" in out:
        print(f"{decision} {out['model_package']} (model package status {out['status']})")
    else:
        print(f"{decision} {out['execution'].rsplit(':', 1)[-1]} at stage {out['stage']}")
    return 0


def lineage(args: argparse.Namespace, clients=None) -> dict:
    """The lineage record of an execution (``mlpipe lineage RUN --target T``)."""
    t = target_of(args, clients)
    return backend_for(t).lineage(t, args.run_id)


def resume(args: argparse.Namespace, clients=None) -> int:
    """Redrive (Step Functions) or retry (SageMaker) an execution; a local run id (``--local``, or
    a run directory of that name, and no --target) is handed to ``mlpipe run --resume``."""
    from workflows.ops.approvals import is_local

    if args.local or (args.target is None and is_local(args.execution, False, args.runs_dir)):
        from workflows.cli.main import build_parser

        argv = ["run", "--resume", args.execution, "--output", args.output]
        if args.runs_dir:
            argv += ["--runs-dir", args.runs_dir]
        local = build_parser().parse_args(argv)
        return int(local.func(local) or 0)
    t = target_of(args, clients)
    out = backend_for(t).resume(t, args.execution)
    if args.output == "json":
        emit("json", out)
    else:
        where = f" at {out['resumes_at']}" if out.get("resumes_at") else ""
        print(f"{out['action']} {out['name']} ({out['previous_status']}){where}; "
              f"follow it with `{t.command('status', out['name'])}`")
    return 0


def versions(args: argparse.Namespace, clients=None) -> int:
    t = target_of(args, clients)
    rows = backend_for(t).versions(t)
    if args.output == "json":
        emit("json", rows)
        return 0
    if not rows:
        print(f"no versions of {t.resource} yet" + (" (deployed before mlpipe published versions: deploy again)"
                                                    if t.target == "stepfunctions" else ""), file=sys.stderr)
        return 0
    live = "live (alias)" if t.target == "stepfunctions" else "live (latest)"
    emit("table", [{**r, "live": ("*" if r.get("weight") in (None, 100) else f"{r['weight']}%") if r["live"] else "",
                    "config_hash": (r.get("config_hash") or "")[:12]} for r in rows],
         [("version", "VERSION"), ("live", live.upper()), ("created", "CREATED"), ("config_hash", "CONFIG HASH")])
    return 0


def rollback(args: argparse.Namespace, clients=None) -> int:
    t = target_of(args, clients)
    out = backend_for(t).rollback(t, args.to)
    if args.output == "json":
        emit("json", out)
    elif out["action"] == "unchanged":
        print(f"version {out['to_version']} is already what runs get; nothing changed")
    else:
        made = f" as version {out['new_version']}" if out.get("new_version") is not None else ""
        print(f"rolled back {t.resource}: runs now get version {out['to_version']}{made} "
              f"(config {(out.get('config_hash') or '?')[:12]}), was {out['from_version']}; "
              "the next `mlpipe deploy` applies the config again")
    return 0
