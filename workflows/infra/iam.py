"""Least-privilege IAM documents for every role deploy creates (the resource list in
``resources.py`` carries them to deploy and to CloudFormation; `mlpipe iam-policy` prints them).
One generator, so the three never disagree.

Rules: every action is spelled out (no ``service:*``, no ``*``); resources are the pipeline's
own jobs (by name prefix), bucket prefix, SSM parameter, functions, topic, model package group
and endpoint. ``Resource: "*"`` appears only for actions that support no resource-level
permissions (ecr:GetAuthorizationToken, sagemaker:ListEndpoints, sagemaker:ListMonitoringSchedules, the
CloudWatch Logs delivery actions Step Functions logging needs, cloudwatch:PutMetricData with a namespace
condition).

``account``/``region`` may be CloudFormation placeholders (``${AWS::AccountId}``), which is how
the CloudFormation export reuses these documents.

This module is long on purpose: every role's statements side by side, so a grant is compared at a glance.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from steps import fanout, naming
from steps.contract import KINDS
from steps.naming import Arns
from steps.spec import LambdaStage, PipelineSpec

VERSION = "2012-10-17"

# Managed rules Step Functions creates to learn when a .sync SageMaker job ends
# (AWS docs: "IAM policies for calling Amazon SageMaker AI" in the Step Functions guide).
SYNC_RULES = {
    "processing": "StepFunctionsGetEventsForSageMakerProcessingJobsRule",
    "training": "StepFunctionsGetEventsForSageMakerTrainingJobsRule",
    "transform": "StepFunctionsGetEventsForSageMakerTransformJobsRule",
    "tuning": "StepFunctionsGetEventsForSageMakerTuningJobsRule",
}
JOB_ARN_TYPE = {"processing": "processing-job", "training": "training-job", "transform": "transform-job",
                "tuning": "hyper-parameter-tuning-job"}
JOB_KIND = {name: kind.job for name, kind in KINDS.items() if kind.job}   # stage kind -> SageMaker job kind
JOB_ACTIONS = {
    "processing": ["sagemaker:CreateProcessingJob", "sagemaker:DescribeProcessingJob", "sagemaker:StopProcessingJob"],
    "training": ["sagemaker:CreateTrainingJob", "sagemaker:DescribeTrainingJob", "sagemaker:StopTrainingJob"],
    "transform": ["sagemaker:CreateTransformJob", "sagemaker:DescribeTransformJob", "sagemaker:StopTransformJob"],
    "tuning": ["sagemaker:CreateHyperParameterTuningJob", "sagemaker:DescribeHyperParameterTuningJob",
               "sagemaker:StopHyperParameterTuningJob"],
}
SERVICE_PRINCIPAL = {
    "sagemaker": "sagemaker.amazonaws.com", "stepfunctions": "states.amazonaws.com",
    "lambda": "lambda.amazonaws.com", "scheduler": "scheduler.amazonaws.com", "events": "events.amazonaws.com",
}
DEPLOYER_HANDLER = "lambda_handlers.deploy_endpoint.handler"
STARTER_HANDLER = "lambda_handlers.start_pipeline.handler"
SCHEDULER_HANDLER = "lambda_handlers.monitoring_schedule.handler"


@dataclass
class RoleDoc:
    service: str              # sagemaker | stepfunctions | lambda | scheduler | events
    name: str
    arn: str
    trust: dict[str, Any]
    policies: dict[str, dict[str, Any]] = field(default_factory=dict)
    given: bool = False       # the config names an existing role: deploy creates nothing


@dataclass(frozen=True)
class Function:
    """A Lambda function deploy creates: pipeline lambda stages, and (SageMaker target) the
    endpoint deployer of each endpoint stage."""

    stage: str
    name: str
    handler: str
    environment: dict[str, str]
    timeout: int
    memory: int
    deployer: bool = False    # SageMaker target: deploys a package approved after its run (EventBridge)
    starter: bool = False     # starts the SageMaker pipeline for new data (the S3 trigger)
    scheduler: bool = False   # SageMaker target: attaches an endpoint's monitoring schedule (a pipeline step)


def model_package_groups(spec: PipelineSpec) -> list[str]:
    """The pipeline's groups: one per fan-out item where configured (``steps.fanout``)."""
    return fanout.package_groups(spec) or [naming.model_package_group(spec.name)]


def endpoint_stages(spec: PipelineSpec) -> list:
    return [s for s in spec.stages if s.kind == "endpoint"]


def monitored_endpoints(spec: PipelineSpec) -> list:
    """Endpoint stages with a data-quality monitoring schedule."""
    return [s for s in endpoint_stages(spec) if s.monitoring_schedule]


def monitoring_schedules(spec: PipelineSpec, a: Arns) -> list[str]:
    return [a.monitoring_schedule(naming.monitoring_schedule_name(spec.name, s.name))
            for s in monitored_endpoints(spec)]


def functions(spec: PipelineSpec, target: str, account: str, region: str) -> list[Function]:
    out = [Function(s.name, s.function_name, s.handler, dict(s.environment), s.timeout_seconds, s.memory_mb)
           for s in spec.stages if isinstance(s, LambdaStage)]
    if target == "sagemaker":
        arns = Arns.of(spec, account, region)
        for s in endpoint_stages(spec):
            out.append(Function(s.name, naming.deployer_function_name(spec.name, s.name), DEPLOYER_HANDLER, {
                "ENDPOINT_NAME": s.endpoint_name, "INSTANCE_TYPE": s.instance.type,
                "INSTANCE_COUNT": str(s.instance.count if isinstance(s.instance.count, int) else 1),
                "DATA_CAPTURE_PERCENTAGE": str(s.sampling_percentage if s.data_capture else 0),
                "DATA_CAPTURE_URI": f"{spec.s3_root}/data-capture/{s.endpoint_name}",
                "SAGEMAKER_ROLE_ARN": arns.role("sagemaker"),
            }, 300, 256, deployer=True))
        for s in monitored_endpoints(spec):  # Pipelines has no step that creates a monitoring schedule
            out.append(Function(f"{s.name}-monitoring", naming.scheduler_function_name(spec.name, s.name),
                                SCHEDULER_HANDLER, {}, 60, 128, scheduler=True))
        if spec.trigger_prefix:  # EventBridge cannot fill a pipeline parameter from the event
            out.append(Function("trigger", naming.starter_function_name(spec.name), STARTER_HANDLER, {
                "PIPELINE_NAME": naming.sagemaker_pipeline_name(spec.name), "INPUT_PARAMETER": "InputData",
            }, 30, 128, starter=True))
    return out


def _stmt(sid: str, actions: list[str], resources: list[str] | str, condition: dict | None = None) -> dict[str, Any]:
    st: dict[str, Any] = {"Sid": sid, "Effect": "Allow", "Action": sorted(set(actions)),
                          "Resource": sorted(set(resources)) if isinstance(resources, list) else resources}
    if condition:
        st["Condition"] = condition
    return st


def _doc(*statements: dict[str, Any]) -> dict[str, Any]:
    return {"Version": VERSION, "Statement": [s for s in statements if s]}


def _pass_role(sid: str, sagemaker_role: str) -> dict[str, Any]:
    return _stmt(sid, ["iam:PassRole"], [sagemaker_role],
                 {"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}})


def trust(service: str, account: str) -> dict[str, Any]:
    st: dict[str, Any] = {"Effect": "Allow", "Principal": {"Service": SERVICE_PRINCIPAL[service]},
                          "Action": "sts:AssumeRole"}
    if service in ("stepfunctions", "scheduler", "events"):
        # confused-deputy protection: only this account's resources may assume the role
        st["Condition"] = {"StringEquals": {"aws:SourceAccount": account}}
    return {"Version": VERSION, "Statement": [st]}


def _job_prefixes(spec: PipelineSpec) -> dict[str, list[str]]:
    """Job kind -> job name prefixes of the Step Functions target (``<prefix>-<hash>-<retry>``)."""
    out: dict[str, list[str]] = {}
    for s in spec.stages:
        if s.kind in JOB_KIND:
            prefix = naming.tuning_job_prefix(spec.name, s.name) if s.kind == "tuning" else \
                fanout.job_prefix(spec, s.name)   # a fan-out member's is shorter: its item's key follows
            out.setdefault(JOB_KIND[s.kind], []).append(prefix)
    return out


def _sagemaker_execution(spec: PipelineSpec, a: Arns) -> dict[str, Any]:
    """What the jobs' containers need: data under the pipeline's prefix, images, logs."""
    st = [
        _stmt("ReadWritePipelineData", ["s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload"], [a.objects()]),
        # s3:prefix is a condition key of ListBucket only: a request that lacks the key never
        # matches StringLike, so GetBucketLocation under that condition would always be denied.
        _stmt("ListPipelinePrefix", ["s3:ListBucket"], [a.bucket()],
              {"StringLike": {"s3:prefix": [f"{spec.prefix}/*", spec.prefix]}} if spec.prefix else None),
        _stmt("LocateBucket", ["s3:GetBucketLocation"], [a.bucket()]),
        _stmt("PullAlgorithmImages", ["ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage",
                                      "ecr:GetDownloadUrlForLayer"],
              # SageMaker's algorithm and framework images live in AWS-owned accounts that vary by region
              [a.ecr_repositories()]),
        _stmt("EcrLogin", ["ecr:GetAuthorizationToken"], "*"),
        _stmt("JobLogs", ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:DescribeLogStreams",
                          "logs:PutLogEvents"], [a.log_group("/aws/sagemaker/*")]),
        _stmt("JobMetrics", ["cloudwatch:PutMetricData"], "*",
              {"StringLike": {"cloudwatch:namespace": ["/aws/sagemaker/*", "aws/sagemaker/*"]}}),
    ]
    return _doc(*st)


def _sagemaker_pipelines(spec: PipelineSpec, a: Arns, fns: list[Function]) -> dict[str, Any]:
    """What SageMaker Pipelines needs to run the pipeline with this role."""
    st: list[dict[str, Any]] = []
    # SageMaker Pipelines names what it creates `pipelines-<execution id>-<step>-<suffix>`; the
    # execution id is random and the pipeline's name is not part of it, so `pipelines-*` is the
    # tightest name scope IAM can express. The actions are still listed one by one, the model
    # package group is the pipeline's own, and PassRole is limited to this very role.
    # Tuning jobs (at most 32 characters) get a generated name with no `pipelines-` head, so
    # they are scoped by their ARN type in this account and region.
    jobs = {k: [a.sm(JOB_ARN_TYPE[k], "*" if k == "tuning" else "pipelines-*")]
            for k in {JOB_KIND[s.kind] for s in spec.stages if s.kind in JOB_KIND}}
    for kind, resources in sorted(jobs.items()):
        st.append(_stmt(f"Pipeline{kind.title()}Jobs", JOB_ACTIONS[kind] + ["sagemaker:AddTags"], resources))
    st.append(_stmt("PipelineModels", ["sagemaker:CreateModel", "sagemaker:DescribeModel", "sagemaker:AddTags"],
                    [a.sm("model", "pipelines-*")]))
    groups = model_package_groups(spec)
    st.append(_stmt("RegisterModels", ["sagemaker:CreateModelPackage", "sagemaker:DescribeModelPackage",
                                       "sagemaker:AddTags"],
                    [a.sm("model-package", f"{g}/*") for g in groups] + [a.sm("model-package-group", g)
                                                                          for g in groups]))
    endpoints = endpoint_stages(spec)
    if endpoints:  # the native EndpointConfig and Endpoint steps (create, or update in place)
        configs = [a.sm("endpoint-config", naming.endpoint_config_prefix(spec.name, s.name) + "-*") for s in endpoints]
        st.append(_stmt("PipelineEndpointConfigs", ["sagemaker:CreateEndpointConfig",
                                                    "sagemaker:DescribeEndpointConfig", "sagemaker:AddTags"], configs))
        st.append(_stmt("PipelineEndpoints", ["sagemaker:CreateEndpoint", "sagemaker:UpdateEndpoint",
                                              "sagemaker:DescribeEndpoint", "sagemaker:AddTags"],
                        [a.sm("endpoint", s.endpoint_name) for s in endpoints] + configs))
    st.append(_stmt("ListTagsOfOwnResources", ["sagemaker:ListTags"],
                    [r for rs in jobs.values() for r in rs] + [a.sm("model", "pipelines-*")]))
    stage_fns = [f for f in fns if not f.deployer and not f.starter]  # the deployer runs on approval events
    if stage_fns:
        st.append(_stmt("InvokePipelineFunctions", ["lambda:InvokeFunction"],
                        [a.function(f.name) for f in stage_fns]))
    st.append(_pass_role("PassThisRoleToSageMakerJobs", a.role("sagemaker")))
    return _doc(*st)


def _stepfunctions(spec: PipelineSpec, a: Arns, fns: list[Function]) -> dict[str, Any]:
    st = []
    prefixes = _job_prefixes(spec)
    for kind in sorted(prefixes):
        resources = [a.sm(JOB_ARN_TYPE[kind], f"{p}-*") for p in prefixes[kind]]
        st.append(_stmt(f"{kind.title()}Jobs", JOB_ACTIONS[kind] + ["sagemaker:AddTags", "sagemaker:ListTags"],
                        resources))
        # .sync integrations: Step Functions manages one EventBridge rule per job type
        st.append(_stmt(f"{kind.title()}JobCompletionRule", ["events:DescribeRule", "events:PutRule",
                                                             "events:PutTargets"], [a.rule(SYNC_RULES[kind])]))
    models = [fanout.job_prefix(spec, s.name) for s in spec.stages if s.kind == "model"]
    if models:
        st.append(_stmt("CreateModels", ["sagemaker:CreateModel", "sagemaker:AddTags"],
                        [a.sm("model", f"{m}-*") for m in models]))
    endpoints = endpoint_stages(spec)
    if endpoints:
        configs = [a.sm("endpoint-config", naming.endpoint_config_prefix(spec.name, s.name) + "-*") for s in endpoints]
        names = [a.sm("endpoint", s.endpoint_name) for s in endpoints]
        st.append(_stmt("EndpointConfigs", ["sagemaker:CreateEndpointConfig", "sagemaker:AddTags"], configs))
        st.append(_stmt("Endpoints", ["sagemaker:CreateEndpoint", "sagemaker:UpdateEndpoint",
                                      "sagemaker:DescribeEndpoint", "sagemaker:AddTags"], names + configs))
        st.append(_stmt("FindEndpoint", ["sagemaker:ListEndpoints"], "*"))  # no resource-level support
    groups = fanout.package_groups(spec)
    if groups:
        st.append(_stmt("RegisterModels", ["sagemaker:CreateModelPackage", "sagemaker:AddTags"],
                        [a.sm("model-package", f"{g}/*") for g in groups]
                        + [a.sm("model-package-group", g) for g in groups]))
    if any(s.kind == "gate" for s in spec.stages):
        st.append(_stmt("ReadEvaluationReports", ["s3:GetObject"], [a.objects("runs")]))
    if fns:
        st.append(_stmt("InvokePipelineFunctions", ["lambda:InvokeFunction"],
                        sorted({a.function(f.name) for f in fns} | {a.function(f.name) + ":*" for f in fns})))
    if spec.fanout and spec.fanout.distributed:
        st += _distributed_map(spec, a)
    if any(s.kind == "approval" for s in spec.stages):
        st.append(_stmt("AskForApproval", ["sns:Publish"], [a.topic()]))
    if monitored_endpoints(spec):  # create or update each endpoint's data-quality schedule
        st += _monitoring_schedules(spec, a, ["sagemaker:CreateMonitoringSchedule",
                                              "sagemaker:UpdateMonitoringSchedule", "sagemaker:AddTags"])
    st.append(_pass_role("PassSageMakerRole", a.role("sagemaker")))
    # Logging to CloudWatch Logs (vended logs): AWS documents these with Resource "*" only.
    st.append(_stmt("ExecutionLogDelivery", [
        "logs:CreateLogDelivery", "logs:DeleteLogDelivery", "logs:DescribeLogGroups", "logs:DescribeResourcePolicies",
        "logs:GetLogDelivery", "logs:ListLogDeliveries", "logs:PutResourcePolicy", "logs:UpdateLogDelivery"], "*"))
    return _doc(*st)


def _distributed_map(spec: PipelineSpec, a: Arns) -> list[dict[str, Any]]:
    """A Distributed Map runs its items as child executions of this very state machine (its
    versions and alias included), and reads its items from S3 (the ItemReader)."""
    executions = a.execution("x").rsplit(":", 1)[0] + "/*"   # execution:<state machine>/<map run>:<child>
    st = [_stmt("RunMapItems", ["states:StartExecution"], [a.state_machine(), a.state_machine() + ":*"]),
          _stmt("FollowMapItems", ["states:DescribeExecution", "states:StopExecution"], [executions])]
    fan = spec.fanout
    if fan.source == "s3_listing":
        bucket, _, prefix = fan.s3_listing[5:].partition("/")
        st.append(_stmt("ListMapItems", ["s3:ListBucket"], [a.bucket(bucket)],
                        {"StringLike": {"s3:prefix": [prefix + "*"]}} if prefix else None))
    elif fan.items_stage:   # items.json, written by the items job under the run's folder
        st.append(_stmt("ReadMapItems", ["s3:GetObject"], [a.objects("runs")]))
    return st


def _lambda_functions(a: Arns, fns: list[Function]) -> dict[str, Any]:
    """The pipeline's own lambda stages: their logs and the SSM parameter they record."""
    st = [_stmt("FunctionLogs", ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
                [a.function_logs(f.name) for f in fns])]
    params = sorted({f.environment["PARAMETER_NAME"] for f in fns if f.environment.get("PARAMETER_NAME")})
    if params:
        st.append(_stmt("RecordModelName", ["ssm:GetParameter", "ssm:PutParameter"],
                        [a.ssm_parameter(p) for p in params]))
    return _doc(*st)


def _endpoint_deployer(spec: PipelineSpec, a: Arns, deployers: list[Function]) -> dict[str, Any]:
    """The SageMaker target's endpoint deployer, run by the model-approved rule for a package
    approved after its run (in a run, the native EndpointConfig and Endpoint steps deploy)."""
    groups = model_package_groups(spec)
    endpoint_names = [f.environment["ENDPOINT_NAME"] for f in deployers]
    # models come from the pipeline (`pipelines-*`) or from an approved package (`<group>-v<N>`)
    models = [a.sm("model", "pipelines-*")] + [a.sm("model", f"{g}-v*") for g in groups]
    configs = [a.sm("endpoint-config", "pipelines-*")] + [a.sm("endpoint-config", f"{g}-v*") for g in groups]
    return _doc(
        _stmt("DeployerLogs", ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
              [a.function_logs(f.name) for f in deployers]),
        _stmt("ReadApprovedPackages", ["sagemaker:DescribeModelPackage"],
              [a.sm("model-package", f"{g}/*") for g in groups]),
        _stmt("ModelsFromPackages", ["sagemaker:CreateModel", "sagemaker:DescribeModel"], models),
        _stmt("EndpointConfigs", ["sagemaker:CreateEndpointConfig", "sagemaker:DescribeEndpointConfig"], configs),
        _stmt("Endpoints", ["sagemaker:CreateEndpoint", "sagemaker:DescribeEndpoint", "sagemaker:UpdateEndpoint"],
              [a.sm("endpoint", n) for n in endpoint_names] + configs),
        _pass_role("PassSageMakerRoleToModels", a.role("sagemaker")),
    )


def _monitoring_schedules(spec: PipelineSpec, a: Arns, actions: list[str]) -> list[dict[str, Any]]:
    """The pipeline's own monitoring schedules; listing them supports no resource-level permission."""
    return [_stmt("MonitoringSchedules", actions, monitoring_schedules(spec, a)),
            _stmt("FindMonitoringSchedules", ["sagemaker:ListMonitoringSchedules"], "*")]


def _schedulers(spec: PipelineSpec, a: Arns, schedulers: list[Function]) -> dict[str, Any]:
    """The SageMaker target's monitoring-schedule function (lambda_handlers/monitoring_schedule.py)."""
    return _doc(
        _stmt("SchedulerLogs", ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
              [a.function_logs(f.name) for f in schedulers]),
        _stmt("MonitoringSchedules", ["sagemaker:CreateMonitoringSchedule", "sagemaker:DescribeMonitoringSchedule",
                                      "sagemaker:UpdateMonitoringSchedule", "sagemaker:AddTags"],
              monitoring_schedules(spec, a)),
        _pass_role("PassSageMakerRoleToMonitoringJobs", a.role("sagemaker")),
    )


def _starter(sid: str, a: Arns, target: str, dlq: bool) -> dict[str, Any]:
    # Step Functions: runs start through the `live` alias. Step Functions authorizes a qualified
    # ARN against the state machine's own ARN, so both are listed (and nothing broader).
    st = [_stmt(sid, ["states:StartExecution"], [a.state_machine(), a.state_machine_alias()])
          if target == "stepfunctions" else _stmt(sid, ["sagemaker:StartPipelineExecution"], [a.pipeline_arn()])]
    if dlq:
        st.append(_stmt("DeadLetterQueue", ["sqs:SendMessage"], [a.queue()]))
    return _doc(*st)


def roles(spec: PipelineSpec, target: str, account: str | None = None, region: str | None = None) -> list[RoleDoc]:
    """Every role a target's deployment uses, in creation order, with trust and inline policies.

    Roles are shared by both targets (the renderers name them per service), so each inline
    policy is either common (``mlpipe-<purpose>``) or belongs to one target
    (``mlpipe-<target>-<purpose>``): deploying one target never removes the other's.
    """
    account = account or spec.account_id
    region = region or spec.region
    a = Arns.of(spec, account, region)
    fns = functions(spec, target, account, region)

    def own(purpose: str) -> str:   # a policy only this target uses
        return naming.policy_name(purpose, target)

    sagemaker = {naming.policy_name("job-execution"): _sagemaker_execution(spec, a)}
    if target == "sagemaker":
        sagemaker[own("pipelines")] = _sagemaker_pipelines(spec, a, fns)
    docs: list[tuple[str, dict[str, dict[str, Any]]]] = [("sagemaker", sagemaker)]
    if target == "stepfunctions":
        docs.append(("stepfunctions", {own("run-pipeline"): _stepfunctions(spec, a, fns)}))
    lambdas: dict[str, dict[str, Any]] = {}
    stage_fns = [f for f in fns if not f.deployer and not f.starter and not f.scheduler]
    if stage_fns:
        lambdas[naming.policy_name("functions")] = _lambda_functions(a, stage_fns)
    if any(f.deployer for f in fns):
        lambdas[own("endpoint-deployer")] = _endpoint_deployer(spec, a, [f for f in fns if f.deployer])
    if any(f.scheduler for f in fns):
        lambdas[own("monitoring-scheduler")] = _schedulers(spec, a, [f for f in fns if f.scheduler])
    starters = [f for f in fns if f.starter]
    if starters:
        lambdas[own("trigger-starter")] = _doc(
            _stmt("StarterLogs", ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
                  [a.function_logs(f.name) for f in starters]),
            _stmt("StartOnNewData", ["sagemaker:StartPipelineExecution"], [a.pipeline_arn()]))
    if lambdas:
        docs.append(("lambda", lambdas))
    if spec.schedule is not None:
        docs.append(("scheduler", {own("start"): _starter("StartOnSchedule", a, target,
                                                          spec.schedule.dead_letter_queue)}))
    if spec.trigger_prefix and target == "stepfunctions":  # SageMaker: the rule invokes the starter function
        docs.append(("events", {own("start"): _starter("StartOnNewData", a, target, False)}))
    out = []
    for service, pols in docs:
        given = bool(spec.roles.get("lambda_" if service == "lambda" else service))
        out.append(RoleDoc(service=service, name=naming.role_name(spec.name, service), arn=a.role(service),
                           trust=trust(service, account), policies=pols, given=given))
    return out


def topic_policy(spec: PipelineSpec, account: str, region: str) -> dict[str, Any]:
    """Let this account manage the topic and the pipeline's status rules (either target) publish."""
    a = Arns.of(spec, account, region)
    rule_arns = [a.rule(naming.status_rule_name(spec.name, t)) for t in ("sagemaker", "stepfunctions")]
    if monitored_endpoints(spec):  # the rules that report monitoring violations publish too
        rule_arns += [a.rule(naming.violations_rule_name(spec.name, t)) for t in ("sagemaker", "stepfunctions")]
    return _doc(
        {"Sid": "AccountOwner", "Effect": "Allow", "Principal": {"AWS": a.root()},
         "Action": ["sns:GetTopicAttributes", "sns:ListSubscriptionsByTopic", "sns:Publish",
                    "sns:SetTopicAttributes", "sns:Subscribe"], "Resource": a.topic()},
        {"Sid": "StatusRule", "Effect": "Allow", "Principal": {"Service": "events.amazonaws.com"},
         "Action": "sns:Publish", "Resource": a.topic(),
         "Condition": {"ArnEquals": {"aws:SourceArn": sorted(rule_arns)}}},
    )


def wildcard_actions(doc: dict[str, Any]) -> list[str]:
    """Actions with a wildcard (what the tests and iam-policy forbid)."""
    bad = []
    for st in doc.get("Statement", []):
        actions = st.get("Action", [])
        for action in [actions] if isinstance(actions, str) else actions:
            if "*" in action or "?" in action:
                bad.append(action)
    return bad
