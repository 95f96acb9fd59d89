"""The whole deploy -> operate cycle against a moto server over HTTP, for both targets.

``deploy`` runs in-process (``workflows.cli.main``) so sagemaker/stepfunctions are imported
once; the ops commands run as real subprocesses (`python -m workflows.cli ...`).
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import boto3
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from asl_eval import evaluate  # noqa: E402
from conftest import run_cli  # noqa: E402
from moto_server import reset  # noqa: E402

CONFIG = str(ROOT / "config" / "examples" / "abalone.yaml")
# moto 5.2.5's GetBucketNotificationConfiguration leaves out EventBridgeConfiguration, so this
# one resource cannot be seen as already configured there (real S3 returns it).
MOTO_BLIND = {"s3 eventbridge notifications"}


def deploy(url: str, target: str, *extra: str, capsys=None) -> tuple[int, list[dict]]:
    from workflows.cli.main import main

    capsys.readouterr()
    code = main(["--endpoint-url", url, "deploy", "--config", CONFIG, "--target", target, "--output", "json", *extra])
    out = capsys.readouterr().out
    if code != 0:
        return code, out
    return code, json.loads(out[out.index("\n[") + 1:] if not out.startswith("[") else out)


def cli(url: str, *argv: str):
    return run_cli("--endpoint-url", url, *argv, timeout=120)


def client(url: str, service: str):
    return boto3.client(service, endpoint_url=url, region_name="us-east-1")


def snapshot(url: str) -> dict[str, list]:
    """Everything deploy may create, by kind."""
    s = lambda svc: client(url, svc)  # noqa: E731
    return {
        "buckets": [b["Name"] for b in s("s3").list_buckets().get("Buckets", [])],
        "state_machines": [m["name"] for m in s("stepfunctions").list_state_machines()["stateMachines"]],
        "pipelines": [p["PipelineName"] for p in s("sagemaker").list_pipelines()["PipelineSummaries"]],
        "groups": [g["ModelPackageGroupName"] for g in s("sagemaker").list_model_package_groups()["ModelPackageGroupSummaryList"]],
        "functions": [f["FunctionName"] for f in s("lambda").list_functions()["Functions"]],
        "roles": [r["RoleName"] for r in s("iam").list_roles()["Roles"]],
        "topics": [t["TopicArn"] for t in s("sns").list_topics()["Topics"]],
        "queues": s("sqs").list_queues().get("QueueUrls", []),
        "schedules": [(x["Name"], x["Target"]["Arn"]) for x in s("scheduler").list_schedules()["Schedules"]],
        "rules": [r["Name"] for r in s("events").list_rules()["Rules"]],
        "log_groups": [g["logGroupName"] for g in s("logs").describe_log_groups()["logGroups"]],
    }


def test_dry_run_touches_nothing(moto_server, capsys):
    reset(moto_server)
    before = snapshot(moto_server)
    for target in ("stepfunctions", "sagemaker"):
        code, plan = deploy(moto_server, target, "--dry-run", capsys=capsys)
        assert code == 0
        assert plan and {p["action"] for p in plan} == {"create"}, plan
        kinds = {p["resource"] for p in plan}
        assert {"iam role", "lambda function", "model package group", "schedule", "eventbridge rule"} <= kinds
        assert ("state machine" in kinds) == (target == "stepfunctions")
        assert ("sagemaker pipeline" in kinds) == (target == "sagemaker")
    assert snapshot(moto_server) == before
    assert not any(before.values()), before


@pytest.mark.parametrize("target", ["stepfunctions", "sagemaker"])
def test_deploy_redeploy_and_operate(moto_server, capsys, target):
    reset(moto_server)
    code, first = deploy(moto_server, target, capsys=capsys)
    assert code == 0, first
    assert {r["action"] for r in first} <= {"created", "updated"}
    assert all(r["action"] == "created" for r in first if r["resource"] not in MOTO_BLIND), first

    code, again = deploy(moto_server, target, capsys=capsys)
    assert code == 0
    assert [(r["resource"], r["name"]) for r in again] == [(r["resource"], r["name"]) for r in first]
    changed = [r for r in again if r["action"] != "unchanged" and r["resource"] not in MOTO_BLIND]
    assert not changed, changed

    snap = snapshot(moto_server)
    sm_arn = f"arn:aws:states:us-east-1:123456789012:stateMachine:mlpipe-abalone"
    live_arn = sm_arn + ":live"      # runs start through the `live` alias (the version deploy published)
    pipe_arn = "arn:aws:sagemaker:us-east-1:123456789012:pipeline/mlpipe-abalone"
    if target == "stepfunctions":
        assert snap["state_machines"] == ["mlpipe-abalone"] and snap["pipelines"] == []
        assert snap["schedules"] == [("mlpipe-abalone-stepfunctions-retrain", live_arn)]
        alias = client(moto_server, "stepfunctions").describe_state_machine_alias(stateMachineAliasArn=live_arn)
        assert alias["routingConfiguration"] == [{"stateMachineVersionArn": sm_arn + ":1", "weight": 100}]
        assert snap["functions"] == ["mlpipe-abalone-record-model"]
        desc = client(moto_server, "stepfunctions").describe_state_machine(stateMachineArn=sm_arn)
        assert desc["loggingConfiguration"]["level"] == "ERROR"
        assert desc["loggingConfiguration"]["includeExecutionData"] is False
    else:
        assert snap["pipelines"] == ["mlpipe-abalone"] and snap["state_machines"] == []
        assert snap["schedules"] == [("mlpipe-abalone-sagemaker-retrain", pipe_arn)]
        assert sorted(snap["functions"]) == ["mlpipe-abalone-deploy", "mlpipe-abalone-record-model",
                                             "mlpipe-abalone-trigger"]
    assert snap["groups"] == ["mlpipe-abalone"]
    assert len(snap["topics"]) == 1 and len(snap["queues"]) == 1
    # the events role starts the state machine; for SageMaker the rule invokes the starter function
    assert sorted(snap["roles"]) == sorted(f"mlpipe-abalone-{s}" for s in
                                           (["sagemaker", "lambda", "scheduler"]
                                            + (["stepfunctions", "events"] if target == "stepfunctions" else [])))
    events = client(moto_server, "events")
    status_rule = f"mlpipe-abalone-{target}-status"
    assert status_rule in snap["rules"]
    assert [t["Arn"] for t in events.list_targets_by_rule(Rule=status_rule)["Targets"]] == snap["topics"]
    trigger = events.list_targets_by_rule(Rule=f"mlpipe-abalone-{target}-new-data")["Targets"]
    starter = "arn:aws:lambda:us-east-1:123456789012:function:mlpipe-abalone-trigger"
    assert len(trigger) == 1 and trigger[0]["Arn"] == (live_arn if target == "stepfunctions" else starter)
    if target == "stepfunctions":
        assert json.loads(trigger[0]["InputTransformer"]["InputTemplate"].replace("<bucket>", "b").replace("<key>", "k")) \
            == {"InputData": "s3://b/k"}
    sched = client(moto_server, "scheduler").get_schedule(Name=f"mlpipe-abalone-{target}-retrain")
    assert sched["Target"]["RetryPolicy"] == {"MaximumRetryAttempts": 2, "MaximumEventAgeInSeconds": 3600}
    assert sched["Target"]["DeadLetterConfig"]["Arn"].endswith(":mlpipe-abalone-schedule-dlq")
    assert sched["ScheduleExpression"] == "cron(0 3 ? * MON *)"

    # --- operate ------------------------------------------------------------------------------
    common = ["--config", CONFIG, "--target", target]
    p1 = cli(moto_server, "start", *common, "--name", "run-one", "--param", "TrainingInstanceCount=2", "-o", "json")
    assert p1.returncode == 0, p1.stderr
    p2 = cli(moto_server, "start", *common, "--name", "run-two", "-o", "json")
    assert p2.returncode == 0, p2.stderr
    one, two = json.loads(p1.stdout), json.loads(p2.stdout)
    assert one["arn"] != two["arn"] and one["parameters"] == {"TrainingInstanceCount": 2}

    listed = cli(moto_server, "list", *common, "-o", "json")
    assert listed.returncode == 0, listed.stderr
    assert {e["name"] for e in json.loads(listed.stdout)} == {"run-one", "run-two"}
    table = cli(moto_server, "list", *common)
    assert table.returncode == 0 and re.search(r"^NAME\s+STATUS\s+STARTED", table.stdout, re.M)

    latest = cli(moto_server, "status", *common, "-o", "json")
    assert latest.returncode == 0, latest.stderr
    assert json.loads(latest.stdout)["name"] == "run-two"
    by_name = cli(moto_server, "status", *common, "run-one", "-o", "json")
    assert by_name.returncode == 0 and json.loads(by_name.stdout)["arn"] == one["arn"]
    by_arn = cli(moto_server, "status", *common, one["arn"], "-o", "json")
    assert by_arn.returncode == 0 and json.loads(by_arn.stdout)["name"] == "run-one"

    if target == "stepfunctions":
        sfn = client(moto_server, "stepfunctions")
        started = json.loads(sfn.describe_execution(executionArn=one["arn"])["input"])
        assert started == {"TrainingInstanceCount": 2}
        # job names the deployed definition gives the two executions differ
        asl = json.loads(sfn.describe_state_machine(stateMachineArn=sm_arn)["definition"])
        hash_expr = asl["States"]["resolve-parameters"]["Parameters"]["run"]["hash.$"]
        train = asl["States"]["train"]["Parameters"]["TrainingJobName.$"]
        names = []
        for execution in ("run-one", "run-two"):
            ctx = {"Execution": {"Name": execution, "RedriveCount": 0}, "State": {"RetryCount": 0}}
            data = {"run": {"execution": execution, "hash": evaluate(hash_expr, {}, ctx)}}
            names.append(evaluate(train, data, ctx))
        assert names[0] != names[1] and all(n.startswith("abalone-train-") for n in names)

        hist = cli(moto_server, "history", *common, "run-one", "-o", "json")
        assert hist.returncode == 0, hist.stderr
        stages = json.loads(hist.stdout)["stages"]
        assert stages and all({"stage", "status", "entered", "exited"} <= set(s) for s in stages)
        assert cli(moto_server, "history", *common, "run-one").returncode == 0

        stopped = cli(moto_server, "stop", *common, "run-one", "-o", "json")
        assert stopped.returncode == 0, stopped.stderr
        assert sfn.describe_execution(executionArn=one["arn"])["status"] == "ABORTED"
        waited = cli(moto_server, "start", *common, "--wait", "--poll", "0.1", "--timeout", "0.5")
        assert waited.returncode == 1 and "still RUNNING" in waited.stderr
    else:
        waited = cli(moto_server, "start", *common, "--wait", "--poll", "0.1", "-o", "json")
        assert waited.returncode == 0, waited.stderr
        assert json.loads(waited.stdout)["status"] == "Succeeded"

    shown = cli(moto_server, "schedule", "show", *common, "-o", "json")
    assert shown.returncode == 0 and json.loads(shown.stdout)["state"] == "ENABLED"
    off = cli(moto_server, "schedule", "disable", *common, "-o", "json")
    assert off.returncode == 0 and json.loads(off.stdout)["state"] == "DISABLED"
    on = cli(moto_server, "schedule", "enable", *common, "-o", "json")
    assert on.returncode == 0 and json.loads(on.stdout)["state"] == "ENABLED"


def _args(url: str, target: str = "stepfunctions", config: str = CONFIG, dry_run: bool = False):
    import argparse

    return argparse.Namespace(endpoint_url=url, region=None, profile=None, config=config, target=target,
                              dry_run=dry_run, output="json")


def test_failing_deploy_reports_applied_and_not_applied(moto_server, capsys, monkeypatch):
    from botocore.exceptions import ClientError

    from workflows.cli import deploy as deploy_mod
    from workflows.aws import stepfunctions_client

    reset(moto_server)

    def boom(*a, **kw):
        raise RuntimeError("emulator exploded")
    monkeypatch.setattr(stepfunctions_client, "upsert_state_machine", boom)
    capsys.readouterr()
    assert deploy_mod.main(_args(moto_server)) == 1
    captured = capsys.readouterr()
    rows = json.loads(captured.err[captured.err.index("["):captured.err.rindex("]") + 1])
    actions = {r["resource"]: r["action"] for r in rows}
    assert actions["iam role"] == "created" and actions["state machine"] == "failed"
    assert actions["schedule"] == "not applied"
    assert "deploy failed at state machine" in captured.err

    def denied(*a, **kw):
        raise ClientError({"Error": {"Code": "AccessDeniedException", "Message": "no"}}, "CreateStateMachine")
    monkeypatch.setattr(stepfunctions_client, "upsert_state_machine", denied)
    from workflows.cli.main import main
    assert main(["--endpoint-url", moto_server, "deploy", "--config", CONFIG]) == 2
    captured = capsys.readouterr()
    assert "deploy stopped" in captured.err and "not applied" in captured.out


def test_deploy_uses_the_callers_account(moto_server, tmp_path):
    """A config without account_id (or another one) is rendered with the real account."""
    from workflows.aws.session import from_args
    from workflows.infra.plan import prepare

    text = Path(CONFIG).read_text().replace('account_id: "123456789012"', 'account_id: "999999999999"')
    cfg = tmp_path / "abalone.yaml"
    cfg.write_text(text)
    d = prepare(str(cfg), "stepfunctions", from_args(_args(moto_server, config=str(cfg))))
    assert d.account == "123456789012" and d.spec.account_id == "123456789012"
    asl = next(s.resource for s in d.steps if s.resource.kind == "state machine").props["definition"]
    assert ":999999999999:" not in asl and ":123456789012:" in asl


def test_changed_config_updates_only_what_changed(moto_server, capsys, tmp_path):
    reset(moto_server)
    assert deploy(moto_server, "stepfunctions", capsys=capsys)[0] == 0
    text = Path(CONFIG).read_text()
    changed = text.replace("threshold: 6.0", "threshold: 5.5").replace("cron(0 3 ? * MON *)", "cron(0 4 ? * MON *)")
    assert changed != text
    cfg = tmp_path / "abalone.yaml"
    cfg.write_text(changed)
    from workflows.cli.main import main

    capsys.readouterr()
    assert main(["--endpoint-url", moto_server, "deploy", "--config", str(cfg), "-o", "json"]) == 0
    out = capsys.readouterr().out
    rows = json.loads(out[out.index("["):])
    updated = {r["resource"] for r in rows if r["action"] == "updated"} - MOTO_BLIND
    assert updated == {"state machine", "state machine alias", "schedule"}, rows
    sched = client(moto_server, "scheduler").get_schedule(Name="mlpipe-abalone-stepfunctions-retrain")
    assert sched["ScheduleExpression"] == "cron(0 4 ? * MON *)"
    asl = client(moto_server, "stepfunctions").describe_state_machine(
        stateMachineArn="arn:aws:states:us-east-1:123456789012:stateMachine:mlpipe-abalone")["definition"]
    assert "5.5" in asl
    assert len(client(moto_server, "stepfunctions").list_state_machines()["stateMachines"]) == 1
