"""What was deployed when, and going back to it (``mlpipe versions``, ``mlpipe rollback``).

Step Functions: a deploy that changes the state machine publishes an immutable version whose
description carries the config hash, and points the ``live`` alias at it; every run (schedule,
S3 trigger, ``mlpipe start``) starts through the alias. ``rollback`` moves the alias to an earlier
version; executions already running keep the version they started on.

SageMaker Pipelines: every ``UpdatePipeline`` makes a new pipeline version and executions run the
latest one (the schedule's templated target and the trigger's starter name no version), so
``rollback`` re-applies an earlier version's definition and role: a new version with the old
content. Either way the next ``mlpipe deploy`` applies the config again (fix it, then deploy).
"""

from __future__ import annotations

import re
from typing import Any

from config.errors import UserError
from workflows.aws import sagemaker_client as smc
from workflows.aws import stepfunctions_client as sfc
from workflows.aws.session import aws_errors, same_json
from workflows.ops.target import Target

_HASH = re.compile(r"\b([0-9a-f]{64})\b")


def config_hash(described: dict[str, Any]) -> str | None:
    """The config hash of a version: from its description (mlpipe writes it there), else from
    the ``mlpipe:config-hash`` tags in its definition."""
    match = _HASH.search(str(described.get("description") or ""))
    if match:
        return match.group(1)
    definition = described.get("definition") or described.get("PipelineDefinition")
    if not definition:
        return None
    from workflows.ops.lineage import definition_facts

    return definition_facts(definition)["config_hash"]


def _pick(rows: list[dict[str, Any]], to: str, t: Target) -> dict[str, Any]:
    """The row ``--to`` names: a number, ``v<number>`` or (Step Functions) a version ARN."""
    wanted = to.strip()
    for row in rows:
        if wanted in (str(row["version"]), f"v{row['version']}", row.get("arn")):
            return row
    known = ", ".join(str(r["version"]) for r in rows) or "none"
    raise UserError(f"{t.resource} has no version {to!r} (versions: {known})", source=t.source, field="--to",
                    fix=f"pick one listed by `{t.command('versions')}`")


def _previous(rows: list[dict[str, Any]], live: dict[str, Any], t: Target) -> dict[str, Any]:
    """The newest version older than the live one that holds another config."""
    for row in sorted(rows, key=lambda r: r["version"], reverse=True):
        if row["version"] < live["version"] and (row["config_hash"] != live["config_hash"] or not row["config_hash"]):
            return row
    raise UserError(f"nothing to roll back to: no version of {t.resource} older than the live one "
                    f"({live['version']}) holds another config", source=t.source,
                    fix=f"see `{t.command('versions')}`; name one with --to")


# --- Step Functions ---------------------------------------------------------------------------

def sfn_versions(t: Target) -> list[dict[str, Any]]:
    sfn = t.aws.client("stepfunctions")

    def nf(exc):
        raise t.nothing_deployed()
    listed = t.call("listing the state machine's versions", lambda: sfc.list_versions(sfn, t.arns.state_machine()), nf)
    with aws_errors("reading the live alias"):
        alias = sfc.describe_alias(sfn, t.arns.state_machine_alias())
    weights = {r["stateMachineVersionArn"]: r.get("weight") for r in (alias or {}).get("routingConfiguration", [])}
    rows = []
    for item in listed:
        arn = item["stateMachineVersionArn"]
        with aws_errors(f"describing version {arn}"):
            found = sfc.describe_state_machine(sfn, arn) or {}
        rows.append({"version": sfc.version_number(arn), "live": arn in weights, "weight": weights.get(arn),
                     "created": found.get("creationDate") or item.get("creationDate"),
                     "config_hash": config_hash(found), "description": found.get("description"), "arn": arn})
    return sorted(rows, key=lambda r: r["version"] or 0, reverse=True)


def sfn_rollback(t: Target, to: str | None) -> dict[str, Any]:
    rows = sfn_versions(t)
    alias_arn = t.arns.state_machine_alias()
    with aws_errors("reading the live alias"):
        alias = sfc.describe_alias(t.aws.client("stepfunctions"), alias_arn)
    redeploy = t.command("deploy")
    if alias is None:
        raise UserError(f"{t.resource} has no `live` alias (deployed before mlpipe published versions)",
                        source=t.source, fix=f"deploy once with this mlpipe ({redeploy}); rollback moves that alias")
    if not rows:
        raise UserError(f"{t.resource} has no published versions", source=t.source, fix=redeploy)
    live_arn = sfc.alias_target(alias)
    live = next((r for r in rows if r["arn"] == live_arn), None)
    if to is None and live is None:
        raise UserError(f"the live alias of {t.resource} splits runs between versions; say which one to use",
                        source=t.source, field="--to", fix="pass --to VERSION")
    target = _pick(rows, to, t) if to is not None else _previous(rows, live, t)
    out = {"alias": alias_arn, "from_version": live["version"] if live else None, "to_version": target["version"],
           "config_hash": target["config_hash"], "version_arn": target["arn"]}
    if target["arn"] == live_arn:
        return {**out, "action": "unchanged"}
    with aws_errors(f"pointing the live alias at version {target['version']}"):
        sfc.point_alias(t.aws.client("stepfunctions"), alias_arn, target["arn"])
    return {**out, "action": "rolled back"}


# --- SageMaker Pipelines ----------------------------------------------------------------------

def _sm_rows(t: Target) -> list[dict[str, Any]]:
    """Every pipeline version, newest first; ``_definition``/``_role`` kept for a rollback."""
    sm = t.aws.client("sagemaker")

    def nf(exc):
        raise t.nothing_deployed()
    listed = t.call("listing the pipeline's versions", lambda: smc.list_pipeline_versions(sm, t.resource), nf)
    latest = max((int(v["PipelineVersionId"]) for v in listed), default=None)
    rows = []
    for item in listed:
        vid = int(item["PipelineVersionId"])
        with aws_errors(f"describing pipeline version {vid}"):
            found = smc.describe_pipeline_version(sm, t.resource, vid) or {}
        rows.append({"version": vid, "live": vid == latest, "created": item.get("CreationTime"),
                     "config_hash": config_hash({"PipelineDefinition": found.get("PipelineDefinition")}),
                     "description": item.get("PipelineVersionDescription") or item.get("PipelineVersionDisplayName"),
                     "last_execution": item.get("LastExecutionPipelineExecutionArn"),
                     "_definition": found.get("PipelineDefinition"), "_role": found.get("RoleArn")})
    return sorted(rows, key=lambda r: r["version"], reverse=True)


def sm_versions(t: Target) -> list[dict[str, Any]]:
    return [{k: v for k, v in r.items() if not k.startswith("_")} for r in _sm_rows(t)]


def sm_rollback(t: Target, to: str | None) -> dict[str, Any]:
    rows = _sm_rows(t)
    if not rows:
        raise UserError(f"{t.resource} has no versions", source=t.source,
                        fix=t.command("deploy"))
    live = rows[0]
    target = _pick(rows, to, t) if to is not None else _previous(rows, live, t)
    out = {"pipeline": t.resource, "from_version": live["version"], "to_version": target["version"],
           "config_hash": target["config_hash"]}
    if target["_definition"] is None:
        raise UserError(f"version {target['version']} of {t.resource} has no definition to re-apply",
                        source=t.source, fix="pick another version with --to")
    if same_json(target["_definition"], live["_definition"] or "{}"):
        return {**out, "new_version": live["version"], "action": "unchanged"}
    with aws_errors(f"re-applying version {target['version']} of {t.resource}"):
        resp = smc.update_pipeline_definition(t.aws.client("sagemaker"), t.resource, target["_definition"],
                                              target["_role"])
    return {**out, "new_version": resp.get("PipelineVersionId"), "action": "rolled back"}
