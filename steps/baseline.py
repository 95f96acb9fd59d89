"""Baseline stages: data-quality statistics and constraints of a dataset, in SageMaker Model
Monitor's format. An endpoint's monitoring schedule checks captured requests against them."""

from __future__ import annotations

from steps.context import BuildContext
from steps.spec import BaselineStage


def build(cfg, ctx: BuildContext, field: str) -> BaselineStage:
    return BaselineStage(
        name=cfg.name,
        inputs={"data": ctx.ref(cfg.data)},
        outputs=("statistics", "constraints"),
        depends_on=tuple(cfg.depends_on),
        instance=ctx.instance(cfg),
        header=cfg.header,
    )
