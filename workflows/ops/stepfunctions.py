"""Operating the Step Functions target: executions of the state machine.

Runs start through the ``live`` alias (``mlpipe start``, like the schedule and the S3 trigger), so
each execution is tied to the published version it ran (``mlpipe versions``/``rollback``: see
``versions.py``). A state machine deployed before versions existed has no alias: ``start`` then
starts it unqualified, as before.

Resume (``mlpipe resume``) is ``RedriveExecution``: the same execution ARN continues from its
unsuccessful state, with the definition it started on. What a redrive cannot do well is refused
before calling it (see ``resume``).

Approvals: the approval stage is a ``sns:publish.waitForTaskToken`` task that put
``$$.Task.Token`` into the message attribute ``TaskToken``. The resolved token is in the
``TaskScheduled`` event's parameters, so it is read from the execution history, then answered
with ``SendTaskSuccess`` (output ``{"decision": "approved", ...}``) or ``SendTaskFailure`` with
the error name ``Rejected`` (the state machine catches it and ends the run without deploying).
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Any, Iterable

from config.errors import UserError
from steps.spec import PipelineSpec
from workflows.aws import stepfunctions_client as sfc
from workflows.aws.session import aws_errors, error_code, is_not_found, same_json
from workflows.ops import approvals, versions
from workflows.ops.backend import duration, resolve_by_listing
from workflows.ops.run_states import owners, sfn_stage_states, sfn_state_runs
from workflows.ops.target import Target
from workflows.render.asl import states as asl_states

APPROVAL_RESOURCE = "publish.waitForTaskToken"
REJECTED = "Rejected"      # the error name the state machine's approval Catch expects
REDRIVABLE = frozenset({"FAILED", "ABORTED", "TIMED_OUT"})
REDRIVE_WINDOW = timedelta(days=14)   # Step Functions redrives an execution within 14 days of its end
REDRIVE_COUNT = "$$.Execution.RedriveCount"


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
        if e.get("stateMachineVersionArn"):
            out["version"] = sfc.version_number(e["stateMachineVersionArn"])
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

        def start_on(arn: str):
            try:
                return sfc.start_execution(self._client(t), arn, json.dumps(params, sort_keys=True), name)
            except Exception as exc:
                if error_code(exc) != "ExecutionAlreadyExists":
                    raise
                raise UserError(f"an execution named {name!r} of {t.resource} already exists, started with other "
                                "parameters", source=t.source, field="--name",
                                fix="choose another --name (names stay taken for 90 days), or leave --name out; "
                                    "the same name with the same parameters returns the existing execution") from None

        def call():
            try:
                return start_on(t.arns.state_machine_alias())      # the version deploy (or rollback) made live
            except Exception as exc:
                if not is_not_found(exc):
                    raise
            return start_on(t.arns.state_machine())                # no alias: deployed before versions
        resp = t.call("starting an execution", call, nf)
        return resp["executionArn"]

    def stop(self, t: Target, arn: str) -> None:
        with aws_errors("stopping the execution"):
            sfc.stop_execution(self._client(t), arn)

    def history(self, t: Target, arn: str) -> list[dict[str, Any]]:
        with aws_errors("reading the execution history"):
            events = list(sfc.execution_history(self._client(t), arn))
        return stages(events)

    def stage_states(self, t: Target, arn: str, spec: PipelineSpec) -> dict[str, dict[str, Any]]:
        with aws_errors("reading the execution history"):
            return sfn_stage_states(spec, sfc.execution_history(self._client(t), arn))

    def answer(self, t: Target, execution: str, decision: str, reason: str) -> dict[str, Any]:
        arn = self.resolve(t, execution)
        info = self.describe(t, arn, execution)
        if info["status"] != "RUNNING":
            raise UserError(f"execution {info['name']} is {info['status']}, not waiting for an approval",
                            fix=f"approve a RUNNING execution (see `{t.command('list')}`)")
        with aws_errors(f"reading the history of {execution}"):
            waiting = pending_approvals(sfc.execution_history(self._client(t), info["arn"]))
        if not waiting:
            raise UserError(f"execution {info['name']} is not waiting for an approval (yet)",
                            fix=f"check where it is with `{t.command('history', info['name'])}`")
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
        with aws_errors("reading the definition the execution ran"):
            definition = self._ran(t, e)["definition"]
        record = lineage.sfn_record(definition, e)
        lineage.add_data_and_registry(record, t.aws)
        return record

    def _ran(self, t: Target, e: dict[str, Any]) -> dict[str, Any]:
        """The state machine as this execution ran it: its version, else its revision."""
        if e.get("stateMachineVersionArn"):
            found = sfc.describe_state_machine(self._client(t), e["stateMachineVersionArn"])
            if found is not None:
                return found
        return sfc.describe_state_machine_for_execution(self._client(t), e["executionArn"])

    # --- resume, versions, rollback ------------------------------------------------------
    def versions(self, t: Target) -> list[dict[str, Any]]:
        return versions.sfn_versions(t)

    def rollback(self, t: Target, to: str | None) -> dict[str, Any]:
        return versions.sfn_rollback(t, to)

    def resume(self, t: Target, execution: str) -> dict[str, Any]:
        """Redrive a FAILED, ABORTED or TIMED_OUT execution. Refused (exit 2, one message): one
        that succeeded or still runs; one past the 14-day redrive window (or otherwise not
        redrivable, per DescribeExecution's redriveStatus); one whose definition is no longer
        what runs get (a redrive keeps the old definition); one that ended in a Fail state (a
        redrive restarts at that state and fails again); one whose failed SageMaker job stage
        names its job without the redrive count (the retry would reuse the failed job's name)."""
        sfn = self._client(t)
        arn = self.resolve(t, execution)

        def unknown(exc):
            self.ensure_deployed(t)
            raise t.unknown_execution(execution)
        e = t.call(f"describing execution {execution}", lambda: sfc.describe_execution(sfn, arn), unknown)
        name, status = e.get("name") or execution, e.get("status")
        new_run = f"start a new run instead: {t.command('start')}"
        if status == "SUCCEEDED":
            raise UserError(f"execution {name} SUCCEEDED: there is nothing to resume", source=t.source, fix=new_run)
        if status in ("RUNNING", "PENDING_REDRIVE"):
            raise UserError(f"execution {name} is {status}: only a FAILED, ABORTED or TIMED_OUT execution can be "
                            "resumed", source=t.source,
                            fix=f"wait for it (`{t.command('status', name)}`), or stop it first "
                                f"(`{t.command('stop', name)}`)")
        if status not in REDRIVABLE:
            raise UserError(f"execution {name} is {status}: it cannot be resumed", source=t.source, fix=new_run)
        self._check_redrivable(t, e, name, new_run)
        with aws_errors(f"reading the definition {name} ran"):
            ran = self._ran(t, e)
            self._check_same_definition(t, e, ran, name, new_run)
            events = sfc.execution_history(sfn, arn, reverse=True)
            at = stopped_at(events)
        self._check_restart_state(json.loads(ran["definition"]), at, name, new_run)
        with aws_errors(f"redriving execution {name}"):
            try:
                resp = sfc.redrive_execution(sfn, e.get("executionArn") or arn)
            except Exception as exc:
                if error_code(exc) != "ExecutionNotRedrivable":
                    raise
                message = getattr(exc, "response", {}).get("Error", {}).get("Message", str(exc))
                raise UserError(f"Step Functions will not redrive {name}: {message}", source=t.source,
                                fix=new_run) from None
        return {"name": name, "arn": e.get("executionArn") or arn, "previous_status": status, "action": "redriven",
                "resumes_at": at.get("state"), "redrive_count": int(e.get("redriveCount") or 0) + 1,
                "redrive_date": resp.get("redriveDate"), "version": sfc.version_number(e.get("stateMachineVersionArn"))}

    def _check_redrivable(self, t: Target, e: dict[str, Any], name: str, new_run: str) -> None:
        stopped = e.get("stopDate")
        reason = str(e.get("redriveStatusReason") or "")
        old = isinstance(stopped, datetime) and datetime.now(timezone.utc) - stopped > REDRIVE_WINDOW
        if old or "redrivable period" in reason.lower():
            when = f" (it ended {stopped.astimezone(timezone.utc):%Y-%m-%d})" if isinstance(stopped, datetime) else ""
            raise UserError(f"execution {name} is older than Step Functions' 14-day redrive window{when}",
                            source=t.source, fix=new_run)
        if e.get("redriveStatus") == "NOT_REDRIVABLE":
            raise UserError(f"Step Functions cannot redrive execution {name}: {reason or 'not redrivable'}",
                            source=t.source, fix=new_run)

    def _check_same_definition(self, t: Target, e: dict[str, Any], ran: dict[str, Any], name: str,
                               new_run: str) -> None:
        """A redrive runs the definition the execution started on; refuse when runs now get another."""
        sfn = self._client(t)
        live_arn = sfc.alias_target(sfc.describe_alias(sfn, t.arns.state_machine_alias()))
        ran_arn = e.get("stateMachineVersionArn")
        if live_arn is not None and live_arn == ran_arn:
            return
        current = sfc.describe_state_machine(sfn, live_arn or t.arns.state_machine())
        if current is None:
            raise t.nothing_deployed()
        if same_json(ran.get("definition", "{}"), current.get("definition", "{}")):
            return
        was = f"version {sfc.version_number(ran_arn)}" if ran_arn else "an earlier definition"
        now = f"version {sfc.version_number(live_arn)}" if live_arn else "the current definition"
        raise UserError(f"execution {name} ran {was} of {t.resource}, and runs now get {now}: a redrive would "
                        "resume the old definition (Step Functions redrives with the definition an execution "
                        "started on)", source=t.source, fix=new_run)

    def _check_restart_state(self, asl: dict[str, Any], at: dict[str, Any], name: str, new_run: str) -> None:
        state = asl_states(asl).get(at.get("state") or "", {})
        if state.get("Type") == "Fail":
            after = f" after stage {at['after']!r} failed" if at.get("after") else ""
            raise UserError(f"execution {name} ended in its Fail state {at['state']!r}{after}; a redrive restarts at "
                            "the state that failed, that Fail state, so it would fail again at once",
                            fix=new_run + " (a stage's own failure, not caught into a Fail state, can be resumed)")
        if state.get("Type") == "Task":
            params = state.get("Parameters") or {}
            stale = sorted(k[:-2] for k, v in params.items()
                           if k.endswith("JobName.$") and REDRIVE_COUNT not in str(v))
            if stale:
                raise UserError(f"execution {name} stopped at stage {at['state']!r}, whose {stale[0]} does not "
                                f"include {REDRIVE_COUNT}: a redrive would create the job under the name the failed "
                                "attempt used, which SageMaker refuses",
                                fix=new_run + " (redeploy first with an mlpipe that puts the redrive count in job names)")


def stopped_at(events_newest_first: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Where an execution stopped: the state entered last and, when that is a Fail state, the
    stage whose error led there: ``{state, type, after}``."""
    out: dict[str, Any] = {}
    for ev in events_newest_first:
        kind = ev.get("type", "")
        if not out and kind.endswith("StateEntered"):
            out = {"state": ev["stateEnteredEventDetails"]["name"], "type": kind[: -len("StateEntered")]}
            if out["type"] != "Fail":
                return out
        elif out and kind.endswith("StateExited"):
            out["after"] = ev["stateExitedEventDetails"]["name"]
            return out
    return out


def pending_approvals(events: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Approval tasks scheduled and not yet answered: [{state, token, scheduled}]."""
    events = list(events)
    owner = owners(events)
    pending: dict[str, dict[str, Any]] = {}
    for ev in events:
        kind, state = ev.get("type", ""), owner(ev)
        if kind == "TaskScheduled":
            d = ev.get("taskScheduledEventDetails", {})
            if d.get("resourceType") == "sns" and d.get("resource") == APPROVAL_RESOURCE and state:
                try:
                    params = json.loads(d.get("parameters") or "{}")
                    token = params["MessageAttributes"]["TaskToken"]["StringValue"]
                except (ValueError, KeyError, TypeError):
                    continue
                pending[state] = {"state": state, "token": token, "scheduled": ev.get("timestamp")}
        elif kind in ("TaskSucceeded", "TaskFailed", "TaskTimedOut", "TaskStateExited", "TaskSubmitFailed",
                      "TaskStartFailed"):
            pending.pop((ev.get("stateExitedEventDetails") or {}).get("name") or state, None)
        elif kind in ("ExecutionSucceeded", "ExecutionFailed", "ExecutionAborted", "ExecutionTimedOut"):
            pending.clear()
    return list(pending.values())


def stages(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The history state by state (Parallel branches' events interleave; ``run_states`` ties
    each event to its state): entered/exited/failed, attempts, durations."""
    out = []
    for name, run in sfn_state_runs(events).items():
        if run["type"] == "Parallel":
            continue                    # a frame around stages, not a stage
        row = {"stage": name, "type": run["type"], "status": run["status"], "entered": run["entered"],
               "exited": run.get("exited"), "attempts": run["attempts"]}
        if run.get("error"):
            row["error"] = run["error"]
        row["duration"] = duration(row["entered"], row["exited"]) if row["exited"] or row["status"] == "running" else ""
        out.append(row)
    return out
