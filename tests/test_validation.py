"""Refuse before AWS what AWS would refuse (issue 10, item 1).

Every case here was accepted before and failed later: at deploy, as an SDK traceback, or as a
failed job on AWS. Now each is one ConfigError naming the file, the field and a fix. The limits
come from botocore's own API models (config.aws_api), and the built-in XGBoost 1.7-1
hyperparameters from the container's source (config.xgboost_hyperparameters).
"""

from __future__ import annotations

import copy

import pytest
import yaml
from conftest import EXAMPLES, changed_config, run_cli, stage_named

from config import ConfigError, load_config
from config import aws_api
from config import xgboost_hyperparameters as xgb
from steps.pipeline import build_spec


def _pytorch_with(hyperparameters):
    def change(doc):
        train = stage_named(doc, "train")
        train.pop("algorithm")
        train["framework"] = {"name": "pytorch"}
        train["hyperparameters"] = hyperparameters
    return change


# case -> (change to abalone.yaml, field path in the message, text in the message, text in the fix)
BAD = {
    "xgboost hyperparameter typo": (
        lambda d: stage_named(d, "train")["hyperparameters"].update(max_dept=5),
        "stages[1](train).hyperparameters.max_dept", "is not a hyperparameter of the built-in XGBoost 1.7-1",
        "did you mean max_depth"),
    "xgboost subsample out of range": (
        lambda d: stage_named(d, "train")["hyperparameters"].update(subsample=1.5),
        "stages[1](train).hyperparameters.subsample", "1.5 is outside (0, 1]", "(0, 1]"),
    "xgboost misspelled objective": (
        lambda d: stage_named(d, "train")["hyperparameters"].update(objective="reg:squarederor"),
        "stages[1](train).hyperparameters.objective", "is not an XGBoost 1.7-1 objective", "reg:squarederror"),
    "transform on a non-transform instance type": (
        lambda d: stage_named(d, "batch-score").update(instance_type="ml.t3.medium"),
        "stages[8](batch-score).instance_type", "'ml.t3.medium' is not a transform instance type",
        "valid transform instance types include ml.m5.large"),
    "endpoint on ml.m5.metal": (
        lambda d: stage_named(d, "deploy").update(instance_type="ml.m5.metal"),
        "stages[7](deploy).instance_type", "'ml.m5.metal' is not a known SageMaker instance type",
        "valid endpoint instance types include ml.m5.24xlarge"),
    "approval status in the wrong case": (
        lambda d: stage_named(d, "register").update(approval_status="approved"),
        "stages[5](register).approval_status", "'approved' is not a model approval status", "'Approved'"),
    "model package group with an underscore": (
        lambda d: stage_named(d, "register").update(model_package_group="abalone_models"),
        "stages[5](register).model_package_group", "does not match the pattern", "'abalone-models'"),
    "endpoint name with an underscore": (
        lambda d: stage_named(d, "deploy").update(endpoint_name="abalone_endpoint"),
        "stages[7](deploy).endpoint_name", "does not match the pattern", "'abalone-endpoint'"),
    "lambda function name with a dot": (
        lambda d: stage_named(d, "record-model").update(function_name="record.model-name"),
        "stages[9](record-model).function_name", "is not a valid Lambda function name", "'record-model-name'"),
    "transform instance_count 0": (
        lambda d: stage_named(d, "batch-score").update(instance_count=0),
        "stages[8](batch-score).instance_count", "instance_count 0 is below the minimum 1", "use 1 or more"),
    "processing instance_count 150": (
        lambda d: stage_named(d, "preprocess").update(instance_count=150),
        "stages[0](preprocess).instance_count", "instance_count 150 is above the maximum 100", "use 1 to 100"),
    "105 hyperparameters": (
        _pytorch_with({f"knob{i}": i for i in range(105)}),
        "stages[1](train).hyperparameters", "105 hyperparameters; SageMaker accepts at most 100",
        "remove 5 of them"),
    "30 column names: one container argument of 449 characters": (
        lambda d: d["data"].update(column_names=[f"measurement_{i:02d}" for i in range(30)]),
        "data.column_names", "of 449 characters; SageMaker accepts at most 256 per argument",
        "shorten the column names"),
    "String parameter used as an instance count": (
        lambda d: d["parameters"]["ProcessingInstanceCount"].update(type="String", default="1"),
        "stages[0](preprocess).instance_count",
        "$ProcessingInstanceCount is a String parameter; instance_count needs an Integer parameter",
        "type: Integer"),
    "Integer parameter whose default is out of range": (
        lambda d: d["parameters"]["ProcessingInstanceCount"].update(default=101),
        "stages[0](preprocess).instance_count", "is above the maximum 100", "default/allowed values"),
    "String parameter allowing an approval status AWS does not know": (
        lambda d: d["parameters"]["ModelApprovalStatus"].update(allowed=["PendingManualApproval", "approved"]),
        "stages[5](register).approval_status", "may be 'approved'", "'Approved'"),
    "cron hour 25": (
        lambda d: d["schedule"].update(expression="cron(0 25 ? * MON *)"),
        "schedule.expression", "the hours field is 25; it must be 0-23", "hours 0-23"),
    "time zone on Mars": (
        lambda d: d["schedule"].update(timezone="Mars/Olympus"),
        "schedule.timezone", "'Mars/Olympus' is not an IANA time zone", "Europe/Paris"),
    "bad bucket in a parameter default": (
        lambda d: d["parameters"]["InputData"].update(default="s3://Bad_Bucket/abalone/data.csv"),
        "parameters.InputData.default", "bucket 'Bad_Bucket' contains", "'bad-bucket'"),
    "processing on an inference-only instance type": (
        lambda d: stage_named(d, "preprocess").update(instance_type="ml.inf2.xlarge"),
        "stages[0](preprocess).instance_type", "'ml.inf2.xlarge' is not a processing instance type",
        "valid processing instance types include ml.m5.xlarge"),
    "unknown region": (
        lambda d: d["aws"].update(region="us-east-7"),
        "aws.region", "'us-east-7' is not an AWS region where SageMaker is available", "us-east-1"),
    # neighbours of the cases above
    "xgboost without num_round": (
        lambda d: stage_named(d, "train")["hyperparameters"].pop("num_round"),
        "stages[1](train).hyperparameters", "needs 'num_round'", "add num_round"),
    "xgboost integer written as a float": (
        lambda d: stage_named(d, "train")["hyperparameters"].update(max_depth=5.5),
        "stages[1](train).hyperparameters.max_depth", "is not an integer", "e.g. 5"),
    "register transform_instances on an endpoint-only type": (
        lambda d: stage_named(d, "register").update(transform_instances=["ml.m5.metal"]),
        "stages[5](register).transform_instances[0]", "not a known SageMaker instance type", "ml.m5"),
    "cron month 13": (
        lambda d: d["schedule"].update(expression="cron(0 3 ? 13 MON *)"),
        "schedule.expression", "the month field is 13; it must be 1-12", "JAN-DEC"),
    "cron day-of-week 8": (
        lambda d: d["schedule"].update(expression="cron(0 3 ? * 8 *)"),
        "schedule.expression", "the day-of-week field is 8; it must be 1-7", "SUN-SAT"),
    "cron year 1969": (
        lambda d: d["schedule"].update(expression="cron(0 3 ? * MON 1969)"),
        "schedule.expression", "the year field is 1969; it must be 1970-2199", "1970-2199"),
    "cron with both day fields set": (
        lambda d: d["schedule"].update(expression="cron(0 3 1 * MON *)"),
        "schedule.expression", "'?' in exactly one of day-of-month and day-of-week", "cron(0 3 ? * MON *)"),
    "bad bucket in the trigger": (
        lambda d: d["trigger"].update(s3_prefix="s3://my..bucket/incoming/"),
        "trigger.s3_prefix", "has two adjacent periods", "bucket"),
    "bucket shaped like an IP address": (
        lambda d: d["aws"].update(bucket="192.168.1.10"),
        "aws.bucket", "is formatted as an IP address", "bucket"),
    "dangling reference names its field": (
        lambda d: stage_named(d, "train")["inputs"].update(train="prep.train"),
        "stages[1](train).inputs.train", "names no stage", "existing stage"),
    "tuning a range the algorithm lacks": (
        lambda d: stage_named(d, "tune")["ranges"].update(max_dept={"type": "integer", "min": 3, "max": 8}),
        "stages[2](tune).ranges.max_dept", "is not a hyperparameter of built-in XGBoost", "max_depth"),
    "tuning on a metric the algorithm does not report": (
        lambda d: stage_named(d, "tune")["objective"].update(metric="validation:rmsee"),
        "stages[2](tune).objective.metric", "is not a metric XGBoost 1.7-1 reports", "validation:rmse"),
    "grid search over a continuous range": (
        lambda d: stage_named(d, "tune").update(strategy="Grid"),
        "stages[2](tune).ranges.eta", "Grid search takes categorical ranges only", "list the values"),
    "more parallel jobs than jobs": (
        lambda d: stage_named(d, "tune").update(max_jobs=2, max_parallel_jobs=3),
        "stages[2](tune).max_parallel_jobs", "exceeds max_jobs 2", "at most max_jobs"),
    "tuning something that is not a training stage": (
        lambda d: stage_named(d, "tune").update(training="preprocess"),
        "stages[2](tune).training", "is not a training stage declared before this one", "training stage"),
    "a log-scaled range from zero": (
        lambda d: stage_named(d, "tune")["ranges"]["eta"].update(min=0),
        "stages[2](tune).ranges.eta.min", "Logarithmic scaling needs min > 0", "Linear"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_refused_with_field_and_fix(tmp_path, case):
    change, field, text, fix = BAD[case]
    path = changed_config(tmp_path, change)
    with pytest.raises(ConfigError) as err:
        load_config(path, env={})
    e = err.value
    assert e.source == str(path)
    assert e.field == field, e.render()
    assert text in e.message, e.render()
    assert e.fix and fix in e.fix, e.render()


def test_unknown_region_from_the_environment_is_refused():
    with pytest.raises(ConfigError) as err:
        load_config(EXAMPLES / "abalone.yaml", env={"MLPIPE_AWS_REGION": "us-east-7"})
    assert err.value.field == "aws.region" and "us-east-7" in err.value.message


@pytest.mark.parametrize("case", ["unknown region", "transform on a non-transform instance type",
                                  "xgboost hyperparameter typo", "cron hour 25"])
def test_cli_exits_2_with_one_error_line(tmp_path, case):
    change, field, text, fix = BAD[case]
    path = changed_config(tmp_path, change)
    out = tmp_path / "out"
    proc = run_cli("build", "--config", str(path), "--out", str(out))
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stderr.startswith("error: ")
    assert [line for line in proc.stderr.splitlines() if line.startswith("error:")] == \
        [proc.stderr.splitlines()[0]]
    assert field in proc.stderr and text in proc.stderr and "fix:" in proc.stderr
    assert not out.exists(), "a refused config must not leave files behind"


# --- what must still be accepted -----------------------------------------------------------

@pytest.mark.parametrize("name", ["abalone.yaml", "bsm_pytorch.yaml", "quickstart.yaml"])
def test_examples_still_load_and_build(name):
    spec = build_spec(load_config(EXAMPLES / name, env={}))
    assert spec.stages


@pytest.mark.parametrize("expression", [
    "cron(0 3 ? * MON *)", "cron(0/15 * ? * * *)", "cron(0 3 ? * MON-FRI *)", "cron(30 8 1 JAN,JUL ? *)",
    "cron(0 3 L * ? *)", "cron(0 12 15W * ? *)", "cron(0 3 ? * 6#3 *)", "cron(0 3 ? * 6L 2030-2035)",
    "cron(5,35 14 ? * SUN 2199)", "rate(7 days)", "rate(1 hour)",
])
def test_valid_schedules_accepted(tmp_path, expression):
    path = changed_config(tmp_path, lambda d: d["schedule"].update(expression=expression, timezone="Europe/Paris"))
    assert load_config(path, env={}).schedule.expression == expression


def test_valid_names_and_values_accepted(tmp_path):
    def change(d):
        stage_named(d, "register").update(model_package_group="abalone-models", approval_status="Approved")
        stage_named(d, "deploy").update(endpoint_name="Abalone-Endpoint-2", instance_count=2)
        stage_named(d, "record-model").update(function_name="record_model-name")
        stage_named(d, "batch-score").update(instance_type="ml.c5.xlarge", instance_count=3)
        stage_named(d, "preprocess").update(instance_count=100)
        stage_named(d, "train")["hyperparameters"].update(learning_rate=0.3, eval_metric="rmse,mae",
                                                      save_model_on_termination="true", subsample=1)
        d["aws"]["region"] = "eu-west-1"
    config = load_config(changed_config(tmp_path, change), env={})
    build_spec(config)


def test_24_character_evaluation_name_builds(tmp_path):
    name = "evaluate-the-model-on-te"
    assert len(name) == 24
    path = changed_config(tmp_path, lambda d: stage_named(d, "evaluate").update(name=name))
    spec = build_spec(load_config(path, env={}))
    gates = [s for s in spec.stages if s.kind == "gate"]
    assert len(gates) == 1
    gate = gates[0].name
    assert gate != name and gate.endswith("-gate") and len(gate) <= 24
    assert gate in {s.name for s in spec.stages} and len({s.name for s in spec.stages}) == len(spec.stages)


def test_gate_names_stay_distinct():
    from steps.evaluation import gate_name

    assert gate_name("evaluate") == "evaluate-gate"  # unchanged for short names (golden files)
    long_a, long_b = "evaluate-the-model-on-aa", "evaluate-the-model-on-bb"
    first = gate_name(long_a, {long_a, long_b})
    second = gate_name(long_b, {long_a, long_b, first})
    assert first != second and first not in {long_a, long_b} and second not in {long_a, long_b}
    assert gate_name("evaluate", {"evaluate", "evaluate-gate"}) != "evaluate-gate"
    import re

    for name in (first, second, gate_name("evaluate", {"evaluate-gate"}), gate_name("e" * 24, {"e" * 24})):
        assert re.fullmatch(r"[a-z][a-z0-9-]{0,23}", name), name


def test_user_stage_named_like_the_gate_builds(tmp_path):
    def change(d):
        d["stages"].append({"name": "evaluate-gate", "kind": "approval", "depends_on": ["register"]})
    spec = build_spec(load_config(changed_config(tmp_path, change), env={}))
    names = [s.name for s in spec.stages]
    assert len(names) == len(set(names))


# --- config.aws_api ---------------------------------------------------------------------------

def test_instance_types_are_per_api():
    training, processing, transform, endpoint = (aws_api.instance_types(api) for api in
                                                 ("training", "processing", "transform", "endpoint"))
    assert "ml.m5.xlarge" in training and "ml.m5.xlarge" in processing
    assert "ml.t3.medium" not in transform and "ml.inf2.xlarge" not in processing
    assert "ml.inf2.xlarge" in endpoint and "ml.m5.metal" not in endpoint
    assert len({training, processing, transform, endpoint}) == 4


def test_shape_constraints_come_from_botocore():
    assert set(aws_api.enum_values("sagemaker", "ModelApprovalStatus")) == {"Approved", "Rejected",
                                                                             "PendingManualApproval"}
    entity = aws_api.string_constraints("sagemaker", "EntityName")
    assert entity.max_length == 63 and entity.pattern and entity.problem("abalone_models")
    assert entity.problem("abalone-models") is None
    assert aws_api.numeric_range("sagemaker", "ProcessingInstanceCount") == (1, 100)
    assert aws_api.max_items("sagemaker", "HyperParameters") == 100
    assert aws_api.size_limits("sagemaker", "ContainerArguments")[1] == 100
    assert aws_api.string_constraints("sagemaker", "ContainerArgument").max_length == 256
    assert aws_api.member_shape("sagemaker", "CreateTransformJob",
                                "TransformResources.InstanceCount") == "TransformInstanceCount"
    with pytest.raises(aws_api.UnknownShape):
        aws_api.shape("sagemaker", "NoSuchShape")


def test_regions_come_from_botocore_endpoints():
    regions = aws_api.regions("sagemaker")
    assert {"us-east-1", "eu-west-1", "cn-north-1", "us-gov-west-1"} <= set(regions)
    assert "us-east-7" not in regions and not any(r.endswith("-fips") for r in regions)


def test_java_only_patterns_are_skipped_not_guessed():
    assert aws_api.compiled_pattern(r"[\p{L}\p{Z}\p{N}_.:/=+\-@]*") is None
    assert aws_api.compiled_pattern(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}").fullmatch("abc-1")


# --- validate_request ------------------------------------------------------------------------

TRAINING_JOB = {
    "TrainingJobName": "abalone-train-0123",
    "AlgorithmSpecification": {
        "TrainingImage": "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1",
        "TrainingInputMode": "File",
    },
    "RoleArn": "arn:aws:iam::123456789012:role/mlpipe-sagemaker",
    "InputDataConfig": [{"ChannelName": "train", "ContentType": "text/csv", "DataSource": {
        "S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": "s3://mlpipe-abalone/abalone/train"}}}],
    "OutputDataConfig": {"S3OutputPath": "s3://mlpipe-abalone/abalone/models"},
    "ResourceConfig": {"InstanceType": "ml.m5.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 30},
    "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
    "HyperParameters": {"num_round": "50", "max_depth": "5"},
    "Tags": [{"Key": "mlpipe:pipeline", "Value": "abalone"}],
}


def _training(**changes):
    request = copy.deepcopy(TRAINING_JOB)
    for path, value in changes.items():
        node = request
        *parents, last = path.split("__")
        for key in parents:
            node = node[key]
        if value is KeyError:
            del node[last]
        else:
            node[last] = value
    return request


def test_valid_request_passes():
    assert aws_api.validate_request("sagemaker", "CreateTrainingJob", TRAINING_JOB) == []


@pytest.mark.parametrize("changes, expected", [
    ({"RoleArn": KeyError}, 'Missing required parameter in input: "RoleArn"'),
    ({"ResourceConfig__InstanceCount": 0}, None),  # TrainingInstanceCount allows 0 (instance groups)
    ({"StoppingCondition__MaxRuntimeInSeconds": 0}, "StoppingCondition.MaxRuntimeInSeconds"),
    ({"ResourceConfig__InstanceType": "ml.m5.huge"}, "ResourceConfig.InstanceType: 'ml.m5.huge' is not one of"),
    ({"TrainingJobName": "abalone_train"}, "TrainingJobName: 'abalone_train' does not match the pattern"),
    ({"HyperParameters": {f"k{i}": "1" for i in range(101)}}, "HyperParameters: 101 entries; at most 100"),
    ({"Surprise": 1}, 'Unknown parameter in input: "Surprise"'),
])
def test_request_problems_are_reported(changes, expected):
    problems = aws_api.validate_request("sagemaker", "CreateTrainingJob", _training(**changes))
    if expected is None:
        assert problems == []
    else:
        assert len(problems) == 1 and expected in problems[0], problems


def test_out_of_range_number_is_reported():
    request = {
        "ProcessingJobName": "abalone-preprocess-1",
        "RoleArn": "arn:aws:iam::123456789012:role/sm",
        "AppSpecification": {"ImageUri": "img", "ContainerArguments": ["--column-names", "x" * 300]},
        "ProcessingResources": {"ClusterConfig": {"InstanceCount": 150, "InstanceType": "ml.m5.xlarge",
                                                  "VolumeSizeInGB": 30}},
    }
    problems = aws_api.validate_request("sagemaker", "CreateProcessingJob", request)
    assert any("ProcessingResources.ClusterConfig.InstanceCount: 150 is above the maximum 100" in p
               for p in problems), problems
    assert any("AppSpecification.ContainerArguments[1]: 300 characters; at most 256" in p for p in problems)
    assert len(problems) == 2


def test_placeholders_are_not_checked():
    asl = _training(TrainingJobName=KeyError)
    asl["TrainingJobName.$"] = "States.Format('abalone-train-{}', States.Hash($$.Execution.Name, 'MD5'))"
    del asl["ResourceConfig"]["InstanceCount"]
    asl["ResourceConfig"]["InstanceCount.$"] = "$.TrainingInstanceCount"
    asl["HyperParameters"]["eta.$"] = "$.eta"
    assert aws_api.validate_request("sagemaker", "CreateTrainingJob", asl) == []
    pipeline = _training(ResourceConfig__InstanceCount={"Get": "Parameters.TrainingInstanceCount"},
                         OutputDataConfig__S3OutputPath={"Std:Join": {"On": "/", "Values": ["s3://b", "x"]}})
    assert aws_api.validate_request("sagemaker", "CreateTrainingJob", pipeline) == []
    # a concrete mistake next to placeholders is still found
    asl["ResourceConfig"]["InstanceType"] = "ml.t9.huge"
    assert len(aws_api.validate_request("sagemaker", "CreateTrainingJob", asl)) == 1


def test_lambda_and_model_package_requests():
    assert aws_api.validate_request("lambda", "Invoke", {"FunctionName": "mlpipe-abalone-record-model"}) == []
    problems = aws_api.validate_request("sagemaker", "CreateModelPackage", {
        "ModelPackageGroupName": "abalone-models", "ModelApprovalStatus": "approved"})
    assert len(problems) == 1 and "ModelApprovalStatus: 'approved' is not one of" in problems[0]
    assert "Approved" in problems[0]


# --- the XGBoost 1.7-1 schema ----------------------------------------------------------------

def test_xgboost_schema_accepts_the_examples_and_aliases():
    for name in ("abalone.yaml", "quickstart.yaml"):
        doc = yaml.safe_load((EXAMPLES / name).read_text())
        assert xgb.validate(stage_named(doc, "train")["hyperparameters"]) == []
    assert xgb.validate({"num_round": 10, "learning_rate": 0.1, "reg_lambda": 2, "objective": "binary:logistic",
                         "eval_metric": "auc,error@0.7", "tree_method": "hist", "monotone_constraints": "(1,0)"}) == []


@pytest.mark.parametrize("hyperparameters, text", [
    ({"num_round": 10, "save_model_on_termination": True}, "true/false are lower case"),
    ({"num_round": 10, "objective": "multi:softmax"}, "needs num_class"),
    ({"num_round": 10, "objective": "reg:squarederror", "eval_metric": "auc"}, "'auc' applies to binary"),
    ({"num_round": 10, "eval_metric": "rmse,nope"}, "'nope' is not an XGBoost 1.7-1 evaluation metric"),
    ({"num_round": 0}, "0 is outside [1, +inf)"),
    ({"num_round": 10, "tweedie_variance_power": 2}, "outside (1, 2)"),
])
def test_xgboost_schema_refuses(hyperparameters, text):
    problems = xgb.validate(hyperparameters)
    assert problems and text in problems[0].message, problems
