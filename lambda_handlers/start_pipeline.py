"""Start the SageMaker pipeline for a new object under the trigger prefix (S3 -> EventBridge).

An EventBridge rule cannot put a value from the event into a SageMaker pipeline parameter, so
the rule invokes this function, which starts the pipeline with the new object as its input
parameter. The pipeline and the parameter come from the environment (``PIPELINE_NAME``,
``INPUT_PARAMETER``), never from the event. Idempotent: the client request token is derived
from the object (bucket, key, sequencer), so a redelivered event starts no second run.

Event: EventBridge "Object Created" from S3 (detail.bucket.name, detail.object.key).
Result: {"pipeline_execution_arn", "input"}.
"""

from __future__ import annotations

import functools
import hashlib
import os
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import BaseModel, ConfigDict, ValidationError

from lambda_handlers.errors import ConfigurationError, InvalidEventError, PipelineStartError


class _Bucket(BaseModel):
    model_config = ConfigDict(extra="ignore")
    name: str


class _Object(BaseModel):
    model_config = ConfigDict(extra="ignore")
    key: str
    sequencer: str = ""
    etag: str = ""


class _Detail(BaseModel):
    model_config = ConfigDict(extra="ignore")
    bucket: _Bucket
    object: _Object


class ObjectCreatedEvent(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)
    detail: _Detail


@functools.lru_cache(maxsize=1)
def _default_client():
    return boto3.client("sagemaker")


def handler(event: dict[str, Any], context: Any = None, sagemaker_client=None) -> dict[str, str]:
    pipeline = os.environ.get("PIPELINE_NAME")
    parameter = os.environ.get("INPUT_PARAMETER", "InputData")
    if not pipeline:
        raise ConfigurationError("PIPELINE_NAME is not set in the function's environment")
    try:
        detail = ObjectCreatedEvent.model_validate(event).detail
    except ValidationError as exc:
        raise InvalidEventError(f"not an S3 Object Created event: {exc.errors()[0]['loc']}: "
                                f"{exc.errors()[0]['msg']}") from None
    uri = f"s3://{detail.bucket.name}/{detail.object.key}"
    token = hashlib.sha256(f"{uri}|{detail.object.sequencer}|{detail.object.etag}".encode()).hexdigest()[:64]
    client = sagemaker_client or _default_client()
    try:
        started = client.start_pipeline_execution(
            PipelineName=pipeline, ClientRequestToken=token,
            PipelineExecutionDisplayName=f"new-data-{token[:12]}",
            PipelineParameters=[{"Name": parameter, "Value": uri}])
    except (ClientError, BotoCoreError) as exc:
        raise PipelineStartError(f"cannot start {pipeline} for {uri}: {exc}") from None
    return {"pipeline_execution_arn": started["PipelineExecutionArn"], "input": uri}
