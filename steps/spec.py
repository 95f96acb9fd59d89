"""The backend-neutral pipeline spec: a small typed DAG of stages.

This is the single source of truth for the Step Functions renderer, the SageMaker renderer,
the local runner, ``describe`` and ``graph``. None of them reads the config file again.

References between stages are typed (``OutputRef``, ``ParamRef``) instead of JSONPath strings,
and, like sagemaker's ``PipelineVariable``, they refuse ``str()`` so that pasting one into a
string by accident fails at build time instead of producing a broken definition.

This module is long on purpose: every stage class, the spec and its typed values are one vocabulary, read
together by every backend (a fan-out's items and group live in ``items.py``).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Iterator, Mapping, Union

from steps.items import FanOut, Item


class _Reference:
    def __str__(self) -> str:  # pragma: no cover - the point is that it raises
        raise TypeError(
            f"{self!r} is a pipeline reference, not a string; let the renderer resolve it "
            "(the renderer resolves it)"
        )

    __format__ = lambda self, spec: self.__str__()  # noqa: E731  (f-strings must fail too)


@dataclass(frozen=True, repr=True)
class ParamRef(_Reference):
    """A pipeline parameter, resolved at run time (execution input, pipeline parameter, CLI)."""

    name: str


@dataclass(frozen=True, repr=True)
class OutputRef(_Reference):
    """An output of another stage, e.g. ``OutputRef("train", "model")``."""

    stage: str
    output: str


@dataclass(frozen=True, repr=True)
class ItemRef(_Reference):
    """The current item of a fan-out (``$item`` in the config; see ``FanOut``)."""


Value = Union[ParamRef, OutputRef, ItemRef, str, int, float, bool]


@dataclass(frozen=True)
class Parameter:
    name: str
    type: str  # String | Integer | Float | Boolean
    default: Any
    description: str = ""
    allowed: tuple[Any, ...] | None = None

    def coerce(self, raw: Any) -> Any:
        """Convert a CLI/JSON value to this parameter's type, or raise ValueError saying why."""
        if raw is None or isinstance(raw, (list, dict)):
            raise ValueError(f"{raw!r} is not a {self.type} value")
        if self.type == "Integer":
            if isinstance(raw, bool) or (isinstance(raw, float) and not raw.is_integer()):
                raise ValueError(f"{raw!r} is not an integer")
            value: Any = int(raw)
        elif self.type == "Float":
            if isinstance(raw, bool):
                raise ValueError(f"{raw!r} is not a number")
            value = float(raw)
        elif self.type == "Boolean":
            if isinstance(raw, bool):
                value = raw
            elif str(raw).lower() in {"true", "false"}:
                value = str(raw).lower() == "true"
            else:
                raise ValueError(f"{raw!r} is not true or false")
        else:
            value = str(raw)
        if self.allowed is not None and value not in self.allowed:
            raise ValueError(f"{value!r} is not one of {', '.join(map(str, self.allowed))}")
        return value


@dataclass(frozen=True)
class CodeAsset:
    """A script (or a tarball of scripts) uploaded under a content-addressed key at deploy.

    ``entry`` is the script that runs; for a tarball (framework source_dir) it is the member
    name, for a plain file it is the file itself.
    """

    name: str                  # e.g. preprocess.py, sourcedir.tar.gz
    entry: Path                # the script on this machine
    sha256: str
    key: str                   # S3 key with the hash in it: <prefix>/assets/<sha16>/<name>
    bucket: str
    archive: bool = False      # True: a deterministic tar.gz of ``entry`` (framework source_dir)
    extra: tuple[Path, ...] = ()  # more files in the tarball, e.g. the inference script


    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    def content(self) -> bytes:
        from steps.assets import asset_bytes

        return asset_bytes(self.entry, self.archive, self.extra)


@dataclass(frozen=True)
class Image:
    """Which container a stage runs in; renderers map it to an ECR URI, the local runner to a process."""

    kind: str           # algorithm | framework
    name: str           # xgboost | sklearn | pytorch
    version: str
    py_version: str | None = None


@dataclass(frozen=True)
class Instance:
    type: str
    count: int | ParamRef = 1
    volume_gb: int = 30
    max_runtime_seconds: int = 3600


@dataclass(frozen=True)
class Stage:
    """Common shape of every stage. ``inputs`` holds every reference the stage consumes."""

    name: str
    kind: str = field(init=False, default="")
    inputs: Mapping[str, Value] = field(default_factory=dict)
    outputs: tuple[str, ...] = ()
    depends_on: tuple[str, ...] = ()   # explicit ordering, beyond what inputs imply

    @property
    def upstream(self) -> tuple[str, ...]:
        refs = {v.stage for v in self.inputs.values() if isinstance(v, OutputRef)}
        return tuple(sorted(refs | set(self.depends_on)))

    def to_dict(self) -> dict[str, Any]:
        """The one place a stage is serialised (describe, hashing, cache keys, golden files)."""
        out: dict[str, Any] = {"name": self.name, "kind": self.kind}
        for f in fields(self):
            if f.name in {"name", "kind"}:
                continue
            out[f.name] = plain(getattr(self, f.name))
        out["upstream"] = list(self.upstream)
        return out


def plain(value: Any) -> Any:
    """A spec value as JSON-able data: references as ``$Param`` and ``stage.output``."""
    if isinstance(value, ParamRef):
        return f"${value.name}"
    if isinstance(value, OutputRef):
        return f"{value.stage}.{value.output}"
    if isinstance(value, ItemRef):
        return "$item"
    if isinstance(value, Stage):
        return value.to_dict()
    if isinstance(value, CodeAsset):
        return {"name": value.name, "entry": value.entry.name, "sha256": value.sha256, "uri": value.uri}
    if isinstance(value, Path):
        return value.name
    if isinstance(value, (Image, Instance, ParameterRange, Item, FanOut)):
        return {k: plain(v) for k, v in asdict(value).items() if v is not None} | (
            {"count": plain(value.count)} if isinstance(value, Instance) else {}
        )
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (tuple, list)):
        return [plain(v) for v in value]
    return value


@dataclass(frozen=True)
class ProcessingStage(Stage):
    code: CodeAsset | None = None
    image: Image | None = None
    instance: Instance | None = None
    arguments: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", "processing")


@dataclass(frozen=True)
class TrainingStage(Stage):
    image: Image | None = None
    instance: Instance | None = None
    hyperparameters: Mapping[str, Any] = field(default_factory=dict)
    entry_point: CodeAsset | None = None    # framework training only
    content_type: str = "text/csv"
    output_path: str | None = None          # default: <bucket>/<prefix>/runs/<run>/<stage>
    checkpoint_path: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", "training")


@dataclass(frozen=True)
class ParameterRange:
    name: str
    type: str                           # continuous | integer | categorical
    min: float | None = None
    max: float | None = None
    values: tuple[Any, ...] = ()
    scaling: str = "Auto"


@dataclass(frozen=True)
class TuningStage(Stage):
    """A hyperparameter tuning job over a training stage (``training``, the template: image,
    instance, inputs, fixed hyperparameters). Its ``model`` output is the best job's artifact."""

    training: TrainingStage | None = None
    objective_metric: str = ""
    objective_type: str = "Minimize"
    objective_regex: str | None = None
    ranges: tuple[ParameterRange, ...] = ()
    strategy: str = "Bayesian"
    max_jobs: int | None = 10
    max_parallel_jobs: int = 2
    early_stopping: str = "Off"
    random_seed: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", "tuning")

    @property
    def image(self) -> Image | None:
        return self.training.image if self.training else None

    @property
    def instance(self) -> Instance | None:
        return self.training.instance if self.training else None


@dataclass(frozen=True)
class EvaluationStage(Stage):
    code: CodeAsset | None = None
    image: Image | None = None
    instance: Instance | None = None
    problem_type: str = "regression"

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", "evaluation")


@dataclass(frozen=True)
class BaselineStage(Stage):
    """Model Monitor's data-quality baseline of a dataset: statistics.json and constraints.json."""

    instance: Instance | None = None
    header: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", "baseline")


# Where a metric lives in evaluation.json (SageMaker model-quality report layout).
METRIC_SECTIONS = {
    "mse": "regression_metrics", "rmse": "regression_metrics", "mae": "regression_metrics",
    "r2": "regression_metrics", "accuracy": "classification_metrics",
    "auc": "classification_metrics", "f1": "classification_metrics",
}


@dataclass(frozen=True)
class GateStage(Stage):
    """The quality gate: one comparison on one metric of evaluation.json."""

    metric: str = "mse"
    comparison: str = "<="
    threshold: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", "gate")

    @property
    def json_path(self) -> str:
        return f"{METRIC_SECTIONS[self.metric]}.{self.metric}.value"

    def passes(self, value: float) -> bool:
        """The rule every backend applies; renderers translate it, the local runner calls it."""
        return {
            "<=": value <= self.threshold, "<": value < self.threshold,
            ">=": value >= self.threshold, ">": value > self.threshold,
        }[self.comparison]

    def describe(self) -> str:
        return f"{self.metric} {self.comparison} {self.threshold:g}"


@dataclass(frozen=True)
class ModelStage(Stage):
    image: Image | None = None
    instance: Instance | None = None        # inference instance

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", "model")


@dataclass(frozen=True)
class RegisterStage(Stage):
    model_package_group: str = ""
    image: Image | None = None
    content_types: tuple[str, ...] = ("text/csv",)
    response_types: tuple[str, ...] = ("text/csv",)
    inference_instances: tuple[str, ...] = ()
    transform_instances: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", "register")


@dataclass(frozen=True)
class ApprovalStage(Stage):
    timeout_seconds: int = 86400
    emails: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", "approval")


@dataclass(frozen=True)
class EndpointStage(Stage):
    endpoint_name: str = ""
    instance: Instance | None = None
    data_capture: bool = True
    sampling_percentage: int = 100
    monitoring_schedule: str | None = None   # a data-quality schedule (inputs: the baseline's files)
    monitoring_instance: Instance | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", "endpoint")


@dataclass(frozen=True)
class TransformStage(Stage):
    instance: Instance | None = None
    content_type: str = "text/csv"

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", "transform")


@dataclass(frozen=True)
class LambdaStage(Stage):
    function_name: str = ""
    handler: str = ""
    environment: Mapping[str, str] = field(default_factory=dict)
    timeout_seconds: int = 30
    memory_mb: int = 256

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", "lambda")


@dataclass(frozen=True)
class Schedule:
    expression: str
    timezone: str
    enabled: bool
    maximum_attempts: int
    maximum_event_age_seconds: int
    dead_letter_queue: bool


@dataclass(frozen=True)
class PipelineSpec:
    name: str
    description: str
    region: str
    account_id: str
    bucket: str
    prefix: str
    roles: Mapping[str, str | None]
    tags: Mapping[str, str]
    parameters: tuple[Parameter, ...]
    stages: tuple[Stage, ...]          # topologically ordered
    data: Mapping[str, Any]            # the data section, for preprocessing and local runs
    schedule: Schedule | None = None
    trigger_prefix: str | None = None  # s3://bucket/prefix/ that starts a run on new objects
    cache_expire_after: str | None = None  # SageMaker Pipelines step caching (ISO 8601 duration)
    emails: tuple[str, ...] = ()
    source: Path | None = None
    fanout: FanOut | None = None           # a group of stages once per item
    origin_fingerprint: str | None = None  # an expanded fan-out keeps its config's fingerprint
    source_text: str | None = field(default=None, compare=False)  # the config as the user named it

    @property
    def where(self) -> str | None:
        """How messages name the config: as the user named it (see config.loader.source_name)."""
        return self.source_text or (str(self.source) if self.source else None)

    def __iter__(self) -> Iterator[Stage]:
        return iter(self.stages)

    def stage(self, name: str) -> Stage:
        for s in self.stages:
            if s.name == name:
                return s
        raise KeyError(name)

    def parameter(self, name: str) -> Parameter:
        for p in self.parameters:
            if p.name == name:
                return p
        raise KeyError(name)

    def downstream(self, name: str) -> tuple[str, ...]:
        """Every stage that (transitively) depends on ``name``."""
        found: list[str] = []
        frontier = {name}
        for s in self.stages:
            if frontier & set(s.upstream):
                found.append(s.name)
                frontier.add(s.name)
        return tuple(found)

    @property
    def assets(self) -> tuple[CodeAsset, ...]:
        seen: dict[str, CodeAsset] = {}
        for s in self.stages:
            for attr in ("code", "entry_point"):
                asset = getattr(s, attr, None) or getattr(getattr(s, "training", None), attr, None)
                if asset is not None:
                    seen.setdefault(asset.key, asset)
        return tuple(seen[k] for k in sorted(seen))

    @property
    def s3_root(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}".rstrip("/")

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "aws": {"region": self.region, "account_id": self.account_id, "bucket": self.bucket,
                    "prefix": self.prefix, "roles": dict(self.roles), "tags": dict(self.tags)},
            "parameters": [plain(asdict(p)) for p in self.parameters],
            "stages": [s.to_dict() for s in self.stages],
            "data": plain(self.data),
            "schedule": asdict(self.schedule) if self.schedule else None,
            "trigger_prefix": self.trigger_prefix,
            "cache_expire_after": self.cache_expire_after,
            "emails": list(self.emails),
        } | ({"fanout": plain(self.fanout)} if self.fanout else {})

    @property
    def fingerprint(self) -> str:
        """Content hash of the whole spec (config + code assets): the run's config hash."""
        if self.origin_fingerprint:
            return self.origin_fingerprint
        blob = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256(blob.encode()).hexdigest()
