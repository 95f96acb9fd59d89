"""``mlpipe approve`` / ``mlpipe reject``: answer the approval a run is waiting for.

Step Functions: the approval stage is a ``sns:publish.waitForTaskToken`` task that put
``$$.Task.Token`` into the message attribute ``TaskToken``. The resolved token is in the
``TaskScheduled`` event's parameters, so it is read from the execution history, then answered
with ``SendTaskSuccess`` (output ``{"decision": "approved", ...}``) or ``SendTaskFailure`` with
the error name ``Rejected`` (the state machine catches it and ends the run without deploying).

SageMaker (``--target sagemaker``): the registry's approval status gates deployment, so the
answer is the status of the model package the execution registered (``UpdateModelPackage``);
approving it triggers the endpoint deployer through the model-approved EventBridge rule.

A local run id (``--local``, or a ``runs/<id>`` directory under ``--runs-dir``/``./runs``) is
handed to the local runner.
"""

from __future__ import annotations

import argparse
import getpass
import json
from datetime import datetime, timezone
from typing import Any, Iterable

from config.errors import UserError
from workflows.aws.session import aws_errors

APPROVAL_RESOURCE = "publish.waitForTaskToken"
REJECTED = "Rejected"      # the error name the state machine's approval Catch expects


def _is_local(args: argparse.Namespace) -> bool:
    if getattr(args, "local", False):
        return True
    if args.execution.startswith("arn:"):
        return False
    from workflows.local.store import runs_dir

    return (runs_dir(getattr(args, "runs_dir", None)) / args.execution).is_dir()


def pending_approvals(events: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Approval tasks scheduled and not yet answered: [{state, token, scheduled}]."""
    current: str | None = None
    pending: dict[str, dict[str, Any]] = {}
    for ev in events:
        kind = ev.get("type", "")
        if kind == "TaskStateEntered":
            current = ev["stateEnteredEventDetails"]["name"]
        elif kind == "TaskScheduled":
            d = ev.get("taskScheduledEventDetails", {})
            if d.get("resourceType") == "sns" and d.get("resource") == APPROVAL_RESOURCE and current:
                try:
                    params = json.loads(d.get("parameters") or "{}")
                    token = params["MessageAttributes"]["TaskToken"]["StringValue"]
                except (ValueError, KeyError, TypeError):
                    continue
                pending[current] = {"state": current, "token": token, "scheduled": ev.get("timestamp")}
        elif kind in ("TaskSucceeded", "TaskFailed", "TaskTimedOut", "TaskStateExited", "TaskSubmitFailed",
                      "TaskStartFailed"):
            name = (ev.get("stateExitedEventDetails") or {}).get("name") or current
            if name in pending and kind != "TaskSubmitted":
                pending.pop(name)
        elif kind in ("ExecutionSucceeded", "ExecutionFailed", "ExecutionAborted", "ExecutionTimedOut"):
            pending.clear()
    return list(pending.values())


def _waiting_token(args: argparse.Namespace, clients=None) -> tuple[Any, str, str, str]:
    """(stepfunctions client, execution ARN, state name, token) of the approval waiting now."""
    from workflows import ops
    from workflows.aws import stepfunctions_client as sfc

    args.target = "stepfunctions"
    t = ops.target_of(args, clients)
    arn = ops.resolve(t, args.execution)
    info = ops.describe(t, arn, args.execution)
    if info["status"] != "RUNNING":
        raise UserError(f"execution {info['name']} is {info['status']}, not waiting for an approval",
                        fix="approve a RUNNING execution (see `mlpipe list`)")
    sfn = t.aws.client("stepfunctions")
    with aws_errors(f"reading the history of {args.execution}"):
        waiting = pending_approvals(sfc.execution_history(sfn, info["arn"]))
    if not waiting:
        raise UserError(f"execution {info['name']} is not waiting for an approval (yet)",
                        fix=f"check where it is with `mlpipe history {info['name']}`")
    w = waiting[-1]
    return sfn, info["arn"], w["state"], w["token"]


def _who() -> str:
    try:
        return getpass.getuser()
    except Exception:
        return "unknown"


def _answer(args: argparse.Namespace, decision: str, clients=None) -> int:
    from workflows.aws import stepfunctions_client as sfc

    sfn, arn, state, token = _waiting_token(args, clients)
    record = {"decision": decision, "by": _who(), "at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    with aws_errors(f"sending the {decision} decision"):
        if decision == "approved":
            sfc.send_task_success(sfn, token, json.dumps(record))
        else:
            record["reason"] = args.reason
            sfc.send_task_failure(sfn, token, REJECTED, args.reason[:32768])
    out = {"execution": arn, "stage": state, **record}
    if getattr(args, "output", "table") == "json":
        print(json.dumps(out, indent=2))
    else:
        print(f"{decision} {arn.rsplit(':', 1)[-1]} at stage {state}")
    return 0


def registered_package(steps: Iterable[dict[str, Any]]) -> str | None:
    """The model package ARN a SageMaker pipeline execution registered, if it got that far."""
    for step in steps:
        arn = ((step.get("Metadata") or {}).get("RegisterModel") or {}).get("Arn")
        if arn:
            return arn
    return None


def _answer_package(args: argparse.Namespace, decision: str, clients=None) -> int:
    from workflows import ops
    from workflows.aws import sagemaker_client as smc

    t = ops.target_of(args, clients)
    arn = ops.resolve(t, args.execution)
    sm = t.aws.client("sagemaker")
    with aws_errors(f"reading the steps of {args.execution}"):
        package = registered_package(smc.list_pipeline_execution_steps(sm, arn))
    if package is None:
        raise UserError(f"execution {args.execution} registered no model package (yet)",
                        fix="approve an execution whose register step succeeded (see `mlpipe history`)")
    status = "Approved" if decision == "approved" else "Rejected"
    note = f"{decision} by {_who()}" + (f": {args.reason}" if decision == "rejected" else "")
    with aws_errors(f"setting {package} to {status}"):
        sm.update_model_package(ModelPackageArn=package, ModelApprovalStatus=status, ApprovalDescription=note[:1024])
    out = {"execution": arn, "model_package": package, "decision": decision, "status": status}
    if getattr(args, "output", "table") == "json":
        print(json.dumps(out, indent=2))
    else:
        print(f"{decision} {package} (model package status {status})")
    return 0


def approve(args: argparse.Namespace, clients=None) -> int:
    if _is_local(args):
        from workflows.local.cli import approve_local

        return approve_local(args)
    if getattr(args, "target", None) == "sagemaker":
        return _answer_package(args, "approved", clients)
    return _answer(args, "approved", clients)


def reject(args: argparse.Namespace, clients=None) -> int:
    if _is_local(args):
        from workflows.local.cli import reject_local

        return reject_local(args)
    if not (args.reason or "").strip():
        raise UserError("a rejection needs a reason", field="--reason", fix='--reason "why the model is not good enough"')
    if getattr(args, "target", None) == "sagemaker":
        return _answer_package(args, "rejected", clients)
    return _answer(args, "rejected", clients)
