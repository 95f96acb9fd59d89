"""Model stages: a SageMaker Model from a training artifact and its inference container."""

from __future__ import annotations

from steps.context import BuildContext
from steps.spec import Instance, ModelStage


def build(cfg, ctx: BuildContext, field: str) -> ModelStage:
    ref = ctx.ref(cfg.model)
    training = ctx.producer(ref, {"training"}, f"{field}.model")
    return ModelStage(
        name=cfg.name,
        inputs={"model_data": ref},
        outputs=("model_name",),
        depends_on=tuple(cfg.depends_on),
        image=training.image,
        instance=Instance(type=cfg.instance_type, count=1),
    )
