"""AWS Step Functions: the state machine, its versions and ``live`` alias, and its executions."""

from __future__ import annotations

from typing import Any, Callable, Iterator

from workflows.aws.session import CREATED, UNCHANGED, UPDATED, or_none, same_json, tag_list


def describe_state_machine(sfn, arn: str) -> dict[str, Any] | None:
    return or_none(sfn.describe_state_machine, stateMachineArn=arn)


def _logging_equal(a: dict | None, b: dict) -> bool:
    a = a or {}
    return (a.get("level", "OFF") == b["level"] and bool(a.get("includeExecutionData")) == b["includeExecutionData"]
            and [d.get("cloudWatchLogsLogGroup", {}).get("logGroupArn") for d in a.get("destinations", [])]
            == [d["cloudWatchLogsLogGroup"]["logGroupArn"] for d in b["destinations"]])


def same_revision(found: dict[str, Any], definition: str, role_arn: str, logging: dict | None = None) -> bool:
    """A state machine as described equals what deploy would make. Without ``logging``: what a
    published version holds (its definition and role; logging is the state machine's setting)."""
    return (same_json(found.get("definition", "{}"), definition) and found.get("roleArn") == role_arn
            and (logging is None or _logging_equal(found.get("loggingConfiguration"), logging)))


def upsert_state_machine(sfn, *, name: str, arn: str, definition: str, role_arn: str, logging: dict,
                         tags: dict[str, str], apply: bool = True, version_description: str | None = None,
                         published: Callable[[str], None] | None = None) -> str:
    """Create or update the state machine. With ``version_description``, a create or an update
    also publishes an immutable version (``publish=True``) and hands its ARN to ``published``;
    nothing changed, nothing published."""
    current = describe_state_machine(sfn, arn)
    publish: dict[str, Any] = {"publish": True, "versionDescription": version_description} \
        if version_description is not None else {}
    if current is None:
        if apply:
            resp = sfn.create_state_machine(name=name, definition=definition, roleArn=role_arn, type="STANDARD",
                                            loggingConfiguration=logging, tags=tag_list(tags, "key", "value"),
                                            **publish)
            if publish and published is not None and resp.get("stateMachineVersionArn"):
                published(resp["stateMachineVersionArn"])
        return CREATED
    if same_revision(current, definition, role_arn, logging):
        return UNCHANGED
    if apply:
        resp = sfn.update_state_machine(stateMachineArn=arn, definition=definition, roleArn=role_arn,
                                        loggingConfiguration=logging, **publish)
        if publish and published is not None and resp.get("stateMachineVersionArn"):
            published(resp["stateMachineVersionArn"])
    return UPDATED


# --- versions and aliases ---------------------------------------------------------------------

def describe_alias(sfn, alias_arn: str) -> dict[str, Any] | None:
    return or_none(sfn.describe_state_machine_alias, stateMachineAliasArn=alias_arn)


def alias_target(alias: dict[str, Any] | None) -> str | None:
    """The version an alias sends every execution to (None: no alias, or a split routing)."""
    routes = (alias or {}).get("routingConfiguration") or []
    full = [r["stateMachineVersionArn"] for r in routes if r.get("weight") == 100]
    return full[0] if len(routes) == 1 and full else None


def routing(version_arn: str) -> list[dict[str, Any]]:
    return [{"stateMachineVersionArn": version_arn, "weight": 100}]


def publish_version(sfn, state_machine_arn: str, description: str) -> str:
    """The version of the state machine's current revision (idempotent: an existing one is
    returned, not duplicated)."""
    return sfn.publish_state_machine_version(stateMachineArn=state_machine_arn,
                                             description=description)["stateMachineVersionArn"]


def upsert_alias(sfn, *, name: str, alias_arn: str, state_machine_arn: str, description: str,
                 version_description: str, definition: str, role_arn: str,
                 published: str | None = None, apply: bool = True) -> str:
    """Point the alias, with all traffic, at the version that holds this deployment.

    ``published``: the version this deploy just published (the state machine changed). Else the
    alias is unchanged when the version it points at already holds this definition, role and
    logging; otherwise (a rollback since, or a state machine deployed before versions) it is
    pointed at the version of the current revision (``PublishStateMachineVersion`` returns the
    existing one, or publishes it). Logging is not compared: a version holds the definition and
    the role; logging is set on the state machine itself."""
    current = describe_alias(sfn, alias_arn)
    live = alias_target(current)
    if published is not None:
        if live == published and current.get("description", "") == description:
            return UNCHANGED
    elif live is not None and current.get("description", "") == description:
        found = describe_state_machine(sfn, live)
        if found is not None and same_revision(found, definition, role_arn):
            return UNCHANGED
    if apply:
        version = published or publish_version(sfn, state_machine_arn, version_description)
        if current is None:
            sfn.create_state_machine_alias(name=name, description=description, routingConfiguration=routing(version))
        else:
            sfn.update_state_machine_alias(stateMachineAliasArn=alias_arn, description=description,
                                           routingConfiguration=routing(version))
    return CREATED if current is None else UPDATED


def point_alias(sfn, alias_arn: str, version_arn: str) -> None:
    sfn.update_state_machine_alias(stateMachineAliasArn=alias_arn, routingConfiguration=routing(version_arn))


def list_versions(sfn, state_machine_arn: str) -> list[dict[str, Any]]:
    """[{stateMachineVersionArn, creationDate}], newest first."""
    out: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"stateMachineArn": state_machine_arn, "maxResults": 1000}
    while True:
        page = sfn.list_state_machine_versions(**kwargs)
        out += page.get("stateMachineVersions", [])
        if not page.get("nextToken"):
            return out
        kwargs["nextToken"] = page["nextToken"]


def version_number(arn: str | None) -> int | None:
    """``...:stateMachine:<name>:<N>`` -> N."""
    tail = (arn or "").rsplit(":", 1)[-1]
    return int(tail) if tail.isdigit() else None


def start_execution(sfn, arn: str, input_doc: str, name: str | None = None) -> dict[str, Any]:
    kwargs = {"stateMachineArn": arn, "input": input_doc}
    if name:
        kwargs["name"] = name
    return sfn.start_execution(**kwargs)


def describe_execution(sfn, execution_arn: str) -> dict[str, Any]:
    return sfn.describe_execution(executionArn=execution_arn)


def describe_state_machine_for_execution(sfn, execution_arn: str) -> dict[str, Any]:
    """The state machine as the execution ran it (its definition, role, revision)."""
    return sfn.describe_state_machine_for_execution(executionArn=execution_arn)


def redrive_execution(sfn, execution_arn: str) -> dict[str, Any]:
    """Restart a FAILED/ABORTED/TIMED_OUT execution from its unsuccessful state, same ARN
    (botocore fills the idempotency clientToken)."""
    return sfn.redrive_execution(executionArn=execution_arn)


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
