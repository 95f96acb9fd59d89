"""`mlpipe describe`: parameters with types and defaults, stages with kind, instances, inputs,
outputs and dependencies. The JSON output is pinned by golden files."""

from __future__ import annotations

import json

import pytest
from conftest import EXAMPLES, GOLDEN, check_golden, run_cli

from steps.pipeline import load_spec


@pytest.mark.parametrize("name", ["abalone", "bsm_pytorch"])
def test_describe_json_is_pinned(name):
    proc = run_cli("describe", "--config", str(EXAMPLES / f"{name}.yaml"), "--output", "json")
    assert proc.returncode == 0, proc.stderr
    check_golden(GOLDEN / name / "describe.json", proc.stdout)


@pytest.mark.parametrize("name", ["abalone", "bsm_pytorch"])
def test_describe_lists_every_parameter_and_stage_with_dependencies(name):
    doc = json.loads(run_cli("describe", "--config", str(EXAMPLES / f"{name}.yaml"), "--output", "json").stdout)
    spec = load_spec(EXAMPLES / f"{name}.yaml")
    assert [(p["name"], p["default"]) for p in doc["parameters"]] == [(p.name, p.default) for p in spec.parameters]
    assert [s["name"] for s in doc["stages"]] == [s.name for s in spec.stages]
    for entry, stage in zip(doc["stages"], spec.stages):
        assert entry["depends_on"] == list(stage.upstream)
        assert entry["kind"] == stage.kind
    train = next(s for s in doc["stages"] if s["name"] == "train")
    assert train["instance_count"] in ("$TrainingInstanceCount", 1) and train["instance_type"].startswith("ml.")


def test_describe_table_is_readable():
    proc = run_cli("describe", "--config", str(EXAMPLES / "abalone.yaml"))
    assert proc.returncode == 0
    assert "ProcessingInstanceCount" in proc.stdout and "after: evaluate-gate" in proc.stdout
    assert "in  train <- preprocess.train" in proc.stdout
