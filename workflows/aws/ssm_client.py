"""SSM Parameter Store as the local runner's embedded emulator serves it: the emulator's own
start-up and the Lambda stage's read-back of what the handler left there.

These calls go to the emulator only (127.0.0.1, fixed dummy credentials, never a real account)
and speak SSM's JSON protocol directly: building an SDK client (reading the SDK's service model
and endpoint rules) cost more than the calls themselves, in the emulator's start-up and in every
Lambda stage. moto reads the account from the access key and the region from the credential
scope, and does not check the signature; the handler's own client reaches the same ones.
"""

from __future__ import annotations

import json

ACCESS_KEY = "mlpipe-local"


def emulator_call(endpoint_url: str, region: str, action: str, body: dict) -> dict:
    """One SSM API call (``action``, e.g. "PutParameter") to the emulator at ``endpoint_url``."""
    import urllib.request  # here: the run's owner imports this module, and never calls it

    scope = f"{ACCESS_KEY}/20200101/{region}/ssm/aws4_request"
    request = urllib.request.Request(f"{endpoint_url}/", data=json.dumps(body).encode(), method="POST", headers={
        "X-Amz-Target": f"AmazonSSM.{action}", "Content-Type": "application/x-amz-json-1.1",
        "Authorization": f"AWS4-HMAC-SHA256 Credential={scope}, SignedHeaders=host;x-amz-target, Signature=0"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read() or b"{}")


def put(endpoint_url: str, region: str, name: str, value: str) -> None:
    emulator_call(endpoint_url, region, "PutParameter", {"Name": name, "Value": value, "Type": "String",
                                                         "Overwrite": True})


def all_parameters(endpoint_url: str, region: str) -> dict[str, str]:
    """Every parameter's name and value (DescribeParameters' pages, then GetParameters by tens)."""
    names: list[str] = []
    body: dict = {}
    while True:
        page = emulator_call(endpoint_url, region, "DescribeParameters", body)
        names += [meta["Name"] for meta in page.get("Parameters", [])]
        if not page.get("NextToken"):
            break
        body = {"NextToken": page["NextToken"]}
    values: dict[str, str] = {}
    for start in range(0, len(names), 10):
        found = emulator_call(endpoint_url, region, "GetParameters", {"Names": names[start:start + 10]})
        values.update({p["Name"]: p["Value"] for p in found.get("Parameters", [])})
    return {name: values[name] for name in names if name in values}
