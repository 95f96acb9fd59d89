"""EventBridge Scheduler: the retraining schedule, and its SQS dead-letter queue."""

from __future__ import annotations

from typing import Any

from workflows.aws.session import CREATED, UNCHANGED, UPDATED, is_not_found, or_none, same_json

GROUP = "default"
_FIELDS = ("ScheduleExpression", "ScheduleExpressionTimezone", "State", "Description", "FlexibleTimeWindow", "Target")


def get_schedule(scheduler, name: str, group: str = GROUP) -> dict[str, Any] | None:
    return or_none(scheduler.get_schedule, Name=name, GroupName=group)


def _differs(current: dict[str, Any], desired: dict[str, Any]) -> bool:
    for key in _FIELDS:
        if key not in desired:
            continue
        a, b = current.get(key), desired[key]
        if key == "Target":
            a = {k: v for k, v in (a or {}).items() if k in b}
        if not same_json(_plain(a), _plain(b)):
            return True
    return False


def _plain(v: Any) -> Any:
    """Drop empty values AWS leaves out of its answers."""
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items() if x not in (None, {}, [], "")}
    if isinstance(v, list):
        return [_plain(x) for x in v]
    return v


def upsert_schedule(scheduler, name: str, desired: dict[str, Any], apply: bool = True, group: str = GROUP) -> str:
    """``desired`` holds create_schedule's arguments except Name/GroupName."""
    current = get_schedule(scheduler, name, group)
    if current is None:
        if apply:
            scheduler.create_schedule(Name=name, GroupName=group, **desired)
        return CREATED
    if not _differs(current, desired):
        return UNCHANGED
    if apply:
        scheduler.update_schedule(Name=name, GroupName=group, **desired)
    return UPDATED


def set_state(scheduler, name: str, enabled: bool, group: str = GROUP) -> str:
    current = get_schedule(scheduler, name, group)
    if current is None:
        from config.errors import UserError

        raise UserError(f"schedule {name} is not deployed", fix="add a schedule: section and run `mlpipe deploy`")
    state = "ENABLED" if enabled else "DISABLED"
    if current.get("State") == state:
        return UNCHANGED
    keep = {k: current[k] for k in ("ScheduleExpression", "ScheduleExpressionTimezone", "Description",
                                    "FlexibleTimeWindow", "Target", "StartDate", "EndDate", "KmsKeyArn",
                                    "ActionAfterCompletion") if current.get(k) not in (None, "")}
    scheduler.update_schedule(Name=name, GroupName=group, State=state, **keep)
    return UPDATED


def ensure_queue(sqs, name: str, tags: dict[str, str], apply: bool = True) -> tuple[str, str | None]:
    """(action, queue ARN or None when it would be created by a dry run)."""
    try:
        url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        return UNCHANGED, arn
    except Exception as exc:
        if not is_not_found(exc) and "NonExistentQueue" not in str(exc) and "QueueDoesNotExist" not in str(exc):
            raise
    if not apply:
        return CREATED, None
    url = sqs.create_queue(QueueName=name, Attributes={"MessageRetentionPeriod": "1209600",
                                                       "SqsManagedSseEnabled": "true"},
                           tags=dict(tags))["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return CREATED, arn


def delete_schedule(scheduler, name: str, group: str = GROUP) -> None:
    """One already gone is fine. (Schedules cannot carry tags: ownership is the name.)"""
    or_none(scheduler.delete_schedule, Name=name, GroupName=group)


def queue_url(sqs, name: str) -> str | None:
    found = _queue_or_none(sqs.get_queue_url, QueueName=name)
    return found["QueueUrl"] if found else None


def queue_arn(sqs, url: str) -> str | None:
    found = _queue_or_none(sqs.get_queue_attributes, QueueUrl=url, AttributeNames=["QueueArn"])
    return found["Attributes"]["QueueArn"] if found else None


def queue_tags(sqs, url: str) -> dict[str, str]:
    return dict((_queue_or_none(sqs.list_queue_tags, QueueUrl=url) or {}).get("Tags", {}))


def delete_queue(sqs, url: str) -> None:
    _queue_or_none(sqs.delete_queue, QueueUrl=url)


def _queue_or_none(call, **kwargs):
    try:
        return call(**kwargs)
    except Exception as exc:
        if is_not_found(exc) or "NonExistentQueue" in str(exc) or "QueueDoesNotExist" in str(exc):
            return None
        raise
