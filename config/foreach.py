"""The ``foreach:`` section: run a group of stages once per item (fan-out), e.g. one model per
segment. Its own module so the schema file stays one model per section; ``models.py`` holds the
field and calls ``check_foreach`` for what needs the whole config.

Items come from one source:
- ``column`` (with ``values``): the data's rows where the column has each value. With ``values``
  the items are known at build time; without, the column's distinct values are read from the
  data at run time.
- ``s3_prefixes``: a literal list of S3 prefixes (known at build time); a member stage reads its
  item as ``$item`` (e.g. ``inputs: {data: $item}``).
- ``s3_listing``: one item per object under an S3 prefix, listed at run time (``$item`` is the
  object's S3 URI).
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from config.values import FieldError, S3Uri, _STAGE_NAME, is_reference

ITEM_REF = "$item"          # a member stage's reference to its item
# Stage kinds a group may hold: one pipeline-wide resource (endpoint, approval's task token, a
# Lambda function's SSM parameter) cannot be made once per item.
MEMBER_KINDS = ("processing", "training", "evaluation", "model", "register")


class ForEach(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = "foreach"
    stages: list[str] = Field(min_length=1)
    column: str | int | None = None
    values: list[str | int | float] | None = Field(default=None, min_length=1)
    s3_prefixes: list[S3Uri] | None = Field(default=None, min_length=1)
    s3_listing: S3Uri | None = None
    registry: Literal["group_per_item", "metadata"] = "group_per_item"
    tolerated_failure_percentage: int = Field(default=0, ge=0, le=100)
    max_concurrency: int = Field(default=0, ge=0, le=10000)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _STAGE_NAME.match(v):
            raise ValueError(f"{v!r} is not a valid foreach name; use 1-24 lowercase letters, digits or '-', "
                             "starting with a letter (it names the Map state and the items' folders)")
        return v

    @model_validator(mode="after")
    def _one_source(self) -> "ForEach":
        sources = [n for n in ("column", "s3_prefixes", "s3_listing") if getattr(self, n) is not None]
        if len(sources) != 1:
            raise FieldError(f"give exactly one source of items (given: {', '.join(sources) or 'none'})",
                             fix="column: COL (with values: [...] when known), s3_prefixes: [...], "
                                 "or s3_listing: s3://bucket/prefix/")
        if self.values is not None and self.column is None:
            raise FieldError("values lists a column's values", loc=("values",), fix="add column: NAME")
        items = self.items()
        twice = sorted({v for v in items if items.count(v) > 1})
        if twice:
            raise FieldError(f"{', '.join(map(repr, twice))} listed twice", loc=("values" if self.values else
                                                                                    "s3_prefixes",),
                             fix="list each item once")
        if self.registry == "group_per_item" and not self.known:
            raise FieldError("one model package group per item needs the items at build time",
                             loc=("registry",), fix="registry: metadata (the item is recorded on each "
                                                    "model package), or list the values")
        return self

    @property
    def known(self) -> bool:
        """The items are known at build time."""
        return self.values is not None or self.s3_prefixes is not None

    def items(self) -> list[str]:
        return [str(v) for v in self.values or self.s3_prefixes or []]


def check_foreach(config) -> None:
    """What needs the whole config: the members exist and may run per item, nothing outside the
    group uses one item's outputs, ``$item`` appears only in members, and a column fan-out has a
    built-in preprocessing stage to filter (and no conflict with the target)."""
    f = config.foreach
    names = [s.name for s in config.stages]
    if f is None:
        for i, stage in enumerate(config.stages):
            for path, ref in stage.references().items():
                if ref == ITEM_REF:
                    raise FieldError(f"{ITEM_REF} is a fan-out item, and this pipeline has no foreach section",
                                     loc=("stages", i, *path.split(".")), fix="add foreach: (see "
                                     "config/examples/abalone_by_sex.yaml), or reference a parameter")
        return
    if f.name in names:
        raise FieldError(f"{f.name!r} is also a stage name", loc=("foreach", "name"), fix="rename one of them")
    members = set(f.stages)
    for j, name in enumerate(f.stages):
        if name not in names:
            raise FieldError(f"{name!r} names no stage (stages: {', '.join(names)})", loc=("foreach", "stages", j),
                             fix="list stages of this pipeline")
        kind = config.stages[names.index(name)].kind
        if kind not in MEMBER_KINDS:
            raise FieldError(f"{name!r} is a {kind} stage, which cannot run once per item",
                             loc=("foreach", "stages", j),
                             fix=f"keep it out of the group (members may be {', '.join(MEMBER_KINDS)})")
    if f"{f.name}-items" in names:
        raise FieldError(f"{f.name}-items is a stage name; the fan-out names its items step so",
                         loc=("foreach", "name"), fix="rename the foreach or the stage")
    for i, stage in enumerate(config.stages):
        if getattr(stage, "kind", None) == "tuning" and getattr(stage, "training", None) in members:
            raise FieldError(f"{stage.training!r} runs once per item and cannot be tuned", loc=("stages", i),
                             fix="take the training stage out of foreach.stages, or drop the tuning stage")
        refs = dict(stage.references())
        refs.update({f"arguments.{k}": a for k, a in enumerate(getattr(stage, "arguments", []) or [])
                     if a == ITEM_REF})
        for path, ref in refs.items():
            loc = ("stages", i, *path.split("."))
            if ref == ITEM_REF and stage.name not in members:
                raise FieldError(f"{ITEM_REF} is only known inside the fan-out", loc=loc,
                                 fix=f"add {stage.name!r} to foreach.stages")
            if stage.name not in members and is_reference(ref) and not ref.startswith("$") \
                    and ref.split(".")[0] in members:
                raise FieldError(f"{ref!r} is produced once per item; a stage outside the fan-out cannot use it",
                                 loc=loc, fix=f"add {stage.name!r} to foreach.stages, or depend on "
                                              f"{ref.split('.')[0]!r} with depends_on (after every item)")
    if f.column is not None:
        _check_column(config, f, members)


def _check_column(config, f: ForEach, members: set[str]) -> None:
    from config.models import BUILTIN_PREPROCESS

    filters = [s for s in config.stages if s.name in members and s.kind == "processing"
               and s.code == BUILTIN_PREPROCESS]
    if not filters or config.data is None:
        raise FieldError("a column fan-out filters the rows in the built-in preprocessing", loc=("foreach", "column"),
                         fix="add the stage with code: builtin:preprocess (and the data section) to foreach.stages")
    data = config.data
    column = f.column
    if isinstance(column, int) or re.fullmatch(r"\d+", str(column)):
        if data.column_names and int(column) >= len(data.column_names):
            raise FieldError(f"column index {column} is out of range ({len(data.column_names)} columns)",
                             loc=("foreach", "column"), fix="give a 0-based index or a column name")
    elif data.column_names and column not in data.column_names:
        raise FieldError(f"{column!r} is not one of data.column_names", loc=("foreach", "column"),
                         fix=f"use one of {', '.join(data.column_names)}")
    elif not data.column_names and data.header is False:
        raise FieldError(f"{column!r} is a name, and the data has no header", loc=("foreach", "column"),
                         fix="give the column's 0-based index, or data.column_names")
    target = data.target
    names = data.column_names or []
    same = str(column) == str(target) or (names and _index(names, column) == _index(names, target))
    if same:
        raise FieldError("the fan-out column is the target", loc=("foreach", "column"),
                         fix="fan out over a feature column (e.g. a segment), not what the model predicts")


def _index(names: list[str], ref) -> int | None:
    if isinstance(ref, int) or re.fullmatch(r"\d+", str(ref)):
        return int(ref)
    return names.index(ref) if ref in names else None
