"""The S3 trigger's starter function for the SageMaker target (moto, in-process)."""

from __future__ import annotations

import json

import boto3
import pytest
from moto import mock_aws

from lambda_handlers.errors import ConfigurationError, InvalidEventError
from lambda_handlers.start_pipeline import handler

EVENT = {"source": "aws.s3", "detail-type": "Object Created",
         "detail": {"bucket": {"name": "data-bucket"},
                    "object": {"key": "abalone/incoming/2026-11-23.csv", "sequencer": "0062E99A88DC407460",
                               "etag": "abc"}}}


@pytest.fixture
def sagemaker(monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("PIPELINE_NAME", "mlpipe-abalone")
    with mock_aws():
        client = boto3.client("sagemaker", region_name="us-east-1")
        definition = {"Version": "2020-12-01", "Parameters": [{"Name": "InputData", "Type": "String",
                                                               "DefaultValue": "s3://x/y"}], "Steps": []}
        client.create_pipeline(PipelineName="mlpipe-abalone", PipelineDefinition=json.dumps(definition),
                               RoleArn="arn:aws:iam::123456789012:role/mlpipe-abalone-sagemaker")
        yield client


def test_new_object_starts_the_pipeline_with_it_as_input(sagemaker):
    result = handler(EVENT, None, sagemaker_client=sagemaker)
    assert result["input"] == "s3://data-bucket/abalone/incoming/2026-11-23.csv"
    executions = sagemaker.list_pipeline_executions(PipelineName="mlpipe-abalone")["PipelineExecutionSummaries"]
    assert [e["PipelineExecutionArn"] for e in executions] == [result["pipeline_execution_arn"]]
    params = sagemaker.list_pipeline_parameters_for_execution(
        PipelineExecutionArn=result["pipeline_execution_arn"])["PipelineParameters"]
    assert params == [{"Name": "InputData", "Value": "s3://data-bucket/abalone/incoming/2026-11-23.csv"}]


def test_the_pipeline_comes_from_the_environment_not_the_event(sagemaker, monkeypatch):
    monkeypatch.delenv("PIPELINE_NAME")
    with pytest.raises(ConfigurationError):
        handler({**EVENT, "PipelineName": "other"}, None, sagemaker_client=sagemaker)


def test_other_events_are_refused(sagemaker):
    with pytest.raises(InvalidEventError):
        handler({"detail": {"bucket": {}}}, None, sagemaker_client=sagemaker)


def test_a_redelivered_event_uses_the_same_request_token():
    from botocore.stub import Stubber

    client = boto3.client("sagemaker", region_name="us-east-1", aws_access_key_id="a", aws_secret_access_key="b")
    tokens = []
    with Stubber(client) as stub:
        for _ in range(2):
            stub.add_response("start_pipeline_execution", {"PipelineExecutionArn": "arn:aws:sagemaker:us-east-1:1:x"})
        import os

        os.environ["PIPELINE_NAME"] = "mlpipe-abalone"
        try:
            real = client.start_pipeline_execution

            def spy(**kwargs):
                tokens.append(kwargs["ClientRequestToken"])
                return real(**kwargs)

            client.start_pipeline_execution = spy
            handler(EVENT, None, sagemaker_client=client)
            handler(EVENT, None, sagemaker_client=client)
        finally:
            os.environ.pop("PIPELINE_NAME", None)
    assert len(tokens) == 2 and tokens[0] == tokens[1]
