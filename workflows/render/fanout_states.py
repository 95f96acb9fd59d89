"""A fan-out (``foreach:``, ``steps/fanout.py``) as a Map state: the Step Functions renderer's mixin.

The group's stages run once per item in the Map's item processor, rendered by the renderer's own
methods. Each item's state is made by the ItemSelector from the parent's (a Distributed Map's
items run as child executions, whose context object is their own, so nothing in them reads the
parent's ``$$``):

    $.parameters, $.stages   the parent's (stages outside the group)
    $.run.execution          the parent's execution name (S3 folders, tags, descriptions)
    $.run.hash               MD5 of "<execution>/<Map item index>": job and model names unique per item
    $.item.value, .key       the item, and its key (folders; job names when known at build time)

A member's jobs are ``<prefix>-<key>-<item hash>-<redrive><retry>`` (items known at build time)
or ``<prefix>-<item hash>-<redrive><retry>``; its outputs go to ``runs/<execution>/<stage>/<key>/``.
Each item ends in a Pass that keeps its key, value and its stages' trimmed results: the Map's
result, at ``$.stages.<fan-out>``, is one small object per item.

Inline Map for at most 40 items known at build time; otherwise (items read at run time, more
than 40, or failures to tolerate) a Distributed Map: ProcessorConfig DISTRIBUTED (STANDARD child
executions: the jobs run for hours), an ItemReader for S3 (``listObjectsV2`` under
``s3_listing``), ToleratedFailurePercentage. A column read at run time: the items job writes its
values to ``items.json``, a Task reads it (S3 integration) into the state, the Map iterates it. The SDK (2.3.0) writes only the inline Map with an Iterator;
``complete_map`` (called by ``finalize``) writes the rest. The SDK's classes come through
``stepfunctions.py``, the one module that imports that SDK.
"""

from __future__ import annotations

from typing import Any

from steps import fanout, pipeline
from steps.spec import ItemRef

ITEM_INDEX = "$$.Map.Item.Index"


def _literal(text: str) -> str:
    """A string literal inside an intrinsic function (quote, braces and backslash escaped)."""
    return "'" + "".join("\\" + c if c in "\\'{}" else c for c in str(text)) + "'"


class FanOutStates:
    """Mixed into the Step Functions renderer (``self.spec``, ``self.selectors``, ``_sequence``...)."""

    maps: dict[str, dict[str, Any]]

    def run_key(self, stage: str, *parts: str) -> tuple[str, list[str]]:
        """A States.Format template (and its arguments) of ``runs/<execution>/<stage>[/<item key>]/<parts>``."""
        member = fanout.is_member(self.spec, stage)
        head = f"runs/{{}}/{stage}" + ("/{}" if member else "")
        return "/".join([head, *parts]), ["$.run.execution"] + (["$.item.key"] if member else [])

    def container_arguments(self, arguments: list) -> Any:
        """Container arguments; with the item among them, built at run time (States.Array)."""
        if not any(isinstance(a, ItemRef) for a in arguments):
            return arguments or None
        from workflows.render.stepfunctions import dyn

        parts = ["$.item.value" if isinstance(a, ItemRef) else _literal(a) for a in arguments]
        return dyn(f"States.Array({', '.join(parts)})")

    def package_group(self, stage) -> Any:
        """A register stage's model package group: one per item (named in the item) or its own."""
        from workflows.render.stepfunctions import dyn, state_id

        fan = self.spec.fanout
        if fanout.is_member(self.spec, stage.name) and fan.items and stage.name in fan.items[0].package_groups:
            return dyn(f"$.item.package_groups.{state_id(stage.name)}")
        return stage.model_package_group

    def item_metadata(self, stage) -> dict[str, Any]:
        from workflows.render.stepfunctions import dyn

        if not fanout.is_member(self.spec, stage.name):
            return {}
        return {"mlpipe:foreach": self.spec.fanout.name, "mlpipe:item": dyn("$.item.value")}

    def map_states(self, built: dict[str, list]) -> list:
        """The states that run the group once per item: how the items arrive, then the Map."""
        from workflows.render.stepfunctions import Map, Pass, Task, dyn, fmt, state_id

        fan = self.spec.fanout
        sid = state_id(fan.name)
        _, inner = fanout.plan_stages(self.spec)
        states = self._sequence(pipeline.parallel_plan(inner), built)
        states.append(Pass(f"{fan.name}-item-done", comment="Keep the item and its stages' trimmed results.",
                           parameters={"item": dyn("$.item.value"), "key": dyn("$.item.key"),
                                       "stages": {state_id(m): dyn(f"$.stages.{state_id(m)}") for m in fan.stages}}))
        self._link(states)
        if fan.source == "s3_listing":
            item: Any = {"value": dyn(fmt(f"s3://{_bucket(fan.s3_listing)}/{{}}", "$$.Map.Item.Value.Key")),
                         "key": dyn(fmt("{}", ITEM_INDEX))}
        else:
            item = dyn("$$.Map.Item.Value")
        selector = {"parameters": dyn("$.parameters"), "stages": dyn("$.stages"), "item": item,
                    "run": {"execution": dyn("$.run.execution"),
                            "hash": dyn(f"States.Hash({fmt('{}/{}', '$.run.execution', ITEM_INDEX)}, 'MD5')")}}
        before: list = []
        extra: dict[str, Any] = {}
        if fan.known:
            before.append(Pass(f"{fan.name}-items", comment=f"The {len(fan.items)} items, known at build time.",
                               result=[{"value": i.value, "key": i.key,
                                        **({"package_groups": {state_id(k): v for k, v in i.package_groups.items()}}
                                           if i.package_groups else {})} for i in fan.items],
                               result_path=f"$.stages.{sid}"))
        elif fan.source == "s3_listing":
            bucket, _, prefix = fan.s3_listing[5:].partition("/")
            extra["ItemReader"] = {"Resource": self.arns.integration("s3", "listObjectsV2"),
                                   "Parameters": {"Bucket": bucket, "Prefix": prefix}}
        else:   # a column's values, written by the items job: read with the S3 integration (as a gate
            # reads its report), a few hundred bytes for the segments a column holds
            template, args = self.run_key(fan.items_stage, "items", "items.json")
            read = Task(f"{fan.name}-items-read", resource=self.arns.sdk_integration("s3", "getObject"),
                        parameters={"Bucket": self.spec.bucket,
                                    "Key": dyn(fmt(f"{self.spec.prefix}/{template}".lstrip("/"), *args))},
                        result_path=f"$.stages.{sid}")
            self.selectors[read.state_id] = {"items.$": "States.StringToJson($.Body)"}
            before.append(read)
        kwargs = {} if fan.source == "s3_listing" else \
            {"items_path": f"$.stages.{sid}" + ("" if fan.known else ".items")}
        state = Map(fan.name, iterator=states[0], parameters=selector, max_concurrency=fan.max_concurrency,
                    result_path=f"$.stages.{sid}", comment=f"foreach {fan.name}: the group once per item", **kwargs)
        mode = "DISTRIBUTED" if fan.distributed else "INLINE"
        if fan.distributed:
            extra["ToleratedFailurePercentage"] = fan.tolerated_failure_percentage
        self.maps[state.state_id] = {"Mode": mode, **extra}
        return before + [state]


def _bucket(uri: str) -> str:
    return uri[5:].partition("/")[0]


def complete_map(state: dict[str, Any], spec: dict[str, Any]) -> None:
    """What the SDK cannot write of a Map: ItemProcessor (with its ProcessorConfig) in place of
    Iterator, ItemSelector in place of Parameters, and a Distributed Map's own fields."""
    spec = dict(spec)
    mode = spec.pop("Mode", "INLINE")
    processor = state.pop("Iterator")
    config = {"Mode": mode, **({"ExecutionType": "STANDARD"} if mode == "DISTRIBUTED" else {})}
    state["ItemProcessor"] = {"ProcessorConfig": config, **processor}
    if "Parameters" in state:
        state["ItemSelector"] = state.pop("Parameters")
    if "ItemReader" in spec:
        state.pop("ItemsPath", None)
    state.update(spec)
