"""Endpoint stages: create or update a real-time endpoint, with data capture, and optionally a
data-quality monitoring schedule against a baseline stage's constraints."""

from __future__ import annotations

from steps import naming
from steps.context import BuildContext
from steps.spec import EndpointStage, Instance, OutputRef


def build(cfg, ctx: BuildContext, field: str) -> EndpointStage:
    ctx.producer(ctx.ref(cfg.model), {"model"}, f"{field}.model")
    inputs = {"model": ctx.ref(cfg.model)}
    monitoring = cfg.monitoring
    if monitoring is not None:  # the schedule checks captured requests against the baseline's files
        baseline = OutputRef(monitoring.baseline, "constraints")
        ctx.producer(baseline, {"baseline"}, f"{field}.monitoring.baseline")
        inputs.update(statistics=OutputRef(monitoring.baseline, "statistics"), constraints=baseline)
    return EndpointStage(
        name=cfg.name,
        inputs=inputs,
        outputs=("endpoint_name",),
        depends_on=tuple(cfg.depends_on),
        endpoint_name=cfg.endpoint_name or naming.endpoint_name(ctx.pipeline),
        instance=Instance(type=cfg.instance_type, count=ctx.ref(cfg.instance_count)),
        data_capture=cfg.data_capture.enabled,
        sampling_percentage=cfg.data_capture.sampling_percentage,
        monitoring_schedule=monitoring.schedule if monitoring else None,
        monitoring_instance=Instance(type=monitoring.instance_type, volume_gb=monitoring.volume_size_gb,
                                     max_runtime_seconds=monitoring.max_runtime_seconds) if monitoring else None,
    )
