"""Evaluation stages and their quality gate.

A gate becomes its own stage, ``<evaluation>-gate``, so every backend sees one place where the
run can stop: a Choice state, a ConditionStep, or the local runner's check.
"""

from __future__ import annotations

from steps.context import BuildContext
from steps.spec import EvaluationStage, GateStage, OutputRef, Stage


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
        name=f"{cfg.name}-gate"[:24],
        inputs={"evaluation": OutputRef(cfg.name, "evaluation")},
        outputs=("passed",),
        metric=cfg.gate.metric,
        comparison=cfg.gate.comparison,
        threshold=cfg.gate.threshold,
    )
    return [evaluation, gate]
