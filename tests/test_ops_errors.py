"""Ops commands: clear exit-2 errors for bad input and unusable AWS, and no heavy imports."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import boto3
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from conftest import SM_ARN, assert_user_error, run_cli  # noqa: E402
from moto_server import reset  # noqa: E402

CONFIG = str(ROOT / "config" / "examples" / "abalone.yaml")


def test_nothing_deployed(moto_server):
    reset(moto_server)
    for cmd in (["status"], ["list"], ["start"], ["history", "x"], ["stop", "x"]):
        proc = run_cli("--endpoint-url", moto_server, *cmd, "--config", CONFIG)
        assert_user_error(proc, "nothing deployed yet", "mlpipe deploy")
    proc = run_cli("--endpoint-url", moto_server, "status", "--config", CONFIG, "--target", "sagemaker")
    assert_user_error(proc, "nothing deployed yet", "SageMaker pipeline mlpipe-abalone")
    proc = run_cli("--endpoint-url", moto_server, "schedule", "show", "--config", CONFIG)
    assert_user_error(proc, "no schedule")


def test_unknown_execution(state_machine):
    for cmd in ("status", "history", "stop"):
        proc = run_cli("--endpoint-url", state_machine, cmd, "nope-123", "--config", CONFIG)
        assert_user_error(proc, "execution 'nope-123' not found", "mlpipe list")


def test_no_executions_yet(state_machine):
    proc = run_cli("--endpoint-url", state_machine, "status", "--config", CONFIG)
    assert_user_error(proc, "no executions")


@pytest.mark.parametrize("param, needle", [
    ("NoSuchParam=1", "unknown parameter 'NoSuchParam'"),
    ("TrainingInstanceCount=two", "TrainingInstanceCount (Integer)"),
    ("ModelApprovalStatus=Maybe", "not one of"),
    ("novalue", "is not NAME=VALUE"),
])
def test_bad_params_send_nothing(state_machine, param, needle):
    proc = run_cli("--endpoint-url", state_machine, "start", "--config", CONFIG, "--param", param)
    assert_user_error(proc, needle)
    sfn = boto3.client("stepfunctions", endpoint_url=state_machine, region_name="us-east-1")
    assert sfn.list_executions(stateMachineArn=SM_ARN)["executions"] == []


def test_no_credentials(state_machine):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_CONFIG_FILE="/dev/null", AWS_SHARED_CREDENTIALS_FILE="/dev/null", AWS_EC2_METADATA_DISABLED="true",
               AWS_REGION="us-east-1")
    proc = subprocess.run([sys.executable, "-m", "workflows.cli", "--endpoint-url", state_machine, "status",
                           "--config", CONFIG], capture_output=True, text=True, env=env, cwd=ROOT, timeout=60)
    assert_user_error(proc, "no AWS credentials", "aws configure")


def test_unreachable_endpoint():
    proc = run_cli("--endpoint-url", "http://127.0.0.1:9", "status", "--config", CONFIG, "run-1",
                   env={"AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x", "AWS_REGION": "us-east-1"})
    assert_user_error(proc, "cannot reach the AWS endpoint", "--endpoint-url")


def test_missing_config_file(moto_server):
    proc = run_cli("--endpoint-url", moto_server, "status", "--config", "/nonexistent.yaml")
    assert_user_error(proc, "file not found")


# Every operations command, in the order a user would go (start first, so the others find an
# execution). Several fail against moto (versions, resume, approve: APIs it lacks, or an
# execution that is not waiting); what is checked is that none loads an SDK on the way.
OPS_COMMANDS = [["start", "--param", "TrainingInstanceCount=1", "--name", "run-1"], ["list"], ["status"],
                ["status", "run-1"], ["history", "run-1"], ["lineage", "run-1"], ["approve", "run-1"],
                ["reject", "run-1", "--reason", "no"], ["stop", "run-1"], ["resume", "run-1"], ["schedule", "show"],
                ["versions"], ["rollback"]]


def test_ops_never_import_the_sdks(state_machine, tmp_path):
    sm = boto3.client("sagemaker", endpoint_url=state_machine, region_name="us-east-1")
    sm.create_pipeline(PipelineName="mlpipe-abalone", RoleArn="arn:aws:iam::123456789012:role/x",
                       PipelineDefinition=json.dumps({"Version": "2020-12-01", "Steps": []}))
    code = (
        "import contextlib, io, json, sys\nfrom workflows.cli.main import main\n"
        "outcomes = []\n"
        "for target in ('stepfunctions', 'sagemaker'):\n"
        f"    for argv in {OPS_COMMANDS!r}:\n"
        "        local = ['--runs-dir', sys.argv[3]] if argv[0] in ('approve', 'reject', 'resume') else []\n"
        "        err = io.StringIO()\n"
        "        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):\n"
        "            code = main(['--endpoint-url', sys.argv[1], *argv, '--config', sys.argv[2], '--target', target,\n"
        "                         *local])\n"
        "        outcomes.append([target, argv[0], code, err.getvalue()])\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('sagemaker', 'stepfunctions'))\n"
        "print(json.dumps({'bad': bad, 'outcomes': outcomes}))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code, state_machine, CONFIG, str(tmp_path)], capture_output=True,
                          text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["bad"] == []
    assert [(t, c) for t, c, _, _ in out["outcomes"]] == [(t, argv[0]) for t in ("stepfunctions", "sagemaker")
                                                          for argv in OPS_COMMANDS]
    for target, command, code, err in out["outcomes"]:  # each ran to an answer: a result or one error line
        assert code in (0, 2) and "Traceback" not in err, (target, command, code, err)
    started = [c for t, c, code, _ in out["outcomes"] if c == "start" and code == 0]
    assert len(started) == 2


def test_sagemaker_history_and_stop_with_stubber(tmp_path):
    """moto implements neither ListPipelineExecutionSteps nor StopPipelineExecution."""
    import argparse
    from datetime import datetime, timezone

    from botocore.stub import Stubber

    from workflows.cli import ops

    sm = boto3.client("sagemaker", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    arn = "arn:aws:sagemaker:us-east-1:123456789012:pipeline/mlpipe-abalone/execution/abc123"
    t0, t1 = datetime(2026, 1, 1, tzinfo=timezone.utc), datetime(2026, 1, 1, 0, 5, tzinfo=timezone.utc)
    described = {"PipelineExecutionArn": arn, "PipelineExecutionDisplayName": "run-1",
                 "PipelineExecutionStatus": "Executing", "CreationTime": t0}
    with Stubber(sm) as stub:
        stub.add_response("describe_pipeline_execution", described, {"PipelineExecutionArn": arn})
        stub.add_response("list_pipeline_execution_steps", {"PipelineExecutionSteps": [
            {"StepName": "preprocess", "StepStatus": "Succeeded", "StartTime": t0, "EndTime": t1,
             "Metadata": {"ProcessingJob": {"Arn": "arn:aws:sagemaker:us-east-1:123456789012:processing-job/p"}}},
            {"StepName": "train", "StepStatus": "Failed", "StartTime": t1, "EndTime": t1,
             "FailureReason": "boom"}]},
            {"PipelineExecutionArn": arn, "SortOrder": "Ascending", "MaxResults": 100})
        stub.add_response("describe_pipeline_execution", described, {"PipelineExecutionArn": arn})
        stub.add_response("stop_pipeline_execution", {"PipelineExecutionArn": arn},
                          {"PipelineExecutionArn": arn})
        args = argparse.Namespace(config=CONFIG, target="sagemaker", execution=arn, output="json",
                                  endpoint_url=None, region="us-east-1", profile=None)
        import io
        from contextlib import redirect_stdout

        buf = io.StringIO()
        with redirect_stdout(buf):
            assert ops.history(args, clients=lambda service: sm) == 0
        out = json.loads(buf.getvalue())
        assert [s["stage"] for s in out["stages"]] == ["preprocess", "train"]
        assert out["stages"][0]["duration"] == "5m00s" and out["stages"][1]["error"] == "boom"
        assert out["stages"][0]["type"] == "ProcessingJob" and out["stages"][1]["status"] == "failed"
        with redirect_stdout(io.StringIO()):
            assert ops.stop(args, clients=lambda service: sm) == 0
        stub.assert_no_pending_responses()



def test_stop_twice_is_a_user_error(state_machine):
    sfn = boto3.client("stepfunctions", endpoint_url=state_machine, region_name="us-east-1")
    sfn.start_execution(stateMachineArn=SM_ARN, name="once")
    assert run_cli("--endpoint-url", state_machine, "stop", "once", "--config", CONFIG).returncode == 0
    assert_user_error(run_cli("--endpoint-url", state_machine, "stop", "once", "--config", CONFIG),
                       "already ended (ABORTED)")


def test_sfn_history_groups_events_by_state():
    from datetime import datetime, timedelta, timezone

    from workflows.ops.stepfunctions import stages as sfn_stages

    t = datetime(2026, 1, 1, tzinfo=timezone.utc)
    ev = lambda i, kind, s=0, **d: {"id": i, "type": kind, "timestamp": t + timedelta(seconds=s), **d}  # noqa: E731
    events = [
        ev(1, "ExecutionStarted"),
        ev(2, "PassStateEntered", 0, stateEnteredEventDetails={"name": "initialize"}),
        ev(3, "PassStateExited", 1, stateExitedEventDetails={"name": "initialize"}),
        ev(4, "TaskStateEntered", 1, stateEnteredEventDetails={"name": "train"}),
        ev(5, "TaskScheduled", 1, taskScheduledEventDetails={"resourceType": "sagemaker"}),
        ev(6, "TaskFailed", 95, taskFailedEventDetails={"error": "SageMaker.X", "cause": "capacity"}),
        ev(7, "TaskStateExited", 95, stateExitedEventDetails={"name": "train"}),
        ev(8, "FailStateEntered", 95, stateEnteredEventDetails={"name": "pipeline-failed"}),
        ev(9, "ExecutionFailed", 95, executionFailedEventDetails={"error": "SageMaker.X"}),
    ]
    rows = {r["stage"]: r for r in sfn_stages(events)}
    assert rows["initialize"]["status"] == "succeeded" and rows["initialize"]["duration"] == "1s"
    assert rows["train"]["status"] == "failed" and rows["train"]["duration"] == "1m34s"
    assert rows["train"]["error"] == "SageMaker.X capacity" and rows["train"]["type"] == "Task"
    assert rows["pipeline-failed"]["status"] == "failed"
