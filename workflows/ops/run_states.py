"""An execution's stages as the run picture draws them (``mlpipe status EXECUTION --format svg|png``).

Both targets answer in the shape ``workflows.views.graph`` draws, the same as a local run's:
stage -> ``{"status", "duration", "detail"}``, the status lowercased (it picks the fill colour);
a stage with no entry was not started.

Step Functions: a stage is one or more states. Its first state is the stage's name, except a
gate (``<gate>-read`` reads evaluation.json, the Choice ``<gate>`` compares, the Fail state
``<gate>-failed`` ends a run that did not pass) and an endpoint (``<name>-config`` ...
``<name>-done``); a rejected approval goes on to ``<name>-declined`` (in a Parallel branch, a
later check ``<name>-approved?`` may then end the run at ``<name>-declined-end``). Independent stages run in
Parallel branches, whose events interleave in the history, so an event is tied to its state
through ``previousEventId`` (back to the state's ``*StateEntered`` event), not by its place in
the history. The gate's value is in its read state's output, at ``$.stages.<gate_id>.metrics``.

SageMaker Pipelines: a stage is the steps named after it (``<name>``, or ``<name>-<suffix>``
such as ``<model>-CreateModel`` or ``<gate>-failed``). A gate is a ConditionStep whose metadata
holds only its outcome, so the picture says the value is unknown.
"""

from __future__ import annotations

import json
from typing import Any, Iterable

from steps.spec import GateStage, PipelineSpec
from workflows.ops.backend import duration

UNKNOWN = "value unknown"
# the states of a stage, as suffixes of its name (the renderer's naming); one state otherwise
SFN_STATES = {"gate": ("-read", "", "-failed"), "approval": ("", "-declined"),
              "endpoint": ("-config", "-find", "-exists", "-exists?", "-create", "-update", "-done")}
EXECUTION_END = {"ExecutionFailed": "failed", "ExecutionAborted": "aborted", "ExecutionTimedOut": "timed out"}
# worst first: a stage is in the worst state any of its states is in
SEVERITY = ("failed", "timed out", "aborted", "stopped", "rejected", "running", "succeeded")
SM_STATUS = {"starting": "running", "executing": "running", "stopping": "stopped", "stopped": "stopped",
             "failed": "failed", "succeeded": "succeeded"}


def gate_detail(value: Any) -> str:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return f"value {value:.4g}"
    return UNKNOWN


# --- Step Functions --------------------------------------------------------------------------

def owners(events: list[dict[str, Any]]):
    """A function: event -> the state it belongs to. Parallel branches interleave their events
    in the history, so an event is tied to its state through ``previousEventId`` (back to the
    state's ``*StateEntered`` event); without ids, the state entered last."""
    by_id = {ev.get("id"): ev for ev in events}
    last: dict[int, str] = {}
    current = None
    for ev in events:
        if ev.get("type", "").endswith("StateEntered"):
            current = ev["stateEnteredEventDetails"]["name"]
        last[id(ev)] = current

    def owner(ev: dict[str, Any]) -> str | None:
        prev, hops = ev.get("previousEventId"), 0
        while prev in by_id and hops < 1000:
            earlier = by_id[prev]
            if earlier.get("type", "").endswith("StateEntered"):
                return earlier["stateEnteredEventDetails"]["name"]
            prev, hops = earlier.get("previousEventId"), hops + 1
        return last.get(id(ev))
    return owner


def sfn_state_runs(events: Iterable[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Each state the history entered: ``{type, status, entered, exited, attempts, input,
    output, error}``, in the order entered. A state entered again (a redrive) starts over,
    keeping its first entry."""
    events = list(events)
    owner = owners(events)
    runs: dict[str, dict[str, Any]] = {}

    for ev in events:
        kind, at = ev.get("type", ""), ev.get("timestamp")
        if kind.endswith("StateEntered"):
            details = ev.get("stateEnteredEventDetails") or {}
            name = details["name"]
            run = runs.setdefault(name, {"type": kind[: -len("StateEntered")], "entered": at, "attempts": 0})
            run.update(status="running", exited=None, input=details.get("input"), attempts=run["attempts"] + 1)
            if run["type"] == "Fail":
                run.update(status="failed", exited=at)
        elif kind.endswith("StateExited"):
            details = ev.get("stateExitedEventDetails") or {}
            run = runs.get(details.get("name", ""))
            if run is not None:
                run.update(exited=at, output=details.get("output"))
                if run["status"] == "running":
                    run["status"] = "succeeded"
        elif kind in EXECUTION_END:
            for run in runs.values():
                if run["status"] == "running":
                    run.update(status=EXECUTION_END[kind], exited=at)
        elif kind.startswith(("Execution", "Parallel", "Map")):
            continue                        # not a stage's state: a Parallel fails because a branch did
        elif kind.endswith("StateAborted"):
            run = runs.get(owner(ev) or "")
            if run is not None and run["status"] == "running":
                run.update(status="aborted", exited=at)
        elif kind.endswith(("Failed", "TimedOut")):
            run = runs.get(owner(ev) or "")
            if run is not None:
                details = next((v for k, v in ev.items() if k.endswith("EventDetails") and isinstance(v, dict)), {})
                run.update(status="failed" if kind.endswith("Failed") else "timed out", exited=at,
                           error=" ".join(str(details[k]) for k in ("error", "cause") if details.get(k))[:200])
        elif kind.endswith(("Scheduled", "Started")):
            run = runs.get(owner(ev) or "")
            if run is not None and run["status"] in ("failed", "timed out"):
                run.update(status="running", exited=None)     # a retry of the same state
    return runs


def sfn_stage_states(spec: PipelineSpec, events: Iterable[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    runs = sfn_state_runs(events)
    out = {}
    for stage in spec.stages:
        names = [stage.name + suffix for suffix in SFN_STATES.get(stage.kind, ("",))]
        mine = {n: runs[n] for n in names if n in runs}
        if not mine:
            continue
        state = _combine(list(mine.values()))
        if stage.kind == "approval":
            if f"{stage.name}-declined" in mine or f"{stage.name}-declined-end" in runs:
                state["status"] = "rejected"
            elif state["status"] == "running":
                state["status"] = "waiting"             # the task token is out for an answer
        if isinstance(stage, GateStage):
            state["detail"] = gate_detail(_sfn_gate_value(stage, mine))
        out[stage.name] = state
    return out


def _sfn_gate_value(gate: GateStage, runs: dict[str, dict[str, Any]]) -> Any:
    """The gate's metric: the read state's output, else the Choice's input (the same document)."""
    gate_id = gate.name.replace("-", "_")         # the renderer's state id: $.stages.<gate_id>
    for doc in ((runs.get(f"{gate.name}-read") or {}).get("output"), (runs.get(gate.name) or {}).get("input")):
        try:
            value: Any = json.loads(doc)["stages"][gate_id]["metrics"]
            for key in gate.json_path.split("."):
                value = value[key]
        except (TypeError, ValueError, KeyError):
            continue
        return value
    return None


def _combine(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One stage from its states: the worst status, from the first entry to the last exit."""
    status = min((r["status"] for r in runs), key=lambda s: SEVERITY.index(s) if s in SEVERITY else len(SEVERITY))
    entered = [r["entered"] for r in runs if r.get("entered") is not None]
    exited = [r["exited"] for r in runs if r.get("exited") is not None]
    running = any(r["status"] == "running" for r in runs)
    end = None if running or not exited else max(exited)
    took = duration(min(entered), end) if entered and (end is not None or running) else ""
    return {"status": status, "duration": took, "detail": ""}


# --- SageMaker Pipelines ---------------------------------------------------------------------

def sm_stage_states(spec: PipelineSpec, steps: Iterable[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    names = sorted((s.name for s in spec.stages), key=len, reverse=True)   # the longest name owns a step
    latest: dict[str, dict[str, Any]] = {}
    for step in steps:                                  # ascending: a retried step's last attempt wins
        latest[step.get("StepName") or ""] = step
    grouped: dict[str, list[dict[str, Any]]] = {}
    for step_name, step in latest.items():
        stage = next((n for n in names if step_name == n or step_name.startswith(n + "-")), None)
        if stage is not None:
            grouped.setdefault(stage, []).append(step)
    out = {}
    for stage in spec.stages:
        mine = grouped.get(stage.name)
        if not mine:
            continue
        statuses = [str(s.get("StepStatus") or "").lower() for s in mine]
        runs = [{"status": SM_STATUS.get(status, status), "entered": s.get("StartTime"), "exited": s.get("EndTime")}
                for s, status in zip(mine, statuses)]
        state = _combine(runs)
        if isinstance(stage, GateStage):
            outcome = next((((s.get("Metadata") or {}).get("Condition") or {}).get("Outcome") for s in mine
                            if s.get("StepName") == stage.name), None)
            if str(outcome).lower() == "false":
                state["status"] = "failed"               # the condition sent the run to <gate>-failed
            state["detail"] = UNKNOWN
        out[stage.name] = state
    return out
