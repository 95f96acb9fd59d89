"""The bookkeeping stages (quality gate, model, model registry entry, approval) run in the run's
own process, in the stage's thread: a process of their own cost more than their work (a fork, an
exit and the exit's report, about 12 ms a stage, each on the critical path). Like a stage
process, each writes its log (``log.txt``) and ``result.json`` in the stage's work directory and
answers with an exit code: 0, GATE_FAILED or WAITING. The Lambda stage, light too, runs a user's
handler, so it keeps a process of its own (``stages.invoke_lambda``).
"""

from __future__ import annotations

import json
from pathlib import Path


GATE_FAILED = 3       # exit code: the quality gate said no
WAITING = 4           # exit code: paused for a manual approval


def write_result(doc: dict, where: Path = Path(".")) -> None:
    """A stage's result.json in its work directory (a stage process's current directory): how
    every stage that runs no user script reports, here and in ``stages.py``."""
    (where / "result.json").write_text(json.dumps(doc, indent=2, sort_keys=True, default=str) + "\n")


def _say(work: Path, text: str) -> None:
    with open(work / "log.txt", "a") as f:
        f.write(text + "\n")


def gate(work: Path, evaluation: str, metric: str, comparison: str, threshold: float) -> int:
    """The same rule as the Choice state and the ConditionStep: GateStage.passes."""
    from steps.spec import GateStage

    rule = GateStage(name="gate", metric=metric, comparison=comparison, threshold=threshold)
    report = json.loads(Path(evaluation).read_text())
    node = report
    for part in rule.json_path.split("."):
        node = node[part]
    value = float(node)
    passed = rule.passes(value)
    _say(work, f"quality gate: {metric} = {value:.6g}, rule {rule.describe()}: {'passed' if passed else 'FAILED'}")
    write_result({"passed": passed, "value": value, "rule": rule.describe()}, work)
    return 0 if passed else GATE_FAILED


def create_model(work: Path, name: str, artifact: str, image: dict) -> int:
    _say(work, f"model {name}: {artifact}")
    write_result({"model_name": name, "artifact": artifact, "image": image}, work)
    return 0


def register(work: Path, runs_root: str, group: str, entry: dict) -> int:
    from workflows.local import registry

    version = registry.register(Path(runs_root), group, entry)
    if version.get("existing"):
        _say(work, f"{group} version {version['version']} was registered by this run already; not registering again")
    else:
        _say(work, f"registered {group} version {version['version']} ({version['approval_status']})")
    write_result({"model_package_arn": version["arn"], "version": version["version"], "group": group,
             "approval_status": version["approval_status"]}, work)
    return 0


def approval(work: Path, mode: str, decision: str | None) -> int:
    if decision is None and mode == "manual":
        _say(work, "waiting for a manual approval: mlpipe approve RUN_ID, or mlpipe reject RUN_ID --reason ...")
        write_result({"decision": "waiting"}, work)
        return WAITING
    write_result({"decision": decision or "approved", "mode": mode}, work)
    _say(work, f"approval: {decision or 'approved'} ({mode})")
    return 0
