"""SageMaker: the pipeline, its executions, and the model package group."""

from __future__ import annotations

from typing import Any

from workflows.aws.session import CREATED, UNCHANGED, UPDATED, is_not_found, or_none, same_json, tag_list


def describe_pipeline(sm, name: str) -> dict[str, Any] | None:
    return or_none(sm.describe_pipeline, PipelineName=name)


def upsert_pipeline(sm, *, name: str, definition: str, role_arn: str, description: str,
                    tags: dict[str, str], apply: bool = True) -> str:
    current = describe_pipeline(sm, name)
    if current is None:
        if apply:
            kwargs: dict[str, Any] = {"PipelineName": name, "PipelineDefinition": definition, "RoleArn": role_arn,
                                      "PipelineDescription": description or name}
            if tags:
                kwargs["Tags"] = tag_list(tags)
            sm.create_pipeline(**kwargs)
        return CREATED
    if same_json(current.get("PipelineDefinition", "{}"), definition) and current.get("RoleArn") == role_arn:
        return UNCHANGED
    if apply:
        sm.update_pipeline(PipelineName=name, PipelineDefinition=definition, RoleArn=role_arn,
                           PipelineDescription=description or name)
    return UPDATED


def upsert_model_package_group(sm, name: str, description: str, tags: dict[str, str], apply: bool = True) -> str:
    try:
        sm.describe_model_package_group(ModelPackageGroupName=name)
        return UNCHANGED
    except Exception as exc:
        if not is_not_found(exc):
            raise
    if apply:
        kwargs: dict[str, Any] = {"ModelPackageGroupName": name, "ModelPackageGroupDescription": description}
        if tags:
            kwargs["Tags"] = tag_list(tags)
        sm.create_model_package_group(**kwargs)
    return CREATED


def start_pipeline_execution(sm, name: str, parameters: dict[str, Any], display_name: str | None = None) -> dict:
    kwargs: dict[str, Any] = {"PipelineName": name,
                              "PipelineParameters": [{"Name": k, "Value": _str(v)} for k, v in parameters.items()]}
    if display_name:
        kwargs["PipelineExecutionDisplayName"] = display_name
    return sm.start_pipeline_execution(**kwargs)


def _str(v: Any) -> str:
    return ("true" if v else "false") if isinstance(v, bool) else str(v)


def describe_pipeline_execution(sm, arn: str) -> dict[str, Any]:
    return sm.describe_pipeline_execution(PipelineExecutionArn=arn)


def list_pipeline_executions(sm, name: str, max_results: int = 20) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"PipelineName": name, "SortBy": "CreationTime", "SortOrder": "Descending",
                              "MaxResults": min(max_results, 100)}
    while len(out) < max_results:
        page = sm.list_pipeline_executions(**kwargs)
        out += page.get("PipelineExecutionSummaries", [])
        if not page.get("NextToken"):
            break
        kwargs["NextToken"] = page["NextToken"]
    out.sort(key=lambda e: e.get("StartTime") or 0, reverse=True)
    return out[:max_results]


def list_pipeline_execution_steps(sm, arn: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"PipelineExecutionArn": arn, "SortOrder": "Ascending", "MaxResults": 100}
    while True:
        page = sm.list_pipeline_execution_steps(**kwargs)
        out += page.get("PipelineExecutionSteps", [])
        if not page.get("NextToken"):
            return out
        kwargs["NextToken"] = page["NextToken"]


def stop_pipeline_execution(sm, arn: str) -> dict[str, Any]:
    return sm.stop_pipeline_execution(PipelineExecutionArn=arn)


def retry_pipeline_execution(sm, arn: str, token: str) -> dict[str, Any]:
    """Retry a failed (or stopped) pipeline execution from its failed steps; ``token`` (32 to
    128 characters) makes the call idempotent."""
    return sm.retry_pipeline_execution(PipelineExecutionArn=arn, ClientRequestToken=token)


def list_pipeline_versions(sm, name: str) -> list[dict[str, Any]]:
    """[{PipelineVersionId, CreationTime, LastExecutionPipelineExecutionArn, ...}], newest first."""
    out: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"PipelineName": name, "SortOrder": "Descending", "MaxResults": 100}
    while True:
        page = sm.list_pipeline_versions(**kwargs)
        out += page.get("PipelineVersionSummaries", [])
        if not page.get("NextToken"):
            return out
        kwargs["NextToken"] = page["NextToken"]


def describe_pipeline_version(sm, name: str, version_id: int) -> dict[str, Any] | None:
    """The pipeline as it was at one version (its definition and role)."""
    return or_none(sm.describe_pipeline, PipelineName=name, PipelineVersionId=int(version_id))


def update_pipeline_definition(sm, name: str, definition: str, role_arn: str | None) -> dict[str, Any]:
    """A new pipeline version with this definition (what new executions run); its id is in
    ``PipelineVersionId``."""
    kwargs: dict[str, Any] = {"PipelineName": name, "PipelineDefinition": definition}
    if role_arn:
        kwargs["RoleArn"] = role_arn
    return sm.update_pipeline(**kwargs)


def describe_model_package(sm, arn: str) -> dict[str, Any] | None:
    return or_none(sm.describe_model_package, ModelPackageName=arn)


def set_model_package_status(sm, arn: str, status: str, note: str) -> None:
    sm.update_model_package(ModelPackageArn=arn, ModelApprovalStatus=status, ApprovalDescription=note[:1024])


def pipeline_definition_for_execution(sm, arn: str) -> str:
    return sm.describe_pipeline_definition_for_execution(PipelineExecutionArn=arn)["PipelineDefinition"]


def parameters_for_execution(sm, arn: str) -> dict[str, Any]:
    page = or_none(sm.list_pipeline_parameters_for_execution, PipelineExecutionArn=arn) or {}
    return {p["Name"]: p["Value"] for p in page.get("PipelineParameters", [])}


def tags(sm, arn: str) -> dict[str, str]:
    found = or_none(sm.list_tags, ResourceArn=arn) or {}
    return {t["Key"]: t["Value"] for t in found.get("Tags", [])}
