"""Everything a deployment consists of, declared once: an ordered list of ``Resource``.

``plan.py`` diffs this list against AWS and applies it (``mlpipe deploy``); ``cloudformation.py``
renders the very same list as a template (``mlpipe export cloudformation``). Neither spells out
a resource of its own, so the two cannot drift apart (a test compares them for every example).

Properties are plain data in one vocabulary; ARNs come from ``steps.naming.Arns``, so with
CloudFormation placeholders for the account and region the same list is portable.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from steps import naming
from steps.naming import Arns
from steps.spec import PipelineSpec
from workflows.infra import iam
from workflows.render import PIPELINE_FILE, STATE_MACHINE_FILE

LOG_RETENTION_DAYS = 90
QUEUE_RETENTION_SECONDS = 1209600  # 14 days, the SQS maximum

# Uploads deploy makes before anything else; a CloudFormation template refers to them instead.
ASSET_KINDS = ("s3 bucket", "code asset", "lambda package")


@dataclass(frozen=True)
class Resource:
    kind: str                       # the plan's word: "iam role", "lambda function", ...
    name: str
    props: dict[str, Any] = field(default_factory=dict, compare=False)
    arn: str | None = None          # what other resources refer to it by
    in_template: bool = True        # False: deploy does it; a template cannot (uploads, bucket settings)


def tags_of(spec: PipelineSpec) -> dict[str, str]:
    """Every resource mlpipe creates carries the pipeline's name: it marks what mlpipe owns."""
    return {"mlpipe:pipeline": spec.name, **dict(spec.tags)}


def resources(spec: PipelineSpec, target: str, account: str, region: str, files: dict[str, bytes],
              lambda_zip: bytes) -> list[Resource]:
    """The deployment of ``spec`` on ``target``, in the order it must be created."""
    a = Arns.of(spec, account, region)
    tags = tags_of(spec)
    out: list[Resource] = []
    add = out.append

    # --- uploads -------------------------------------------------------------------------
    add(Resource("s3 bucket", spec.bucket, {"region": region}, a.bucket(), in_template=False))
    for asset in spec.assets:
        add(Resource("code asset", asset.uri, {"bucket": spec.bucket, "key": asset.key, "sha256": asset.sha256,
                                               "data": files[f"assets/{asset.key}"]}, in_template=False))
    zip_key = package_key(spec, lambda_zip)
    add(Resource("lambda package", f"s3://{spec.bucket}/{zip_key}",
                 {"bucket": spec.bucket, "key": zip_key, "sha256": hashlib.sha256(lambda_zip).hexdigest(),
                  "data": lambda_zip}, in_template=False))

    # --- plumbing ------------------------------------------------------------------------
    log_group = naming.log_group_name(spec.name)
    if target == "stepfunctions":
        add(Resource("log group", log_group, {"retention_days": LOG_RETENTION_DAYS, "tags": tags},
                     a.log_group(log_group) + ":*"))
    add(Resource("sns topic", naming.topic_name(spec.name),
                 {"emails": list(spec.emails), "policy": iam.topic_policy(spec, account, region), "tags": tags},
                 a.topic()))
    if spec.schedule is not None and spec.schedule.dead_letter_queue:
        add(Resource("sqs queue", naming.queue_name(spec.name),
                     {"retention_seconds": QUEUE_RETENTION_SECONDS, "tags": tags}, a.queue()))
    for role in iam.roles(spec, target, account, region):
        if not role.given:
            add(Resource("iam role", role.name, {
                "trust": role.trust, "policies": role.policies, "prune": (naming.policy_prefix(target),),
                "description": f"mlpipe {spec.name}: {role.service}", "service": role.service, "tags": tags},
                role.arn))
    fns = iam.functions(spec, target, account, region)
    for fn in fns:
        add(Resource("lambda function", fn.name, {
            "handler": fn.handler, "runtime": "python3.11", "role": a.role("lambda"),
            "environment": dict(fn.environment), "timeout": fn.timeout, "memory": fn.memory,
            "code": {"bucket": spec.bucket, "key": zip_key}, "description": f"mlpipe {spec.name}: {fn.stage}",
            "stage": fn.stage, "tags": tags}, a.function(fn.name)))
    for group in iam.model_package_groups(spec):
        add(Resource("model package group", group,
                     {"description": f"Models of the mlpipe pipeline {spec.name}", "tags": tags},
                     a.sm("model-package-group", group)))

    # --- the orchestrator ----------------------------------------------------------------
    if target == "stepfunctions":
        machine = {
            "definition": files[STATE_MACHINE_FILE].decode(), "role": a.role("stepfunctions"),
            "logging": {"level": "ERROR", "includeExecutionData": False,
                        "destinations": [{"cloudWatchLogsLogGroup": {"logGroupArn": a.log_group(log_group) + ":*"}}]}}
        # a create or an update publishes an immutable version (described with the config hash)
        add(Resource("state machine", naming.state_machine_name(spec.name), {
            **machine, "version_description": version_description(spec), "tags": tags}, a.state_machine()))
        # every run goes through the `live` alias: deploy points it at the version of this config
        add(Resource("state machine alias", naming.LIVE_ALIAS, {
            "definition": machine["definition"], "role": machine["role"], "state_machine": a.state_machine(),
            "version_description": version_description(spec),
            "description": f"mlpipe {spec.name}: the version every run starts (deploy and rollback move it)"},
            a.state_machine_alias()))
    else:
        add(Resource("sagemaker pipeline", naming.sagemaker_pipeline_name(spec.name), {
            "definition": files[PIPELINE_FILE].decode(), "role": a.role("sagemaker"),
            "description": spec.description, "tags": tags}, a.pipeline_arn()))
    orchestrator = a.orchestrator(target)
    entry = a.entry(target)          # what schedules and triggers start: the alias, or the pipeline

    # --- what starts runs, and what reports them -----------------------------------------
    if spec.schedule is not None:
        add(Resource("schedule", naming.schedule_name(spec.name, target),
                     {"request": _schedule_request(spec, target, a, entry)}))
    if spec.trigger_prefix:
        bucket, _, prefix = spec.trigger_prefix[len("s3://"):].partition("/")
        add(Resource("s3 eventbridge notifications", bucket, {}, in_template=False))
        rule = naming.trigger_rule_name(spec.name, target)
        pattern = {"source": ["aws.s3"], "detail-type": ["Object Created"],
                   "detail": {"bucket": {"name": [bucket]}, "object": {"key": [{"prefix": prefix}]}}}
        if target == "stepfunctions":
            # the execution input is the parameter map; the new object becomes InputData
            rule_target: dict[str, Any] = {
                "Id": "start-pipeline", "Arn": entry, "RoleArn": a.role("events"),
                "InputTransformer": {"InputPathsMap": {"bucket": "$.detail.bucket.name", "key": "$.detail.object.key"},
                                     "InputTemplate": '{"InputData": "s3://<bucket>/<key>"}'}}
        else:
            # A rule cannot fill a SageMaker pipeline parameter from the event: it invokes the
            # starter function, which starts the pipeline with InputData = the new object.
            starter = next(f for f in fns if f.starter)
            rule_target = {"Id": "start-pipeline", "Arn": a.function(starter.name)}
        add(Resource("eventbridge rule", rule, {
            "pattern": pattern, "targets": [rule_target], "tags": tags, "purpose": "new data",
            "description": f"mlpipe {spec.name}: start a run when data lands under {spec.trigger_prefix}"},
            a.rule(rule)))
        if target == "sagemaker":
            add(_permission(starter.name, rule, a))

    if target == "stepfunctions":
        pattern = {"source": ["aws.states"], "detail-type": ["Step Functions Execution Status Change"],
                   "detail": {"status": ["FAILED", "TIMED_OUT", "ABORTED"], "stateMachineArn": [orchestrator]}}
    else:
        pattern = {"source": ["aws.sagemaker"], "detail-type": ["SageMaker Model Building Pipeline Execution Status Change"],
                   "detail": {"currentPipelineExecutionStatus": ["Failed", "Stopped"], "pipelineArn": [orchestrator]}}
    status_rule = naming.status_rule_name(spec.name, target)
    add(Resource("eventbridge rule", status_rule, {
        "pattern": pattern, "targets": [{"Id": "notify", "Arn": a.topic()}], "tags": tags, "purpose": "status",
        "description": f"mlpipe {spec.name}: e-mail when a run fails or is stopped"}, a.rule(status_rule)))

    schedules = iam.monitoring_schedules(spec, a)
    if schedules:
        # Model Monitor runs each scheduled execution as a processing job of the schedule; one that
        # found violations ends "CompletedWithViolations: ..." (its ExitMessage)
        rule = naming.violations_rule_name(spec.name, target)
        pattern = {"source": ["aws.sagemaker"], "detail-type": ["SageMaker Processing Job State Change"],
                   "detail": {"MonitoringScheduleArn": schedules,
                              "ExitMessage": [{"prefix": "CompletedWithViolations"}]}}
        add(Resource("eventbridge rule", rule, {
            "pattern": pattern, "targets": [{"Id": "notify", "Arn": a.topic()}], "tags": tags, "purpose": "monitoring",
            "description": f"mlpipe {spec.name}: e-mail when endpoint monitoring finds data-quality violations"},
            a.rule(rule)))

    if target == "sagemaker":
        groups = iam.model_package_groups(spec)
        for fn in (f for f in fns if f.deployer):
            rule = naming.approved_rule_name(spec.name, fn.stage)
            pattern = {"source": ["aws.sagemaker"], "detail-type": ["SageMaker Model Package State Change"],
                       "detail": {"ModelPackageGroupName": groups, "ModelApprovalStatus": ["Approved"]}}
            add(Resource("eventbridge rule", rule, {
                "pattern": pattern, "targets": [{"Id": "deploy-endpoint", "Arn": a.function(fn.name)}], "tags": tags,
                "purpose": "approved",
                "description": f"mlpipe {spec.name}: deploy an approved model to its endpoint"}, a.rule(rule)))
            add(_permission(fn.name, rule, a))
    return out


def version_description(spec: PipelineSpec) -> str:
    """A published state machine version's description: which config it holds."""
    return f"mlpipe {spec.name}: config {spec.fingerprint}"


def package_key(spec: PipelineSpec, zip_bytes: bytes) -> str:
    from workflows.infra.package import package_key as key

    return key(spec.prefix, zip_bytes)


def _permission(function: str, rule: str, a: Arns) -> Resource:
    """Let one EventBridge rule invoke one function."""
    return Resource("lambda permission", f"{function}/{rule}", {
        "function": function, "function_arn": a.function(function), "statement_id": f"{rule}-invoke",
        "principal": "events.amazonaws.com", "source_arn": a.rule(rule)})


def _schedule_request(spec: PipelineSpec, target: str, a: Arns, entry: str) -> dict[str, Any]:
    """The EventBridge Scheduler CreateSchedule request (less its name)."""
    s = spec.schedule
    schedule_target: dict[str, Any] = {
        "Arn": entry, "RoleArn": a.role("scheduler"),
        "RetryPolicy": {"MaximumRetryAttempts": s.maximum_attempts,
                        "MaximumEventAgeInSeconds": s.maximum_event_age_seconds},
    }
    if target == "stepfunctions":
        schedule_target["Input"] = "{}"          # the declared defaults apply
    else:
        # the templated target for sagemaker:StartPipelineExecution; no parameters -> defaults
        schedule_target["SageMakerPipelineParameters"] = {"PipelineParameterList": []}
    if s.dead_letter_queue:
        schedule_target["DeadLetterConfig"] = {"Arn": a.queue()}
    return {"ScheduleExpression": s.expression, "ScheduleExpressionTimezone": s.timezone,
            "State": "ENABLED" if s.enabled else "DISABLED", "FlexibleTimeWindow": {"Mode": "OFF"},
            "Description": f"mlpipe {spec.name}: retrain", "Target": schedule_target}
