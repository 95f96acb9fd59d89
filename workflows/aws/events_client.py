"""EventBridge rules: the S3 trigger, the execution-status alert, the model-approved deployer."""

from __future__ import annotations

import json
from typing import Any

from workflows.aws.session import CREATED, UNCHANGED, UPDATED, or_none, same_json


def describe_rule(events, name: str) -> dict[str, Any] | None:
    return or_none(events.describe_rule, Name=name)


def list_targets(events, rule: str) -> list[dict[str, Any]]:
    return (or_none(events.list_targets_by_rule, Rule=rule) or {}).get("Targets", [])


def upsert_rule(events, *, name: str, pattern: dict[str, Any], description: str, targets: list[dict[str, Any]],
                tags: dict[str, str], apply: bool = True) -> str:
    """The rule and exactly these targets (by Id); anything else on the rule is removed."""
    current = describe_rule(events, name)
    action = UNCHANGED
    if current is None:
        action = CREATED
    elif not same_json(current.get("EventPattern", "{}"), pattern) or current.get("State") != "ENABLED" \
            or current.get("Description", "") != description:
        action = UPDATED
    if action != UNCHANGED and apply:
        kwargs: dict[str, Any] = {"Name": name, "EventPattern": json.dumps(pattern, sort_keys=True),
                                  "State": "ENABLED", "Description": description}
        if current is None and tags:
            kwargs["Tags"] = [{"Key": k, "Value": v} for k, v in sorted(tags.items())]
        events.put_rule(**kwargs)
    existing = {t["Id"]: t for t in list_targets(events, name)} if current is not None else {}
    wanted = {t["Id"]: t for t in targets}
    stale = sorted(set(existing) - set(wanted))
    changed = [t for i, t in wanted.items() if i not in existing or not _same_target(existing[i], t)]
    if (stale or changed) and action == UNCHANGED:
        action = UPDATED
    if apply:
        if stale:
            events.remove_targets(Rule=name, Ids=stale)
        if changed:
            resp = events.put_targets(Rule=name, Targets=changed)
            if resp.get("FailedEntryCount"):
                raise RuntimeError(f"EventBridge refused targets of rule {name}: {resp.get('FailedEntries')}")
    return action


def _same_target(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return all(same_json(json.dumps(a.get(k)), json.dumps(v)) for k, v in b.items())


def list_rules(events, prefix: str) -> list[dict[str, Any]]:
    """Every rule (on the default bus) whose name starts with ``prefix``."""
    out: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"NamePrefix": prefix}
    while True:
        page = events.list_rules(**kwargs)
        out += page.get("Rules", [])
        if not page.get("NextToken"):
            return out
        kwargs["NextToken"] = page["NextToken"]


def tags(events, arn: str) -> dict[str, str]:
    found = or_none(events.list_tags_for_resource, ResourceARN=arn) or {}
    return {t["Key"]: t["Value"] for t in found.get("Tags", [])}


def delete_rule(events, name: str) -> None:
    """The rule and its targets (EventBridge refuses to delete a rule that has targets);
    a rule already gone is fine."""
    ids = [t["Id"] for t in list_targets(events, name)]
    if ids:
        or_none(events.remove_targets, Rule=name, Ids=ids)
    or_none(events.delete_rule, Name=name)
