"""`mlpipe resume`, `mlpipe versions`, `mlpipe rollback` (issue 13, items 1 and 2).

Versions and rollback run against the moto server. moto 5.2.5 publishes versions
(create/update_state_machine with publish=True) and keeps aliases, but implements neither
ListStateMachineVersions nor PublishStateMachineVersion (it answers HTTP 500): the
``moto_versions`` fixture (tests/moto_server.py) adds those two operations to the running server
from moto's own version records, for one test at a time. moto cannot start an execution through an alias, nor
redrive or retry one, nor list SageMaker pipeline versions: those calls are pinned with botocore's
Stubber.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import boto3
import pytest
from botocore.stub import ANY, Stubber

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from conftest import run_cli  # noqa: E402
from moto_server import reset  # noqa: E402

CONFIG = str(ROOT / "config" / "examples" / "abalone.yaml")
SM = "arn:aws:states:us-east-1:123456789012:stateMachine:mlpipe-abalone"
LIVE = SM + ":live"
EXEC = "arn:aws:states:us-east-1:123456789012:execution:mlpipe-abalone:run-7"
NOW = datetime.now(timezone.utc)


def _deploy(url: str, config: str, capsys) -> list[dict]:
    from workflows.cli.main import main

    capsys.readouterr()
    code = main(["--endpoint-url", url, "deploy", "--config", config, "--target", "stepfunctions", "-o", "json"])
    out = capsys.readouterr().out
    assert code == 0, out
    return json.loads(out[out.index("["):])


def _action(rows: list[dict], kind: str) -> str:
    return next(r["action"] for r in rows if r["resource"] == kind)


def _fingerprint(config: str) -> str:
    from steps.pipeline import load_spec

    return load_spec(config, overrides={"aws.account_id": "123456789012", "aws.region": "us-east-1"}).fingerprint


def _cli_json(url: str, *argv: str):
    proc = run_cli("--endpoint-url", url, *argv, "-o", "json", timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_deploy_publishes_versions_and_rollback_moves_the_alias(moto_versions, capsys, tmp_path):
    url = moto_versions
    sfn = boto3.client("stepfunctions", endpoint_url=url, region_name="us-east-1")
    live = lambda: sfn.describe_state_machine_alias(stateMachineAliasArn=LIVE)["routingConfiguration"]  # noqa: E731

    first = _deploy(url, CONFIG, capsys)
    assert _action(first, "state machine") == _action(first, "state machine alias") == "created"
    assert live() == [{"stateMachineVersionArn": SM + ":1", "weight": 100}]

    changed = tmp_path / "abalone.yaml"
    changed.write_text(Path(CONFIG).read_text().replace("threshold: 6.0", "threshold: 5.5"))
    second = _deploy(url, str(changed), capsys)
    assert _action(second, "state machine") == _action(second, "state machine alias") == "updated"
    assert live() == [{"stateMachineVersionArn": SM + ":2", "weight": 100}]

    again = _deploy(url, str(changed), capsys)           # unchanged: nothing published, nothing moved
    assert _action(again, "state machine") == _action(again, "state machine alias") == "unchanged"
    assert [v["stateMachineVersionArn"] for v in sfn.list_state_machine_versions(stateMachineArn=SM)
            ["stateMachineVersions"]] == [SM + ":2", SM + ":1"]

    common = ("--config", str(changed), "--target", "stepfunctions")
    listed = _cli_json(url, "versions", *common)
    assert [(v["version"], v["live"], v["config_hash"]) for v in listed] == [
        (2, True, _fingerprint(str(changed))), (1, False, _fingerprint(CONFIG))]
    assert all(v["created"] for v in listed)
    table = run_cli("--endpoint-url", url, "versions", *common)
    assert table.returncode == 0 and "VERSION" in table.stdout and _fingerprint(CONFIG)[:12] in table.stdout

    rolled = _cli_json(url, "rollback", *common)
    assert (rolled["action"], rolled["from_version"], rolled["to_version"]) == ("rolled back", 2, 1)
    assert rolled["config_hash"] == _fingerprint(CONFIG)
    assert live() == [{"stateMachineVersionArn": SM + ":1", "weight": 100}]
    # what starts runs still goes through the alias, which now runs version 1
    sched = boto3.client("scheduler", endpoint_url=url, region_name="us-east-1").get_schedule(
        Name="mlpipe-abalone-stepfunctions-retrain")
    assert sched["Target"]["Arn"] == LIVE
    targets = boto3.client("events", endpoint_url=url, region_name="us-east-1").list_targets_by_rule(
        Rule="mlpipe-abalone-stepfunctions-new-data")["Targets"]
    assert [t["Arn"] for t in targets] == [LIVE]
    assert [(v["version"], v["live"]) for v in _cli_json(url, "versions", *common)] == [(2, False), (1, True)]
    assert _cli_json(url, "rollback", *common, "--to", "1")["action"] == "unchanged"

    unknown = run_cli("--endpoint-url", url, "rollback", *common, "--to", "7")
    assert unknown.returncode == 2 and "no version '7'" in unknown.stderr and "Traceback" not in unknown.stderr
    nothing_older = run_cli("--endpoint-url", url, "rollback", *common)
    assert nothing_older.returncode == 2 and "nothing to roll back to" in nothing_older.stderr

    from workflows.infra.deployed import deployed_resources
    from steps.pipeline import load_spec

    rows = deployed_resources(load_spec(str(changed)), argparse.Namespace(
        endpoint_url=url, region="us-east-1", profile=None, target="stepfunctions"))
    alias_row = next(r for r in rows if r["resource"] == "state machine alias")
    assert (alias_row["arn"], alias_row["version"], alias_row["config_hash"]) == (LIVE, 1, _fingerprint(CONFIG))

    # deploying the config again undoes the rollback: the alias goes back to the version that
    # holds it (PublishStateMachineVersion returns the existing one), nothing new is published
    after = _deploy(url, str(changed), capsys)
    assert (_action(after, "state machine"), _action(after, "state machine alias")) == ("unchanged", "updated")
    assert live() == [{"stateMachineVersionArn": SM + ":2", "weight": 100}]
    assert len(sfn.list_state_machine_versions(stateMachineArn=SM)["stateMachineVersions"]) == 2


def test_a_dry_run_says_the_alias_would_move(moto_versions, capsys, tmp_path):
    url = moto_versions
    _deploy(url, CONFIG, capsys)
    changed = tmp_path / "abalone.yaml"
    changed.write_text(Path(CONFIG).read_text().replace("threshold: 6.0", "threshold: 5.0"))
    from workflows.cli.main import main

    capsys.readouterr()
    assert main(["--endpoint-url", url, "deploy", "--config", str(changed), "--dry-run", "-o", "json"]) == 0
    out = capsys.readouterr().out
    rows = json.loads(out[out.index("["):])
    assert (_action(rows, "state machine"), _action(rows, "state machine alias")) == ("update", "update")
    sfn = boto3.client("stepfunctions", endpoint_url=url, region_name="us-east-1")
    assert len(sfn.list_state_machine_versions(stateMachineArn=SM)["stateMachineVersions"]) == 1


# --- the calls moto cannot answer: Stubber -----------------------------------------------------

def _args(**kw) -> argparse.Namespace:
    base = dict(config=CONFIG, target="stepfunctions", output="json", endpoint_url=None, region="us-east-1",
                profile=None, local=False, runs_dir=None, execution="run-7", to=None)
    return argparse.Namespace(**{**base, **kw})


def _client(service: str):
    return boto3.client(service, region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")


def test_start_goes_through_the_live_alias(capsys):
    from workflows.cli import ops

    sfn = _client("stepfunctions")
    with Stubber(sfn) as stub:
        stub.add_response("start_execution", {"executionArn": EXEC, "startDate": NOW},
                          {"stateMachineArn": LIVE, "input": "{}", "name": "run-7"})
        # a state machine deployed before versions has no alias: it is started unqualified
        stub.add_client_error("start_execution", "StateMachineDoesNotExist", "no alias",
                              expected_params={"stateMachineArn": LIVE, "input": "{}", "name": "run-8"})
        stub.add_response("start_execution", {"executionArn": EXEC[:-1] + "8", "startDate": NOW},
                          {"stateMachineArn": SM, "input": "{}", "name": "run-8"})
        for name in ("run-7", "run-8"):
            assert ops.start(_args(name=name, param=[], wait=False), clients=lambda s: sfn) == 0
        stub.assert_no_pending_responses()


def test_lineage_names_the_version_it_ran():
    from workflows.ops.lineage import sfn_version

    assert sfn_version({"stateMachineVersionArn": SM + ":2", "stateMachineAliasArn": LIVE}) == {
        "number": 2, "arn": SM + ":2", "alias": "live"}
    assert sfn_version({"stateMachineArn": SM}) is None


def _asl(job_name: str = "States.Format('abalone-train-{}-{}{}', $.run.hash, $$.Execution.RedriveCount, "
                         "$$.State.RetryCount)") -> str:
    return json.dumps({"StartAt": "train", "States": {
        "train": {"Type": "Task", "Resource": "arn:aws:states:::sagemaker:createTrainingJob.sync",
                  "Parameters": {"TrainingJobName.$": job_name}, "Next": "done"},
        "done": {"Type": "Succeed"}, "pipeline-failed": {"Type": "Fail"}}})


def _history(fail_state: bool = False) -> list[dict]:
    ev = lambda i, kind, **d: {"id": i, "type": kind, "timestamp": NOW, **d}  # noqa: E731
    events = [ev(1, "ExecutionStarted", executionStartedEventDetails={}),
              ev(2, "TaskStateEntered", stateEnteredEventDetails={"name": "train"}),
              ev(3, "TaskFailed", taskFailedEventDetails={"resourceType": "sagemaker",
                                                          "resource": "createTrainingJob.sync",
                                                          "error": "SageMaker.X", "cause": "capacity"})]
    if fail_state:
        events += [ev(4, "TaskStateExited", stateExitedEventDetails={"name": "train"}),
                   ev(5, "FailStateEntered", stateEnteredEventDetails={"name": "pipeline-failed"})]
    events.append(ev(9, "ExecutionFailed", executionFailedEventDetails={}))
    return events[::-1]


def _sfn_stub(status="FAILED", stopped=NOW - timedelta(days=1), version=2, live=2, asl=None, live_asl=None,
              redrive_status="REDRIVABLE", reason=None, history=None):
    """describe_execution, then (for a resumable status) the definitions and the history."""
    sfn = _client("stepfunctions")
    stub = Stubber(sfn)
    described = {"executionArn": EXEC, "stateMachineArn": SM, "name": "run-7", "status": status,
                 "startDate": stopped - timedelta(hours=1), "stateMachineVersionArn": f"{SM}:{version}",
                 "stateMachineAliasArn": LIVE, "redriveCount": 0, "redriveStatus": redrive_status}
    if status != "RUNNING":
        described["stopDate"] = stopped
    if reason:
        described["redriveStatusReason"] = reason
    stub.add_response("describe_execution", described, {"executionArn": EXEC})
    if status in ("SUCCEEDED", "RUNNING") or redrive_status == "NOT_REDRIVABLE":
        return sfn, stub
    machine = lambda v, d: {"stateMachineArn": f"{SM}:{v}", "name": "mlpipe-abalone", "definition": d,  # noqa: E731
                            "roleArn": "arn:aws:iam::123456789012:role/r", "type": "STANDARD",
                            "creationDate": NOW}
    stub.add_response("describe_state_machine", machine(version, asl or _asl()), {"stateMachineArn": f"{SM}:{version}"})
    stub.add_response("describe_state_machine_alias", {
        "stateMachineAliasArn": LIVE, "name": "live", "creationDate": NOW,
        "routingConfiguration": [{"stateMachineVersionArn": f"{SM}:{live}", "weight": 100}]},
        {"stateMachineAliasArn": LIVE})
    if live != version:
        stub.add_response("describe_state_machine", machine(live, live_asl or _asl()), {"stateMachineArn": f"{SM}:{live}"})
        if live_asl is not None:
            return sfn, stub
    stub.add_response("get_execution_history", {"events": history or _history()},
                      {"executionArn": EXEC, "maxResults": 1000, "reverseOrder": True})
    return sfn, stub


def test_resume_redrives_a_failed_execution(capsys):
    from workflows.cli import ops

    sfn, stub = _sfn_stub()
    stub.add_response("redrive_execution", {"redriveDate": NOW}, {"executionArn": EXEC})
    with stub:
        assert ops.resume(_args(), clients=lambda s: sfn) == 0
        stub.assert_no_pending_responses()
    out = json.loads(capsys.readouterr().out)
    assert (out["action"], out["arn"], out["resumes_at"], out["redrive_count"], out["version"]) == (
        "redriven", EXEC, "train", 1, 2)


def _main_with(clients, argv: list[str], capsys, monkeypatch) -> tuple[int, str]:
    """The real `mlpipe` entry point, with the AWS clients of this test."""
    from workflows.cli import ops
    from workflows.cli.main import main
    from workflows.ops import target

    monkeypatch.setattr(ops, "target_of", lambda args, c=None: target.target_of(args, clients))
    capsys.readouterr()
    code = main(argv)
    return code, capsys.readouterr().err


OTHER_ASL = _asl().replace("Succeed", "Pass\", \"End\": true, \"Comment\": \"changed")


@pytest.mark.parametrize("case, stub_kw, needle", [
    ("succeeded", dict(status="SUCCEEDED"), "SUCCEEDED: there is nothing to resume"),
    ("running", dict(status="RUNNING"), "is RUNNING: only a FAILED, ABORTED or TIMED_OUT execution"),
    ("older than 14 days", dict(stopped=NOW - timedelta(days=20), redrive_status="NOT_REDRIVABLE",
                                reason="Execution redrivable period exceeded."), "older than Step Functions' 14-day"),
    ("other reason", dict(redrive_status="NOT_REDRIVABLE", reason="Execution history event limit exceeded."),
     "cannot redrive execution run-7: Execution history event limit exceeded"),
    ("old version", dict(version=1, live=2, live_asl=OTHER_ASL), "ran version 1 of mlpipe-abalone, and runs now get version 2"),
    ("fail state", dict(history=_history(fail_state=True)), "ended in its Fail state 'pipeline-failed' after stage 'train'"),
    ("job name", dict(asl=_asl("States.Format('abalone-train-{}-{}', $.run.hash, $$.State.RetryCount)")),
     "TrainingJobName does not include $$.Execution.RedriveCount"),
])
def test_resume_refusals_exit_2_with_one_message(capsys, monkeypatch, case, stub_kw, needle):
    sfn, stub = _sfn_stub(**stub_kw)
    with stub:
        code, err = _main_with(lambda s: sfn, ["resume", "run-7", "--config", CONFIG, "--target", "stepfunctions"],
                               capsys, monkeypatch)
        stub.assert_no_pending_responses()       # and no redrive was sent
    assert code == 2, err
    assert err.startswith("error: ") and err.count("error: ") == 1 and "Traceback" not in err, err
    assert needle in err, err
    assert "mlpipe start" in err or "mlpipe status" in err, err


SM_EXEC = "arn:aws:sagemaker:us-east-1:123456789012:pipeline/mlpipe-abalone/execution/abc123"


def _sm_stub(status: str, same_definition: bool = True):
    sm = _client("sagemaker")
    stub = Stubber(sm)
    stub.add_response("describe_pipeline_execution", {
        "PipelineExecutionArn": SM_EXEC, "PipelineExecutionDisplayName": "run-1",
        "PipelineExecutionStatus": status, "CreationTime": NOW}, {"PipelineExecutionArn": SM_EXEC})
    if status in ("Succeeded", "Executing", "Stopping"):
        return sm, stub
    stub.add_response("describe_pipeline_definition_for_execution", {"PipelineDefinition": '{"Version": "2020-12-01"}'},
                      {"PipelineExecutionArn": SM_EXEC})
    stub.add_response("describe_pipeline", {"PipelineName": "mlpipe-abalone", "PipelineDefinition":
                                            '{"Version": "2020-12-01"}' if same_definition else '{"Version": "x"}'},
                      {"PipelineName": "mlpipe-abalone"})
    return sm, stub


@pytest.mark.parametrize("status", ["Failed", "Stopped"])
def test_resume_retries_a_sagemaker_execution(capsys, status):
    from workflows.cli import ops

    sm, stub = _sm_stub(status)
    sent = {}
    sm.meta.events.register("provide-client-params.sagemaker.RetryPipelineExecution",
                            lambda params, **_: sent.update(params))
    stub.add_response("retry_pipeline_execution", {"PipelineExecutionArn": SM_EXEC},
                      {"PipelineExecutionArn": SM_EXEC, "ClientRequestToken": ANY})
    with stub:
        assert ops.resume(_args(execution=SM_EXEC, target="sagemaker"), clients=lambda s: sm) == 0
        stub.assert_no_pending_responses()
    assert 32 <= len(sent["ClientRequestToken"]) <= 128
    out = json.loads(capsys.readouterr().out)
    assert (out["action"], out["previous_status"], out["arn"]) == ("retried", status, SM_EXEC)


@pytest.mark.parametrize("status, same, needle", [
    ("Succeeded", True, "Succeeded: there is nothing to resume"),
    ("Executing", True, "is Executing: only a Failed or Stopped execution"),
    ("Stopping", True, "is Stopping: only a Failed or Stopped execution"),
    ("Failed", False, "ran an earlier definition of mlpipe-abalone"),
    ("Stopped", True, "SageMaker will not retry execution run-1 (Stopped): cannot retry"),
])
def test_sagemaker_resume_refusals_exit_2(capsys, monkeypatch, status, same, needle):
    sm, stub = _sm_stub(status, same)
    if status == "Stopped":          # the service's own refusal is one message too
        stub.add_client_error("retry_pipeline_execution", "ConflictException", "cannot retry",
                              expected_params={"PipelineExecutionArn": SM_EXEC, "ClientRequestToken": ANY})
    with stub:
        code, err = _main_with(lambda s: sm, ["resume", SM_EXEC, "--config", CONFIG, "--target", "sagemaker"],
                               capsys, monkeypatch)
        stub.assert_no_pending_responses()
    assert code == 2 and err.count("error: ") == 1 and needle in err, err


def test_resume_of_a_local_run_id_is_mlpipe_run_resume(tmp_path, monkeypatch):
    import importlib

    from workflows.cli import ops
    from workflows.cli.main import build_parser

    run = build_parser().parse_args(["run"]).func          # wherever `mlpipe run` lives
    module, func = run.__qualname__.rsplit(".", 1)
    calls = []
    monkeypatch.setattr(importlib.import_module(module), func,
                        lambda a: calls.append((a.resume, a.runs_dir, a.output)) or 0)
    (tmp_path / "20260101-abc").mkdir()
    assert ops.resume(_args(execution="20260101-abc", target=None, runs_dir=str(tmp_path), output="table")) == 0
    assert ops.resume(_args(execution="anything", target=None, local=True)) == 0
    assert calls == [("20260101-abc", str(tmp_path), "table"), ("anything", None, "json")]


# --- SageMaker pipeline versions (ListPipelineVersions: botocore has it, moto does not) -------

def _pipeline_definition(config_hash: str) -> str:
    return json.dumps({"Version": "2020-12-01", "Steps": [{"Name": "train", "Arguments": {"Tags": [
        {"Key": "mlpipe:config-hash", "Value": config_hash}]}}]})


def _sm_versions_stub(sm, stub):
    stub.add_response("list_pipeline_versions", {"PipelineVersionSummaries": [
        {"PipelineVersionId": v, "CreationTime": NOW - timedelta(days=3 - v)} for v in (3, 2, 1)]},
        {"PipelineName": "mlpipe-abalone", "SortOrder": "Descending", "MaxResults": 100})
    for v, h in ((3, "c" * 64), (2, "b" * 64), (1, "a" * 64)):
        stub.add_response("describe_pipeline", {"PipelineName": "mlpipe-abalone", "PipelineDefinition":
                                                _pipeline_definition(h), "RoleArn": "arn:aws:iam::123456789012:role/r"},
                          {"PipelineName": "mlpipe-abalone", "PipelineVersionId": v})


def test_sagemaker_versions_and_rollback(capsys, monkeypatch):
    from workflows.cli import ops

    sm = _client("sagemaker")
    with Stubber(sm) as stub:
        _sm_versions_stub(sm, stub)
        assert ops.versions(_args(target="sagemaker"), clients=lambda s: sm) == 0
        listed = json.loads(capsys.readouterr().out)
        assert [(v["version"], v["live"], v["config_hash"]) for v in listed] == [
            (3, True, "c" * 64), (2, False, "b" * 64), (1, False, "a" * 64)]

        _sm_versions_stub(sm, stub)        # default: the version before the latest, re-applied
        stub.add_response("update_pipeline", {"PipelineArn": "arn:aws:sagemaker:us-east-1:123456789012:pipeline/"
                                                             "mlpipe-abalone", "PipelineVersionId": 4},
                          {"PipelineName": "mlpipe-abalone", "PipelineDefinition": _pipeline_definition("b" * 64),
                           "RoleArn": "arn:aws:iam::123456789012:role/r"})
        assert ops.rollback(_args(target="sagemaker"), clients=lambda s: sm) == 0
        out = json.loads(capsys.readouterr().out)
        assert (out["action"], out["from_version"], out["to_version"], out["new_version"]) == ("rolled back", 3, 2, 4)

        _sm_versions_stub(sm, stub)
        code, err = _main_with(lambda s: sm, ["rollback", "--to", "9", "--config", CONFIG, "--target", "sagemaker"],
                               capsys, monkeypatch)
        assert code == 2 and "no version '9'" in err and err.count("error: ") == 1, err
        stub.assert_no_pending_responses()


def test_redriven_job_names_differ_from_the_first_attempt():
    """Waits for the render change (job names with $$.Execution.RedriveCount); until then, the
    resume refusal above stops a redrive that would reuse a failed job's name."""
    from asl_eval import evaluate
    from steps.pipeline import load_spec
    from workflows.render import STATE_MACHINE_FILE, render_cached

    asl = json.loads(render_cached(load_spec(CONFIG), "stepfunctions")[STATE_MACHINE_FILE])
    expr = asl["States"]["train"]["Parameters"]["TrainingJobName.$"]
    if "$$.Execution.RedriveCount" not in expr:
        pytest.skip("the rendered job names do not include $$.Execution.RedriveCount yet (workflows/render/)")
    data = {"run": {"execution": "run-7", "hash": "0" * 32}}
    names = {evaluate(expr, data, {"Execution": {"Name": "run-7", "RedriveCount": redrive},
                                   "State": {"RetryCount": retry}})
             for redrive in (0, 1, 2, 10, 99) for retry in (0, 1, 2)}
    assert len(names) == 15 and all(len(n) <= 63 for n in names), names
