"""Attach a data-quality monitoring schedule (SageMaker Model Monitor) to an endpoint: create it,
or update it in place when the endpoint already has one of that name.

The SageMaker target's pipeline invokes this function (a LambdaStep after the Endpoint step):
SageMaker Pipelines has no step that creates a monitoring schedule. The Step Functions target
sends the same request itself (``aws-sdk:sagemaker:createMonitoringSchedule`` or
``updateMonitoringSchedule``), built by ``schedule_config`` below, so both targets attach the
same schedule: the endpoint's captured requests, every hour (or as configured), checked by Model
Monitor's analyzer against the baseline's statistics.json and constraints.json.

Event: ``schedule_name, endpoint_name, statistics_uri, constraints_uri, schedule_expression,
image_uri, role_arn, output_uri, instance_type, volume_gb, max_runtime_seconds`` and optionally
``pipeline`` (tagged as mlpipe:pipeline).
"""

from __future__ import annotations

from typing import Any, Mapping

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from lambda_handlers.errors import HandlerError, InvalidEventError

ENDPOINT_INPUT_PATH = "/opt/ml/processing/input/endpoint"   # the sagemaker SDK's EndpointInput default
OUTPUT_PATH = "/opt/ml/processing/output"
_NAME = r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$"


class MonitoringScheduleError(HandlerError):
    """SageMaker refused to create or update the monitoring schedule."""


def schedule_config(*, endpoint_name: Any, statistics_uri: Any, constraints_uri: Any, schedule_expression: str,
                    image_uri: str, role_arn: str, output_uri: str, instance_type: str, volume_gb: int,
                    max_runtime_seconds: int) -> dict[str, Any]:
    """The MonitoringScheduleConfig of CreateMonitoringSchedule / UpdateMonitoringSchedule: an
    inline DataQuality job definition, as the sagemaker SDK's DefaultModelMonitor lays one out
    (endpoint input and report paths, CloudWatch metrics on)."""
    return {
        "ScheduleConfig": {"ScheduleExpression": schedule_expression},
        "MonitoringType": "DataQuality",
        "MonitoringJobDefinition": {
            "BaselineConfig": {"StatisticsResource": {"S3Uri": statistics_uri},
                               "ConstraintsResource": {"S3Uri": constraints_uri}},
            "MonitoringInputs": [{"EndpointInput": {"EndpointName": endpoint_name, "LocalPath": ENDPOINT_INPUT_PATH,
                                                    "S3InputMode": "File",
                                                    "S3DataDistributionType": "FullyReplicated"}}],
            "MonitoringOutputConfig": {"MonitoringOutputs": [{"S3Output": {
                "S3Uri": output_uri, "LocalPath": OUTPUT_PATH, "S3UploadMode": "Continuous"}}]},
            "MonitoringResources": {"ClusterConfig": {"InstanceCount": 1, "InstanceType": instance_type,
                                                      "VolumeSizeInGB": volume_gb}},
            "MonitoringAppSpecification": {"ImageUri": image_uri},
            "StoppingCondition": {"MaxRuntimeInSeconds": max_runtime_seconds},
            "Environment": {"publish_cloudwatch_metrics": "Enabled"},
            "RoleArn": role_arn,
        },
    }


class ScheduleRequest(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    schedule_name: str = Field(pattern=_NAME)
    endpoint_name: str = Field(pattern=_NAME)
    statistics_uri: str = Field(pattern=r"^s3://.+")
    constraints_uri: str = Field(pattern=r"^s3://.+")
    schedule_expression: str = Field(min_length=1, max_length=512)
    image_uri: str = Field(min_length=1)
    role_arn: str = Field(pattern=r"^arn:aws[a-z-]*:iam::\d{12}:role/")
    output_uri: str = Field(pattern=r"^s3://.+")
    instance_type: str = Field(pattern=r"^ml\.[a-z0-9]+\.[a-z0-9]+$")
    volume_gb: int = Field(ge=1, le=16384)
    max_runtime_seconds: int = Field(ge=1, le=86400)
    pipeline: str | None = None


def parse_event(event: Any) -> ScheduleRequest:
    if not isinstance(event, Mapping):
        raise InvalidEventError(f"expected a JSON object, got {type(event).__name__}")
    try:
        return ScheduleRequest.model_validate(dict(event))
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        raise InvalidEventError(f"{'.'.join(map(str, err['loc']))}: {err['msg']}") from None


def _missing(exc: Exception) -> bool:
    code = getattr(exc, "response", {}).get("Error", {}).get("Code", "")
    return code in {"ResourceNotFound", "ResourceNotFoundException"} or (
        code == "ValidationException" and "not" in str(exc).lower() and "exist" in str(exc).lower())


def attach(sm, req: ScheduleRequest) -> dict[str, str]:
    config = schedule_config(**req.model_dump(exclude={"schedule_name", "pipeline"}))
    try:
        sm.describe_monitoring_schedule(MonitoringScheduleName=req.schedule_name)
        exists = True
    except Exception as exc:
        if not _missing(exc):
            raise MonitoringScheduleError(f"cannot describe monitoring schedule {req.schedule_name}: {exc}") from exc
        exists = False
    try:
        if exists:
            sm.update_monitoring_schedule(MonitoringScheduleName=req.schedule_name, MonitoringScheduleConfig=config)
        else:
            tags = [{"Key": "mlpipe:pipeline", "Value": req.pipeline}] if req.pipeline else []
            sm.create_monitoring_schedule(MonitoringScheduleName=req.schedule_name, MonitoringScheduleConfig=config,
                                          **({"Tags": tags} if tags else {}))
    except Exception as exc:
        raise MonitoringScheduleError(f"cannot {'update' if exists else 'create'} monitoring schedule "
                                      f"{req.schedule_name} on endpoint {req.endpoint_name}: {exc}") from exc
    return {"schedule_name": req.schedule_name, "endpoint_name": req.endpoint_name,
            "action": "updated" if exists else "created"}


def handler(event: Any, context: Any = None, sagemaker_client=None) -> dict[str, str]:
    req = parse_event(event)
    if sagemaker_client is None:
        import boto3

        sagemaker_client = boto3.client("sagemaker")
    return attach(sagemaker_client, req)
