"""`mlpipe build`: offline, deterministic, statelint-clean, pinned by golden files, and the two
targets agree stage by stage."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
from asl_eval import evaluate
from conftest import (
    EXAMPLES, GOLDEN, ROOT, all_steps, changed_config, check_golden, mask_hashes, run_cli, stage_named, statelint,
)

from steps import pipeline
from steps.assets import CODE_DIR
from steps.pipeline import load_spec
from workflows.render import PIPELINE_FILE, STATE_MACHINE_FILE, render
from workflows.render.asl import states as asl_states, walk as asl_walk

CONFIGS = ["abalone", "bsm_pytorch", "quickstart", "abalone_monitored", "abalone_by_sex"]
CLEAN_ENV = {k: "" for k in ("MLPIPE_AWS_REGION", "MLPIPE_AWS_ACCOUNT_ID", "MLPIPE_AWS_BUCKET", "MLPIPE_AWS_PREFIX")}


@pytest.fixture(scope="module")
def rendered():
    return {name: render(load_spec(EXAMPLES / f"{name}.yaml", env=CLEAN_ENV), "all", use_cache=False) for name in CONFIGS}


@pytest.mark.parametrize("name", CONFIGS)
def test_golden_files(rendered, name):
    """The whole rendered document, one per target, compared exactly with content hashes masked."""
    for rel, golden_name in ((STATE_MACHINE_FILE, "state_machine.asl.json"), (PIPELINE_FILE, "pipeline.json")):
        check_golden(GOLDEN / name / golden_name, rendered[name][rel].decode())


def test_a_script_edit_changes_only_hashes_that_the_golden_files_mask(rendered, tmp_path):
    """abalone with its evaluation script edited by one comment line (a copy under the
    builtin's name, which the config points at) renders a new asset key and config hash, and
    the same documents once hashes are masked: a script edit does not rewrite a golden file."""
    script = tmp_path / "evaluate.py"
    script.write_text((CODE_DIR / "evaluate.py").read_text() + "# one more comment line\n")
    config = changed_config(tmp_path, lambda doc: stage_named(doc, "evaluate").update(code=str(script)))
    original, edited = load_spec(EXAMPLES / "abalone.yaml", env=CLEAN_ENV), load_spec(config, env=CLEAN_ENV)
    old, new = (next(a for a in spec.assets if a.entry.name == "evaluate.py") for spec in (original, edited))
    assert old.entry.parent == CODE_DIR and new.entry == script
    assert new.sha256 != old.sha256 and new.key != old.key and edited.fingerprint != original.fingerprint
    files = render(edited, "all", use_cache=False)
    for rel, golden_name in ((STATE_MACHINE_FILE, "state_machine.asl.json"), (PIPELINE_FILE, "pipeline.json")):
        before, after = rendered["abalone"][rel].decode(), files[rel].decode()
        assert old.key in before and new.key in after and old.key not in after, rel
        assert original.fingerprint in before and edited.fingerprint in after, rel
        assert mask_hashes(after) == mask_hashes(before) == (GOLDEN / "abalone" / golden_name).read_text(), rel


@pytest.mark.parametrize("name", CONFIGS)
def test_state_machine_passes_statelint(rendered, name):
    statelint(rendered[name][STATE_MACHINE_FILE].decode())


def test_build_cli_offline_all_targets_is_deterministic(tmp_path):
    """Two builds in fresh processes, no credentials, sockets limited to loopback: same bytes."""
    guard = tmp_path / "guard"
    guard.mkdir()
    (guard / "sitecustomize.py").write_text(
        "import socket\n"
        "def _deny(self, address, *a, **k):\n"
        "    raise OSError(f'network disabled: {address!r}')\n"
        "socket.socket.connect = _deny\n"
    )
    env = {"PYTHONPATH": str(guard), "AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": "", "AWS_PROFILE": "",
           "AWS_CONFIG_FILE": "/dev/null", "AWS_SHARED_CREDENTIALS_FILE": "/dev/null", **CLEAN_ENV}
    outputs = []
    for run in ("a", "b"):
        out = tmp_path / run
        proc = run_cli("build", "--config", str(EXAMPLES / "abalone.yaml"), "--target", "all", "--out", str(out), env=env)
        assert proc.returncode == 0, proc.stderr
        outputs.append({p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*") if p.is_file()})
    assert outputs[0] == outputs[1]
    files = outputs[0]
    assert STATE_MACHINE_FILE in files and PIPELINE_FILE in files and "manifest.json" in files
    manifest = json.loads(files["manifest.json"])
    for asset in manifest["assets"]:
        assert asset["sha256"][:16] in asset["key"], "asset keys are content-addressed"
        assert f"assets/{asset['key']}" in files


@pytest.mark.parametrize("name", ["abalone", "quickstart"])
def test_sagemaker_pipeline_has_every_kind(rendered, name):
    definition = json.loads(rendered[name][PIPELINE_FILE])
    types = {s["Type"] for s in all_steps(definition["Steps"])}
    assert {"Processing", "Training", "Model", "RegisterModel", "Transform", "Lambda", "Condition", "Fail"} <= types
    for p in definition["Parameters"]:
        assert "DefaultValue" in p, f"parameter {p['Name']} has no default; the pipeline could not be scheduled"


def test_pytorch_pipeline_uses_script_mode_without_uploads(rendered):
    definition = json.loads(rendered["bsm_pytorch"][PIPELINE_FILE])
    train = next(s for s in definition["Steps"] if s["Name"] == "train")
    hps = train["Arguments"]["HyperParameters"]
    for key in ("batch_size", "max_epochs", "lr", "tokenizer_choice", "model_class"):
        assert key in hps
    assert hps["sagemaker_program"] == '"train_pytorch.py"'
    assert re.match(r'^"s3://mlpipe-bsm-123456789012/bsm/assets/[0-9a-f]{16}/sourcedir.tar.gz"$',
                    hps["sagemaker_submit_directory"])
    assert train["Arguments"]["CheckpointConfig"]["S3Uri"] == "s3://mlpipe-bsm-123456789012/bsm/checkpoints"
    model = next(s for s in all_steps(definition["Steps"]) if s["Type"] == "Model")
    assert model["Arguments"]["PrimaryContainer"]["Environment"]["SAGEMAKER_PROGRAM"] == "inference.py"


# --- job names ------------------------------------------------------------------------------

JOB_NAME_FIELDS = ("ProcessingJobName.$", "TrainingJobName.$", "TransformJobName.$")


def _job_name_exprs(asl):
    """Job name expressions outside a fan-out's Map (a Map item's names depend on its item:
    tests/test_fanout.py checks them for every item)."""
    for name, state in asl_walk(asl):
        for field in JOB_NAME_FIELDS:
            expr = state.get("Parameters", {}).get(field)
            if expr is not None and "$.item." not in expr:
                yield name, expr


@pytest.mark.parametrize("name", [c for c in CONFIGS if c != "abalone_by_sex"])  # its jobs: test_fanout.py
def test_job_names_are_valid_unique_per_execution_retry_and_redrive(rendered, name):
    asl = json.loads(rendered[name][STATE_MACHINE_FILE])
    exprs = list(_job_name_exprs(asl))
    assert exprs, "every SageMaker job gets a name computed from the execution"
    resolve = asl["States"]["resolve-parameters"]["Parameters"]["run"]
    executions = ["a", "x" * 80, "weekly-2026-11-23T03_00_00Z", "retrain:événement_名前", "manual-1", "manual-2"]
    seen = set()
    for execution in executions:
        context = {"Execution": {"Name": execution, "RedriveCount": 0}}
        data = {"run": {"execution": execution, "hash": evaluate(resolve["hash.$"], {}, context)}}
        for state, expr in exprs:
            for redrive in (0, 1, 12):      # `mlpipe resume` redrives under the same execution name
                for retry in range(3):
                    job = evaluate(expr, data, {"Execution": {"Name": execution, "RedriveCount": redrive},
                                                "State": {"RetryCount": retry}})
                    assert re.fullmatch(r"[A-Za-z0-9](-*[A-Za-z0-9]){0,62}", job), (state, job)
                    assert job not in seen, f"{job} would be reused"
                    seen.add(job)


# --- parity ---------------------------------------------------------------------------------

def _norm(value, stage_ids):
    """Reduce an ASL path or a SageMaker property reference to the spec's notation."""
    if isinstance(value, dict) and "Get" in value:
        ref = value["Get"]
        if ref.startswith("Parameters."):
            return "$" + ref.split(".", 1)[1]
        m = re.match(r"Steps\.([a-z0-9-]+?)(?:-CreateModel)?\.(.*)$", ref)
        step, prop = m.groups()
        if prop.startswith("ProcessingOutputConfig"):
            output = re.search(r"Outputs\['(\w+)'\]", prop).group(1)
            return f"{step}.{output}"
        return {"ModelArtifacts.S3ModelArtifacts": f"{step}.model", "ModelName": f"{step}.model_name"}[prop]
    if isinstance(value, str) and value.startswith("$."):
        parts = value.split(".")
        if parts[1] == "parameters":
            return "$" + parts[2]
        if parts[1] == "stages":
            return f"{stage_ids[parts[2]]}.{parts[3]}"
    return value


def _field(d, key):
    return d[key + ".$"] if key + ".$" in d else d[key]


@pytest.mark.parametrize("name", CONFIGS)
def test_targets_agree_stage_by_stage(rendered, name):
    spec = load_spec(EXAMPLES / f"{name}.yaml", env=CLEAN_ENV)
    ids = {s.name.replace("-", "_"): s.name for s in spec.stages}
    asl = asl_states(json.loads(rendered[name][STATE_MACHINE_FILE]))
    sm = {s["Name"]: s for s in all_steps(json.loads(rendered[name][PIPELINE_FILE])["Steps"])}
    checked = 0
    grouped = set(spec.fanout.stages) if spec.fanout else set()  # Map items vs per-item copies: test_fanout.py
    for stage in spec.stages:
        if stage.name in grouped:
            continue
        state = asl.get(stage.name)
        if stage.kind in ("processing", "evaluation"):
            a, b = state["Parameters"], sm[stage.name]["Arguments"]
            ca, cb = a["ProcessingResources"]["ClusterConfig"], b["ProcessingResources"]["ClusterConfig"]
            assert ca["InstanceType"] == cb["InstanceType"] == stage.instance.type
            assert _norm(_field(ca, "InstanceCount"), ids) == _norm(cb["InstanceCount"], ids)
            ins_a = {i["InputName"]: _norm(_field(i["S3Input"], "S3Uri"), ids) for i in a["ProcessingInputs"]}
            ins_b = {i["InputName"]: _norm(i["S3Input"]["S3Uri"], ids) for i in b["ProcessingInputs"]}
            assert ins_a == ins_b, stage.name
            assert a["AppSpecification"].get("ContainerArguments") == b["AppSpecification"].get("ContainerArguments")
            assert a["AppSpecification"]["ImageUri"] == b["AppSpecification"]["ImageUri"]
        elif stage.kind == "training":
            a, b = state["Parameters"], sm[stage.name]["Arguments"]
            assert a["ResourceConfig"]["InstanceType"] == b["ResourceConfig"]["InstanceType"]
            assert _norm(_field(a["ResourceConfig"], "InstanceCount"), ids) == _norm(b["ResourceConfig"]["InstanceCount"], ids)
            chan_a = {c["ChannelName"]: _norm(_field(c["DataSource"]["S3DataSource"], "S3Uri"), ids) for c in a["InputDataConfig"]}
            chan_b = {c["ChannelName"]: _norm(c["DataSource"]["S3DataSource"]["S3Uri"], ids) for c in b["InputDataConfig"]}
            assert chan_a == chan_b == {k: str(v.stage + "." + v.output) for k, v in stage.inputs.items()}
            hp_a = {k: v for k, v in a["HyperParameters"].items() if k != "sagemaker_job_name"}
            hp_b = {k: v for k, v in b["HyperParameters"].items() if k != "sagemaker_job_name"}
            assert hp_a == hp_b
            assert a["AlgorithmSpecification"]["TrainingImage"] == b["AlgorithmSpecification"]["TrainingImage"]
        elif stage.kind == "transform":
            a, b = state["Parameters"], sm[stage.name]["Arguments"]
            assert a["TransformResources"]["InstanceType"] == b["TransformResources"]["InstanceType"]
            assert _norm(_field(a["TransformInput"]["DataSource"]["S3DataSource"], "S3Uri"), ids) == \
                _norm(b["TransformInput"]["DataSource"]["S3DataSource"]["S3Uri"], ids)
            assert _norm(_field(a, "ModelName"), ids) == _norm(b["ModelName"], ids)
        elif stage.kind == "lambda":
            a, b = state["Parameters"], sm[stage.name]
            assert a["FunctionName"] == b["FunctionArn"]
            assert {k[:-2] for k in a["Payload"]} - {"execution_id"} == set(b["Arguments"])
        elif stage.kind == "model":
            a = state["Parameters"]["PrimaryContainer"]
            b = sm[f"{stage.name}-CreateModel"]["Arguments"]["PrimaryContainer"]
            assert a["Image"] == b["Image"]
            assert _norm(_field(a, "ModelDataUrl"), ids) == _norm(b["ModelDataUrl"], ids)
        elif stage.kind == "gate":
            assert asl[stage.name]["Type"] == "Choice" and sm[stage.name]["Type"] == "Condition"
            cond = sm[stage.name]["Arguments"]["Conditions"][0]
            assert cond["RightValue"] == stage.threshold
            assert cond["LeftValue"]["Std:JsonGet"]["Path"] == stage.json_path
            assert asl[stage.name]["Choices"][0]["Variable"].endswith(stage.json_path)
        else:
            assert any(n == stage.name or n.startswith(stage.name + "-") for n in asl), stage.name
            continue
        checked += 1
    assert checked >= (0 if grouped >= {s.name for s in spec.stages} else 2)  # all in the group: nothing here


# --- import hygiene -------------------------------------------------------------------------

HEAVY = ("sagemaker", "stepfunctions")


def _loaded_after(code: str) -> set[str]:
    probe = code + "\nimport sys, json\nprint(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT)
    return set(json.loads(proc.stdout.strip().splitlines()[-1]))


def test_help_and_non_build_commands_do_not_import_the_sdks():
    code = ("import contextlib, io\nfrom workflows.cli import main as cli\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n"
            "    try:\n        cli.main(['--help'])\n    except SystemExit:\n        pass\n"
            "    for cmd in ('run', 'deploy', 'start', 'status', 'list', 'history', 'stop', 'schedule', 'graph',\n"
            "                'describe', 'approve', 'reject', 'models', 'serve', 'lineage', 'iam-policy', 'export'):\n"
            "        try:\n            cli.main([cmd, '--help'])\n        except SystemExit:\n            pass\n")
    assert not (_loaded_after(code) & set(HEAVY))
    graph = "from workflows.cli import main as cli\ncli.main(['graph', '--config', 'config/examples/abalone.yaml'])"
    assert not (_loaded_after(graph) & set(HEAVY))


def test_only_renderer_modules_import_the_sdks():
    offenders = []
    for path in ROOT.rglob("*.py"):
        rel = path.relative_to(ROOT).as_posix()
        if rel.startswith((".venv", "tests/", "build/")) or "/." in rel:
            continue
        text = path.read_text()
        if re.search(r"^\s*(from|import)\s+(sagemaker|stepfunctions)\b", text, re.M) and rel not in (
                "workflows/render/sagemaker.py", "workflows/render/stepfunctions.py", "workflows/render/sdk.py"):
            offenders.append(rel)
    assert not offenders


# --- graph ----------------------------------------------------------------------------------

def test_graph_formats(tmp_path):
    proc = run_cli("graph", "--config", str(EXAMPLES / "abalone.yaml"))
    assert proc.returncode == 0
    assert "preprocess --> train" in proc.stdout and "evaluate_gate --> create_model" in proc.stdout
    svg = tmp_path / "dag.svg"
    assert run_cli("graph", "--config", str(EXAMPLES / "abalone.yaml"), "--format", "svg", "--out", str(svg)).returncode == 0
    import xml.etree.ElementTree as ET

    root = ET.parse(svg).getroot()
    texts = [t.text for t in root.iter("{http://www.w3.org/2000/svg}text")]
    assert "evaluate-gate" in texts and "mse <= 6" in texts
    png = tmp_path / "dag.png"
    assert run_cli("graph", "--config", str(EXAMPLES / "abalone.yaml"), "--format", "png", "--out", str(png)).returncode == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    proc = run_cli("graph", "--format", "png")
    assert proc.returncode == 2 and "--out" in proc.stderr


# --- every request the definitions would send fits botocore's input shapes --------------------

@pytest.mark.parametrize("name", CONFIGS)
def test_every_rendered_request_fits_botocore_input_shapes(rendered, name):
    from workflows.render import requests

    asl = json.loads(rendered[name][STATE_MACHINE_FILE])
    pipeline = json.loads(rendered[name][PIPELINE_FILE])
    found = list(requests.state_machine_requests(asl)) + list(requests.pipeline_requests(pipeline))
    assert {op for _, _, op, _ in found} >= {"CreateProcessingJob", "CreateTrainingJob", "CreateModel"}
    assert requests.problems("stepfunctions", asl) == [] and requests.problems("sagemaker", pipeline) == []


def test_a_request_aws_would_refuse_fails_the_build(rendered):
    from config.errors import UserError
    from workflows.render import requests

    asl = json.loads(rendered["abalone"][STATE_MACHINE_FILE])
    asl["States"]["train"]["Parameters"]["StoppingCondition"]["MaxRuntimeInSeconds"] = 0
    pipeline = json.loads(rendered["abalone"][PIPELINE_FILE])
    step = next(s for s in pipeline["Steps"] if s["Name"] == "train")
    step["Arguments"]["AlgorithmSpecification"]["TrainingInputMode"] = "Fast"
    with pytest.raises(UserError, match=r"state train \(CreateTrainingJob\).*MaxRuntimeInSeconds"):
        requests.check("stepfunctions", asl)
    with pytest.raises(UserError, match=r"step train \(CreateTrainingJob\).*TrainingInputMode"):
        requests.check("sagemaker", pipeline)


def _crosses(p, q, box, margin=1.0) -> bool:
    """Does segment p-q pass through the inside of box (x, y, w, h)? (Liang-Barsky clipping)"""
    x, y, w, h = box
    x0, y0, x1, y1 = x + margin, y + margin, x + w - margin, y + h - margin
    t0, t1 = 0.0, 1.0
    dx, dy = q[0] - p[0], q[1] - p[1]
    for pk, qk in ((-dx, p[0] - x0), (dx, x1 - p[0]), (-dy, p[1] - y0), (dy, y1 - p[1])):
        if pk == 0:
            if qk < 0:
                return False
        else:
            t = qk / pk
            if pk < 0:
                t0 = max(t0, t)
            else:
                t1 = min(t1, t)
    return t0 < t1


def _long_edge_spec():
    """x feeds z directly while z also waits on a chain y -> p -> q: x -> z spans three layers."""
    from steps.spec import OutputRef, PipelineSpec, ProcessingStage

    stages = (ProcessingStage(name="x", outputs=("o",)), ProcessingStage(name="y", outputs=("o",)),
              ProcessingStage(name="p", inputs={"i": OutputRef("y", "o")}, outputs=("o",)),
              ProcessingStage(name="q", inputs={"i": OutputRef("p", "o")}, outputs=("o",)),
              ProcessingStage(name="z", inputs={"a": OutputRef("x", "o"), "b": OutputRef("q", "o")}))
    return PipelineSpec(name="t", description="", region="us-east-1", account_id="0", bucket="b", prefix="",
                        roles={}, tags={}, parameters=(), stages=stages, data={})


def test_graph_draws_the_transitive_reduction_and_no_line_crosses_a_box():
    from workflows.views.graph import layout, reduced_edges

    spec = load_spec(EXAMPLES / "abalone.yaml")
    assert sum(len(s.upstream) for s in spec.stages) == 22
    assert reduced_edges(spec) == [
        ("preprocess", "train"), ("train", "evaluate"), ("evaluate", "evaluate-gate"),
        ("evaluate-gate", "create-model"), ("create-model", "register"), ("create-model", "batch-score"),
        ("register", "record-model"), ("register", "approve"), ("approve", "deploy")]
    for spec in (spec, _long_edge_spec()):
        lay = layout(spec)
        for u, v, points in lay.edges:
            for name, b in lay.boxes.items():
                segments = list(zip(points, points[1:]))
                for p, q in segments:
                    assert not _crosses(p, q, (b.x, b.y, 180, b.h)), (u, v, name)
    lay = layout(_long_edge_spec())
    (points,) = [pts for u, v, pts in lay.edges if (u, v) == ("x", "z")]
    assert len(points) == 2 + 2 * 2   # routed through a reserved slot in each of the two middle layers


def test_graph_of_a_run_colours_stages_by_state():
    import xml.etree.ElementTree as ET

    from workflows.views.graph import STATE_COLOURS, svg

    spec = load_spec(EXAMPLES / "abalone.yaml")
    states = {"preprocess": {"status": "Succeeded", "duration": "1.2s"},
              "evaluate-gate": {"status": "Failed", "detail": "mse = 7.1"}}
    root = ET.fromstring(svg(spec, states))
    ns = "{http://www.w3.org/2000/svg}"
    groups = {g.get("data-stage"): g for g in root.iter(f"{ns}g")}
    assert groups["preprocess"].get("data-status") == "succeeded"
    assert groups["preprocess"].find(f"{ns}rect").get("fill") == STATE_COLOURS["succeeded"]
    assert groups["evaluate-gate"].find(f"{ns}rect").get("fill") == STATE_COLOURS["failed"]
    assert groups["deploy"].get("data-status") == "not started"
    texts = [t.text for t in groups["evaluate-gate"].iter(f"{ns}text")]
    assert texts == ["evaluate-gate", "mse <= 6", "failed · mse = 7.1"]


# --- kind: tuning in both targets -------------------------------------------------------------

@pytest.fixture(scope="module")
def tuned(tmp_path_factory):
    import yaml

    doc = yaml.safe_load((EXAMPLES / "abalone.yaml").read_text())
    for stage in doc["stages"]:
        if stage["name"] == "tune":
            stage["enabled"] = True
    path = tmp_path_factory.mktemp("tuned") / "abalone.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    spec = load_spec(path, env=CLEAN_ENV)
    files = render(spec, "all", use_cache=False)
    return spec, json.loads(files[STATE_MACHINE_FILE]), json.loads(files[PIPELINE_FILE])


def test_tuning_renders_a_tuning_job_whose_best_model_flows_on(tuned):
    from workflows.render import requests

    spec, asl, pipeline = tuned
    statelint(asl)
    state = asl["States"]["tune"]
    assert state["Resource"] == "arn:aws:states:::sagemaker:createHyperParameterTuningJob.sync"
    config = state["Parameters"]["HyperParameterTuningJobConfig"]
    assert (config["Strategy"], config["RandomSeed"], config["ResourceLimits"]) == (
        "Bayesian", 7, {"MaxNumberOfTrainingJobs": 12, "MaxParallelTrainingJobs": 3})
    assert config["HyperParameterTuningJobObjective"] == {"Type": "Minimize", "MetricName": "validation:rmse"}
    assert [r["Name"] for r in config["ParameterRanges"]["IntegerParameterRanges"]] == ["max_depth"]
    static = state["Parameters"]["TrainingJobDefinition"]["StaticHyperParameters"]
    assert "eta" not in static and static["num_round"] == "50"
    assert state["ResultSelector"]["model.$"].startswith("States.Format('{}/{}/output/model.tar.gz'")
    assert "train" not in asl["States"]            # the template does not run by itself
    evaluate = asl["States"]["evaluate"]["Parameters"]["ProcessingInputs"]
    assert {"S3Input": evaluate[0]["S3Input"]} and evaluate[0]["S3Input"]["S3Uri.$"] == "$.stages.tune.model"
    names = [evaluate_job_name(asl["States"]["tune"]["Parameters"]["HyperParameterTuningJobName.$"], i)
             for i in range(3)]
    assert all(len(n) <= 32 and re.fullmatch(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,31}", n) for n in names)
    step = next(s for s in pipeline["Steps"] if s["Name"] == "tune")
    assert step["Type"] == "Tuning" and step["Arguments"]["HyperParameterTuningJobConfig"]["RandomSeed"] == 7
    model_uri = json.dumps(next(s for s in pipeline["Steps"] if s["Name"] == "evaluate")["Arguments"])
    assert '{"Get": "Steps.tune.BestTrainingJob.TrainingJobName"}' in model_uri
    assert requests.problems("stepfunctions", asl) == [] and requests.problems("sagemaker", pipeline) == []


def evaluate_job_name(expression: str, seed: int) -> str:
    """The tuning job name the intrinsic would compute (a UUID's first group is 8 hex digits)."""
    m = re.fullmatch(r"States\.Format\('([^']*)', States\.ArrayGetItem\(States\.StringSplit\(States\.UUID\(\), "
                     r"'-'\), 0\)\)", expression)
    assert m, expression
    import uuid

    return m.group(1).replace("{}", str(uuid.UUID(int=seed * 7919 + 1, version=4)).split("-")[0])


def test_tuning_iam_is_scoped_and_describe_and_graph_show_it(tuned):
    from workflows.infra import iam
    from workflows.views.describe import describe
    from workflows.views.graph import mermaid

    spec, _, _ = tuned
    for target in ("stepfunctions", "sagemaker"):
        for role in iam.roles(spec, target):
            for doc in role.policies.values():
                assert iam.wildcard_actions(doc) == []
    sfn = iam.roles(spec, "stepfunctions")[1].policies["mlpipe-stepfunctions-run-pipeline"]["Statement"]
    tuning = next(s for s in sfn if s["Sid"] == "TuningJobs")
    assert tuning["Resource"] == ["arn:aws:sagemaker:us-east-1:123456789012:hyper-parameter-tuning-job/abalone-tune-*"]
    assert any(s["Resource"] == ["arn:aws:events:us-east-1:123456789012:rule/"
                                 "StepFunctionsGetEventsForSageMakerTuningJobsRule"] for s in sfn)
    info = next(s for s in describe(spec)["stages"] if s["name"] == "tune")
    assert info["instance_type"] == "ml.m5.xlarge" and info["tuning"]["strategy"] == "Bayesian"
    assert info["tuning"]["ranges"]["eta"] == {"type": "continuous", "min": 0.05, "max": 0.5, "scaling": "Logarithmic"}
    assert "preprocess --> tune" in mermaid(spec) and "tune --> evaluate" in mermaid(spec)


# --- SageMaker Pipelines: retries on every job step, caching when configured --------------------

@pytest.mark.parametrize("name", CONFIGS)
def test_every_job_step_retries_and_caches_only_when_configured(rendered, name):
    steps = list(all_steps(json.loads(rendered[name][PIPELINE_FILE])["Steps"]))
    jobs = [s for s in steps if s["Type"] in ("Processing", "Training", "Transform", "Tuning")]
    assert jobs
    for step in jobs:
        kinds = [p["ExceptionType"] for p in step["RetryPolicies"]]
        assert kinds == [["Step.SERVICE_FAULT", "Step.THROTTLING"],
                         ["SageMaker.JOB_INTERNAL_ERROR", "SageMaker.CAPACITY_ERROR", "SageMaker.RESOURCE_LIMIT"]]
        assert "CacheConfig" not in step   # off by default


def test_cache_config_comes_from_the_config(tmp_path):
    import yaml

    from config.errors import ConfigError
    from workflows.render import definition

    doc = yaml.safe_load((EXAMPLES / "quickstart.yaml").read_text())
    doc["cache"] = {"expire_after": "P30D"}
    path = tmp_path / "quickstart.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    steps = list(all_steps(definition(load_spec(path, env=CLEAN_ENV), "sagemaker")["Steps"]))
    cached = {s["Name"]: s["CacheConfig"] for s in steps if "CacheConfig" in s}
    assert set(cached) == {s["Name"] for s in steps if s["Type"] in ("Processing", "Training", "Transform")}
    assert set(map(json.dumps, cached.values())) == {json.dumps({"Enabled": True, "ExpireAfter": "P30D"})}
    doc["cache"] = {"expire_after": "30 days"}
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    with pytest.raises(ConfigError) as err:
        load_spec(path, env=CLEAN_ENV)
    assert err.value.field == "cache.expire_after" and "ISO 8601" in err.value.message


# --- critical path ----------------------------------------------------------------------------

def _asl_waits(asl: dict, stage_names: list[str]) -> dict[str, set[str]]:
    """For each stage, the stages the state machine must finish before it starts: everything
    earlier in its sequence and in every enclosing one (a Parallel's branches start together)."""
    def stage_of(state: str) -> str | None:
        hits = [n for n in stage_names if state == n or state.startswith(n + "-")]
        return max(hits, key=len) if hits else None

    waits: dict[str, set[str]] = {}

    def run(machine: dict, done: set[str]) -> set[str]:
        done, states, at = set(done), machine["States"], machine["StartAt"]
        while at:
            state = states[at]
            if state["Type"] == "Parallel":
                done |= set().union(*(run(b, done) for b in state["Branches"]))
            elif state["Type"] == "Map":    # a fan-out: each item runs the group in order
                done |= run(state.get("ItemProcessor") or state["Iterator"], done)
            elif (stage := stage_of(at)) is not None:
                waits.setdefault(stage, set(done) - {stage})
                done.add(stage)
            if state["Type"] == "Choice":   # the way on: the gate's pass, an endpoint's create, a check's default
                ways = [c["Next"] for c in state["Choices"]] + [state["Default"]]
                at = next(w for w in ways if states[w]["Type"] not in ("Fail", "Succeed"))
            else:
                at = state.get("Next")
        return done

    run(asl, set())
    return waits


@pytest.mark.parametrize("name", CONFIGS)
def test_state_machine_critical_path_is_the_dags(rendered, name):
    """Every stage waits for exactly its ancestors in the DAG: batch-score, record-model and
    approve run at once in abalone, and nothing runs before what it needs."""
    spec = load_spec(EXAMPLES / f"{name}.yaml", env=CLEAN_ENV)
    dag = pipeline.ancestry(spec.stages)
    waits = _asl_waits(json.loads(rendered[name][STATE_MACHINE_FILE]), [s.name for s in spec.stages])
    assert waits == dag
    if name == "abalone":
        parallel = {n for n, s in asl_walk(json.loads(rendered[name][STATE_MACHINE_FILE])) if s["Type"] == "Parallel"}
        assert parallel == {"in-parallel-register+batch-score", "in-parallel-record-model+approve"}
        for a, b in (("batch-score", "record-model"), ("batch-score", "approve"), ("record-model", "approve")):
            assert a not in waits[b] and b not in waits[a]


def test_a_rejection_in_a_branch_stops_what_needs_the_approval(tmp_path):
    """A stage after the Parallel that needs the approval is guarded by a check: a rejected
    approval ends only its branch, so the check ends the run there."""
    import yaml

    doc = yaml.safe_load((EXAMPLES / "quickstart.yaml").read_text())
    doc["stages"].append({"name": "announce", "kind": "lambda", "handler": "lambda_handlers.register_model_name.handler",
                          "payload": {"model_name": "create-model.model_name"},
                          "environment": {"PARAMETER_NAME": "/mlpipe/quickstart/announced"},
                          "depends_on": ["deploy", "batch-score"]})
    path = tmp_path / "quickstart.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    spec = load_spec(path, env=CLEAN_ENV)
    asl = json.loads(render(spec, "stepfunctions", use_cache=False)[STATE_MACHINE_FILE])
    statelint(asl)
    states = asl_states(asl)
    check = states["approve-approved?"]
    assert check["Choices"] == [{"Not": {"Variable": "$.stages.approve", "IsPresent": True},
                                 "Next": "approve-declined-end"}]
    assert check["Default"] == "announce" and states["approve-declined-end"]["Type"] == "Succeed"
    # Not series-parallel (announce joins batch-score and deploy; record-model hangs off register):
    # batch-score waits for register too, but nothing waits for less than it needs, and the
    # longest chain of stages is still the DAG's.
    waits, dag = _asl_waits(asl, [s.name for s in spec.stages]), pipeline.ancestry(spec.stages)
    assert waits["batch-score"] == dag["batch-score"] | {"register"}
    assert all(waits[n] >= dag[n] for n in dag)
    depth: dict[str, int] = {}
    for s in spec.stages:
        depth[s.name] = 1 + max((depth[u] for u in s.upstream), default=0)
    assert pipeline.length(pipeline.parallel_plan(spec.stages)) == max(depth.values())
