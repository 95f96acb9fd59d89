"""Turn a validated config into a PipelineSpec, one factory per stage kind."""

from __future__ import annotations

import os
from dataclasses import dataclass

from config.errors import ConfigError
from config.loader import config_dir, source_name
from config.models import PipelineConfig
from steps import fanout
from steps.contract import KINDS
from steps.context import BuildContext
from steps.spec import OutputRef, Parameter, PipelineSpec, Schedule, Stage

PLACEHOLDER_ACCOUNT = "000000000000"


def gate_later_stages(stages: list[Stage], group: tuple[str, ...] = ()) -> list[Stage]:
    """A gate guards every stage declared after it: nothing is registered, deployed or recorded
    unless the model passed. A gate inside a fan-out's ``group`` guards its item's stages only."""
    from dataclasses import replace

    out: list[Stage] = []
    gate: str | None = None
    outer: str | None = None   # the last gate outside the group
    for stage in stages:
        guard = gate if gate not in group or stage.name in group else outer
        if guard and guard not in stage.upstream and stage.kind != "gate":
            stage = replace(stage, depends_on=tuple(sorted({*stage.depends_on, guard})))
        if stage.kind == "gate":
            gate = stage.name
            outer = gate if gate not in group else outer
        out.append(stage)
    return out


def follow_tuning(stages: list[Stage]) -> list[Stage]:
    """A tuned training stage is its tuning job's template, not a stage of its own: drop it,
    and point whatever used its model (or waited on it) at the tuning stage instead."""
    from dataclasses import replace

    moved = {s.training.name: s.name for s in stages if s.kind == "tuning"}
    if not moved:
        return stages
    out: list[Stage] = []
    for stage in stages:
        if stage.name in moved:
            continue
        inputs = {k: OutputRef(moved[v.stage], v.output) if isinstance(v, OutputRef) and v.stage in moved else v
                  for k, v in stage.inputs.items()}
        depends = tuple(sorted({moved.get(d, d) for d in stage.depends_on} - {stage.name}))
        if inputs != dict(stage.inputs) or depends != tuple(stage.depends_on):
            stage = replace(stage, inputs=inputs, depends_on=depends)
        out.append(stage)
    return out


def toposort(stages: list[Stage], source: str | None) -> tuple[Stage, ...]:
    """Dependency order; among ready stages the one declared first goes first, so the
    linear renderings (Step Functions, the local runner) follow the config's own order.
    Stages that wait on a manual approval go last: a person's answer (or a rejection, which
    ends the run) must not hold back or skip the stages that do not need it."""
    order = {s.name: i for i, s in enumerate(stages)}
    waiting = {s.name: set(s.upstream) for s in stages}
    held = {s.name for s in stages if s.kind == "approval"}
    changed = True
    while changed:  # everything downstream of an approval, to a fixed point
        grown = held | {s.name for s in stages if held & set(s.upstream)}
        changed, held = grown != held, grown
    rank = {s.name: (s.name in held, order[s.name]) for s in stages}
    result: list[Stage] = []
    while waiting:
        ready = [name for name, ups in waiting.items() if not ups]
        if not ready:
            cycle = " -> ".join(_cycle(waiting))
            raise ConfigError(f"stages depend on each other in a cycle: {cycle}", source=source,
                              field="stages", fix="remove one of the depends_on links")
        name = min(ready, key=rank.__getitem__)
        del waiting[name]
        for ups in waiting.values():
            ups.discard(name)
        result.append(stages[order[name]])
    return tuple(result)


def _cycle(waiting: dict[str, set[str]]) -> list[str]:
    """One cycle among stages that wait on each other (not every stage downstream of it):
    follow waiting edges from any stage until one repeats."""
    path: list[str] = []
    node = min(waiting)
    while node not in path:
        path.append(node)
        node = min(u for u in waiting[node] if u in waiting)
    return path[path.index(node):] + [node]


@dataclass(frozen=True)
class Parallel:
    """Branches that may run at the same time; each branch is a sequence (see ``parallel_plan``)."""

    branches: tuple[tuple, ...]


def ancestry(stages: tuple[Stage, ...]) -> dict[str, set[str]]:
    """Every stage's ancestors (transitive upstream), for stages in dependency order."""
    out: dict[str, set[str]] = {}
    for s in stages:
        out[s.name] = set().union(*({u} | out[u] for u in s.upstream))
    return out


def chain_after(stages: tuple[Stage, ...]) -> dict[str, int]:
    """Every stage's longest chain of stages that wait for it, for stages in dependency order."""
    out = {s.name: 0 for s in stages}
    for s in reversed(stages):
        for u in s.upstream:
            out[u] = max(out[u], out[s.name] + 1)
    return out


def parallel_plan(stages: tuple[Stage, ...]) -> tuple:
    """The stages as a series-parallel sequence: stage names in order, and ``Parallel`` items.

    A linear rendering (a state machine) runs the sequence in order and the branches of a
    Parallel at once, so a stage waits only for its own ancestors and the critical path is the
    DAG's. A sequence is split at its *cuts* (stages comparable with every other stage of it:
    all before are its ancestors, all after its descendants); what lies between two cuts splits
    into independent components, one branch each, decomposed again. A part that is neither
    (an N-shaped DAG: a->c, b->c, b->d) is split where its dependency order gives the shortest
    plan; there a stage may wait for one that is not its ancestor.
    A gate is a cut, since every later stage depends on it (``gate_later_stages``).
    """
    names = [s.name for s in stages]
    ancestors = ancestry(stages)

    def related(a: str, b: str) -> bool:
        return a in ancestors[b] or b in ancestors[a]

    def cuts(members: list[str]) -> set[str]:
        return {c for c in members if all(m == c or related(m, c) for m in members)}

    def sequence(members: list[str]) -> tuple:
        at = cuts(members)
        if len(members) <= 1 or not at:
            return tuple(members) if len(members) <= 1 else branches(members)
        out: list = []
        part: list[str] = []
        for m in members:
            if m in at:
                out += branches(part)
                out.append(m)
                part = []
            else:
                part.append(m)
        return tuple(out + list(branches(part)))

    def branches(members: list[str]) -> tuple:
        if not members:
            return ()
        components: list[list[str]] = []
        for m in members:                  # members are in dependency order
            joined = [c for c in components if any(related(m, x) for x in c)]
            merged = [x for c in joined for x in c] + [m]
            components = [c for c in components if c not in joined] + [merged]
        if len(components) > 1:
            order = {n: i for i, n in enumerate(names)}
            components.sort(key=lambda c: order[c[0]])
            return (Parallel(tuple(sequence(sorted(c, key=order.__getitem__)) for c in components)),)
        if cuts(members):
            return sequence(members)
        # Not series-parallel (an N shape: a->c, b->c, b->d). Any split of the dependency order
        # is correct; take the one whose plan is shortest, counting stages on its longest path.
        if tuple(members) not in best:
            splits = [sequence(members[:k]) + sequence(members[k:]) for k in range(1, len(members))]
            best[tuple(members)] = min(splits, key=length)
        return best[tuple(members)]

    best: dict[tuple[str, ...], tuple] = {}
    return sequence(names)


def length(plan: tuple) -> int:
    """Stages on a plan's longest path: a sequence adds up, a Parallel takes its longest branch."""
    return sum(1 if isinstance(item, str) else max(map(length, item.branches)) for item in plan)


def build_spec(config: PipelineConfig, env: dict[str, str] | None = None) -> PipelineSpec:
    env = os.environ if env is None else env
    source = source_name(config)   # as the user named it, like every error from loading the config
    ctx = BuildContext(config=config, base_dir=config_dir(config), source=source, built={})
    stages: list[Stage] = []
    for i, cfg in enumerate(config.stages):
        built = KINDS[cfg.kind].factory(cfg, ctx, f"stages[{i}]({cfg.name})")
        for stage in built if isinstance(built, list) else [built]:
            if stage.name in ctx.built:
                raise ConfigError(f"stage name {stage.name!r} is used twice", source=source,
                                  field=f"stages[{i}].name", fix="rename one of them")
            ctx.built[stage.name] = stage
            stages.append(stage)
    stages, fan = fanout.build(config, stages, source)
    aws = config.aws
    sched = config.schedule
    return PipelineSpec(
        name=config.pipeline.name,
        description=config.pipeline.description,
        region=aws.region or env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1",
        account_id=aws.account_id or PLACEHOLDER_ACCOUNT,
        bucket=aws.bucket,
        prefix=aws.prefix,
        roles=aws.roles.model_dump(),
        tags=dict(aws.tags),
        parameters=tuple(
            Parameter(name, p.type, p.default, p.description, tuple(p.allowed) if p.allowed else None)
            for name, p in config.parameters.items()
        ),
        stages=toposort(gate_later_stages(follow_tuning(stages), fan.stages if fan else ()), source),
        data=config.data.model_dump() if config.data else {},
        schedule=Schedule(sched.expression, sched.timezone, sched.enabled, sched.retry.maximum_attempts,
                          sched.retry.maximum_event_age_seconds, sched.dead_letter_queue) if sched else None,
        trigger_prefix=config.trigger.s3_prefix if config.trigger else None,
        cache_expire_after=config.cache.expire_after if config.cache else None,
        emails=tuple(config.notifications.emails),
        source=config._source,
        source_text=source,
        fanout=fan,
    )


def load_spec(path=None, env=None, overrides=None) -> PipelineSpec:
    from config.loader import load_config

    return build_spec(load_config(path, env, overrides), env)
