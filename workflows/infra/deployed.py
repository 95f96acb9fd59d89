"""What is deployed where, for ``mlpipe describe --target``: read-only lookups of the resources
deploy creates (names come from steps/naming.py, so nothing needs to be remembered locally)."""

from __future__ import annotations

import argparse
from typing import Any

from steps import naming
from steps.spec import PipelineSpec
from workflows.aws import lambda_client, sagemaker_client, scheduler_client, stepfunctions_client
from workflows.aws.session import aws_errors, from_args


def deployed_resources(spec: PipelineSpec, args: argparse.Namespace, clients=None) -> list[dict[str, Any]]:
    aws = from_args(args, spec.region, clients)
    account = aws.account_id()
    region = aws.region_name
    rows: list[dict[str, Any]] = []
    with aws_errors("looking up the deployed resources"):
        if args.target == "stepfunctions":
            name = naming.state_machine_name(spec.name)
            arn = naming.Arns.of(spec, account, region).state_machine()
            found = stepfunctions_client.describe_state_machine(aws.client("stepfunctions"), arn)
            rows.append({"resource": "state machine", "name": name, "arn": found["stateMachineArn"] if found else None,
                         "state": found.get("status", "ACTIVE") if found else "not deployed"})
            rows.append(_alias_row(aws.client("stepfunctions"), naming.Arns.of(spec, account, region)))
        else:
            name = naming.sagemaker_pipeline_name(spec.name)
            found = sagemaker_client.describe_pipeline(aws.client("sagemaker"), name)
            rows.append({"resource": "sagemaker pipeline", "name": name, "arn": found["PipelineArn"] if found else None,
                         "state": found.get("PipelineStatus", "") if found else "not deployed"})
        if spec.schedule:
            sched_name = naming.schedule_name(spec.name, args.target)
            sched = scheduler_client.get_schedule(aws.client("scheduler"), sched_name)
            rows.append({"resource": "schedule", "name": sched_name, "arn": sched["Arn"] if sched else None,
                         "state": f"{sched['State']} {sched['ScheduleExpression']}" if sched else "not deployed"})
        lam = aws.client("lambda")
        for stage in spec.stages:
            fn = getattr(stage, "function_name", None) or (
                naming.deployer_function_name(spec.name, stage.name)
                if stage.kind == "endpoint" and args.target == "sagemaker" else None)
            if fn:
                found = lambda_client.get_function(lam, fn)
                config = (found or {}).get("Configuration", found or {})
                rows.append({"resource": f"function ({stage.name})", "name": fn,
                             "arn": config.get("FunctionArn") if found else None,
                             "state": config.get("State", "Active") if found else "not deployed"})
    return rows


def _alias_row(sfn, a: naming.Arns) -> dict[str, Any]:
    """The `live` alias and the version it points at (with that version's config hash)."""
    from workflows.ops.versions import config_hash

    alias = stepfunctions_client.describe_alias(sfn, a.state_machine_alias())
    row: dict[str, Any] = {"resource": "state machine alias", "name": naming.LIVE_ALIAS,
                           "arn": alias["stateMachineAliasArn"] if alias else None}
    if alias is None:
        row["state"] = "not deployed"
        return row
    version = stepfunctions_client.alias_target(alias)
    if version is None:
        row["state"] = "split: " + ", ".join(f"{stepfunctions_client.version_number(r['stateMachineVersionArn'])} {r['weight']}%"
                                             for r in alias.get("routingConfiguration", []))
        return row
    found = stepfunctions_client.describe_state_machine(sfn, version) or {}
    digest = config_hash(found)
    row["version"] = stepfunctions_client.version_number(version)
    row["config_hash"] = digest
    row["state"] = f"-> version {row['version']}" + (f" (config {digest[:12]})" if digest else "")
    return row
