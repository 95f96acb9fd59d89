"""Operating the SageMaker Pipelines target: executions of the pipeline.

Approvals: the registry's approval status gates deployment, so the answer is the status of the
model package the execution registered (``UpdateModelPackage``); approving it triggers the
endpoint deployer through the model-approved EventBridge rule.

Resume (``mlpipe resume``) is ``RetryPipelineExecution``: the same execution continues from its
failed steps. botocore's model and documentation give no rule beyond "Retry the execution of the
pipeline", so what surely cannot be retried (Succeeded, Executing, Stopping) is refused first, a
pipeline whose definition changed since is refused like an old Step Functions version, and for
the rest (Failed, Stopped, CompletedWithFailures) the service decides: its refusal is one message.
"""

from __future__ import annotations

import json
import uuid
from typing import Any, Iterable

from config.errors import UserError
from steps.spec import PipelineSpec
from workflows.aws import sagemaker_client as smc
from workflows.aws.session import aws_errors, error_code, same_json
from workflows.ops import approvals, versions
from workflows.ops.backend import duration, resolve_by_listing
from workflows.ops.target import Target

TERMINAL = frozenset({"Succeeded", "Failed", "Stopped"})


def summary(e: dict[str, Any]) -> dict[str, Any]:
    arn = e.get("PipelineExecutionArn", "")
    return {"name": e.get("PipelineExecutionDisplayName") or arn.rsplit("/", 1)[-1],
            "status": e.get("PipelineExecutionStatus"), "started": e.get("StartTime") or e.get("CreationTime"),
            "stopped": e.get("LastModifiedTime") if e.get("PipelineExecutionStatus") in TERMINAL else None,
            "arn": arn}


class SageMakerPipelines:
    terminal = TERMINAL
    succeeded = frozenset({"Succeeded"})

    def _client(self, t: Target):
        return t.aws.client("sagemaker")

    def list(self, t: Target, max_results: int) -> list[dict[str, Any]]:
        def nf(exc):
            raise t.nothing_deployed()
        items = t.call("listing pipeline executions", lambda: smc.list_pipeline_executions(
            self._client(t), t.resource, max_results), nf)
        return [summary(e) for e in items]

    def resolve(self, t: Target, execution: str | None) -> str:
        return resolve_by_listing(self, t, execution)

    def describe(self, t: Target, arn: str, label: str) -> dict[str, Any]:
        def nf(exc):
            self.ensure_deployed(t)
            raise t.unknown_execution(label)
        e = t.call(f"describing execution {label}", lambda: smc.describe_pipeline_execution(self._client(t), arn), nf)
        out = summary(e)
        if e.get("FailureReason"):
            out["error"] = e["FailureReason"]
        return out

    def ensure_deployed(self, t: Target) -> None:
        with aws_errors("describing the pipeline"):
            if smc.describe_pipeline(self._client(t), t.resource) is None:
                raise t.nothing_deployed()

    def start(self, t: Target, params: dict[str, Any], name: str) -> str:
        def nf(exc):
            raise t.nothing_deployed()
        resp = t.call("starting a pipeline execution", lambda: smc.start_pipeline_execution(
            self._client(t), t.resource, params, name), nf)
        return resp["PipelineExecutionArn"]

    def stop(self, t: Target, arn: str) -> None:
        with aws_errors("stopping the pipeline execution"):
            smc.stop_pipeline_execution(self._client(t), arn)

    def history(self, t: Target, arn: str) -> list[dict[str, Any]]:
        with aws_errors("reading the execution's steps"):
            return stages(smc.list_pipeline_execution_steps(self._client(t), arn))

    def stage_states(self, t: Target, arn: str, spec: PipelineSpec) -> dict[str, dict[str, Any]]:
        from workflows.ops.run_states import sm_stage_states

        with aws_errors("reading the execution's steps"):
            return sm_stage_states(spec, smc.list_pipeline_execution_steps(self._client(t), arn))

    def answer(self, t: Target, execution: str, decision: str, reason: str) -> dict[str, Any]:
        arn = self.resolve(t, execution)
        with aws_errors(f"reading the steps of {execution}"):
            package = registered_package(smc.list_pipeline_execution_steps(self._client(t), arn))
        if package is None:
            raise UserError(f"execution {execution} registered no model package (yet)",
                            fix="approve an execution whose register step succeeded; see where this one is with "
                                f"`{t.command('history', execution)}`")
        status = "Approved" if decision == "approved" else "Rejected"
        record = approvals.decision_record(decision, reason)
        note = f"{decision} by {record['by']}" + (f": {reason}" if decision == "rejected" else "")
        with aws_errors(f"setting {package} to {status}"):
            smc.set_model_package_status(self._client(t), package, status, note)
        return {"execution": arn, "model_package": package, "decision": decision, "status": status}

    def lineage(self, t: Target, execution: str) -> dict[str, Any]:
        from workflows.ops import lineage

        arn = self.resolve(t, execution)
        sm = self._client(t)
        with aws_errors(f"describing pipeline execution {execution}"):
            e = smc.describe_pipeline_execution(sm, arn)
            definition = smc.pipeline_definition_for_execution(sm, arn)
            params = smc.parameters_for_execution(sm, arn)
        doc = json.loads(definition)
        defaults = {p["Name"]: p.get("DefaultValue") for p in doc.get("Parameters", [])}
        version = e.get("PipelineVersionId")
        record = {"run_id": arn.rsplit("/", 1)[-1], "execution_arn": arn,
                  "status": e.get("PipelineExecutionStatus"),
                  "version": {"number": int(version)} if version is not None else None,
                  **lineage.definition_facts(definition),
                  "parameters": {**defaults, **params}, "metrics": {}, "model": None, "registry": None}
        lineage.add_data_and_registry(record, t.aws)
        return record

    # --- resume, versions, rollback ------------------------------------------------------
    def versions(self, t: Target) -> list[dict[str, Any]]:
        return versions.sm_versions(t)

    def rollback(self, t: Target, to: str | None) -> dict[str, Any]:
        return versions.sm_rollback(t, to)

    def resume(self, t: Target, execution: str) -> dict[str, Any]:
        sm = self._client(t)
        arn = self.resolve(t, execution)
        info = self.describe(t, arn, execution)
        name, status = info["name"], info["status"]
        new_run = f"start a new run instead: {t.command('start')}"
        if status == "Succeeded":
            raise UserError(f"execution {name} Succeeded: there is nothing to resume", source=t.source, fix=new_run)
        if status in ("Executing", "Stopping"):
            raise UserError(f"execution {name} is {status}: only a Failed or Stopped execution can be resumed",
                            source=t.source, fix=f"wait until it ends (`{t.command('status', name)}`)")
        with aws_errors(f"comparing the definition {name} ran with the pipeline's"):
            ran = smc.pipeline_definition_for_execution(sm, arn)
            current = (smc.describe_pipeline(sm, t.resource) or {}).get("PipelineDefinition", "{}")
        if not same_json(ran, current):
            raise UserError(f"execution {name} ran an earlier definition of {t.resource}: a retry would resume "
                            "the old definition", source=t.source, fix=new_run)
        with aws_errors(f"retrying execution {name}"):
            try:
                smc.retry_pipeline_execution(sm, arn, uuid.uuid4().hex)
            except Exception as exc:
                if error_code(exc) not in ("ConflictException", "ValidationException"):
                    raise
                message = getattr(exc, "response", {}).get("Error", {}).get("Message", str(exc))
                raise UserError(f"SageMaker will not retry execution {name} ({status}): {message}",
                                source=t.source, fix=new_run) from None
        return {"name": name, "arn": arn, "previous_status": status, "action": "retried"}


def registered_package(steps: Iterable[dict[str, Any]]) -> str | None:
    """The model package ARN a SageMaker pipeline execution registered, if it got that far."""
    for step in steps:
        arn = ((step.get("Metadata") or {}).get("RegisterModel") or {}).get("Arn")
        if arn:
            return arn
    return None


def stages(steps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for s in steps:
        meta = s.get("Metadata") or {}
        kind = next(iter(meta), "")
        out.append({"stage": s.get("StepName"), "type": kind,
                    "status": (s.get("StepStatus") or "").lower(), "entered": s.get("StartTime"),
                    "exited": s.get("EndTime"), "duration": duration(s.get("StartTime"), s.get("EndTime")),
                    "error": s.get("FailureReason")})
    return out
