"""The one place the ``sagemaker`` SDK is set up for rendering; both renderers import it.

The stepfunctions SDK takes sagemaker estimators, processors and models, so both renderers
build those, and both need the SDK quiet, offline and independent of the caller's AWS setup:
- the SDK's narration (what it drops from definitions, PipelineSession behaviour) is silenced;
- ``isolated_env`` hides AWS_PROFILE and pins the region while an SDK runs (``import sagemaker``
  and the stepfunctions SDK build boto3 sessions from the environment);
- ``offline_session`` has dummy credentials, an explicit SDK-config dict, a pre-resolved
  default bucket, and refuses every botocore call, so no hidden STS/S3 call can slip in (its
  boto3 session comes from ``workflows/aws/offline.py``, like every boto3/botocore set-up);
- image URIs come from the SDK's bundled tables (offline);
- what the SDK would redo for every object it builds is done once per process: botocore's
  data files are parsed once (one loader per search path, shared by every botocore session:
  ``workflows/aws/offline.py``);
  the SDK-defaults dict is validated once per distinct content and each image-URI table is
  read once (``_load_once``). The rendered bytes do not change (the golden files pin them).
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import warnings
from typing import Any

os.environ.setdefault("SAGEMAKER_SUPPRESS_V2_WARNING", "1")
logging.getLogger("sagemaker").setLevel(logging.ERROR)
# "Not applying SDK defaults from location ...", "Applied value from config key ...": set
# before the import, or the SDK gives this logger level INFO and a handler of its own.
logging.getLogger("sagemaker.config").setLevel(logging.WARNING)
warnings.filterwarnings("ignore", module=r"sagemaker(\..*)?$")
warnings.filterwarnings("ignore", message=r".*pkg_resources is deprecated.*")

_AMBIENT = ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_REGION", "AWS_DEFAULT_REGION")


@contextlib.contextmanager
def isolated_env(region: str | None = None):
    """Rendering must not depend on the caller's AWS setup: hide the profile and pin the
    region to the spec's while the SDKs run (a broken AWS_PROFILE or another AWS_REGION would
    otherwise fail or change a build)."""
    saved = {k: os.environ.pop(k) for k in _AMBIENT if k in os.environ}
    if region:
        os.environ["AWS_DEFAULT_REGION"] = region
    try:
        yield
    finally:
        for k in _AMBIENT:
            os.environ.pop(k, None)
        os.environ.update(saved)


from workflows.aws.offline import default_loader_shared, offline_boto_session  # noqa: E402

with isolated_env(), default_loader_shared():
    import sagemaker  # noqa: E402,F401

from sagemaker import image_uris  # noqa: E402
from sagemaker.workflow.pipeline_context import PipelineSession  # noqa: E402

from steps.spec import EvaluationStage, Image, PipelineSpec  # noqa: E402

# A non-empty SDK-defaults dict: an empty one makes the Session read config files from disk or
# S3, and TelemetryOptOut stops the estimator's telemetry call.
_OFFLINE_SDK_CONFIG = {"SchemaVersion": "1.0", "SageMaker": {"PythonSDK": {"Modules": {"TelemetryOptOut": True}}}}


def _load_once() -> None:
    """Make the SDK's per-object re-reads one-time work (the output is the same).

    - Every ``resolve_value_from_config`` (about 115 per build: each estimator, processor,
      model, transformer and request builder) re-validates the session's SDK-defaults dict with
      ``jsonschema.validate``, which first re-checks the SDK's whole config schema against the
      JSON Schema meta-schema (~0.2 s each). Here a dict is validated against the schema once
      per distinct content (canonical JSON), with the same error a failure raises; the schema
      itself is a constant of the installed SDK (tests/test_render_cache.py checks it).
    - ``image_uris.config_for_framework`` re-reads and re-parses the framework's JSON table on
      every ``retrieve``; it is read once per framework (``retrieve`` only reads it).
    """
    import jsonschema
    from sagemaker import session as sm_session
    from sagemaker import utils as sm_utils
    from sagemaker.config import config as sm_config

    schema = sm_config.SAGEMAKER_PYTHON_SDK_CONFIG_SCHEMA
    validator = jsonschema.validators.validator_for(schema)(schema)
    valid: set[str] = set()

    def validate_sagemaker_config(sagemaker_config: dict | None = None) -> None:
        key = json.dumps(sagemaker_config, sort_keys=True, default=repr)
        if key not in valid:
            error = jsonschema.exceptions.best_match(validator.iter_errors(sagemaker_config))
            if error is not None:
                raise error
            valid.add(key)

    for module in (sm_utils, sm_session, sm_config, sagemaker.config):
        module.validate_sagemaker_config = validate_sagemaker_config
    image_uris.config_for_framework = functools.lru_cache(maxsize=None)(image_uris.config_for_framework)


_load_once()


def offline_session(spec: PipelineSpec) -> PipelineSession:
    """A PipelineSession on an offline boto3 session (``workflows/aws/offline.py``): dummy
    credentials that never leave, no profile read, and any botocore call raises
    ``OfflineCallError``."""
    session = PipelineSession(boto_session=offline_boto_session(spec.region), default_bucket=spec.bucket,
                              default_bucket_prefix=spec.prefix or None, sagemaker_config=_OFFLINE_SDK_CONFIG)
    session._default_bucket = spec.bucket  # else default_bucket() probes S3 for the bucket
    return session


class RendererBase:
    """What both renderers start from: the spec, an offline SDK session, the pipeline's ARNs
    and the role its SageMaker jobs run as."""

    def __init__(self, spec: PipelineSpec) -> None:
        from steps.naming import Arns

        self.spec = spec
        self.session = offline_session(spec)
        self.arns = Arns.of(spec)
        self.role = self.arns.role("sagemaker")

    def handlers(self) -> dict[str, Any]:
        """Each stage kind's method, by the same name in both renderers (a test checks, for
        each renderer, that every kind in steps.contract has one; a missing method fails it).
        In the SageMaker renderer a gate's or an approval's method also takes the steps below it."""
        return {"processing": self.processing, "training": self.training, "evaluation": self.evaluation,
                "gate": self.gate, "model": self.model, "register": self.register, "approval": self.approval,
                "endpoint": self.endpoint, "transform": self.transform, "lambda": self.lambda_,
                "tuning": self.tuning, "baseline": self.baseline}


def image_uri(image: Image, region: str, instance_type: str) -> str:
    """ECR image a stage's job runs in (training scope for frameworks)."""
    if image.kind == "algorithm":
        return image_uris.retrieve(framework=image.name, region=region, version=image.version,
                                   py_version="py3", instance_type=instance_type)
    return image_uris.retrieve(framework=image.name, region=region, version=image.version,
                               py_version=image.py_version or "py3", instance_type=instance_type,
                               image_scope="training")


def inference_image_uri(image: Image, region: str, instance_type: str) -> str:
    if image.kind == "algorithm":
        return image_uri(image, region, instance_type)
    return image_uris.retrieve(framework=image.name, region=region, version=image.version,
                               py_version=image.py_version or "py3", instance_type=instance_type,
                               image_scope="inference")


def sdk_estimator(stage, *, region: str, role: str, session, instance_count: Any, output_path: Any, **extra):
    """A training stage's estimator, the one both renderers build: ``Estimator`` for an
    algorithm image, ``PyTorch`` for a framework script. Hyperparameters go through it, so the
    SDK formats them alike for both targets (strings for algorithms, JSON for framework
    containers). ``instance_count`` and ``output_path``: each target's reference or value;
    ``extra``: what only one target sets (the pipeline's base job name and tags)."""
    from sagemaker.estimator import Estimator
    from sagemaker.pytorch import PyTorch

    s = stage
    common = dict(
        instance_type=s.instance.type, instance_count=instance_count, volume_size=s.instance.volume_gb,
        max_run=s.instance.max_runtime_seconds, role=role, sagemaker_session=session,
        hyperparameters=dict(s.hyperparameters), output_path=output_path, checkpoint_s3_uri=s.checkpoint_path,
        disable_profiler=True, debugger_hook_config=False, **extra,
    )
    if s.image.kind == "algorithm":
        return Estimator(image_uri=image_uri(s.image, region, s.instance.type), **common)
    return PyTorch(entry_point=s.entry_point.entry.name, source_dir=s.entry_point.uri,
                   framework_version=s.image.version, py_version=s.image.py_version, **common)


def sdk_processor(stage, *, region: str, role: str, session, instance_count: Any, **extra):
    """A processing or evaluation stage's processor, the one both renderers build:
    ``SKLearnProcessor`` (the image's version is scikit-learn's) for a processing stage,
    ``ScriptProcessor`` running ``python3`` in the stage's image for an evaluation stage.
    ``instance_count``: each target's reference or value; ``extra``: what only one target sets
    (the pipeline's base job name and tags)."""
    from sagemaker.processing import ScriptProcessor
    from sagemaker.sklearn.processing import SKLearnProcessor

    s = stage
    common = dict(
        instance_type=s.instance.type, instance_count=instance_count, volume_size_in_gb=s.instance.volume_gb,
        max_runtime_in_seconds=s.instance.max_runtime_seconds, role=role, sagemaker_session=session, **extra,
    )
    if isinstance(s, EvaluationStage):
        return ScriptProcessor(image_uri=image_uri(s.image, region, s.instance.type), command=["python3"], **common)
    return SKLearnProcessor(framework_version=s.image.version, **common)


def sdk_tuner(stage, estimator, **extra):
    """A tuning stage's HyperparameterTuner over ``estimator`` (the training template), the one
    both renderers build; ``extra``: what only one target sets (the pipeline's base job name)."""
    from sagemaker.tuner import HyperparameterTuner

    s = stage
    return HyperparameterTuner(
        estimator, s.objective_metric, sdk_ranges(s),
        metric_definitions=[{"Name": s.objective_metric, "Regex": s.objective_regex}] if s.objective_regex else None,
        strategy=s.strategy, objective_type=s.objective_type, max_jobs=s.max_jobs,
        max_parallel_jobs=s.max_parallel_jobs, early_stopping_type=s.early_stopping, random_seed=s.random_seed,
        **extra)


def sdk_ranges(stage) -> dict:
    """A tuning stage's ranges as the SDK's parameter ranges (both renderers use them)."""
    from sagemaker.parameter import CategoricalParameter, ContinuousParameter, IntegerParameter

    out = {}
    for r in stage.ranges:
        if r.type == "categorical":
            out[r.name] = CategoricalParameter(list(r.values))
        elif r.type == "integer":
            out[r.name] = IntegerParameter(int(r.min), int(r.max), scaling_type=r.scaling)
        else:
            out[r.name] = ContinuousParameter(r.min, r.max, scaling_type=r.scaling)
    return out


# --- Model Monitor (baseline stages and endpoint monitoring) ----------------------------------
# the input and output names of the SDK's QualityCheckStep, so both targets send the same request
BASELINE_INPUT, BASELINE_OUTPUT = "baseline_dataset_input", "quality_check_output"


def monitor_image_uri(region: str) -> str:
    """Model Monitor's analyzer image (sagemaker-model-monitor-analyzer) in ``region``; a
    region the SDK's image table lacks is refused with the regions it has."""
    try:
        return image_uris.retrieve("model-monitor", region)
    except ValueError:
        from config.errors import UserError

        regions = sorted(image_uris.config_for_framework("model-monitor")["versions"][""]["registries"])
        raise UserError(f"Model Monitor's analyzer image is not available in {region} (the sagemaker SDK's image "
                        "table): baseline stages and endpoint monitoring cannot run there",
                        fix=f"use a region that has it ({', '.join(r for r in regions if r.startswith(('us-', 'eu-')) and '-iso' not in r)}"
                            ", ...), or remove the baseline stage and the endpoint's monitoring") from None


def baseline_environment(header: bool, dataset_path: str, output_path: str) -> dict[str, str]:
    """What the analyzer reads to compute a baseline: the environment the SDK's
    DefaultModelMonitor.suggest_baseline gives its processing job (dataset_format,
    dataset_source, output_path, publish_cloudwatch_metrics=Disabled), built by the SDK itself."""
    from sagemaker.model_monitor import DatasetFormat
    from sagemaker.model_monitor.model_monitoring import ModelMonitor

    return ModelMonitor._generate_env_map(env=None, output_path=output_path, enable_cloudwatch_metrics=False,
                                          dataset_format=DatasetFormat.csv(header=header),
                                          dataset_source_container_path=dataset_path)
