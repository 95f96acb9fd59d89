"""Record the newly created model's name in SSM Parameter Store (the pipeline's lambda stage).

Consumers (a serving stack, a batch job) read the parameter to find the current model. The
parameter's name comes only from the function's ``PARAMETER_NAME`` environment variable, never
from the event, so a payload cannot redirect the write. Idempotent: a retried invocation with
the same name writes nothing and reports the current version.

Event: {"model_name": "...", "execution_id": "..." (optional), "model_package_arn": "..."
(optional)}; other keys (Step Functions adds some) are ignored.
Result: {"parameter_name", "model_name", "changed", "version"}.
Errors are named for a Step Functions Catch: InvalidEventError, ConfigurationError,
ParameterWriteError (see lambda_handlers.errors).
"""

from __future__ import annotations

import functools
import logging
import os
import re
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from lambda_handlers.errors import ConfigurationError, InvalidEventError, ParameterWriteError

logger = logging.getLogger(__name__)
logger.setLevel(logging.INFO)

PARAMETER_NAME_ENV = "PARAMETER_NAME"
_MODEL_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")


class RegisterModelNameEvent(BaseModel):
    # protected_namespaces=(): "model_name" is the natural field name, not a pydantic internal.
    model_config = ConfigDict(extra="ignore", frozen=True, protected_namespaces=())

    model_name: str
    execution_id: str | None = None
    model_package_arn: str | None = None

    @field_validator("model_name")
    @classmethod
    def _sagemaker_model_name(cls, value: str) -> str:
        if not _MODEL_NAME.match(value):
            raise ValueError(f"{value!r} is not a SageMaker model name (1-63 letters, digits and "
                             "hyphens, starting and ending with a letter or digit)")
        return value


@functools.lru_cache(maxsize=1)
def _default_client():
    """Created on first use and kept for warm invocations; importing stays cheap."""
    return boto3.client("ssm")


def handler(event: Any, context: Any, ssm_client=None) -> dict:
    """Point the parameter at ``event["model_name"]`` unless it already does."""
    try:
        request = RegisterModelNameEvent.model_validate(event)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'event'}: {e['msg']}"
                             for e in exc.errors(include_url=False))
        raise InvalidEventError(f"invalid event: {problems}") from None
    parameter_name = os.environ.get(PARAMETER_NAME_ENV, "").strip()
    if not parameter_name:
        raise ConfigurationError(f"environment variable {PARAMETER_NAME_ENV} is not set on this function; "
                                 "set it to the SSM parameter to write, e.g. /mlpipe/abalone/model-name")
    ssm = ssm_client if ssm_client is not None else _default_client()

    current = _current(ssm, parameter_name)
    if current is not None and current[0] == request.model_name:
        changed, version = False, current[1]
    else:
        try:
            response = ssm.put_parameter(Name=parameter_name, Value=request.model_name, Type="String",
                                         Overwrite=True)
        except (ClientError, BotoCoreError) as exc:
            raise ParameterWriteError(f"cannot write SSM parameter {parameter_name}: {exc}") from exc
        changed, version = True, int(response["Version"])
    logger.info("parameter %s -> %s (%s, version %d, execution %s)", parameter_name, request.model_name,
                "changed" if changed else "unchanged", version, request.execution_id)
    return {"parameter_name": parameter_name, "model_name": request.model_name, "changed": changed,
            "version": version}


def _current(ssm, parameter_name: str) -> tuple[str, int] | None:
    """(value, version) of the parameter, or None when it does not exist yet."""
    try:
        parameter = ssm.get_parameter(Name=parameter_name)["Parameter"]
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "ParameterNotFound":
            return None
        raise ParameterWriteError(f"cannot read SSM parameter {parameter_name}: {exc}") from exc
    except BotoCoreError as exc:
        raise ParameterWriteError(f"cannot read SSM parameter {parameter_name}: {exc}") from exc
    return parameter["Value"], int(parameter["Version"])
