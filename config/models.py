"""Pydantic models of a pipeline config file: the whole schema in one file, one model per
section, so it reads top to bottom (long on purpose; single-value checks live in values.py).

Validation happens here, at the boundary, so nothing downstream (step factories, renderers,
the local runner, deploy) needs to second-guess a value. Every model forbids unknown fields:
a typo must fail loudly rather than be silently ignored.
"""

from __future__ import annotations

import difflib
import re
import typing
from typing import Annotated, Literal, Union

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

# AWS's own limits (instance types, name patterns, ranges, regions) come from the API models
# botocore ships, through config.aws_api; nothing there is loaded until a check needs it.
from config import aws_api, suggest
from config.values import (  # noqa: F401  (FieldError and is_reference are re-exported)
    EndpointInstanceType, FieldError, InferenceInstanceType, InstanceType, ParamOr, ProcessingInstanceType,
    RoleArn, S3Uri, Scalar, ScheduleExpression, TimeZone, TrainingInstanceType, TransformInstanceType,
    api_string, bucket_problem, check_count, is_reference, s3_uri,
)
from config.values import _PARAM_NAME, _PIPELINE_NAME, _SSM_NAME, _STAGE_NAME, _bucket_fix
from config.foreach import ITEM_REF, ForEach, check_foreach


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --- AWS settings --------------------------------------------------------------------------

class Roles(Strict):
    """Existing role ARNs. Any left out are created by deploy with least-privilege policies."""

    sagemaker: RoleArn | None = None
    stepfunctions: RoleArn | None = None
    lambda_: RoleArn | None = Field(default=None, alias="lambda")
    scheduler: RoleArn | None = None
    events: RoleArn | None = None

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class AwsSettings(Strict):
    region: str | None = None
    account_id: str | None = Field(default=None, pattern=r"^\d{12}$")
    bucket: str
    prefix: str = Field(default="", pattern=r"^[A-Za-z0-9!_.*'()/-]{0,200}$")
    roles: Roles = Roles()
    tags: dict[str, str] = {}

    @field_validator("region")
    @classmethod
    def _region(cls, v: str | None) -> str | None:
        if v is not None:
            known = aws_api.regions("sagemaker")
            if v not in known:
                near = suggest.closest(v, known, 4)
                raise FieldError(
                    f"{v!r} is not an AWS region where SageMaker is available (botocore's endpoint data)",
                    fix=f"use one of {', '.join(near)}, ... (if the region is new, upgrade botocore)")
        return v

    @field_validator("bucket")
    @classmethod
    def _bucket(cls, v: str) -> str:
        problem = bucket_problem(v)
        if problem:
            raise FieldError(f"{v!r} is not a valid S3 bucket name: it {problem}", fix=_bucket_fix(v))
        return v

    @field_validator("tags")
    @classmethod
    def _tags(cls, v: dict[str, str]) -> dict[str, str]:
        # mlpipe adds mlpipe:pipeline, mlpipe:config-hash and mlpipe:run-id to what it tags.
        limit = aws_api.max_items("sagemaker", aws_api.member_shape("sagemaker", "CreateTrainingJob", "Tags"))
        if limit is not None and len(v) > limit - 3:
            raise FieldError(f"{len(v)} tags; SageMaker accepts {limit}, and mlpipe adds 3",
                             fix=f"keep at most {limit - 3} tags")
        key_limit = aws_api.string_constraints("sagemaker", "TagKey").max_length or 128
        value_limit = aws_api.string_constraints("sagemaker", "TagValue").max_length or 256
        for key, value in v.items():
            if not 1 <= len(key) <= key_limit or key.lower().startswith("aws:"):
                raise FieldError(f"tag key {key!r} must have 1-{key_limit} characters and not start with 'aws:'",
                                 loc=(key,), fix="rename the tag")
            if len(value) > value_limit:
                raise FieldError(f"the value of tag {key!r} is longer than {value_limit} characters",
                                 loc=(key,), fix="shorten the value")
        return v

    @field_validator("prefix")
    @classmethod
    def _prefix(cls, v: str) -> str:
        return v.strip("/")


# --- pipeline parameters -------------------------------------------------------------------

class Parameter(Strict):
    type: Literal["String", "Integer", "Float", "Boolean"]
    default: Scalar
    description: str = ""
    allowed: list[Scalar] | None = None

    @model_validator(mode="after")
    def _default_matches_type(self) -> "Parameter":
        ok = {
            "String": lambda v: isinstance(v, str),
            "Integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
            "Float": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
            "Boolean": lambda v: isinstance(v, bool),
        }[self.type]
        if not ok(self.default):
            raise ValueError(f"default {self.default!r} is not a {self.type}")
        if self.allowed is not None and self.default not in self.allowed:
            raise ValueError(f"default {self.default!r} is not one of {self.allowed}")
        if self.type == "String":
            for loc, value in [(("default",), self.default),
                               *((("allowed", i), a) for i, a in enumerate(self.allowed or []))]:
                if isinstance(value, str) and value[:5].lower() == "s3://":
                    try:
                        s3_uri(value)
                    except FieldError as exc:
                        raise FieldError(str(exc), loc=loc, fix=exc.fix) from None
        return self

    def possible_values(self) -> list[Scalar]:
        """Every value this parameter can take without a run-time override we cannot see."""
        return list(self.allowed) if self.allowed is not None else [self.default]


# --- data ----------------------------------------------------------------------------------

class DataSettings(Strict):
    """What the built-in preprocessing script needs to know about the input table."""

    local: str | None = Field(
        default=None,
        description="Data for local runs: a path (relative to the config) or sklearn:<dataset>.",
    )
    target: int | str = Field(description="Target column: 0-based index or name (a name implies a header).")
    header: bool | None = None
    delimiter: str | None = Field(default=None, min_length=1, max_length=1)
    categorical: list[int | str] | None = None
    column_names: list[str] | None = None
    problem_type: Literal["regression", "classification"] = "regression"
    split: tuple[float, float, float] = (0.7, 0.15, 0.15)
    seed: int = 42

    @field_validator("split")
    @classmethod
    def _split(cls, v: tuple[float, float, float]) -> tuple[float, float, float]:
        if any(x <= 0 for x in v) or abs(sum(v) - 1.0) > 1e-6:
            raise ValueError("train/validation/test ratios must be positive and sum to 1")
        return v

    @model_validator(mode="after")
    def _named_target_needs_header(self) -> "DataSettings":
        if isinstance(self.target, str) and self.header is False and not self.column_names:
            raise ValueError("a target given by name needs a header row (or column_names)")
        return self


# --- stages --------------------------------------------------------------------------------

class StageBase(Strict):
    name: str
    depends_on: list[str] = []
    instance_type: InstanceType = "ml.m5.xlarge"
    instance_count: ParamOr = 1
    volume_size_gb: int = Field(default=30, ge=1, le=16384)
    max_runtime_seconds: int = Field(default=3600, ge=60, le=432000)

    def output_names(self) -> list[str]:
        """Names other stages may reference as "<stage>.<output>"."""
        return []

    @model_validator(mode="after")
    def _instance_count(self) -> "StageBase":
        count = self.instance_count
        if isinstance(count, int) and not isinstance(count, bool):
            try:
                check_count(count, self.kind)  # type: ignore[attr-defined]
            except FieldError as exc:
                raise FieldError(str(exc), loc=("instance_count",), fix=exc.fix) from None
        return self

    def references(self) -> dict[str, str]:
        """Field path -> reference ("$Param" or "stage.output") held by this stage."""
        return {"instance_count": self.instance_count} if isinstance(self.instance_count, str) else {}

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _STAGE_NAME.match(v):
            raise ValueError(
                f"{v!r} is not a valid stage name; use 1-24 lowercase letters, digits or '-', "
                "starting with a letter (it becomes part of SageMaker job names)"
            )
        return v


def _check_inputs(inputs: dict[str, str]) -> dict[str, str]:
    for name, value in inputs.items():
        if not is_reference(value):
            try:
                s3_uri(value)
            except FieldError as exc:
                if value[:5].lower() == "s3://":
                    raise FieldError(str(exc), loc=(name,), fix=exc.fix) from None
                raise FieldError(
                    f"input {name!r}: {value!r} is neither a reference ($Param or stage.output) nor an S3 URI",
                    loc=(name,), fix="write $Param, stage.output or s3://<bucket>/<key>") from None
    return inputs


class ProcessingStageConfig(StageBase):
    kind: Literal["processing"]
    instance_type: ProcessingInstanceType = "ml.m5.xlarge"
    code: str = "builtin:preprocess"
    framework: Literal["sklearn"] = "sklearn"
    framework_version: str = "1.2-1"
    inputs: dict[str, str] = {}
    outputs: list[str] = ["train", "validation", "test"]
    arguments: list[str] = []

    _inputs = field_validator("inputs")(classmethod(lambda cls, v: _check_inputs(v)))

    def output_names(self) -> list[str]:
        return list(self.outputs)

    def references(self) -> dict[str, str]:
        return {**super().references(), **{f"inputs.{k}": v for k, v in self.inputs.items() if is_reference(v)}}


class Algorithm(Strict):
    name: Literal["xgboost"]
    version: str = "1.7-1"


class Framework(Strict):
    name: Literal["pytorch"]
    version: str = "2.1"
    py_version: str = "py310"
    entry_point: str = "builtin:train_pytorch"


class TrainingStageConfig(StageBase):
    kind: Literal["training"]
    instance_type: TrainingInstanceType = "ml.m5.xlarge"
    algorithm: Algorithm | None = None
    framework: Framework | None = None
    hyperparameters: dict[str, Scalar] = {}
    inputs: dict[str, str] = {}
    content_type: str = "text/csv"
    output_path: S3Uri | None = None
    checkpoint_path: S3Uri | None = None

    _inputs = field_validator("inputs")(classmethod(lambda cls, v: _check_inputs(v)))

    @model_validator(mode="after")
    def _one_of(self) -> "TrainingStageConfig":
        if (self.algorithm is None) == (self.framework is None):
            raise ValueError("set exactly one of 'algorithm' (built-in, e.g. xgboost) or 'framework' (e.g. pytorch)")
        if not self.inputs:
            raise ValueError("a training stage needs at least one input channel, e.g. train: preprocess.train")
        return self

    @model_validator(mode="after")
    def _hyperparameters(self) -> "TrainingStageConfig":
        """What CreateTrainingJob (botocore's HyperParameters map) and, for built-in XGBoost
        1.7-1, the algorithm container itself would refuse."""
        hps = self.hyperparameters
        shape = aws_api.member_shape("sagemaker", "CreateTrainingJob", "HyperParameters")
        limit = aws_api.max_items("sagemaker", shape)
        if limit is not None and len(hps) > limit:
            raise FieldError(f"{len(hps)} hyperparameters; SageMaker accepts at most {limit} "
                             "(CreateTrainingJob HyperParameters, from botocore)",
                             loc=("hyperparameters",), fix=f"remove {len(hps) - limit} of them")
        key_rule = aws_api.string_constraints("sagemaker", aws_api.shape("sagemaker", shape)["key"]["shape"])
        value_rule = aws_api.string_constraints("sagemaker", aws_api.shape("sagemaker", shape)["value"]["shape"])
        for key, value in hps.items():
            problem = key_rule.problem(key)
            if problem:
                raise FieldError(f"hyperparameter name {key[:40]!r} {problem}", loc=("hyperparameters", key),
                                 fix="use a shorter name")
            problem = value_rule.problem(str(value))
            if problem:
                raise FieldError(f"the value of {key!r} {problem}", loc=("hyperparameters", key),
                                 fix="pass large values as a file in an input channel instead")
        if self.algorithm is not None and self.algorithm.name == "xgboost":
            from config import xgboost_hyperparameters as xgb

            if self.algorithm.version == xgb.VERSION:
                problems = xgb.validate(hps)
                if problems:
                    first = problems[0]
                    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
                    loc = ("hyperparameters", first.name) if first.name in hps else ("hyperparameters",)
                    raise FieldError(first.message + more, loc=loc, fix=first.fix)
        return self

    def output_names(self) -> list[str]:
        return ["model"]

    def references(self) -> dict[str, str]:
        return {**super().references(), **{f"inputs.{k}": v for k, v in self.inputs.items() if is_reference(v)}}


class ParameterRange(Strict):
    """One hyperparameter's search space (CreateHyperParameterTuningJob ParameterRanges)."""

    type: Literal["continuous", "integer", "categorical"]
    min: float | None = None
    max: float | None = None
    values: list[Scalar] | None = None
    scaling: Literal["Auto", "Linear", "Logarithmic", "ReverseLogarithmic"] = "Auto"

    @model_validator(mode="after")
    def _shape(self) -> "ParameterRange":
        if self.type == "categorical":
            if not self.values or self.min is not None or self.max is not None:
                raise ValueError("a categorical range lists its values (and no min/max)")
            limit = aws_api.max_items("sagemaker", aws_api.member_shape(
                "sagemaker", "CreateHyperParameterTuningJob",
                "HyperParameterTuningJobConfig.ParameterRanges.CategoricalParameterRanges.Values"))
            if limit is not None and len(self.values) > limit:
                raise FieldError(f"{len(self.values)} values; a categorical range takes at most {limit}",
                                 loc=("values",), fix="list fewer values")
            return self
        if self.min is None or self.max is None or self.values is not None:
            raise ValueError(f"a {self.type} range has a min and a max (and no values)")
        if self.min >= self.max:
            raise FieldError(f"min {self.min:g} is not below max {self.max:g}", loc=("max",),
                             fix="give a min below the max")
        if self.type == "integer" and not (float(self.min).is_integer() and float(self.max).is_integer()):
            raise FieldError("an integer range needs whole-number bounds", loc=("min",), fix="e.g. min: 3, max: 9")
        if self.scaling in ("Logarithmic", "ReverseLogarithmic") and self.min <= 0:
            raise FieldError(f"{self.scaling} scaling needs min > 0", loc=("min",), fix="raise min, or use Linear")
        if self.scaling == "ReverseLogarithmic" and (self.type != "continuous" or self.max >= 1):
            raise FieldError("ReverseLogarithmic scaling is for continuous ranges inside (0, 1)", loc=("scaling",),
                             fix="use Linear or Logarithmic")
        return self


class TuningObjective(Strict):
    metric: str                          # e.g. validation:rmse (the algorithm's metric definitions)
    type: Literal["Minimize", "Maximize"]
    regex: str | None = None             # framework scripts: how the metric is read from the log


class TuningStageConfig(StageBase):
    """Tune a training stage: its best training job's model flows on as the training stage's
    would (references to ``<training>.model`` follow the tuned model). ``enabled: false``
    keeps the section in the config and trains once with the fixed hyperparameters."""

    kind: Literal["tuning"]
    training: str
    enabled: bool = True
    objective: TuningObjective
    ranges: dict[str, ParameterRange] = Field(min_length=1)
    strategy: Literal["Bayesian", "Random", "Hyperband", "Grid"] = "Bayesian"
    max_jobs: int | None = Field(default=10, ge=1)
    max_parallel_jobs: int = Field(default=2, ge=1)
    early_stopping: Literal["Off", "Auto"] = "Off"
    random_seed: int | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _strategy(self) -> "TuningStageConfig":
        limits = {name: aws_api.numeric_range("sagemaker", shape) for name, shape in
                  (("max_jobs", "MaxNumberOfTrainingJobs"), ("max_parallel_jobs", "MaxParallelTrainingJobs"))}
        for name, (low, high) in limits.items():
            value = getattr(self, name)
            if value is not None and ((low is not None and value < low) or (high is not None and value > high)):
                raise FieldError(f"{name} {value} is outside {low}..{high} (botocore's ResourceLimits)",
                                 loc=(name,), fix=f"use {low}..{high}")
        if self.max_jobs is not None and self.max_parallel_jobs > self.max_jobs:
            raise FieldError(f"max_parallel_jobs {self.max_parallel_jobs} exceeds max_jobs {self.max_jobs}",
                             loc=("max_parallel_jobs",), fix="run at most max_jobs at once")
        if self.strategy == "Grid":
            wrong = [n for n, r in self.ranges.items() if r.type != "categorical"]
            if wrong:
                raise FieldError(f"Grid search takes categorical ranges only; {wrong[0]!r} is {self.ranges[wrong[0]].type}",
                                 loc=("ranges", wrong[0]), fix="list the values to try, or use Random/Bayesian")
        if self.strategy == "Hyperband" and self.early_stopping != "Off":
            raise FieldError("Hyperband stops jobs early itself; early_stopping must be Off", loc=("early_stopping",),
                             fix="set early_stopping: Off")
        if self.strategy == "Grid" and self.early_stopping != "Off":
            raise FieldError("Grid search does not stop jobs early", loc=("early_stopping",), fix="set early_stopping: Off")
        return self

    def output_names(self) -> list[str]:
        return ["model"]


class Gate(Strict):
    metric: Literal["mse", "rmse", "mae", "r2", "accuracy", "auc", "f1"]
    comparison: Literal["<=", "<", ">=", ">"]
    threshold: float


class EvaluationStageConfig(StageBase):
    kind: Literal["evaluation"]  # runs as a processing job
    instance_type: ProcessingInstanceType = "ml.m5.xlarge"
    code: str = "builtin:evaluate"
    model: str = Field(description="Reference to the training stage's model, e.g. train.model")
    test: str = Field(description="Reference to the test data, e.g. preprocess.test")
    gate: Gate | None = None

    def output_names(self) -> list[str]:
        return ["evaluation"]

    def references(self) -> dict[str, str]:
        return {**super().references(), "model": self.model, "test": self.test}


class BaselineStageConfig(StageBase):
    """Data-quality statistics and constraints of a dataset, in SageMaker Model Monitor's own
    format (statistics.json, constraints.json): what an endpoint's monitoring schedule checks
    captured requests against. ``data`` should be what the endpoint receives: features only, in
    the model's input format, e.g. the built-in preprocessing's ``baseline`` output."""

    kind: Literal["baseline"]  # runs as a processing job: Model Monitor's analyzer image
    instance_type: ProcessingInstanceType = "ml.m5.xlarge"
    data: str = Field(description="The dataset: stage.output, $Param or an S3 URI, e.g. preprocess.baseline")
    header: bool = False

    _data = field_validator("data")(classmethod(lambda cls, v: _check_inputs({"data": v})["data"]))

    def output_names(self) -> list[str]:
        return ["statistics", "constraints"]

    def references(self) -> dict[str, str]:
        refs = {**super().references(), "data": self.data}
        return {k: v for k, v in refs.items() if is_reference(v)}


class ModelStageConfig(StageBase):
    kind: Literal["model"]
    model: str = Field(description="Reference to a training stage's model, e.g. train.model")
    instance_type: InferenceInstanceType = "ml.m5.large"

    def output_names(self) -> list[str]:
        return ["model_name"]

    def references(self) -> dict[str, str]:
        refs = {**super().references(), "model": self.model}
        return {k: v for k, v in refs.items() if is_reference(v)}


class RegisterStageConfig(StageBase):
    kind: Literal["register"]
    model: str
    model_package_group: str | None = None
    approval_status: str = "PendingManualApproval"
    content_types: list[str] = ["text/csv"]
    response_types: list[str] = ["text/csv"]
    inference_instances: list[EndpointInstanceType] = ["ml.m5.large"]
    transform_instances: list[TransformInstanceType] = ["ml.m5.large"]

    @field_validator("model_package_group")
    @classmethod
    def _group(cls, v: str | None) -> str | None:
        if v is not None:
            api_string(v, "sagemaker", "CreateModelPackageGroup", "ModelPackageGroupName", "model package group name")
        return v

    @field_validator("approval_status")
    @classmethod
    def _approval_status(cls, v: str) -> str:
        if not is_reference(v):
            api_string(v, "sagemaker", "CreateModelPackage", "ModelApprovalStatus", "model approval status")
        return v

    def output_names(self) -> list[str]:
        return ["model_package_arn"]

    def references(self) -> dict[str, str]:
        refs = {**super().references(), "model": self.model, "approval_status": self.approval_status}
        return {k: v for k, v in refs.items() if is_reference(v)}


class ApprovalStageConfig(StageBase):
    kind: Literal["approval"]
    timeout_seconds: int = Field(default=86400, ge=60, le=31_536_000)
    emails: list[Annotated[str, Field(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")]] = []

    def output_names(self) -> list[str]:
        return ["decision"]


class DataCapture(Strict):
    enabled: bool = True
    sampling_percentage: int = Field(default=100, ge=0, le=100)


# The schedules Model Monitor accepts: hourly, daily at an hour, or every N hours from an hour.
_MONITOR_CRON = re.compile(r"^cron\(0 (\*|([01]?\d|2[0-3])(/([1-9]|1\d|2[0-4]))?) \? \* \* \*\)$")


class Monitoring(Strict):
    """A data-quality monitoring schedule on the endpoint (SageMaker Model Monitor): captured
    requests are checked against a baseline stage's constraints, and violations notify the
    pipeline's topic."""

    baseline: str = Field(description="The baseline stage whose constraints the schedule checks")
    schedule: str = "cron(0 * ? * * *)"
    instance_type: ProcessingInstanceType = "ml.m5.xlarge"
    volume_size_gb: int = Field(default=30, ge=1, le=16384)
    max_runtime_seconds: int = Field(default=3600, ge=1, le=86400)

    @field_validator("schedule")
    @classmethod
    def _schedule(cls, v: str) -> str:
        if not _MONITOR_CRON.match(v):
            raise FieldError(f"{v!r} is not a schedule Model Monitor accepts",
                             fix="hourly cron(0 * ? * * *), daily cron(0 3 ? * * *), or every N hours "
                                 "cron(0 0/6 ? * * *)")
        return v


class EndpointStageConfig(StageBase):
    kind: Literal["endpoint"]
    model: str
    endpoint_name: str | None = None
    instance_type: EndpointInstanceType = "ml.m5.large"
    data_capture: DataCapture = DataCapture()
    monitoring: Monitoring | None = None

    @model_validator(mode="after")
    def _monitoring_needs_capture(self) -> "EndpointStageConfig":
        if self.monitoring is not None and not (self.data_capture.enabled and self.data_capture.sampling_percentage):
            raise FieldError("monitoring checks captured requests, but data capture is off",
                             loc=("data_capture",), fix="set data_capture: {enabled: true, sampling_percentage: 20}")
        return self

    @field_validator("endpoint_name")
    @classmethod
    def _endpoint_name(cls, v: str | None) -> str | None:
        if v is not None:
            api_string(v, "sagemaker", "CreateEndpoint", "EndpointName", "endpoint name")
        return v

    def output_names(self) -> list[str]:
        return ["endpoint_name"]

    def references(self) -> dict[str, str]:
        refs = {**super().references(), "model": self.model}
        return {k: v for k, v in refs.items() if is_reference(v)}


class TransformStageConfig(StageBase):
    kind: Literal["transform"]
    model: str
    input: str = "$BatchData"
    content_type: str = "text/csv"
    instance_type: TransformInstanceType = "ml.m5.large"

    def output_names(self) -> list[str]:
        return ["predictions"]

    def references(self) -> dict[str, str]:
        refs = {**super().references(), "model": self.model, "input": self.input}
        return {k: v for k, v in refs.items() if is_reference(v)}


class LambdaStageConfig(StageBase):
    kind: Literal["lambda"]
    handler: str = "lambda_handlers.register_model_name.handler"
    function_name: str | None = None
    payload: dict[str, str] = {}
    environment: dict[str, str] = {}
    timeout_seconds: int = Field(default=30, ge=1, le=900)
    memory_mb: int = Field(default=256, ge=128, le=10240)

    @field_validator("function_name")
    @classmethod
    def _function_name(cls, v: str | None) -> str | None:
        if v is not None:
            api_string(v, "lambda", "CreateFunction", "FunctionName", "Lambda function name")
        return v

    @field_validator("environment")
    @classmethod
    def _env(cls, v: dict[str, str]) -> dict[str, str]:
        name = v.get("PARAMETER_NAME")
        if name is not None and not _SSM_NAME.match(name):
            raise ValueError(f"PARAMETER_NAME {name!r} is not an SSM parameter path such as /mlpipe/model-name")
        return v

    def output_names(self) -> list[str]:
        return ["result"]

    def references(self) -> dict[str, str]:
        return {**super().references(), **{f"payload.{k}": v for k, v in self.payload.items() if is_reference(v)}}


StageConfig = Annotated[
    Union[
        ProcessingStageConfig, TrainingStageConfig, EvaluationStageConfig, ModelStageConfig,
        RegisterStageConfig, ApprovalStageConfig, EndpointStageConfig, TransformStageConfig,
        LambdaStageConfig, TuningStageConfig, BaselineStageConfig,
    ],
    Field(discriminator="kind"),
]
# The kinds a config may declare, read off the union above (the loader's messages use it).
STAGE_KINDS = tuple(m.model_fields["kind"].annotation.__args__[0]
                    for m in typing.get_args(typing.get_args(StageConfig)[0]))


# --- schedule, triggers, notifications -----------------------------------------------------

class ScheduleRetry(Strict):
    maximum_attempts: int = Field(default=2, ge=0, le=185)
    maximum_event_age_seconds: int = Field(default=3600, ge=60, le=86400)


class Schedule(Strict):
    expression: ScheduleExpression
    timezone: TimeZone = "UTC"
    enabled: bool = True
    retry: ScheduleRetry = ScheduleRetry()
    dead_letter_queue: bool = True


class Trigger(Strict):
    """Start a run when a new object lands under this S3 prefix."""

    s3_prefix: S3Uri


_DURATION = re.compile(r"^P(?!$)(\d+Y)?(\d+M)?(\d+W)?(\d+D)?(T(?=\d)(\d+H)?(\d+M)?(\d+S)?)?$")


class Cache(Strict):
    """SageMaker Pipelines step caching: an unchanged step reuses a result younger than this."""

    expire_after: str

    @field_validator("expire_after")
    @classmethod
    def _iso_duration(cls, v: str) -> str:
        if not _DURATION.match(v):
            raise FieldError(f"{v!r} is not an ISO 8601 duration", fix="e.g. P30D (30 days) or PT12H (12 hours)")
        return v


class Notifications(Strict):
    emails: list[Annotated[str, Field(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")]] = []


class Pipeline(Strict):
    name: str
    description: str = ""

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _PIPELINE_NAME.match(v):
            raise ValueError(
                f"{v!r} is not a valid pipeline name; use 1-32 lowercase letters, digits or '-', "
                "starting with a letter"
            )
        return v


class PipelineConfig(Strict):
    pipeline: Pipeline
    aws: AwsSettings
    parameters: dict[str, Parameter] = {}
    data: DataSettings | None = None
    stages: list[StageConfig] = Field(min_length=1)
    schedule: Schedule | None = None
    trigger: Trigger | None = None
    cache: Cache | None = None
    notifications: Notifications = Notifications()
    foreach: ForEach | None = None   # fan-out: a group of stages once per item (config/foreach.py)
    _source: Path | None = PrivateAttr(default=None)       # the file, resolved: what relative paths start from
    _source_text: str | None = PrivateAttr(default=None)   # the file as the user named it: what messages say

    @field_validator("parameters")
    @classmethod
    def _param_names(cls, v: dict[str, Parameter]) -> dict[str, Parameter]:
        for name in v:
            if not _PARAM_NAME.match(name):
                raise ValueError(f"parameter name {name!r} must be alphanumeric, starting with a letter")
        return v

    @model_validator(mode="after")
    def _references(self) -> "PipelineConfig":
        """Check every "$Param" and "stage.output" reference, so renderers never see a dangling one."""
        outputs: dict[str, list[str]] = {}
        for i, stage in enumerate(self.stages):
            if stage.name in outputs:
                raise FieldError(f"stage name {stage.name!r} is used twice", loc=("stages", i, "name"),
                                 fix="rename one of them")
            outputs[stage.name] = stage.output_names()
        for i, stage in enumerate(self.stages):
            for path, ref in stage.references().items():
                loc = ("stages", i, *path.split("."))
                if not is_reference(ref):
                    raise FieldError(f"{ref!r} is not a reference", loc=loc, fix="write $Param or stage.output")
                if ref == ITEM_REF:
                    continue  # a fan-out member's item: check_foreach places it
                if ref.startswith("$"):
                    if ref[1:] not in self.parameters:
                        raise FieldError(
                            f"{ref!r} names no declared parameter "
                            f"(declared: {', '.join(sorted(self.parameters)) or 'none'})",
                            loc=loc, fix=f"declare {ref[1:]} under parameters, or fix the spelling")
                    continue
                stage_name, _, output = ref.partition(".")
                if stage_name not in outputs:
                    raise FieldError(f"{ref!r} names no stage (stages: {', '.join(outputs)})", loc=loc,
                                     fix="reference an existing stage as stage.output")
                if output not in outputs[stage_name]:
                    raise FieldError(
                        f"stage {stage_name!r} has no output {output!r} "
                        f"(outputs: {', '.join(outputs[stage_name]) or 'none'})",
                        loc=loc, fix="use one of that stage's outputs")
            for dep in stage.depends_on:
                if dep not in outputs:
                    raise FieldError(f"{dep!r} names no stage", loc=("stages", i, "depends_on"),
                                     fix=f"depend on one of {', '.join(outputs)}")
        return self

    @model_validator(mode="after")
    def _tuning(self) -> "PipelineConfig":
        """A tuning stage names an earlier training stage, tunes that algorithm's own
        hyperparameters, and optimises one of its metrics (the ones the service can read)."""
        seen: dict[str, StageConfig] = {}
        tuned: set[str] = set()
        for i, stage in enumerate(self.stages):
            if stage.kind == "tuning":
                target = seen.get(stage.training)
                if target is None or target.kind != "training":
                    raise FieldError(f"{stage.training!r} is not a training stage declared before this one",
                                     loc=("stages", i, "training"), fix="name the training stage to tune")
                if stage.enabled and stage.training in tuned:
                    raise FieldError(f"{stage.training!r} is tuned twice", loc=("stages", i, "training"),
                                     fix="keep one enabled tuning stage per training stage")
                tuned.add(stage.training) if stage.enabled else None
                if target.algorithm is not None and target.algorithm.name == "xgboost":
                    from config import xgboost_hyperparameters as xgb

                    for name in stage.ranges:
                        if name not in xgb.HYPERPARAMETERS:
                            near = ", ".join(difflib.get_close_matches(name, list(xgb.HYPERPARAMETERS), 3))
                            raise FieldError(f"{name!r} is not a hyperparameter of built-in XGBoost {xgb.VERSION}",
                                             loc=("stages", i, "ranges", name),
                                             fix=f"did you mean {near}?" if near else "see the algorithm's hyperparameters")
                    if stage.objective.metric not in xgb.TUNING_METRICS:
                        near = ", ".join(difflib.get_close_matches(stage.objective.metric, xgb.TUNING_METRICS, 3))
                        raise FieldError(f"{stage.objective.metric!r} is not a metric XGBoost {xgb.VERSION} reports "
                                         "to tuning jobs", loc=("stages", i, "objective", "metric"),
                                         fix=f"use e.g. {near or 'validation:rmse'}")
                    if "validation" not in target.inputs:
                        raise FieldError(f"tuning on {stage.objective.metric} needs a validation channel on "
                                         f"{stage.training!r}", loc=("stages", i, "objective", "metric"),
                                         fix="add validation: preprocess.validation to its inputs")
                elif stage.objective.regex is None:
                    raise FieldError("a framework script's metric is read from its log: give objective.regex",
                                     loc=("stages", i, "objective", "regex"),
                                     fix=r"e.g. regex: 'val_loss=([0-9\.]+)'")
            seen[stage.name] = stage
        return self

    @model_validator(mode="after")
    def _foreach(self) -> "PipelineConfig":
        check_foreach(self)
        return self

    @model_validator(mode="after")
    def _monitoring(self) -> "PipelineConfig":
        """An endpoint's monitoring names a baseline stage declared before it."""
        kinds: dict[str, str] = {}
        for i, stage in enumerate(self.stages):
            monitoring = getattr(stage, "monitoring", None)
            if monitoring is not None and kinds.get(monitoring.baseline) != "baseline":
                baselines = [n for n, k in kinds.items() if k == "baseline"]
                raise FieldError(f"{monitoring.baseline!r} is not a baseline stage declared before this one",
                                 loc=("stages", i, "monitoring", "baseline"),
                                 fix=f"use {', '.join(baselines)}" if baselines else
                                 "declare a stage with kind: baseline (e.g. data: preprocess.baseline) first")
            kinds[stage.name] = stage.kind
        return self

    @model_validator(mode="after")
    def _parameter_uses(self) -> "PipelineConfig":
        """A parameter must fit where it is used: its type, and every value it may take (default
        and allowed values) must be what that request member accepts."""
        for i, stage in enumerate(self.stages):
            for path, ref in stage.references().items():
                if not ref.startswith("$") or ref == ITEM_REF:
                    continue
                name, param = ref[1:], self.parameters[ref[1:]]
                loc = ("stages", i, *path.split("."))
                if path == "instance_count":
                    if param.type != "Integer":
                        raise FieldError(
                            f"{ref} is a {param.type} parameter; instance_count needs an Integer parameter",
                            loc=loc, fix=f"declare {name} with type: Integer (or use a literal count)")
                    for value in param.possible_values():
                        try:
                            check_count(value, stage.kind, f"{ref} (value {value}) as instance_count")
                        except FieldError as exc:
                            raise FieldError(str(exc), loc=loc, fix=f"change the default/allowed values of {name}: "
                                             + (exc.fix or "")) from None
                elif path == "approval_status":
                    if param.type != "String":
                        raise FieldError(f"{ref} is a {param.type} parameter; approval_status needs a String",
                                         loc=loc, fix=f"declare {name} with type: String")
                    for value in param.possible_values():
                        try:
                            api_string(str(value), "sagemaker", "CreateModelPackage", "ModelApprovalStatus",
                                       "model approval status")
                        except FieldError as exc:
                            raise FieldError(f"{ref} may be {value!r}: {exc}", loc=loc, fix=exc.fix) from None
                elif path.startswith("inputs.") or path in ("input", "data"):
                    if param.type != "String":
                        raise FieldError(f"{ref} is a {param.type} parameter; a data input needs a String "
                                         "(an S3 URI)", loc=loc, fix=f"declare {name} with type: String")
        return self

    @model_validator(mode="after")
    def _container_arguments(self) -> "PipelineConfig":
        """Processing arguments, the data section's included, against botocore's
        ContainerArguments (count) and ContainerArgument (length of each)."""

        service, operation = "sagemaker", "CreateProcessingJob"
        list_shape = aws_api.member_shape(service, operation, "AppSpecification.ContainerArguments")
        item_shape = aws_api.shape(service, list_shape)["member"]["shape"]
        max_count = aws_api.max_items(service, list_shape)
        max_length = aws_api.string_constraints(service, item_shape).max_length
        for i, stage in enumerate(self.stages):
            if stage.kind != "processing":
                continue
            builtin = list(preprocess_arguments(self.data)) if stage.code == BUILTIN_PREPROCESS else []
            arguments = builtin + list(stage.arguments)
            if max_count is not None and len(arguments) > max_count:
                raise FieldError(f"{len(arguments)} container arguments; SageMaker accepts at most {max_count} "
                                 f"({operation} AppSpecification.ContainerArguments)",
                                 loc=("stages", i, "arguments"), fix="pass fewer arguments")
            for j, argument in enumerate(arguments):
                if max_length is None or len(argument) <= max_length:
                    continue
                if j < len(builtin):
                    flag = next((a for a in reversed(builtin[:j]) if a.startswith("--")), "")
                    field = _ARGUMENT_FIELDS.get(flag, "")
                    loc = ("data", field) if field else ("data",)
                    what = f"becomes the container argument after {flag}" if flag else "becomes a container argument"
                    fix = ("shorten the column names, or drop column_names and give the data a header row"
                           if field == "column_names" else "shorten it")
                else:
                    loc, what, fix = ("stages", i, "arguments", j - len(builtin)), "is a container argument", \
                        "shorten it, or pass long values in a file"
                raise FieldError(f"{what} of {len(argument)} characters; SageMaker accepts at most "
                                 f"{max_length} per argument ({operation} ContainerArgument, from botocore)",
                                 loc=loc, fix=fix)
        return self


# The built-in preprocessing script, and which data field each of its flags carries.
BUILTIN_PREPROCESS = "builtin:preprocess"


def preprocess_arguments(data) -> tuple[str, ...]:
    """The data section as command-line arguments of steps/code/preprocess.py."""
    if data is None:
        return ()
    args = ["--target", str(data.target), "--problem-type", data.problem_type]
    if data.header is not None:
        args.append("--header" if data.header else "--no-header")
    if data.delimiter is not None:
        args += ["--delimiter", data.delimiter]
    if data.categorical is not None:
        args += ["--categorical", *map(str, data.categorical)]
    if data.column_names:
        args += ["--column-names", ",".join(data.column_names)]
    train, validation, test = data.split
    args += ["--train-ratio", f"{train:g}", "--validation-ratio", f"{validation:g}",
             "--test-ratio", f"{test:g}", "--seed", str(data.seed)]
    return tuple(args)


_ARGUMENT_FIELDS = {"--target": "target", "--delimiter": "delimiter", "--categorical": "categorical",
                    "--column-names": "column_names", "--problem-type": "problem_type"}
