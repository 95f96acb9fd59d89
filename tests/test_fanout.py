"""Fan-out (``foreach:``): a group of stages once per item, in both targets and locally.

- the example (one abalone model per sex) builds for both targets: an inline Map state, and
  the group copied once per item in the SageMaker pipeline; statelint and botocore's input
  shapes pass; items read at run time give a Distributed Map, and SageMaker refuses them (exit 2);
- the Map runs in moto's ASL interpreter with the SageMaker tasks mocked (Pass states that
  compute the same requests): each item's job names and the Map's output;
- a local run registers one model per item (bundled data: always; the example on the real
  abalone data when it is here); describe, graph, iam-policy and lineage cover the group.
"""

from __future__ import annotations

import copy
import hashlib
import json
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from conftest import ABALONE_CSV, EXAMPLES, all_steps, run_cli, statelint

EXAMPLE = EXAMPLES / "abalone_by_sex.yaml"
MEMBERS = ["preprocess", "train", "evaluate", "create-model", "register"]


def _example_doc() -> dict:
    doc = yaml.safe_load(EXAMPLE.read_text())
    doc["data"]["local"] = str(ABALONE_CSV)   # the copy is written elsewhere: keep the data path absolute
    return doc


def _write(tmp_path: Path, doc: dict, name: str = "fanout.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def _runtime_column(tmp_path: Path) -> Path:
    doc = _example_doc()
    doc["foreach"] = {"name": "by-sex", "stages": MEMBERS, "column": "sex", "registry": "metadata",
                      "tolerated_failure_percentage": 10}
    return _write(tmp_path, doc, "runtime_column.yaml")


def _listing(tmp_path: Path) -> Path:
    doc = _example_doc()
    doc["stages"][0]["inputs"] = {"data": "$item"}
    doc["foreach"] = {"name": "segments", "stages": MEMBERS, "s3_listing": "s3://mlpipe-abalone-123456789012/segments/",
                      "registry": "metadata", "max_concurrency": 4}
    return _write(tmp_path, doc, "listing.yaml")


def _build(config: Path, target: str, out: Path):
    return run_cli("build", "--config", str(config), "--target", target, "--out", str(out))


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("fanout-build")
    proc = _build(EXAMPLE, "all", out)
    assert proc.returncode == 0, proc.stderr
    return {"asl": json.loads((out / "stepfunctions/state_machine.asl.json").read_text()),
            "pipeline": json.loads((out / "sagemaker/pipeline.json").read_text())}


# --- config ---------------------------------------------------------------------------------

@pytest.mark.parametrize("change, field, words", [
    (lambda d: d["foreach"].update(stages=["preprocess", "nope"]), "foreach.stages[1]", "names no stage"),
    (lambda d: d["foreach"].pop("values") and d["foreach"].pop("column"), "foreach", "exactly one source"),
    (lambda d: d["foreach"].pop("values"), "foreach.registry", "registry: metadata"),
    (lambda d: d["foreach"].update(column="rings"), "foreach.column", "is the target"),
    (lambda d: d["foreach"].update(column="colour"), "foreach.column", "not one of data.column_names"),
    (lambda d: d["foreach"].update(stages=["preprocess"]), "stages[1](train).inputs.train", "produced once per item"),
    (lambda d: d["stages"][0]["inputs"].update(data="$item") or d["foreach"].update(stages=MEMBERS[1:]),
     "stages[0](preprocess).inputs.data", "only known inside the fan-out"),
])
def test_a_bad_foreach_is_one_clear_message(tmp_path, change, field, words):
    doc = _example_doc()
    change(doc)
    proc = run_cli("describe", "--config", str(_write(tmp_path, doc)))
    assert proc.returncode == 2, proc.stderr
    assert f": {field}: " in proc.stderr and words in proc.stderr and "fix:" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_stage_after_the_group_cannot_take_one_items_outputs(tmp_path):
    doc = _example_doc()
    doc["stages"].append({"name": "approve", "kind": "approval", "depends_on": ["register"]})
    proc = run_cli("describe", "--config", str(_write(tmp_path, doc)))
    assert proc.returncode == 2 and ": stages[5](approve): " in proc.stderr, proc.stderr
    assert "register.model_package_arn" in proc.stderr and "once per item" in proc.stderr


def test_a_pipeline_wide_stage_cannot_run_per_item(tmp_path):
    doc = _example_doc()
    doc["stages"].append({"name": "approve", "kind": "approval", "depends_on": ["register"]})
    doc["foreach"]["stages"] = MEMBERS + ["approve"]
    proc = run_cli("describe", "--config", str(_write(tmp_path, doc)))
    assert proc.returncode == 2 and "foreach.stages[5]" in proc.stderr and "cannot run once per item" in proc.stderr


# --- Step Functions ---------------------------------------------------------------------------

def test_the_example_is_an_inline_map_over_its_three_items(built):
    from workflows.render import requests

    asl = built["asl"]
    statelint(asl)
    assert requests.problems("stepfunctions", asl) == []
    items = asl["States"]["by-sex-items"]["Result"]
    assert [(i["value"], i["key"], i["package_groups"]["register"]) for i in items] == [
        ("M", "m", "mlpipe-abalone-sex-m"), ("F", "f", "mlpipe-abalone-sex-f"), ("I", "i", "mlpipe-abalone-sex-i")]
    m = asl["States"]["by-sex"]
    assert m["Type"] == "Map" and m["ItemsPath"] == "$.stages.by_sex" and m["ResultPath"] == "$.stages.by_sex"
    assert m["ItemProcessor"]["ProcessorConfig"] == {"Mode": "INLINE"} and "Iterator" not in m
    # the item's state comes only through the ItemSelector: the parent's execution, a per-item hash
    assert m["ItemSelector"]["item.$"] == "$$.Map.Item.Value"
    assert m["ItemSelector"]["run"]["hash.$"] == "States.Hash(States.Format('{}/{}', $.run.execution, " \
                                                 "$$.Map.Item.Index), 'MD5')"
    inner = m["ItemProcessor"]["States"]
    assert set(inner) >= {"preprocess", "train", "evaluate", "evaluate-gate", "create-model", "register"}
    assert inner["preprocess"]["Parameters"]["ProcessingJobName.$"] == (
        "States.Format('abalone-sex-preprocess-{}-{}-{}{}', $.item.key, $.run.hash, $$.Execution.RedriveCount, "
        "$$.State.RetryCount)")
    args = inner["preprocess"]["Parameters"]["AppSpecification"]["ContainerArguments.$"]
    assert args.startswith("States.Array('--target', '8'") and args.endswith("'--filter-value', $.item.value)")
    register = inner["register"]["Parameters"]
    assert register["ModelPackageGroupName.$"] == "$.item.package_groups.register"
    assert register["CustomerMetadataProperties"] == {"mlpipe:foreach": "by-sex", "mlpipe:item.$": "$.item.value"}
    # each item's outputs in its own folder
    assert "/runs/{}/train/{}'" in inner["train"]["Parameters"]["OutputDataConfig"]["S3OutputPath.$"]
    done = inner["by-sex-item-done"]
    assert done["End"] is True and set(done["Parameters"]["stages"]) == {
        "preprocess.$", "train.$", "evaluate.$", "evaluate_gate.$", "create_model.$", "register.$"}


def test_job_names_fit_sagemaker_for_every_item(built):
    from workflows.render.asl import walk

    from asl_eval import evaluate

    for name, state in walk(built["asl"]):
        expr = (state.get("Parameters") or {}).get("ProcessingJobName.$") or \
            (state.get("Parameters") or {}).get("TrainingJobName.$") or (state.get("Parameters") or {}).get("ModelName.$")
        if not expr:
            continue
        for key in ("m", "f", "i"):
            data = {"item": {"key": key}, "run": {"hash": "f" * 32}}
            job = evaluate(expr, data, {"Execution": {"RedriveCount": 12}, "State": {"RetryCount": 2}})
            assert len(job) <= 63 and job.replace("-", "").isalnum(), (name, job)
            assert f"-{key}-" in job


def test_items_read_at_run_time_use_a_distributed_map(tmp_path):
    from workflows.render import requests

    for config, name in ((_runtime_column(tmp_path), "by-sex"), (_listing(tmp_path), "segments")):
        out = tmp_path / name
        proc = _build(config, "stepfunctions", out)
        assert proc.returncode == 0, proc.stderr
        asl = json.loads((out / "stepfunctions/state_machine.asl.json").read_text())
        statelint(asl)
        assert requests.problems("stepfunctions", asl) == []
        m = asl["States"][name]
        assert m["ItemProcessor"]["ProcessorConfig"] == {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"}
        if name == "segments":
            assert m["ItemReader"] == {"Resource": "arn:aws:states:::s3:listObjectsV2",
                                       "Parameters": {"Bucket": "mlpipe-abalone-123456789012", "Prefix": "segments/"}}
            assert "ItemsPath" not in m and m["MaxConcurrency"] == 4
            preprocess = m["ItemProcessor"]["States"]["preprocess"]["Parameters"]
            assert preprocess["ProcessingInputs"][0]["S3Input"]["S3Uri.$"] == "$.item.value"
        else:
            assert m["ToleratedFailurePercentage"] == 10 and m["ItemsPath"] == "$.stages.by_sex.items"
            # the items job lists the column's values before the Map reads them
            items_job = asl["States"]["by-sex-items"]
            assert items_job["Parameters"]["AppSpecification"]["ContainerArguments"][-2:] == ["--list-values", "sex"]
            assert items_job["Next"] == "by-sex-items-read" and asl["States"]["by-sex-items-read"]["Next"] == name


def test_more_than_40_items_use_a_distributed_map(tmp_path):
    doc = _example_doc()
    doc["stages"][0]["inputs"] = {"data": "$item"}
    doc["foreach"] = {"name": "shops", "stages": MEMBERS,
                      "s3_prefixes": [f"s3://mlpipe-abalone-123456789012/shops/{n:03d}/" for n in range(41)]}
    out = tmp_path / "out"
    proc = _build(_write(tmp_path, doc), "stepfunctions", out)
    assert proc.returncode == 0, proc.stderr
    asl = json.loads((out / "stepfunctions/state_machine.asl.json").read_text())
    statelint(asl)
    m = asl["States"]["shops"]
    assert m["ItemProcessor"]["ProcessorConfig"]["Mode"] == "DISTRIBUTED" and m["ItemsPath"] == "$.stages.shops"
    assert [i["key"] for i in asl["States"]["shops-items"]["Result"]][:2] == ["000", "001"]


# --- SageMaker Pipelines ------------------------------------------------------------------------

def _steps(doc: dict) -> dict[str, dict]:
    return {s["Name"]: s for s in all_steps(doc["Steps"])}


def test_sagemaker_copies_the_group_once_per_item(built):
    from workflows.render import requests

    doc = built["pipeline"]
    assert requests.problems("sagemaker", doc) == []
    steps = _steps(doc)
    for key, value in (("m", "M"), ("f", "F"), ("i", "I")):
        assert {f"preprocess-{key}", f"train-{key}", f"evaluate-{key}", f"evaluate-gate-{key}"} <= set(steps)
        args = steps[f"preprocess-{key}"]["Arguments"]["AppSpecification"]["ContainerArguments"]
        assert args[-4:] == ["--filter-column", "sex", "--filter-value", value]
        register = steps[f"register-{key}-RegisterModel"]["Arguments"]
        assert register["ModelPackageGroupName"] == f"mlpipe-abalone-sex-{key}"
        assert register["CustomerMetadataProperties"]["mlpipe:item"] == value
        # each copy's gate guards only its own item's model and registration
        gate = steps[f"evaluate-gate-{key}"]["Arguments"]
        assert {s["Name"] for s in gate["IfSteps"]} == {f"create-model-{key}-CreateModel", f"register-{key}-RegisterModel"}


def test_sagemaker_refuses_items_known_only_at_run_time(tmp_path):
    for config, field in ((_runtime_column(tmp_path), "foreach.column"), (_listing(tmp_path), "foreach.s3_listing")):
        proc = _build(config, "sagemaker", tmp_path / field)
        assert proc.returncode == 2, proc.stderr
        assert f": {field}: SageMaker Pipelines has no map step" in proc.stderr and "known only at run time" in proc.stderr
        assert "fix: list the items in the config" in proc.stderr and "Traceback" not in proc.stderr


# --- the Map in moto's ASL interpreter --------------------------------------------------------

def mocked(asl: dict) -> dict:
    """The state machine with every Task replaced by a Pass that computes the task's own request
    (``request``) and what its ResultSelector would keep, read from the request where it is there
    (job names, output locations) and made up otherwise (a model artifact, a passing report).
    moto's context object has no Execution.RedriveCount, and its Pass states no State.RetryCount:
    both are 0 in a first attempt of a first run, as here."""
    asl = copy.deepcopy(asl)

    def from_request(params: dict, path: str):
        node = params
        for seg in path[2:].replace("[", ".").replace("]", "").split("."):
            if isinstance(node, dict) and seg + ".$" in node:
                return ".$", node[seg + ".$"]
            node = node.get(seg) if isinstance(node, dict) else node[int(seg)] if isinstance(node, list) else None
        return ("", node) if node is not None else ("", f"mock:{path}")

    def fix(states: dict) -> None:
        for name, st in states.items():
            for branch in st.get("Branches", []):
                fix(branch["States"])
            if "ItemProcessor" in st:
                fix(st["ItemProcessor"]["States"])
            if st.get("Type") != "Task":
                continue
            params = st.get("Parameters", {})
            result: dict = {"request": params}
            for key, expr in (st.get("ResultSelector") or {}).items():
                key = key[:-2]
                if "StringToJson" in expr:
                    result[key] = {"regression_metrics": {"mse": {"value": 1.0}}}
                elif "ModelArn" in expr:
                    result[key + ".$"] = params["ModelName.$"]
                elif expr == "$.ModelPackageArn":
                    result[key + ".$"] = "States.Format('arn:aws:sagemaker:us-east-1:123456789012:model-package/{}/1', " \
                                         + params["ModelPackageGroupName.$"] + ")"
                else:
                    suffix, value = from_request(params, expr)
                    result[key + suffix] = value
            states[name] = {"Type": "Pass", "Parameters": result, "ResultPath": st.get("ResultPath", "$"),
                            **{f: st[f] for f in ("Next", "End") if f in st}}

    fix(asl["States"])
    text = json.dumps(asl).replace("$$.Execution.RedriveCount", "'0'").replace("$$.State.RetryCount", "'0'")
    return json.loads(text)


def _run_on_moto(url: str, definition: dict, name: str) -> dict:
    import boto3

    sfn = boto3.client("stepfunctions", endpoint_url=url, region_name="us-east-1")
    arn = sfn.create_state_machine(name=f"fanout-{name}", definition=json.dumps(definition),
                                   roleArn="arn:aws:iam::123456789012:role/mlpipe-test")["stateMachineArn"]
    execution = sfn.start_execution(stateMachineArn=arn, name=name, input="{}")["executionArn"]
    deadline = time.time() + 60
    while time.time() < deadline:
        result = sfn.describe_execution(executionArn=execution)
        if result["status"] != "RUNNING":
            return result
        time.sleep(0.2)
    raise AssertionError("the execution did not finish in 60 s")


@pytest.fixture
def asl_interpreter(moto_server):
    """moto's Step Functions interpreter (moto/stepfunctions/parser), on for this test only."""
    def config(on: bool) -> None:
        body = json.dumps({"stepfunctions": {"execute_state_machine": on}}).encode()
        urllib.request.urlopen(urllib.request.Request(f"{moto_server}/moto-api/config", data=body, method="POST"),
                               timeout=10).read()

    config(True)
    try:
        yield moto_server
    finally:
        config(False)


def test_the_map_runs_each_item_in_motos_interpreter(built, asl_interpreter):
    from workflows.ops.lineage import sfn_record

    result = _run_on_moto(asl_interpreter, mocked(built["asl"]), "run-1")
    assert result["status"] == "SUCCEEDED", result.get("cause")
    output = json.loads(result["output"])
    items = output["stages"]["by_sex"]
    assert [(i["item"], i["key"]) for i in items] == [("M", "m"), ("F", "f"), ("I", "i")]
    for index, item in enumerate(items):
        key, stages = item["key"], item["stages"]
        item_hash = hashlib.md5(f"run-1/{index}".encode()).hexdigest()
        assert stages["preprocess"]["job_name"] == f"abalone-sex-preprocess-{key}-{item_hash}-00"
        assert stages["train"]["job_name"] == f"abalone-sex-train-{key}-{item_hash}-00"
        assert stages["evaluate"]["job_name"] == f"abalone-sex-evaluate-{key}-{item_hash}-00"
        assert stages["create_model"]["model_name"] == f"abalone-sex-create-model-{key}-{item_hash}"
        assert stages["register"]["model_package_arn"].endswith(f"model-package/mlpipe-abalone-sex-{key}/1")
        assert stages["preprocess"]["train"] == f"s3://mlpipe-abalone-123456789012/abalone-sex/runs/run-1/preprocess/{key}/train"
    # job names differ across items and runs; the state after the Map keeps one small object per item
    assert len({i["stages"]["train"]["job_name"] for i in items}) == 3
    assert set(output["stages"]) == {"by_sex"}
    # lineage reads each item back from the execution
    record = sfn_record(json.dumps(built["asl"]), {**result, "name": "run-1"})
    assert set(record["foreach"]) == {"M", "F", "I"}
    assert record["foreach"]["F"]["model_package_arn"].endswith("mlpipe-abalone-sex-f/1")
    assert record["foreach"]["F"]["jobs"]["train"].startswith("abalone-sex-train-f-")


# --- describe, graph, IAM --------------------------------------------------------------------

def test_describe_and_graph_show_the_group():
    proc = run_cli("describe", "--config", str(EXAMPLE), "--output", "json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["foreach"]["items"]["values"] == ["M", "F", "I"] and doc["foreach"]["stepfunctions"] == "inline Map"
    assert [s["name"] for s in doc["stages"] if s.get("foreach") == "by-sex"] == \
        ["preprocess", "train", "evaluate", "evaluate-gate", "create-model", "register"]
    proc = run_cli("graph", "--config", str(EXAMPLE), "--format", "mermaid")
    assert proc.returncode == 0 and 'subgraph by_sex["foreach by-sex: M, F, I"]' in proc.stdout


def _policies(config: Path, target: str = "stepfunctions") -> dict:
    from steps.pipeline import load_spec
    from workflows.infra import iam

    return {(r.service, name): doc for r in iam.roles(load_spec(config), target) for name, doc in r.policies.items()}


def test_iam_is_least_privilege_for_every_item(tmp_path):
    from workflows.infra.iam import wildcard_actions

    proc = run_cli("iam-policy", "--config", str(EXAMPLE))
    assert proc.returncode == 0, proc.stderr
    sfn = _policies(EXAMPLE)[("stepfunctions", "mlpipe-stepfunctions-run-pipeline")]
    statements = {s["Sid"]: s for s in sfn["Statement"]}
    assert "arn:aws:sagemaker:us-east-1:123456789012:training-job/abalone-sex-train-*" in statements["TrainingJobs"]["Resource"]
    groups = statements["RegisterModels"]["Resource"]
    assert {f"arn:aws:sagemaker:us-east-1:123456789012:model-package-group/mlpipe-abalone-sex-{k}" for k in "mfi"} <= set(groups)
    assert "RunMapItems" not in statements   # an inline Map starts no child executions
    for config in (EXAMPLE, _runtime_column(tmp_path), _listing(tmp_path)):
        for target in ("stepfunctions", "sagemaker"):
            for doc in _policies(config, target).values():
                assert wildcard_actions(doc) == []
    listing = {s["Sid"]: s for s in _policies(_listing(tmp_path))[("stepfunctions", "mlpipe-stepfunctions-run-pipeline")]
               ["Statement"]}
    assert listing["RunMapItems"]["Action"] == ["states:StartExecution"]
    assert "arn:aws:states:us-east-1:123456789012:stateMachine:mlpipe-abalone-sex" in listing["RunMapItems"]["Resource"]
    assert listing["FollowMapItems"]["Resource"] == ["arn:aws:states:us-east-1:123456789012:execution:mlpipe-abalone-sex/*"]
    assert listing["ListMapItems"] == {"Sid": "ListMapItems", "Effect": "Allow", "Action": ["s3:ListBucket"],
                                       "Resource": ["arn:aws:s3:::mlpipe-abalone-123456789012"],
                                       "Condition": {"StringLike": {"s3:prefix": ["segments/*"]}}}


# --- local runs --------------------------------------------------------------------------------

def test_preprocess_filters_one_item_and_lists_the_items(tmp_path):
    import pandas as pd

    from steps.code import preprocess

    frame = pd.DataFrame({"sex": ["M", "F", "M", "I"], "n": [1.0, 2.0, 3.0, 4.0], "code": [1, 2, 1, 2]})
    assert list(preprocess.filter_rows(frame, "sex", "M")["n"]) == [1.0, 3.0]
    assert list(preprocess.filter_rows(frame, "code", "2")["n"]) == [2.0, 4.0]
    assert preprocess.item_values(frame, "sex") == ["F", "I", "M"] and preprocess.item_values(frame, "code") == ["1", "2"]
    with pytest.raises(preprocess.DataError, match="no row has sex = 'X'"):
        preprocess.filter_rows(frame, "sex", "X")
    preprocess.write_items(tmp_path, frame, "sex")
    assert json.loads((tmp_path / "items/items.json").read_text()) == [
        {"value": "F", "key": "0"}, {"value": "I", "key": "1"}, {"value": "M", "key": "2"}]


def _models(runs: Path) -> list[dict]:
    proc = run_cli("models", "list", "--output", "json", env={"MLPIPE_RUNS_DIR": str(runs)})
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_a_local_run_reads_the_items_and_registers_one_model_each(tmp_path):
    """On the bundled diabetes data (always here): one model per value of `sex`, read from the
    data at run time, each recorded with its item in one model package group."""
    doc = yaml.safe_load((EXAMPLES / "quickstart.yaml").read_text())
    doc["stages"] = [s for s in doc["stages"] if s["name"] in MEMBERS]
    doc["stages"][2]["gate"]["threshold"] = 500.0
    doc["foreach"] = {"name": "by-sex", "stages": MEMBERS, "column": "sex", "registry": "metadata"}
    config = _write(tmp_path, doc)
    runs = tmp_path / "runs"
    proc = run_cli("run", "--config", str(config), "--output", "json", env={"MLPIPE_RUNS_DIR": str(runs)})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    models = _models(runs)
    assert sorted((m["group"], m["item"], m["foreach"]) for m in models) == [
        ("mlpipe-quickstart", "1", "by-sex"), ("mlpipe-quickstart", "2", "by-sex")]
    assert models[0]["metrics"] != models[1]["metrics"]   # each its own evaluation
    record = json.loads(next(runs.glob("quickstart-*/run.json")).read_text())
    assert record["options"]["fanout_items"] == ["1", "2"]
    assert {"preprocess-1", "preprocess-2", "register-1", "register-2"} <= set(record["stages"])
    assert set(record["lineage"]["foreach"]["items"]) == {"1", "2"}
    items = record["lineage"]["foreach"]["items"]   # two versions of one group, in the order they finished
    assert {items[v]["registry"]["version"] for v in ("1", "2")} == {1, 2}


def test_the_example_registers_three_models_locally(abalone_csv, tmp_path):
    runs = tmp_path / "runs"
    proc = run_cli("run", "--config", str(EXAMPLE), env={"MLPIPE_RUNS_DIR": str(runs)})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    models = _models(runs)
    assert sorted((m["group"], m["item"]) for m in models) == [
        ("mlpipe-abalone-sex-f", "F"), ("mlpipe-abalone-sex-i", "I"), ("mlpipe-abalone-sex-m", "M")]
    proc = run_cli("models", "list", env={"MLPIPE_RUNS_DIR": str(runs)})
    assert proc.stdout.count("PendingManualApproval") == 3


def test_independent_items_run_at_the_same_time_locally():
    """The copies of different items share no edge, so the runner's scheduler (PARALLEL at
    once) overlaps them."""
    from steps import fanout
    from steps.pipeline import load_spec

    spec = fanout.expand(load_spec(EXAMPLE))
    for key in "mfi":
        others = {f"{m}-{k}" for m in ("preprocess", "train", "evaluate", "register") for k in "mfi" if k != key}
        for stage in spec.stages:
            if stage.name.endswith(f"-{key}"):
                assert not set(stage.upstream) & others
    assert spec.fingerprint == load_spec(EXAMPLE).fingerprint   # the config's own hash, in every target
