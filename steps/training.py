"""Training stages: a built-in algorithm (XGBoost) or a framework script (PyTorch)."""

from __future__ import annotations

from steps.context import BuildContext
from steps.spec import Image, TrainingStage


def build(cfg, ctx: BuildContext, field: str) -> TrainingStage:
    if cfg.algorithm is not None:
        image = Image("algorithm", cfg.algorithm.name, cfg.algorithm.version)
        entry_point = None
    else:
        fw = cfg.framework
        image = Image("framework", fw.name, fw.version, fw.py_version)
        # The inference script travels in the source dir; training copies it to model/code/ so the
        # model artifact is servable as is (no repack step, no upload at build time).
        entry_point = ctx.asset(fw.entry_point, f"{field}.framework.entry_point", archive=True,
                                extra=("builtin:inference_pytorch",))
    return TrainingStage(
        name=cfg.name,
        inputs={k: ctx.ref(v) for k, v in cfg.inputs.items()},
        outputs=("model",),
        depends_on=tuple(cfg.depends_on),
        image=image,
        instance=ctx.instance(cfg),
        hyperparameters=dict(cfg.hyperparameters),
        entry_point=entry_point,
        content_type=cfg.content_type,
        output_path=cfg.output_path,
        checkpoint_path=cfg.checkpoint_path,
    )
