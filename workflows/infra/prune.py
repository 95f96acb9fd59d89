"""What a redeploy removes: resources an earlier deploy of this target created that the config
no longer declares (``plan.py`` appends them to the plan as ``delete`` rows).

Found by their deterministic names (``steps/naming.py``: ``mlpipe-<pipeline>-...``) and, for
every kind that can carry tags, confirmed by the ``mlpipe:pipeline`` tag: what mlpipe did not
create is never touched. Both targets share some resources, so each deploy removes only what is
its own:

- the S3 trigger rule and the retraining schedule carry the target in their name;
- the model-approved rules, the endpoint deployers and the trigger starter exist only for the
  SageMaker target (their targets' Id, their handler say which they are);
- a lambda stage's function serves both targets: it goes only when the other target's deployed
  orchestrator does not call it;
- the schedule's dead-letter queue is shared: it goes only when no deployed schedule (of either
  target) still sends to it;
- e-mail subscriptions of addresses the config no longer lists (pending confirmations cannot be
  removed through the API; AWS drops them after three days);
- the inline policies named for this target (``mlpipe-<target>-...``) on a role this target no
  longer uses (the role itself is shared, and stays).

Never removed: the bucket, code assets (running executions use them), log groups, the topic,
model package groups (they hold models), roles, the orchestrators themselves.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

from steps import naming
from steps.naming import Arns
from workflows.aws import events_client, iam_client, lambda_client, sagemaker_client, scheduler_client, sns_client, \
    stepfunctions_client
from workflows.infra.iam import DEPLOYER_HANDLER, SCHEDULER_HANDLER, SERVICE_PRINCIPAL, STARTER_HANDLER

if TYPE_CHECKING:
    from workflows.infra.plan import Deployment

TAG = "mlpipe:pipeline"
TARGETS = ("stepfunctions", "sagemaker")


@dataclass(frozen=True)
class Removal:
    kind: str
    name: str
    remove: Callable[[], None]


def _other(target: str) -> str:
    return TARGETS[1] if target == TARGETS[0] else TARGETS[0]


def rule_owner(pipeline: str, rule: str, target_ids: set[str]) -> str | None:
    """Which target's deploy creates this rule (None: not one mlpipe makes)."""
    for t in TARGETS:
        if rule in (naming.trigger_rule_name(pipeline, t), naming.status_rule_name(pipeline, t),
                    naming.violations_rule_name(pipeline, t)):
            return t
    if target_ids == {"deploy-endpoint"}:
        return "sagemaker"            # the model-approved rules
    return None


def _orchestrator_definition(d: "Deployment", target: str) -> str | None:
    a = Arns.of(d.spec, d.account, d.region)
    if target == "stepfunctions":
        found = stepfunctions_client.describe_state_machine(d.c("stepfunctions"), a.state_machine())
        return found.get("definition", "") if found else None
    found = sagemaker_client.describe_pipeline(d.c("sagemaker"), naming.sagemaker_pipeline_name(d.spec.name))
    return found.get("PipelineDefinition", "") if found else None


def stale(d: "Deployment", declared: set[tuple[str, str]]) -> list[Removal]:
    """Removals, in a safe order: rules, schedule, permissions, functions, queue, subscriptions."""
    spec, target = d.spec, d.target
    p = spec.name
    a = Arns.of(spec, d.account, d.region)
    out: list[Removal] = []

    # --- EventBridge rules ----------------------------------------------------------------
    events = d.c("events")
    for rule in events_client.list_rules(events, naming.name_prefix(p)):
        name = rule["Name"]
        if ("eventbridge rule", name) in declared:
            continue
        if events_client.tags(events, rule.get("Arn") or a.rule(name)).get(TAG) != p:
            continue
        ids = {t["Id"] for t in events_client.list_targets(events, name)}
        if rule_owner(p, name, ids) == target:
            out.append(Removal("eventbridge rule", name, lambda n=name: events_client.delete_rule(events, n)))

    # --- the schedule (schedules carry no tags: the name and the description say it is ours) -
    scheduler = d.c("scheduler")
    sched_name = naming.schedule_name(p, target)
    if ("schedule", sched_name) not in declared:
        found = scheduler_client.get_schedule(scheduler, sched_name)
        if found and str(found.get("Description", "")).startswith(f"mlpipe {p}:"):
            out.append(Removal("schedule", sched_name,
                               lambda: scheduler_client.delete_schedule(scheduler, sched_name)))

    # --- Lambda functions and their permissions -------------------------------------------
    lam = d.c("lambda")
    other_definition: str | None = None
    other_read = False
    for fn in lambda_client.list_functions(lam):
        name = fn["FunctionName"]
        if not str(fn.get("Description", "")).startswith(f"mlpipe {p}: "):
            continue
        if lambda_client.tags(lam, fn.get("FunctionArn") or a.function(name)).get(TAG) != p:
            continue
        if ("lambda function", name) in declared:
            if target == "sagemaker":   # only the SageMaker target lets rules invoke functions
                for sid in sorted(lambda_client.permission_statements(lam, name)):
                    rule = str(sid).removesuffix("-invoke")
                    if (str(sid).endswith("-invoke") and rule.startswith(naming.name_prefix(p))
                            and ("lambda permission", f"{name}/{rule}") not in declared):
                        out.append(Removal("lambda permission", f"{name}/{rule}",
                                           lambda n=name, s=sid: lambda_client.remove_permission(lam, n, s)))
            continue
        if fn.get("Handler") in (DEPLOYER_HANDLER, STARTER_HANDLER, SCHEDULER_HANDLER):
            owner_ok = target == "sagemaker"
        else:                           # a lambda stage's function: both targets call it
            if not other_read:
                other_definition, other_read = _orchestrator_definition(d, _other(target)), True
            owner_ok = not (other_definition and f":function:{name}" in other_definition)
        if owner_ok:
            out.append(Removal("lambda function", name, lambda n=name: lambda_client.delete_function(lam, n)))

    # --- the schedule's dead-letter queue (shared by both targets' schedules) -------------------
    queue = naming.queue_name(p)
    if ("sqs queue", queue) not in declared:
        sqs = d.c("sqs")
        url = scheduler_client.queue_url(sqs, queue)
        if url and scheduler_client.queue_tags(sqs, url).get(TAG) == p:
            arn = scheduler_client.queue_arn(sqs, url) or a.queue()
            other = scheduler_client.get_schedule(scheduler, naming.schedule_name(p, _other(target))) or {}
            still_used = ((other.get("Target") or {}).get("DeadLetterConfig") or {}).get("Arn") == arn
            if not still_used:
                out.append(Removal("sqs queue", queue, lambda: scheduler_client.delete_queue(sqs, url)))

    # --- e-mail subscriptions of addresses no longer listed -----------------------------------
    sns = d.c("sns")
    wanted = set(spec.emails)
    for sub in sns_client.email_subscriptions(sns, a.topic()):
        arn = str(sub.get("SubscriptionArn", ""))
        if sub.get("Endpoint") not in wanted and arn.startswith("arn:"):
            out.append(Removal("sns subscription", str(sub.get("Endpoint")),
                               lambda s=arn: sns_client.unsubscribe(sns, s)))

    # --- this target's inline policies on roles it no longer uses ------------------------------
    # (roles are shared by both targets and stay; only the policies named for this target go)
    iam = d.c("iam")
    own = naming.policy_prefix(target)
    for service in sorted(SERVICE_PRINCIPAL):
        role = naming.role_name(p, service)
        if ("iam role", role) in declared or iam_client.tags(iam, role).get(TAG) != p:
            continue
        for policy in sorted(iam_client.inline_policy_names(iam, role)):
            if policy.startswith(own):
                out.append(Removal("iam role policy", f"{role}/{policy}",
                                   lambda r=role, n=policy: iam_client.delete_role_policy(iam, r, n)))
    return out


def tags_of(d: "Deployment", kind: str, name: str, arn: str | None) -> dict[str, str] | None:
    """The tags a deployed resource carries (None: the kind cannot carry tags, or nothing there)."""
    from workflows.aws import logs_client

    readers: dict[str, Callable[[], Any]] = {
        "log group": lambda: logs_client.tags(d.c("logs"), arn or ""),
        "sns topic": lambda: sns_client.tags(d.c("sns"), arn or ""),
        "sqs queue": lambda: (lambda url: scheduler_client.queue_tags(d.c("sqs"), url) if url else None)(
            scheduler_client.queue_url(d.c("sqs"), name)),
        "iam role": lambda: iam_client.tags(d.c("iam"), name),
        "lambda function": lambda: lambda_client.tags(d.c("lambda"), arn or ""),
        "model package group": lambda: sagemaker_client.tags(d.c("sagemaker"), arn or ""),
        "state machine": lambda: stepfunctions_client.tags(d.c("stepfunctions"), arn or ""),
        "sagemaker pipeline": lambda: sagemaker_client.tags(d.c("sagemaker"), arn or ""),
        "eventbridge rule": lambda: events_client.tags(d.c("events"), arn or ""),
    }
    reader = readers.get(kind)
    return None if reader is None else reader()
