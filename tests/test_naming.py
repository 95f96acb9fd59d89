"""Unit tests of steps/naming.py: every resource name and ARN, with small exact expected values,
in the three partitions (aws, aws-cn, aws-us-gov)."""

from __future__ import annotations

import hashlib
import json
import re
from types import SimpleNamespace

import pytest

from conftest import EXAMPLES
from steps import naming
from steps.naming import Arns

ACCOUNT = "123456789012"


# --- names ------------------------------------------------------------------------------------

def test_safe_name_keeps_letters_digits_and_dashes():
    assert naming.safe_name("abalone", "train", limit=63) == "abalone-train"
    assert naming.safe_name("My Pipeline!", "train_v2", limit=64) == "My-Pipeline--train-v2"
    assert naming.safe_name("abalone", "", "train", limit=63) == "abalone-train"   # empty parts dropped


def test_safe_name_cuts_a_long_name_and_adds_a_hash_of_the_whole():
    digest = hashlib.sha256(("a" * 30 + "-train").encode()).hexdigest()[:6]
    assert digest == "2c7124"
    assert naming.safe_name("a" * 30, "train", limit=26) == "a" * 19 + "-2c7124"
    assert len(naming.safe_name("a" * 30, "train", limit=26)) == 26


def test_job_names():
    assert naming.job_prefix("abalone", "train") == "abalone-train"
    assert naming.job_prefix("a" * 30, "train") == "a" * 19 + "-2c7124"          # 26 at most
    assert naming.member_job_prefix("abalone", "train", 3) == "abalone-train"    # 22 at most
    assert naming.member_job_prefix("abalone-by-sex", "train", 8) == "abalone-by-7555b6"   # 17 at most
    assert naming.tuning_job_prefix("abalone", "tune") == "abalone-tune"
    assert naming.tuning_job_prefix("abalone-pipeline-long", "tune-hps") == "abalone-pipeline-dd70e0"  # 23
    assert naming.endpoint_config_prefix("abalone", "deploy") == "abalone-deploy-cfg"
    assert naming.model_name("abalone", "create-model") == "abalone-create-model"


def test_pipeline_resource_names():
    p = "abalone"
    assert naming.state_machine_name(p) == "mlpipe-abalone"
    assert naming.sagemaker_pipeline_name(p) == "mlpipe-abalone"
    assert naming.orchestrator_name(p, "stepfunctions") == naming.orchestrator_name(p, "sagemaker") == "mlpipe-abalone"
    assert naming.role_name(p, "sagemaker") == "mlpipe-abalone-sagemaker"
    assert naming.function_name(p, "register") == "mlpipe-abalone-register"
    assert naming.deployer_function_name(p, "deploy") == "mlpipe-abalone-deploy"
    assert naming.starter_function_name(p) == "mlpipe-abalone-trigger"
    assert naming.scheduler_function_name(p, "deploy") == "mlpipe-abalone-deploy-monitoring"
    assert naming.topic_name(p) == "mlpipe-abalone-notifications"
    assert naming.queue_name(p) == "mlpipe-abalone-schedule-dlq"
    assert naming.schedule_name(p, "sagemaker") == "mlpipe-abalone-sagemaker-retrain"
    assert naming.status_rule_name(p, "stepfunctions") == "mlpipe-abalone-stepfunctions-status"
    assert naming.trigger_rule_name(p, "sagemaker") == "mlpipe-abalone-sagemaker-new-data"
    assert naming.approved_rule_name(p, "deploy") == "mlpipe-abalone-deploy-approved"
    assert naming.violations_rule_name(p, "sagemaker") == "mlpipe-abalone-sagemaker-monitoring"
    assert naming.monitoring_schedule_name(p, "deploy") == "mlpipe-abalone-deploy-data-quality"
    assert naming.model_package_group(p) == "mlpipe-abalone"
    assert naming.item_package_group("mlpipe-abalone", "m") == "mlpipe-abalone-m"
    assert naming.endpoint_name(p) == "mlpipe-abalone"
    assert naming.log_group_name(p) == "/aws/vendedlogs/states/mlpipe-abalone"
    assert naming.function_log_group("mlpipe-abalone-register") == "/aws/lambda/mlpipe-abalone-register"
    assert naming.name_prefix("my pipe") == "mlpipe-my-pipe-"


def test_policy_names():
    assert naming.policy_prefix("sagemaker") == "mlpipe-sagemaker-"
    assert naming.policy_name("job-execution") == "mlpipe-job-execution"
    assert naming.policy_name("run-pipeline", "stepfunctions") == "mlpipe-stepfunctions-run-pipeline"
    assert naming.policy_name("start", "sagemaker").startswith(naming.policy_prefix("sagemaker"))


# --- partitions and ARNs ----------------------------------------------------------------------

@pytest.mark.parametrize("region, partition", [
    ("us-east-1", "aws"), ("eu-west-1", "aws"), ("ap-southeast-2", "aws"),
    ("cn-north-1", "aws-cn"), ("cn-northwest-1", "aws-cn"),
    ("us-gov-west-1", "aws-us-gov"), ("us-gov-east-1", "aws-us-gov"),
])
def test_partition_of_a_region(region, partition):
    assert naming.partition(region) == partition


def _arns(region: str, **kw) -> Arns:
    return Arns("abalone", ACCOUNT, region, bucket="my-bucket", prefix="mlpipe", **kw)


# region, partition: every ARN below, in each of the three partitions
PARTITIONS = [("us-east-1", "aws"), ("cn-north-1", "aws-cn"), ("us-gov-west-1", "aws-us-gov")]


@pytest.mark.parametrize("region, p", PARTITIONS)
def test_role_arns(region, p):
    a = _arns(region)
    assert a.role("sagemaker") == f"arn:{p}:iam::{ACCOUNT}:role/mlpipe-abalone-sagemaker"
    assert a.role("lambda") == f"arn:{p}:iam::{ACCOUNT}:role/mlpipe-abalone-lambda"
    assert a.root() == f"arn:{p}:iam::{ACCOUNT}:root"
    given = f"arn:{p}:iam::{ACCOUNT}:role/mine"
    assert _arns(region, roles={"sagemaker": given, "lambda_": given}).role("sagemaker") == given
    assert _arns(region, roles={"lambda_": given}).role("lambda") == given   # the config's key is lambda_


@pytest.mark.parametrize("region, p", PARTITIONS)
def test_state_machine_arns(region, p):
    a = _arns(region)
    head = f"arn:{p}:states:{region}:{ACCOUNT}"
    assert a.state_machine() == f"{head}:stateMachine:mlpipe-abalone"
    assert a.state_machine_alias() == f"{head}:stateMachine:mlpipe-abalone:live"
    assert a.state_machine_alias("v2") == f"{head}:stateMachine:mlpipe-abalone:v2"
    assert a.execution("run-1") == f"{head}:execution:mlpipe-abalone:run-1"
    assert a.entry("stepfunctions") == a.state_machine_alias()
    assert a.orchestrator("stepfunctions") == a.state_machine()


@pytest.mark.parametrize("region, p", PARTITIONS)
def test_service_integration_arns(region, p):
    a = _arns(region)
    assert a.integration("sns", "publish.waitForTaskToken") == f"arn:{p}:states:::sns:publish.waitForTaskToken"
    assert a.integration("s3", "listObjectsV2") == f"arn:{p}:states:::s3:listObjectsV2"
    assert a.sdk_integration("s3", "getObject") == f"arn:{p}:states:::aws-sdk:s3:getObject"
    assert a.sdk_integration("sagemaker", "listEndpoints") == f"arn:{p}:states:::aws-sdk:sagemaker:listEndpoints"


@pytest.mark.parametrize("region, p", PARTITIONS)
def test_s3_arns(region, p):
    a = _arns(region)
    assert a.bucket() == f"arn:{p}:s3:::my-bucket"
    assert a.bucket("their-data") == f"arn:{p}:s3:::their-data"
    assert a.objects() == f"arn:{p}:s3:::my-bucket/mlpipe/*"
    assert a.objects("runs") == f"arn:{p}:s3:::my-bucket/mlpipe/runs/*"
    assert Arns("abalone", ACCOUNT, region, bucket="my-bucket").objects() == f"arn:{p}:s3:::my-bucket/*"


@pytest.mark.parametrize("region, p", PARTITIONS)
def test_ecr_ssm_lambda_and_other_arns(region, p):
    a = _arns(region)
    assert a.ecr_repositories() == f"arn:{p}:ecr:{region}:*:repository/*"
    assert a.ssm_parameter("/mlpipe/abalone/model") == f"arn:{p}:ssm:{region}:{ACCOUNT}:parameter/mlpipe/abalone/model"
    assert a.ssm_parameter("plain") == f"arn:{p}:ssm:{region}:{ACCOUNT}:parameter/plain"
    assert a.function("mlpipe-abalone-register") == f"arn:{p}:lambda:{region}:{ACCOUNT}:function:mlpipe-abalone-register"
    assert a.function_logs("mlpipe-abalone-register") == \
        f"arn:{p}:logs:{region}:{ACCOUNT}:log-group:/aws/lambda/mlpipe-abalone-register:*"
    assert a.topic() == f"arn:{p}:sns:{region}:{ACCOUNT}:mlpipe-abalone-notifications"
    assert a.queue() == f"arn:{p}:sqs:{region}:{ACCOUNT}:mlpipe-abalone-schedule-dlq"
    assert a.rule("r") == f"arn:{p}:events:{region}:{ACCOUNT}:rule/r"
    assert a.pipeline_arn() == f"arn:{p}:sagemaker:{region}:{ACCOUNT}:pipeline/mlpipe-abalone"
    assert a.sm("model-package-group", "Mixed-Case") == \
        f"arn:{p}:sagemaker:{region}:{ACCOUNT}:model-package-group/mixed-case"   # SageMaker ARNs are lower case
    assert a.monitoring_schedule("s") == f"arn:{p}:sagemaker:{region}:{ACCOUNT}:monitoring-schedule/s"
    assert a.entry("sagemaker") == a.orchestrator("sagemaker") == a.pipeline_arn()


def test_a_placeholder_region_takes_the_partition_of_the_real_one():
    """CloudFormation: ``${AWS::Region}`` has no partition; the spec's region gives it."""
    a = Arns("abalone", "${AWS::AccountId}", "${AWS::Region}", region_hint="cn-north-1")
    assert a.p == "aws-cn"
    assert a.state_machine() == "arn:aws-cn:states:${AWS::Region}:${AWS::AccountId}:stateMachine:mlpipe-abalone"


def test_arns_of_a_spec():
    spec = SimpleNamespace(name="abalone", account_id=ACCOUNT, region="us-gov-west-1", bucket="b", prefix="",
                           roles={"sagemaker": None})
    a = Arns.of(spec)
    assert (a.p, a.region, a.account) == ("aws-us-gov", "us-gov-west-1", ACCOUNT)
    assert a.role("sagemaker") == f"arn:aws-us-gov:iam::{ACCOUNT}:role/mlpipe-abalone-sagemaker"
    assert Arns.of(spec, "${AWS::AccountId}", "${AWS::Region}").p == "aws-us-gov"


# --- the rendered state machine agrees ----------------------------------------------------------

@pytest.mark.parametrize("example, region, p", [("abalone_monitored", "cn-north-1", "aws-cn"),
                                                 ("abalone_by_sex", "us-gov-west-1", "aws-us-gov")])
def test_every_arn_in_a_state_machine_is_in_the_regions_partition(example, region, p):
    """The integrations the stepfunctions SDK writes (createTrainingJob.sync, ...) and the ones
    naming.py builds (aws-sdk:s3:getObject, ...) name the same partition."""
    pytest.importorskip("stepfunctions")
    from steps.pipeline import load_spec
    from workflows.render.stepfunctions import render_state_machine

    spec = load_spec(EXAMPLES / f"{example}.yaml", env={"MLPIPE_AWS_REGION": region})
    text = json.dumps(render_state_machine(spec))
    assert set(re.findall(r"arn:([a-z-]+):", text)) == {p}
    assert f'"arn:{p}:states:::sagemaker:createTrainingJob.sync"' in text
    assert f'"arn:{p}:states:::aws-sdk:' in text
