"""`mlpipe lineage EXECUTION --target ...`: lineage read back from AWS (moto server)."""

from __future__ import annotations

import json

from conftest import EXAMPLES, run_cli
from moto_server import reset
from test_deploy_cycle import CONFIG, client, deploy

from steps.pipeline import load_spec
from workflows.ops.lineage import sfn_record


def test_record_from_a_finished_execution():
    from workflows.render import STATE_MACHINE_FILE, render

    spec = load_spec(EXAMPLES / "abalone.yaml")
    definition = render(spec, "stepfunctions")[STATE_MACHINE_FILE].decode()
    output = {"stages": {
        "train": {"job_name": "abalone-train-x-0", "model": "s3://b/abalone/runs/e1/train/model.tar.gz"},
        "evaluate_gate": {"metrics": {"regression_metrics": {"mse": {"value": 4.8}, "rmse": {"value": 2.19}}}},
        "create_model": {"model_name": "abalone-create-model-x"},
        "register": {"model_package_arn": "arn:aws:sagemaker:us-east-1:123456789012:model-package/mlpipe-abalone/3"},
    }}
    record = sfn_record(definition, {"name": "e1", "status": "SUCCEEDED", "input": '{"TrainingInstanceCount": 2}',
                                     "output": json.dumps(output)})
    assert record["config_hash"] == spec.fingerprint
    assert set(record["code"]) == {"preprocess.py", "evaluate.py"}
    assert record["parameters"]["TrainingInstanceCount"] == 2 and record["parameters"]["ProcessingInstanceCount"] == 1
    assert record["metrics"] == {"mse": 4.8, "rmse": 2.19}
    assert record["model"] == {"name": "abalone-create-model-x", "artifact": "s3://b/abalone/runs/e1/train/model.tar.gz"}
    assert record["registry"]["model_package_arn"].endswith("/3")
    assert record["jobs"] == {"train": "abalone-train-x-0"}


def test_lineage_of_an_execution_on_moto(moto_server, capsys):
    reset(moto_server)
    code, rows = deploy(moto_server, "stepfunctions", capsys=capsys)
    assert code == 0, rows
    s3 = client(moto_server, "s3")
    s3.put_object(Bucket="mlpipe-abalone-123456789012", Key="abalone/data/abalone.csv", Body=b"M,0.4,0.3,0.1,0.5,0.2,0.1,0.1,9\n")
    etag = s3.head_object(Bucket="mlpipe-abalone-123456789012", Key="abalone/data/abalone.csv")["ETag"].strip('"')
    started = run_cli("--endpoint-url", moto_server, "start", "--config", CONFIG, "--name", "lineage-run",
                      "--param", "TrainingInstanceCount=2")
    assert started.returncode == 0, started.stderr
    proc = run_cli("--endpoint-url", moto_server, "lineage", "lineage-run", "--target", "stepfunctions",
                   "--config", CONFIG, "--output", "json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["run_id"] == "lineage-run" and doc["status"] == "RUNNING"
    assert doc["config_hash"] == load_spec(CONFIG).fingerprint
    assert set(doc["code"]) == {"preprocess.py", "evaluate.py"}
    assert doc["parameters"]["TrainingInstanceCount"] == 2
    assert doc["data"]["InputData"] == {"source": "s3://mlpipe-abalone-123456789012/abalone/data/abalone.csv", "etag": etag}
    assert doc["data"]["BatchData"]["etag"] is None  # not uploaded: recorded as missing, not an error
    text = run_cli("--endpoint-url", moto_server, "lineage", "lineage-run", "--target", "stepfunctions", "--config", CONFIG)
    assert text.returncode == 0 and "config hash" in text.stdout and etag in text.stdout
    missing = run_cli("--endpoint-url", moto_server, "lineage", "nope", "--target", "stepfunctions", "--config", CONFIG)
    assert missing.returncode == 2 and "nope" in missing.stderr
