"""CloudWatch Logs: the state machine's log group."""

from __future__ import annotations

from workflows.aws.session import CREATED, UNCHANGED, UPDATED, or_none


def upsert_log_group(logs, name: str, retention_days: int, tags: dict[str, str], apply: bool = True) -> str:
    groups = logs.describe_log_groups(logGroupNamePrefix=name).get("logGroups", [])
    group = next((g for g in groups if g["logGroupName"] == name), None)
    if group is None:
        if apply:
            kwargs = {"logGroupName": name}
            if tags:
                kwargs["tags"] = dict(tags)
            logs.create_log_group(**kwargs)
            logs.put_retention_policy(logGroupName=name, retentionInDays=retention_days)
        return CREATED
    if group.get("retentionInDays") != retention_days:
        if apply:
            logs.put_retention_policy(logGroupName=name, retentionInDays=retention_days)
        return UPDATED
    return UNCHANGED


def tags(logs, arn: str) -> dict[str, str]:
    """``arn``: the log group's ARN (a trailing ``:*`` is dropped)."""
    return dict((or_none(logs.list_tags_for_resource, resourceArn=arn.removesuffix(":*")) or {}).get("tags", {}))
