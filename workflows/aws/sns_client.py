"""Amazon SNS: the pipeline's notification topic, its policy and e-mail subscriptions."""

from __future__ import annotations

import json
from typing import Any

from workflows.aws.session import CREATED, UNCHANGED, UPDATED, or_none, same_json


def topic_exists(sns, arn: str) -> dict[str, Any] | None:
    found = or_none(sns.get_topic_attributes, TopicArn=arn)
    return found["Attributes"] if found else None


def upsert_topic(sns, *, name: str, arn: str, policy: dict[str, Any], emails: list[str], tags: dict[str, str],
                 apply: bool = True) -> str:
    attrs = topic_exists(sns, arn)
    if attrs is None:
        if apply:
            arn = sns.create_topic(Name=name, Attributes={"Policy": json.dumps(policy)},
                                   Tags=[{"Key": k, "Value": v} for k, v in sorted(tags.items())])["TopicArn"]
            for email in emails:
                sns.subscribe(TopicArn=arn, Protocol="email", Endpoint=email)
        return CREATED
    action = UNCHANGED
    if not same_json(attrs.get("Policy", "{}"), policy):
        action = UPDATED
        if apply:
            sns.set_topic_attributes(TopicArn=arn, AttributeName="Policy", AttributeValue=json.dumps(policy))
    subscribed = {s["Endpoint"] for s in sns.list_subscriptions_by_topic(TopicArn=arn).get("Subscriptions", [])
                  if s.get("Protocol") == "email"}
    for email in emails:
        if email not in subscribed:
            action = UPDATED
            if apply:
                sns.subscribe(TopicArn=arn, Protocol="email", Endpoint=email)
    return action


def email_subscriptions(sns, topic_arn: str) -> list[dict[str, Any]]:
    """The topic's e-mail subscriptions ({Endpoint, SubscriptionArn, ...}); none if no topic."""
    out: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"TopicArn": topic_arn}
    while True:
        page = or_none(sns.list_subscriptions_by_topic, **kwargs)
        if not page:
            return out
        out += [s for s in page.get("Subscriptions", []) if s.get("Protocol") == "email"]
        if not page.get("NextToken"):
            return out
        kwargs["NextToken"] = page["NextToken"]


def unsubscribe(sns, subscription_arn: str) -> None:
    or_none(sns.unsubscribe, SubscriptionArn=subscription_arn)


def tags(sns, arn: str) -> dict[str, str]:
    found = or_none(sns.list_tags_for_resource, ResourceArn=arn) or {}
    return {t["Key"]: t["Value"] for t in found.get("Tags", [])}
