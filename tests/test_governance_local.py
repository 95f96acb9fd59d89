"""Governance stages locally: manual approval (approve and reject), the registry, serving under
the SageMaker inference contract, lineage, experiment tracking, and the PyTorch pipeline."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from conftest import EXAMPLES, ROOT, free_port, run_cli
from test_local_run import mlpipe_run, stage_status


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("runs-governance")


def _registry(runs: Path) -> list[dict]:
    proc = run_cli("models", "list", "--runs-dir", str(runs), "--output", "json")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_manual_approval_pauses_then_approve_deploys(runs):
    proc, doc = mlpipe_run(runs, "--approval", "manual")
    assert proc.returncode == 3, proc.stderr
    assert doc["status"] == "Waiting"
    status = stage_status(doc)
    assert status["approve"] == "Waiting" and status["deploy"] == "Skipped"
    assert status["record-model"] == "Succeeded", "stages that need no approval are not held back"
    run_id = doc["run_id"]
    proc = run_cli("approve", run_id, "--runs-dir", str(runs), "--output", "json")
    assert proc.returncode == 0, proc.stderr
    after = json.loads(proc.stdout)
    assert after["run_id"] == run_id and after["status"] == "Succeeded"
    assert stage_status(after)["deploy"] == "Succeeded"
    version = [v for v in _registry(runs) if v["run_id"] == run_id]
    assert version[0]["approval_status"] == "Approved"
    deploy = json.loads((Path(doc["run_dir"]) / "run.json").read_text())["stages"]["deploy"]["outputs"]
    assert deploy["matches_in_process_model"]["value"] is True
    capture = Path(doc["run_dir"]) / "stages/deploy/outputs/data-capture/capture.jsonl"
    assert capture.is_file() and "endpointInput" in capture.read_text().splitlines()[0]


def test_manual_approval_reject_ends_cleanly_without_deploying(runs):
    proc, doc = mlpipe_run(runs, "--approval", "manual")
    assert proc.returncode == 3
    proc = run_cli("reject", doc["run_id"], "--reason", "drift in the new data", "--runs-dir", str(runs),
                   "--output", "json")
    assert proc.returncode == 0, proc.stderr
    after = json.loads(proc.stdout)
    assert after["status"] == "Rejected"
    status = stage_status(after)
    assert status["approve"] == "Rejected" and status["deploy"] == "Skipped"
    version = [v for v in _registry(runs) if v["run_id"] == doc["run_id"]][0]
    assert version["approval_status"] == "Rejected" and version["status_reason"] == "drift in the new data"
    assert not (Path(doc["run_dir"]) / "stages/deploy").exists()
    proc = run_cli("approve", doc["run_id"], "--runs-dir", str(runs))
    assert proc.returncode == 2 and "not waiting" in proc.stderr


def test_models_approve_and_reject_commands(runs):
    if not _registry(runs):  # on its own (-k, or another xdist worker): register one first
        assert mlpipe_run(runs)[0].returncode == 0
    versions = _registry(runs)
    assert versions
    group, number = versions[0]["group"], str(versions[0]["version"])
    proc = run_cli("models", "reject", number, "--group", group, "--reason", "superseded", "--runs-dir", str(runs))
    assert proc.returncode == 0 and "Rejected" in proc.stdout
    assert _registry(runs)[0]["approval_status"] == "Rejected"
    proc = run_cli("models", "approve", f"{group}/{number}", "--runs-dir", str(runs))
    assert proc.returncode == 0
    assert _registry(runs)[0]["approval_status"] == "Approved"
    proc = run_cli("models", "approve", "999", "--group", group, "--runs-dir", str(runs))
    assert proc.returncode == 2 and "no version 999" in proc.stderr


def test_serve_answers_ping_and_invocations_like_the_in_process_model(runs):
    from steps.code import evaluate

    proc, doc = mlpipe_run(runs)
    assert proc.returncode == 0, proc.stderr
    run_dir = Path(doc["run_dir"])
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "workflows.cli", "serve", doc["run_id"], "--port", str(port),
                               "--runs-dir", str(runs)], cwd=ROOT, stderr=subprocess.PIPE, text=True)
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                with urllib.request.urlopen(f"{url}/ping", timeout=1) as r:
                    assert r.status == 200
                    break
            except OSError:
                time.sleep(0.1)
        else:
            pytest.fail(f"serve did not come up: {server.stderr.read() if server.poll() is not None else ''}")
        rows = [line.split(",", 1)[1] for line in
                (run_dir / "stages/preprocess/opt/ml/processing/test/test.csv").read_text().splitlines()]
        request = urllib.request.Request(f"{url}/invocations", data="\n".join(rows).encode(),
                                         headers={"Content-Type": "text/csv"})
        with urllib.request.urlopen(request, timeout=10) as r:
            assert r.headers["Content-Type"] == "text/csv"
            served = np.array([float(x) for x in r.read().decode().split()])
        model = evaluate.load_model(run_dir / "stages/train/outputs/model/model.tar.gz")
        expected = model.predict(np.array([[float(v) for v in row.split(",")] for row in rows]))
        assert served.shape == expected.shape
        np.testing.assert_allclose(served, expected, rtol=1e-6)
        bad = urllib.request.Request(f"{url}/invocations", data=b"{}", headers={"Content-Type": "application/json"})
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(bad, timeout=10)
        assert err.value.code == 415
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_lineage_tells_runs_on_different_data_apart(runs, tmp_path):
    from sklearn.datasets import load_diabetes

    _, first = mlpipe_run(runs)
    frame = load_diabetes(as_frame=True, scaled=False).frame.rename(columns={"target": "progression"})
    path = tmp_path / "other.csv"
    frame.sample(frac=0.9, random_state=1).to_csv(path, index=False)
    proc, second = mlpipe_run(runs, "--input", str(path), "--target", "progression")
    assert proc.returncode == 0, proc.stderr
    docs = []
    for doc in (first, second):
        out = run_cli("lineage", doc["run_id"], "--runs-dir", str(runs), "--output", "json")
        assert out.returncode == 0, out.stderr
        docs.append(json.loads(out.stdout))
    a, b = docs
    assert a["data"]["InputData"]["sha256"] != b["data"]["InputData"]["sha256"]
    assert a["code"] == b["code"] and set(a["code"]) >= {"preprocess.py", "evaluate.py"}
    assert b["model"]["sha256"] and b["registry"]["version"] >= 1
    assert b["parameters"]["InputData"] == b["data"]["InputData"]["source"] == str(path.resolve())
    text = run_cli("lineage", second["run_id"], "--runs-dir", str(runs))
    assert text.returncode == 0 and "config hash" in text.stdout and str(path) in text.stdout


def test_mlflow_tracking_logs_the_run(runs):
    pytest.importorskip("mlflow")
    proc, doc = mlpipe_run(runs)
    assert proc.returncode == 0, proc.stderr
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{(runs / 'mlflow.db').resolve()}")
    found = mlflow.search_runs(experiment_names=["quickstart"], filter_string=f"tags.`mlpipe.run_id` = '{doc['run_id']}'")
    assert len(found) == 1
    assert found.iloc[0]["metrics.mse"] == pytest.approx(doc["metrics"]["mse"])


def test_pytorch_pipeline_runs_locally(runs, tmp_path):
    pytest.importorskip("torch")
    import tarfile

    from sklearn.datasets import load_diabetes

    frame = load_diabetes(as_frame=True, scaled=False).frame
    path = tmp_path / "diabetes.csv"
    frame.to_csv(path, index=False)
    proc, doc = mlpipe_run(runs, "--config", str(EXAMPLES / "bsm_pytorch.yaml"), "--input", str(path),
                           "--target", "target")
    assert proc.returncode == 0, proc.stderr
    run_dir = Path(doc["run_dir"])
    with tarfile.open(run_dir / "stages/train/outputs/model/model.tar.gz") as tar:
        assert {"model.pt", "code/inference.py"} <= set(tar.getnames())
    log = (run_dir / "stages/train/log.txt").read_text()
    assert "epoch=4" in log  # max_epochs 5, counted from 0


def test_s3_input_through_endpoint_url_records_uri_and_etag(runs, moto_server, tmp_path):
    import boto3
    from sklearn.datasets import load_diabetes

    frame = load_diabetes(as_frame=True, scaled=False).frame
    s3 = boto3.client("s3", endpoint_url=moto_server, region_name="us-east-1")
    s3.create_bucket(Bucket="mlpipe-input-test")
    s3.put_object(Bucket="mlpipe-input-test", Key="data/diabetes.csv", Body=frame.to_csv(index=False).encode())
    etag = s3.head_object(Bucket="mlpipe-input-test", Key="data/diabetes.csv")["ETag"].strip('"')
    proc = run_cli("--endpoint-url", moto_server, "run", "--runs-dir", str(runs), "--output", "json",
                   "--input", "s3://mlpipe-input-test/data/diabetes.csv", "--target", "target")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    lineage = json.loads(run_cli("lineage", doc["run_id"], "--runs-dir", str(runs), "--output", "json").stdout)
    assert lineage["data"]["InputData"]["source"] == "s3://mlpipe-input-test/data/diabetes.csv"
    assert lineage["data"]["InputData"]["etag"] == etag
    proc = run_cli("--endpoint-url", moto_server, "run", "--runs-dir", str(runs), "--output", "json",
                   "--input", "s3://mlpipe-input-test/nope.csv", "--target", "target")
    assert proc.returncode == 2 and "nope.csv" in proc.stderr and "Traceback" not in proc.stderr
    _assert_failed_before_the_first_stage(runs, json.loads(proc.stdout)["run_id"],
                                          "input data s3://mlpipe-input-test/nope.csv does not exist")

    # Where S3 is read: the config's aws.region (the quick start's us-east-1) before AWS_REGION ...
    proc = run_cli("--endpoint-url", moto_server, "run", "--runs-dir", str(runs), "--output", "json",
                   "--input", "s3://mlpipe-input-test/data/diabetes.csv", "--target", "target",
                   env={"AWS_REGION": "us-east-7", "AWS_DEFAULT_REGION": "us-east-7"})
    assert proc.returncode == 0, proc.stderr
    # ... and AWS_REGION when the config names none (an unknown one: the error shows it was used).
    import yaml

    config = yaml.safe_load((EXAMPLES / "quickstart.yaml").read_text())
    del config["aws"]["region"]
    no_region = tmp_path / "no-region.yaml"
    no_region.write_text(yaml.safe_dump(config))
    proc = run_cli("--endpoint-url", moto_server, "run", "--runs-dir", str(runs), "--output", "json",
                   "--config", str(no_region), "--input", "s3://mlpipe-input-test/data/diabetes.csv",
                   "--target", "target", env={"AWS_REGION": "us-east-7", "AWS_DEFAULT_REGION": "us-east-7"})
    assert proc.returncode == 2 and "'us-east-7' is not an AWS region" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
    _assert_failed_before_the_first_stage(runs, json.loads(proc.stdout)["run_id"], "'us-east-7' is not an AWS region")


def _assert_failed_before_the_first_stage(runs: Path, run_id: str, reason: str) -> None:
    """The run's record says Failed with the reason (never "Running" forever), and so does `runs`."""
    stored = json.loads((runs / run_id / "run.json").read_text())
    assert stored["status"] == "Failed" and reason in stored["error"], stored.get("error")
    assert stored["stages"]["preprocess"]["status"] == "Failed" and reason in stored["stages"]["preprocess"]["error"]
    assert {stored["stages"][n]["status"] for n in stored["order"][1:]} <= {"Pending", "Skipped"}
    listed = json.loads(run_cli("runs", "--runs-dir", str(runs), "--output", "json").stdout)
    assert [r["status"] for r in listed if r["run_id"] == run_id] == ["Failed"]
