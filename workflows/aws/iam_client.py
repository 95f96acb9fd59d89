"""IAM: the roles deploy creates and their inline least-privilege policies."""

from __future__ import annotations

import json
from typing import Any

from workflows.aws.session import CREATED, UNCHANGED, UPDATED, or_none, same_json


def get_role(iam, name: str) -> dict[str, Any] | None:
    found = or_none(iam.get_role, RoleName=name)
    return found["Role"] if found else None


def upsert_role(iam, *, name: str, trust: dict[str, Any], policies: dict[str, dict[str, Any]], description: str,
                tags: dict[str, str], prune: tuple[str, ...] = (), apply: bool = True) -> str:
    """The role, its trust policy and these inline policies; other inline policies whose name
    starts with one of ``prune`` are deleted (each target prunes only its own)."""
    role = get_role(iam, name)
    if role is None:
        if apply:
            iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust), Description=description,
                            Tags=[{"Key": k, "Value": v} for k, v in sorted(tags.items())])
            for pname, doc in policies.items():
                iam.put_role_policy(RoleName=name, PolicyName=pname, PolicyDocument=json.dumps(doc))
        return CREATED
    action = UNCHANGED
    if not same_json(role.get("AssumeRolePolicyDocument", "{}"), trust):
        action = UPDATED
        if apply:
            iam.update_assume_role_policy(RoleName=name, PolicyDocument=json.dumps(trust))
    existing = set(iam.list_role_policies(RoleName=name).get("PolicyNames", []))
    for pname, doc in policies.items():
        current = iam.get_role_policy(RoleName=name, PolicyName=pname)["PolicyDocument"] if pname in existing else None
        if current is None or not same_json(current, doc):
            action = UPDATED
            if apply:
                iam.put_role_policy(RoleName=name, PolicyName=pname, PolicyDocument=json.dumps(doc))
    for pname in sorted(p for p in existing - set(policies) if p.startswith(prune) and prune):
        action = UPDATED
        if apply:
            iam.delete_role_policy(RoleName=name, PolicyName=pname)
    return action


def tags(iam, name: str) -> dict[str, str]:
    found = or_none(iam.list_role_tags, RoleName=name) or {}
    return {t["Key"]: t["Value"] for t in found.get("Tags", [])}


def inline_policy_names(iam, name: str) -> list[str]:
    found = or_none(iam.list_role_policies, RoleName=name) or {}
    return list(found.get("PolicyNames", []))


def delete_role_policy(iam, name: str, policy: str) -> None:
    or_none(iam.delete_role_policy, RoleName=name, PolicyName=policy)
