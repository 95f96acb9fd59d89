"""lambda_handlers.deploy_endpoint (the SageMaker target's endpoint stage) and the Lambda zip."""

from __future__ import annotations

import hashlib
import io
import sys
import zipfile
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lambda_handlers.deploy_endpoint import config_name, handler  # noqa: E402
from lambda_handlers.errors import EndpointDeployError, InvalidEventError  # noqa: E402

ROLE = "arn:aws:iam::123456789012:role/mlpipe-abalone-sagemaker"
IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1"


@pytest.fixture
def sm(monkeypatch):
    for k, v in {"AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x", "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(k, v)
    with mock_aws():
        client = boto3.client("sagemaker", region_name="us-east-1")
        for name in ("model-a", "model-b"):
            client.create_model(ModelName=name, ExecutionRoleArn=ROLE,
                                PrimaryContainer={"Image": IMAGE, "ModelDataUrl": "s3://b/model.tar.gz"})
        yield client


def event(model: str = "model-a", **kw):
    return {"model_name": model, "endpoint_name": "mlpipe-abalone", "instance_type": "ml.m5.large",
            "instance_count": 1, "data_capture_percentage": 20,
            "data_capture_uri": "s3://b/abalone/data-capture/mlpipe-abalone", **kw}


def test_creates_then_unchanged_then_updates(sm):
    assert handler(event(), None, sagemaker_client=sm)["action"] == "created"
    ep = sm.describe_endpoint(EndpointName="mlpipe-abalone")
    assert ep["EndpointConfigName"] == config_name("model-a")
    cfg = sm.describe_endpoint_config(EndpointConfigName=config_name("model-a"))
    assert cfg["DataCaptureConfig"]["InitialSamplingPercentage"] == 20
    assert cfg["DataCaptureConfig"]["DestinationS3Uri"] == "s3://b/abalone/data-capture/mlpipe-abalone"
    assert cfg["ProductionVariants"][0]["ModelName"] == "model-a"

    again = handler(event(), None, sagemaker_client=sm)
    assert again["action"] == "unchanged"
    assert len(sm.list_endpoint_configs()["EndpointConfigs"]) == 1

    class Recording:  # moto 5.2.5 does not implement UpdateEndpoint
        updates: list = []

        def __getattr__(self, name):
            return getattr(sm, name)

        def update_endpoint(self, **kw):
            self.updates.append(kw)
            return {"EndpointArn": "arn"}

    rec = Recording()
    result = handler(event("model-b"), None, sagemaker_client=rec)
    assert result == {"endpoint_name": "mlpipe-abalone", "endpoint_config_name": config_name("model-b"),
                      "action": "updated"}
    assert rec.updates == [{"EndpointName": "mlpipe-abalone", "EndpointConfigName": config_name("model-b")}]
    assert sm.describe_endpoint_config(EndpointConfigName=config_name("model-b"))["ProductionVariants"][0][
        "ModelName"] == "model-b"
    assert len(sm.list_endpoints()["Endpoints"]) == 1


def test_no_data_capture_when_percentage_is_zero(sm):
    handler(event(data_capture_percentage=0, data_capture_uri=None), None, sagemaker_client=sm)
    cfg = sm.describe_endpoint_config(EndpointConfigName=config_name("model-a"))
    assert not cfg.get("DataCaptureConfig")  # moto answers {} for "none"


@pytest.mark.parametrize("bad", [
    {}, "not-an-object", {"model_name": "m"}, event(instance_count=0), event(model="bad name!"),
    event(data_capture_uri=None),
])
def test_invalid_events(sm, bad):
    with pytest.raises(InvalidEventError):
        handler(bad, None, sagemaker_client=sm)


def test_approved_package_event_creates_the_model_first(sm, monkeypatch):
    monkeypatch.setenv("ENDPOINT_NAME", "mlpipe-abalone")
    monkeypatch.setenv("SAGEMAKER_ROLE_ARN", ROLE)
    monkeypatch.setenv("DATA_CAPTURE_PERCENTAGE", "0")
    sm.create_model_package_group(ModelPackageGroupName="mlpipe-abalone")
    arn = sm.create_model_package(
        ModelPackageGroupName="mlpipe-abalone", ModelApprovalStatus="Approved",
        InferenceSpecification={"Containers": [{"Image": IMAGE, "ModelDataUrl": "s3://b/m.tar.gz"}],
                                "SupportedContentTypes": ["text/csv"], "SupportedResponseMIMETypes": ["text/csv"]},
    )["ModelPackageArn"]
    ev = {"source": "aws.sagemaker", "detail-type": "SageMaker Model Package State Change",
          "detail": {"ModelPackageArn": arn, "ModelApprovalStatus": "Approved",
                     "ModelPackageGroupName": "mlpipe-abalone"}}
    result = handler(ev, None, sagemaker_client=sm)
    assert result["action"] == "created"
    model = sm.describe_endpoint_config(EndpointConfigName=result["endpoint_config_name"])["ProductionVariants"][0]["ModelName"]
    assert model == "mlpipe-abalone-v1"
    assert sm.describe_model(ModelName=model)["ExecutionRoleArn"] == ROLE
    assert handler(ev, None, sagemaker_client=sm)["action"] == "unchanged"


def test_not_approved_event_is_refused(sm):
    ev = {"detail-type": "SageMaker Model Package State Change",
          "detail": {"ModelPackageArn": "arn:aws:sagemaker:us-east-1:123456789012:model-package/g/1",
                     "ModelApprovalStatus": "Rejected"}}
    with pytest.raises(InvalidEventError):
        handler(ev, None, sagemaker_client=sm)


def test_sagemaker_failure_is_named(sm):
    class Broken:
        def __getattr__(self, name):
            def fail(**kw):
                raise RuntimeError("throttled")
            return fail

    with pytest.raises(EndpointDeployError):
        handler(event(), None, sagemaker_client=Broken())


def test_lambda_zip_is_deterministic_and_complete():
    from workflows.infra.package import build_zip

    first = build_zip()
    build_zip.cache_clear()
    second = build_zip()
    assert hashlib.sha256(first).digest() == hashlib.sha256(second).digest()
    names = zipfile.ZipFile(io.BytesIO(first)).namelist()
    assert "lambda_handlers/deploy_endpoint.py" in names and "lambda_handlers/errors.py" in names
    for dep in ("pydantic/__init__.py", "pydantic_core/__init__.py", "annotated_types/__init__.py",
                "typing_inspection/__init__.py", "typing_extensions.py"):
        assert dep in names, dep
    assert not any("__pycache__" in n or n.endswith(".pyc") for n in names)
    infos = zipfile.ZipFile(io.BytesIO(first)).infolist()
    assert {i.date_time for i in infos} == {(1980, 1, 1, 0, 0, 0)}
