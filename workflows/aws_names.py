"""ARNs of the resources a pipeline uses, derived from the spec (no AWS calls)."""

from __future__ import annotations

from steps import naming
from steps.spec import PipelineSpec

_PARTITION_BY_REGION_PREFIX = {"cn-": "aws-cn", "us-gov-": "aws-us-gov"}


def partition(region: str) -> str:
    return next((p for prefix, p in _PARTITION_BY_REGION_PREFIX.items() if region.startswith(prefix)), "aws")


def role_arn(spec: PipelineSpec, service: str) -> str:
    """The configured role for a service, or the one deploy creates."""
    given = spec.roles.get("lambda_" if service == "lambda" else service)
    if given:
        return given
    return f"arn:{partition(spec.region)}:iam::{spec.account_id}:role/{naming.role_name(spec.name, service)}"


def lambda_arn(spec: PipelineSpec, function_name: str) -> str:
    return f"arn:{partition(spec.region)}:lambda:{spec.region}:{spec.account_id}:function:{function_name}"


def state_machine_arn(spec: PipelineSpec) -> str:
    return (f"arn:{partition(spec.region)}:states:{spec.region}:{spec.account_id}:stateMachine:"
            f"{naming.state_machine_name(spec.name)}")


def pipeline_arn(spec: PipelineSpec) -> str:
    return (f"arn:{partition(spec.region)}:sagemaker:{spec.region}:{spec.account_id}:pipeline/"
            f"{naming.sagemaker_pipeline_name(spec.name)}")


def topic_arn(spec: PipelineSpec) -> str:
    return f"arn:{partition(spec.region)}:sns:{spec.region}:{spec.account_id}:{naming.topic_name(spec.name)}"
