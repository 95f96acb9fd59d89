"""Every hint that names an ops command is a command a person can paste: it carries --config
(the ops commands read the pipeline's name and region from it) and --target when the target is
not the default (stepfunctions). Where moto can answer, the hint is run as printed."""

from __future__ import annotations

import argparse
import io
import re
import shlex
from contextlib import redirect_stdout
from datetime import datetime, timezone

import boto3
import pytest
from conftest import EXAMPLES, run_cli
from moto_server import reset

from config.errors import UserError

CONFIG = str(EXAMPLES / "abalone.yaml")
PIPELINE_EXECUTION = "arn:aws:sagemaker:us-east-1:123456789012:pipeline/mlpipe-abalone/execution/abc123"


def hints(text: str) -> list[str]:
    """The commands quoted in backticks in an error's fix, or in a message."""
    return re.findall(r"`(mlpipe [^`]*)`", text)


def one_error(proc) -> str:
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr and proc.stderr.count("error:") == 1, proc.stderr
    return proc.stderr


def paste(url: str, hint: str):
    """Run a hint as printed (against the moto server)."""
    argv = shlex.split(hint)
    assert argv[0] == "mlpipe"
    return run_cli("--endpoint-url", url, *argv[1:])


def test_step_functions_hints_carry_the_config_and_work_as_printed(running):
    err = one_error(run_cli("--endpoint-url", running, "resume", "run-1", "--config", CONFIG))
    assert hints(err) == [f"mlpipe status run-1 --config {CONFIG}", f"mlpipe stop run-1 --config {CONFIG}"], err

    err = one_error(run_cli("--endpoint-url", running, "approve", "run-1", "--config", CONFIG))
    assert "not waiting for an approval" in err
    assert hints(err) == [f"mlpipe history run-1 --config {CONFIG}"], err
    for hint in hints(err) + [f"mlpipe status run-1 --config {CONFIG}"]:
        proc = paste(running, hint)
        assert proc.returncode == 0 and "run-1" in proc.stdout, (hint, proc.stderr)

    stopped = paste(running, f"mlpipe stop run-1 --config {CONFIG}")  # the resume hint's second command
    assert stopped.returncode == 0 and "stopped" in stopped.stdout, stopped.stderr
    err = one_error(run_cli("--endpoint-url", running, "approve", "run-1", "--config", CONFIG))
    assert "ABORTED, not waiting for an approval" in err
    assert hints(err) == [f"mlpipe list --config {CONFIG}"], err
    listed = paste(running, hints(err)[0])
    assert listed.returncode == 0 and "run-1" in listed.stdout and "ABORTED" in listed.stdout


def _sagemaker_args(command: str, **extra) -> argparse.Namespace:
    return argparse.Namespace(config=CONFIG, target="sagemaker", execution=PIPELINE_EXECUTION, output="table",
                              endpoint_url=None, region="us-east-1", profile=None, local=False, runs_dir=None,
                              command=command, **extra)


def test_sagemaker_hints_carry_the_config_and_the_target():
    """moto has no ListPipelineExecutionSteps and finishes its executions at once: a Stubber
    answers instead."""
    from botocore.stub import Stubber

    from workflows.cli import ops

    sm = boto3.client("sagemaker", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    executing = {"PipelineExecutionArn": PIPELINE_EXECUTION, "PipelineExecutionDisplayName": "run-1",
                 "PipelineExecutionStatus": "Executing", "CreationTime": datetime(2026, 1, 1, tzinfo=timezone.utc)}
    with Stubber(sm) as stub:
        stub.add_response("list_pipeline_execution_steps", {"PipelineExecutionSteps": [
            {"StepName": "preprocess", "StepStatus": "Executing", "Metadata": {}}]},
            {"PipelineExecutionArn": PIPELINE_EXECUTION, "SortOrder": "Ascending", "MaxResults": 100})
        with pytest.raises(UserError) as approve:
            ops.approve(_sagemaker_args("approve"), clients=lambda service: sm)
        stub.add_response("describe_pipeline_execution", executing, {"PipelineExecutionArn": PIPELINE_EXECUTION})
        with pytest.raises(UserError) as resume:
            ops.resume(_sagemaker_args("resume"), clients=lambda service: sm)
        stub.assert_no_pending_responses()
    text = approve.value.render()
    assert "registered no model package" in text
    assert hints(text) == [f"mlpipe history {PIPELINE_EXECUTION} --config {CONFIG} --target sagemaker"], text
    text = resume.value.render()
    assert "run-1 is Executing" in text
    assert hints(text) == [f"mlpipe status run-1 --config {CONFIG} --target sagemaker"], text


@pytest.mark.parametrize("target", ["stepfunctions", "sagemaker"])
def test_a_resumed_execution_says_how_to_follow_it(monkeypatch, target):
    from workflows.cli import ops

    class Resumed:
        def resume(self, t, execution):
            return {"action": "redriven", "name": execution, "previous_status": "FAILED", "resumes_at": "train"}

    monkeypatch.setattr(ops, "backend_for", lambda t: Resumed())
    args = argparse.Namespace(config=CONFIG, target=target, execution="run-1", output="table", local=False,
                              runs_dir=None, endpoint_url=None, region="us-east-1", profile=None)
    out = io.StringIO()
    with redirect_stdout(out):
        assert ops.resume(args) == 0
    flag = "" if target == "stepfunctions" else " --target sagemaker"
    assert hints(out.getvalue()) == [f"mlpipe status run-1 --config {CONFIG}{flag}"], out.getvalue()


def test_hints_before_any_aws_call_carry_the_config_and_the_target(tmp_path):
    err = one_error(run_cli("status", "run-1", "--out", str(tmp_path / "x.svg"), "--config", CONFIG,
                            "--target", "sagemaker"))
    assert f"fix: mlpipe status run-1 --format svg --out run.svg --config {CONFIG} --target sagemaker" in err, err
    assert not (tmp_path / "x.svg").exists()


def test_schedule_hint_names_the_deploy_to_run(moto_server):
    reset(moto_server)
    err = one_error(run_cli("--endpoint-url", moto_server, "schedule", "show", "--config", CONFIG,
                            "--target", "sagemaker"))
    assert hints(err) == [f"mlpipe deploy --config {CONFIG} --target sagemaker"], err


def test_a_hint_quotes_what_the_shell_would_split():
    from workflows.ops.target import command

    hint = command("history", "run-1", config="/my configs/abalone.yaml", target="sagemaker")
    assert shlex.split(hint) == ["mlpipe", "history", "run-1", "--config", "/my configs/abalone.yaml",
                                 "--target", "sagemaker"]
    assert command("list", config="a.yaml", target="stepfunctions") == "mlpipe list --config a.yaml"
