"""The pipeline's parameters, stages and dependencies as one document (``mlpipe describe``;
the builder's get_pipeline_parameters and get_pipeline_steps_info, for both orchestrators)."""

from __future__ import annotations

from typing import Any

from steps.spec import PipelineSpec, Stage


def _stage_info(stage: Stage) -> dict[str, Any]:
    """A view of the stage's one serialisation (``Stage.to_dict``) for people and scripts."""
    d = stage.to_dict()
    instance = d.get("instance") or (d.get("training") or {}).get("instance")
    info: dict[str, Any] = {
        "name": d["name"],
        "kind": d["kind"],
        "instance_type": instance["type"] if instance else None,
        "instance_count": instance["count"] if instance else None,
        "inputs": d["inputs"],
        "outputs": d["outputs"],
        "depends_on": d["upstream"],
    }
    image = d.get("image") or (d.get("training") or {}).get("image")
    if image:
        info["image"] = f"{image['name']}:{image['version']}" + (f" ({image['py_version']})" if image.get("py_version") else "")
    if d.get("hyperparameters"):
        info["hyperparameters"] = d["hyperparameters"]
    if stage.kind == "gate":
        info["rule"] = stage.describe()
    if stage.kind == "tuning":
        info["tuning"] = {k: d[k] for k in ("strategy", "objective_metric", "objective_type", "max_jobs",
                                            "max_parallel_jobs", "early_stopping")}
        info["tuning"]["ranges"] = {r["name"]: {k: v for k, v in r.items() if k != "name" and v not in (None, [])}
                                    for r in d["ranges"]}
    code = d.get("code") or d.get("entry_point")
    if code:
        info["code"] = {"name": code["entry"], "sha256": code["sha256"]}
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
