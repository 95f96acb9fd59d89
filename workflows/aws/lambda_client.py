"""AWS Lambda: the pipeline's functions and the permissions that let EventBridge invoke them."""

from __future__ import annotations

import base64
import hashlib
import json
import time
from typing import Any

from workflows.aws.session import CREATED, UNCHANGED, UPDATED, error_code, or_none

RUNTIME = "python3.11"


def code_sha256(zip_bytes: bytes) -> str:
    """Lambda's CodeSha256: base64 of the zip's SHA-256."""
    return base64.b64encode(hashlib.sha256(zip_bytes).digest()).decode()


def get_function(lam, name: str) -> dict[str, Any] | None:
    return or_none(lam.get_function_configuration, FunctionName=name)


def _wait_ready(lam, name: str, timeout: float = 120) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        cfg = lam.get_function_configuration(FunctionName=name)
        if cfg.get("State", "Active") != "Pending" and cfg.get("LastUpdateStatus", "Successful") != "InProgress":
            return
        time.sleep(1)


def _retry_new_role(call, **kwargs):
    """A role created seconds ago may not be assumable by Lambda yet; retry briefly."""
    for attempt in range(8):
        try:
            return call(**kwargs)
        except Exception as exc:
            if error_code(exc) == "InvalidParameterValueException" and "assume" in str(exc).lower() and attempt < 7:
                time.sleep(2 + 2 * attempt)
                continue
            raise


def upsert_function(lam, *, name: str, zip_bytes: bytes, handler: str, role_arn: str, environment: dict[str, str],
                    timeout: int, memory: int, description: str, tags: dict[str, str], apply: bool = True) -> str:
    config = {"Role": role_arn, "Handler": handler, "Runtime": RUNTIME, "Timeout": timeout, "MemorySize": memory,
              "Description": description, "Environment": {"Variables": dict(environment)}}
    current = get_function(lam, name)
    if current is None:
        if apply:
            _retry_new_role(lam.create_function, FunctionName=name, Code={"ZipFile": zip_bytes}, Publish=False,
                            Tags=dict(tags), **config)
            _wait_ready(lam, name)
        return CREATED
    action = UNCHANGED
    if current.get("CodeSha256") != code_sha256(zip_bytes):
        action = UPDATED
        if apply:
            lam.update_function_code(FunctionName=name, ZipFile=zip_bytes)
            _wait_ready(lam, name)
    now = {"Role": current.get("Role"), "Handler": current.get("Handler"), "Runtime": current.get("Runtime"),
           "Timeout": current.get("Timeout"), "MemorySize": current.get("MemorySize"),
           "Description": current.get("Description", ""),
           "Environment": {"Variables": (current.get("Environment") or {}).get("Variables", {})}}
    if now != config:
        action = UPDATED
        if apply:
            _retry_new_role(lam.update_function_configuration, FunctionName=name, **config)
            _wait_ready(lam, name)
    return action


def upsert_permission(lam, *, function: str, statement_id: str, principal: str, source_arn: str,
                      apply: bool = True) -> str:
    if statement_id in permission_statements(lam, function):
        return UNCHANGED
    if apply:
        lam.add_permission(FunctionName=function, StatementId=statement_id, Action="lambda:InvokeFunction",
                           Principal=principal, SourceArn=source_arn)
    return CREATED


def list_functions(lam) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for page in lam.get_paginator("list_functions").paginate():
        out += page.get("Functions", [])
    return out


def tags(lam, arn: str) -> dict[str, str]:
    return dict((or_none(lam.list_tags, Resource=arn) or {}).get("Tags", {}))


def permission_statements(lam, function: str) -> dict[str, dict[str, Any]]:
    """The function's resource policy statements by Sid (none when it has no policy)."""
    found = or_none(lam.get_policy, FunctionName=function)
    if not found:
        return {}
    return {s.get("Sid"): s for s in json.loads(found["Policy"]).get("Statement", [])}


def remove_permission(lam, function: str, statement_id: str) -> None:
    or_none(lam.remove_permission, FunctionName=function, StatementId=statement_id)


def delete_function(lam, name: str) -> None:
    """The function (its permissions go with it); one already gone is fine."""
    or_none(lam.delete_function, FunctionName=name)
