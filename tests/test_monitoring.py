"""Model monitoring (issue 14, item 2): ``kind: baseline`` (Model Monitor's statistics.json and
constraints.json: the analyzer image on Step Functions, a QualityCheckStep on SageMaker, a step
script locally), an endpoint's data-quality monitoring schedule whose violations notify the
topic, and ``mlpipe monitor``, which checks new data or captured requests locally."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import EXAMPLES, all_steps, changed_config, run_cli, stage_named, statelint

from steps.code import baseline as mm
from workflows.local import monitor

CONFIG = EXAMPLES / "abalone_monitored.yaml"
SCHEDULE = "mlpipe-abalone-monitored-deploy-data-quality"


def _frame(rows: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame([[f"{v:.10g}" for v in row] for row in rows], columns=mm.column_names(rows.shape[1]))


def _baseline(rows: np.ndarray) -> tuple[dict, dict]:
    stats = mm.statistics(_frame(rows))
    return stats, mm.constraints(stats)


# --- config ----------------------------------------------------------------------------------

def _bad(tmp_path, edit) -> str:
    proc = run_cli("describe", "--config", str(changed_config(tmp_path, edit, CONFIG)))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    return proc.stderr


def test_the_example_wires_the_baseline_into_the_endpoint():
    from steps.pipeline import load_spec

    spec = load_spec(CONFIG)
    base, deploy = spec.stage("data-baseline"), spec.stage("deploy")
    assert base.kind == "baseline" and base.outputs == ("statistics", "constraints") and base.header is False
    assert "--baseline" in spec.stage("preprocess").arguments
    assert deploy.monitoring_schedule == "cron(0 * ? * * *)" and "data-baseline" in deploy.upstream
    assert {k: (v.stage, v.output) for k, v in deploy.inputs.items() if k != "model"} == {
        "statistics": ("data-baseline", "statistics"), "constraints": ("data-baseline", "constraints")}


def test_bad_monitoring_settings_name_the_field_and_the_fix(tmp_path):
    err = _bad(tmp_path, lambda d: stage_named(d, "deploy")["monitoring"].update(schedule="cron(0 3 ? * MON *)"))
    assert "monitoring.schedule" in err and "Model Monitor" in err and "fix: hourly cron(0 * ? * * *)" in err
    err = _bad(tmp_path, lambda d: stage_named(d, "deploy")["monitoring"].update(baseline="train"))
    assert "monitoring.baseline" in err and "'train' is not a baseline stage" in err and "fix: use data-baseline" in err
    err = _bad(tmp_path, lambda d: stage_named(d, "deploy").update(data_capture={"enabled": False}))
    assert "data_capture" in err and "data capture is off" in err
    err = _bad(tmp_path, lambda d: stage_named(d, "data-baseline").update(data="preprocess.nope"))
    assert "has no output 'nope'" in err


# --- rendering -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def rendered():
    from steps.pipeline import load_spec
    from workflows.render import definition

    spec = load_spec(CONFIG)
    return {t: definition(spec, t) for t in ("stepfunctions", "sagemaker")}   # checked against botocore


def test_state_machine_runs_the_analyzer_and_attaches_the_schedule(rendered):
    from workflows.render.asl import states

    asl = rendered["stepfunctions"]
    statelint(asl)
    st = states(asl)
    job = st["data-baseline"]
    params = job["Parameters"]
    assert params["AppSpecification"]["ImageUri"].endswith(".amazonaws.com/sagemaker-model-monitor-analyzer")
    assert params["Environment"] == {
        "dataset_format": json.dumps({"csv": {"header": False, "output_columns_position": "START"}}),
        "dataset_source": "/opt/ml/processing/input/baseline_dataset_input",
        "output_path": "/opt/ml/processing/output", "publish_cloudwatch_metrics": "Disabled"}
    assert params["ProcessingInputs"][0]["S3Input"]["S3Uri.$"] == "$.stages.preprocess.baseline"
    assert job["Resource"].endswith(":sagemaker:createProcessingJob.sync")
    assert job["ResultSelector"]["statistics.$"].endswith("'{}/statistics.json', "
                                                          "$.ProcessingOutputConfig.Outputs[0].S3Output.S3Uri)")
    # after the endpoint: wait until InService, then create or update the schedule
    assert st["deploy-done"]["Next"] == "deploy-status"
    ready = st["deploy-in-service?"]
    assert {c["StringEquals"]: c["Next"] for c in ready["Choices"]} == {"InService": "deploy-schedule-find",
                                                                        "Failed": "deploy-failed"}
    assert ready["Default"] == "deploy-wait" and st["deploy-wait"]["Next"] == "deploy-status"
    assert st["deploy-schedule-exists?"]["Choices"][0]["Next"] == "deploy-schedule-update"
    assert st["deploy-schedule-exists?"]["Default"] == "deploy-schedule-create"
    create = st["deploy-schedule-create"]
    assert create["Resource"].endswith(":aws-sdk:sagemaker:createMonitoringSchedule")
    assert st["deploy-schedule-update"]["Resource"].endswith(":aws-sdk:sagemaker:updateMonitoringSchedule")
    config = create["Parameters"]["MonitoringScheduleConfig"]
    assert create["Parameters"]["MonitoringScheduleName"] == SCHEDULE
    assert config["MonitoringType"] == "DataQuality"
    assert config["ScheduleConfig"] == {"ScheduleExpression": "cron(0 * ? * * *)"}
    job_def = config["MonitoringJobDefinition"]
    assert job_def["BaselineConfig"] == {"StatisticsResource": {"S3Uri.$": "$.stages.data_baseline.statistics"},
                                         "ConstraintsResource": {"S3Uri.$": "$.stages.data_baseline.constraints"}}
    assert job_def["MonitoringInputs"][0]["EndpointInput"]["EndpointName"] == "mlpipe-abalone-monitored"
    assert st["deploy-monitored"]["Next"] == "pipeline-succeeded"


def test_pipeline_has_a_quality_check_step_and_a_scheduler_step(rendered):
    steps = {s["Name"]: s for s in all_steps(rendered["sagemaker"]["Steps"])}
    check = steps["data-baseline"]
    assert check["Type"] == "QualityCheck" and check["CheckType"] == "DATA_QUALITY"
    assert check["SkipCheck"] is True and check["RegisterNewBaseline"] is True
    args = check["Arguments"]
    assert args["ProcessingInputs"][0]["S3Input"]["S3Uri"] == {
        "Get": "Steps.preprocess.ProcessingOutputConfig.Outputs['baseline'].S3Output.S3Uri"}
    assert args["Environment"]["dataset_source"] == "/opt/ml/processing/input/baseline_dataset_input"
    lam = steps["deploy-monitoring"]
    assert lam["Type"] == "Lambda" and lam["FunctionArn"].endswith(":function:mlpipe-abalone-monitored-deploy-monitoring")
    assert lam["Arguments"]["statistics_uri"] == {"Get": "Steps.data-baseline.CalculatedBaselineStatistics"}
    assert lam["Arguments"]["endpoint_name"] == {"Get": "Steps.deploy.EndpointName"}   # after the Endpoint step
    assert lam["Arguments"]["schedule_name"] == SCHEDULE


def test_both_targets_send_the_same_baseline_job(rendered):
    from workflows.render.asl import states

    sfn = states(rendered["stepfunctions"])["data-baseline"]["Parameters"]
    sm = next(s for s in rendered["sagemaker"]["Steps"] if s["Name"] == "data-baseline")["Arguments"]
    for key in ("AppSpecification", "Environment", "ProcessingResources", "StoppingCondition", "RoleArn"):
        assert sfn[key] == sm[key], key
    (a,), (b,) = sfn["ProcessingInputs"], sm["ProcessingInputs"]
    assert {k: v for k, v in a["S3Input"].items() if k != "S3Uri.$"} == {k: v for k, v in b["S3Input"].items()
                                                                          if k != "S3Uri"}
    (a,), (b,) = sfn["ProcessingOutputConfig"]["Outputs"], sm["ProcessingOutputConfig"]["Outputs"]
    assert (a["OutputName"], a["S3Output"]["LocalPath"]) == (b["OutputName"], b["S3Output"]["LocalPath"])


def test_a_region_without_the_analyzer_image_is_refused_clearly():
    from config.errors import UserError
    from steps.pipeline import load_spec
    from workflows.render import definition

    spec = load_spec(CONFIG, env={"MLPIPE_AWS_REGION": "ca-west-1"})
    with pytest.raises(UserError, match="analyzer image is not available in ca-west-1") as err:
        definition(spec, "stepfunctions")
    assert "us-east-1" in err.value.fix


def test_the_request_checks_cover_the_new_requests(rendered):
    """A value AWS would refuse in a monitoring request or a quality check is caught."""
    import copy

    from workflows.render import requests
    from workflows.render.asl import states

    asl = copy.deepcopy(rendered["stepfunctions"])
    states(asl)["deploy-schedule-create"]["Parameters"]["MonitoringScheduleConfig"]["MonitoringJobDefinition"][
        "MonitoringResources"]["ClusterConfig"]["InstanceType"] = "ml.m5.huge"
    assert any("deploy-schedule-create (CreateMonitoringSchedule)" in p for p in requests.problems("stepfunctions", asl))
    doc = copy.deepcopy(rendered["sagemaker"])
    next(s for s in doc["Steps"] if s["Name"] == "data-baseline")["Arguments"]["StoppingCondition"][
        "MaxRuntimeInSeconds"] = 0
    assert any("step data-baseline (CreateProcessingJob)" in p for p in requests.problems("sagemaker", doc))


# --- the SageMaker target's scheduler function ------------------------------------------------

def _event(**kw):
    return {"schedule_name": SCHEDULE, "endpoint_name": "mlpipe-abalone-monitored",
            "statistics_uri": "s3://b/p/runs/e/data-baseline/baseline/statistics.json",
            "constraints_uri": "s3://b/p/runs/e/data-baseline/baseline/constraints.json",
            "schedule_expression": "cron(0 * ? * * *)", "pipeline": "abalone-monitored",
            "image_uri": "156813124566.dkr.ecr.us-east-1.amazonaws.com/sagemaker-model-monitor-analyzer",
            "role_arn": "arn:aws:iam::123456789012:role/mlpipe-abalone-monitored-sagemaker",
            "output_uri": "s3://b/p/monitoring/mlpipe-abalone-monitored", "instance_type": "ml.m5.xlarge",
            "volume_gb": 30, "max_runtime_seconds": 3600, **kw}


def test_scheduler_function_creates_then_updates_with_valid_requests():
    """botocore's Stubber checks each request against the API's input shape."""
    import boto3
    from botocore.stub import Stubber

    from lambda_handlers.monitoring_schedule import handler, schedule_config

    sm = boto3.client("sagemaker", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    config = schedule_config(**{k: v for k, v in _event().items() if k not in ("schedule_name", "pipeline")})
    arn = f"arn:aws:sagemaker:us-east-1:123456789012:monitoring-schedule/{SCHEDULE}"
    with Stubber(sm) as stub:
        stub.add_client_error("describe_monitoring_schedule", "ResourceNotFound", "Could not find schedule")
        stub.add_response("create_monitoring_schedule", {"MonitoringScheduleArn": arn}, {
            "MonitoringScheduleName": SCHEDULE, "MonitoringScheduleConfig": config,
            "Tags": [{"Key": "mlpipe:pipeline", "Value": "abalone-monitored"}]})
        assert handler(_event(), None, sagemaker_client=sm)["action"] == "created"
        stub.add_response("describe_monitoring_schedule", {
            "MonitoringScheduleArn": arn, "MonitoringScheduleName": SCHEDULE, "MonitoringScheduleStatus": "Scheduled",
            "CreationTime": "2026-01-01T00:00:00Z", "LastModifiedTime": "2026-01-01T00:00:00Z",
            "MonitoringScheduleConfig": config})
        stub.add_response("update_monitoring_schedule", {"MonitoringScheduleArn": arn},
                          {"MonitoringScheduleName": SCHEDULE, "MonitoringScheduleConfig": config})
        assert handler(_event(), None, sagemaker_client=sm)["action"] == "updated"
        stub.assert_no_pending_responses()


def test_scheduler_function_refuses_a_bad_event():
    from lambda_handlers.errors import InvalidEventError
    from lambda_handlers.monitoring_schedule import handler

    with pytest.raises(InvalidEventError, match="statistics_uri"):
        handler(_event(statistics_uri="not-s3"), None, sagemaker_client=object())


# --- IAM and infrastructure -----------------------------------------------------------------

def test_iam_is_scoped_to_the_schedule_with_no_wildcard_actions():
    from steps.pipeline import load_spec
    from workflows.infra import iam

    spec = load_spec(CONFIG)
    arn = f"arn:aws:sagemaker:us-east-1:123456789012:monitoring-schedule/{SCHEDULE}"
    for target in ("stepfunctions", "sagemaker"):
        for role in iam.roles(spec, target):
            for name, doc in role.policies.items():
                assert not iam.wildcard_actions(doc), (role.name, name)
                for st in doc["Statement"]:
                    if any("MonitoringSchedule" in a and a != "sagemaker:ListMonitoringSchedules" for a in st["Action"]):
                        assert st["Resource"] == [arn], st
    sfn = {a for r in iam.roles(spec, "stepfunctions") for d in r.policies.values() for st in d["Statement"]
           for a in st["Action"]}
    assert {"sagemaker:CreateMonitoringSchedule", "sagemaker:UpdateMonitoringSchedule",
            "sagemaker:ListMonitoringSchedules", "sagemaker:DescribeEndpoint"} <= sfn
    lam = next(r for r in iam.roles(spec, "sagemaker") if r.service == "lambda")
    assert "mlpipe-sagemaker-monitoring-scheduler" in lam.policies
    fn = next(f for f in iam.functions(spec, "sagemaker", spec.account_id, spec.region) if f.scheduler)
    assert fn.handler == iam.SCHEDULER_HANDLER
    assert not any(f.scheduler for f in iam.functions(spec, "stepfunctions", spec.account_id, spec.region))


def test_violations_rule_notifies_the_topic_in_deploy_and_export(moto_server, tmp_path, capsys):
    """The rule is in the one resource list (deploy) and the template (export); its pattern
    matches a monitoring execution that found violations, and nothing else (moto's EventBridge
    pattern matcher: its TestEventPattern API is a stub); the topic lets it publish."""
    import argparse
    import subprocess
    import sys

    from moto.events.models import EventPattern

    from moto_server import reset
    from steps.pipeline import load_spec
    from workflows.aws.session import from_args
    from workflows.cli.main import main   # in-process: the SDKs are imported once
    from workflows.infra import iam, plan

    spec = load_spec(CONFIG)
    schedule_arn = f"arn:aws:sagemaker:us-east-1:123456789012:monitoring-schedule/{SCHEDULE}"
    for target in ("stepfunctions", "sagemaker"):
        reset(moto_server)
        d = plan.prepare(str(CONFIG), target, from_args(argparse.Namespace(endpoint_url=moto_server,
                                                                           region="us-east-1", profile=None)))
        rows = plan.deploy(d, apply=False)
        name = f"mlpipe-abalone-monitored-{target}-monitoring"
        assert ("eventbridge rule", name) in {(r["resource"], r["name"]) for r in rows}
        rule = next(s.resource for s in d.steps if s.resource.name == name)
        assert rule.props["targets"] == [{"Id": "notify", "Arn": "arn:aws:sns:us-east-1:123456789012:"
                                                                 "mlpipe-abalone-monitored-notifications"}]
        event = {"id": "1", "source": "aws.sagemaker", "detail-type": "SageMaker Processing Job State Change",
                 "account": "123456789012", "time": "2026-01-01T01:05:00Z", "region": "us-east-1", "resources": [],
                 "detail": {"ProcessingJobName": "model-monitoring-202601010100-abc", "ProcessingJobStatus": "Completed",
                            "MonitoringScheduleArn": schedule_arn,
                            "ExitMessage": "CompletedWithViolations: Job completed successfully with 3 violations."}}
        pattern = EventPattern.load(json.dumps(rule.props["pattern"]))
        assert pattern.matches_event(event)
        event["detail"]["ExitMessage"] = "Completed: Job completed successfully with no violations."
        assert not pattern.matches_event(event)
        event["detail"].update(ExitMessage="CompletedWithViolations: 1", MonitoringScheduleArn=schedule_arn + "-other")
        assert not pattern.matches_event(event)
        out = tmp_path / f"{target}.json"
        assert main(["export", "cloudformation", "--config", str(CONFIG), "--target", target, "--out", str(out)]) == 0
        capsys.readouterr()
        lint = subprocess.run([str(Path(sys.executable).with_name("cfn-lint")), str(out)], capture_output=True, text=True)
        assert lint.returncode == 0 and not lint.stdout.strip(), lint.stdout + lint.stderr
        resources = json.loads(out.read_text())["Resources"]
        assert any(r["Type"] == "AWS::Events::Rule" and r["Properties"]["Name"] == name for r in resources.values())
        functions = {r["Properties"]["FunctionName"] for r in resources.values() if r["Type"] == "AWS::Lambda::Function"}
        assert ("mlpipe-abalone-monitored-deploy-monitoring" in functions) == (target == "sagemaker")
    policy = iam.topic_policy(spec, spec.account_id, spec.region)
    allowed = next(s for s in policy["Statement"] if s["Sid"] == "StatusRule")["Condition"]["ArnEquals"]["aws:SourceArn"]
    assert all(f"rule/mlpipe-abalone-monitored-{t}-monitoring" in " ".join(allowed) for t in ("stepfunctions", "sagemaker"))


def test_describe_graph_and_iam_policy_show_monitoring():
    doc = json.loads(run_cli("describe", "--config", str(CONFIG), "--output", "json").stdout)
    stages = {s["name"]: s for s in doc["stages"]}
    assert stages["data-baseline"]["kind"] == "baseline" and stages["data-baseline"]["baseline"]["header"] is False
    assert stages["deploy"]["monitoring"] == {"schedule": "cron(0 * ? * * *)", "baseline": "data-baseline",
                                              "instance_type": "ml.m5.xlarge"}
    graph = run_cli("graph", "--config", str(CONFIG)).stdout
    assert 'data_baseline["data-baseline (baseline)"]' in graph and "data_baseline --> deploy" in graph
    assert "deploy (endpoint + monitoring)" in graph and "classDef baseline" in graph
    policy = run_cli("iam-policy", "--config", str(CONFIG), "--target", "sagemaker")
    assert policy.returncode == 0 and "monitoring-schedule/" + SCHEDULE in policy.stdout


# --- the local baseline and checks ----------------------------------------------------------

def test_baseline_files_follow_model_monitors_schema():
    rng = np.random.default_rng(0)
    rows = np.column_stack([rng.normal(size=3000), rng.integers(0, 2, 3000)])
    stats, cons = _baseline(rows)
    assert stats["dataset"] == {"item_count": 3000}
    f0, f1 = stats["features"]
    assert (f0["name"], f0["inferred_type"], f1["inferred_type"]) == ("_c0", "Fractional", "Integral")
    num = f0["numerical_statistics"]
    assert num["common"] == {"num_present": 3000, "num_missing": 0}
    assert set(num) == {"common", "mean", "sum", "std_dev", "min", "max", "distribution"}
    kll = num["distribution"]["kll"]
    assert len(kll["buckets"]) == 10 and sum(b["count"] for b in kll["buckets"]) == 3000
    assert kll["sketch"]["parameters"] == {"c": 0.64, "k": 2048.0} and len(kll["sketch"]["data"][0]) == 2048
    assert cons["features"][1] == {"name": "_c1", "inferred_type": "Integral", "completeness": 1.0,
                                   "num_constraints": {"is_non_negative": True}}
    dist = cons["monitoring_config"]["distribution_constraints"]
    assert dist["comparison_threshold"] == 0.1 and dist["comparison_method"] == "Robust"
    strings = mm.constraints(mm.statistics(pd.DataFrame({"sex": ["M", "F", "I", None]})))["features"][0]
    assert strings["inferred_type"] == "String" and strings["completeness"] == 0.75
    assert strings["string_constraints"] == {"domains": ["F", "I", "M"]}


def test_checks_flag_shift_types_completeness_columns_and_pass_the_baseline_itself():
    rng = np.random.default_rng(1)
    rows = rng.normal(size=(2000, 3))
    stats, cons = _baseline(rows)
    assert monitor.check(stats, cons, _frame(rows))[1] == []
    assert monitor.check(stats, cons, _frame(rng.normal(size=(120, 3))))[1] == []   # a fresh small sample: noise
    shifted = rows.copy()
    shifted[:, 2] += 3 * shifted[:, 2].std()
    (v,) = monitor.check(stats, cons, _frame(shifted))[1]
    assert (v["feature_name"], v["constraint_check_type"]) == ("_c2", "baseline_drift_check")
    assert v["description"].startswith("Baseline drift distance: 0.") and "exceeds threshold: 0.1" in v["description"]
    broken = _frame(rows[:100])
    broken.loc[:9, "_c0"] = "n/a"
    broken.loc[10:19, "_c1"] = None
    found = {(v["feature_name"], v["constraint_check_type"]) for v in monitor.check(stats, cons, broken)[1]}
    assert {("_c0", "data_type_check"), ("_c1", "completeness_check")} <= found
    fewer = monitor.check(stats, cons, _frame(rows[:, :2]))[1]
    assert [v["constraint_check_type"] for v in fewer] == ["missing_column_check"]
    sex_stats = mm.statistics(pd.DataFrame({"sex": ["M", "F", "I"] * 100}))
    sex = monitor.check(sex_stats, mm.constraints(sex_stats), pd.DataFrame({"sex": ["M"] * 90 + ["X"] * 10}))[1]
    assert {v["constraint_check_type"] for v in sex} == {"categorical_values_check", "baseline_drift_check"}


def test_headerless_rows_are_matched_to_named_features_by_position(tmp_path):
    stats = mm.statistics(pd.DataFrame({"length": ["0.5", "0.6", "0.7"] * 50, "rings": ["9", "10", "11"] * 50}))
    for name, doc in (("statistics.json", stats), ("constraints.json", mm.constraints(stats))):
        (tmp_path / name).write_text(json.dumps(doc))
    assert monitor.header_of(mm.constraints(stats)) is True
    (tmp_path / "new.csv").write_text("length,rings\n" + "0.5,9\n0.6,10\n0.7,11\n" * 7)
    (tmp_path / "capture.jsonl").write_text(json.dumps({"captureData": {"endpointInput": {
        "observedContentType": "text/csv", "data": "0.5,9\n0.6,10\n0.7,11\n" * 7}}}) + "\n")
    for data in ("new.csv", "capture.jsonl"):
        result = monitor.execute(str(tmp_path / "statistics.json"), str(tmp_path / "constraints.json"),
                                 str(tmp_path / data), str(tmp_path / "out"))
        assert result["rows"] == 21 and result["violations"] == [], data


def test_aws_lineage_records_the_baseline_and_the_schedule(rendered):
    from workflows.ops.lineage import sfn_record

    output = {"stages": {"data_baseline": {"job_name": "j", "statistics": "s3://b/s.json", "constraints": "s3://b/c.json"},
                         "deploy": {"endpoint_name": "mlpipe-abalone-monitored", "monitoring_schedule": SCHEDULE}}}
    record = sfn_record(json.dumps(rendered["stepfunctions"]), {"name": "e1", "status": "SUCCEEDED", "input": "{}",
                                                                "output": json.dumps(output)})
    assert record["baseline"] == {"data_baseline": {"statistics": "s3://b/s.json", "constraints": "s3://b/c.json"}}
    assert record["monitoring"] == {"deploy": SCHEDULE}


def test_captured_requests_are_read_as_csv(tmp_path):
    capture = tmp_path / "capture.jsonl"
    capture.write_text("".join(json.dumps({"captureData": {"endpointInput": {
        "mode": "INPUT", "observedContentType": "text/csv", "data": body}}}) + "\n" for body in ("1,2\n3,4\n", "5,6\n")))
    frame = monitor.load_data(capture, header=False)
    assert frame.values.tolist() == [["1", "2"], ["3", "4"], ["5", "6"]]
    capture.write_text('{"nope": 1}\n')
    with pytest.raises(monitor.MonitorInputError, match="not a data-capture record"):
        monitor.load_data(capture, header=False)


# --- a local run, and `mlpipe monitor` ------------------------------------------------------

@pytest.fixture(scope="module")
def local_run(tmp_path_factory):
    from conftest import ABALONE_CSV

    if not ABALONE_CSV.is_file():
        pytest.skip(f"{ABALONE_CSV} is not here (CI has it; a fresh clone does not)")
    runs = tmp_path_factory.mktemp("runs")
    proc = run_cli("run", "--config", str(CONFIG), "--input", str(ABALONE_CSV), "--target", "8", "--categorical", "0",
                   "--no-header", "--runs-dir", str(runs), "--output", "json")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return runs, json.loads(proc.stdout)


def test_local_run_computes_the_baseline_and_checks_the_captured_requests(local_run):
    runs, doc = local_run
    run_dir = Path(doc["run_dir"])
    record = json.loads((run_dir / "run.json").read_text())
    assert record["status"] == "Succeeded" and record["stages"]["data-baseline"]["status"] == "Succeeded"
    folder = run_dir / "stages/data-baseline/opt/ml/processing/output"
    stats = json.loads((folder / "statistics.json").read_text())
    cons = json.loads((folder / "constraints.json").read_text())
    train = np.loadtxt(run_dir / "stages/preprocess/opt/ml/processing/train/train.csv", delimiter=",")
    assert stats["dataset"]["item_count"] == len(train) and len(cons["features"]) == train.shape[1] - 1
    assert [f["inferred_type"] for f in cons["features"]][-3:] == ["Integral"] * 3   # one-hot sex
    deploy = record["stages"]["deploy"]["outputs"]
    assert deploy["monitoring_violations"]["value"] == 0
    report = run_dir / "stages/deploy" / deploy["monitoring"]["path"] / "constraint_violations.json"
    assert json.loads(report.read_text()) == {"violations": []}
    assert set(record["lineage"]["baseline"]["data-baseline"]) == {"statistics", "constraints"}


def _monitor(capsys, *argv: str) -> tuple[int, str, str]:
    """`mlpipe monitor` in-process (the real entry point runs once, below, for its exit code)."""
    from workflows.cli.main import main

    capsys.readouterr()
    code = main(["monitor", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_monitor_passes_the_training_data_and_flags_a_three_sigma_shift(local_run, tmp_path, capsys):
    runs, doc = local_run
    run_id, run_dir = doc["run_id"], Path(doc["run_dir"])
    features = run_dir / "stages/preprocess/opt/ml/processing/baseline/baseline.csv"
    code, out, err = _monitor(capsys, run_id, "--data", str(features), "--runs-dir", str(runs), "--out", str(tmp_path / "a"))
    assert code == 0, out + err
    assert json.loads((tmp_path / "a/constraint_violations.json").read_text()) == {"violations": []}
    assert (tmp_path / "a/statistics.json").is_file()

    rows = np.loadtxt(features, delimiter=",")
    rows[:, 2] += 3 * rows[:, 2].std()
    shifted = tmp_path / "shifted.csv"
    np.savetxt(shifted, rows, fmt="%.10g", delimiter=",")
    drift = run_cli("monitor", run_id, "--data", str(shifted), "--runs-dir", str(runs), "--out", str(tmp_path / "b"),
                    "--output", "json")
    assert drift.returncode == 1, drift.stdout + drift.stderr
    violations = json.loads((tmp_path / "b/constraint_violations.json").read_text())["violations"]
    assert [(v["feature_name"], v["constraint_check_type"]) for v in violations] == [("_c2", "baseline_drift_check")]
    assert json.loads(drift.stdout)["violations"] == violations

    code, out, _ = _monitor(capsys, run_id, "--runs-dir", str(runs), "--out", str(tmp_path / "c"))   # the endpoint's
    assert code == 0 and "rows of" in out and "capture.jsonl" in out

    version = json.loads(run_cli("models", "list", "--runs-dir", str(runs), "--output", "json").stdout)[0]
    code, out, _ = _monitor(capsys, f"{version['group']}/{version['version']}", "--data", str(shifted),
                            "--runs-dir", str(runs), "--out", str(tmp_path / "d"))
    assert code == 1 and "baseline_drift_check" in out


def test_monitor_checks_what_mlpipe_serve_captured(local_run, tmp_path, capsys):
    import re
    import subprocess
    import sys
    import urllib.request

    from conftest import ROOT

    runs, doc = local_run
    features = Path(doc["run_dir"]) / "stages/preprocess/opt/ml/processing/baseline/baseline.csv"
    rows = np.loadtxt(features, delimiter=",")[:300]
    rows[:, 0] += 3 * rows[:, 0].std()
    capture = tmp_path / "captured.jsonl"
    server = subprocess.Popen([sys.executable, "-m", "workflows.cli", "serve", doc["run_id"], "--port", "0",
                               "--capture", str(capture), "--runs-dir", str(runs)], cwd=ROOT,
                              stderr=subprocess.PIPE, text=True)
    try:
        url = re.search(r"http://127\.0\.0\.1:\d+", server.stderr.readline()).group(0)
        for start in range(0, len(rows), 50):
            body = "".join(",".join(f"{v:.10g}" for v in r) + "\n" for r in rows[start:start + 50]).encode()
            request = urllib.request.Request(f"{url}/invocations", data=body, headers={"Content-Type": "text/csv"})
            with urllib.request.urlopen(request, timeout=30) as answer:
                assert answer.status == 200
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert len(capture.read_text().splitlines()) == 6
    code, out, _ = _monitor(capsys, doc["run_id"], "--data", str(capture), "--runs-dir", str(runs),
                            "--out", str(tmp_path / "r"))
    assert code == 1 and "300 rows" in out and "_c0" in out and "baseline_drift_check" in out


def test_monitor_refuses_bad_input_with_exit_2(local_run, tmp_path, capsys):
    runs, doc = local_run
    run_id = doc["run_id"]
    for argv, words in (
            ([run_id, "--data", str(tmp_path / "missing.csv")], "no such file"),
            (["no-such-run", "--data", str(tmp_path / "x.csv")], "no local run"),
            ([run_id, "--data", str(_empty(tmp_path))], "no rows"),
            ([run_id, "--baseline", "train", "--data", str(_empty(tmp_path))], "not a baseline stage")):
        code, _, err = _monitor(capsys, *argv, "--runs-dir", str(runs))
        assert code == 2 and err.startswith("error: ") and words in err and "fix:" in err, (argv, err)


def _empty(tmp_path: Path) -> Path:
    path = tmp_path / "empty.csv"
    path.write_text("")
    return path
