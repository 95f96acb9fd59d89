"""Config validation: the examples load, and every kind of bad input gets one clear message,
naming the file and the field, with exit code 2 and no traceback."""

from __future__ import annotations

import pytest
import yaml
from conftest import EXAMPLES, changed_config, run_cli, stage_named

from config import ConfigError, load_config
from config.errors import UserError
from config.loader import apply_data_options
from steps.pipeline import build_spec


@pytest.mark.parametrize("name", ["abalone.yaml", "bsm_pytorch.yaml", "quickstart.yaml"])
def test_examples_load(name):
    spec = build_spec(load_config(EXAMPLES / name))
    assert spec.stages and all(s.name for s in spec.stages)


def test_json_config_loads(tmp_path):
    import json

    doc = yaml.safe_load((EXAMPLES / "abalone.yaml").read_text())
    path = tmp_path / "abalone.json"
    path.write_text(json.dumps(doc))
    assert build_spec(load_config(path)).fingerprint == build_spec(load_config(EXAMPLES / "abalone.yaml")).fingerprint


def test_environment_overrides_aws_settings():
    env = {"MLPIPE_AWS_BUCKET": "other-bucket", "MLPIPE_SAGEMAKER_ROLE_ARN": "arn:aws:iam::111122223333:role/sm",
           "MLPIPE_AWS_REGION": "eu-west-1"}
    config = load_config(EXAMPLES / "abalone.yaml", env=env)
    assert config.aws.bucket == "other-bucket"
    assert config.aws.region == "eu-west-1"
    assert config.aws.roles.sagemaker == "arn:aws:iam::111122223333:role/sm"
    spec = build_spec(config, env)
    assert all(a.uri.startswith("s3://other-bucket/") for a in spec.assets)


# --- a local run's data options (--input, --target, ...) ------------------------------------

def test_no_data_option_keeps_the_config():
    config = load_config(EXAMPLES / "quickstart.yaml", env={})
    assert apply_data_options(config) is config


def test_input_replaces_the_data_and_its_reading_options():
    config = apply_data_options(load_config(EXAMPLES / "quickstart.yaml", env={}), input_data="own.csv",
                                target="y", categorical=["2", "colour"])
    data = config.data
    assert (data.local, data.target, data.header, data.categorical, data.column_names) == (
        None, "y", True, [2, "colour"], None)   # a target by name implies a header
    assert config._source == (EXAMPLES / "quickstart.yaml").resolve()


def test_data_options_without_input_adjust_the_configured_data():
    data = apply_data_options(load_config(EXAMPLES / "quickstart.yaml", env={}), target="3", delimiter=";",
                              problem_type="classification").data
    assert (data.local, data.target, data.header, data.delimiter, data.categorical, data.problem_type) == (
        "sklearn:diabetes", 3, True, ";", ["sex"], "classification")


@pytest.mark.parametrize("options, field, message", [
    ({"input_data": "own.csv"}, None, "--input needs --target NAME_OR_INDEX (the column to predict)"),
    ({"target": "rings", "header": False}, None, "a target given by name needs a header row"),
    ({"delimiter": ";;"}, "data.delimiter", "at most 1 character"),
])
def test_bad_data_options_are_one_clear_message(options, field, message):
    with pytest.raises(UserError) as info:
        apply_data_options(load_config(EXAMPLES / "abalone.yaml", env={}), **options)
    assert (info.value.field, message in info.value.message) == (field, True), info.value.render()
    if field:
        assert info.value.source.endswith("abalone.yaml (with command-line data options)")


def test_data_options_need_a_data_section(tmp_path):
    config = load_config(changed_config(tmp_path, lambda d: d.pop("data")), env={})
    with pytest.raises(UserError) as info:
        apply_data_options(config, target="rings")
    assert (info.value.field, info.value.message) == (
        "data", "this pipeline has no data section, so --input/--target cannot replace it")


BAD = {
    "unknown field": (lambda d: stage_named(d, "train").update(learning_rat=0.1), "stages[1](train).learning_rat",
                      "remove this field"),
    "wrong type": (lambda d: stage_named(d, "evaluate")["gate"].update(threshold="six"),
                   "stages[3](evaluate).gate.threshold", "valid number"),
    "missing required field": (lambda d: d["aws"].pop("bucket"), "aws.bucket", "add this required field"),
    "malformed ARN": (lambda d: d["aws"].update(roles={"sagemaker": "arn:aws:iam::12:role/x"}),
                      "aws.roles.sagemaker", "not an IAM role ARN"),
    "malformed S3 URI": (lambda d: d["trigger"].update(s3_prefix="https://bucket/x"), "trigger.s3_prefix",
                         "not an S3 URI"),
    "unknown instance type": (lambda d: stage_named(d, "train").update(instance_type="ml.m5.huge"),
                              "stages[1](train).instance_type", "not a known SageMaker instance type"),
    "bad schedule expression": (lambda d: d["schedule"].update(expression="every monday"), "schedule.expression",
                                "not a schedule expression"),
    "dangling reference": (lambda d: stage_named(d, "train")["inputs"].update(train="prep.train"),
                           "stages[1](train).inputs.train: 'prep.train' names no stage", "names no stage"),
    "dangling model reference": (lambda d: stage_named(d, "evaluate").update(model="nope.model"),
                                 "stages[3](evaluate).model: 'nope.model' names no stage", "names no stage"),
    "undeclared parameter": (lambda d: stage_named(d, "train").update(instance_count="$Nope"),
                             "stages[1](train).instance_count: '$Nope'", "names no declared parameter"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_config_is_one_clear_message(tmp_path, case):
    change, field, text = BAD[case]
    path = changed_config(tmp_path, change)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    message = err.value.render()
    assert str(path) in message and field in message and text in message, message
    assert "(top level)" not in message and "stages.1" not in message and "stages.3" not in message, message


@pytest.mark.parametrize("case", ["unknown field", "malformed ARN", "bad schedule expression"])
def test_bad_config_exits_2_without_traceback(tmp_path, case):
    change, field, text = BAD[case]
    path = changed_config(tmp_path, change)
    proc = run_cli("build", "--config", str(path), "--out", str(tmp_path / "out"))
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.startswith("error: ") and field in proc.stderr and "fix:" in proc.stderr
    assert not (tmp_path / "out").exists(), "a failed build must not leave files behind"


NAMED_AS_GIVEN = {  # found while validating the document / while building the pipeline from it
    "dangling reference": (lambda d: stage_named(d, "evaluate").update(model="nope.model"),
                           "stages[3](evaluate).model: 'nope.model' names no stage"),
    "cycle": (lambda d: stage_named(d, "preprocess").update(depends_on=["evaluate"]),
              "stages: stages depend on each other in a cycle: evaluate -> preprocess -> evaluate"),
}


@pytest.mark.parametrize("case", list(NAMED_AS_GIVEN))
@pytest.mark.parametrize("relative", [True, False], ids=["relative", "absolute"])
def test_config_errors_name_the_file_as_it_was_given(tmp_path, case, relative):
    """Every config error names the file as the user gave it: a cycle (found while building the
    pipeline, which knows the config's resolved path) like a dangling reference (found while
    validating the document)."""
    change, text = NAMED_AS_GIVEN[case]
    path = changed_config(tmp_path, change)
    given = path.name if relative else str(path)
    proc = run_cli("build", "--config", given, "--out", "out", cwd=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.startswith(f"error: {given}: ") and text in proc.stderr, proc.stderr
    if relative:
        assert str(tmp_path) not in proc.stderr, proc.stderr


def test_malformed_yaml_and_missing_file(tmp_path):
    bad = tmp_path / "broken.yaml"
    bad.write_text("pipeline: [unclosed\n")
    proc = run_cli("build", "--config", str(bad))
    assert proc.returncode == 2 and "invalid YAML" in proc.stderr and str(bad) in proc.stderr
    assert "<unicode string>" not in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.startswith(f"error: {bad}: invalid YAML") and f"in {bad}, line 2" in proc.stderr, proc.stderr
    proc = run_cli("build", "--config", str(tmp_path / "nope.yaml"))
    assert proc.returncode == 2 and "file not found" in proc.stderr


def test_botocore_models_are_kept_without_documentation_and_a_damaged_copy_is_rebuilt(tmp_path, monkeypatch):
    """config/aws_api keeps each service model once more, documentation stripped, per botocore
    version; the checks read the same shapes from it, and a damaged or unwritable cache is
    never an error."""
    import json as _json

    import botocore

    from config import aws_api

    monkeypatch.setenv("MLPIPE_CACHE_DIR", str(tmp_path))
    aws_api.service_json.cache_clear()
    try:
        first = aws_api.service_json("sagemaker")
        slim = tmp_path / "botocore" / botocore.__version__ / "sagemaker.service-2.json"
        assert slim.is_file() and "documentation" not in slim.read_text()
        raw = aws_api._loader().load_service_model("sagemaker", "service-2")
        assert first["shapes"]["TrainingInstanceType"]["enum"] == raw["shapes"]["TrainingInstanceType"]["enum"]
        assert set(first["operations"]) == set(raw["operations"])
        slim.write_text('{"shapes": ')                        # damaged: rebuilt, not trusted
        aws_api.service_json.cache_clear()
        assert aws_api.service_json("sagemaker") == first
        assert _json.loads(slim.read_text()) == first
        blocker = tmp_path / "file"
        blocker.write_text("")
        monkeypatch.setenv("MLPIPE_CACHE_DIR", str(blocker))  # unwritable: still answers
        aws_api.service_json.cache_clear()
        assert aws_api.service_json("sagemaker") == first
    finally:
        aws_api.service_json.cache_clear()


def test_the_region_list_is_cached_and_a_damaged_copy_is_rebuilt(tmp_path, monkeypatch):
    """The regions of endpoints.json (1.2 MB) are kept as a short list per botocore version."""
    import json as _json

    import botocore

    from config import aws_api

    monkeypatch.setenv("MLPIPE_CACHE_DIR", str(tmp_path))
    aws_api.regions.cache_clear()
    try:
        first = aws_api.regions("sagemaker")
        cached = tmp_path / "botocore" / botocore.__version__ / "sagemaker.regions.json"
        assert tuple(_json.loads(cached.read_text())) == first and "eu-west-1" in first
        cached.write_text('{"us-east-7": 1}')                  # damaged: rebuilt, not trusted
        aws_api.regions.cache_clear()
        assert aws_api.regions("sagemaker") == first and "us-east-7" not in first
        assert tuple(_json.loads(cached.read_text())) == first
    finally:
        aws_api.regions.cache_clear()
