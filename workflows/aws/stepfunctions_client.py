"""AWS Step Functions: the state machine and its executions."""

from __future__ import annotations

from typing import Any, Iterator

from workflows.aws.session import CREATED, UNCHANGED, UPDATED, or_none, same_json, tag_list


def describe_state_machine(sfn, arn: str) -> dict[str, Any] | None:
    return or_none(sfn.describe_state_machine, stateMachineArn=arn)


def _logging_equal(a: dict | None, b: dict) -> bool:
    a = a or {}
    return (a.get("level", "OFF") == b["level"] and bool(a.get("includeExecutionData")) == b["includeExecutionData"]
            and [d.get("cloudWatchLogsLogGroup", {}).get("logGroupArn") for d in a.get("destinations", [])]
            == [d["cloudWatchLogsLogGroup"]["logGroupArn"] for d in b["destinations"]])


def upsert_state_machine(sfn, *, name: str, arn: str, definition: str, role_arn: str, logging: dict,
                         tags: dict[str, str], apply: bool = True) -> str:
    current = describe_state_machine(sfn, arn)
    if current is None:
        if apply:
            sfn.create_state_machine(name=name, definition=definition, roleArn=role_arn, type="STANDARD",
                                     loggingConfiguration=logging, tags=tag_list(tags, "key", "value"))
        return CREATED
    if (same_json(current["definition"], definition) and current.get("roleArn") == role_arn
            and _logging_equal(current.get("loggingConfiguration"), logging)):
        return UNCHANGED
    if apply:
        sfn.update_state_machine(stateMachineArn=arn, definition=definition, roleArn=role_arn,
                                 loggingConfiguration=logging)
    return UPDATED


def start_execution(sfn, arn: str, input_doc: str, name: str | None = None) -> dict[str, Any]:
    kwargs = {"stateMachineArn": arn, "input": input_doc}
    if name:
        kwargs["name"] = name
    return sfn.start_execution(**kwargs)


def describe_execution(sfn, execution_arn: str) -> dict[str, Any]:
    return sfn.describe_execution(executionArn=execution_arn)


def list_executions(sfn, arn: str, max_results: int = 20) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"stateMachineArn": arn, "maxResults": min(max_results, 1000)}
    while len(out) < max_results:
        page = sfn.list_executions(**kwargs)
        out += page.get("executions", [])
        if not page.get("nextToken"):
            break
        kwargs["nextToken"] = page["nextToken"]
    return out[:max_results]


def execution_history(sfn, execution_arn: str, reverse: bool = False) -> Iterator[dict[str, Any]]:
    kwargs: dict[str, Any] = {"executionArn": execution_arn, "maxResults": 1000, "reverseOrder": reverse}
    while True:
        page = sfn.get_execution_history(**kwargs)
        yield from page.get("events", [])
        if not page.get("nextToken"):
            return
        kwargs["nextToken"] = page["nextToken"]


def stop_execution(sfn, execution_arn: str, cause: str = "stopped with mlpipe stop") -> dict[str, Any]:
    return sfn.stop_execution(executionArn=execution_arn, cause=cause)


def send_task_success(sfn, token: str, output: str) -> None:
    sfn.send_task_success(taskToken=token, output=output)


def send_task_failure(sfn, token: str, error: str, cause: str) -> None:
    sfn.send_task_failure(taskToken=token, error=error, cause=cause)


def tags(sfn, arn: str) -> dict[str, str]:
    found = or_none(sfn.list_tags_for_resource, resourceArn=arn) or {}
    return {t["key"]: t["value"] for t in found.get("tags", [])}
