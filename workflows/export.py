"""``mlpipe export cloudformation``: the Step Functions deployment as one CloudFormation template.

Same documents as ``mlpipe deploy``: the rendered state machine, the roles with the policies
from ``workflows.policies`` (generated with ``${AWS::AccountId}``/``${AWS::Region}`` so the
template is portable across accounts), the Lambda functions (code from an S3 bucket/key
parameter: deploy or CI uploads the zip), the topic, log group, model package group, the
schedule and its dead-letter queue, the S3 trigger and the status rule. JSON or YAML by the
output file's suffix; written atomically.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

from config.errors import UserError
from steps import naming
from workflows import policies
from workflows.files import write_bytes

ACCOUNT = "${AWS::AccountId}"
REGION = "${AWS::Region}"
LOG_RETENTION_DAYS = 90


def _logical(*parts: str) -> str:
    return "".join(p[:1].upper() + p[1:] for p in re.split(r"[^A-Za-z0-9]+", "-".join(parts)) if p)


def _sub(node: Any) -> Any:
    """Strings with ${AWS::...} become Fn::Sub."""
    if isinstance(node, dict):
        return {k: _sub(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_sub(v) for v in node]
    if isinstance(node, str) and "${AWS::" in node:
        return {"Fn::Sub": node}
    return node


def _definition(asl_text: str, account: str) -> dict[str, Any]:
    """The state machine definition with the config's account id replaced in ARNs."""
    text = json.dumps(json.loads(asl_text), indent=2, sort_keys=True)
    text = text.replace("${", "${!")                     # literal ${ in the ASL stays literal
    if account and re.fullmatch(r"\d{12}", account):
        text = text.replace(f":{account}:", ":${AWS::AccountId}:")
    return {"Fn::Sub": text} if "${AWS::" in text else text  # type: ignore[return-value]


def template(spec, asl_text: str, lambda_key: str) -> dict[str, Any]:
    target = "stepfunctions"
    a = policies.Arns(spec, ACCOUNT, REGION)
    res: dict[str, Any] = {}
    tags = [{"Key": "mlpipe:pipeline", "Value": spec.name}] + [{"Key": k, "Value": v}
                                                               for k, v in sorted(spec.tags.items())]
    roles = policies.roles(spec, target, ACCOUNT, REGION)
    role_ids: dict[str, str] = {}
    for role in roles:
        if role.given:
            continue
        lid = _logical(role.service, "role")
        role_ids[role.service] = lid
        res[lid] = {"Type": "AWS::IAM::Role", "Properties": {
            "RoleName": role.name, "Description": f"mlpipe {spec.name}: {role.service}",
            "AssumeRolePolicyDocument": _sub(role.trust),
            "Policies": [{"PolicyName": n, "PolicyDocument": _sub(d)} for n, d in role.policies.items()],
            "Tags": tags}}

    def role_ref(service: str) -> Any:
        if service in role_ids:
            return {"Fn::GetAtt": [role_ids[service], "Arn"]}
        return _sub(a.role(service))

    log_group = naming.log_group_name(spec.name)
    res["LogGroup"] = {"Type": "AWS::Logs::LogGroup", "Properties": {
        "LogGroupName": log_group, "RetentionInDays": LOG_RETENTION_DAYS}}
    topic_props: dict[str, Any] = {"TopicName": naming.topic_name(spec.name), "Tags": tags}
    if spec.emails:
        topic_props["Subscription"] = [{"Endpoint": e, "Protocol": "email"} for e in spec.emails]
    res["Topic"] = {"Type": "AWS::SNS::Topic", "Properties": topic_props}
    res["TopicPolicy"] = {"Type": "AWS::SNS::TopicPolicy", "Properties": {
        "Topics": [{"Ref": "Topic"}], "PolicyDocument": _sub(policies.topic_policy(spec, ACCOUNT, REGION))}}

    for group in policies.model_package_groups(spec):
        res[_logical(group, "group")] = {"Type": "AWS::SageMaker::ModelPackageGroup", "Properties": {
            "ModelPackageGroupName": group,
            "ModelPackageGroupDescription": f"Models of the mlpipe pipeline {spec.name}", "Tags": tags}}

    for fn in policies.functions(spec, target, ACCOUNT, REGION):
        props: dict[str, Any] = {
            "FunctionName": fn.name, "Runtime": "python3.11", "Handler": fn.handler, "Role": role_ref("lambda"),
            "Code": {"S3Bucket": {"Ref": "LambdaCodeBucket"}, "S3Key": {"Ref": "LambdaCodeKey"}},
            "Timeout": fn.timeout, "MemorySize": fn.memory, "Description": f"mlpipe {spec.name}: {fn.stage}",
            "Tags": tags}
        if fn.environment:
            props["Environment"] = {"Variables": dict(fn.environment)}
        res[_logical(fn.stage, "function")] = {"Type": "AWS::Lambda::Function", "Properties": props}

    res["StateMachine"] = {"Type": "AWS::StepFunctions::StateMachine", "Properties": {
        "StateMachineName": naming.state_machine_name(spec.name), "StateMachineType": "STANDARD",
        "DefinitionString": _definition(asl_text, spec.account_id), "RoleArn": role_ref("stepfunctions"),
        "LoggingConfiguration": {"Level": "ERROR", "IncludeExecutionData": False, "Destinations": [
            {"CloudWatchLogsLogGroup": {"LogGroupArn": {"Fn::GetAtt": ["LogGroup", "Arn"]}}}]},
        "Tags": tags}}
    machine = {"Ref": "StateMachine"}

    s = spec.schedule
    if s is not None:
        target_doc: dict[str, Any] = {"Arn": machine, "RoleArn": role_ref("scheduler"), "Input": "{}",
                                      "RetryPolicy": {"MaximumRetryAttempts": s.maximum_attempts,
                                                      "MaximumEventAgeInSeconds": s.maximum_event_age_seconds}}
        if s.dead_letter_queue:
            res["DeadLetterQueue"] = {"Type": "AWS::SQS::Queue", "Properties": {
                "QueueName": naming.queue_name(spec.name), "MessageRetentionPeriod": 1209600,
                "SqsManagedSseEnabled": True, "Tags": tags}}
            target_doc["DeadLetterConfig"] = {"Arn": {"Fn::GetAtt": ["DeadLetterQueue", "Arn"]}}
        res["Schedule"] = {"Type": "AWS::Scheduler::Schedule", "Properties": {
            "Name": naming.schedule_name(spec.name, target), "Description": f"mlpipe {spec.name}: retrain",
            "ScheduleExpression": s.expression, "ScheduleExpressionTimezone": s.timezone,
            "State": "ENABLED" if s.enabled else "DISABLED", "FlexibleTimeWindow": {"Mode": "OFF"},
            "Target": target_doc}}

    if spec.trigger_prefix:
        bucket, _, prefix = spec.trigger_prefix[len("s3://"):].partition("/")
        res["NewDataRule"] = {"Type": "AWS::Events::Rule", "Properties": {
            "Name": policies.trigger_rule(spec, target), "State": "ENABLED",
            "Description": f"mlpipe {spec.name}: start a run when data lands under {spec.trigger_prefix} "
                           "(the bucket must send events to EventBridge)",
            "EventPattern": {"source": ["aws.s3"], "detail-type": ["Object Created"],
                             "detail": {"bucket": {"name": [bucket]}, "object": {"key": [{"prefix": prefix}]}}},
            "Targets": [{"Id": "start-pipeline", "Arn": machine, "RoleArn": role_ref("events"),
                         "InputTransformer": {"InputPathsMap": {"bucket": "$.detail.bucket.name",
                                                                "key": "$.detail.object.key"},
                                              "InputTemplate": '{"InputData": "s3://<bucket>/<key>"}'}}]}}

    res["StatusRule"] = {"Type": "AWS::Events::Rule", "Properties": {
        "Name": policies.status_rule(spec, target), "State": "ENABLED",
        "Description": f"mlpipe {spec.name}: e-mail when a run fails or is stopped",
        "EventPattern": {"source": ["aws.states"], "detail-type": ["Step Functions Execution Status Change"],
                         "detail": {"status": ["FAILED", "TIMED_OUT", "ABORTED"], "stateMachineArn": [machine]}},
        "Targets": [{"Id": "notify", "Arn": {"Ref": "Topic"}}]}}

    parameters: dict[str, Any] = {}
    if any(r["Type"] == "AWS::Lambda::Function" for r in res.values()):
        parameters = {
            "LambdaCodeBucket": {"Type": "String", "Default": spec.bucket,
                                 "Description": "Bucket holding the Lambda zip (mlpipe deploy or CI uploads it)"},
            "LambdaCodeKey": {"Type": "String", "Default": lambda_key,
                              "Description": "Key of the Lambda zip (lambda_handlers/ plus pydantic)"},
        }
    doc: dict[str, Any] = {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": f"mlpipe pipeline {spec.name} on AWS Step Functions (generated by mlpipe export)",
    }
    if parameters:
        doc["Parameters"] = parameters
    doc["Resources"] = res
    doc["Outputs"] = {"StateMachineArn": {"Value": machine}, "TopicArn": {"Value": {"Ref": "Topic"}}}
    return doc


def dump(doc: dict[str, Any], path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix == ".json":
        return json.dumps(doc, indent=2) + "\n"
    if suffix in (".yaml", ".yml"):
        import yaml

        plain = json.loads(json.dumps(doc))  # no shared objects, so no YAML anchors/aliases
        return yaml.safe_dump(plain, sort_keys=False, width=120, allow_unicode=True)
    raise UserError(f"cannot tell the format from {path.name!r}", field="--out",
                    fix="name the file *.json, *.yaml or *.yml")


def main(args: argparse.Namespace) -> int:
    from steps.pipeline import load_spec
    from workflows.build import STATE_MACHINE_FILE
    from workflows.deploy import build_zip, lambda_package_key, render_cached

    out = Path(args.out)
    dump({}, out)  # fail on an unknown suffix before the (slow) render
    spec = load_spec(args.config)
    files = render_cached(spec, "stepfunctions")
    key = lambda_package_key(spec, build_zip())
    doc = template(spec, files[STATE_MACHINE_FILE].decode(), key)
    write_bytes(out, dump(doc, out).encode())
    print(str(out))
    print(f"exported {spec.name} (stepfunctions) as CloudFormation; `mlpipe deploy --assets-only` "
          f"uploads the code assets and the Lambda zip (s3://{spec.bucket}/{key}) it refers to", file=sys.stderr)
    return 0
