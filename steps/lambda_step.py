"""Lambda stages: run a handler from lambda_handlers/ (e.g. record the model name in SSM)."""

from __future__ import annotations

import importlib.util

from steps import naming
from steps.context import BuildContext
from steps.spec import LambdaStage


def _is_handler(module: str, func: str) -> bool:
    """A function defined at the top level of a module under lambda_handlers/ (read, not run:
    importing the handler would import its dependencies at build time)."""
    import ast

    if not module.startswith("lambda_handlers.") or not func:
        return False
    try:
        found = importlib.util.find_spec(module)
    except ModuleNotFoundError:
        return False
    if found is None or not found.origin:
        return False
    tree = ast.parse(open(found.origin, encoding="utf-8").read())
    return any(isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == func for node in tree.body)


def build(cfg, ctx: BuildContext, field: str) -> LambdaStage:
    module, _, func = cfg.handler.rpartition(".")
    if not _is_handler(module, func):
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
