"""Endpoint stages: create or update a real-time endpoint, with data capture for monitoring."""

from __future__ import annotations

from steps import naming
from steps.context import BuildContext
from steps.spec import EndpointStage, Instance


def build(cfg, ctx: BuildContext, field: str) -> EndpointStage:
    ctx.producer(ctx.ref(cfg.model), {"model"}, f"{field}.model")
    return EndpointStage(
        name=cfg.name,
        inputs={"model": ctx.ref(cfg.model)},
        outputs=("endpoint_name",),
        depends_on=tuple(cfg.depends_on),
        endpoint_name=cfg.endpoint_name or naming.endpoint_name(ctx.pipeline),
        instance=Instance(type=cfg.instance_type, count=ctx.ref(cfg.instance_count)),
        data_capture=cfg.data_capture.enabled,
        sampling_percentage=cfg.data_capture.sampling_percentage,
    )
