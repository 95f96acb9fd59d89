"""`mlpipe export cloudformation`: a template that passes cfn-lint, in JSON and YAML."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from conftest import run_cli  # noqa: E402

CFN_LINT = Path(sys.executable).with_name("cfn-lint")


@pytest.mark.parametrize("config, suffix", [("abalone", ".json"), ("abalone", ".yaml"), ("quickstart", ".yml"),
                                            ("bsm_pytorch", ".json")])
def test_export_passes_cfn_lint(tmp_path, capsys, config, suffix):
    from workflows.cli.main import main  # in-process: the SDKs are imported once per test process

    out = tmp_path / f"stack{suffix}"
    code = main(["export", "cloudformation", "--config", str(ROOT / f"config/examples/{config}.yaml"),
                 "--out", str(out)])
    assert code == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == str(out)
    lint = subprocess.run([str(CFN_LINT), str(out)], capture_output=True, text=True)
    assert lint.returncode == 0 and not lint.stdout.strip(), lint.stdout + lint.stderr
    doc = json.loads(out.read_text()) if suffix == ".json" else yaml.safe_load(out.read_text())
    types = {r["Type"] for r in doc["Resources"].values()}
    assert {"AWS::StepFunctions::StateMachine", "AWS::IAM::Role", "AWS::SNS::Topic",
            "AWS::Logs::LogGroup", "AWS::SageMaker::ModelPackageGroup", "AWS::Events::Rule"} <= types
    assert ("AWS::Lambda::Function" in types) == (config != "bsm_pytorch")
    if config == "abalone":
        assert {"AWS::Scheduler::Schedule", "AWS::SQS::Queue"} <= types
        definition = doc["Resources"]["StateMachine"]["Properties"]["DefinitionString"]["Fn::Sub"]
        assert ":${AWS::AccountId}:" in definition and ":123456789012:" not in definition
        sm = doc["Resources"]["StateMachine"]["Properties"]
        assert sm["LoggingConfiguration"]["Level"] == "ERROR"
        fn = doc["Resources"]["RecordModelFunction"]["Properties"]
        assert fn["Code"] == {"S3Bucket": {"Ref": "LambdaCodeBucket"}, "S3Key": {"Ref": "LambdaCodeKey"}}
        assert not list(tmp_path.glob(".stack*")), "no temp file left behind"


def test_export_rejects_unknown_suffix(tmp_path):
    proc = run_cli("export", "cloudformation", "--config", str(ROOT / "config/examples/abalone.yaml"),
                   "--out", str(tmp_path / "stack.txt"))
    assert proc.returncode == 2 and "*.json, *.yaml" in proc.stderr
    assert not (tmp_path / "stack.txt").exists()
