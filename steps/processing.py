"""Processing stages: split and encode the data (built-in script) or run the user's own."""

from __future__ import annotations

from config.models import BUILTIN_PREPROCESS, preprocess_arguments
from steps.context import BuildContext
from steps.spec import Image, ProcessingStage


def build(cfg, ctx: BuildContext, field: str) -> ProcessingStage:
    arguments = tuple(cfg.arguments)
    if cfg.code == BUILTIN_PREPROCESS:
        # a `baseline` output: the training features as an endpoint receives them (baseline stages)
        arguments = preprocess_arguments(ctx.config.data) + (("--baseline",) if "baseline" in cfg.outputs else ()) \
            + arguments
    return ProcessingStage(
        name=cfg.name,
        inputs={k: ctx.ref(v) for k, v in cfg.inputs.items()},
        outputs=tuple(cfg.outputs),
        depends_on=tuple(cfg.depends_on),
        code=ctx.asset(cfg.code, f"{field}.code"),
        image=Image("framework", cfg.framework, cfg.framework_version),
        instance=ctx.instance(cfg),
        arguments=arguments,
    )
