"""Lambda stages: run a handler from lambda_handlers/ (e.g. record the model name in SSM)."""

from __future__ import annotations

import importlib.util

from steps import naming
from steps.context import BuildContext
from steps.spec import LambdaStage


def build(cfg, ctx: BuildContext, field: str) -> LambdaStage:
    module, _, func = cfg.handler.rpartition(".")
    if not module.startswith("lambda_handlers.") or not func or importlib.util.find_spec(module) is None:
        raise ctx.error(f"handler {cfg.handler!r} is not a function in lambda_handlers/",
                        f"{field}.handler", "e.g. lambda_handlers.register_model_name.handler")
    return LambdaStage(
        name=cfg.name,
        inputs={k: ctx.ref(v) for k, v in cfg.payload.items()},
        outputs=("result",),
        depends_on=tuple(cfg.depends_on),
        function_name=cfg.function_name or naming.function_name(ctx.pipeline, cfg.name),
        handler=cfg.handler,
        environment=dict(cfg.environment),
        timeout_seconds=cfg.timeout_seconds,
        memory_mb=cfg.memory_mb,
    )
