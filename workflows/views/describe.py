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
    if stage.kind == "baseline":
        info["baseline"] = {"format": "Model Monitor statistics.json, constraints.json", "header": d["header"]}
    if d.get("monitoring_schedule"):
        info["monitoring"] = {"schedule": d["monitoring_schedule"], "baseline": stage.inputs["constraints"].stage,
                              "instance_type": d["monitoring_instance"]["type"]}
    code = d.get("code") or d.get("entry_point")
    if code:
        info["code"] = {"name": code["entry"], "sha256": code["sha256"]}
    return info


def foreach(spec: PipelineSpec) -> dict[str, Any]:
    """A fan-out: its group, where its items come from, and how each target runs it."""
    fan = spec.fanout
    items = {"values": [i.value for i in fan.items], "keys": [i.key for i in fan.items]} if fan.known else \
        {"at_run_time": f"objects under {fan.s3_listing}" if fan.source == "s3_listing"
         else f"the values of column {fan.column!r} in the data (written by {fan.items_stage})"}
    return {
        "name": fan.name, "stages": list(fan.stages), "source": fan.source,
        **({"column": fan.column} if fan.column else {}), "items": items,
        "registry": "one model package group per item" if fan.registry == "group_per_item"
        else "the item recorded on each model package (mlpipe:item)",
        "stepfunctions": ("Distributed Map" + (f", tolerating {fan.tolerated_failure_percentage:g} % failed items"
                                               if fan.tolerated_failure_percentage else "")) if fan.distributed
        else "inline Map", "max_concurrency": fan.max_concurrency or "unbounded",
        "sagemaker": "the group copied once per item" if fan.known else "refused: items known only at run time",
        "local": "the group copied once per item; items run in parallel workers",
    }


def describe(spec: PipelineSpec) -> dict[str, Any]:
    fan = {"foreach": foreach(spec)} if spec.fanout and not spec.fanout.copies else {}
    return fan | {
        "pipeline": spec.name,
        "description": spec.description,
        "parameters": [{"name": p.name, "type": p.type, "default": p.default,
                        **({"allowed": list(p.allowed)} if p.allowed else {}),
                        **({"description": p.description} if p.description else {})} for p in spec.parameters],
        "stages": [_stage_info(s) | ({"foreach": spec.fanout.name} if fan and s.name in spec.fanout.stages else {})
                   for s in spec.stages],
        "schedule": ({"expression": spec.schedule.expression, "timezone": spec.schedule.timezone,
                      "enabled": spec.schedule.enabled} if spec.schedule else None),
        "trigger": {"s3_prefix": spec.trigger_prefix} if spec.trigger_prefix else None,
    }
