"""A fan-out in a local run: the group copied once per item (``steps.fanout.expand``), so the
runner's scheduler runs the copies of independent items at the same time (``runner.PARALLEL``
at once, in warm workers) like any independent stages.

Items known at build time come from the config. Items known only at run time are read once,
when the run starts, and kept in the run's options (``fanout_items``), so a resume, an approval
or a picture of the run expands the group the same way:
- a column's values: its distinct values in the run's data (``--input``, the data section's
  ``local`` file, or the data parameter's value), read as the built-in preprocessing reads it;
- ``s3_listing``: the objects under the prefix (through --endpoint-url/--region/--profile).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from config.errors import UserError
from steps import fanout
from steps.spec import ParamRef, PipelineSpec


def expand_for_run(spec: PipelineSpec, options) -> PipelineSpec:
    if spec.fanout is None:
        return spec
    if not spec.fanout.known and getattr(options, "fanout_items", None) is None:
        options.fanout_items = runtime_items(spec, options)
    return fanout.expand(spec, options.fanout_items if not spec.fanout.known else None)


def runtime_items(spec: PipelineSpec, options) -> list[str]:
    from workflows.local import store

    fan = spec.fanout
    cache = store.runs_dir(None) / ".datasets"
    aws = {**(options.aws or {}), "region": (options.aws or {}).get("region") or spec.region}
    if fan.source == "s3_listing":
        return _listing(fan.s3_listing, aws)
    from steps.code import preprocess
    from workflows.local.data import fetch

    path, _ = fetch(_data_source(spec, options), cache, aws)
    data = spec.data or {}
    files = preprocess.find_csv_files(path) if path.is_dir() else [path]
    try:
        frame, _ = preprocess.load_frame(files, data.get("target"), data.get("header"), data.get("delimiter"),
                                         data.get("column_names"))
        values = preprocess.item_values(frame, fan.column)
    except preprocess.DataError as exc:
        raise UserError(f"cannot read the fan-out's items (column {fan.column!r}): {exc}",
                        source=spec.where, field="foreach.column") from None
    if not values:
        raise UserError(f"column {fan.column!r} has no values to fan out over", field="foreach.column")
    return values


def _data_source(spec: PipelineSpec, options) -> str:
    """The data the items job reads: --input, an explicit --param, the config's local file, or
    the parameter's value."""
    items = spec.stage(spec.fanout.items_stage)
    ref: Any = next(iter(items.inputs.values()), None)
    if options.input:
        return options.input
    if isinstance(ref, ParamRef) and ref.name in (options.params or {}):
        return options.params[ref.name]
    local = (spec.data or {}).get("local")
    if local:
        return local if local.startswith(("sklearn:", "s3://")) or not spec.source else \
            str((Path(spec.source).parent / local).resolve())
    if isinstance(ref, ParamRef):
        return str(spec.parameter(ref.name).default)
    raise UserError("the fan-out's items come from the data, and this run has none to read",
                    field="foreach.column", fix="pass --input PATH, or set data.local")


def _listing(uri: str, aws: dict[str, Any]) -> list[str]:
    from workflows.aws import s3_client
    from workflows.aws.session import Aws, aws_errors

    bucket, _, prefix = uri[5:].partition("/")
    with aws_errors(f"listing {uri} (the fan-out's items)"):
        keys = s3_client.list_keys(Aws(**aws).client("s3"), bucket, prefix)
    keys = [k for k in keys if not k.endswith("/")]
    if not keys:
        raise UserError(f"no objects under {uri} to fan out over", field="foreach.s3_listing",
                        fix="upload one object per item, or list the items with foreach.s3_prefixes")
    return [f"s3://{bucket}/{k}" for k in keys]


def lineage(spec: PipelineSpec, record: dict[str, Any]) -> dict[str, Any] | None:
    """Per item: its key, each copy's status, its model and its registry version."""
    fan = spec.fanout
    if fan is None or not fan.copies:
        return None
    items: dict[str, Any] = {}
    for item in fan.items:
        entry: dict[str, Any] = {"key": item.key, "stages": {}}
        for copy, (member, key) in fan.copies.items():
            stage = record["stages"].get(copy) or {}
            if key != item.key or not stage:
                continue
            outs = stage.get("outputs") or {}
            entry["stages"][member] = stage.get("status")
            if stage.get("kind") == "model" and "model_name" in outs:
                entry["model"] = outs["model_name"]["value"]
            if stage.get("kind") == "register" and "version" in outs:
                entry["registry"] = {k: outs[k]["value"] for k in ("group", "version", "model_package_arn",
                                                                   "approval_status") if k in outs}
        items[item.value] = entry
    return {"name": fan.name, "items": items}
