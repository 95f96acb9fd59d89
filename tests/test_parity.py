"""The Step Functions and SageMaker targets send the same request for the same stage, field by
field: every processing, training, transform and model stage of every example.

Only what differs by nature is normalised, and each normalisation is itself checked:
- references: an ASL path (``$.parameters.X``, ``$.stages.s.o``) and a pipeline property
  (``{"Get": "Parameters.X"}``, ``{"Get": "Steps.s...."}``) both become the spec's notation
  (``$X``, ``s.o``); a run's S3 folder (``States.Format(..., $.run.execution)`` and
  ``Std:Join`` over ``Execution.PipelineExecutionId``) becomes one string with ``<execution>``;
- the created resource's own name (job or model name): the state machine computes it from the
  execution, SageMaker Pipelines names it itself (``pipelines-<execution>-<step>``), so it is
  in the state machine's request only;
- the ``mlpipe:run-id`` tag: the execution's name on Step Functions; SageMaker Pipelines tags
  every job it starts with its execution itself (``sagemaker:pipeline-execution-arn``).
"""

from __future__ import annotations

import copy
import json
import re

import pytest
from conftest import EXAMPLES, all_steps
from test_build import CLEAN_ENV, _norm

from steps.contract import KINDS
from steps.pipeline import load_spec
from workflows.render import PIPELINE_FILE, STATE_MACHINE_FILE, render
from workflows.render.asl import states as asl_states

EXECUTION = "<execution>"
# the field naming the resource a stage creates, by SageMaker job (or "model")
NAME_FIELDS = {"processing": "ProcessingJobName", "training": "TrainingJobName", "transform": "TransformJobName",
               "model": "ModelName"}
JOB_KINDS = ("processing", "training", "transform")   # KINDS[kind].job; evaluation runs a processing job
_RUN_URI = re.compile(r"States\.Format\('([^']*)', \$\.run\.execution\)")
EXAMPLE_FILES = sorted(p.name for p in EXAMPLES.iterdir() if p.suffix in (".yaml", ".json"))


@pytest.fixture(scope="module")
def documents():
    out = {}
    for name in EXAMPLE_FILES:
        spec = load_spec(EXAMPLES / name, env=CLEAN_ENV)
        files = render(spec, "all", use_cache=False)
        out[name] = (spec, asl_states(json.loads(files[STATE_MACHINE_FILE])),
                     {s["Name"]: s for s in all_steps(json.loads(files[PIPELINE_FILE])["Steps"])})
    return out


def _compared_stages(spec):
    """Job and model stages outside a fan-out group. A group member is one Map item state on
    Step Functions and one copy per item on SageMaker, whose item-derived values (names, paths,
    filters) need the item substituted first: not compared here yet (tests/test_fanout.py checks
    their names, paths and the Map's run)."""
    grouped = set(spec.fanout.stages) if getattr(spec, "fanout", None) else set()
    return [s for s in spec.stages if (KINDS[s.kind].job in JOB_KINDS or s.kind == "model") and s.name not in grouped]


def _name_field(stage) -> str:
    return NAME_FIELDS[KINDS[stage.kind].job or stage.kind]


def _requests(spec, asl, sm, stage):
    """(Step Functions request, SageMaker request) of one stage, as each target writes it."""
    step = sm[f"{stage.name}-CreateModel"] if stage.kind == "model" else sm[stage.name]
    return asl[stage.name]["Parameters"], step["Arguments"]


# --- normalisation of what differs by nature ---------------------------------------------------

def _sfn_ref(expr: str, ids: dict[str, str]) -> str:
    m = _RUN_URI.fullmatch(expr)
    if m:
        return m.group(1).replace("{}", EXECUTION)
    value = _norm(expr, ids)
    assert value != expr, f"a dynamic value the parity test does not know: {expr}"
    return value


def _sm_ref(node: dict, ids: dict[str, str]) -> str:
    if "Std:Join" in node:
        join = node["Std:Join"]
        return join["On"].join(_sm_ref(v, ids) if isinstance(v, dict) else str(v) for v in join["Values"])
    if node["Get"] == "Execution.PipelineExecutionId":
        return EXECUTION
    return _norm(node, ids)


def _canonical(node, ids: dict[str, str], target: str):
    if isinstance(node, dict):
        if target == "sagemaker" and ("Get" in node or "Std:Join" in node):
            return _sm_ref(node, ids)
        out = {}
        for key, value in node.items():
            if target == "stepfunctions" and key.endswith(".$"):
                out[key[:-2]] = _sfn_ref(value, ids)
            else:
                out[key] = _canonical(value, ids, target)
        return out
    if isinstance(node, list):
        return [_canonical(v, ids, target) for v in node]
    return node


def canonical_pair(sfn: dict, sm: dict, ids: dict[str, str], name_field: str) -> tuple[dict, dict]:
    """Both requests with only the by-nature differences normalised (and those checked)."""
    sfn, sm = copy.deepcopy(sfn), copy.deepcopy(sm)
    assert "$.run.hash" in sfn.pop(f"{name_field}.$"), f"{name_field} must be computed from the execution"
    assert name_field not in sm, f"SageMaker Pipelines names the resource itself; the pipeline sets {name_field}"
    run_tags = [t for t in sfn.get("Tags", []) if t.get("Key") == "mlpipe:run-id"]
    assert run_tags == [{"Key": "mlpipe:run-id", "Value.$": "$.run.execution"}], sfn.get("Tags")
    sfn["Tags"] = [t for t in sfn["Tags"] if t not in run_tags]
    return _canonical(sfn, ids, "stepfunctions"), _canonical(sm, ids, "sagemaker")


def _differences(a, b, path: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for key in sorted(set(a) | set(b)):
            if key not in a or key not in b:
                out.append(f"{path}.{key}: only in {'the state machine' if key in a else 'the pipeline'} "
                           f"({json.dumps(a.get(key, b.get(key)))[:200]})")
            else:
                out += _differences(a[key], b[key], f"{path}.{key}")
        return out
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in _differences(x, y, f"{path}[{i}]")]
    return [] if a == b else [f"{path}: state machine {json.dumps(a)[:200]} != pipeline {json.dumps(b)[:200]}"]


# --- the tests ---------------------------------------------------------------------------------

@pytest.mark.parametrize("name", EXAMPLE_FILES)
def test_every_job_and_model_request_agrees_field_by_field(documents, name):
    spec, asl, sm = documents[name]
    ids = {s.name.replace("-", "_"): s.name for s in spec.stages}
    for stage in _compared_stages(spec):
        a, b = canonical_pair(*_requests(spec, asl, sm, stage), ids, _name_field(stage))
        differences = _differences(a, b)
        assert not differences, f"{name}/{stage.name} ({stage.kind}):\n  " + "\n  ".join(differences)


def test_the_examples_hold_every_compared_kind(documents):
    kinds = {KINDS[s.kind].job or s.kind for spec, _, _ in documents.values() for s in _compared_stages(spec)}
    assert kinds == set(NAME_FIELDS), kinds
    assert {"bsm_pytorch.yaml", "abalone.yaml", "quickstart.yaml"} <= set(EXAMPLE_FILES)


def test_the_comparison_sees_a_missing_or_changed_field(documents):
    """The check is not vacuous: the old Step Functions training request (no CheckpointConfig,
    a fixed sagemaker_job_name) and a changed instance type are caught."""
    spec, asl, sm = documents["bsm_pytorch.yaml"]
    ids = {s.name.replace("-", "_"): s.name for s in spec.stages}
    sfn, sagemaker = _requests(spec, asl, sm, spec.stage("train"))
    old = copy.deepcopy(sfn)
    del old["CheckpointConfig"]
    old["HyperParameters"]["sagemaker_job_name"] = '"bsm-pytorch-train"'
    found = _differences(*canonical_pair(old, sagemaker, ids, "TrainingJobName"))
    assert any(d.startswith(".CheckpointConfig: only in the pipeline") for d in found), found
    assert any(d.startswith(".HyperParameters.sagemaker_job_name: only in the state machine") for d in found), found
    changed = copy.deepcopy(sfn)
    changed["ResourceConfig"]["InstanceType"] = "ml.m5.xlarge"
    assert _differences(*canonical_pair(changed, sagemaker, ids, "TrainingJobName")) == [
        '.ResourceConfig.InstanceType: state machine "ml.m5.xlarge" != pipeline "ml.g5.xlarge"']


def test_pytorch_training_carries_checkpoints_and_no_fixed_job_name(documents):
    spec, asl, sm = documents["bsm_pytorch.yaml"]
    for request in _requests(spec, asl, sm, spec.stage("train")):
        assert request["CheckpointConfig"] == {"S3Uri": "s3://mlpipe-bsm-123456789012/bsm/checkpoints"}
        assert "sagemaker_job_name" not in request["HyperParameters"]
        assert request["HyperParameters"]["sagemaker_program"] == '"train_pytorch.py"'


def test_pytorch_model_answers_csv_by_default_on_both_targets(documents):
    spec, asl, sm = documents["bsm_pytorch.yaml"]
    for request in _requests(spec, asl, sm, spec.stage("create-model")):
        env = request["PrimaryContainer"]["Environment"]
        assert env["SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT"] == "text/csv"
        assert env["SAGEMAKER_PROGRAM"] == "inference.py"
        assert env["SAGEMAKER_SUBMIT_DIRECTORY"] == "/opt/ml/model/code"


# --- fan-out members: one Map item state against each item's copy ------------------------------

def _item_data(spec, item) -> tuple[dict, dict]:
    """The state a Map item's states see (its ItemSelector), with references as the spec's notation."""
    stages = {s.name.replace("-", "_"): {o: f"{s.name}.{o}" for o in s.outputs} for s in spec.stages}
    data = {"item": {"key": item.key, "value": item.value}, "run": {"execution": EXECUTION, "hash": "0" * 32},
            "parameters": {p.name: f"${p.name}" for p in spec.parameters}, "stages": stages}
    return data, {"Execution": {"Name": EXECUTION, "RedriveCount": 0}, "State": {"RetryCount": 0}}


def _evaluated(node, data, context):
    from asl_eval import evaluate

    if isinstance(node, dict):
        return {(k[:-2] if k.endswith(".$") else k): (evaluate(v, data, context) if k.endswith(".$")
                                                      else _evaluated(v, data, context)) for k, v in node.items()}
    if isinstance(node, list):
        return [_evaluated(v, data, context) for v in node]
    return node


def _unsuffixed(node, members, key):
    """A copy's references name the copy (``train-m.model``); the Map's name the member."""
    if isinstance(node, dict):
        return {k: _unsuffixed(v, members, key) for k, v in node.items()}
    if isinstance(node, list):
        return [_unsuffixed(v, members, key) for v in node]
    if isinstance(node, str):
        return re.sub(rf"^({'|'.join(map(re.escape, members))})-{re.escape(key)}\.", r"\1.", node)
    return node


def test_fan_out_members_agree_field_by_field_for_every_item(documents):
    """abalone_by_sex: each member's request in the Map's item processor, evaluated for an item,
    equals that item's copy in the pipeline (names and the run tag aside, as above)."""
    spec, asl, sm = documents["abalone_by_sex.yaml"]
    members = list(spec.fanout.stages)
    ids = {s.name.replace("-", "_"): s.name for s in spec.stages}
    compared = 0
    for item in spec.fanout.items:
        data, context = _item_data(spec, item)
        for stage in (s for s in spec.stages if s.name in members):
            if not (KINDS[stage.kind].job in JOB_KINDS or stage.kind == "model"):
                continue
            name_field = _name_field(stage)
            sfn = _evaluated(asl[stage.name]["Parameters"], data, context)
            job_name = sfn.pop(name_field)
            assert re.fullmatch(r"[A-Za-z0-9](-*[A-Za-z0-9]){0,62}", job_name) and f"-{item.key}-" in job_name
            sfn["Tags"] = [t for t in sfn.get("Tags", []) if t["Key"] != "mlpipe:run-id"]
            copy_name = f"{stage.name}-{item.key}"
            step = sm[f"{copy_name}-CreateModel"] if stage.kind == "model" else sm[copy_name]
            pipeline = _unsuffixed(_canonical(copy.deepcopy(step["Arguments"]), ids, "sagemaker"), members, item.key)
            assert name_field not in pipeline
            differences = _differences(sfn, pipeline)
            assert not differences, f"{stage.name} for item {item.value}:\n  " + "\n  ".join(differences)
            compared += 1
    assert compared == 3 * 4, compared      # preprocess, train, evaluate, create-model for M, F and I
