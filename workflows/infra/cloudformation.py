"""The resource list (``resources.py``) as one CloudFormation template.

Built with ``${AWS::AccountId}``/``${AWS::Region}`` in place of the account and region, so the
template is portable; strings holding them become ``Fn::Sub``. A property that names another
resource of the template by its ARN becomes a ``Ref``/``Fn::GetAtt``, so CloudFormation knows
the order. The uploads (code assets, the Lambda zip) are not in the template: ``mlpipe deploy
--assets-only`` makes them, and the functions' code comes from two template parameters.
"""

from __future__ import annotations

import json
import re
from typing import Any, Callable

from steps.spec import PipelineSpec
from workflows.infra.resources import Resource, resources

ACCOUNT = "${AWS::AccountId}"
REGION = "${AWS::Region}"
VERSION_ID = "StateMachineVersion"     # the published version the `live` alias points at

# kind -> (CloudFormation type, the property holding the name, how others refer to it)
TYPES: dict[str, tuple[str, str, str]] = {
    "log group": ("AWS::Logs::LogGroup", "LogGroupName", "Arn"),
    "sns topic": ("AWS::SNS::Topic", "TopicName", "Ref"),
    "sqs queue": ("AWS::SQS::Queue", "QueueName", "Arn"),
    "iam role": ("AWS::IAM::Role", "RoleName", "Arn"),
    "lambda function": ("AWS::Lambda::Function", "FunctionName", "Arn"),
    "model package group": ("AWS::SageMaker::ModelPackageGroup", "ModelPackageGroupName", "Arn"),
    "state machine": ("AWS::StepFunctions::StateMachine", "StateMachineName", "Ref"),
    "state machine alias": ("AWS::StepFunctions::StateMachineAlias", "Name", "Ref"),
    "sagemaker pipeline": ("AWS::SageMaker::Pipeline", "PipelineName", "Ref"),
    "schedule": ("AWS::Scheduler::Schedule", "Name", "Arn"),
    "eventbridge rule": ("AWS::Events::Rule", "Name", "Arn"),
    "lambda permission": ("AWS::Lambda::Permission", "", ""),
}


def logical_id(*parts: str) -> str:
    return "".join(p[:1].upper() + p[1:] for p in re.split(r"[^A-Za-z0-9]+", "-".join(parts)) if p)


def sub(node: Any) -> Any:
    """Strings with ${AWS::...} become Fn::Sub."""
    if isinstance(node, dict):
        return {k: sub(v) for k, v in node.items()}
    if isinstance(node, list):
        return [sub(v) for v in node]
    if isinstance(node, str) and "${AWS::" in node:
        return {"Fn::Sub": node}
    return node


def _tags(r: Resource) -> list[dict[str, str]]:
    tags = r.props.get("tags", {})
    return [{"Key": "mlpipe:pipeline", "Value": tags["mlpipe:pipeline"]}] + [
        {"Key": k, "Value": v} for k, v in sorted(tags.items()) if k != "mlpipe:pipeline"]


def _definition(text: str, account: str) -> Any:
    """A rendered definition with the config's account id replaced in ARNs."""
    text = json.dumps(json.loads(text), indent=2, sort_keys=True)
    text = text.replace("${", "${!")                     # literal ${ in the definition stays literal
    if account and re.fullmatch(r"\d{12}", account):
        text = text.replace(f":{account}:", ":${AWS::AccountId}:")
    return {"Fn::Sub": text} if "${AWS::" in text else text


def _role(r: Resource) -> dict[str, Any]:
    return {"RoleName": r.name, "Description": r.props["description"],
            "AssumeRolePolicyDocument": sub(r.props["trust"]),
            "Policies": [{"PolicyName": n, "PolicyDocument": sub(d)} for n, d in r.props["policies"].items()],
            "Tags": _tags(r)}


def _function(r: Resource) -> dict[str, Any]:
    props: dict[str, Any] = {
        "FunctionName": r.name, "Runtime": r.props["runtime"], "Handler": r.props["handler"], "Role": r.props["role"],
        "Code": {"S3Bucket": {"Ref": "LambdaCodeBucket"}, "S3Key": {"Ref": "LambdaCodeKey"}},
        "Timeout": r.props["timeout"], "MemorySize": r.props["memory"], "Description": r.props["description"],
        "Tags": _tags(r)}
    if r.props["environment"]:
        props["Environment"] = {"Variables": dict(r.props["environment"])}
    return props


def _topic(r: Resource) -> dict[str, Any]:
    props: dict[str, Any] = {"TopicName": r.name, "Tags": _tags(r)}
    if r.props["emails"]:
        props["Subscription"] = [{"Endpoint": e, "Protocol": "email"} for e in r.props["emails"]]
    return props


def _state_machine(spec: PipelineSpec) -> Callable[[Resource], dict[str, Any]]:
    def props(r: Resource) -> dict[str, Any]:
        logging = r.props["logging"]
        return {"StateMachineName": r.name, "StateMachineType": "STANDARD",
                "DefinitionString": _definition(r.props["definition"], spec.account_id), "RoleArn": r.props["role"],
                "LoggingConfiguration": {
                    "Level": logging["level"], "IncludeExecutionData": logging["includeExecutionData"],
                    "Destinations": [{"CloudWatchLogsLogGroup": {"LogGroupArn": d["cloudWatchLogsLogGroup"]["logGroupArn"]}}
                                     for d in logging["destinations"]]},
                "Tags": _tags(r)}
    return props


def _version(r: Resource, machine_id: str) -> dict[str, Any]:
    """The version the alias points at: re-published whenever the state machine's revision
    changes (StateMachineRevisionId); earlier versions are kept (Retain), so runs on them finish
    and `mlpipe rollback` can return to them."""
    return {"Type": "AWS::StepFunctions::StateMachineVersion", "UpdateReplacePolicy": "Retain",
            "DeletionPolicy": "Retain", "Properties": {
                "StateMachineArn": {"Ref": machine_id},
                "StateMachineRevisionId": {"Fn::GetAtt": [machine_id, "StateMachineRevisionId"]},
                "Description": r.props["version_description"]}}


def _alias(r: Resource, version_id: str) -> dict[str, Any]:
    return {"Name": r.name, "Description": r.props["description"],
            "RoutingConfiguration": [{"StateMachineVersionArn": {"Ref": version_id}, "Weight": 100}]}


def _pipeline(spec: PipelineSpec) -> Callable[[Resource], dict[str, Any]]:
    def props(r: Resource) -> dict[str, Any]:
        return {"PipelineName": r.name, "PipelineDescription": r.props["description"] or r.name,
                "PipelineDefinition": {"PipelineDefinitionBody": _definition(r.props["definition"], spec.account_id)},
                "RoleArn": r.props["role"], "Tags": _tags(r)}
    return props


def _rule(r: Resource) -> dict[str, Any]:
    return {"Name": r.name, "State": "ENABLED", "Description": r.props["description"],
            "EventPattern": r.props["pattern"], "Targets": r.props["targets"]}


PROPERTIES: dict[str, Callable[[Resource], dict[str, Any]]] = {
    "log group": lambda r: {"LogGroupName": r.name, "RetentionInDays": r.props["retention_days"], "Tags": _tags(r)},
    "sns topic": _topic,
    "sqs queue": lambda r: {"QueueName": r.name, "MessageRetentionPeriod": r.props["retention_seconds"],
                            "SqsManagedSseEnabled": True, "Tags": _tags(r)},
    "iam role": _role,
    "lambda function": _function,
    "model package group": lambda r: {"ModelPackageGroupName": r.name,
                                      "ModelPackageGroupDescription": r.props["description"], "Tags": _tags(r)},
    "schedule": lambda r: {"Name": r.name, **r.props["request"]},
    "eventbridge rule": _rule,
    "lambda permission": lambda r: {"FunctionName": r.props["function_arn"], "Action": "lambda:InvokeFunction",
                                    "Principal": r.props["principal"], "SourceArn": r.props["source_arn"]},
}


def template(spec: PipelineSpec, target: str, files: dict[str, bytes], lambda_zip: bytes) -> dict[str, Any]:
    """The template of ``spec`` on ``target``: the resource list, less the uploads."""
    listed = [r for r in resources(spec, target, ACCOUNT, REGION, files, lambda_zip) if r.in_template]
    properties = dict(PROPERTIES, **{"state machine": _state_machine(spec), "sagemaker pipeline": _pipeline(spec)})
    ids = _logical_ids(listed)
    refs = {r.arn: _ref(ids[r.name, r.kind], TYPES[r.kind][2]) for r in listed if r.arn}
    res: dict[str, Any] = {}
    for r in listed:
        if r.kind == "state machine alias":
            machine_id = refs[r.props["state_machine"]]["Ref"]
            res[VERSION_ID] = _version(r, machine_id)
            res[ids[r.name, r.kind]] = {"Type": TYPES[r.kind][0], "Properties": _alias(r, VERSION_ID)}
            continue
        props = _link(properties[r.kind](r), refs)
        res[ids[r.name, r.kind]] = {"Type": TYPES[r.kind][0], "Properties": props}
        if r.kind == "sns topic":
            res[ids[r.name, r.kind] + "Policy"] = {"Type": "AWS::SNS::TopicPolicy", "Properties": {
                "Topics": [{"Ref": ids[r.name, r.kind]}], "PolicyDocument": sub(r.props["policy"])}}
    doc: dict[str, Any] = {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": f"mlpipe pipeline {spec.name} on "
                       f"{'AWS Step Functions' if target == 'stepfunctions' else 'SageMaker Pipelines'} "
                       "(generated by mlpipe export)",
    }
    code = next((r.props["code"] for r in listed if r.kind == "lambda function"), None)
    if code:
        doc["Parameters"] = {
            "LambdaCodeBucket": {"Type": "String", "Default": code["bucket"],
                                 "Description": "Bucket holding the Lambda zip (mlpipe deploy --assets-only uploads it)"},
            "LambdaCodeKey": {"Type": "String", "Default": code["key"],
                              "Description": "Key of the Lambda zip (lambda_handlers/ plus pydantic)"},
        }
    doc["Resources"] = res
    orchestrator = next(r for r in listed if r.kind in ("state machine", "sagemaker pipeline"))
    topic = next(r for r in listed if r.kind == "sns topic")
    doc["Outputs"] = {("StateMachineArn" if target == "stepfunctions" else "PipelineName"):
                      {"Value": {"Ref": ids[orchestrator.name, orchestrator.kind]}},
                      "TopicArn": {"Value": {"Ref": ids[topic.name, topic.kind]}}}
    alias = next((r for r in listed if r.kind == "state machine alias"), None)
    if alias is not None:
        doc["Outputs"]["LiveAliasArn"] = {"Value": {"Ref": ids[alias.name, alias.kind]}}
    return doc


def _logical_ids(listed: list[Resource]) -> dict[tuple[str, str], str]:
    """Readable, stable logical ids: the kind's word plus what distinguishes the resource."""
    fixed = {"log group": "LogGroup", "sns topic": "Topic", "sqs queue": "DeadLetterQueue",
             "state machine": "StateMachine", "state machine alias": "StateMachineAlias",
             "sagemaker pipeline": "Pipeline", "schedule": "Schedule"}
    out: dict[tuple[str, str], str] = {}
    for r in listed:
        if r.kind in fixed:
            lid = fixed[r.kind]
        elif r.kind == "iam role":
            lid = logical_id(r.props["service"], "role")
        elif r.kind == "eventbridge rule" and r.props["purpose"] in ("status", "new data"):
            lid = {"status": "StatusRule", "new data": "NewDataRule"}[r.props["purpose"]]
        elif r.kind == "lambda function":
            lid = logical_id(r.props["stage"], "function")
        else:
            lid = logical_id(r.name, r.kind.split()[-1])
        out[r.name, r.kind] = lid
    return out


def _ref(lid: str, how: str) -> dict[str, Any]:
    return {"Ref": lid} if how == "Ref" else {"Fn::GetAtt": [lid, how]}


def _link(node: Any, refs: dict[str, Any]) -> Any:
    """ARNs of the template's own resources become references (IAM documents keep their
    strings: a policy naming a resource must not make it a dependency, or rules and topic
    policies would form cycles); everything else with a placeholder becomes Fn::Sub."""
    if isinstance(node, dict):
        return {k: v if k in ("PolicyDocument", "AssumeRolePolicyDocument", "Policies", "DefinitionString",
                              "PipelineDefinition") else _link(v, refs) for k, v in node.items()}
    if isinstance(node, list):
        return [_link(v, refs) for v in node]
    if isinstance(node, str):
        if node in refs:
            return refs[node]
        return sub(node)
    return node


def dump(doc: dict[str, Any], suffix: str) -> str:
    """JSON or YAML by the output file's suffix (``.json``, ``.yaml``, ``.yml``)."""
    if suffix == ".json":
        return json.dumps(doc, indent=2) + "\n"
    import yaml

    plain = json.loads(json.dumps(doc))  # no shared objects, so no YAML anchors/aliases
    return yaml.safe_dump(plain, sort_keys=False, width=120, allow_unicode=True)

