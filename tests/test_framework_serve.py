"""`mlpipe serve` of a framework model runs its inference script under the SageMaker inference
toolkit's rules (workflows/local/inference_toolkit.py), in the environment both renderers give
the model: a request with no Accept header, or */*, gets CSV predictions.

The contract tests use small numpy inference scripts, so they run without torch; the end-to-end
test trains with train_pytorch.py and serves its real code/inference.py (needs mlpipe[torch])."""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import tarfile
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT, free_port

from steps.contract import FRAMEWORK_MODEL_ENV
from workflows.local.serve import make_server

CODE = ROOT / "steps" / "code"

# Echoes what the toolkit hands a transform_fn: the body's type, the content type and the accept.
ECHO = '''
import json

def model_fn(model_dir):
    return "echo"

def transform_fn(model, data, content_type, accept):
    return json.dumps({"body": type(data).__name__, "content_type": content_type, "accept": accept})
'''

# A linear model with the four functions, predict_fn taking the context.
LINEAR = '''
import io
import os

import numpy as np


class BaseInferenceToolkitError(Exception):  # as sagemaker_inference.errors defines it
    def __init__(self, status_code, message, phrase):
        self.status_code, self.message, self.phrase = status_code, message, phrase
        super().__init__(status_code, message, phrase)


def model_fn(model_dir):
    return np.load(os.path.join(model_dir, "weights.npy"))

def input_fn(body, content_type):
    if content_type is not None and content_type.split(";")[0] != "text/csv":
        raise ValueError(f"unsupported content type {content_type!r}")
    text = body.decode() if isinstance(body, bytes) else body
    return np.loadtxt(io.StringIO(text), delimiter=",", ndmin=2)

def predict_fn(data, model, context):
    assert os.path.isdir(context.system_properties["model_dir"])
    return data @ model

def output_fn(prediction, accept):
    if accept == "text/csv":
        return "".join(f"{p:g}\\n" for p in prediction), "text/csv"
    if accept == "application/json":
        return prediction.tolist()          # TorchServe writes it as JSON
    if accept == "application/x-npy":
        return {"not": object()}            # nothing TorchServe can write
    if accept == "application/x-teapot":
        raise BaseInferenceToolkitError(418, "no tea here", "I'm a teapot")
    raise ValueError(f"unsupported accept type {accept!r}")
'''


def _model(tmp_path: Path, script: str, name: str = "model", files: dict | None = None) -> Path:
    src = tmp_path / f"{name}-src"
    (src / "code").mkdir(parents=True)
    (src / "code" / "inference.py").write_text(textwrap.dedent(script))
    for rel, array in (files or {}).items():
        np.save(src / rel, array)
    tar_path = tmp_path / f"{name}.tar.gz"
    with tarfile.open(tar_path, "w:gz") as tar:
        for path in sorted(src.rglob("*")):
            tar.add(path, arcname=path.relative_to(src).as_posix(), recursive=False)
    return tar_path


class _Served:
    def __init__(self, model_tar: Path, **kwargs) -> None:
        self.server = make_server(model_tar, port=0, **kwargs)
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()
        self.port = self.server.server_address[1]

    def post(self, body: bytes, headers: dict[str, str]) -> tuple[int, str | None, bytes]:
        """POST /invocations with exactly these headers (http.client adds no Accept nor Content-Type)."""
        return _post(self.port, body, headers)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _post(port: int, body: bytes, headers: dict[str, str]) -> tuple[int, str | None, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("POST", "/invocations", body=body, headers=headers)
        response = conn.getresponse()
        return response.status, response.getheader("Content-Type"), response.read()
    finally:
        conn.close()


@pytest.fixture
def served():
    started: list[_Served] = []

    def start(model_tar: Path, **kwargs) -> _Served:
        started.append(_Served(model_tar, **kwargs))
        return started[-1]

    yield start
    for s in started:
        s.close()


def test_the_toolkit_passes_content_type_accept_and_body_as_the_image_does(tmp_path, served):
    echo = served(_model(tmp_path, ECHO))

    def seen(headers):
        status, content_type, body = echo.post(b"1,2\n", headers)
        assert status == 200, body
        return json.loads(body), content_type

    # No headers: no content type, bytes, and the model's default accept (text/csv), which is
    # then also the response's content type.
    assert seen({}) == ({"body": "bytes", "content_type": None, "accept": "text/csv"}, "text/csv")
    assert seen({"Content-Type": "text/csv", "Accept": "*/*"}) == (
        {"body": "str", "content_type": "text/csv", "accept": "text/csv"}, "text/csv")
    # Decoded only for exactly text/csv or application/json; the header as sent; any spelling
    # of its name that the toolkit's regex takes.
    assert seen({"Content-Type": "text/csv; charset=utf-8", "Accept": "application/json"})[0] == {
        "body": "bytes", "content_type": "text/csv; charset=utf-8", "accept": "application/json"}
    assert seen({"content-type": "application/json", "accept": "text/csv, */*"})[0] == {
        "body": "str", "content_type": "application/json", "accept": "text/csv, */*"}
    # Without SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT in the model's environment, the toolkit's own
    # default: application/json (what AWS did before the renderers set it).
    bare = served(_model(tmp_path, ECHO, "bare"), env={"SAGEMAKER_PROGRAM": "inference.py"})
    status, _, body = bare.post(b"1\n", {})
    assert status == 200 and json.loads(body)["accept"] == "application/json"


def test_handlers_answers_and_error_statuses(tmp_path, served):
    weights = np.array([2.0, -1.0])
    model = served(_model(tmp_path, LINEAR, files={"weights.npy": weights}))
    rows = b"1,2\n3,4\n"
    csv = (200, "text/csv", b"0\n2\n")
    assert model.post(rows, {"Content-Type": "text/csv"}) == csv                  # no Accept
    assert model.post(rows, {"Content-Type": "text/csv", "Accept": "*/*"}) == csv
    assert model.post(rows, {}) == csv                                             # no headers at all
    status, content_type, body = model.post(rows, {"Content-Type": "text/csv", "Accept": "application/json"})
    assert (status, content_type, json.loads(body)) == (200, "application/json", [0.0, 2.0])
    # An exception in a handler is 500 with its message and the traceback; the toolkit's own
    # error family answers its status; an answer TorchServe cannot write is 503.
    status, _, body = model.post(b"{}", {"Content-Type": "application/json"})
    assert status == 500 and body.startswith(b"unsupported content type 'application/json'\nTraceback")
    assert model.post(rows, {"Accept": "application/x-teapot"})[0] == 418
    assert model.post(rows, {"Accept": "application/x-npy"})[:1] == (503,)
    # The server goes on after failures.
    assert model.post(rows, {}) == csv


def test_transform_fn_beside_input_fn_is_refused_at_start_up(tmp_path):
    script = ECHO + "\ndef input_fn(body, content_type):\n    return body\n"
    with pytest.raises(ValueError, match="Cannot use transform_fn implementation in conjunction"):
        make_server(_model(tmp_path, script), port=0)


def test_data_capture_records_the_observed_content_types(tmp_path, served):
    from workflows.local.serve import Capture

    capture = tmp_path / "capture.jsonl"
    model = served(_model(tmp_path, LINEAR, files={"weights.npy": np.array([1.0])}),
                   capture=Capture(capture, 100))
    assert model.post(b"5\n", {"Content-Type": "text/csv; charset=utf-8"}) == (200, "text/csv", b"5\n")
    record = json.loads(capture.read_text())["captureData"]
    assert record["endpointInput"] == {"mode": "INPUT", "observedContentType": "text/csv; charset=utf-8", "data": "5\n"}
    assert record["endpointOutput"] == {"mode": "OUTPUT", "observedContentType": "text/csv", "data": "5\n"}


def test_the_renderers_and_serve_share_the_model_environment():
    assert FRAMEWORK_MODEL_ENV == {"SAGEMAKER_PROGRAM": "inference.py", "SAGEMAKER_SUBMIT_DIRECTORY": "/opt/ml/model/code",
                                   "SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT": "text/csv"}


# --- through the CLI ---------------------------------------------------------------------------

def _mlpipe_serve(model_tar: Path, runs: Path):
    """`mlpipe serve MODEL` in a subprocess, once /ping answers: (process, port)."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "workflows.cli", "serve", str(model_tar), "--port", str(port),
                             "--runs-dir", str(runs)], cwd=ROOT, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"mlpipe serve exited {proc.returncode}: {proc.stderr.read()}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/ping")
            response = conn.getresponse()
            assert response.status == 200 and json.loads(response.read()) == {"status": "Healthy"}
            conn.close()
            return proc, port
        except OSError:
            time.sleep(0.1)
    proc.terminate()
    pytest.fail("mlpipe serve did not answer /ping within 60 s")


def _stop(proc) -> None:
    proc.terminate()
    proc.wait(timeout=10)


def test_mlpipe_serve_runs_the_models_inference_script(tmp_path):
    model_tar = _model(tmp_path, LINEAR, files={"weights.npy": np.array([0.5, 0.25])})
    proc, port = _mlpipe_serve(model_tar, tmp_path / "runs")
    try:
        assert _post(port, b"4,8\n", {"Content-Type": "text/csv"}) == (200, "text/csv", b"4\n")
    finally:
        _stop(proc)


def test_pytorch_endpoint_without_accept_gets_csv_predictions(tmp_path):
    """train_pytorch's model.tar.gz, served by `mlpipe serve` with its real code/inference.py."""
    pytest.importorskip("torch")
    from steps.code import evaluate

    rng = np.random.RandomState(0)
    x = rng.normal(size=(120, 3))
    ml = tmp_path / "ml"
    (ml / "train").mkdir(parents=True)
    np.savetxt(ml / "train/train.csv", np.column_stack([x @ [1.0, -2.0, 0.5] + 3.0, x]), delimiter=",", fmt="%.6f")
    env = {**os.environ, "SM_CHANNEL_TRAIN": str(ml / "train"), "SM_MODEL_DIR": str(ml / "model"),
           "SM_HPS": json.dumps({"lr": 0.05, "model_class": "linear", "max_epochs": 20, "batch_size": 16})}
    env.pop("SM_CHANNEL_VALIDATION", None)
    env.pop("SM_CHECKPOINT_DIR", None)
    trained = subprocess.run([sys.executable, str(CODE / "train_pytorch.py")], capture_output=True, text=True,
                             env=env, timeout=300)
    assert trained.returncode == 0, trained.stderr
    assert (ml / "model/code/inference.py").read_bytes() == (CODE / "inference_pytorch.py").read_bytes()
    model_tar = tmp_path / "model.tar.gz"
    with tarfile.open(model_tar, "w:gz") as tar:
        tar.add(ml / "model/model.pt", arcname="model.pt")
        tar.add(ml / "model/code/inference.py", arcname="code/inference.py")

    body = "".join(",".join(f"{v:.6f}" for v in r) + "\n" for r in x[:7]).encode()
    expected = evaluate.load_model(model_tar).predict(np.loadtxt(body.decode().splitlines(), delimiter=","))
    proc, port = _mlpipe_serve(model_tar, tmp_path / "runs")
    try:
        for headers in ({"Content-Type": "text/csv"}, {"Content-Type": "text/csv", "Accept": "*/*"}, {}):
            status, content_type, answer = _post(port, body, headers)
            assert (status, content_type) == (200, "text/csv"), (headers, answer[:500])
            np.testing.assert_allclose([float(v) for v in answer.decode().split()], expected, rtol=1e-6)
        # What the toolkit answers for a content type or an accept type the script refuses: 500.
        status, _, answer = _post(port, b"[[1, 2, 3]]", {"Content-Type": "application/json"})
        assert status == 500 and b"unsupported content type 'application/json'" in answer
        status, _, answer = _post(port, body, {"Content-Type": "text/csv", "Accept": "application/json"})
        assert status == 500 and b"unsupported accept type 'application/json'" in answer
    finally:
        _stop(proc)


# --- against the toolkit itself ----------------------------------------------------------------

class _ToolkitContext:
    """The parts of a TorchServe context that sagemaker_inference's Transformer uses."""

    def __init__(self, model_dir: Path, headers: dict[str, str]) -> None:
        self.system_properties = {"model_dir": str(model_dir)}
        self.request_processor = [type("Processor", (), {"get_request_properties": lambda _: headers})()]
        self.model_name, self.status, self.content_type = "model", 200, None

    def set_response_status(self, code, phrase):
        self.status = int(code)

    def set_response_content_type(self, idx, content_type):
        self.content_type = content_type


@pytest.mark.parametrize("script", ["ECHO", "LINEAR"])
def test_the_emulation_answers_as_the_toolkit_does(tmp_path, monkeypatch, script):
    """Where the real toolkit is installed (pip install sagemaker-inference==1.10.1), its
    Transformer and workflows/local/inference_toolkit.py answer the same requests alike."""
    transformer = pytest.importorskip("sagemaker_inference.transformer")
    from workflows.local import inference_toolkit

    model_dir = tmp_path / "model"
    (model_dir / "code").mkdir(parents=True)
    (model_dir / "code" / "inference.py").write_text(textwrap.dedent(globals()[script]))
    np.save(model_dir / "weights.npy", np.array([2.0, -1.0]))
    for key, value in FRAMEWORK_MODEL_ENV.items():
        monkeypatch.setenv(key, value)
    monkeypatch.syspath_prepend(str(model_dir / "code"))
    monkeypatch.delitem(sys.modules, "inference", raising=False)
    real = transformer.Transformer()
    mine = inference_toolkit.Service(model_dir, FRAMEWORK_MODEL_ENV)
    body = b"1,2\n3,4\n"
    for headers in ({}, {"Content-Type": "text/csv"}, {"Content-Type": "text/csv", "Accept": "*/*"},
                    {"Content-Type": "text/csv; charset=utf-8"}, {"content-type": "text/csv", "accept": "text/csv, */*"},
                    {"Content-Type": "application/json"}, {"Content-Type": "text/csv", "Accept": "application/json"},
                    {"Content-Type": "text/csv", "Accept": "application/x-npy"}):
        context = _ToolkitContext(model_dir, headers)
        out = real.transform([{"body": body}], context)[0]
        answer = mine.invoke(list(headers.items()), body)
        if context.status == 200:
            expected = out.encode() if isinstance(out, str) else out
            try:                                 # TorchServe writes other values as JSON, or answers 503
                expected = expected if isinstance(expected, bytes) else json.dumps(expected, indent=2).encode()
            except TypeError:
                assert answer.status == 503, headers
                continue
            assert (answer.status, answer.content_type, answer.body) == (200, context.content_type, expected), headers
        else:
            assert answer.status == context.status, headers
            assert answer.body.split(b"\n")[0] == out.split("\n")[0].encode(), headers
    monkeypatch.delitem(sys.modules, "inference", raising=False)


def _xgboost_model(tmp_path: Path) -> Path:
    """A model.tar.gz as the XGBoost image serves it: one booster, y = 2 x0 - x1 learned."""
    import xgboost

    x = np.random.default_rng(0).uniform(size=(200, 2))
    booster = xgboost.train({"max_depth": 3}, xgboost.DMatrix(x, label=2 * x[:, 0] - x[:, 1]), num_boost_round=5)
    model = tmp_path / "xgboost-model"
    model.write_bytes(bytes(booster.save_raw("json")))
    tar_path = tmp_path / "xgb.tar.gz"
    with tarfile.open(tar_path, "w:gz") as tar:
        tar.add(model, arcname="xgboost-model")
    return tar_path


@pytest.mark.parametrize("kind", ["xgboost", "framework"])
def test_one_connection_carries_many_requests_and_an_unsure_one_closes_it(tmp_path, served, kind):
    """Both model servers keep a connection alive, as the images' front ends do (the endpoint
    stage sends its requests on one), and answer fast on it; an error answer, or an answer to a
    request whose body was not read (a GET /ping with one), closes it, and a new connection is
    served as before."""
    model_tar = _xgboost_model(tmp_path) if kind == "xgboost" else \
        _model(tmp_path, LINEAR, files={"weights.npy": np.array([2.0, -1.0])})
    model = served(model_tar)
    conn = http.client.HTTPConnection("127.0.0.1", model.port, timeout=30)
    try:
        conn.request("POST", "/invocations", body=b"1,2\n", headers={"Content-Type": "text/csv"})
        expected = conn.getresponse().read()
        began = time.perf_counter()
        for _ in range(20):
            conn.request("POST", "/invocations", body=b"1,2\n", headers={"Content-Type": "text/csv"})
            response = conn.getresponse()
            assert (response.status, response.read(), response.getheader("Connection")) == (200, expected, None)
        # Each answer is two writes (headers, body): with Nagle's algorithm on, the second waits
        # for the client's delayed ACK, about 40 ms a request (0.8 s here); without, a few ms.
        assert time.perf_counter() - began < 0.5
        for method, path, status in (("POST", "/nowhere", 404), ("GET", "/ping", 200)):
            sock = conn.sock
            conn.request(method, path, body=b"1,2\n" * 1000, headers={"Content-Type": "text/csv"})
            response = conn.getresponse()
            assert (response.status, response.getheader("Connection")) == (status, "close")
            response.read()
            assert sock is not None and conn.sock is None  # http.client closed it, as the server asked
            conn.request("GET", "/ping")  # a new connection
            assert conn.getresponse().read() is not None
    finally:
        conn.close()
    assert model.post(b"1,2\n", {"Content-Type": "text/csv"})[2] == expected
