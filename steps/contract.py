"""Each stage kind in one place: its spec class, its factory, the SageMaker job it runs (if
any), and its container contract (where inputs, outputs and code live in the container).

Every backend reads this: the renderers put inputs where the contract says, the local runner
maps the same paths into a run directory, and the IAM generator grants the jobs the kinds run.
Adding a kind means a spec class, a factory, an entry here, and one handler per backend; a
test fails when a backend lacks a handler for a kind listed here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from steps import spec

# --- the container contract (SageMaker's paths, the same for every backend) -----------------
PROCESSING = "/opt/ml/processing"
CODE_DIR = f"{PROCESSING}/input/code"
MODEL_DIR = "/opt/ml/model"
INPUT_CONFIG_DIR = "/opt/ml/input/config"
CHANNELS_DIR = "/opt/ml/input/data"
SERVING_CODE_DIR = f"{MODEL_DIR}/code"          # a framework model's inference code, inside model.tar.gz
INFERENCE_ENTRY = "inference.py"
# The environment of a framework (PyTorch) model, as both renderers declare it and `mlpipe serve`
# applies it. The inference toolkit answers a request with no Accept header, or `*/*`, in
# SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT (its own default is application/json, which the
# inference script cannot write: HTTP 500).
FRAMEWORK_MODEL_ENV = {
    "SAGEMAKER_PROGRAM": INFERENCE_ENTRY,
    "SAGEMAKER_SUBMIT_DIRECTORY": SERVING_CODE_DIR,
    "SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT": "text/csv",
}


@dataclass(frozen=True)
class Kind:
    name: str
    stage_class: type
    factory: Callable | None          # None: built by another kind's factory (the gate)
    job: str | None = None            # the SageMaker job it runs: processing | training | transform | tuning
    runs_code: bool = False           # a script runs in its image (the pins that `mlpipe run --exact` applies)
    cached: bool = False              # the local runner reuses its outputs when code, config and inputs are unchanged
    light: bool = False               # bookkeeping only, locally: not counted against the runner's parallel stages
    input_dirs: dict[str, str] | None = None   # fixed container paths of named inputs (processing jobs)
    output_dirs: dict[str, str] | None = None  # fixed container paths of named outputs (processing jobs)

    def input_path(self, name: str) -> str:
        """Where a processing job's input ``name`` appears in the container."""
        return (self.input_dirs or {}).get(name, f"{PROCESSING}/input/{name}")

    def output_path(self, name: str) -> str:
        """Where a processing job writes its output ``name``."""
        return (self.output_dirs or {}).get(name, f"{PROCESSING}/{name}")

    @staticmethod
    def channel_path(channel: str) -> str:
        """Where a training job's input channel appears."""
        return f"{CHANNELS_DIR}/{channel}"


def _factories():
    from steps import (approval, baseline, endpoint, evaluation, lambda_step, model, processing, registry, training,
                       transform, tuning)

    return {"processing": processing.build, "training": training.build, "evaluation": evaluation.build,
            "model": model.build, "register": registry.build, "approval": approval.build,
            "endpoint": endpoint.build, "transform": transform.build, "lambda": lambda_step.build,
            "tuning": tuning.build, "baseline": baseline.build}


def _kinds() -> dict[str, Kind]:
    f = _factories()
    return {k.name: k for k in (
        Kind("processing", spec.ProcessingStage, f["processing"], job="processing", runs_code=True, cached=True),
        Kind("training", spec.TrainingStage, f["training"], job="training", runs_code=True, cached=True),
        Kind("evaluation", spec.EvaluationStage, f["evaluation"], job="processing", runs_code=True, cached=True,
             input_dirs={"model": f"{PROCESSING}/model", "test": f"{PROCESSING}/test"}),
        Kind("gate", spec.GateStage, None, light=True),
        Kind("model", spec.ModelStage, f["model"], light=True),
        Kind("register", spec.RegisterStage, f["register"], light=True),
        Kind("approval", spec.ApprovalStage, f["approval"], light=True),
        Kind("endpoint", spec.EndpointStage, f["endpoint"]),
        Kind("transform", spec.TransformStage, f["transform"], job="transform", cached=True),
        Kind("lambda", spec.LambdaStage, f["lambda"], light=True),
        Kind("tuning", spec.TuningStage, f["tuning"], job="tuning", runs_code=True, cached=True),
        # Model Monitor's analyzer reads the dataset here and writes both files to one output
        # (the sagemaker SDK's DefaultModelMonitor.suggest_baseline paths)
        Kind("baseline", spec.BaselineStage, f["baseline"], job="processing",
             input_dirs={"data": f"{PROCESSING}/input/baseline_dataset_input"},
             output_dirs={"baseline": f"{PROCESSING}/output"}),
    )}


KINDS: dict[str, Kind] = _kinds()
CONFIG_KINDS = tuple(k for k, v in KINDS.items() if v.factory is not None)   # what a config may declare


def handler(handlers: dict[str, Callable], stage, backend: str) -> Callable:
    """A backend's handler for a stage's kind; a kind without one is an error, never skipped."""
    try:
        return handlers[stage.kind]
    except KeyError:
        raise NotImplementedError(f"the {backend} backend has no handler for {stage.kind} stages "
                                  f"(stage {stage.name!r})") from None
