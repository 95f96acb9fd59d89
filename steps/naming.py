"""AWS resource names derived from the pipeline name, made safe for each service's limits.

Names are deterministic, so deploy can find what it created before (upsert, not duplicate).
"""

from __future__ import annotations

import hashlib
import re

_UNSAFE = re.compile(r"[^A-Za-z0-9-]+")


def safe_name(*parts: str, limit: int) -> str:
    """Join parts with '-', keep [A-Za-z0-9-] only; if too long, cut and add a short hash."""
    raw = "-".join(p for p in parts if p)
    name = _UNSAFE.sub("-", raw).strip("-")
    if len(name) <= limit:
        return name
    digest = hashlib.sha256(raw.encode()).hexdigest()[:6]
    return f"{name[: limit - 7].rstrip('-')}-{digest}"


def job_prefix(pipeline: str, stage: str) -> str:
    """Static head of a SageMaker job name; the state machine appends a 32-char execution hash
    and the attempt number, and SageMaker allows 63 characters in all."""
    return safe_name(pipeline, stage, limit=26)


def state_machine_name(pipeline: str) -> str:
    return safe_name("mlpipe", pipeline, limit=80)


def sagemaker_pipeline_name(pipeline: str) -> str:
    return safe_name("mlpipe", pipeline, limit=256)


def function_name(pipeline: str, stage: str) -> str:
    return safe_name("mlpipe", pipeline, stage, limit=64)


def role_name(pipeline: str, service: str) -> str:
    return safe_name("mlpipe", pipeline, service, limit=64)


def topic_name(pipeline: str) -> str:
    return safe_name("mlpipe", pipeline, "notifications", limit=256)


def schedule_name(pipeline: str, target: str) -> str:
    return safe_name("mlpipe", pipeline, target, "retrain", limit=64)


def rule_name(pipeline: str, purpose: str) -> str:
    return safe_name("mlpipe", pipeline, purpose, limit=64)


def model_package_group(pipeline: str) -> str:
    return safe_name("mlpipe", pipeline, limit=63)


def endpoint_name(pipeline: str) -> str:
    return safe_name("mlpipe", pipeline, limit=63)


def log_group_name(pipeline: str) -> str:
    return f"/aws/vendedlogs/states/{safe_name('mlpipe', pipeline, limit=200)}"


def queue_name(pipeline: str) -> str:
    return safe_name("mlpipe", pipeline, "schedule-dlq", limit=80)
