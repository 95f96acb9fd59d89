"""Pydantic models of a pipeline config file.

Validation happens here, at the boundary, so nothing downstream (step factories, renderers,
the local runner, deploy) needs to second-guess a value. Every model forbids unknown fields:
a typo must fail loudly rather than be silently ignored.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, Union

from pathlib import Path

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --- scalar validators ---------------------------------------------------------------------

_S3_URI = re.compile(r"^s3://(?P<bucket>[a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(/(?P<key>.*))?$")
_ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]{1,512}$")
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_REGION = re.compile(r"^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-\d$")
_PARAM_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9]{0,63}$")
_STAGE_NAME = re.compile(r"^[a-z][a-z0-9-]{0,23}$")
_PIPELINE_NAME = re.compile(r"^[a-z][a-z0-9-]{0,31}$")
_SSM_NAME = re.compile(r"^/[A-Za-z0-9_.\-/]{1,1010}$")

# SageMaker instance families and sizes we know of; anything else is almost certainly a typo.
INSTANCE_FAMILIES = frozenset(
    "t2 t3 m4 m5 m5d m6i m6id m6g m7i c4 c5 c5d c5n c6i c6g c7i c7g r5 r5d r6i r7i "
    "p2 p3 p3dn p4d p4de p5 g4dn g5 g6 g6e inf1 inf2 trn1 trn1n".split()
)
_INSTANCE = re.compile(r"^ml\.(?P<family>[a-z0-9]+)\.(?P<size>medium|large|xlarge|\d{1,2}xlarge|metal)$")


def s3_uri(value: str) -> str:
    if not _S3_URI.match(value):
        raise ValueError(f"{value!r} is not an S3 URI; expected s3://<bucket>/<key>")
    return value


def role_arn(value: str) -> str:
    if not _ROLE_ARN.match(value):
        raise ValueError(
            f"{value!r} is not an IAM role ARN; expected arn:aws:iam::<12-digit account>:role/<name>"
        )
    return value


def instance_type(value: str) -> str:
    m = _INSTANCE.match(value)
    if not m or m["family"] not in INSTANCE_FAMILIES:
        raise ValueError(
            f"{value!r} is not a known SageMaker instance type; expected e.g. ml.m5.xlarge "
            f"(families: {', '.join(sorted(INSTANCE_FAMILIES))})"
        )
    return value


_CRON = re.compile(r"^cron\((\S+\s+){5}\S+\)$")
_RATE = re.compile(r"^rate\((1 (minute|hour|day)|([2-9]|[1-9]\d+) (minutes|hours|days))\)$")


def schedule_expression(value: str) -> str:
    if _RATE.match(value):
        return value
    if _CRON.match(value):
        fields = value[5:-1].split()
        dom, dow = fields[2], fields[4]
        if "?" not in (dom, dow):
            raise ValueError(
                f"{value!r}: EventBridge cron needs '?' in day-of-month or day-of-week, "
                "e.g. cron(0 3 ? * MON *)"
            )
        return value
    raise ValueError(
        f"{value!r} is not a schedule expression; expected cron(min hour dom month dow year) "
        "with six fields, or rate(N unit) such as rate(7 days)"
    )


S3Uri = Annotated[str, AfterValidator(s3_uri)]
RoleArn = Annotated[str, AfterValidator(role_arn)]
InstanceType = Annotated[str, AfterValidator(instance_type)]
ScheduleExpression = Annotated[str, AfterValidator(schedule_expression)]
Scalar = Union[bool, int, float, str]

# A value that is either literal or a pipeline parameter written as "$Name".
ParamOr = Union[int, str]
_REFERENCE = re.compile(r"^(\$[A-Za-z][A-Za-z0-9]*|[a-z][a-z0-9-]*\.[a-z_]+)$")


def is_reference(value: object) -> bool:
    """True for "$Param" or "stage.output" strings; literals such as S3 URIs are not references."""
    return isinstance(value, str) and bool(_REFERENCE.match(value)) and not value.startswith("s3:")


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
        if v is not None and not _REGION.match(v):
            raise ValueError(f"{v!r} is not an AWS region; expected e.g. us-east-1")
        return v

    @field_validator("bucket")
    @classmethod
    def _bucket(cls, v: str) -> str:
        if not _BUCKET.match(v) or ".." in v:
            raise ValueError(f"{v!r} is not a valid S3 bucket name (3-63 lowercase letters, digits, '.', '-')")
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
        return self


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
            except ValueError:
                raise ValueError(
                    f"input {name!r}: {value!r} is neither a reference ($Param or stage.output) nor an S3 URI"
                ) from None
    return inputs


class ProcessingStageConfig(StageBase):
    kind: Literal["processing"]
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

    def output_names(self) -> list[str]:
        return ["model"]

    def references(self) -> dict[str, str]:
        return {**super().references(), **{f"inputs.{k}": v for k, v in self.inputs.items() if is_reference(v)}}


class Gate(Strict):
    metric: Literal["mse", "rmse", "mae", "r2", "accuracy", "auc", "f1"]
    comparison: Literal["<=", "<", ">=", ">"]
    threshold: float


class EvaluationStageConfig(StageBase):
    kind: Literal["evaluation"]
    code: str = "builtin:evaluate"
    model: str = Field(description="Reference to the training stage's model, e.g. train.model")
    test: str = Field(description="Reference to the test data, e.g. preprocess.test")
    gate: Gate | None = None

    def output_names(self) -> list[str]:
        return ["evaluation"]

    def references(self) -> dict[str, str]:
        return {**super().references(), "model": self.model, "test": self.test}


class ModelStageConfig(StageBase):
    kind: Literal["model"]
    model: str = Field(description="Reference to a training stage's model, e.g. train.model")
    instance_type: InstanceType = "ml.m5.large"

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
    inference_instances: list[InstanceType] = ["ml.m5.large"]
    transform_instances: list[InstanceType] = ["ml.m5.large"]

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


class EndpointStageConfig(StageBase):
    kind: Literal["endpoint"]
    model: str
    endpoint_name: str | None = None
    instance_type: InstanceType = "ml.m5.large"
    data_capture: DataCapture = DataCapture()

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
    instance_type: InstanceType = "ml.m5.large"

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
        LambdaStageConfig,
    ],
    Field(discriminator="kind"),
]


# --- schedule, triggers, notifications -----------------------------------------------------

class ScheduleRetry(Strict):
    maximum_attempts: int = Field(default=2, ge=0, le=185)
    maximum_event_age_seconds: int = Field(default=3600, ge=60, le=86400)


class Schedule(Strict):
    expression: ScheduleExpression
    timezone: str = "UTC"
    enabled: bool = True
    retry: ScheduleRetry = ScheduleRetry()
    dead_letter_queue: bool = True


class Trigger(Strict):
    """Start a run when a new object lands under this S3 prefix."""

    s3_prefix: S3Uri


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
    notifications: Notifications = Notifications()
    _source: Path | None = PrivateAttr(default=None)

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
        for stage in self.stages:
            if stage.name in outputs:
                raise ValueError(f"stage name {stage.name!r} is used twice")
            outputs[stage.name] = stage.output_names()
        for i, stage in enumerate(self.stages):
            for path, ref in stage.references().items():
                where = f"stages.{i}.{path}"
                if not is_reference(ref):
                    raise ValueError(f"{where}: {ref!r} is not a reference; write $Param or stage.output")
                if ref.startswith("$"):
                    if ref[1:] not in self.parameters:
                        raise ValueError(
                            f"{where}: {ref!r} names no declared parameter "
                            f"(declared: {', '.join(sorted(self.parameters)) or 'none'})"
                        )
                    continue
                stage_name, _, output = ref.partition(".")
                if stage_name not in outputs:
                    raise ValueError(f"{where}: {ref!r} names no stage (stages: {', '.join(outputs)})")
                if output not in outputs[stage_name]:
                    raise ValueError(
                        f"{where}: stage {stage_name!r} has no output {output!r} "
                        f"(outputs: {', '.join(outputs[stage_name]) or 'none'})"
                    )
            for dep in stage.depends_on:
                if dep not in outputs:
                    raise ValueError(f"stages.{i}.depends_on: {dep!r} names no stage")
        return self


def dump_schema() -> dict[str, Any]:
    """JSON Schema of the config, for editors and docs."""
    return PipelineConfig.model_json_schema()
