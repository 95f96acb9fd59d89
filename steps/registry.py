"""Model-registry stages: register the gated model in the pipeline's model package group."""

from __future__ import annotations

from steps import naming
from steps.context import BuildContext
from steps.spec import OutputRef, RegisterStage


def build(cfg, ctx: BuildContext, field: str) -> RegisterStage:
    model = ctx.producer(ctx.ref(cfg.model), {"model"}, f"{field}.model")
    inputs = {
        "model": ctx.ref(cfg.model),
        "model_data": model.inputs["model_data"],
        "approval_status": ctx.ref(cfg.approval_status),
    }
    evaluation = ctx.latest("evaluation")
    if evaluation is not None:
        inputs["metrics"] = OutputRef(evaluation.name, "evaluation")
    return RegisterStage(
        name=cfg.name,
        inputs=inputs,
        outputs=("model_package_arn",),
        depends_on=tuple(cfg.depends_on),
        model_package_group=cfg.model_package_group or naming.model_package_group(ctx.pipeline),
        image=model.image,
        content_types=tuple(cfg.content_types),
        response_types=tuple(cfg.response_types),
        inference_instances=tuple(cfg.inference_instances),
        transform_instances=tuple(cfg.transform_instances),
    )
