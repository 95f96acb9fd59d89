"""The lineage of a run on AWS (``mlpipe lineage EXECUTION --target ...``), read back from AWS.

The same record as a local run's: the config hash and code-asset hashes (from the deployed
definition: tags and content-addressed asset keys), the input data (S3 URI and ETag), the
parameters, the metrics, and the model artifact with its registry version. Everything comes
from the AWS side, so the record describes what actually ran, not what the config says now.
"""

from __future__ import annotations

import json
import re
from typing import Any

from workflows.aws import stepfunctions_client
from workflows.aws.session import aws_errors

_ASSET = re.compile(r"s3://[^\"'\s]+?/assets/([0-9a-f]{16})/([A-Za-z0-9_.\-]+)")


def definition_facts(definition: str) -> dict[str, Any]:
    """Config hash (the mlpipe:config-hash tag) and code assets (name -> hash prefix in its key)."""
    config_hash = None
    match = re.search(r'"Key":\s*"mlpipe:config-hash",\s*"Value":\s*"([0-9a-f]{64})"', definition) or \
        re.search(r'"mlpipe:config-hash":\s*"([0-9a-f]{64})"', definition)
    if match:
        config_hash = match.group(1)
    code = {name: digest for digest, name in _ASSET.findall(definition)}
    return {"config_hash": config_hash, "code": dict(sorted(code.items()))}


def flat_metrics(report: dict[str, Any]) -> dict[str, float]:
    """evaluation.json's sections flattened to name -> value."""
    return {name: float(v["value"]) for section in report.values() if isinstance(section, dict)
            for name, v in section.items() if isinstance(v, dict) and "value" in v}


def sfn_record(definition: str, execution: dict[str, Any]) -> dict[str, Any]:
    """Lineage from a Step Functions execution (pure: the caller fetched everything)."""
    asl = json.loads(definition)
    defaults = asl["States"].get("initialize", {}).get("Parameters", {}).get("defaults", {})
    params = {**defaults, **json.loads(execution.get("input") or "{}")}
    output = json.loads(execution.get("output") or "{}")
    stages = output.get("stages", {})
    metrics: dict[str, float] = {}
    model: dict[str, Any] | None = None
    package = None
    for sid, data in stages.items():
        if isinstance(data, dict) and isinstance(data.get("metrics"), dict):
            metrics.update(flat_metrics(data["metrics"]))
        if isinstance(data, dict) and "model_name" in data:
            model = {"name": data["model_name"]}
        if isinstance(data, dict) and "model_package_arn" in data:
            package = data["model_package_arn"]
    artifacts = [d["model"] for d in stages.values() if isinstance(d, dict) and isinstance(d.get("model"), str)]
    if artifacts:
        model = {**(model or {}), "artifact": artifacts[-1]}
    return {
        "run_id": execution.get("name"), "execution_arn": execution.get("executionArn"),
        "status": execution.get("status"), "version": sfn_version(execution), **definition_facts(definition),
        "parameters": params,
        "metrics": metrics, "model": model, "registry": {"model_package_arn": package} if package else None,
        "jobs": {sid: d["job_name"] for sid, d in stages.items() if isinstance(d, dict) and "job_name" in d},
        # baseline stages: the S3 URIs of Model Monitor's statistics.json and constraints.json
        "baseline": {sid: {k: d[k] for k in ("statistics", "constraints")} for sid, d in stages.items()
                     if isinstance(d, dict) and isinstance(d.get("statistics"), str)
                     and isinstance(d.get("constraints"), str)} or None,
        "monitoring": {sid: d["monitoring_schedule"] for sid, d in stages.items()
                       if isinstance(d, dict) and isinstance(d.get("monitoring_schedule"), str)} or None,
        "foreach": fanout_items(stages),
    }


def fanout_items(stages: dict[str, Any]) -> dict[str, Any] | None:
    """A fan-out's Map result (one object per item: its key, value and stages' results) as
    item -> jobs, model and model package."""
    out: dict[str, Any] = {}
    for result in stages.values():
        for item in result if isinstance(result, list) else []:
            if not (isinstance(item, dict) and "item" in item and isinstance(item.get("stages"), dict)):
                continue
            found = [d for d in item["stages"].values() if isinstance(d, dict)]
            out[str(item["item"])] = {
                "key": item.get("key"),
                "jobs": {sid: d["job_name"] for sid, d in item["stages"].items() if isinstance(d, dict) and "job_name" in d},
                "model": next((d["model_name"] for d in found if "model_name" in d), None),
                "model_package_arn": next((d["model_package_arn"] for d in found if "model_package_arn" in d), None),
                "metrics": {k: v for d in found if isinstance(d.get("metrics"), dict)
                            for k, v in flat_metrics(d["metrics"]).items()}}
    return out or None


def sfn_version(execution: dict[str, Any]) -> dict[str, Any] | None:
    """The published state machine version an execution ran, and the alias it started through
    (None: started unqualified, e.g. before mlpipe published versions)."""
    arn = execution.get("stateMachineVersionArn")
    if not arn:
        return None
    alias = execution.get("stateMachineAliasArn")
    return {"number": stepfunctions_client.version_number(arn), "arn": arn,
            "alias": alias.rsplit(":", 1)[-1] if alias else None}


def add_data_and_registry(record: dict[str, Any], aws) -> None:
    """S3 URI + ETag for every S3 parameter, and the package's version and approval status."""
    from workflows.aws import s3_client, sagemaker_client

    data = {}
    for name, value in record["parameters"].items():
        if isinstance(value, str) and value.startswith("s3://"):
            bucket, _, key = value[5:].partition("/")
            with aws_errors(f"reading {value}"):
                head = s3_client.head(aws.client("s3"), bucket, key)
            data[name] = {"source": value, "etag": head["ETag"].strip('"') if head else None}
    record["data"] = data
    registry = record.get("registry")
    if registry and registry.get("model_package_arn"):
        with aws_errors("describing the model package"):
            pkg = sagemaker_client.describe_model_package(aws.client("sagemaker"), registry["model_package_arn"])
        if pkg:
            registry.update(group=pkg.get("ModelPackageGroupName"), version=pkg.get("ModelPackageVersion"),
                            approval_status=pkg.get("ModelApprovalStatus"))
