"""`mlpipe status EXECUTION --format svg|png`: a deployed execution drawn as `runs show` draws a
local run (the DAG, each stage filled with its state's colour, its duration, the gate's value).

The pipeline is deployed to the moto server and the execution started there. moto runs no
state: its GetExecutionHistory answers a canned history, and it has no
ListPipelineExecutionSteps at all, so the ``executions`` fixture makes the running server answer
those two calls with the history (or steps) a test gives for its execution, the way
test_resume_versions.py adds the version calls moto lacks. Everything else is moto's own.
"""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from conftest import run_cli  # noqa: E402
from moto_server import reset  # noqa: E402

from workflows.views.graph import STATE_COLOURS  # noqa: E402

CONFIG = str(ROOT / "config" / "examples" / "abalone.yaml")
PIPELINE = "mlpipe-abalone"
NS = "{http://www.w3.org/2000/svg}"
STAGES = ["preprocess", "train", "evaluate", "evaluate-gate", "create-model", "register", "batch-score",
          "record-model", "approve", "deploy"]
GREEN, RED, GREY = STATE_COLOURS["succeeded"], STATE_COLOURS["failed"], STATE_COLOURS["not started"]
T0 = datetime(2026, 3, 2, 3, 0, tzinfo=timezone.utc)
PNG = b"\x89PNG\r\n\x1a\n"


# --- moto: a deployed pipeline, and the calls it cannot answer for an execution -----------------

@pytest.fixture
def executions(moto_server, monkeypatch):
    """execution ARN -> the history events (Step Functions) or steps (SageMaker) moto answers."""
    from moto.core.responses import ActionResult
    from moto.sagemaker.responses import SageMakerResponse
    from moto.stepfunctions.responses import StepFunctionResponse

    answers: dict[str, list] = {}
    canned = StepFunctionResponse.get_execution_history

    def get_execution_history(self):
        arn = self._get_param("executionArn")
        return ActionResult({"events": answers[arn]}) if arn in answers else canned(self)

    def list_pipeline_execution_steps(self):
        return ActionResult({"PipelineExecutionSteps": answers[self._get_param("PipelineExecutionArn")]})

    monkeypatch.setattr(StepFunctionResponse, "get_execution_history", get_execution_history)
    monkeypatch.setattr(SageMakerResponse, "list_pipeline_execution_steps", list_pipeline_execution_steps,
                        raising=False)
    reset(moto_server)
    return answers


def _deploy(url: str, target: str) -> None:
    from workflows.cli.main import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        code = main(["--endpoint-url", url, "deploy", "--config", CONFIG, "--target", target, "-o", "json"])
    assert code == 0, out.getvalue()


def _start(url: str, target: str, name: str) -> str:
    proc = run_cli("--endpoint-url", url, "start", "--config", CONFIG, "--target", target, "--name", name,
                   "-o", "json", timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)["arn"]


def _end_sfn_execution(arn: str, status: str) -> None:
    """moto's execution stays RUNNING; say how the history ended (DescribeExecution reads this)."""
    from moto.stepfunctions.models import stepfunctions_backends

    execution = stepfunctions_backends["123456789012"]["us-east-1"].describe_execution(arn)
    execution.status, execution.stop_date = status, T0 + timedelta(hours=1)


def _status(url: str, target: str, *argv: str):
    return run_cli("--endpoint-url", url, "status", "--config", CONFIG, "--target", target, *argv, timeout=120)


def _boxes(svg: str) -> dict[str, dict]:
    """stage -> {status, fill, lines} from the drawn SVG."""
    root = ET.fromstring(svg)
    out = {}
    for g in root.iter(f"{NS}g"):
        if g.get("class") == "stage":
            out[g.get("data-stage")] = {"status": g.get("data-status"), "fill": g.find(f"{NS}rect").get("fill"),
                                        "lines": [t.text for t in g.iter(f"{NS}text")]}
    return out


# --- a Step Functions history, as the service writes it -----------------------------------------

class History:
    """Events with ids and previousEventId links; branches of a Parallel interleave."""

    def __init__(self) -> None:
        self.events: list[dict] = []

    def add(self, kind: str, at: float, prev: int | None = None, **details) -> int:
        n = len(self.events) + 1
        self.events.append({"id": n, "previousEventId": n - 1 if prev is None else prev, "type": kind,
                            "timestamp": T0 + timedelta(seconds=at), **details})
        return n

    def enter(self, kind: str, name: str, at: float, prev: int | None = None, state: dict | None = None) -> int:
        return self.add(f"{kind}StateEntered", at, prev, stateEnteredEventDetails={
            "name": name, "input": json.dumps(state or {})})

    def exit(self, kind: str, name: str, at: float, prev: int | None = None, state: dict | None = None) -> int:
        return self.add(f"{kind}StateExited", at, prev, stateExitedEventDetails={
            "name": name, "output": json.dumps(state or {})})

    def schedule(self, at: float, prev: int, resource: str = "createProcessingJob.sync") -> int:
        return self.add("TaskScheduled", at, prev, taskScheduledEventDetails={
            "resourceType": "sagemaker", "resource": resource, "region": "us-east-1", "parameters": "{}"})

    def task(self, name: str, start: float, end: float, state: dict | None = None) -> int:
        entered = self.enter("Task", name, start)
        done = self.add("TaskSucceeded", end, self.schedule(start, entered), taskSucceededEventDetails={
            "resourceType": "sagemaker", "resource": "createProcessingJob.sync", "output": "{}"})
        return self.exit("Task", name, end, done, state)


def gate_output(mse: float) -> dict:
    return {"stages": {"evaluate_gate": {"metrics": {"regression_metrics": {"mse": {"value": mse}}}}}}


def up_to_the_gate(mse: float) -> History:
    """initialize ... evaluate (60s, 300s, 90s), then the gate reads mse (2s) and compares."""
    h = History()
    h.add("ExecutionStarted", 0, 0, executionStartedEventDetails={"input": "{}"})
    for name in ("initialize", "resolve-parameters"):
        h.enter("Pass", name, 0)
        h.exit("Pass", name, 0)
    h.task("preprocess", 0, 60)
    h.task("train", 60, 360)
    h.task("evaluate", 360, 450)
    h.task("evaluate-gate-read", 450, 452, gate_output(mse))
    h.enter("Choice", "evaluate-gate", 452, state=gate_output(mse))
    return h


def into_the_parallel(h: History) -> dict[str, int]:
    """The gate passed: create-model, then register beside batch-score, then record-model beside
    approve (the approval's task token is out); returns the last event id of each open state."""
    h.exit("Choice", "evaluate-gate", 452)
    h.task("create-model", 452, 455)
    h.enter("Parallel", "in-parallel-register+batch-score", 455)
    fork = h.add("ParallelStateStarted", 455)
    register = h.enter("Task", "register", 455, fork)
    batch = h.schedule(455, h.enter("Task", "batch-score", 455, fork), "createTransformJob.sync")
    register = h.add("TaskSucceeded", 457, h.schedule(455, register, "createModelPackage"),
                     taskSucceededEventDetails={"resourceType": "sagemaker", "resource": "createModelPackage",
                                                "output": "{}"})
    register = h.exit("Task", "register", 457, register)
    h.enter("Parallel", "in-parallel-record-model+approve", 457, register)
    inner = h.add("ParallelStateStarted", 457)
    record = h.schedule(457, h.enter("Task", "record-model", 457, inner), "invoke")
    approve = h.schedule(457, h.enter("Task", "approve", 457, inner), "publish.waitForTaskToken")
    return {"batch-score": batch, "record-model": record, "approve": approve}


def failed_branch() -> list[dict]:
    """batch-score fails after record-model and approve were entered (so the failure is not the
    state entered last); Step Functions aborts the other branches and fails the execution."""
    h = up_to_the_gate(4.321)
    open_ = into_the_parallel(h)
    h.add("TaskFailed", 500, open_["batch-score"], taskFailedEventDetails={
        "resourceType": "sagemaker", "resource": "createTransformJob.sync", "error": "SageMaker.X",
        "cause": "transform failed"})
    h.add("TaskStateAborted", 500, open_["record-model"])
    h.add("TaskStateAborted", 500, open_["approve"])
    h.add("ParallelStateFailed", 500)
    h.add("ExecutionFailed", 500, executionFailedEventDetails={"error": "SageMaker.X"})
    return h.events


def failed_gate() -> list[dict]:
    h = up_to_the_gate(7.1)
    h.exit("Choice", "evaluate-gate", 452)
    h.add("FailStateEntered", 452, stateEnteredEventDetails={"name": "evaluate-gate-failed", "input": "{}"})
    h.add("ExecutionFailed", 452, executionFailedEventDetails={"error": "QualityGateFailed"})
    return h.events


def waiting_for_approval() -> list[dict]:
    h = up_to_the_gate(4.321)
    open_ = into_the_parallel(h)
    done = h.add("TaskSucceeded", 459, open_["record-model"], taskSucceededEventDetails={
        "resourceType": "lambda", "resource": "invoke", "output": "{}"})
    h.exit("Task", "record-model", 459, done)
    return h.events


# --- Step Functions ------------------------------------------------------------------------------

def test_stepfunctions_picture_of_a_failed_branch(moto_server, executions, tmp_path):
    _deploy(moto_server, "stepfunctions")
    arn = _start(moto_server, "stepfunctions", "run-branch")
    executions[arn] = failed_branch()
    _end_sfn_execution(arn, "FAILED")

    proc = _status(moto_server, "stepfunctions", "run-branch", "--format", "svg")
    assert proc.returncode == 0, proc.stderr
    boxes = _boxes(proc.stdout)
    assert sorted(boxes) == sorted(STAGES)
    assert {n: b["status"] for n, b in boxes.items()} == {
        "preprocess": "succeeded", "train": "succeeded", "evaluate": "succeeded", "evaluate-gate": "succeeded",
        "create-model": "succeeded", "register": "succeeded", "batch-score": "failed",
        "record-model": "aborted", "approve": "aborted", "deploy": "not started"}
    for name in ("preprocess", "train", "evaluate", "evaluate-gate", "create-model", "register"):
        assert boxes[name]["fill"] == GREEN, name
    assert boxes["batch-score"]["fill"] == RED and boxes["deploy"]["fill"] == GREY
    assert boxes["record-model"]["fill"] == STATE_COLOURS["aborted"]
    assert boxes["preprocess"]["lines"] == ["preprocess", "processing", "succeeded · 1m00s"]
    assert boxes["train"]["lines"][-1] == "succeeded · 5m00s"
    assert boxes["evaluate"]["lines"][-1] == "succeeded · 1m30s"
    assert boxes["evaluate-gate"]["lines"] == ["evaluate-gate", "mse <= 6", "succeeded · 2s · value 4.321"]
    assert boxes["batch-score"]["lines"][-1] == "failed · 45s"
    assert boxes["deploy"]["lines"][-1] == "not started"
    assert "<title>abalone execution run-branch (FAILED)</title>" in proc.stdout

    # --out writes the same picture; png is a PNG file
    svg_file, png_file = tmp_path / "run.svg", tmp_path / "run.png"
    proc = _status(moto_server, "stepfunctions", "run-branch", "--format", "svg", "--out", str(svg_file))
    assert proc.returncode == 0 and proc.stdout == "" and f"wrote {svg_file}" in proc.stderr, proc.stderr
    assert _boxes(svg_file.read_text()) == boxes
    proc = _status(moto_server, "stepfunctions", "run-branch", "-f", "png", "--out", str(png_file))
    assert proc.returncode == 0, proc.stderr
    assert png_file.read_bytes()[:8] == PNG and png_file.stat().st_size > 1000


def test_stepfunctions_picture_of_a_failed_gate_and_of_a_waiting_run(moto_server, executions):
    _deploy(moto_server, "stepfunctions")
    gate_arn = _start(moto_server, "stepfunctions", "run-gate")
    executions[gate_arn] = failed_gate()
    _end_sfn_execution(gate_arn, "FAILED")
    waiting_arn = _start(moto_server, "stepfunctions", "run-waiting")     # the latest: status's default
    executions[waiting_arn] = waiting_for_approval()

    proc = _status(moto_server, "stepfunctions", "run-gate", "--format", "svg")
    assert proc.returncode == 0, proc.stderr
    boxes = _boxes(proc.stdout)
    assert boxes["evaluate-gate"]["fill"] == RED
    assert boxes["evaluate-gate"]["lines"][-1] == "failed · 2s · value 7.1"
    assert [n for n, b in boxes.items() if b["fill"] == GREEN] == ["preprocess", "train", "evaluate"]
    assert sorted(n for n, b in boxes.items() if b["status"] == "not started") == sorted(STAGES[4:])
    assert all(boxes[n]["fill"] == GREY for n in STAGES[4:])

    proc = _status(moto_server, "stepfunctions", "--format", "svg")
    assert proc.returncode == 0, proc.stderr
    boxes = _boxes(proc.stdout)
    assert "run-waiting (RUNNING)" in proc.stdout
    assert (boxes["approve"]["status"], boxes["approve"]["fill"]) == ("waiting", STATE_COLOURS["waiting"])
    assert (boxes["batch-score"]["status"], boxes["batch-score"]["fill"]) == ("running", STATE_COLOURS["running"])
    assert boxes["record-model"]["lines"][-1] == "succeeded · 2s"
    assert boxes["evaluate-gate"]["lines"][-1] == "succeeded · 2s · value 4.321"
    assert boxes["deploy"]["status"] == "not started"


def test_the_picture_loads_neither_sdk(moto_server, executions, tmp_path):
    _deploy(moto_server, "stepfunctions")
    arn = _start(moto_server, "stepfunctions", "run-light")
    executions[arn] = failed_gate()
    out = tmp_path / "run.png"
    code = ("import sys, json\nfrom workflows.cli.main import main\n"
            f"code = main(['--endpoint-url', {moto_server!r}, 'status', 'run-light', '--config', {CONFIG!r}, "
            f"'--format', 'png', '--out', {str(out)!r}])\n"
            "print(json.dumps([code, sorted({m.split('.')[0] for m in sys.modules} & {'sagemaker', 'stepfunctions'})]))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == [0, []]
    assert out.read_bytes()[:8] == PNG


# --- SageMaker Pipelines -------------------------------------------------------------------------

def _step(name: str, status: str, start: float, end: float | None, **metadata) -> dict:
    step = {"StepName": name, "StepStatus": status, "StartTime": T0 + timedelta(seconds=start),
            "Metadata": metadata}
    if end is not None:
        step["EndTime"] = T0 + timedelta(seconds=end)
    return step


def test_sagemaker_picture(moto_server, executions, tmp_path):
    _deploy(moto_server, "sagemaker")
    failed = _start(moto_server, "sagemaker", "run-gate")
    head = [_step("preprocess", "Succeeded", 0, 60), _step("train", "Succeeded", 60, 360),
            _step("evaluate", "Succeeded", 360, 450)]
    executions[failed] = head + [_step("evaluate-gate", "Succeeded", 450, 451, Condition={"Outcome": "False"}),
                                 _step("evaluate-gate-failed", "Failed", 451, 452)]
    passed = _start(moto_server, "sagemaker", "run-on")
    executions[passed] = head + [
        _step("evaluate-gate", "Succeeded", 450, 451, Condition={"Outcome": "True"}),
        _step("create-model-CreateModel", "Succeeded", 451, 454, Model={"Arn": "arn:aws:sagemaker:m"}),
        _step("batch-score", "Failed", 454, 500),
        _step("register-RegisterModel", "Executing", 454, None)]

    proc = _status(moto_server, "sagemaker", "run-gate", "--format", "svg")
    assert proc.returncode == 0, proc.stderr
    boxes = _boxes(proc.stdout)
    assert sorted(boxes) == sorted(STAGES)
    assert [n for n, b in boxes.items() if b["fill"] == GREEN] == ["preprocess", "train", "evaluate"]
    assert boxes["train"]["lines"][-1] == "succeeded · 5m00s"
    # the condition step's outcome says the gate failed; its metadata does not hold the value
    assert boxes["evaluate-gate"]["fill"] == RED
    assert boxes["evaluate-gate"]["lines"][-1] == "failed · 2s · value unknown"
    assert all(boxes[n]["fill"] == GREY and boxes[n]["lines"][-1] == "not started" for n in STAGES[4:])

    png_file = tmp_path / "sm.png"
    proc = _status(moto_server, "sagemaker", "run-on", "--format", "png", "--out", str(png_file))
    assert proc.returncode == 0, proc.stderr
    assert png_file.read_bytes()[:8] == PNG
    proc = _status(moto_server, "sagemaker", "run-on", "--format", "svg")
    boxes = _boxes(proc.stdout)
    assert boxes["evaluate-gate"]["fill"] == GREEN and boxes["evaluate-gate"]["lines"][-1].endswith("value unknown")
    assert boxes["create-model"]["lines"][-1] == "succeeded · 3s"
    assert (boxes["batch-score"]["fill"], boxes["batch-score"]["lines"][-1]) == (RED, "failed · 46s")
    assert boxes["register"]["status"] == "running" and boxes["register"]["fill"] == STATE_COLOURS["running"]
    assert boxes["deploy"]["fill"] == GREY


# --- bad input: one message, exit 2, before any AWS call -----------------------------------------

NO_AWS = "http://127.0.0.1:9"          # nothing listens: a call to AWS would be a different error


def _user_error(proc, needle: str) -> None:
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr and proc.stderr.count("error: ") == 1, proc.stderr
    assert needle in proc.stderr, proc.stderr


def test_bad_input_is_one_message_and_exit_2(tmp_path):
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    cases = [
        (["--format", "gif"], "invalid choice: 'gif'"),
        (["--format", "png"], "--format png needs --out FILE"),
        (["--format", "svg", "--out", str(tmp_path)], "is a directory"),
        (["--format", "png", "--out", str(tmp_path / "missing" / "run.png")], "does not exist"),
        (["--format", "svg", "--out", str(a_file / "run.svg")], "is not a directory"),
        (["--out", str(tmp_path / "run.svg")], "give --format svg or png"),
    ]
    for argv, needle in cases:
        proc = run_cli("--endpoint-url", NO_AWS, "status", "run-1", "--config", CONFIG, *argv, timeout=60)
        _user_error(proc, needle)
    assert a_file.read_text() == "x" and sorted(p.name for p in tmp_path.iterdir()) == ["file.txt"]


# --- the history reader on its own ---------------------------------------------------------------

def test_retries_and_redrives_end_in_their_last_attempt():
    from steps.pipeline import load_spec
    from workflows.ops.run_states import sfn_stage_states

    h = up_to_the_gate(4.321)
    h.exit("Choice", "evaluate-gate", 452)
    entered = h.enter("Task", "create-model", 452)
    failed = h.add("TaskFailed", 453, h.schedule(452, entered, "createModel"),
                   taskFailedEventDetails={"error": "SageMaker.Throttling"})
    h.add("TaskSucceeded", 456, h.schedule(455, failed, "createModel"),
          taskSucceededEventDetails={"output": "{}"})                     # retried, then succeeded
    h.exit("Task", "create-model", 456)
    entered = h.enter("Task", "register", 456)
    h.add("TaskFailed", 460, h.schedule(456, entered, "createModelPackage"), taskFailedEventDetails={"error": "X"})
    h.add("ExecutionFailed", 460)
    spec = load_spec(CONFIG)
    states = sfn_stage_states(spec, h.events)
    assert states["create-model"] == {"status": "succeeded", "duration": "4s", "detail": ""}
    assert states["register"]["status"] == "failed" and "approve" not in states

    h.add("ExecutionRedriven", 900)
    entered = h.enter("Task", "register", 900)
    h.add("TaskSucceeded", 905, h.schedule(900, entered, "createModelPackage"), taskSucceededEventDetails={})
    h.exit("Task", "register", 905)
    assert sfn_stage_states(spec, h.events)["register"]["status"] == "succeeded"


def test_a_rejected_approval_ends_its_branch_rejected():
    from steps.pipeline import load_spec
    from workflows.ops.run_states import sfn_stage_states

    h = up_to_the_gate(4.321)
    open_ = into_the_parallel(h)
    failed = h.add("TaskFailed", 600, open_["approve"], taskFailedEventDetails={"error": "Rejected", "cause": "no"})
    h.exit("Task", "approve", 600, failed)                       # caught: the branch goes on to -declined
    h.enter("Succeed", "approve-declined", 600)
    h.exit("Succeed", "approve-declined", 600)
    states = sfn_stage_states(load_spec(CONFIG), h.events)
    assert states["approve"] == {"status": "rejected", "duration": "2m23s", "detail": ""}
    assert states["batch-score"]["status"] == "running" and "deploy" not in states


@pytest.mark.parametrize("example", ["abalone", "quickstart", "bsm_pytorch"])
def test_the_state_names_agree_with_the_renderer(example):
    """run_states keeps the renderer's state naming (a stage's states as suffixes of its name);
    every state of each rendered example belongs to exactly the stage the table says."""
    from conftest import EXAMPLES
    from steps.pipeline import load_spec
    from workflows.ops.run_states import SFN_STATES
    from workflows.render import STATE_MACHINE_FILE, render
    from workflows.render.asl import walk

    spec = load_spec(EXAMPLES / f"{example}.yaml")
    asl = json.loads(render(spec, "stepfunctions", use_cache=False)[STATE_MACHINE_FILE])
    known = {s.name + suffix: s.name for s in spec.stages for suffix in SFN_STATES.get(s.kind, ("",))}
    plumbing = {"initialize", "resolve-parameters", "pipeline-succeeded"}
    for name, _ in walk(asl):
        if name in plumbing or name.startswith("in-parallel-") or name.endswith(("-branch-end", "-approved?",
                                                                                 "-declined-end")):
            continue
        assert name in known, f"state {name!r} belongs to no stage in run_states.SFN_STATES"
    assert set(known) <= {n for n, _ in walk(asl)}, "every state the table names exists in the rendering"


def test_history_ties_interleaved_branch_events_to_their_states():
    """`mlpipe history` reads the same way: batch-score's failure, reported after record-model and
    approve were entered, is batch-score's; the Parallel frames are not rows."""
    from workflows.ops.stepfunctions import stages

    rows = {r["stage"]: r for r in stages(failed_branch())}
    assert rows["batch-score"]["status"] == "failed" and "transform failed" in rows["batch-score"]["error"]
    assert rows["approve"]["status"] == "aborted" and rows["record-model"]["status"] == "aborted"
    assert rows["register"]["status"] == "succeeded" and rows["register"]["attempts"] == 1
    assert not [r for r in rows if r.startswith("in-parallel-")]
