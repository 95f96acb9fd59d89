"""Processing stages: split and encode the data (built-in script) or run the user's own."""

from __future__ import annotations

from steps.context import BuildContext
from steps.spec import Image, ProcessingStage

_BUILTIN = "builtin:preprocess"


def preprocess_arguments(data) -> tuple[str, ...]:
    """The data section as command-line arguments of steps/code/preprocess.py."""
    if data is None:
        return ()
    args = ["--target", str(data.target), "--problem-type", data.problem_type]
    if data.header is not None:
        args.append("--header" if data.header else "--no-header")
    if data.delimiter is not None:
        args += ["--delimiter", data.delimiter]
    if data.categorical is not None:
        args += ["--categorical", *map(str, data.categorical)]
    if data.column_names:
        args += ["--column-names", ",".join(data.column_names)]
    train, validation, test = data.split
    args += ["--train-ratio", f"{train:g}", "--validation-ratio", f"{validation:g}",
             "--test-ratio", f"{test:g}", "--seed", str(data.seed)]
    return tuple(args)


def build(cfg, ctx: BuildContext, field: str) -> ProcessingStage:
    arguments = tuple(cfg.arguments)
    if cfg.code == _BUILTIN:
        arguments = preprocess_arguments(ctx.config.data) + arguments
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
