"""SSM Parameter Store: what the Lambda stage records (the local runner's embedded emulator)."""

from __future__ import annotations


def emulator_client(endpoint_url: str, region: str):
    """A client for the embedded emulator: fixed dummy credentials, never a real account."""
    import boto3

    return boto3.client("ssm", endpoint_url=endpoint_url, region_name=region,
                        aws_access_key_id="mlpipe-local", aws_secret_access_key="mlpipe-local")


def all_parameters(ssm) -> dict[str, str]:
    out = {}
    for page in ssm.get_paginator("describe_parameters").paginate():
        for meta in page["Parameters"]:
            out[meta["Name"]] = ssm.get_parameter(Name=meta["Name"])["Parameter"]["Value"]
    return out


def put(ssm, name: str, value: str) -> None:
    ssm.put_parameter(Name=name, Value=value, Type="String", Overwrite=True)
