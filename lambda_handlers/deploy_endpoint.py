"""Create or update a SageMaker real-time endpoint (the SageMaker target's endpoint stage).

Invoked two ways:

* by the pipeline's LambdaStep with ``model_name, endpoint_name, instance_type, instance_count,
  data_capture_percentage, data_capture_uri``;
* by the EventBridge rule "SageMaker Model Package State Change" (ModelApprovalStatus Approved)
  with the event; the model package's container becomes a Model first. Endpoint settings then
  come from the function's environment (ENDPOINT_NAME, INSTANCE_TYPE, INSTANCE_COUNT,
  DATA_CAPTURE_PERCENTAGE, DATA_CAPTURE_URI, SAGEMAKER_ROLE_ARN).

Idempotent: an existing endpoint config of the same name is reused, an existing endpoint is
updated in place (or left alone when it already uses that config).
"""

from __future__ import annotations

import hashlib
import os
import re
from typing import Any, Mapping

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from lambda_handlers.errors import ConfigurationError, EndpointDeployError, InvalidEventError

_NAME = r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$"


class DeployRequest(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    model_name: str = Field(pattern=_NAME)
    endpoint_name: str = Field(pattern=_NAME)
    instance_type: str = Field(default="ml.m5.large", pattern=r"^ml\.[a-z0-9]+\.[a-z0-9]+$")
    instance_count: int = Field(default=1, ge=1, le=100)
    data_capture_percentage: int = Field(default=0, ge=0, le=100)
    data_capture_uri: str | None = Field(default=None, pattern=r"^s3://.+")


class PackageApproved(BaseModel):
    """The parts of an EventBridge "SageMaker Model Package State Change" detail we use."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    ModelPackageArn: str = Field(pattern=r"^arn:aws[a-z-]*:sagemaker:")
    ModelApprovalStatus: str
    ModelPackageGroupName: str | None = None


def _safe(name: str, limit: int = 63) -> str:
    name = re.sub(r"[^A-Za-z0-9-]+", "-", name).strip("-")
    if len(name) <= limit:
        return name
    return f"{name[: limit - 9].rstrip('-')}-{hashlib.sha256(name.encode()).hexdigest()[:8]}"


def config_name(model_name: str) -> str:
    """The endpoint config is named after the model, so a new model gets a new config."""
    return _safe(f"{model_name}-cfg")


def _env(name: str, default: str | None = None) -> str:
    value = os.environ.get(name, default)
    if value in (None, ""):
        raise ConfigurationError(f"environment variable {name} is not set on this function")
    return value


def _client(sagemaker_client):
    if sagemaker_client is not None:
        return sagemaker_client
    import boto3

    return boto3.client("sagemaker")


def _not_found(exc: Exception) -> bool:
    code = getattr(exc, "response", {}).get("Error", {}).get("Code", "")
    msg = str(exc)
    return code in {"ValidationException", "ResourceNotFound", "ResourceNotFoundException"} and (
        "not find" in msg.lower() or "does not exist" in msg.lower() or "not found" in msg.lower())


def model_from_package(event: Mapping[str, Any], sm) -> DeployRequest:
    """Turn an approval event into a deploy request: create a Model from the package's container."""
    try:
        detail = PackageApproved.model_validate(event.get("detail") or {})
    except ValidationError as exc:
        raise InvalidEventError(f"not a model package state change event: {exc.errors(include_url=False)[0]['msg']}") from None
    if detail.ModelApprovalStatus != "Approved":
        raise InvalidEventError(f"model package {detail.ModelPackageArn} is {detail.ModelApprovalStatus}, not Approved")
    try:
        package = sm.describe_model_package(ModelPackageName=detail.ModelPackageArn)
    except Exception as exc:
        raise EndpointDeployError(f"cannot read model package {detail.ModelPackageArn}: {exc}") from exc
    containers = package.get("InferenceSpecification", {}).get("Containers") or []
    if not containers:
        raise InvalidEventError(f"model package {detail.ModelPackageArn} has no inference container")
    version = detail.ModelPackageArn.rsplit("/", 1)[-1]       # .../model-package/<group>/<version>
    group = detail.ModelPackageGroupName or package.get("ModelPackageGroupName") or "model"
    model_name = _safe(f"{group}-v{version}")
    try:
        sm.describe_model(ModelName=model_name)
    except Exception as exc:
        if not _not_found(exc):
            raise EndpointDeployError(f"cannot describe model {model_name}: {exc}") from exc
        try:
            sm.create_model(ModelName=model_name, ExecutionRoleArn=_env("SAGEMAKER_ROLE_ARN"),
                            Containers=[{k: v for k, v in c.items() if k in ("Image", "ModelDataUrl", "Environment")}
                                        for c in containers])
        except Exception as exc2:
            raise EndpointDeployError(f"cannot create model {model_name}: {exc2}") from exc2
    percentage = int(_env("DATA_CAPTURE_PERCENTAGE", "0"))
    try:
        return DeployRequest(model_name=model_name, endpoint_name=_env("ENDPOINT_NAME"),
                             instance_type=_env("INSTANCE_TYPE", "ml.m5.large"),
                             instance_count=int(_env("INSTANCE_COUNT", "1")),
                             data_capture_percentage=percentage,
                             data_capture_uri=os.environ.get("DATA_CAPTURE_URI") or None)
    except ValidationError as exc:
        raise ConfigurationError(f"invalid endpoint settings in the environment: {exc.errors(include_url=False)[0]['msg']}") from None


def parse_event(event: Any, sm) -> DeployRequest:
    if not isinstance(event, Mapping):
        raise InvalidEventError(f"expected a JSON object, got {type(event).__name__}")
    if event.get("detail-type") == "SageMaker Model Package State Change":
        return model_from_package(event, sm)
    try:
        return DeployRequest.model_validate(dict(event))
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        where = ".".join(map(str, err["loc"]))
        raise InvalidEventError(f"{where}: {err['msg']}") from None


def ensure_endpoint_config(sm, req: DeployRequest) -> str:
    name = config_name(req.model_name)
    try:
        sm.describe_endpoint_config(EndpointConfigName=name)
        return name
    except Exception as exc:
        if not _not_found(exc):
            raise EndpointDeployError(f"cannot describe endpoint config {name}: {exc}") from exc
    kwargs: dict[str, Any] = {
        "EndpointConfigName": name,
        "ProductionVariants": [{"VariantName": "AllTraffic", "ModelName": req.model_name,
                                "InitialInstanceCount": req.instance_count,
                                "InstanceType": req.instance_type, "InitialVariantWeight": 1.0}],
    }
    if req.data_capture_percentage > 0:
        if not req.data_capture_uri:
            raise InvalidEventError("data_capture_uri is required when data_capture_percentage > 0")
        kwargs["DataCaptureConfig"] = {
            "EnableCapture": True, "InitialSamplingPercentage": req.data_capture_percentage,
            "DestinationS3Uri": req.data_capture_uri,
            "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
        }
    try:
        sm.create_endpoint_config(**kwargs)
    except Exception as exc:
        raise EndpointDeployError(f"cannot create endpoint config {name}: {exc}") from exc
    return name


def deploy(sm, req: DeployRequest) -> dict[str, str]:
    cfg = ensure_endpoint_config(sm, req)
    try:
        current = sm.describe_endpoint(EndpointName=req.endpoint_name)
    except Exception as exc:
        if not _not_found(exc):
            raise EndpointDeployError(f"cannot describe endpoint {req.endpoint_name}: {exc}") from exc
        current = None
    try:
        if current is None:
            sm.create_endpoint(EndpointName=req.endpoint_name, EndpointConfigName=cfg)
            action = "created"
        elif current.get("EndpointConfigName") == cfg:
            action = "unchanged"
        else:
            sm.update_endpoint(EndpointName=req.endpoint_name, EndpointConfigName=cfg)
            action = "updated"
    except Exception as exc:
        raise EndpointDeployError(f"cannot deploy endpoint {req.endpoint_name}: {exc}") from exc
    return {"endpoint_name": req.endpoint_name, "endpoint_config_name": cfg, "action": action}


def handler(event: Any, context: Any = None, sagemaker_client=None) -> dict[str, str]:
    sm = _client(sagemaker_client)
    return deploy(sm, parse_event(event, sm))
