"""Fan-out (``foreach:``): a group of stages run once per item. Pure; every backend reads it here.

- ``build``: the config's ``foreach`` as a ``FanOut`` on the spec. Member stages keep their own
  names and refer to their item with ``ItemRef`` (``$item``); a column fan-out's built-in
  preprocessing gets ``--filter-column C --filter-value $item``; a column whose values are read at
  run time gets a ``<name>-items`` processing stage writing them (``--list-values C``).
- ``expand``: one copy of the group per item (``<stage>-<key>``), every reference to a member
  pointed at the same item's copy: SageMaker Pipelines (static fan-out) and the local runner.
- ``static``: ``expand``, or the config error saying why items known only at run time cannot be.
- Names: job-name prefixes, model package groups, and the plan a Map state runs (``plan_stages``).

Step Functions runs the unexpanded group in a Map state (``workflows/render/fanout_states.py``).
"""

from __future__ import annotations

import re
from dataclasses import replace

from config.errors import ConfigError
from steps import naming
from steps.items import FanOut, Item
from steps.spec import ItemRef, OutputRef, ParamRef, PipelineSpec, Stage

KEY_LENGTH = 8


def keys(values: list[str]) -> list[str]:
    """Short keys naming each item's copies, jobs and folders: the value's own letters and digits
    (for an S3 URI, of its last path segment) when every item has distinct ones, at most 8
    characters; else i1, i2, ..."""
    slugs = [re.sub(r"[^a-z0-9]+", "", (v.rstrip("/").rsplit("/", 1)[-1] if v.startswith("s3://") else v).lower())
             [:KEY_LENGTH] for v in values]
    if all(slugs) and len(set(slugs)) == len(slugs):
        return slugs
    width = len(str(len(values)))
    return [f"i{n:0{width}d}" for n in range(1, len(values) + 1)]


def make_items(values: list[str], registers: dict[str, str] | None = None) -> tuple[Item, ...]:
    """Items for values; ``registers`` (register stage -> its group) gives one group per item."""
    return tuple(Item(v, k, {r: naming.item_package_group(g, k) for r, g in (registers or {}).items()})
                 for v, k in zip(values, keys(values)))


# --- building -------------------------------------------------------------------------------

def build(config, stages: list[Stage], source: str | None) -> tuple[list[Stage], FanOut | None]:
    """The fan-out of a validated config, and the stages with their items in place."""
    from config.models import BUILTIN_PREPROCESS, preprocess_arguments

    f = config.foreach
    if f is None:
        return stages, None
    gate_of = {s.name: s.inputs["evaluation"].stage for s in stages if s.kind == "gate"}
    group = [s.name for s in stages if s.name in f.stages or gate_of.get(s.name) in f.stages]
    builtin = {c.name for c in config.stages if c.kind == "processing" and c.code == BUILTIN_PREPROCESS}
    column = None if f.column is None else str(f.column)
    out: list[Stage] = []
    items_stage = None
    for s in stages:
        if s.name in group:
            inputs = {k: ItemRef() if v == ParamRef("item") else v for k, v in s.inputs.items()}
            changes: dict = {"inputs": inputs}
            if s.kind == "processing":
                arguments = tuple(ItemRef() if a == "$item" else a for a in s.arguments)
                if column is not None and s.name in builtin:
                    arguments += ("--filter-column", column, "--filter-value", ItemRef())
                    if not f.known and items_stage is None:   # the column's values, read at run time
                        items_stage = replace(s, name=f"{f.name}-items", inputs=dict(s.inputs), outputs=("items",),
                                              arguments=preprocess_arguments(config.data) + ("--list-values", column))
                        out.append(items_stage)
                changes["arguments"] = arguments
            s = replace(s, **changes)
        out.append(s)
    names = [c.name for c in config.stages]
    for s in out:   # what a factory took implicitly (an approval's package, a register's report)
        used = sorted({f"{v.stage}.{v.output}" for v in s.inputs.values() if isinstance(v, OutputRef) and v.stage in group})
        if used and s.name not in group and s.name in names:
            raise ConfigError(f"{s.name!r} ({s.kind}) uses {', '.join(used)}, which is made once per item",
                              source=source, field=f"stages[{names.index(s.name)}]({s.name})",
                              fix="add it to foreach.stages if it may run per item, or declare it before the group's "
                                  "stages so it does not take their outputs")
    registers = {s.name: s.model_package_group for s in out if s.kind == "register" and s.name in group}
    fan = FanOut(
        name=f.name, stages=tuple(group),
        source="values" if f.values is not None else "column" if column is not None else
        "s3_prefixes" if f.s3_prefixes is not None else "s3_listing",
        items=make_items(f.items(), registers if f.registry == "group_per_item" else None) if f.known else (),
        column=column, s3_listing=f.s3_listing, items_stage=items_stage.name if items_stage else None,
        registry=f.registry, tolerated_failure_percentage=f.tolerated_failure_percentage,
        max_concurrency=f.max_concurrency)
    return out, fan


# --- static fan-out (SageMaker Pipelines, local runs) ---------------------------------------

def expand(spec: PipelineSpec, values: list[str] | None = None) -> PipelineSpec:
    """One copy of the group per item: ``<stage>-<key>``, its item's value in place of ``$item``,
    its own model package group (``registry: group_per_item``). ``values``: items read at run
    time (the local runner's). A stage outside the group that waits on a member waits on every copy."""
    from steps.pipeline import toposort

    fan = spec.fanout
    if fan is None or fan.copies:
        return spec
    items = fan.items if fan.known else make_items(list(values or []))
    if not items:
        raise ConfigError("the fan-out has no items", source=spec.where,
                          field=f"foreach ({fan.name})", fix="give the column values or S3 objects to fan out over")
    members = set(fan.stages)

    def value(v, item: Item):
        if isinstance(v, ItemRef):
            return item.value
        if isinstance(v, OutputRef) and v.stage in members:
            return OutputRef(f"{v.stage}-{item.key}", v.output)
        return v

    out: list[Stage] = []
    for s in spec.stages:
        if s.name == fan.items_stage:
            continue
        if s.name not in members:
            deps = {d2 for d in s.depends_on for d2 in ([f"{d}-{i.key}" for i in items] if d in members else [d])}
            out.append(replace(s, depends_on=tuple(sorted(deps))) if deps != set(s.depends_on) else s)
            continue
        for item in items:
            changes: dict = {"name": f"{s.name}-{item.key}", "inputs": {k: value(v, item) for k, v in s.inputs.items()},
                             "depends_on": tuple(sorted(f"{d}-{item.key}" if d in members else d
                                                        for d in s.depends_on if d != fan.items_stage))}
            if hasattr(s, "arguments"):
                changes["arguments"] = tuple(value(a, item) for a in s.arguments)
            if s.kind == "register" and s.name in item.package_groups:
                changes["model_package_group"] = item.package_groups[s.name]
            out.append(replace(s, **changes))
    copies = {f"{m}-{i.key}": (m, i.key) for m in fan.stages for i in items}
    return replace(spec, stages=toposort(out, spec.where),
                   fanout=replace(fan, items=tuple(items), copies=copies), origin_fingerprint=spec.fingerprint)


def static(spec: PipelineSpec) -> PipelineSpec:
    """The spec with its group copied once per item (SageMaker Pipelines has no map step), or
    a config error when the items are known only at run time."""
    fan = spec.fanout
    if fan is None or fan.known or fan.copies:
        return expand(spec)
    what, field = (("objects listed under " + str(fan.s3_listing), "foreach.s3_listing")
                   if fan.source == "s3_listing" else (f"the values of column {fan.column!r} in the data",
                                                       "foreach.column"))
    raise ConfigError(
        f"SageMaker Pipelines has no map step: mlpipe copies the fan-out's stages once per item at build "
        f"time, and these items ({what}) are known only at run time",
        source=spec.where, field=field,
        fix="list the items in the config (foreach.values: [...] for a column, foreach.s3_prefixes: [...] for S3), "
            "or build --target stepfunctions, whose Distributed Map reads them at run time")


# --- names ------------------------------------------------------------------------------------

def is_member(spec: PipelineSpec, stage: str) -> bool:
    return spec.fanout is not None and not spec.fanout.copies and stage in spec.fanout.stages


def keyed(spec: PipelineSpec, stage: str) -> bool:
    """A member whose job names carry its item's key (items known at build time)."""
    return is_member(spec, stage) and spec.fanout.known


def job_prefix(spec: PipelineSpec, stage: str) -> str:
    """Static head of a stage's job (and model) names in the state machine. A member's names
    carry the item's key after it, so the head is shorter by the longest key and a dash."""
    if not keyed(spec, stage):
        return naming.job_prefix(spec.name, stage)
    longest = max(len(i.key) for i in spec.fanout.items)
    return naming.member_job_prefix(spec.name, stage, longest)


def package_groups(spec: PipelineSpec) -> list[str]:
    """Every model package group the pipeline registers in (one per item where configured)."""
    groups = set()
    for s in spec.stages:
        if s.kind != "register":
            continue
        per_item = [i.package_groups[s.name] for i in (spec.fanout.items if spec.fanout else ())
                    if s.name in i.package_groups]
        groups |= set(per_item) if per_item and is_member(spec, s.name) else {s.model_package_group}
    return sorted(groups)


def plan_stages(spec: PipelineSpec) -> tuple[tuple[Stage, ...], tuple[Stage, ...]]:
    """(outer, inner) for a state machine: the stages with the group as one stage named after
    the fan-out (a stage waiting on a member waits on the group), and the members with only
    their edges among themselves (what each item runs)."""
    from steps.pipeline import toposort

    fan = spec.fanout
    members = set(fan.stages)
    ups = {u for s in spec.stages if s.name in members for u in s.upstream if u not in members}
    ups |= {fan.items_stage} if fan.items_stage else set()   # the Map reads what the items job wrote
    outer: list[Stage] = []
    for s in spec.stages:
        if s.name in members:
            if not any(o.name == fan.name for o in outer):
                outer.append(Stage(name=fan.name, depends_on=tuple(sorted(ups))))
            continue
        deps = tuple(sorted({fan.name if d in members else d for d in s.depends_on}))
        outer.append(replace(s, depends_on=deps) if deps != tuple(s.depends_on) else s)
    inner = tuple(Stage(name=s.name, depends_on=tuple(u for u in s.upstream if u in members))
                  for s in spec.stages if s.name in members)
    return toposort(outer, spec.where), inner


def item_metadata(spec: PipelineSpec, stage: str) -> dict[str, str]:
    """What a registered model package records of its item (SageMaker's CustomerMetadataProperties)."""
    item = spec.fanout.item_of(stage) if spec.fanout else None
    return {"mlpipe:foreach": spec.fanout.name, "mlpipe:item": item.value} if item else {}
