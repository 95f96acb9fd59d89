"""Operate a deployed pipeline: start, status, list, history, stop, schedule.

Both targets (``--target stepfunctions|sagemaker``). These commands stay fast: they never
import ``sagemaker`` or ``stepfunctions`` (nor the renderers), and, except ``start`` (which
validates ``--param`` against the declared parameters), they read only the few fields of
the config they need (pipeline name, region, account) instead of validating all of it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from config.errors import UserError
from steps import naming
from workflows.aws.session import Aws, aws_errors, from_args, is_not_found

DEFAULT_CONFIG = Path(__file__).resolve().parents[1] / "config" / "examples" / "quickstart.yaml"
SFN_TERMINAL = {"SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED", "PENDING_REDRIVE"}
SM_TERMINAL = {"Succeeded", "Failed", "Stopped"}
SUCCEEDED = {"SUCCEEDED", "Succeeded"}


# --- the config, lightly ---------------------------------------------------------------------

@dataclass
class Target:
    """What the ops commands need to address a deployed pipeline."""

    name: str                 # pipeline name from the config
    target: str               # stepfunctions | sagemaker
    region: str
    config_account: str | None
    aws: Aws
    source: str
    _account: str | None = None

    @property
    def partition(self) -> str:
        return "aws-cn" if self.region.startswith("cn-") else "aws-us-gov" if self.region.startswith("us-gov-") else "aws"

    @property
    def account(self) -> str:
        if self._account is None:
            self._account = self.config_account or self.aws.account_id()
        return self._account

    def real_account(self) -> bool:
        """Switch to the caller's account if the config's differs; True if it changed."""
        real = self.aws.account_id()
        changed = real != self._account
        self._account = real
        return changed

    @property
    def resource(self) -> str:
        return (naming.state_machine_name(self.name) if self.target == "stepfunctions"
                else naming.sagemaker_pipeline_name(self.name))

    @property
    def state_machine_arn(self) -> str:
        return f"arn:{self.partition}:states:{self.region}:{self.account}:stateMachine:{self.resource}"

    def execution_arn(self, name: str) -> str:
        return f"arn:{self.partition}:states:{self.region}:{self.account}:execution:{self.resource}:{name}"

    def nothing_deployed(self) -> UserError:
        what = "state machine" if self.target == "stepfunctions" else "SageMaker pipeline"
        return UserError(f"nothing deployed yet: {what} {self.resource} does not exist in {self.region}",
                         source=self.source,
                         fix=f"run `mlpipe deploy --config {self.source} --target {self.target}` first "
                             "(or check --region / --target)")


def read_light(path: str | None) -> tuple[dict[str, Any], str]:
    """The config document without full validation (a typo elsewhere must not block `status`)."""
    from config.loader import read_document

    p = Path(path) if path else DEFAULT_CONFIG
    doc = read_document(p)
    if not isinstance(doc.get("pipeline"), dict) or "name" not in doc["pipeline"]:
        raise UserError("no pipeline.name in the config", source=str(p), field="pipeline.name",
                        fix="see config/examples/ for a valid config")
    return doc, str(p)


def target_of(args: argparse.Namespace, clients=None) -> Target:
    doc, source = read_light(getattr(args, "config", None))
    aws_doc = doc.get("aws") or {}
    region = os.environ.get("MLPIPE_AWS_REGION") or aws_doc.get("region")
    account = os.environ.get("MLPIPE_AWS_ACCOUNT_ID") or aws_doc.get("account_id")
    aws = from_args(args, region, clients)
    region = aws.region or aws.region_name
    return Target(name=str(doc["pipeline"]["name"]), target=getattr(args, "target", "stepfunctions"),
                  region=region, config_account=str(account) if account else None, aws=aws, source=source)


def _call(t: Target, doing: str, fn: Callable[[], Any], on_not_found: Callable[[Exception], Any] | None = None):
    """Run an AWS call; on not-found try the caller's real account once (the config may name
    another account than deploy used), then explain."""
    with aws_errors(doing):
        try:
            return fn()
        except Exception as exc:
            if not is_not_found(exc):
                raise
            if t.config_account and t.real_account():
                try:
                    return fn()
                except Exception as exc2:
                    if not is_not_found(exc2):
                        raise
                    exc = exc2
            if on_not_found is not None:
                return on_not_found(exc)
            raise


# --- parameters ------------------------------------------------------------------------------

def parse_params(raw: list[str], config: str | None) -> dict[str, Any]:
    """``--param K=V`` checked against the declared parameters (nothing is sent if one is wrong)."""
    if not raw:
        return {}
    from steps.pipeline import load_spec

    spec = load_spec(config)
    declared = {p.name: p for p in spec.parameters}
    out: dict[str, Any] = {}
    for item in raw:
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise UserError(f"--param {item!r} is not NAME=VALUE", field="--param",
                            fix=f"e.g. --param {next(iter(declared), 'Name')}=value")
        if key not in declared:
            raise UserError(f"unknown parameter {key!r}", field="--param",
                            fix=f"declared parameters: {', '.join(sorted(declared)) or 'none'}")
        param = declared[key]
        try:
            out[key] = param.coerce(value)
        except (TypeError, ValueError) as exc:
            raise UserError(f"parameter {key} ({param.type}): {exc}", field="--param",
                            fix=f"give a {param.type} value, e.g. --param {key}={param.default}") from None
    return out


# --- formatting -------------------------------------------------------------------------------

def _ts(v: Any) -> str:
    if isinstance(v, datetime):
        return v.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
    return "" if v is None else str(v)


def _dur(a: Any, b: Any) -> str:
    if not isinstance(a, datetime):
        return ""
    end = b if isinstance(b, datetime) else datetime.now(timezone.utc)
    secs = max(0, int((end - a).total_seconds()))
    h, rem = divmod(secs, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s" if m else f"{s}s"


def _jsonable(v: Any) -> Any:
    if isinstance(v, datetime):
        return v.astimezone(timezone.utc).isoformat()
    if isinstance(v, dict):
        return {k: _jsonable(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_jsonable(x) for x in v]
    return v


def emit(output: str, data: Any, columns: list[tuple[str, str]] | None = None) -> None:
    """JSON for scripts, an aligned plain-text table (or key: value lines) for people."""
    if output == "json":
        print(json.dumps(_jsonable(data), indent=2, default=str))
        return
    if isinstance(data, dict):
        width = max(len(k) for k in data) if data else 0
        for k, v in data.items():
            if v is not None:
                print(f"{k:<{width}}  {_ts(v) if isinstance(v, datetime) else v}")
        return
    columns = columns or [(k, k.upper()) for k in (data[0] if data else {})]
    table = [[h for _, h in columns]] + [[_ts(r.get(k)) for k, _ in columns] for r in data]
    widths = [max(len(row[i]) for row in table) for i in range(len(columns))]
    for row in table:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())


# --- executions: one shape for both targets ------------------------------------------------------

def _sfn_summary(e: dict[str, Any]) -> dict[str, Any]:
    return {"name": e.get("name"), "status": e.get("status"), "started": e.get("startDate"),
            "stopped": e.get("stopDate"), "arn": e.get("executionArn")}


def _sm_summary(e: dict[str, Any]) -> dict[str, Any]:
    arn = e.get("PipelineExecutionArn", "")
    return {"name": e.get("PipelineExecutionDisplayName") or arn.rsplit("/", 1)[-1],
            "status": e.get("PipelineExecutionStatus"), "started": e.get("StartTime") or e.get("CreationTime"),
            "stopped": e.get("LastModifiedTime") if e.get("PipelineExecutionStatus") in SM_TERMINAL else None,
            "arn": arn}


def _list(t: Target, max_results: int) -> list[dict[str, Any]]:
    if t.target == "stepfunctions":
        from workflows.aws import stepfunctions_client as sfc

        def nf(exc):
            raise t.nothing_deployed()
        items = _call(t, "listing executions", lambda: sfc.list_executions(
            t.aws.client("stepfunctions"), t.state_machine_arn, max_results), nf)
        return [_sfn_summary(e) for e in items]
    from workflows.aws import sagemaker_client as smc

    def nf(exc):
        raise t.nothing_deployed()
    items = _call(t, "listing pipeline executions", lambda: smc.list_pipeline_executions(
        t.aws.client("sagemaker"), t.resource, max_results), nf)
    return [_sm_summary(e) for e in items]


def resolve(t: Target, execution: str | None) -> str:
    """An execution ARN from a name, an ARN, or nothing (the latest)."""
    if execution and execution.startswith("arn:"):
        return execution
    if t.target == "stepfunctions" and execution:
        return t.execution_arn(execution)
    items = _list(t, 1 if not execution else 100)
    if not execution:
        if not items:
            raise UserError(f"no executions of {t.resource} yet", source=t.source,
                            fix=f"start one: mlpipe start --config {t.source} --target {t.target}")
        return items[0]["arn"]
    for item in items:
        if execution in (item["name"], item["arn"].rsplit("/", 1)[-1]):
            return item["arn"]
    raise _unknown_execution(t, execution)


def _unknown_execution(t: Target, execution: str) -> UserError:
    return UserError(f"execution {execution!r} not found for {t.resource}", source=t.source,
                     fix=f"list executions with `mlpipe list --config {t.source} --target {t.target}`")


def describe(t: Target, arn: str, label: str) -> dict[str, Any]:
    if t.target == "stepfunctions":
        from workflows.aws import stepfunctions_client as sfc

        def nf(exc):
            _ensure_deployed(t)
            raise _unknown_execution(t, label)
        e = _call(t, f"describing execution {label}",
                  lambda: sfc.describe_execution(t.aws.client("stepfunctions"), _rearn(t, arn, label)), nf)
        out = _sfn_summary(e)
        if e.get("error") or e.get("cause"):
            out["error"] = e.get("error")
            out["cause"] = e.get("cause")
        out["input"] = e.get("input")
        return out
    from workflows.aws import sagemaker_client as smc

    def nf(exc):
        _ensure_deployed(t)
        raise _unknown_execution(t, label)
    e = _call(t, f"describing execution {label}",
              lambda: smc.describe_pipeline_execution(t.aws.client("sagemaker"), arn), nf)
    out = _sm_summary(e)
    if e.get("FailureReason"):
        out["error"] = e["FailureReason"]
    return out


def _rearn(t: Target, arn: str, label: str) -> str:
    """After switching accounts, an ARN built from a name must be rebuilt."""
    return t.execution_arn(label) if not label.startswith("arn:") and t.target == "stepfunctions" else arn


def _ensure_deployed(t: Target) -> None:
    if t.target == "stepfunctions":
        from workflows.aws.stepfunctions_client import describe_state_machine

        with aws_errors("describing the state machine"):
            found = describe_state_machine(t.aws.client("stepfunctions"), t.state_machine_arn)
    else:
        from workflows.aws.sagemaker_client import describe_pipeline

        with aws_errors("describing the pipeline"):
            found = describe_pipeline(t.aws.client("sagemaker"), t.resource)
    if found is None:
        raise t.nothing_deployed()


# --- commands ------------------------------------------------------------------------------

def start(args: argparse.Namespace, clients=None) -> int:
    params = parse_params(args.param, args.config)          # before any AWS call: nothing sent if wrong
    t = target_of(args, clients)
    name = args.name or f"manual-{datetime.now(timezone.utc):%Y%m%d-%H%M%S}-{os.urandom(2).hex()}"
    if t.target == "stepfunctions":
        from workflows.aws import stepfunctions_client as sfc

        def nf(exc):
            raise t.nothing_deployed()
        resp = _call(t, "starting an execution", lambda: sfc.start_execution(
            t.aws.client("stepfunctions"), t.state_machine_arn, json.dumps(params, sort_keys=True), name), nf)
        arn = resp["executionArn"]
    else:
        from workflows.aws import sagemaker_client as smc

        def nf(exc):
            raise t.nothing_deployed()
        resp = _call(t, "starting a pipeline execution", lambda: smc.start_pipeline_execution(
            t.aws.client("sagemaker"), t.resource, params, name), nf)
        arn = resp["PipelineExecutionArn"]
    started = {"name": name, "arn": arn, "target": t.target, "parameters": params}
    if not args.wait:
        emit(args.output, started)
        return 0
    if args.output != "json":
        print(f"started {name}; waiting (Ctrl-C stops waiting, not the run)", file=sys.stderr)
    terminal = SFN_TERMINAL if t.target == "stepfunctions" else SM_TERMINAL
    deadline = None if args.timeout is None else time.monotonic() + args.timeout
    while True:
        info = describe(t, arn, name)
        if info["status"] in terminal:
            break
        if deadline is not None and time.monotonic() >= deadline:
            emit(args.output, {**info, "waited": "timed out"})
            print(f"error: {name} is still {info['status']} after {args.timeout:g}s", file=sys.stderr)
            return 1
        time.sleep(max(0.05, args.poll))
    emit(args.output, info)
    return 0 if info["status"] in SUCCEEDED else 1


def status(args: argparse.Namespace, clients=None) -> int:
    t = target_of(args, clients)
    arn = resolve(t, args.execution)
    info = describe(t, arn, args.execution or arn)
    info.pop("input", None) if args.output != "json" else None
    emit(args.output, info)
    return 0


def list_(args: argparse.Namespace, clients=None) -> int:
    t = target_of(args, clients)
    items = _list(t, args.max)
    if args.output != "json" and not items:
        print(f"no executions of {t.resource} yet", file=sys.stderr)
        return 0
    emit(args.output, items, [("name", "NAME"), ("status", "STATUS"), ("started", "STARTED"), ("stopped", "STOPPED")])
    return 0


def stop(args: argparse.Namespace, clients=None) -> int:
    t = target_of(args, clients)
    arn = resolve(t, args.execution)
    info = describe(t, arn, args.execution)        # validates it exists (clear error otherwise)
    if info["status"] in SFN_TERMINAL | SM_TERMINAL:
        raise UserError(f"execution {info['name']} already ended ({info['status']}); nothing to stop",
                        source=t.source)
    if t.target == "stepfunctions":
        from workflows.aws import stepfunctions_client as sfc

        with aws_errors(f"stopping {args.execution}"):
            sfc.stop_execution(t.aws.client("stepfunctions"), info["arn"])
    else:
        from workflows.aws import sagemaker_client as smc

        with aws_errors(f"stopping {args.execution}"):
            smc.stop_pipeline_execution(t.aws.client("sagemaker"), info["arn"])
    emit(args.output, {"name": info["name"], "arn": info["arn"], "previous_status": info["status"], "action": "stopped"})
    return 0


def history(args: argparse.Namespace, clients=None) -> int:
    t = target_of(args, clients)
    arn = resolve(t, args.execution)
    info = describe(t, arn, args.execution)
    if t.target == "stepfunctions":
        from workflows.aws import stepfunctions_client as sfc

        with aws_errors(f"reading the history of {args.execution}"):
            events = list(sfc.execution_history(t.aws.client("stepfunctions"), info["arn"]))
        rows = sfn_stages(events)
    else:
        from workflows.aws import sagemaker_client as smc

        with aws_errors(f"reading the steps of {args.execution}"):
            steps = smc.list_pipeline_execution_steps(t.aws.client("sagemaker"), info["arn"])
        rows = sm_stages(steps)
    if args.output == "json":
        emit("json", {"execution": info, "stages": rows})
        return 0
    print(f"{info['name']}  {info['status']}  started {_ts(info['started'])}"
          + (f"  stopped {_ts(info['stopped'])}" if info.get("stopped") else ""))
    emit("table", [{**r, "duration": r.get("duration") or "", "detail": r.get("error") or ""} for r in rows],
         [("stage", "STAGE"), ("type", "TYPE"), ("status", "STATUS"), ("entered", "ENTERED"),
          ("exited", "EXITED"), ("duration", "DURATION"), ("detail", "DETAIL")])
    return 0


def sfn_stages(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Group Step Functions history events by state: entered/exited/failed, with durations."""
    stages: dict[str, dict[str, Any]] = {}
    current: str | None = None
    for ev in events:
        kind = ev.get("type", "")
        if kind.endswith("StateEntered"):
            name = ev["stateEnteredEventDetails"]["name"]
            row = stages.setdefault(name, {"stage": name, "type": kind[: -len("StateEntered")], "status": "running",
                                           "entered": ev["timestamp"], "exited": None, "attempts": 0})
            row["attempts"] += 1
            current = name
        elif kind.endswith("StateExited"):
            name = ev["stateExitedEventDetails"]["name"]
            row = stages.get(name)
            if row is not None:
                row["exited"] = ev["timestamp"]
                if row["status"] == "running":
                    row["status"] = "succeeded"
            current = None
        elif kind.endswith("Failed") or kind.endswith("TimedOut") or kind.endswith("Aborted"):
            details = next((v for k, v in ev.items() if k.endswith("EventDetails") and isinstance(v, dict)), {})
            target = current or (list(stages)[-1] if stages else None)
            if kind.startswith("Execution"):
                if target and stages[target]["status"] == "running":
                    stages[target]["status"] = kind[len("Execution"):].lower().replace("timedout", "timed out")
                    stages[target]["exited"] = ev["timestamp"]
                continue
            if target:
                stages[target]["status"] = "failed" if kind.endswith("Failed") else "timed out"
                err = " ".join(str(details.get(k, "")) for k in ("error", "cause") if details.get(k))
                stages[target]["error"] = err[:200]
    out = []
    for row in stages.values():
        row["duration"] = _dur(row["entered"], row["exited"]) if row["exited"] or row["status"] == "running" else ""
        out.append(row)
    return out


def sm_stages(steps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for s in steps:
        meta = s.get("Metadata") or {}
        kind = next(iter(meta), "")
        out.append({"stage": s.get("StepName"), "type": kind,
                    "status": (s.get("StepStatus") or "").lower(), "entered": s.get("StartTime"),
                    "exited": s.get("EndTime"), "duration": _dur(s.get("StartTime"), s.get("EndTime")),
                    "error": s.get("FailureReason")})
    return out


def schedule(args: argparse.Namespace, clients=None) -> int:
    from workflows.aws import scheduler_client as scc

    t = target_of(args, clients)
    name = naming.schedule_name(t.name, t.target)
    with aws_errors("reading the schedule"):
        current = scc.get_schedule(t.aws.client("scheduler"), name)
    if current is None:
        raise UserError(f"no schedule {name} is deployed", source=t.source,
                        fix="add a schedule: section to the config and run `mlpipe deploy`")
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
