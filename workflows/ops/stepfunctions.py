"""Operating the Step Functions target: executions of the state machine.

Approvals: the approval stage is a ``sns:publish.waitForTaskToken`` task that put
``$$.Task.Token`` into the message attribute ``TaskToken``. The resolved token is in the
``TaskScheduled`` event's parameters, so it is read from the execution history, then answered
with ``SendTaskSuccess`` (output ``{"decision": "approved", ...}``) or ``SendTaskFailure`` with
the error name ``Rejected`` (the state machine catches it and ends the run without deploying).
"""

from __future__ import annotations

import json
from typing import Any, Iterable

from config.errors import UserError
from workflows.aws import stepfunctions_client as sfc
from workflows.aws.session import aws_errors, error_code
from workflows.ops import approvals
from workflows.ops.backend import duration, resolve_by_listing
from workflows.ops.target import Target

APPROVAL_RESOURCE = "publish.waitForTaskToken"
REJECTED = "Rejected"      # the error name the state machine's approval Catch expects


def summary(e: dict[str, Any]) -> dict[str, Any]:
    return {"name": e.get("name"), "status": e.get("status"), "started": e.get("startDate"),
            "stopped": e.get("stopDate"), "arn": e.get("executionArn")}


class StepFunctions:
    terminal = frozenset({"SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED", "PENDING_REDRIVE"})
    succeeded = frozenset({"SUCCEEDED"})

    def _client(self, t: Target):
        return t.aws.client("stepfunctions")

    def list(self, t: Target, max_results: int) -> list[dict[str, Any]]:
        def nf(exc):
            raise t.nothing_deployed()
        items = t.call("listing executions", lambda: sfc.list_executions(
            self._client(t), t.arns.state_machine(), max_results), nf)
        return [summary(e) for e in items]

    def resolve(self, t: Target, execution: str | None) -> str:
        if execution and not execution.startswith("arn:"):
            return t.arns.execution(execution)
        return resolve_by_listing(self, t, execution)

    def describe(self, t: Target, arn: str, label: str) -> dict[str, Any]:
        def nf(exc):
            self.ensure_deployed(t)
            raise t.unknown_execution(label)

        def call():  # after switching accounts, an ARN built from a name must be rebuilt
            return sfc.describe_execution(self._client(t), arn if label.startswith("arn:") else t.arns.execution(label))
        e = t.call(f"describing execution {label}", call, nf)
        out = summary(e)
        if e.get("error") or e.get("cause"):
            out["error"] = e.get("error")
            out["cause"] = e.get("cause")
        out["input"] = e.get("input")
        return out

    def ensure_deployed(self, t: Target) -> None:
        with aws_errors("describing the state machine"):
            if sfc.describe_state_machine(self._client(t), t.arns.state_machine()) is None:
                raise t.nothing_deployed()

    def start(self, t: Target, params: dict[str, Any], name: str) -> str:
        def nf(exc):
            raise t.nothing_deployed()
        def call():
            try:
                return sfc.start_execution(self._client(t), t.arns.state_machine(),
                                           json.dumps(params, sort_keys=True), name)
            except Exception as exc:
                if error_code(exc) != "ExecutionAlreadyExists":
                    raise
                raise UserError(f"an execution named {name!r} of {t.resource} already exists, started with other "
                                "parameters", source=t.source, field="--name",
                                fix="choose another --name (names stay taken for 90 days), or leave --name out; "
                                    "the same name with the same parameters returns the existing execution") from None
        resp = t.call("starting an execution", call, nf)
        return resp["executionArn"]

    def stop(self, t: Target, arn: str) -> None:
        with aws_errors("stopping the execution"):
            sfc.stop_execution(self._client(t), arn)

    def history(self, t: Target, arn: str) -> list[dict[str, Any]]:
        with aws_errors("reading the execution history"):
            events = list(sfc.execution_history(self._client(t), arn))
        return stages(events)

    def answer(self, t: Target, execution: str, decision: str, reason: str) -> dict[str, Any]:
        arn = self.resolve(t, execution)
        info = self.describe(t, arn, execution)
        if info["status"] != "RUNNING":
            raise UserError(f"execution {info['name']} is {info['status']}, not waiting for an approval",
                            fix="approve a RUNNING execution (see `mlpipe list`)")
        with aws_errors(f"reading the history of {execution}"):
            waiting = pending_approvals(sfc.execution_history(self._client(t), info["arn"]))
        if not waiting:
            raise UserError(f"execution {info['name']} is not waiting for an approval (yet)",
                            fix=f"check where it is with `mlpipe history {info['name']} --config {t.source}`")
        w = waiting[-1]
        record = approvals.decision_record(decision, reason)
        with aws_errors(f"sending the {decision} decision"):
            if decision == "approved":
                sfc.send_task_success(self._client(t), w["token"], json.dumps(record))
            else:
                sfc.send_task_failure(self._client(t), w["token"], REJECTED, reason[:32768])
        return {"execution": info["arn"], "stage": w["state"], **record}

    def lineage(self, t: Target, execution: str) -> dict[str, Any]:
        from workflows.ops import lineage

        arn = self.resolve(t, execution)

        def unknown(exc):
            raise t.unknown_execution(execution)
        e = t.call(f"describing execution {execution}", lambda: sfc.describe_execution(self._client(t), arn), unknown)
        with aws_errors("reading the execution's state machine definition"):
            definition = sfc.describe_state_machine(self._client(t), e["stateMachineArn"])["definition"]
        record = lineage.sfn_record(definition, e)
        lineage.add_data_and_registry(record, t.aws)
        return record


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
            pending.pop(name, None)
        elif kind in ("ExecutionSucceeded", "ExecutionFailed", "ExecutionAborted", "ExecutionTimedOut"):
            pending.clear()
    return list(pending.values())


def stages(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Group Step Functions history events by state: entered/exited/failed, with durations."""
    rows: dict[str, dict[str, Any]] = {}
    current: str | None = None
    for ev in events:
        kind = ev.get("type", "")
        if kind.endswith("StateEntered"):
            name = ev["stateEnteredEventDetails"]["name"]
            row = rows.setdefault(name, {"stage": name, "type": kind[: -len("StateEntered")], "status": "running",
                                         "entered": ev["timestamp"], "exited": None, "attempts": 0})
            row["attempts"] += 1
            current = name
        elif kind.endswith("StateExited"):
            name = ev["stateExitedEventDetails"]["name"]
            row = rows.get(name)
            if row is not None:
                row["exited"] = ev["timestamp"]
                if row["status"] == "running":
                    row["status"] = "succeeded"
            current = None
        elif kind.endswith("Failed") or kind.endswith("TimedOut") or kind.endswith("Aborted"):
            details = next((v for k, v in ev.items() if k.endswith("EventDetails") and isinstance(v, dict)), {})
            target = current or (list(rows)[-1] if rows else None)
            if kind.startswith("Execution"):
                if target and rows[target]["status"] == "running":
                    rows[target]["status"] = kind[len("Execution"):].lower().replace("timedout", "timed out")
                    rows[target]["exited"] = ev["timestamp"]
                continue
            if target:
                rows[target]["status"] = "failed" if kind.endswith("Failed") else "timed out"
                err = " ".join(str(details.get(k, "")) for k in ("error", "cause") if details.get(k))
                rows[target]["error"] = err[:200]
    out = []
    for row in rows.values():
        row["duration"] = duration(row["entered"], row["exited"]) if row["exited"] or row["status"] == "running" else ""
        out.append(row)
    return out
