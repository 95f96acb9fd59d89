"""Deploy and the CloudFormation export come from one resource list: for every example and
target, a dry-run deploy against moto plans exactly the resources the template holds, with the
same key properties."""

from __future__ import annotations

import argparse
import json

import pytest

from conftest import EXAMPLES

NOT_IN_TEMPLATE = {"s3 bucket", "code asset", "lambda package", "s3 eventbridge notifications"}
CASES = [(c, t) for c in sorted(p.stem for p in EXAMPLES.glob("*.yaml")) for t in ("stepfunctions", "sagemaker")]


def _by_type() -> dict[str, tuple[str, str]]:
    """CloudFormation type -> (the resource list's kind, the property holding the name)."""
    from workflows.infra.cloudformation import TYPES

    return {cfn_type: (kind, name_field) for kind, (cfn_type, name_field, _) in TYPES.items() if name_field}


def _body(node) -> dict:
    """A definition as the template holds it (a string, or Fn::Sub with the account as
    ${AWS::AccountId}), as deploy sends it."""
    text = node["Fn::Sub"] if isinstance(node, dict) else node
    return json.loads(text.replace("${AWS::AccountId}", "123456789012").replace("${!", "${"))


def test_every_example_is_a_case():
    assert {"abalone", "abalone_by_sex", "abalone_monitored", "bsm_pytorch", "quickstart"} <= {c for c, _ in CASES}


@pytest.fixture(scope="module")
def deployments(moto_server):
    """(config, target) -> (dry-run plan rows, the resource list deploy applied, the template)."""
    from steps.pipeline import load_spec
    from workflows.aws.session import from_args
    from workflows.infra import cloudformation, plan
    from workflows.infra.package import build_zip
    from moto_server import reset
    from workflows.render import render_cached

    out = {}
    for config, target in CASES:
        reset(moto_server)   # an empty account: the plan creates everything (whatever ran before)
        path = str(EXAMPLES / f"{config}.yaml")
        aws = from_args(argparse.Namespace(endpoint_url=moto_server, region="us-east-1", profile=None))
        d = plan.prepare(path, target, aws)
        rows = plan.deploy(d, apply=False)
        spec = load_spec(path)
        template = cloudformation.template(spec, target, render_cached(spec, target), build_zip())
        out[config, target] = rows, [s.resource for s in d.steps], template
    return out


@pytest.mark.parametrize("config, target", CASES)
def test_deploy_and_export_hold_the_same_resources(deployments, config, target):
    rows, _, template = deployments[config, target]
    planned = sorted((r["resource"], r["name"]) for r in rows if r["resource"] not in NOT_IN_TEMPLATE)
    exported, by_type = [], _by_type()
    for lid, res in template["Resources"].items():
        props = res["Properties"]
        if res["Type"] == "AWS::SNS::TopicPolicy":
            continue  # the topic's policy: one property of the "sns topic" resource in the plan
        if res["Type"] == "AWS::StepFunctions::StateMachineVersion":
            continue  # the version the alias points at: deploy publishes it with the state machine
        if res["Type"] == "AWS::Lambda::Permission":
            fn = template["Resources"][props["FunctionName"]["Fn::GetAtt"][0]]["Properties"]["FunctionName"]
            rule = template["Resources"][props["SourceArn"]["Fn::GetAtt"][0]]["Properties"]["Name"]
            exported.append(("lambda permission", f"{fn}/{rule}"))
            continue
        kind, name_field = by_type[res["Type"]]
        exported.append((kind, props[name_field]))
    assert planned == sorted(exported)
    assert all(r["action"] == "create" for r in rows if r["resource"] not in NOT_IN_TEMPLATE)


@pytest.mark.parametrize("config, target", CASES)
def test_key_properties_agree(deployments, config, target):
    _, listed, template = deployments[config, target]
    resources, by_type, by_name = template["Resources"], _by_type(), {}
    for res in resources.values():
        if res["Type"] in by_type:
            kind, name_field = by_type[res["Type"]]
            by_name[kind, res["Properties"][name_field]] = res["Properties"]
    for r in listed:
        if r.kind in NOT_IN_TEMPLATE or r.kind == "lambda permission":
            continue
        props = by_name[r.kind, r.name]
        if r.kind == "lambda function":
            assert (props["Handler"], props["Timeout"], props["MemorySize"], props["Runtime"]) == (
                r.props["handler"], r.props["timeout"], r.props["memory"], r.props["runtime"])
            plain_env = {k: v for k, v in r.props["environment"].items() if not v.startswith("arn:")}
            assert plain_env.items() <= props.get("Environment", {}).get("Variables", {}).items()
        elif r.kind == "schedule":
            request = r.props["request"]
            assert (props["ScheduleExpression"], props["ScheduleExpressionTimezone"], props["State"]) == (
                request["ScheduleExpression"], request["ScheduleExpressionTimezone"], request["State"])
            assert props["Target"]["RetryPolicy"] == request["Target"]["RetryPolicy"]
        elif r.kind == "eventbridge rule":
            pattern = props["EventPattern"]
            assert (pattern["source"], pattern["detail-type"]) == (r.props["pattern"]["source"],
                                                                   r.props["pattern"]["detail-type"])
            assert [t["Id"] for t in props["Targets"]] == [t["Id"] for t in r.props["targets"]]
        elif r.kind == "iam role":
            assert {p["PolicyName"] for p in props["Policies"]} == set(r.props["policies"])
            for policy in props["Policies"]:
                sids = [s["Sid"] for s in policy["PolicyDocument"]["Statement"]]
                assert sids == [s["Sid"] for s in r.props["policies"][policy["PolicyName"]]["Statement"]]
        elif r.kind == "state machine":
            assert _body(props["DefinitionString"]) == json.loads(r.props["definition"])
        elif r.kind == "sagemaker pipeline":
            assert _body(props["PipelineDefinition"]["PipelineDefinitionBody"]) == json.loads(r.props["definition"])
            assert props["PipelineDescription"] == (r.props["description"] or r.name)
        elif r.kind == "state machine alias":
            assert props["Description"] == r.props["description"]
            (route,) = props["RoutingConfiguration"]
            version = resources[route["StateMachineVersionArn"]["Ref"]]
            assert (route["Weight"], version["Type"]) == (100, "AWS::StepFunctions::StateMachineVersion")
            assert version["Properties"]["Description"] == r.props["version_description"]
            machine = resources[version["Properties"]["StateMachineArn"]["Ref"]]["Properties"]
            assert r.props["state_machine"].endswith(f":stateMachine:{machine['StateMachineName']}")
        elif r.kind == "log group":
            assert props["RetentionInDays"] == r.props["retention_days"]
        elif r.kind == "sqs queue":
            assert props["MessageRetentionPeriod"] == r.props["retention_seconds"]
        elif r.kind == "model package group":
            assert props["ModelPackageGroupDescription"] == r.props["description"]
        elif r.kind == "sns topic":
            assert [s["Endpoint"] for s in props.get("Subscription", [])] == r.props["emails"]
        else:
            pytest.fail(f"no key properties compared for a {r.kind}: add them here")
