"""``mlpipe deploy``: create or update everything a pipeline needs on AWS, idempotently.

Order: bucket and code assets, log group, topic, dead-letter queue, IAM roles, Lambda
functions, model package group, state machine or SageMaker pipeline, schedule, S3 trigger,
status alert (and, for the SageMaker target, the model-approved deployer rule). Each resource
is an upsert (describe -> create, update only if different), so a second deploy with the same
config reports every resource ``unchanged``. ``--dry-run`` runs the same steps read-only.

Lambda packaging: lambda_handlers/ plus pydantic and its dependencies (Lambda's Python runtime
lacks pydantic), zipped deterministically (fixed timestamps, permissions and order) so the
zip's SHA-256 is stable and unchanged code is never re-uploaded. pydantic_core is a compiled
extension: the copy is only valid on Lambda when this interpreter is CPython 3.11 on Linux
x86_64 (the functions' runtime and architecture).
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import hashlib
import json
import os
import sys
import zipfile
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

from config.errors import UserError
from steps import naming
from steps.spec import PipelineSpec
from workflows import policies
from workflows.aws import (events_client, iam_client, lambda_client, logs_client, s3_client, sagemaker_client,
                           scheduler_client, sns_client, stepfunctions_client)
from workflows.aws.session import CREATED, UNCHANGED, UPDATED, Aws, aws_errors, from_args

LOG_RETENTION_DAYS = 90
PLAN_WORDS = {CREATED: "create", UPDATED: "update", UNCHANGED: "unchanged"}
HANDLERS_DIR = Path(__file__).resolve().parents[1] / "lambda_handlers"
DEPENDENCIES = ("pydantic", "pydantic_core", "typing_extensions", "annotated_types", "typing_inspection")
_EPOCH = (1980, 1, 1, 0, 0, 0)


def _files() -> list[tuple[str, Path]]:
    out: list[tuple[str, Path]] = []
    for path in sorted(HANDLERS_DIR.rglob("*.py")):
        if "__pycache__" not in path.parts:
            out.append((f"lambda_handlers/{path.relative_to(HANDLERS_DIR).as_posix()}", path))
    for name in DEPENDENCIES:
        spec = importlib.util.find_spec(name)
        if spec is None:
            raise RuntimeError(f"{name} is not installed; it is bundled into the Lambda package")
        if spec.submodule_search_locations:
            root = Path(next(iter(spec.submodule_search_locations)))
            for path in sorted(root.rglob("*")):
                if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                    out.append((f"{name}/{path.relative_to(root).as_posix()}", path))
        else:
            out.append((Path(spec.origin).name, Path(spec.origin)))
    return out


@lru_cache(maxsize=1)
def build_zip() -> bytes:
    buf = io.BytesIO()
    names: set[str] = set()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        entries = _files()
        if "lambda_handlers/__init__.py" not in {n for n, _ in entries}:
            entries.append(("lambda_handlers/__init__.py", None))
        for name, path in sorted(entries, key=lambda e: e[0]):
            if name in names:
                continue
            names.add(name)
            info = zipfile.ZipInfo(name, date_time=_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            executable = path is not None and path.suffix == ".so"
            info.external_attr = ((0o755 if executable else 0o644) | 0o100000) << 16
            info.create_system = 3
            zf.writestr(info, b"" if path is None else path.read_bytes())
    return buf.getvalue()


# --- the plan ------------------------------------------------------------------------------

@dataclass
class Step:
    resource: str
    name: str
    run: Callable[[bool], str]      # apply -> action
    action: str | None = None
    error: str | None = None


@dataclass
class Deployment:
    spec: PipelineSpec
    target: str
    aws: Aws
    account: str
    region: str
    files: dict[str, bytes]
    steps: list[Step] = field(default_factory=list)
    queue_arn: str | None = None

    def add(self, resource: str, name: str, run: Callable[[bool], str]) -> None:
        self.steps.append(Step(resource, name, run))

    def c(self, service: str):
        return self.aws.client(service)

    @property
    def arns(self) -> policies.Arns:
        return policies.Arns(self.spec, self.account, self.region)


def load_for_account(config: str, aws: Aws, region: str, account: str) -> PipelineSpec:
    """The spec with the caller's real account (and the chosen region) substituted."""
    from steps.pipeline import load_spec

    env = dict(os.environ)
    env["MLPIPE_AWS_ACCOUNT_ID"] = account
    env["MLPIPE_AWS_REGION"] = region
    return load_spec(config, env)


ASSET_RESOURCES = ("s3 bucket", "code asset", "lambda package")


def lambda_package_key(spec, zip_bytes: bytes) -> str:
    """Content-addressed S3 key of the Lambda zip: what CloudFormation's Lambda code points at."""
    sha = hashlib.sha256(zip_bytes).hexdigest()
    return "/".join(p for p in (spec.prefix, "assets", "lambda", sha[:16], "lambda.zip") if p)


def plan(d: Deployment) -> None:
    spec, a = d.spec, d.arns
    tags = {"mlpipe:pipeline": spec.name, **dict(spec.tags)}
    region = d.region

    d.add("s3 bucket", spec.bucket, lambda apply: s3_client.ensure_bucket(d.c("s3"), spec.bucket, region, apply))
    for asset in spec.assets:
        data = d.files[f"assets/{asset.key}"]
        d.add("code asset", asset.uri, lambda apply, asset=asset, data=data: s3_client.upload_if_changed(
            d.c("s3"), spec.bucket, asset.key, data, asset.sha256, apply))
    package = build_zip()
    package_key = lambda_package_key(spec, package)
    d.add("lambda package", f"s3://{spec.bucket}/{package_key}", lambda apply: s3_client.upload_if_changed(
        d.c("s3"), spec.bucket, package_key, package, hashlib.sha256(package).hexdigest(), apply))

    log_group = naming.log_group_name(spec.name)
    if d.target == "stepfunctions":
        d.add("log group", log_group, lambda apply: logs_client.upsert_log_group(
            d.c("logs"), log_group, LOG_RETENTION_DAYS, tags, apply))

    status_rule = policies.status_rule(spec, d.target)
    topic = naming.topic_name(spec.name)
    d.add("sns topic", topic, lambda apply: sns_client.upsert_topic(
        d.c("sns"), name=topic, arn=a.topic(), emails=list(spec.emails), tags=tags, apply=apply,
        policy=policies.topic_policy(spec, d.account, region)))

    if spec.schedule is not None and spec.schedule.dead_letter_queue:
        def queue(apply: bool) -> str:
            action, d.queue_arn = scheduler_client.ensure_queue(d.c("sqs"), naming.queue_name(spec.name), tags, apply)
            return action
        d.add("sqs queue", naming.queue_name(spec.name), queue)

    role_docs = policies.roles(spec, d.target, d.account, region)
    for role in role_docs:
        if role.given:
            continue
        d.add("iam role", role.name, lambda apply, role=role: iam_client.upsert_role(
            d.c("iam"), name=role.name, trust=role.trust, policies=role.policies, tags=tags, apply=apply,
            prune=(policies.policy_prefix(d.target),),
            description=f"mlpipe {spec.name}: {role.service}"))

    fns = policies.functions(spec, d.target, d.account, region)
    if fns:
        code = package
        for fn in fns:
            d.add("lambda function", fn.name, lambda apply, fn=fn: lambda_client.upsert_function(
                d.c("lambda"), name=fn.name, zip_bytes=code, handler=fn.handler, role_arn=a.role("lambda"),
                environment=fn.environment, timeout=fn.timeout, memory=fn.memory, tags=tags, apply=apply,
                description=f"mlpipe {spec.name}: {fn.stage}"))

    for group in policies.model_package_groups(spec):
        d.add("model package group", group, lambda apply, group=group: sagemaker_client.upsert_model_package_group(
            d.c("sagemaker"), group, f"Models of the mlpipe pipeline {spec.name}", tags, apply))

    if d.target == "stepfunctions":
        from workflows.build import STATE_MACHINE_FILE

        definition = d.files[STATE_MACHINE_FILE].decode()
        logging = {"level": "ERROR", "includeExecutionData": False,
                   "destinations": [{"cloudWatchLogsLogGroup": {"logGroupArn": a.log_group(log_group) + ":*"}}]}
        d.add("state machine", naming.state_machine_name(spec.name), lambda apply: stepfunctions_client.upsert_state_machine(
            d.c("stepfunctions"), name=naming.state_machine_name(spec.name), arn=a.state_machine(),
            definition=definition, role_arn=a.role("stepfunctions"), logging=logging, tags=tags, apply=apply))
        target_arn = a.state_machine()
    else:
        from workflows.build import PIPELINE_FILE

        definition = d.files[PIPELINE_FILE].decode()
        d.add("sagemaker pipeline", naming.sagemaker_pipeline_name(spec.name), lambda apply: sagemaker_client.upsert_pipeline(
            d.c("sagemaker"), name=naming.sagemaker_pipeline_name(spec.name), definition=definition,
            role_arn=a.role("sagemaker"), description=spec.description, tags=tags, apply=apply))
        target_arn = a.pipeline()

    if spec.schedule is not None:
        name = naming.schedule_name(spec.name, d.target)

        def schedule(apply: bool) -> str:
            return scheduler_client.upsert_schedule(d.c("scheduler"), name, schedule_request(d, target_arn), apply)
        d.add("schedule", name, schedule)

    if spec.trigger_prefix:
        bucket, _, prefix = spec.trigger_prefix[len("s3://"):].partition("/")
        d.add("s3 eventbridge notifications", bucket,
              lambda apply, bucket=bucket: s3_client.enable_eventbridge(d.c("s3"), bucket, apply))
        rule = policies.trigger_rule(spec, d.target)
        pattern = {"source": ["aws.s3"], "detail-type": ["Object Created"],
                   "detail": {"bucket": {"name": [bucket]}, "object": {"key": [{"prefix": prefix}]}}}
        if d.target == "stepfunctions":
            # the execution input is the parameter map; the new object becomes InputData
            target: dict[str, Any] = {
                "Id": "start-pipeline", "Arn": target_arn, "RoleArn": a.role("events"),
                "InputTransformer": {"InputPathsMap": {"bucket": "$.detail.bucket.name", "key": "$.detail.object.key"},
                                     "InputTemplate": '{"InputData": "s3://<bucket>/<key>"}'}}
        else:
            # A rule cannot fill a SageMaker pipeline parameter from the event: it invokes the
            # starter function, which starts the pipeline with InputData = the new object.
            starter = next(f for f in fns if f.starter)
            target = {"Id": "start-pipeline", "Arn": a.function(starter.name)}
            d.add("lambda permission", f"{starter.name}/{rule}", lambda apply, rule=rule, fn=starter:
                  lambda_client.upsert_permission(d.c("lambda"), function=fn.name, statement_id=f"{rule}-invoke",
                                                  principal="events.amazonaws.com", source_arn=a.rule(rule),
                                                  apply=apply))
        d.add("eventbridge rule", rule, lambda apply, rule=rule, pattern=pattern, target=target: events_client.upsert_rule(
            d.c("events"), name=rule, pattern=pattern, targets=[target], tags=tags, apply=apply,
            description=f"mlpipe {spec.name}: start a run when data lands under {spec.trigger_prefix}"))

    if d.target == "stepfunctions":
        pattern = {"source": ["aws.states"], "detail-type": ["Step Functions Execution Status Change"],
                   "detail": {"status": ["FAILED", "TIMED_OUT", "ABORTED"], "stateMachineArn": [target_arn]}}
    else:
        pattern = {"source": ["aws.sagemaker"], "detail-type": ["SageMaker Model Building Pipeline Execution Status Change"],
                   "detail": {"currentPipelineExecutionStatus": ["Failed", "Stopped"], "pipelineArn": [target_arn]}}
    d.add("eventbridge rule", status_rule, lambda apply, pattern=pattern: events_client.upsert_rule(
        d.c("events"), name=status_rule, pattern=pattern, targets=[{"Id": "notify", "Arn": a.topic()}], tags=tags,
        apply=apply, description=f"mlpipe {spec.name}: e-mail when a run fails or is stopped"))

    if d.target == "sagemaker":
        groups = policies.model_package_groups(spec)
        for fn in (f for f in fns if f.deployer):
            rule = policies.approved_rule(spec, fn.stage)
            pattern = {"source": ["aws.sagemaker"], "detail-type": ["SageMaker Model Package State Change"],
                       "detail": {"ModelPackageGroupName": groups, "ModelApprovalStatus": ["Approved"]}}
            d.add("eventbridge rule", rule, lambda apply, rule=rule, fn=fn, pattern=pattern: events_client.upsert_rule(
                d.c("events"), name=rule, pattern=pattern, tags=tags, apply=apply,
                targets=[{"Id": "deploy-endpoint", "Arn": a.function(fn.name)}],
                description=f"mlpipe {spec.name}: deploy an approved model to its endpoint"))
            d.add("lambda permission", f"{fn.name}/{rule}", lambda apply, rule=rule, fn=fn: lambda_client.upsert_permission(
                d.c("lambda"), function=fn.name, statement_id=f"{rule}-invoke", principal="events.amazonaws.com",
                source_arn=a.rule(rule), apply=apply))


def schedule_request(d: Deployment, target_arn: str) -> dict[str, Any]:
    s = d.spec.schedule
    target: dict[str, Any] = {
        "Arn": target_arn, "RoleArn": d.arns.role("scheduler"),
        "RetryPolicy": {"MaximumRetryAttempts": s.maximum_attempts, "MaximumEventAgeInSeconds": s.maximum_event_age_seconds},
    }
    if d.target == "stepfunctions":
        target["Input"] = "{}"          # the declared defaults apply
    else:
        # the templated target for sagemaker:StartPipelineExecution; no parameters -> defaults
        target["SageMakerPipelineParameters"] = {"PipelineParameterList": []}
    if s.dead_letter_queue:
        target["DeadLetterConfig"] = {"Arn": d.queue_arn or d.arns.queue()}
    return {"ScheduleExpression": s.expression, "ScheduleExpressionTimezone": s.timezone,
            "State": "ENABLED" if s.enabled else "DISABLED", "FlexibleTimeWindow": {"Mode": "OFF"},
            "Description": f"mlpipe {d.spec.name}: retrain", "Target": target}


def execute(d: Deployment, apply: bool) -> None:
    for i, step in enumerate(d.steps):
        try:
            with aws_errors(f"deploying {step.resource} {step.name}"):
                step.action = step.run(apply)
        except BaseException as exc:
            step.error = f"{type(exc).__name__}: {exc}".splitlines()[0]
            raise


# --- output --------------------------------------------------------------------------------

def rows(d: Deployment, apply: bool) -> list[dict[str, str]]:
    out = []
    for step in d.steps:
        if step.error is not None:
            action = "failed"
        elif step.action is None:
            action = "not applied"
        else:
            action = step.action if apply else PLAN_WORDS[step.action]
        out.append({"resource": step.resource, "name": step.name, "action": action})
    return out


def print_rows(items: list[dict[str, str]], output: str, stream=None) -> None:
    stream = stream or sys.stdout
    if output == "json":
        print(json.dumps(items, indent=2), file=stream)
        return
    w1 = max([len("RESOURCE")] + [len(r["resource"]) for r in items])
    w2 = max([len("NAME")] + [len(r["name"]) for r in items])
    print(f"{'RESOURCE':<{w1}}  {'NAME':<{w2}}  ACTION", file=stream)
    for r in items:
        print(f"{r['resource']:<{w1}}  {r['name']:<{w2}}  {r['action']}", file=stream)


_RENDERED: dict[tuple[str, str], dict[str, bytes]] = {}


def render_cached(spec: PipelineSpec, target: str) -> dict[str, bytes]:
    """``workflows.build.render`` (seconds: the SDKs build every step), once per spec
    fingerprint (config + code hashes + account) and target in this process. Build output is
    deterministic, so a repeated deploy or export in one process reuses it."""
    import contextlib

    key = (spec.fingerprint, target)
    if key not in _RENDERED:
        with contextlib.redirect_stdout(sys.stderr):  # the sagemaker SDK logs to stdout; keep it for results
            from workflows.build import render

            _RENDERED[key] = render(spec, target)
    return _RENDERED[key]


def prepare(args: argparse.Namespace, clients=None) -> Deployment:
    from config.loader import load_config

    cfg = load_config(args.config)
    aws = from_args(args, cfg.aws.region, clients)
    region = aws.region or aws.region_name
    account = aws.account_id()
    spec = load_for_account(args.config, aws, region, account)
    files = render_cached(spec, args.target)
    return Deployment(spec=spec, target=args.target, aws=aws, account=account, region=region, files=files)


def main(args: argparse.Namespace, clients=None) -> int:
    d = prepare(args, clients)
    plan(d)
    if getattr(args, "assets_only", False):  # for CloudFormation deploys: upload what the template uses
        d.steps = [step for step in d.steps if step.resource in ASSET_RESOURCES]
    apply = not args.dry_run
    try:
        execute(d, apply)
    except UserError as exc:
        print_rows(rows(d, apply), args.output, sys.stderr if args.output == "json" else sys.stdout)
        raise UserError(f"deploy stopped: {exc.message}", source=exc.source, field=exc.field,
                        fix=(exc.fix or "") + " (resources marked 'not applied' were left as they were)") from None
    except Exception as exc:
        print_rows(rows(d, apply), args.output, sys.stderr if args.output == "json" else sys.stdout)
        print(f"error: deploy failed at {next(s for s in d.steps if s.error).resource}: {exc}", file=sys.stderr)
        return 1
    items = rows(d, apply)
    print_rows(items, args.output)
    if args.output != "json":
        changed = sum(r["action"] not in ("unchanged",) for r in items)
        verb = "would change" if not apply else "changed"
        print(f"{d.spec.name} ({d.target}) in {d.account}/{d.region}: {changed} of {len(items)} resources {verb}",
              file=sys.stderr)
    return 0
