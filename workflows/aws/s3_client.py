"""Amazon S3: the pipeline's bucket and its content-addressed code assets."""

from __future__ import annotations

from typing import Any

from workflows.aws.session import CREATED, UNCHANGED, UPDATED, error_code, is_not_found, or_none


def ensure_bucket(s3, bucket: str, region: str, apply: bool = True) -> str:
    try:
        s3.head_bucket(Bucket=bucket)
        return UNCHANGED
    except Exception as exc:
        if not (is_not_found(exc) or error_code(exc) in {"404", "NoSuchBucket"}):
            raise
    if apply:
        kwargs = {"Bucket": bucket}
        if region != "us-east-1":
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
        s3.create_bucket(**kwargs)
        s3.put_public_access_block(Bucket=bucket, PublicAccessBlockConfiguration={
            "BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True,
            "RestrictPublicBuckets": True})
    return CREATED


def upload_if_changed(s3, bucket: str, key: str, data: bytes, sha256: str, apply: bool = True) -> str:
    """Content-addressed: skip when the object exists with the same sha256 metadata."""
    try:
        head = s3.head_object(Bucket=bucket, Key=key)
        if head.get("Metadata", {}).get("sha256") == sha256:
            return UNCHANGED
        action = UPDATED
    except Exception as exc:
        if not (is_not_found(exc) or error_code(exc) in {"404", "NoSuchKey", "NoSuchBucket"}):
            raise
        action = CREATED
    if apply:
        s3.put_object(Bucket=bucket, Key=key, Body=data, Metadata={"sha256": sha256})
    return action


def enable_eventbridge(s3, bucket: str, apply: bool = True) -> str:
    """Send the bucket's events to EventBridge (needed by the Object Created trigger)."""
    try:
        current = s3.get_bucket_notification_configuration(Bucket=bucket)
    except Exception as exc:
        if is_not_found(exc) or error_code(exc) in {"404", "NoSuchBucket"}:
            return CREATED
        raise
    if "EventBridgeConfiguration" in current:
        return UNCHANGED
    if apply:
        keep = {k: v for k, v in current.items() if k in ("TopicConfigurations", "QueueConfigurations",
                                                          "LambdaFunctionConfigurations")}
        s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration={
            **keep, "EventBridgeConfiguration": {}})
    return UPDATED


def head(s3, bucket: str, key: str) -> dict[str, Any] | None:
    """The object's metadata (ETag, size), or None when it does not exist."""
    return or_none(s3.head_object, Bucket=bucket, Key=key)


def read_object(s3, bucket: str, key: str) -> bytes:
    return s3.get_object(Bucket=bucket, Key=key)["Body"].read()


def list_keys(s3, bucket: str, prefix: str) -> list[str]:
    """Every object key under a prefix, in S3's order (a fan-out's items: ``foreach.s3_listing``)."""
    keys: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys += [o["Key"] for o in page.get("Contents", [])]
    return keys
