"""Unit tests of the pure core in steps/: small inputs, small exact expected dicts and tuples.

In the style of the stepfunctions SDK's ``to_dict()`` tests. No subprocesses, no network, no
SDK imports: configs are small dicts validated in memory, stages are built from steps.spec.
"""

from __future__ import annotations

import copy
import hashlib
import io
import tarfile
from pathlib import Path

import pytest

from config.errors import ConfigError
from config.loader import validate_document
from steps import fanout, pipeline
from steps.assets import CODE_DIR
from steps.pipeline import build_spec
from steps.spec import (
    ApprovalStage,
    EndpointStage,
    GateStage,
    ItemRef,
    ModelStage,
    OutputRef,
    Parameter,
    ParamRef,
    PipelineSpec,
    ProcessingStage,
    RegisterStage,
    Stage,
    TrainingStage,
)

# The two helpers were private (_toposort, _gate_later_stages) before; accept either spelling.
toposort = getattr(pipeline, "toposort", None) or pipeline._toposort
gate_later_stages = getattr(pipeline, "gate_later_stages", None) or pipeline._gate_later_stages


# --- helpers ---------------------------------------------------------------------------------

def names(stages) -> tuple[str, ...]:
    return tuple(s.name for s in stages)


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


PREP = {"name": "prep", "kind": "processing", "inputs": {"data": "s3://demo-bucket/raw.csv"}}
TRAIN = {"name": "train", "kind": "training", "algorithm": {"name": "xgboost"}, "inputs": {"train": "prep.train"},
         "hyperparameters": {"num_round": 10}}
EVAL = {"name": "evaluate", "kind": "evaluation", "model": "train.model", "test": "prep.test"}
GATED_EVAL = {**EVAL, "gate": {"metric": "mse", "comparison": "<=", "threshold": 6.0}}
MODEL = {"name": "create-model", "kind": "model", "model": "train.model"}
REGISTER = {"name": "register", "kind": "register", "model": "create-model.model_name"}
APPROVE = {"name": "approve", "kind": "approval", "depends_on": ["register"]}
DEPLOY = {"name": "deploy", "kind": "endpoint", "model": "create-model.model_name", "depends_on": ["approve"]}
BATCH = {"name": "batch-score", "kind": "transform", "model": "create-model.model_name"}
RECORD = {"name": "record-model", "kind": "lambda", "payload": {"model_name": "create-model.model_name"}}

DEFAULT_INSTANCE = {"type": "ml.m5.xlarge", "count": 1, "volume_gb": 30, "max_runtime_seconds": 3600}
LARGE_INSTANCE = {**DEFAULT_INSTANCE, "type": "ml.m5.large"}
XGBOOST = {"kind": "algorithm", "name": "xgboost", "version": "1.7-1"}


def make_doc(*stages, data: dict | None = {"target": 0}, parameters: dict | None = None, **top) -> dict:
    doc = {
        "pipeline": {"name": "demo"},
        "aws": {"bucket": "demo-bucket", "prefix": "demo"},
        "stages": [copy.deepcopy(s) for s in stages],
    }
    if data is not None:
        doc["data"] = dict(data)
    if parameters:
        doc["parameters"] = parameters
    doc.update(top)
    return doc


def build(doc: dict, source: Path | None = None) -> PipelineSpec:
    config = validate_document(doc, "test.yaml")
    if source is not None:
        config._source = source
    return build_spec(config, env={})


def build_error(doc: dict, source: Path | None = None) -> ConfigError:
    config = validate_document(doc, "test.yaml")  # the schema accepts it; the build must not
    if source is not None:
        config._source = source
    with pytest.raises(ConfigError) as info:
        build_spec(config, env={})
    return info.value


# --- toposort --------------------------------------------------------------------------------

def test_toposort_follows_dependencies_not_declaration():
    stages = [
        ProcessingStage(name="c", depends_on=("b",)),
        ProcessingStage(name="b", inputs={"x": OutputRef("a", "out")}),
        ProcessingStage(name="a"),
    ]
    assert names(toposort(stages, None)) == ("a", "b", "c")


def test_toposort_keeps_declaration_order_among_ready_stages():
    stages = [ProcessingStage(name="zeta"), ProcessingStage(name="alpha"), ProcessingStage(name="mid")]
    assert names(toposort(stages, None)) == ("zeta", "alpha", "mid")


def test_toposort_prefers_declared_first_not_ready_first():
    # b is ready from the start, c only after a; c is declared before b, so c goes first
    stages = [ProcessingStage(name="a"), ProcessingStage(name="c", depends_on=("a",)), ProcessingStage(name="b")]
    assert names(toposort(stages, None)) == ("a", "c", "b")


def test_toposort_returns_the_same_stage_objects():
    a, b = ProcessingStage(name="a"), ProcessingStage(name="b", depends_on=("a",))
    result = toposort([b, a], None)
    assert isinstance(result, tuple)
    assert result[0] is a and result[1] is b


def test_toposort_puts_approval_and_its_downstream_last():
    stages = [
        ProcessingStage(name="prep"),
        RegisterStage(name="register", depends_on=("prep",)),
        ApprovalStage(name="approve", depends_on=("register",)),
        EndpointStage(name="deploy", depends_on=("approve",)),
        ProcessingStage(name="after-deploy", inputs={"x": OutputRef("deploy", "endpoint_name")}),
        ProcessingStage(name="batch", depends_on=("prep",)),
        ProcessingStage(name="record", depends_on=("register",)),
    ]
    assert names(toposort(stages, None)) == (
        "prep", "register", "batch", "record", "approve", "deploy", "after-deploy")


def test_toposort_holds_back_everything_downstream_of_any_approval():
    # deploy-a waits on approve-a; it ranks as held, so it does not jump ahead of approve-b,
    # which is declared before it
    stages = [
        ProcessingStage(name="prep"),
        ApprovalStage(name="approve-a", depends_on=("prep",)),
        ApprovalStage(name="approve-b", depends_on=("prep",)),
        EndpointStage(name="deploy-a", depends_on=("approve-a",)),
        ProcessingStage(name="batch", depends_on=("prep",)),
    ]
    assert names(toposort(stages, None)) == ("prep", "batch", "approve-a", "approve-b", "deploy-a")


def test_toposort_cycle_raises_config_error():
    stages = [
        ProcessingStage(name="a", depends_on=("b",)),
        ProcessingStage(name="b", inputs={"x": OutputRef("a", "out")}),
        ProcessingStage(name="free"),
        ProcessingStage(name="after", depends_on=("b",)),   # waits on the cycle, is not part of it
    ]
    with pytest.raises(ConfigError) as info:
        toposort(stages, "pipe.yaml")
    err = info.value
    assert (err.message, err.source, err.field, err.fix) == (
        "stages depend on each other in a cycle: a -> b -> a",
        "pipe.yaml", "stages", "remove one of the depends_on links")
    assert str(err) == ("pipe.yaml: stages: stages depend on each other in a cycle: a -> b -> a\n"
                        "  fix: remove one of the depends_on links")


def test_toposort_self_dependency_is_a_cycle():
    with pytest.raises(ConfigError) as info:
        toposort([ProcessingStage(name="a", depends_on=("a",))], None)
    assert info.value.message == "stages depend on each other in a cycle: a -> a"


# --- gate_later_stages -----------------------------------------------------------------------

def _gated_stages():
    return [
        ProcessingStage(name="prep"),
        TrainingStage(name="train", inputs={"train": OutputRef("prep", "train")}),
        GateStage(name="evaluate-gate", inputs={"evaluation": OutputRef("evaluate", "evaluation")}),
        ModelStage(name="create-model", inputs={"model_data": OutputRef("train", "model")}),
        RegisterStage(name="register", depends_on=("zeta",)),
        RegisterStage(name="audit", depends_on=("approve",)),
    ]


def test_gate_guards_every_later_stage():
    out = gate_later_stages(_gated_stages())
    assert [(s.name, s.depends_on) for s in out] == [
        ("prep", ()),
        ("train", ()),
        ("evaluate-gate", ()),
        ("create-model", ("evaluate-gate",)),
        ("register", ("evaluate-gate", "zeta")),   # merged and sorted
        ("audit", ("approve", "evaluate-gate")),
    ]
    assert out[3].upstream == ("evaluate-gate", "train")
    assert (out[3].kind, out[3].inputs) == ("model", {"model_data": OutputRef("train", "model")})


def test_gate_leaves_earlier_stages_and_itself_untouched():
    before = _gated_stages()
    out = gate_later_stages(before)
    assert out[0] is before[0] and out[1] is before[1] and out[2] is before[2]
    assert "evaluate-gate" not in out[2].depends_on


def test_gate_not_added_twice_when_already_upstream():
    stages = [GateStage(name="g"), ProcessingStage(name="p", depends_on=("g",)),
              ProcessingStage(name="q", inputs={"x": OutputRef("g", "passed")})]
    out = gate_later_stages(stages)
    assert out[1] is stages[1] and out[2] is stages[2]
    assert (out[1].depends_on, out[2].depends_on) == (("g",), ())


def test_without_a_gate_nothing_changes():
    stages = [ProcessingStage(name="a"), ProcessingStage(name="b", depends_on=("a",))]
    out = gate_later_stages(stages)
    assert len(out) == 2 and out[0] is stages[0] and out[1] is stages[1]


def test_later_gate_takes_over_and_gates_are_not_chained():
    stages = [GateStage(name="g1"), ProcessingStage(name="mid"), GateStage(name="g2"), ProcessingStage(name="end")]
    out = gate_later_stages(stages)
    assert [(s.name, s.depends_on) for s in out] == [
        ("g1", ()), ("mid", ("g1",)), ("g2", ()), ("end", ("g2",))]


# --- processing ------------------------------------------------------------------------------

# --- parallel_plan ---------------------------------------------------------------------------

def _plan(*edges_and_names):
    """Stages from "name" or ("name", "up1", "up2") entries, in dependency order."""
    stages = [ProcessingStage(name=e) if isinstance(e, str) else ProcessingStage(name=e[0], depends_on=tuple(e[1:]))
              for e in edges_and_names]
    return pipeline.parallel_plan(toposort(stages, None))


P = pipeline.Parallel


def test_parallel_plan_a_chain_stays_a_chain():
    assert _plan("a", ("b", "a"), ("c", "b")) == ("a", "b", "c")


def test_parallel_plan_diamond_runs_the_middle_at_once():
    assert _plan("a", ("b", "a"), ("c", "a"), ("d", "b", "c")) == ("a", P((("b",), ("c",))), "d")


def test_parallel_plan_branches_are_decomposed_again():
    # a -> b -> {c, d -> e}: the branch d -> e is a sequence inside the Parallel
    plan = _plan("a", ("b", "a"), ("c", "b"), ("d", "b"), ("e", "d"))
    assert plan == ("a", "b", P((("c",), ("d", "e"))))


def test_parallel_plan_independent_starts_and_nesting():
    plan = _plan("x", "y", ("z", "y"), ("w", "z"), ("v", "z"))
    assert plan == (P((("x",), ("y", "z", P((("w",), ("v",)))))),)


def test_parallel_plan_n_shape_splits_where_the_plan_is_shortest():
    # a->c, b->c, b->d is not series-parallel: split in dependency order, at the shortest plan
    plan = _plan("a", "b", ("c", "a", "b"), ("d", "b"))
    assert plan == (P((("a",), ("b",))), P((("c",), ("d",))))
    assert pipeline.length(plan) == 2


def test_parallel_plan_a_gate_is_a_cut():
    stages = toposort(gate_later_stages([
        ProcessingStage(name="train"), ProcessingStage(name="eval", depends_on=("train",)),
        GateStage(name="gate", depends_on=("eval",)), ProcessingStage(name="a"), ProcessingStage(name="b")]), None)
    assert pipeline.parallel_plan(stages) == ("train", "eval", "gate", P((("a",), ("b",))))


def test_ancestry_is_transitive():
    stages = toposort([ProcessingStage(name="a"), ProcessingStage(name="b", depends_on=("a",)),
                       ProcessingStage(name="c", depends_on=("b",))], None)
    assert pipeline.ancestry(stages) == {"a": set(), "b": {"a"}, "c": {"a", "b"}}


def test_processing_builtin_to_dict():
    spec = build(make_doc(
        {**PREP, "instance_count": "$Count"}, TRAIN,
        parameters={"Count": {"type": "Integer", "default": 2}}))
    code = CODE_DIR / "preprocess.py"
    digest = sha(code)
    assert spec.stage("prep").to_dict() == {
        "name": "prep",
        "kind": "processing",
        "inputs": {"data": "s3://demo-bucket/raw.csv"},
        "outputs": ["train", "validation", "test"],
        "depends_on": [],
        "code": {"name": "preprocess.py", "entry": "preprocess.py", "sha256": digest,
                 "uri": f"s3://demo-bucket/demo/assets/{digest[:16]}/preprocess.py"},
        "image": {"kind": "framework", "name": "sklearn", "version": "1.2-1"},
        "instance": {**DEFAULT_INSTANCE, "count": "$Count"},
        "arguments": ["--target", "0", "--problem-type", "regression", "--train-ratio", "0.7",
                      "--validation-ratio", "0.15", "--test-ratio", "0.15", "--seed", "42"],
        "upstream": [],
    }
    assert spec.stage("prep").instance.count == ParamRef("Count")


def test_processing_builtin_arguments_from_full_data_section():
    data = {"target": "rings", "header": True, "delimiter": ";", "categorical": ["sex", 2],
            "column_names": ["sex", "len", "rings"], "problem_type": "classification",
            "split": [0.8, 0.1, 0.1], "seed": 7}
    spec = build(make_doc({**PREP, "arguments": ["--extra", "1"]}, TRAIN, data=data))
    assert spec.stage("prep").arguments == (
        "--target", "rings", "--problem-type", "classification", "--header",
        "--delimiter", ";", "--categorical", "sex", "2", "--column-names", "sex,len,rings",
        "--train-ratio", "0.8", "--validation-ratio", "0.1", "--test-ratio", "0.1", "--seed", "7",
        "--extra", "1")


def test_processing_no_header_flag():
    spec = build(make_doc(PREP, TRAIN, data={"target": 8, "header": False}))
    assert spec.stage("prep").arguments[:5] == ("--target", "8", "--problem-type", "regression", "--no-header")


def test_processing_without_data_section_passes_only_own_arguments():
    spec = build(make_doc({**PREP, "arguments": ["--x", "y"]}, TRAIN, data=None))
    assert spec.stage("prep").arguments == ("--x", "y")
    assert spec.data == {}


def test_processing_custom_script_is_content_addressed_and_gets_no_builtin_arguments(tmp_path):
    script = tmp_path / "my_prep.py"
    script.write_text("print('v1')\n")
    doc = make_doc({**PREP, "code": "my_prep.py", "arguments": ["--a"]}, TRAIN)
    first = build(doc, source=tmp_path / "pipe.yaml").stage("prep")
    digest = hashlib.sha256(b"print('v1')\n").hexdigest()
    assert first.arguments == ("--a",)
    assert (first.code.name, first.code.entry, first.code.sha256, first.code.key, first.code.archive) == (
        "my_prep.py", script, digest, f"demo/assets/{digest[:16]}/my_prep.py", False)

    script.write_text("print('v2')\n")
    second = build(doc, source=tmp_path / "pipe.yaml").stage("prep")
    assert second.code.key != first.code.key and second.code.name == "my_prep.py"


def test_processing_missing_script_names_the_field(tmp_path):
    err = build_error(make_doc({**PREP, "code": "builtin:nope"}, TRAIN), source=tmp_path / "pipe.yaml")
    assert (err.field, err.source) == ("stages[0](prep).code", str(tmp_path / "pipe.yaml"))
    assert err.message == f"script 'builtin:nope' not found ({CODE_DIR / 'nope.py'})"
    assert "builtin:preprocess" in err.fix


# --- training --------------------------------------------------------------------------------

def test_training_xgboost_to_dict():
    train = {**TRAIN, "inputs": {"train": "prep.train", "validation": "$Val"},
             "hyperparameters": {"num_round": 50, "eta": 0.2, "objective": "reg:squarederror"},
             "output_path": "s3://demo-bucket/models"}
    spec = build(make_doc(PREP, train, parameters={"Val": {"type": "String", "default": "s3://demo-bucket/v"}}))
    assert spec.stage("train").to_dict() == {
        "name": "train",
        "kind": "training",
        "inputs": {"train": "prep.train", "validation": "$Val"},
        "outputs": ["model"],
        "depends_on": [],
        "image": XGBOOST,
        "instance": DEFAULT_INSTANCE,
        "hyperparameters": {"num_round": 50, "eta": 0.2, "objective": "reg:squarederror"},
        "entry_point": None,
        "content_type": "text/csv",
        "output_path": "s3://demo-bucket/models",
        "checkpoint_path": None,
        "upstream": ["prep"],
    }
    assert spec.stage("train").inputs == {"train": OutputRef("prep", "train"), "validation": ParamRef("Val")}


def test_training_pytorch_framework_entry_point_is_a_content_addressed_tarball():
    train = {"name": "train", "kind": "training", "framework": {"name": "pytorch"},
             "instance_type": "ml.g5.xlarge", "inputs": {"train": "prep.train"}}
    stage = build(make_doc(PREP, train)).stage("train")
    assert stage.image.__dict__ == {"kind": "framework", "name": "pytorch", "version": "2.1", "py_version": "py310"}
    ep = stage.entry_point
    assert (ep.name, ep.entry.name, ep.archive, tuple(p.name for p in ep.extra)) == (
        "sourcedir.tar.gz", "train_pytorch.py", True, ("inference_pytorch.py",))
    assert ep.sha256 == hashlib.sha256(ep.content()).hexdigest()
    assert ep.key == f"demo/assets/{ep.sha256[:16]}/sourcedir.tar.gz"
    assert ep.uri == f"s3://demo-bucket/{ep.key}"
    with tarfile.open(fileobj=io.BytesIO(ep.content())) as tar:
        assert tar.getnames() == ["inference_pytorch.py", "train_pytorch.py"]
    # deterministic: a second build gives the same bytes, so the same key
    assert build(make_doc(PREP, train)).stage("train").entry_point.key == ep.key


def test_training_missing_entry_point_names_the_field():
    train = {"name": "train", "kind": "training", "framework": {"name": "pytorch", "entry_point": "nope.py"},
             "inputs": {"train": "prep.train"}}
    err = build_error(make_doc(PREP, train))
    assert err.field == "stages[1](train).framework.entry_point"
    assert err.message.startswith("script 'nope.py' not found")


# --- evaluation ------------------------------------------------------------------------------

def test_evaluation_and_gate_to_dict():
    spec = build(make_doc(PREP, TRAIN, GATED_EVAL))
    digest = sha(CODE_DIR / "evaluate.py")
    assert names(spec) == ("prep", "train", "evaluate", "evaluate-gate")
    assert spec.stage("evaluate").to_dict() == {
        "name": "evaluate",
        "kind": "evaluation",
        "inputs": {"model": "train.model", "test": "prep.test"},
        "outputs": ["evaluation"],
        "depends_on": [],
        "code": {"name": "evaluate.py", "entry": "evaluate.py", "sha256": digest,
                 "uri": f"s3://demo-bucket/demo/assets/{digest[:16]}/evaluate.py"},
        "image": XGBOOST,
        "instance": DEFAULT_INSTANCE,
        "problem_type": "regression",
        "upstream": ["prep", "train"],
    }
    assert spec.stage("evaluate-gate").to_dict() == {
        "name": "evaluate-gate",
        "kind": "gate",
        "inputs": {"evaluation": "evaluate.evaluation"},
        "outputs": ["passed"],
        "depends_on": [],
        "metric": "mse",
        "comparison": "<=",
        "threshold": 6.0,
        "upstream": ["evaluate"],
    }


def test_evaluation_without_gate_builds_one_stage():
    spec = build(make_doc(PREP, TRAIN, EVAL))
    assert names(spec) == ("prep", "train", "evaluate")
    with pytest.raises(KeyError):
        spec.stage("evaluate-gate")


def test_evaluation_of_a_model_stage_uses_the_training_artifact_and_image():
    train = {"name": "train", "kind": "training", "framework": {"name": "pytorch"}, "inputs": {"train": "prep.train"}}
    spec = build(make_doc(PREP, train, MODEL, {**EVAL, "model": "create-model.model_name"}))
    ev = spec.stage("evaluate")
    assert ev.inputs == {"model": OutputRef("train", "model"), "test": OutputRef("prep", "test")}
    assert ev.image == spec.stage("train").image
    assert ev.to_dict()["image"] == {"kind": "framework", "name": "pytorch", "version": "2.1", "py_version": "py310"}


def test_classification_gate():
    ev = {**EVAL, "gate": {"metric": "auc", "comparison": ">", "threshold": 0.75}}
    spec = build(make_doc(PREP, TRAIN, ev, data={"target": 0, "problem_type": "classification"}))
    gate = spec.stage("evaluate-gate")
    assert spec.stage("evaluate").problem_type == "classification"
    assert (gate.metric, gate.comparison, gate.threshold, gate.json_path) == (
        "auc", ">", 0.75, "classification_metrics.auc.value")


@pytest.mark.parametrize("metric, problem", [("mse", "classification"), ("accuracy", "regression")])
def test_gate_metric_must_fit_the_problem_type(metric, problem):
    ev = {**EVAL, "gate": {"metric": metric, "comparison": "<=", "threshold": 1}}
    err = build_error(make_doc(PREP, TRAIN, ev, data={"target": 0, "problem_type": problem}))
    assert (err.field, err.message) == (
        "stages[2](evaluate).gate.metric", f"metric {metric!r} does not fit a {problem} problem")
    assert err.fix == "regression: mse, rmse, mae, r2; classification: accuracy, auc, f1"


def test_gate_metric_without_data_section_means_regression():
    ev = {**EVAL, "gate": {"metric": "f1", "comparison": ">=", "threshold": 0.5}}
    err = build_error(make_doc(PREP, TRAIN, ev, data=None))
    assert err.message == "metric 'f1' does not fit a regression problem"


def test_evaluation_referring_to_a_later_stage():
    err = build_error(make_doc(PREP, EVAL, TRAIN))
    assert (err.field, err.message, err.fix) == (
        "stages[1](evaluate).model", "'train' must come before this stage",
        "reorder the stages so producers come first")


def test_evaluation_referring_to_the_wrong_kind():
    err = build_error(make_doc(PREP, TRAIN, {**EVAL, "model": "prep.train"}))
    assert (err.field, err.message) == (
        "stages[2](evaluate).model", "'prep' is a processing stage; expected model/training")


def test_gate_name_avoids_a_declared_stage_of_that_name():
    spec = build(make_doc(PREP, TRAIN, GATED_EVAL, {**MODEL, "name": "evaluate-gate"}))
    gates = [s.name for s in spec.stages if s.kind == "gate"]
    assert len(gates) == 1 and gates[0] != "evaluate-gate" and gates[0].endswith("-gate")
    assert len(gates[0]) <= 24 and spec.stage("evaluate-gate").kind == "model"


def test_gate_of_a_24_character_evaluation_name_builds():
    long_name = "evaluate-the-model-abcde"
    assert len(long_name) == 24
    spec = build(make_doc(PREP, TRAIN, {**GATED_EVAL, "name": long_name}))
    assert len(spec.stages) == 4


# --- model -----------------------------------------------------------------------------------

def test_model_to_dict():
    spec = build(make_doc(PREP, TRAIN, MODEL))
    assert spec.stage("create-model").to_dict() == {
        "name": "create-model",
        "kind": "model",
        "inputs": {"model_data": "train.model"},
        "outputs": ["model_name"],
        "depends_on": [],
        "image": XGBOOST,
        "instance": LARGE_INSTANCE,
        "upstream": ["train"],
    }
    assert spec.stage("create-model").inputs == {"model_data": OutputRef("train", "model")}


def test_model_after_a_gate_depends_on_the_gate():
    spec = build(make_doc(PREP, TRAIN, GATED_EVAL, MODEL))
    assert spec.stage("create-model").depends_on == ("evaluate-gate",)
    assert spec.stage("create-model").upstream == ("evaluate-gate", "train")


def test_model_referring_to_the_wrong_kind():
    err = build_error(make_doc(PREP, TRAIN, {**MODEL, "model": "prep.train"}))
    assert (err.field, err.message) == (
        "stages[2](create-model).model", "'prep' is a processing stage; expected training")


def test_model_referring_to_a_later_training_stage():
    err = build_error(make_doc(PREP, MODEL, TRAIN))
    assert (err.field, err.message) == ("stages[1](create-model).model", "'train' must come before this stage")


# --- register --------------------------------------------------------------------------------

def test_register_to_dict_defaults():
    spec = build(make_doc(PREP, TRAIN, MODEL, REGISTER))
    assert spec.stage("register").to_dict() == {
        "name": "register",
        "kind": "register",
        "inputs": {"model": "create-model.model_name", "model_data": "train.model",
                   "approval_status": "PendingManualApproval"},
        "outputs": ["model_package_arn"],
        "depends_on": [],
        "model_package_group": "mlpipe-demo",
        "image": XGBOOST,
        "content_types": ["text/csv"],
        "response_types": ["text/csv"],
        "inference_instances": ["ml.m5.large"],
        "transform_instances": ["ml.m5.large"],
        "upstream": ["create-model", "train"],
    }


def test_register_with_evaluation_parameter_status_and_own_group():
    reg = {**REGISTER, "approval_status": "$Status", "model_package_group": "my-group"}
    spec = build(make_doc(PREP, TRAIN, GATED_EVAL, MODEL, reg,
                          parameters={"Status": {"type": "String", "default": "Approved"}}))
    stage = spec.stage("register")
    assert stage.inputs == {"model": OutputRef("create-model", "model_name"), "model_data": OutputRef("train", "model"),
                            "approval_status": ParamRef("Status"), "metrics": OutputRef("evaluate", "evaluation")}
    assert (stage.model_package_group, stage.depends_on) == ("my-group", ("evaluate-gate",))


def test_register_referring_to_a_training_stage():
    err = build_error(make_doc(PREP, TRAIN, {**REGISTER, "model": "train.model"}))
    assert (err.field, err.message) == ("stages[2](register).model", "'train' is a training stage; expected model")


# --- approval --------------------------------------------------------------------------------

def test_approval_wiring_and_notification_emails():
    spec = build(make_doc(PREP, TRAIN, GATED_EVAL, MODEL, REGISTER, APPROVE,
                          notifications={"emails": ["ops@example.com"]}))
    assert spec.stage("approve").to_dict() == {
        "name": "approve",
        "kind": "approval",
        "inputs": {"model_package": "register.model_package_arn", "model": "create-model.model_name",
                   "metrics": "evaluate.evaluation"},
        "outputs": ["decision"],
        "depends_on": ["evaluate-gate", "register"],
        "timeout_seconds": 86400,
        "emails": ["ops@example.com"],
        "upstream": ["create-model", "evaluate", "evaluate-gate", "register"],
    }


def test_approval_own_emails_and_timeout_win():
    approve = {**APPROVE, "emails": ["me@example.com"], "timeout_seconds": 600}
    stage = build(make_doc(PREP, TRAIN, MODEL, REGISTER, approve,
                           notifications={"emails": ["ops@example.com"]})).stage("approve")
    assert (stage.emails, stage.timeout_seconds) == (("me@example.com",), 600)
    assert stage.inputs == {"model_package": OutputRef("register", "model_package_arn"),
                            "model": OutputRef("create-model", "model_name")}


def test_approval_after_evaluation_only():
    stage = build(make_doc(PREP, TRAIN, EVAL, {"name": "approve", "kind": "approval"})).stage("approve")
    assert stage.inputs == {"metrics": OutputRef("evaluate", "evaluation")}
    assert stage.emails == ()


def test_approval_needs_a_register_or_evaluation_before_it():
    err = build_error(make_doc(PREP, TRAIN, {"name": "approve", "kind": "approval"}))
    assert (err.field, err.message) == (
        "stages[2](approve)", "an approval stage needs a register or evaluation stage before it")


# --- endpoint --------------------------------------------------------------------------------

def test_endpoint_to_dict_defaults():
    spec = build(make_doc(PREP, TRAIN, MODEL, {**DEPLOY, "depends_on": []}))
    assert spec.stage("deploy").to_dict() == {
        "name": "deploy",
        "kind": "endpoint",
        "inputs": {"model": "create-model.model_name"},
        "outputs": ["endpoint_name"],
        "depends_on": [],
        "endpoint_name": "mlpipe-demo",
        "instance": LARGE_INSTANCE,
        "data_capture": True,
        "sampling_percentage": 100,
        "monitoring_schedule": None,        # no `monitoring:` section
        "monitoring_instance": None,
        "upstream": ["create-model"],
    }
    assert spec.stage("deploy").inputs == {"model": OutputRef("create-model", "model_name")}


def test_endpoint_own_name_capture_and_parameter_count():
    deploy = {"name": "deploy", "kind": "endpoint", "model": "create-model.model_name", "endpoint_name": "prod-ep",
              "instance_count": "$Hosts", "data_capture": {"enabled": False, "sampling_percentage": 5}}
    stage = build(make_doc(PREP, TRAIN, MODEL, deploy,
                           parameters={"Hosts": {"type": "Integer", "default": 2}})).stage("deploy")
    assert (stage.endpoint_name, stage.data_capture, stage.sampling_percentage) == ("prod-ep", False, 5)
    assert stage.to_dict()["instance"] == {**LARGE_INSTANCE, "count": "$Hosts"}


def test_endpoint_referring_to_a_later_model():
    deploy = {"name": "deploy", "kind": "endpoint", "model": "create-model.model_name"}
    err = build_error(make_doc(PREP, TRAIN, deploy, MODEL))
    assert (err.field, err.message) == ("stages[2](deploy).model", "'create-model' must come before this stage")


# --- transform -------------------------------------------------------------------------------

def test_transform_to_dict_default_input_parameter():
    spec = build(make_doc(PREP, TRAIN, MODEL, BATCH,
                          parameters={"BatchData": {"type": "String", "default": "s3://demo-bucket/batch.csv"}}))
    assert spec.stage("batch-score").to_dict() == {
        "name": "batch-score",
        "kind": "transform",
        "inputs": {"model": "create-model.model_name", "data": "$BatchData"},
        "outputs": ["predictions"],
        "depends_on": [],
        "instance": LARGE_INSTANCE,
        "content_type": "text/csv",
        "upstream": ["create-model"],
    }
    assert spec.stage("batch-score").inputs == {"model": OutputRef("create-model", "model_name"),
                                                "data": ParamRef("BatchData")}


def test_transform_literal_input_stays_literal():
    batch = {**BATCH, "input": "s3://demo-bucket/batch.csv", "content_type": "application/json"}
    stage = build(make_doc(PREP, TRAIN, MODEL, batch)).stage("batch-score")
    assert stage.inputs == {"model": OutputRef("create-model", "model_name"), "data": "s3://demo-bucket/batch.csv"}
    assert (stage.content_type, stage.upstream) == ("application/json", ("create-model",))


def test_transform_referring_to_a_training_stage():
    batch = {**BATCH, "model": "train.model", "input": "s3://demo-bucket/batch.csv"}
    err = build_error(make_doc(PREP, TRAIN, batch))
    assert (err.field, err.message) == ("stages[2](batch-score).model", "'train' is a training stage; expected model")


# --- lambda ----------------------------------------------------------------------------------

def test_lambda_to_dict_defaults():
    spec = build(make_doc(PREP, TRAIN, MODEL, RECORD))
    assert spec.stage("record-model").to_dict() == {
        "name": "record-model",
        "kind": "lambda",
        "inputs": {"model_name": "create-model.model_name"},
        "outputs": ["result"],
        "depends_on": [],
        "function_name": "mlpipe-demo-record-model",
        "handler": "lambda_handlers.register_model_name.handler",
        "environment": {},
        "timeout_seconds": 30,
        "memory_mb": 256,
        "upstream": ["create-model"],
    }


def test_lambda_own_function_name_environment_and_limits():
    record = {**RECORD, "function_name": "my-fn", "environment": {"PARAMETER_NAME": "/mlpipe/demo/model"},
              "timeout_seconds": 60, "memory_mb": 512, "payload": {"model_name": "create-model.model_name",
                                                                    "note": "$Note"}}
    stage = build(make_doc(PREP, TRAIN, MODEL, record,
                           parameters={"Note": {"type": "String", "default": "x"}})).stage("record-model")
    assert (stage.function_name, dict(stage.environment), stage.timeout_seconds, stage.memory_mb) == (
        "my-fn", {"PARAMETER_NAME": "/mlpipe/demo/model"}, 60, 512)
    assert stage.inputs == {"model_name": OutputRef("create-model", "model_name"), "note": ParamRef("Note")}


@pytest.mark.parametrize("handler", ["os.path.join", "lambda_handlers.nope.handler", "lambda_handlers",
                                     "lambda_handlers.register_model_name.nofunc"])
def test_lambda_handler_must_be_in_lambda_handlers(handler):
    err = build_error(make_doc(PREP, TRAIN, MODEL, {**RECORD, "handler": handler}))
    assert (err.field, err.message, err.fix) == (
        "stages[3](record-model).handler", f"handler {handler!r} is not a function in lambda_handlers/",
        "e.g. lambda_handlers.register_model_name.handler")


def test_lambda_handler_in_a_missing_subpackage_is_a_config_error():
    handler = "lambda_handlers.nope.deeper.handler"
    err = build_error(make_doc(PREP, TRAIN, MODEL, {**RECORD, "handler": handler}))
    assert err.field == "stages[3](record-model).handler"


# --- baseline --------------------------------------------------------------------------------

PREP_WITH_BASELINE = {**PREP, "outputs": ["train", "validation", "test", "baseline"]}
BASELINE = {"name": "data-baseline", "kind": "baseline", "data": "prep.baseline"}


def test_baseline_to_dict_defaults():
    spec = build(make_doc(PREP_WITH_BASELINE, BASELINE))
    assert spec.stage("data-baseline").to_dict() == {
        "name": "data-baseline",
        "kind": "baseline",
        "inputs": {"data": "prep.baseline"},
        "outputs": ["statistics", "constraints"],
        "depends_on": [],
        "instance": DEFAULT_INSTANCE,
        "header": False,
        "upstream": ["prep"],
    }
    assert spec.stage("data-baseline").inputs == {"data": OutputRef("prep", "baseline")}
    assert spec.stage("prep").arguments[-1] == "--baseline"  # the producer writes the features-only file


def test_baseline_parameter_data_header_and_own_instance():
    base = {**BASELINE, "data": "$Sample", "header": True, "instance_type": "ml.m5.large", "instance_count": 2,
            "depends_on": ["prep"]}
    stage = build(make_doc(PREP_WITH_BASELINE, base, parameters={
        "Sample": {"type": "String", "default": "s3://demo-bucket/sample.csv"}})).stage("data-baseline")
    assert stage.inputs == {"data": ParamRef("Sample")}
    assert (stage.header, stage.depends_on, stage.upstream) == (True, ("prep",), ("prep",))
    assert stage.to_dict()["instance"] == {**LARGE_INSTANCE, "count": 2}


# --- the whole spec --------------------------------------------------------------------------

def test_built_spec_order_gates_and_approval_last():
    params = {"BatchData": {"type": "String", "default": "s3://demo-bucket/batch.csv"}}
    spec = build(make_doc(PREP, TRAIN, GATED_EVAL, MODEL, REGISTER, APPROVE, DEPLOY, BATCH,
                          {**RECORD, "depends_on": ["register"]}, parameters=params))
    assert names(spec) == ("prep", "train", "evaluate", "evaluate-gate", "create-model", "register",
                           "batch-score", "record-model", "approve", "deploy")
    assert {s.name: s.depends_on for s in spec} == {
        "prep": (), "train": (), "evaluate": (), "evaluate-gate": (),
        "create-model": ("evaluate-gate",), "register": ("evaluate-gate",),
        "batch-score": ("evaluate-gate",), "record-model": ("evaluate-gate", "register"),
        "approve": ("evaluate-gate", "register"), "deploy": ("approve", "evaluate-gate"),
    }
    assert spec.downstream("approve") == ("deploy",)
    assert spec.downstream("evaluate-gate") == (
        "create-model", "register", "batch-score", "record-model", "approve", "deploy")


def test_spec_defaults_region_from_env_and_placeholder_account():
    config = validate_document(make_doc(PREP, TRAIN), "test.yaml")
    spec = build_spec(config, env={"AWS_REGION": "eu-west-1"})
    assert (spec.region, spec.account_id, spec.s3_root, spec.source) == (
        "eu-west-1", "000000000000", "s3://demo-bucket/demo", None)
    assert build_spec(config, env={}).region == "us-east-1"


# --- PipelineSpec.downstream, Stage.upstream --------------------------------------------------

def _spec(*stages) -> PipelineSpec:
    return PipelineSpec(name="p", description="", region="us-east-1", account_id="000000000000",
                        bucket="b", prefix="", roles={}, tags={}, parameters=(), stages=stages, data={})


def test_downstream_is_transitive_in_stage_order():
    spec = _spec(
        ProcessingStage(name="a"),
        ProcessingStage(name="b", inputs={"x": OutputRef("a", "out")}),
        ProcessingStage(name="d"),
        ProcessingStage(name="c", depends_on=("b",)),
        ProcessingStage(name="e", depends_on=("d",)),
        ProcessingStage(name="f", inputs={"x": OutputRef("c", "out"), "y": OutputRef("e", "out")}),
    )
    assert spec.downstream("a") == ("b", "c", "f")
    assert spec.downstream("d") == ("e", "f")
    assert spec.downstream("f") == ()
    assert spec.downstream("unknown") == ()


def test_upstream_merges_output_refs_and_depends_on_sorted_and_unique():
    stage = Stage(name="s", inputs={"m": OutputRef("train", "model"), "p": ParamRef("Count"),
                                    "lit": "s3://b/k", "t": OutputRef("prep", "test"),
                                    "v": OutputRef("prep", "validation")},
                  depends_on=("zeta", "train"))
    assert stage.upstream == ("prep", "train", "zeta")
    assert Stage(name="lonely").upstream == ()


def test_stage_to_dict_plain_values():
    stage = GateStage(name="g", inputs={"evaluation": OutputRef("ev", "evaluation"), "p": ParamRef("X")},
                      depends_on=("a",), metric="r2", comparison=">=", threshold=0.5)
    assert stage.to_dict() == {"name": "g", "kind": "gate", "inputs": {"evaluation": "ev.evaluation", "p": "$X"},
                               "outputs": [], "depends_on": ["a"], "metric": "r2", "comparison": ">=",
                               "threshold": 0.5, "upstream": ["a", "ev"]}


# --- GateStage -------------------------------------------------------------------------------

@pytest.mark.parametrize("comparison, results", [
    ("<=", (True, True, False)),
    ("<", (True, False, False)),
    (">=", (False, True, True)),
    (">", (False, False, True)),
])
def test_gate_passes(comparison, results):
    gate = GateStage(name="g", metric="mse", comparison=comparison, threshold=6.0)
    assert (gate.passes(5.9), gate.passes(6.0), gate.passes(6.1)) == results


def test_gate_describe_and_json_path():
    assert GateStage(name="g", metric="mse", comparison="<=", threshold=6.0).describe() == "mse <= 6"
    assert GateStage(name="g", metric="auc", comparison=">", threshold=0.75).describe() == "auc > 0.75"
    assert GateStage(name="g", metric="rmse").json_path == "regression_metrics.rmse.value"
    assert GateStage(name="g").kind == "gate"


# --- Parameter.coerce ------------------------------------------------------------------------

@pytest.mark.parametrize("type_, raw, expected", [
    ("Integer", "3", 3),
    ("Integer", 4.0, 4),
    ("Integer", 7, 7),
    ("Float", "0.5", 0.5),
    ("Float", 2, 2.0),
    ("Boolean", "TRUE", True),
    ("Boolean", "false", False),
    ("Boolean", True, True),
    ("String", 5, "5"),
    ("String", "abc", "abc"),
])
def test_parameter_coerce_good_values(type_, raw, expected):
    value = Parameter("P", type_, None).coerce(raw)
    assert value == expected and type(value) is type(expected)


@pytest.mark.parametrize("type_, raw, message", [
    ("Integer", True, "True is not an integer"),
    ("Integer", 2.5, "2.5 is not an integer"),
    ("Integer", "1.5", "invalid literal for int() with base 10: '1.5'"),
    ("Float", False, "False is not a number"),
    ("Float", "abc", "could not convert string to float: 'abc'"),
    ("Boolean", "yes", "'yes' is not true or false"),
    ("Boolean", 1, "1 is not true or false"),
])
def test_parameter_coerce_bad_values(type_, raw, message):
    with pytest.raises(ValueError) as info:
        Parameter("P", type_, None).coerce(raw)
    assert str(info.value) == message


def test_parameter_coerce_allowed_values():
    status = Parameter("Status", "String", "Pending", allowed=("Pending", "Approved"))
    assert status.coerce("Approved") == "Approved"
    with pytest.raises(ValueError) as info:
        status.coerce("Maybe")
    assert str(info.value) == "'Maybe' is not one of Pending, Approved"
    count = Parameter("Count", "Integer", 1, allowed=(1, 2))
    assert count.coerce("2") == 2
    with pytest.raises(ValueError, match=r"^3 is not one of 1, 2$"):
        count.coerce("3")


def test_parameter_coerce_none_is_a_value_error():
    with pytest.raises(ValueError):
        Parameter("P", "Integer", 1).coerce(None)


# --- references refuse to become strings -----------------------------------------------------

@pytest.mark.parametrize("ref", [OutputRef("train", "model"), ParamRef("Count")])
def test_reference_refuses_str_and_format(ref):
    with pytest.raises(TypeError, match="is a pipeline reference, not a string"):
        str(ref)
    with pytest.raises(TypeError, match="is a pipeline reference, not a string"):
        f"{ref}"
    with pytest.raises(TypeError):
        "s3://b/{}".format(ref)
    with pytest.raises(TypeError, match="is a pipeline reference, not a string"):
        f"{ref:>10}"


def test_reference_repr_and_request():
    assert repr(OutputRef("train", "model")) == "OutputRef(stage='train', output='model')"
    assert OutputRef("a", "b") == OutputRef("a", "b") and hash(ParamRef("X")) == hash(ParamRef("X"))


# --- tuning ---------------------------------------------------------------------------------

TUNE = {"name": "tune", "kind": "tuning", "training": "train", "objective": {"metric": "validation:rmse",
        "type": "Minimize"}, "strategy": "Random", "max_jobs": 4, "max_parallel_jobs": 2, "random_seed": 3,
        "ranges": {"eta": {"type": "continuous", "min": 0.1, "max": 0.3},
                   "max_depth": {"type": "integer", "min": 3, "max": 6, "scaling": "Linear"}}}
TRAIN_VALIDATED = {**TRAIN, "inputs": {"train": "prep.train", "validation": "prep.validation"}}


def test_tuning_replaces_its_training_stage_and_takes_its_consumers():
    spec = build(make_doc(PREP, TRAIN_VALIDATED, TUNE, GATED_EVAL, MODEL))
    assert [s.name for s in spec.stages] == ["prep", "tune", "evaluate", "evaluate-gate", "create-model"]
    tune = spec.stage("tune")
    assert tune.training.name == "train" and tune.image.name == "xgboost" and tune.outputs == ("model",)
    assert tune.inputs == {"train": OutputRef("prep", "train"), "validation": OutputRef("prep", "validation")}
    assert spec.stage("evaluate").inputs["model"] == OutputRef("tune", "model")
    assert spec.stage("create-model").inputs == {"model_data": OutputRef("tune", "model")}
    d = tune.to_dict()
    assert {k: d[k] for k in ("objective_metric", "objective_type", "strategy", "max_jobs", "max_parallel_jobs",
                              "early_stopping", "random_seed")} == {
        "objective_metric": "validation:rmse", "objective_type": "Minimize", "strategy": "Random", "max_jobs": 4,
        "max_parallel_jobs": 2, "early_stopping": "Off", "random_seed": 3}
    assert d["ranges"] == [
        {"name": "eta", "type": "continuous", "min": 0.1, "max": 0.3, "values": [], "scaling": "Auto"},
        {"name": "max_depth", "type": "integer", "min": 3, "max": 6, "values": [], "scaling": "Linear"}]
    assert d["training"]["name"] == "train" and d["training"]["hyperparameters"] == {"num_round": 10}


def test_disabled_tuning_builds_nothing_and_training_runs_as_is():
    spec = build(make_doc(PREP, TRAIN_VALIDATED, {**TUNE, "enabled": False}, GATED_EVAL))
    assert [s.name for s in spec.stages] == ["prep", "train", "evaluate", "evaluate-gate"]
    assert spec.stage("evaluate").inputs["model"] == OutputRef("train", "model")


# --- fan-out ---------------------------------------------------------------------------------

BY_SEX = {"name": "by-sex", "column": "sex", "values": ["M", "F"], "stages": ["prep", "train", "create-model",
                                                                              "register"]}
SEX_DATA = {"target": 1, "categorical": [0], "column_names": ["sex", "rings"]}


def test_fanout_to_dict_and_member_stages():
    spec = build(make_doc(PREP, TRAIN, MODEL, REGISTER, data=SEX_DATA, foreach=BY_SEX))
    assert spec.to_dict()["fanout"] == {
        "name": "by-sex",
        "stages": ["prep", "train", "create-model", "register"],
        "source": "values",
        "items": [{"value": "M", "key": "m", "package_groups": {"register": "mlpipe-demo-m"}},
                  {"value": "F", "key": "f", "package_groups": {"register": "mlpipe-demo-f"}}],
        "column": "sex",
        "registry": "group_per_item",
        "tolerated_failure_percentage": 0,
        "max_concurrency": 0,
        "copies": {},
    }
    assert names(spec) == ("prep", "train", "create-model", "register")   # one group, not yet copied
    assert spec.stage("prep").arguments[-4:] == ("--filter-column", "sex", "--filter-value", ItemRef())


def test_fanout_expand_copies_the_group_once_per_item():
    spec = fanout.expand(build(make_doc(PREP, TRAIN, MODEL, REGISTER, data=SEX_DATA, foreach=BY_SEX)))
    assert names(spec) == ("prep-m", "prep-f", "train-m", "train-f", "create-model-m", "create-model-f",
                           "register-m", "register-f")
    assert spec.fanout.copies["train-f"] == ("train", "f")
    assert spec.stage("prep-f").arguments[-4:] == ("--filter-column", "sex", "--filter-value", "F")
    assert spec.stage("register-f").inputs == {"model": OutputRef("create-model-f", "model_name"),
                                               "model_data": OutputRef("train-f", "model"),
                                               "approval_status": "PendingManualApproval"}
    assert spec.stage("register-f").model_package_group == "mlpipe-demo-f"
