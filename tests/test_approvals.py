"""`mlpipe approve` / `mlpipe reject` for Step Functions (token from the history; Stubber, since
moto cannot hold a real task token) and the hand-off of local run ids."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime, timezone
from pathlib import Path

import boto3
import pytest
from botocore.stub import ANY, Stubber

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from config.errors import UserError  # noqa: E402
from workflows.cli import ops as approvals  # noqa: E402
from workflows.ops.stepfunctions import pending_approvals  # noqa: E402

CONFIG = str(ROOT / "config" / "examples" / "abalone.yaml")
EXEC = "arn:aws:states:us-east-1:123456789012:execution:mlpipe-abalone:run-7"
T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def _ev(i, kind, **details):
    return {"id": i, "type": kind, "timestamp": T0, **details}


def history(answered: bool = False, token: str = "TOKEN-abc"):
    events = [
        _ev(1, "ExecutionStarted", executionStartedEventDetails={"input": "{}"}),
        _ev(2, "TaskStateEntered", stateEnteredEventDetails={"name": "register", "input": "{}"}),
        _ev(3, "TaskScheduled", taskScheduledEventDetails={
            "resourceType": "aws-sdk:sagemaker", "resource": "createModelPackage", "region": "us-east-1",
            "parameters": "{}"}),
        _ev(4, "TaskSucceeded", taskSucceededEventDetails={"resourceType": "aws-sdk:sagemaker",
                                                            "resource": "createModelPackage", "output": "{}"}),
        _ev(5, "TaskStateExited", stateExitedEventDetails={"name": "register", "output": "{}"}),
        _ev(6, "TaskStateEntered", stateEnteredEventDetails={"name": "approve", "input": "{}"}),
        _ev(7, "TaskScheduled", taskScheduledEventDetails={
            "resourceType": "sns", "resource": "publish.waitForTaskToken", "region": "us-east-1",
            "parameters": json.dumps({"TopicArn": "arn:aws:sns:us-east-1:123456789012:t", "Message": "m",
                                      "MessageAttributes": {"TaskToken": {"DataType": "String",
                                                                          "StringValue": token}}})}),
        _ev(8, "TaskStarted", taskStartedEventDetails={"resourceType": "sns", "resource": "publish.waitForTaskToken"}),
        _ev(9, "TaskSubmitted", taskSubmittedEventDetails={"resourceType": "sns", "resource": "publish.waitForTaskToken"}),
    ]
    if answered:
        events.append(_ev(10, "TaskSucceeded", taskSucceededEventDetails={
            "resourceType": "sns", "resource": "publish.waitForTaskToken", "output": "{}"}))
    return events


def args(**kw):
    base = dict(execution="run-7", config=CONFIG, local=False, runs_dir=None, output="json",
                endpoint_url=None, region="us-east-1", profile=None, reason=None)
    return argparse.Namespace(**{**base, **kw})


def stubbed(status="RUNNING", events=None):
    sfn = boto3.client("stepfunctions", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    stub = Stubber(sfn)
    stub.add_response("describe_execution", {
        "executionArn": EXEC, "stateMachineArn": EXEC.replace(":execution:", ":stateMachine:").rsplit(":", 1)[0],
        "name": "run-7", "status": status, "startDate": T0}, {"executionArn": EXEC})
    if events is not None:
        stub.add_response("get_execution_history", {"events": events},
                          {"executionArn": EXEC, "maxResults": 1000, "reverseOrder": False})
    return sfn, stub


def test_pending_approvals():
    assert pending_approvals(history()) == [{"state": "approve", "token": "TOKEN-abc", "scheduled": T0}]
    assert pending_approvals(history(answered=True)) == []


def test_approve_sends_task_success_with_the_token(capsys):
    sfn, stub = stubbed(events=history())
    stub.add_response("send_task_success", {}, {"taskToken": "TOKEN-abc", "output": ANY})
    with stub:
        assert approvals.approve(args(), clients=lambda s: sfn) == 0
        stub.assert_no_pending_responses()
    out = json.loads(capsys.readouterr().out)
    assert out["decision"] == "approved" and out["stage"] == "approve" and out["execution"] == EXEC


def test_approve_output_carries_the_decision():
    sent = {}
    sfn, stub = stubbed(events=history())
    stub.add_response("send_task_success", {}, {"taskToken": "TOKEN-abc", "output": ANY})

    def capture(**kw):
        sent.update(kw)
    sfn.meta.events.register("provide-client-params.states.SendTaskSuccess", lambda params, **_: capture(**params))
    with stub:
        approvals.approve(args(output="table"), clients=lambda s: sfn)
    assert json.loads(sent["output"])["decision"] == "approved"


def test_reject_sends_task_failure_named_rejected():
    sfn, stub = stubbed(events=history())
    stub.add_response("send_task_failure", {}, {"taskToken": "TOKEN-abc", "error": "Rejected",
                                                "cause": "mse too high"})
    with stub:
        assert approvals.reject(args(reason="mse too high"), clients=lambda s: sfn) == 0
        stub.assert_no_pending_responses()


def test_not_waiting_is_a_user_error():
    sfn, stub = stubbed(events=history(answered=True))
    with stub, pytest.raises(UserError, match="not waiting for an approval"):
        approvals.approve(args(), clients=lambda s: sfn)


def test_finished_execution_is_a_user_error():
    sfn, stub = stubbed(status="SUCCEEDED")
    with stub, pytest.raises(UserError, match="is SUCCEEDED, not waiting"):
        approvals.approve(args(), clients=lambda s: sfn)


def test_local_run_ids_go_to_the_local_runner(tmp_path, monkeypatch):
    import workflows.cli.local as local

    calls = []
    monkeypatch.setattr(local, "approve_local", lambda a: calls.append(("approve", a.execution)) or 0)
    monkeypatch.setattr(local, "reject_local", lambda a: calls.append(("reject", a.execution)) or 0)
    (tmp_path / "20260101-abc").mkdir()
    assert approvals.approve(args(execution="20260101-abc", runs_dir=str(tmp_path))) == 0
    assert approvals.reject(args(execution="anything", local=True, reason="no")) == 0
    assert calls == [("approve", "20260101-abc"), ("reject", "anything")]


SM_EXEC = "arn:aws:sagemaker:us-east-1:123456789012:pipeline/mlpipe-abalone/execution/abc123"
PACKAGE = "arn:aws:sagemaker:us-east-1:123456789012:model-package/mlpipe-abalone/4"


def _sagemaker_stub(steps):
    sm = boto3.client("sagemaker", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    stub = Stubber(sm)
    stub.add_response("list_pipeline_execution_steps", {"PipelineExecutionSteps": steps},
                      {"PipelineExecutionArn": SM_EXEC, "SortOrder": "Ascending", "MaxResults": 100})
    return sm, stub


@pytest.mark.parametrize("decision", ["approve", "reject"])
def test_sagemaker_target_answers_through_the_registered_package(capsys, decision):
    sm, stub = _sagemaker_stub([{"StepName": "evaluate", "StepStatus": "Succeeded"},
                                {"StepName": "register-RegisterModel", "StepStatus": "Succeeded",
                                 "Metadata": {"RegisterModel": {"Arn": PACKAGE}}}])
    status = "Approved" if decision == "approve" else "Rejected"
    stub.add_response("update_model_package", {"ModelPackageArn": PACKAGE},
                      {"ModelPackageArn": PACKAGE, "ModelApprovalStatus": status, "ApprovalDescription": ANY})
    with stub:
        func = approvals.approve if decision == "approve" else approvals.reject
        assert func(args(execution=SM_EXEC, target="sagemaker", reason="too noisy"), clients=lambda s: sm) == 0
        stub.assert_no_pending_responses()
    out = json.loads(capsys.readouterr().out)
    assert out["model_package"] == PACKAGE and out["status"] == status


def test_sagemaker_execution_without_a_package_is_a_user_error():
    sm, stub = _sagemaker_stub([{"StepName": "evaluate-gate", "StepStatus": "Failed"}])
    with stub, pytest.raises(UserError) as err:
        approvals.approve(args(execution=SM_EXEC, target="sagemaker"), clients=lambda s: sm)
    assert "registered no model package" in err.value.message
