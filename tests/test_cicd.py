"""The shipped CI/CD recipe (cicd/deploy.sh, run by cicd/buildspec.yml) against moto in server
mode: build and validate, deploy, describe; and the CloudFormation mode's template."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml
from conftest import ROOT, run_cli

SCRIPT = ROOT / "cicd" / "deploy.sh"


def _recipe(env: dict, tmp_path: Path) -> subprocess.CompletedProcess:
    full = {**os.environ, "MLPIPE_SKIP_INSTALL": "true", "MLPIPE_SKIP_TESTS": "true",
            "MLPIPE_BUILD_DIR": str(tmp_path / "build"), **env}
    return subprocess.run(["bash", str(SCRIPT)], cwd=ROOT, env=full, capture_output=True, text=True, timeout=600)


def test_buildspec_runs_the_recipe():
    spec = yaml.safe_load((ROOT / "cicd" / "buildspec.yml").read_text())
    assert spec["version"] == 0.2
    assert spec["phases"]["install"]["runtime-versions"]["python"] == 3.11
    assert "cicd/deploy.sh" in spec["phases"]["build"]["commands"][0]


def test_recipe_builds_validates_and_deploys_against_moto(moto_server, tmp_path):
    proc = _recipe({"AWS_ENDPOINT_URL": moto_server, "MLPIPE_CONFIG": "config/examples/abalone.yaml",
                    "MLPIPE_TARGET": "stepfunctions"}, tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "none with a wildcard" in proc.stdout
    assert (tmp_path / "build/stepfunctions/state_machine.asl.json").is_file()
    assert "state machine" in proc.stdout and "arn:aws:states" in proc.stdout  # describe --target
    status = run_cli("--endpoint-url", moto_server, "schedule", "show", "--config", "config/examples/abalone.yaml",
                     "--output", "json")
    assert status.returncode == 0, status.stderr
    again = _recipe({"AWS_ENDPOINT_URL": moto_server, "MLPIPE_CONFIG": "config/examples/abalone.yaml"}, tmp_path)
    assert again.returncode == 0


def test_recipe_cloudformation_mode_uploads_assets_and_writes_a_valid_template(moto_server, tmp_path):
    template = tmp_path / "template.json"
    proc = _recipe({"AWS_ENDPOINT_URL": moto_server, "MLPIPE_MODE": "cloudformation",
                    "MLPIPE_TEMPLATE": str(template), "MLPIPE_CONFIG": "config/examples/abalone.yaml"}, tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    doc = json.loads(template.read_text())
    key = doc["Parameters"]["LambdaCodeKey"]["Default"]
    import boto3

    s3 = boto3.client("s3", endpoint_url=moto_server, region_name="us-east-1")
    assert s3.head_object(Bucket="mlpipe-abalone-123456789012", Key=key)["ContentLength"] > 0
    lint = subprocess.run([str(Path(sys.executable).with_name("cfn-lint")), str(template)], capture_output=True, text=True)
    assert lint.returncode == 0, lint.stdout
