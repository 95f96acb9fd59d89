"""Batch transform: score the batch-data input and write predictions beside the input rows."""

from __future__ import annotations

from steps.context import BuildContext
from steps.spec import TransformStage


def build(cfg, ctx: BuildContext, field: str) -> TransformStage:
    ctx.producer(ctx.ref(cfg.model), {"model"}, f"{field}.model")
    return TransformStage(
        name=cfg.name,
        inputs={"model": ctx.ref(cfg.model), "data": ctx.ref(cfg.input)},
        outputs=("predictions",),
        depends_on=tuple(cfg.depends_on),
        instance=ctx.instance(cfg),
        content_type=cfg.content_type,
    )
