"""The one place the ``sagemaker`` SDK is set up for rendering; both renderers import it.

The stepfunctions SDK takes sagemaker estimators, processors and models, so both renderers
build those, and both need the SDK quiet, offline and independent of the caller's AWS setup:
- the SDK's narration (what it drops from definitions, PipelineSession behaviour) is silenced;
- ``isolated_env`` hides AWS_PROFILE and pins the region while an SDK runs (``import sagemaker``
  and the stepfunctions SDK build boto3 sessions from the environment);
- ``offline_session`` has dummy credentials, an explicit SDK-config dict, a pre-resolved
  default bucket, and refuses every botocore call, so no hidden STS/S3 call can slip in;
- image URIs come from the SDK's bundled tables (offline).
"""

from __future__ import annotations

import contextlib
import logging
import os
import warnings
from typing import Any

os.environ.setdefault("SAGEMAKER_SUPPRESS_V2_WARNING", "1")
logging.getLogger("sagemaker").setLevel(logging.ERROR)
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


with isolated_env():
    import sagemaker  # noqa: E402,F401

import boto3  # noqa: E402
from sagemaker import image_uris  # noqa: E402
from sagemaker.workflow.pipeline_context import PipelineSession  # noqa: E402

from steps.spec import Image, PipelineSpec  # noqa: E402

# A non-empty SDK-defaults dict: an empty one makes the Session read config files from disk or
# S3, and TelemetryOptOut stops the estimator's telemetry call.
_OFFLINE_SDK_CONFIG = {"SchemaVersion": "1.0", "SageMaker": {"PythonSDK": {"Modules": {"TelemetryOptOut": True}}}}


class OfflineCallError(RuntimeError):
    """The SDK tried to call AWS while rendering; rendering must stay offline."""


def offline_session(spec: PipelineSpec) -> PipelineSession:
    """A session whose credentials are dummies that never leave: no profile is read, and any
    botocore call raises ``OfflineCallError``."""
    import botocore.session

    isolated = botocore.session.Session(session_vars={"profile": (None, None, None, None)})
    boto_session = boto3.Session(botocore_session=isolated, region_name=spec.region,
                                 aws_access_key_id="offline", aws_secret_access_key="offline")

    def refuse(event_name: str, **_: Any) -> None:
        raise OfflineCallError(f"the sagemaker SDK attempted an AWS call while rendering: {event_name}")

    boto_session.events.register("before-call.*.*", refuse)
    session = PipelineSession(boto_session=boto_session, default_bucket=spec.bucket,
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
