"""Manual approval: a person approves the registered model before it is deployed."""

from __future__ import annotations

from steps.context import BuildContext
from steps.spec import ApprovalStage, OutputRef


def build(cfg, ctx: BuildContext, field: str) -> ApprovalStage:
    inputs = {}
    register = ctx.latest("register")
    if register is not None:
        inputs["model_package"] = OutputRef(register.name, "model_package_arn")
        inputs["model"] = register.inputs["model"]
    evaluation = ctx.latest("evaluation")
    if evaluation is not None:
        inputs["metrics"] = OutputRef(evaluation.name, "evaluation")
    if not inputs:
        raise ctx.error("an approval stage needs a register or evaluation stage before it", field)
    return ApprovalStage(
        name=cfg.name,
        inputs=inputs,
        outputs=("decision",),
        depends_on=tuple(cfg.depends_on),
        timeout_seconds=cfg.timeout_seconds,
        emails=tuple(cfg.emails) or tuple(ctx.config.notifications.emails),
    )
