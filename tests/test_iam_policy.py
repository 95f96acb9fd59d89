"""`mlpipe iam-policy`: explicit actions only, PassRole conditioned, resources scoped, trust per role."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from conftest import run_cli  # noqa: E402

EXAMPLES = sorted((ROOT / "config" / "examples").glob("*.yaml"))
PRINCIPALS = {"sagemaker": "sagemaker.amazonaws.com", "stepfunctions": "states.amazonaws.com",
              "lambda": "lambda.amazonaws.com", "scheduler": "scheduler.amazonaws.com",
              "events": "events.amazonaws.com"}


@pytest.fixture(scope="module", params=EXAMPLES, ids=lambda p: p.stem)
def printed(request):
    proc = run_cli("iam-policy", "--config", str(request.param), "--target", "all", "--output", "json")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def _statements(entries):
    for e in entries:
        for name, doc in e["policies"].items():
            for st in doc["Statement"]:
                yield e, name, st


def _list(v):
    return [v] if isinstance(v, str) else list(v)


def test_no_wildcard_actions(printed):
    for e, name, st in _statements(printed):
        for action in _list(st["Action"]):
            assert "*" not in action and "?" not in action, (e["role"], name, action)
            assert ":" in action


def test_pass_role_only_for_the_sagemaker_role_and_conditioned(printed):
    sagemaker_role = next(e["arn"] for e in printed if e["service"] == "sagemaker")
    found = 0
    for e, name, st in _statements(printed):
        if "iam:PassRole" in _list(st["Action"]):
            found += 1
            assert _list(st["Action"]) == ["iam:PassRole"]
            assert _list(st["Resource"]) == [sagemaker_role]
            assert st["Condition"] == {"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}}
    assert found >= 2


def test_resources_are_scoped(printed):
    star_ok = {"ecr:GetAuthorizationToken", "sagemaker:ListEndpoints", "sagemaker:ListMonitoringSchedules",
               "cloudwatch:PutMetricData",
               "logs:CreateLogDelivery", "logs:DeleteLogDelivery", "logs:DescribeLogGroups",
               "logs:DescribeResourcePolicies", "logs:GetLogDelivery", "logs:ListLogDeliveries",
               "logs:PutResourcePolicy", "logs:UpdateLogDelivery"}
    for e, name, st in _statements(printed):
        if st["Resource"] == "*":
            assert set(_list(st["Action"])) <= star_ok, (e["role"], st)
        for arn in _list(st["Resource"]):
            assert arn == "*" or arn.startswith("arn:"), arn
            if ":sagemaker:" in arn and "-job/" in arn:
                job = arn.rsplit("/", 1)[1]
                assert job != "*" and job.endswith("-*"), arn


def test_step_functions_role_follows_the_sync_integration_docs(printed):
    sfn = next((e for e in printed if e["service"] == "stepfunctions"), None)
    assert sfn is not None
    actions = {a for doc in sfn["policies"].values() for st in doc["Statement"] for a in _list(st["Action"])}
    assert {"events:PutTargets", "events:PutRule", "events:DescribeRule"} <= actions
    rules = {r for doc in sfn["policies"].values() for st in doc["Statement"]
             if "events:PutRule" in _list(st["Action"]) for r in _list(st["Resource"])}
    assert any(r.endswith("rule/StepFunctionsGetEventsForSageMakerTrainingJobsRule") for r in rules)
    assert any(r.endswith("rule/StepFunctionsGetEventsForSageMakerProcessingJobsRule") for r in rules)
    assert {"sagemaker:CreateTrainingJob", "sagemaker:DescribeTrainingJob", "sagemaker:StopTrainingJob"} <= actions


def test_trust_policy_per_role(printed):
    for e in printed:
        (st,) = e["trust"]["Statement"]
        assert st["Principal"] == {"Service": PRINCIPALS[e["service"]]} and st["Action"] == "sts:AssumeRole"


def test_ssm_parameter_and_table_output():
    proc = run_cli("iam-policy", "--config", str(ROOT / "config/examples/abalone.yaml"), "-t", "stepfunctions")
    assert proc.returncode == 0, proc.stderr
    assert "parameter/mlpipe/abalone/model-name" in proc.stdout
    assert "# role mlpipe-abalone-stepfunctions" in proc.stdout


# --- parliament (an IAM policy linter) over every identity policy ----------------------------

def _parliament_findings(doc: dict) -> list[str]:
    from parliament import analyze_policy_string

    policy = analyze_policy_string(json.dumps(doc), include_community_auditors=False)
    # No allow-list is needed: parliament knows that the actions granted on Resource "*"
    # (ecr:GetAuthorizationToken, sagemaker:ListEndpoints, the logs delivery actions,
    # cloudwatch:PutMetricData) have no resource-level permissions, and reports nothing for them.
    return [f"{f.issue}: {f.detail}" for f in policy.findings]


@pytest.mark.parametrize("target", ["stepfunctions", "sagemaker"])
@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
def test_parliament_finds_nothing(example, target):
    pytest.importorskip("parliament")
    proc = run_cli("iam-policy", "--config", str(example), "--target", target, "--output", "json")
    assert proc.returncode == 0, proc.stderr
    checked = 0
    for entry in json.loads(proc.stdout):
        for name, doc in entry["policies"].items():
            assert _parliament_findings(doc) == [], (entry["role"], name)
            checked += 1
    assert checked >= 2


def test_parliament_catches_a_condition_the_action_never_carries():
    """The check above is not vacuous: the job role's former statement (GetBucketLocation under
    an s3:prefix condition, which GetBucketLocation requests never carry) is flagged."""
    pytest.importorskip("parliament")
    bad = {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Action": ["s3:GetBucketLocation", "s3:ListBucket"], "Resource": "arn:aws:s3:::b",
        "Condition": {"StringLike": {"s3:prefix": ["p/*", "p"]}}}]}
    assert any("UNKNOWN_CONDITION_FOR_ACTION" in f and "s3:GetBucketLocation" in f for f in _parliament_findings(bad))


def test_get_bucket_location_is_unconditioned(printed):
    for e, name, st in _statements(printed):
        actions = _list(st["Action"])
        if "s3:GetBucketLocation" in actions:
            assert "Condition" not in st, (e["role"], name, st)
        if "s3:ListBucket" in actions and "Condition" in st:
            assert set(st["Condition"]["StringLike"]) == {"s3:prefix"}


def test_sagemaker_pipelines_role_runs_the_native_endpoint_steps():
    """The pipeline's own role creates the per-execution EndpointConfig and creates or updates
    the endpoint, on those names only; it no longer invokes the deployer (approval events do)."""
    proc = run_cli("iam-policy", "--config", str(ROOT / "config/examples/abalone.yaml"), "--target", "sagemaker",
                   "--output", "json")
    assert proc.returncode == 0, proc.stderr
    role = next(e for e in json.loads(proc.stdout) if e["service"] == "sagemaker")
    st = {s["Sid"]: s for doc in role["policies"].values() for s in doc["Statement"]}
    assert _list(st["PipelineEndpointConfigs"]["Resource"]) == [
        "arn:aws:sagemaker:us-east-1:123456789012:endpoint-config/abalone-deploy-cfg-*"]
    assert set(_list(st["PipelineEndpoints"]["Action"])) == {
        "sagemaker:CreateEndpoint", "sagemaker:UpdateEndpoint", "sagemaker:DescribeEndpoint", "sagemaker:AddTags"}
    assert "arn:aws:sagemaker:us-east-1:123456789012:endpoint/mlpipe-abalone" in _list(st["PipelineEndpoints"]["Resource"])
    invoked = _list(st["InvokePipelineFunctions"]["Resource"])
    assert invoked == ["arn:aws:lambda:us-east-1:123456789012:function:mlpipe-abalone-record-model"]
