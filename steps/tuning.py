"""Tuning stages: a hyperparameter tuning job over a training stage.

The tuned training stage becomes the tuning job's template: it does not run by itself, and
every reference to its model follows the best training job's model instead (``pipeline.py``
rewires them), so evaluation and registration take the tuned model exactly as they would
take the trained one. ``enabled: false`` builds nothing, and the training stage runs as is.
"""

from __future__ import annotations

from steps.context import BuildContext
from steps.spec import ParameterRange, Stage, TuningStage


def build(cfg, ctx: BuildContext, field: str) -> list[Stage]:
    if not cfg.enabled:
        return []
    training = ctx.producer(ctx.ref(f"{cfg.training}.model"), {"training"}, f"{field}.training")
    return [TuningStage(
        name=cfg.name,
        inputs=dict(training.inputs),
        outputs=("model",),
        depends_on=tuple(sorted({*training.depends_on, *cfg.depends_on})),
        training=training,
        objective_metric=cfg.objective.metric,
        objective_type=cfg.objective.type,
        objective_regex=cfg.objective.regex,
        ranges=tuple(ParameterRange(name, r.type, r.min, r.max, tuple(r.values or ()), r.scaling)
                     for name, r in sorted(cfg.ranges.items())),
        strategy=cfg.strategy,
        max_jobs=cfg.max_jobs,
        max_parallel_jobs=cfg.max_parallel_jobs,
        early_stopping=cfg.early_stopping,
        random_seed=cfg.random_seed,
    )]
