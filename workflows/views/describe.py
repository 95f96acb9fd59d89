"""The pipeline's parameters, stages and dependencies as one document (``mlpipe describe``;
the builder's get_pipeline_parameters and get_pipeline_steps_info, for both orchestrators)."""

from __future__ import annotations

from typing import Any

from steps.spec import OutputRef, ParamRef, PipelineSpec, Stage


def _value(v: Any) -> Any:
    if isinstance(v, ParamRef):
        return f"${v.name}"
    if isinstance(v, OutputRef):
        return f"{v.stage}.{v.output}"
    return v


def _stage_info(stage: Stage) -> dict[str, Any]:
    instance = getattr(stage, "instance", None)
    info: dict[str, Any] = {
        "name": stage.name,
        "kind": stage.kind,
        "instance_type": instance.type if instance else None,
        "instance_count": _value(instance.count) if instance else None,
        "inputs": {k: _value(v) for k, v in stage.inputs.items()},
        "outputs": list(stage.outputs),
        "depends_on": list(stage.upstream),
    }
    image = getattr(stage, "image", None)
    if image is not None:
        info["image"] = f"{image.name}:{image.version}" + (f" ({image.py_version})" if image.py_version else "")
    if getattr(stage, "hyperparameters", None):
        info["hyperparameters"] = dict(stage.hyperparameters)
    if stage.kind == "gate":
        info["rule"] = stage.describe()
    if getattr(stage, "code", None) is not None:
        info["code"] = {"name": stage.code.entry.name, "sha256": stage.code.sha256}
    if getattr(stage, "entry_point", None) is not None:
        info["code"] = {"name": stage.entry_point.entry.name, "sha256": stage.entry_point.sha256}
    return info


def describe(spec: PipelineSpec) -> dict[str, Any]:
    return {
        "pipeline": spec.name,
        "description": spec.description,
        "parameters": [{"name": p.name, "type": p.type, "default": p.default,
                        **({"allowed": list(p.allowed)} if p.allowed else {}),
                        **({"description": p.description} if p.description else {})} for p in spec.parameters],
        "stages": [_stage_info(s) for s in spec.stages],
        "schedule": ({"expression": spec.schedule.expression, "timezone": spec.schedule.timezone,
                      "enabled": spec.schedule.enabled} if spec.schedule else None),
        "trigger": {"s3_prefix": spec.trigger_prefix} if spec.trigger_prefix else None,
    }
