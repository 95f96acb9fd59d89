"""Evaluation stages and their quality gate.

A gate becomes its own stage, ``<evaluation>-gate``, so every backend sees one place where the
run can stop: a Choice state, a ConditionStep, or the local runner's check.
"""

from __future__ import annotations

import hashlib

from steps.context import BuildContext
from steps.spec import EvaluationStage, GateStage, OutputRef, Stage

_SUFFIX = "-gate"
_MAX_NAME = 24  # a stage name's limit (config.models._STAGE_NAME)


def gate_name(evaluation: str, taken: set[str] | frozenset[str] = frozenset()) -> str:
    """``<evaluation>-gate``, a valid stage name distinct from every name in ``taken``.

    When the evaluation's name is too long, its end is cut, never the suffix (cutting the
    suffix gave a 24-character evaluation its own name back); if that collides with another
    stage, a short hash of the evaluation's name keeps it unique."""
    name = f"{evaluation[: _MAX_NAME - len(_SUFFIX)].rstrip('-')}{_SUFFIX}"
    if name not in taken and name != evaluation:
        return name
    digest = hashlib.sha256(evaluation.encode()).hexdigest()
    for start in range(0, len(digest) - 6):
        tag = digest[start:start + 6]
        name = f"{evaluation[: _MAX_NAME - len(_SUFFIX) - 7].rstrip('-')}-{tag}{_SUFFIX}"
        if name not in taken and name != evaluation:
            return name
    raise AssertionError("unreachable: no free gate name")


def build(cfg, ctx: BuildContext, field: str) -> list[Stage]:
    training = ctx.training_of(ctx.ref(cfg.model), f"{field}.model")
    model_ref = ctx.ref(cfg.model)
    if ctx.built[model_ref.stage].kind == "model":
        model_ref = ctx.built[model_ref.stage].inputs["model_data"]
    problem_type = ctx.config.data.problem_type if ctx.config.data else "regression"
    evaluation = EvaluationStage(
        name=cfg.name,
        inputs={"model": model_ref, "test": ctx.ref(cfg.test)},
        outputs=("evaluation",),
        depends_on=tuple(cfg.depends_on),
        code=ctx.asset(cfg.code, f"{field}.code"),
        image=training.image,  # evaluate with the training container: it has the model's library
        instance=ctx.instance(cfg),
        problem_type=problem_type,
    )
    if cfg.gate is None:
        return [evaluation]
    regression = {"mse", "rmse", "mae", "r2"}
    if (cfg.gate.metric in regression) != (problem_type == "regression"):
        raise ctx.error(f"metric {cfg.gate.metric!r} does not fit a {problem_type} problem",
                        f"{field}.gate.metric",
                        "regression: mse, rmse, mae, r2; classification: accuracy, auc, f1")
    gate = GateStage(
        name=gate_name(cfg.name, taken={*ctx.built, *(s.name for s in ctx.config.stages)}),
        inputs={"evaluation": OutputRef(cfg.name, "evaluation")},
        outputs=("passed",),
        metric=cfg.gate.metric,
        comparison=cfg.gate.comparison,
        threshold=cfg.gate.threshold,
    )
    return [evaluation, gate]
