"""Every AWS resource name and ARN mlpipe uses, derived from the pipeline name, made safe for
each service's limits and partition-aware (aws, aws-cn, aws-us-gov).

Names are deterministic, so deploy can find what it created before (upsert, not duplicate).
"""

from __future__ import annotations

import hashlib
import re

_UNSAFE = re.compile(r"[^A-Za-z0-9-]+")


def safe_name(*parts: str, limit: int) -> str:
    """Join parts with '-', keep [A-Za-z0-9-] only; if too long, cut and add a short hash."""
    raw = "-".join(p for p in parts if p)
    name = _UNSAFE.sub("-", raw).strip("-")
    if len(name) <= limit:
        return name
    digest = hashlib.sha256(raw.encode()).hexdigest()[:6]
    return f"{name[: limit - 7].rstrip('-')}-{digest}"


_JOB_PREFIX = 26   # <prefix>-<32-char hash>-<2 digits> fits SageMaker's 63


def job_prefix(pipeline: str, stage: str) -> str:
    """Static head of a SageMaker job name; the state machine appends a 32-char execution hash
    and the attempt number, and SageMaker allows 63 characters in all."""
    return safe_name(pipeline, stage, limit=_JOB_PREFIX)


def member_job_prefix(pipeline: str, stage: str, key_length: int) -> str:
    """A fan-out member's job prefix: its names carry the item's key (at most ``key_length``
    characters) and a dash after the head, so the head is shorter by that much."""
    return safe_name(pipeline, stage, limit=_JOB_PREFIX - 1 - key_length)


def endpoint_config_prefix(pipeline: str, stage: str) -> str:
    """Static head of an endpoint stage's endpoint config, made once per run."""
    return job_prefix(pipeline, f"{stage}-cfg")


def model_name(pipeline: str, stage: str) -> str:
    """The SageMaker target's model for a model stage (the Step Functions target names one per
    run: ``job_prefix`` and the execution's hash)."""
    return safe_name(pipeline, stage, limit=63)


def state_machine_name(pipeline: str) -> str:
    return safe_name("mlpipe", pipeline, limit=80)


def sagemaker_pipeline_name(pipeline: str) -> str:
    return safe_name("mlpipe", pipeline, limit=256)


def function_name(pipeline: str, stage: str) -> str:
    return safe_name("mlpipe", pipeline, stage, limit=64)


def role_name(pipeline: str, service: str) -> str:
    return safe_name("mlpipe", pipeline, service, limit=64)


def topic_name(pipeline: str) -> str:
    return safe_name("mlpipe", pipeline, "notifications", limit=256)


def schedule_name(pipeline: str, target: str) -> str:
    return safe_name("mlpipe", pipeline, target, "retrain", limit=64)


def rule_name(pipeline: str, purpose: str) -> str:
    return safe_name("mlpipe", pipeline, purpose, limit=64)


def model_package_group(pipeline: str) -> str:
    return safe_name("mlpipe", pipeline, limit=63)


def item_package_group(group: str, key: str) -> str:
    """A fan-out item's own model package group: the register stage's group and the item's key."""
    return safe_name(group, key, limit=63)


def endpoint_name(pipeline: str) -> str:
    return safe_name("mlpipe", pipeline, limit=63)


def log_group_name(pipeline: str) -> str:
    return f"/aws/vendedlogs/states/{safe_name('mlpipe', pipeline, limit=200)}"


def function_log_group(function: str) -> str:
    """Where Lambda writes a function's logs."""
    return f"/aws/lambda/{function}"


def queue_name(pipeline: str) -> str:
    return safe_name("mlpipe", pipeline, "schedule-dlq", limit=80)


def name_prefix(pipeline: str) -> str:
    """The head every ``mlpipe-<pipeline>-...`` name starts with (what a redeploy prunes)."""
    return safe_name("mlpipe", pipeline, limit=10_000) + "-"


def policy_prefix(target: str) -> str:
    """Inline policies only one target needs start with this; deploy of that target prunes them."""
    return f"mlpipe-{target}-"


def policy_name(purpose: str, target: str | None = None) -> str:
    """An inline policy on a role: ``mlpipe-<purpose>`` when both targets use it, else
    ``mlpipe-<target>-<purpose>`` (``policy_prefix``), so deploying one target never removes the
    other's."""
    return f"{policy_prefix(target)}{purpose}" if target else f"mlpipe-{purpose}"


def deployer_function_name(pipeline: str, stage: str) -> str:
    """The SageMaker target's endpoint deployer for an endpoint stage."""
    return function_name(pipeline, stage)


def starter_function_name(pipeline: str) -> str:
    """The SageMaker target's S3-trigger starter (a rule cannot fill a pipeline parameter)."""
    return function_name(pipeline, "trigger")


def status_rule_name(pipeline: str, target: str) -> str:
    return rule_name(pipeline, f"{target}-status")


def trigger_rule_name(pipeline: str, target: str) -> str:
    return rule_name(pipeline, f"{target}-new-data")


def approved_rule_name(pipeline: str, stage: str) -> str:
    return rule_name(pipeline, f"{stage}-approved")


def monitoring_schedule_name(pipeline: str, stage: str) -> str:
    """An endpoint stage's data-quality monitoring schedule (one per endpoint, kept across runs)."""
    return safe_name("mlpipe", pipeline, stage, "data-quality", limit=63)


def violations_rule_name(pipeline: str, target: str) -> str:
    """The rule that notifies the topic when a monitoring execution finds violations."""
    return rule_name(pipeline, f"{target}-monitoring")


def scheduler_function_name(pipeline: str, stage: str) -> str:
    """The SageMaker target's function that attaches an endpoint stage's monitoring schedule."""
    return function_name(pipeline, f"{stage}-monitoring")


def orchestrator_name(pipeline: str, target: str) -> str:
    """The state machine or the SageMaker pipeline."""
    return state_machine_name(pipeline) if target == "stepfunctions" else sagemaker_pipeline_name(pipeline)


# The state machine alias every run goes through (schedule, S3 trigger, `mlpipe start`); deploy
# points it at the version it published, `mlpipe rollback` at an earlier one.
LIVE_ALIAS = "live"


# --- ARNs -------------------------------------------------------------------------------------

_PARTITION_BY_REGION_PREFIX = {"cn-": "aws-cn", "us-gov-": "aws-us-gov"}


def partition(region: str) -> str:
    """``aws``, ``aws-cn`` or ``aws-us-gov``: the first field of every ARN in that region."""
    return next((p for prefix, p in _PARTITION_BY_REGION_PREFIX.items() if region.startswith(prefix)), "aws")


class Arns:
    """Every ARN mlpipe builds, for one pipeline in one account and region.

    ``account``/``region`` may be CloudFormation placeholders (``${AWS::AccountId}``); the
    partition always follows the real region (``region_hint``), since a placeholder has none.
    """

    def __init__(self, pipeline: str, account: str, region: str, *, bucket: str = "", prefix: str = "",
                 roles: dict[str, str | None] | None = None, region_hint: str | None = None) -> None:
        self.pipeline, self.account, self.region = pipeline, account, region
        self.bucket_name, self.prefix, self.roles = bucket, prefix, dict(roles or {})
        self.p = partition(region_hint or region)

    @classmethod
    def of(cls, spec, account: str | None = None, region: str | None = None) -> "Arns":
        return cls(spec.name, account or spec.account_id, region or spec.region, bucket=spec.bucket,
                   prefix=spec.prefix, roles=dict(spec.roles), region_hint=spec.region)

    def sm(self, kind: str, name: str) -> str:
        return f"arn:{self.p}:sagemaker:{self.region}:{self.account}:{kind}/{name.lower()}"

    def role(self, service: str) -> str:
        """The configured role for a service, or the one deploy creates."""
        given = self.roles.get("lambda_" if service == "lambda" else service)
        return given or f"arn:{self.p}:iam::{self.account}:role/{role_name(self.pipeline, service)}"

    def function(self, name: str) -> str:
        return f"arn:{self.p}:lambda:{self.region}:{self.account}:function:{name}"

    def function_logs(self, name: str) -> str:
        """A function's log group and its streams (what its role writes to)."""
        return self.log_group(function_log_group(name)) + ":*"

    def topic(self) -> str:
        return f"arn:{self.p}:sns:{self.region}:{self.account}:{topic_name(self.pipeline)}"

    def queue(self) -> str:
        return f"arn:{self.p}:sqs:{self.region}:{self.account}:{queue_name(self.pipeline)}"

    def state_machine(self) -> str:
        return f"arn:{self.p}:states:{self.region}:{self.account}:stateMachine:{state_machine_name(self.pipeline)}"

    def state_machine_alias(self, alias: str = LIVE_ALIAS) -> str:
        """A qualified state machine ARN: ``<state machine ARN>:<alias>``."""
        return f"{self.state_machine()}:{alias}"

    def entry(self, target: str) -> str:
        """What starts a run: the ``live`` alias of the state machine, or the SageMaker pipeline."""
        return self.state_machine_alias() if target == "stepfunctions" else self.pipeline_arn()

    def execution(self, name: str) -> str:
        return (f"arn:{self.p}:states:{self.region}:{self.account}:execution:"
                f"{state_machine_name(self.pipeline)}:{name}")

    def pipeline_arn(self) -> str:
        return self.sm("pipeline", sagemaker_pipeline_name(self.pipeline))

    def orchestrator(self, target: str) -> str:
        return self.state_machine() if target == "stepfunctions" else self.pipeline_arn()

    def rule(self, name: str) -> str:
        return f"arn:{self.p}:events:{self.region}:{self.account}:rule/{name}"

    def log_group(self, name: str) -> str:
        return f"arn:{self.p}:logs:{self.region}:{self.account}:log-group:{name}"

    def bucket(self, name: str = "") -> str:
        """The pipeline's bucket, or the bucket ``name`` (e.g. the one a fan-out lists)."""
        return f"arn:{self.p}:s3:::{name or self.bucket_name}"

    def objects(self, *sub: str) -> str:
        path = "/".join(p for p in (self.prefix, *sub) if p)
        return f"arn:{self.p}:s3:::{self.bucket_name}/{path + '/' if path else ''}*"

    def monitoring_schedule(self, name: str) -> str:
        return self.sm("monitoring-schedule", name)

    def ssm_parameter(self, name: str) -> str:
        return f"arn:{self.p}:ssm:{self.region}:{self.account}:parameter/{name.lstrip('/')}"

    def root(self) -> str:
        return f"arn:{self.p}:iam::{self.account}:root"

    def ecr_repositories(self) -> str:
        """Every ECR repository in the region, any account: SageMaker's algorithm and framework
        images live in AWS-owned accounts that vary by region."""
        return f"arn:{self.p}:ecr:{self.region}:*:repository/*"

    def integration(self, service: str, api: str) -> str:
        """A Step Functions optimized integration (``sns``, ``publish.waitForTaskToken``)."""
        return f"arn:{self.p}:states:::{service}:{api}"

    def sdk_integration(self, service: str, api: str) -> str:
        """A Step Functions AWS SDK integration (``s3``, ``getObject``)."""
        return self.integration(f"aws-sdk:{service}", api)


def tuning_job_prefix(pipeline: str, stage: str) -> str:
    """Static head of a tuning job name: SageMaker allows 32 characters, and the state machine
    appends '-' and 8 random hex digits."""
    return safe_name(pipeline, stage, limit=23)
