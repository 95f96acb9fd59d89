"""One protocol for operating a deployed pipeline; one implementation per target.

Every ops command (start, status and its picture, list, history, stop, approve, reject, lineage,
resume, versions, rollback) asks ``backend_for(target)`` and never branches on the target itself.
Executions come back in one shape for both targets: ``{name, status, started, stopped, arn}``;
versions in one shape too: ``{version, live, created, config_hash, ...}``, newest first; a
picture's stage states in the shape ``workflows.views.graph`` draws (``ops.run_states``).
"""

from __future__ import annotations

from typing import Any, Protocol

from steps.spec import PipelineSpec
from workflows.ops.target import Target


class Backend(Protocol):
    terminal: frozenset[str]       # statuses after which nothing changes
    succeeded: frozenset[str]

    def list(self, t: Target, max_results: int) -> list[dict[str, Any]]: ...
    def resolve(self, t: Target, execution: str | None) -> str: ...
    def describe(self, t: Target, arn: str, label: str) -> dict[str, Any]: ...
    def start(self, t: Target, params: dict[str, Any], name: str) -> str: ...
    def stop(self, t: Target, arn: str) -> None: ...
    def history(self, t: Target, arn: str) -> list[dict[str, Any]]: ...
    def stage_states(self, t: Target, arn: str, spec: PipelineSpec) -> dict[str, dict[str, Any]]:
        """stage -> {status, duration, detail}; a stage that has not started is left out."""
    def answer(self, t: Target, execution: str, decision: str, reason: str) -> dict[str, Any]: ...
    def lineage(self, t: Target, execution: str) -> dict[str, Any]: ...
    def resume(self, t: Target, execution: str) -> dict[str, Any]: ...
    def versions(self, t: Target) -> list[dict[str, Any]]: ...
    def rollback(self, t: Target, to: str | None) -> dict[str, Any]: ...


def backend_for(t: Target) -> Backend:
    if t.target == "stepfunctions":
        from workflows.ops.stepfunctions import StepFunctions

        return StepFunctions()
    from workflows.ops.sagemaker import SageMakerPipelines

    return SageMakerPipelines()


def resolve_by_listing(backend: Backend, t: Target, execution: str | None) -> str:
    """An execution ARN from a name or nothing (the latest), by listing executions."""
    if execution and execution.startswith("arn:"):
        return execution
    items = backend.list(t, 1 if not execution else 100)
    if not execution:
        if not items:
            raise _no_executions(t)
        return items[0]["arn"]
    for item in items:
        if execution in (item["name"], item["arn"].rsplit("/", 1)[-1]):
            return item["arn"]
    raise t.unknown_execution(execution)


def _no_executions(t: Target):
    from config.errors import UserError

    return UserError(f"no executions of {t.resource} yet", source=t.source,
                     fix=f"start one: {t.command('start')}")


def duration(a: Any, b: Any) -> str:
    from datetime import datetime, timezone

    if not isinstance(a, datetime):
        return ""
    end = b if isinstance(b, datetime) else datetime.now(timezone.utc)
    secs = max(0, int((end - a).total_seconds()))
    h, rem = divmod(secs, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s" if m else f"{s}s"
