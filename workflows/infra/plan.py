"""Plan and apply the resource list (``resources.py``) against AWS: ``mlpipe deploy``.

Each resource is an upsert through one small client module (describe -> create, update only
if different), so a second deploy with the same config reports every resource ``unchanged``.
What an earlier deploy of this target created and the config no longer declares is deleted
(``prune.py``; rows ``delete``/``deleted``), after everything else is in place.
A dry run makes the same calls read-only and reports what would change.

Step Functions: a create or update of the state machine publishes an immutable version (its
description carries the config hash; an unchanged state machine publishes nothing), and the
``state machine alias`` step points the ``live`` alias at it; schedules, the S3 trigger and
``mlpipe start`` start runs through that alias (``mlpipe versions``/``rollback``).

Two deploys of one pipeline at once converge: a create that loses the race (AlreadyExists,
ResourceConflict, ConcurrentModification, ...) is retried, re-reading the resource first, so it
becomes an update (or nothing); a delete of something already gone is fine.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from config.errors import UserError
from steps.spec import PipelineSpec
from workflows.aws import (events_client, iam_client, lambda_client, logs_client, s3_client, sagemaker_client,
                           scheduler_client, sns_client, stepfunctions_client)
from workflows.aws.session import CREATED, UNCHANGED, UPDATED, Aws, aws_errors, error_code, is_race
from workflows.infra.resources import ASSET_KINDS, Resource, resources

DELETED = "deleted"
PLAN_WORDS = {CREATED: "create", UPDATED: "update", UNCHANGED: "unchanged", DELETED: "delete"}
RACE_ATTEMPTS = 6


@dataclass
class Step:
    resource: Resource
    action: str | None = None
    error: str | None = None
    remove: Callable[[], None] | None = None     # a deletion (prune.py), not an upsert


@dataclass
class Deployment:
    spec: PipelineSpec
    target: str
    aws: Aws
    account: str
    region: str
    steps: list[Step] = field(default_factory=list)
    lambda_zip: bytes = b""
    published: dict[str, str] = field(default_factory=dict)   # state machine ARN -> version this deploy published

    def c(self, service: str):
        return self.aws.client(service)


def _tags(r: Resource) -> dict[str, str]:
    return r.props.get("tags", {})


# One applier per resource kind: (deployment, resource, apply) -> created | updated | unchanged.
APPLY: dict[str, Callable[[Deployment, Resource, bool], str]] = {
    "s3 bucket": lambda d, r, apply: s3_client.ensure_bucket(d.c("s3"), r.name, r.props["region"], apply),
    "code asset": lambda d, r, apply: s3_client.upload_if_changed(
        d.c("s3"), r.props["bucket"], r.props["key"], r.props["data"], r.props["sha256"], apply),
    "lambda package": lambda d, r, apply: s3_client.upload_if_changed(
        d.c("s3"), r.props["bucket"], r.props["key"], r.props["data"], r.props["sha256"], apply),
    "log group": lambda d, r, apply: logs_client.upsert_log_group(
        d.c("logs"), r.name, r.props["retention_days"], _tags(r), apply),
    "sns topic": lambda d, r, apply: sns_client.upsert_topic(
        d.c("sns"), name=r.name, arn=r.arn, emails=r.props["emails"], tags=_tags(r), apply=apply,
        policy=r.props["policy"]),
    "sqs queue": lambda d, r, apply: scheduler_client.ensure_queue(d.c("sqs"), r.name, _tags(r), apply)[0],
    "iam role": lambda d, r, apply: iam_client.upsert_role(
        d.c("iam"), name=r.name, trust=r.props["trust"], policies=r.props["policies"], tags=_tags(r), apply=apply,
        prune=r.props["prune"], description=r.props["description"]),
    "lambda function": lambda d, r, apply: lambda_client.upsert_function(
        d.c("lambda"), name=r.name, zip_bytes=d.lambda_zip, handler=r.props["handler"], role_arn=r.props["role"],
        environment=r.props["environment"], timeout=r.props["timeout"], memory=r.props["memory"], tags=_tags(r),
        apply=apply, description=r.props["description"]),
    "model package group": lambda d, r, apply: sagemaker_client.upsert_model_package_group(
        d.c("sagemaker"), r.name, r.props["description"], _tags(r), apply),
    "state machine": lambda d, r, apply: stepfunctions_client.upsert_state_machine(
        d.c("stepfunctions"), name=r.name, arn=r.arn, definition=r.props["definition"], role_arn=r.props["role"],
        logging=r.props["logging"], tags=_tags(r), apply=apply, version_description=r.props.get("version_description"),
        published=lambda version: d.published.__setitem__(r.arn, version)),
    "state machine alias": lambda d, r, apply: stepfunctions_client.upsert_alias(
        d.c("stepfunctions"), name=r.name, alias_arn=r.arn, state_machine_arn=r.props["state_machine"],
        description=r.props["description"], version_description=r.props["version_description"],
        definition=r.props["definition"], role_arn=r.props["role"],
        published=d.published.get(r.props["state_machine"]), apply=apply),
    "sagemaker pipeline": lambda d, r, apply: sagemaker_client.upsert_pipeline(
        d.c("sagemaker"), name=r.name, definition=r.props["definition"], role_arn=r.props["role"],
        description=r.props["description"], tags=_tags(r), apply=apply),
    "schedule": lambda d, r, apply: scheduler_client.upsert_schedule(d.c("scheduler"), r.name, r.props["request"], apply),
    "s3 eventbridge notifications": lambda d, r, apply: s3_client.enable_eventbridge(d.c("s3"), r.name, apply),
    "eventbridge rule": lambda d, r, apply: events_client.upsert_rule(
        d.c("events"), name=r.name, pattern=r.props["pattern"], targets=r.props["targets"], tags=_tags(r),
        apply=apply, description=r.props["description"]),
    "lambda permission": lambda d, r, apply: lambda_client.upsert_permission(
        d.c("lambda"), function=r.props["function"], statement_id=r.props["statement_id"],
        principal=r.props["principal"], source_arn=r.props["source_arn"], apply=apply),
}


def load_for_account(config: str, region: str, account: str) -> PipelineSpec:
    """The spec with the caller's real account (and the chosen region) substituted."""
    from steps.pipeline import load_spec

    return load_spec(config, overrides={"aws.account_id": account, "aws.region": region})


def prepare(config: str, target: str, aws: Aws, assets_only: bool = False) -> Deployment:
    """Resolve the account and region, render, and lay out the plan (nothing is applied)."""
    from workflows.infra.package import build_zip
    from workflows.render import render_cached

    region = aws.region or aws.region_name
    account = aws.account_id()
    spec = load_for_account(config, region, account)
    files = render_cached(spec, target)
    zip_bytes = build_zip()
    d = Deployment(spec=spec, target=target, aws=aws, account=account, region=region, lambda_zip=zip_bytes)
    for r in resources(spec, target, account, region, files, zip_bytes):
        if not assets_only or r.kind in ASSET_KINDS:
            d.steps.append(Step(r))
    if not assets_only:
        from workflows.infra import prune

        declared = {(s.resource.kind, s.resource.name) for s in d.steps}
        with aws_errors("looking for resources the config no longer declares"):
            for gone in prune.stale(d, declared):
                d.steps.append(Step(Resource(gone.kind, gone.name, in_template=False), remove=gone.remove))
    return d


def _once(d: Deployment, step: Step, apply: bool) -> str:
    if step.remove is not None:
        if apply:
            step.remove()
        return DELETED
    return APPLY[step.resource.kind](d, step.resource, apply)


def apply_step(d: Deployment, step: Step, apply: bool, sleep: Callable[[float], None] = time.sleep) -> str:
    """One step; when another deploy races it (creates the same thing first, or is changing it
    right now), wait a little, re-read and go again: the create becomes an update or nothing."""
    for attempt in range(RACE_ATTEMPTS):
        try:
            return _once(d, step, apply)
        except Exception as exc:
            if not is_race(exc):
                raise
            if attempt == RACE_ATTEMPTS - 1:
                r = step.resource
                raise UserError(
                    f"{r.kind} {r.name} kept changing under this deploy ({error_code(exc) or type(exc).__name__})",
                    fix="another `mlpipe deploy` of this pipeline (or someone else) is changing it; wait for it to "
                        "finish, then deploy again (deploy converges)") from None
            sleep(min(8.0, 0.5 * 2 ** attempt) * (0.5 + random.random()))
    raise AssertionError("unreachable")


def execute(d: Deployment, apply: bool) -> None:
    """Apply (or, read-only, compare) each resource in order; stop at the first failure."""
    for step in d.steps:
        r = step.resource
        try:
            with aws_errors(f"{'deleting' if step.remove else 'deploying'} {r.kind} {r.name}"):
                step.action = apply_step(d, step, apply)
        except BaseException as exc:
            step.error = f"{type(exc).__name__}: {exc}".splitlines()[0]
            raise


def rows(d: Deployment, apply: bool) -> list[dict[str, str]]:
    out = []
    for step in d.steps:
        if step.error is not None:
            action = "failed"
        elif step.action is None:
            action = "not applied"
        else:
            action = step.action if apply else PLAN_WORDS[step.action]
        out.append({"resource": step.resource.kind, "name": step.resource.name, "action": action})
    return out


def deploy(d: Deployment, apply: bool) -> list[dict[str, str]]:
    """Execute the plan; on failure, the rows so far travel with the error."""
    try:
        execute(d, apply)
    except UserError as exc:
        raise DeployFailed(rows(d, apply), UserError(
            f"deploy stopped: {exc.message}", source=exc.source, field=exc.field,
            fix=(exc.fix or "") + " (resources marked 'not applied' were left as they were)")) from None
    except Exception as exc:
        failed = next(s for s in d.steps if s.error)
        raise DeployFailed(rows(d, apply), exc, failed.resource.kind) from None
    return rows(d, apply)


class DeployFailed(Exception):
    def __init__(self, rows: list[dict[str, str]], cause: BaseException, at: str | None = None) -> None:
        super().__init__(str(cause))
        self.rows, self.cause, self.at = rows, cause, at


def summary(d: Deployment, items: list[dict[str, Any]], apply: bool) -> str:
    changed = sum(r["action"] != "unchanged" for r in items)
    deleted = sum(r["action"] in (DELETED, PLAN_WORDS[DELETED]) for r in items)
    verb = "would change" if not apply else "changed"
    gone = f" ({deleted} {'to delete' if not apply else 'deleted'}: no longer in the config)" if deleted else ""
    return f"{d.spec.name} ({d.target}) in {d.account}/{d.region}: {changed} of {len(items)} resources {verb}{gone}"
