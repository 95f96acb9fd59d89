"""lambda_handlers.register_model_name against in-process moto SSM (no network)."""

from __future__ import annotations

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from lambda_handlers import register_model_name
from lambda_handlers.errors import ConfigurationError, InvalidEventError, ParameterWriteError

PARAMETER = "/mlpipe/abalone/model-name"


@pytest.fixture
def ssm(monkeypatch):
    for var in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_SSM", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("PARAMETER_NAME", PARAMETER)
    register_model_name._default_client.cache_clear()
    with mock_aws():
        yield boto3.client("ssm", region_name="us-east-1")
    register_model_name._default_client.cache_clear()


def value(ssm, name=PARAMETER):
    return ssm.get_parameter(Name=name)["Parameter"]["Value"]


def test_writes_the_parameter(ssm):
    result = register_model_name.handler({"model_name": "abalone-create-model-1", "execution_id": "e-1"},
                                         None, ssm_client=ssm)
    assert result == {"parameter_name": PARAMETER, "model_name": "abalone-create-model-1",
                      "changed": True, "version": 1}
    assert value(ssm) == "abalone-create-model-1"
    assert ssm.get_parameter(Name=PARAMETER)["Parameter"]["Type"] == "String"


def test_is_idempotent_and_overwrites_a_new_name(ssm):
    event = {"model_name": "m-1"}
    first = register_model_name.handler(event, None, ssm_client=ssm)
    again = register_model_name.handler(event, None, ssm_client=ssm)
    assert (first["changed"], again["changed"]) == (True, False)
    assert again["version"] == first["version"] == 1
    assert ssm.get_parameter(Name=PARAMETER)["Parameter"]["Version"] == 1
    newer = register_model_name.handler({"model_name": "m-2"}, None, ssm_client=ssm)
    assert (newer["changed"], newer["version"], value(ssm)) == (True, 2, "m-2")


@pytest.mark.parametrize("event, message", [
    ({"model_name": "bad_name"}, "is not a SageMaker model name"),
    ({"model_name": "-leading-hyphen"}, "is not a SageMaker model name"),
    ({"model_name": "x" * 64}, "is not a SageMaker model name"),
    ({"model_name": ""}, "is not a SageMaker model name"),
    ({"model_name": 42}, "model_name"),
    ({"execution_id": "e-1"}, "model_name: Field required"),
    (None, "valid dictionary"),
])
def test_invalid_events_are_refused(ssm, event, message):
    with pytest.raises(InvalidEventError, match=message):
        register_model_name.handler(event, None, ssm_client=ssm)
    assert ssm.describe_parameters()["Parameters"] == []


def test_missing_parameter_name_is_a_configuration_error(ssm, monkeypatch):
    monkeypatch.delenv("PARAMETER_NAME")
    with pytest.raises(ConfigurationError, match="PARAMETER_NAME is not set"):
        register_model_name.handler({"model_name": "m-1"}, None, ssm_client=ssm)


def test_a_parameter_name_in_the_event_is_ignored(ssm):
    event = {"model_name": "m-1", "parameter_name": "/elsewhere", "PARAMETER_NAME": "/elsewhere",
             "model_package_arn": "arn:aws:sagemaker:us-east-1:123456789012:model-package/g/1"}
    result = register_model_name.handler(event, None, ssm_client=ssm)
    assert result["parameter_name"] == PARAMETER
    assert [p["Name"] for p in ssm.describe_parameters()["Parameters"]] == [PARAMETER]


def test_default_client_is_created_lazily(ssm):
    assert register_model_name._default_client.cache_info().currsize == 0  # importing made none
    register_model_name.handler({"model_name": "m-1"}, None)
    assert register_model_name._default_client.cache_info().currsize == 1
    assert value(ssm) == "m-1"


class RecordingClient:
    """Stands in for boto3's SSM client: proves the injected client is the one used."""

    def __init__(self, current=None, fail_put=False):
        self.current, self.fail_put, self.calls = current, fail_put, []

    def get_parameter(self, Name):
        self.calls.append(("get_parameter", Name))
        if self.current is None:
            raise ClientError({"Error": {"Code": "ParameterNotFound", "Message": "nope"}}, "GetParameter")
        return {"Parameter": {"Name": Name, "Value": self.current, "Version": 7}}

    def put_parameter(self, **kwargs):
        self.calls.append(("put_parameter", kwargs))
        if self.fail_put:
            raise ClientError({"Error": {"Code": "AccessDeniedException", "Message": "denied"}}, "PutParameter")
        return {"Version": 8, "Tier": "Standard"}


def test_injected_client_is_used(monkeypatch):
    monkeypatch.setenv("PARAMETER_NAME", PARAMETER)
    monkeypatch.setattr(boto3, "client", lambda *a, **k: pytest.fail("the default client was created"))
    client = RecordingClient(current="old")
    result = register_model_name.handler({"model_name": "new"}, None, ssm_client=client)
    assert result == {"parameter_name": PARAMETER, "model_name": "new", "changed": True, "version": 8}
    assert client.calls == [("get_parameter", PARAMETER),
                            ("put_parameter", {"Name": PARAMETER, "Value": "new", "Type": "String",
                                               "Overwrite": True})]


def test_ssm_refusals_are_parameter_write_errors(monkeypatch):
    monkeypatch.setenv("PARAMETER_NAME", PARAMETER)
    with pytest.raises(ParameterWriteError, match="cannot write SSM parameter .*AccessDenied"):
        register_model_name.handler({"model_name": "m"}, None, ssm_client=RecordingClient(fail_put=True))

    class Unreadable(RecordingClient):
        def get_parameter(self, Name):
            raise ClientError({"Error": {"Code": "AccessDeniedException", "Message": "no"}}, "GetParameter")

    with pytest.raises(ParameterWriteError, match="cannot read SSM parameter"):
        register_model_name.handler({"model_name": "m"}, None, ssm_client=Unreadable())



def test_a_huge_event_value_is_not_echoed_whole():
    from lambda_handlers.errors import InvalidEventError, bounded

    error = InvalidEventError("invalid event: " + "x" * 10_000_000)
    assert len(str(error)) < 4096 and "characters left out" in str(error)
    assert bounded("short") == "short"
