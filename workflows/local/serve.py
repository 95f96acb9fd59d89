"""Serve a model over HTTP on 127.0.0.1 under the SageMaker inference contract:
``GET /ping`` answers 200 when the model is loaded, ``POST /invocations`` takes text/csv rows
(features only, no header) and answers one prediction per line.

A framework model (a model.tar.gz holding ``code/inference.py``, as train_pytorch writes it) is
served by its own inference script under the inference toolkit's rules (``inference_toolkit``),
in the environment both renderers give the model (``steps.contract.FRAMEWORK_MODEL_ENV``); any
other model by the evaluation script's loader, as the XGBoost image serves it (415 for a content
type other than text/csv)."""

from __future__ import annotations

import io
import json
import shutil
import sys
import tarfile
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable, Mapping

from workflows.local import inference_toolkit


def load_predictor(model_tar: Path) -> Callable:
    """predict(2-D float array) -> 1-D array, using the evaluation script's own loader."""
    import numpy as np

    from steps.code import evaluate

    model = evaluate.load_model(str(model_tar))

    def predict(rows):
        return np.asarray(model.predict(np.asarray(rows, dtype=float))).reshape(len(rows), -1)[:, 0]

    return predict


def parse_csv(body: bytes):
    import numpy as np

    text = body.decode("utf-8").strip()
    if not text:
        return np.empty((0, 0))
    return np.loadtxt(io.StringIO(text), delimiter=",", ndmin=2)


class _Front(BaseHTTPRequestHandler):
    """What both model servers' front ends share: the connection and the answers' framing.
    Persistent connections, as the images' front ends keep them (a client sends its requests
    on one connection); an error answer, or one to a request whose body was not read, closes
    it, and an idle one closes after ``timeout`` seconds. No Nagle: an answer's headers and
    body are two writes, and the second would wait for the client's delayed ACK of the first
    (tens of milliseconds a request)."""
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    timeout = 60
    body_read = False

    def log_message(self, fmt, *args):  # quiet; the stage log records requests itself
        pass

    def _read_body(self) -> bytes:
        self.body_read = True
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _unread_body(self) -> bool:
        length = (self.headers.get("Content-Length") or "0").strip()
        chunked = "chunked" in (self.headers.get("Transfer-Encoding") or "").lower()
        return not self.body_read and (chunked or length != "0")

    def _send(self, code: int, body: bytes, content_type: str = "text/plain") -> None:
        self.send_response(code)
        if code >= 400 or self._unread_body():
            self.send_header("Connection", "close")
            self.close_connection = True
        self.body_read = False  # the next request on this connection starts afresh
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class _Handler(_Front):
    predict: Callable = None  # type: ignore[assignment]
    capture: Callable | None = None

    def do_GET(self):
        if self.path == "/ping":
            self._send(200, b"")
        else:
            self._send(404, b"not found: use GET /ping or POST /invocations\n")

    def do_POST(self):
        if self.path != "/invocations":
            return self._send(404, b"not found: use POST /invocations\n")
        content_type = (self.headers.get("Content-Type") or "text/csv").split(";")[0].strip()
        if content_type != "text/csv":
            return self._send(415, f"unsupported content type {content_type}; send text/csv\n".encode())
        body = self._read_body()
        try:
            rows = parse_csv(body)
        except Exception as exc:  # a bad request must not take the server down
            return self._send(400, f"cannot parse this payload as CSV: {exc}\n".encode())
        try:
            predictions = type(self).predict(rows) if rows.size else []
        except ValueError as exc:  # e.g. the wrong number of features: the request's fault
            return self._send(400, f"cannot score this payload: {exc}\n".encode())
        except Exception as exc:  # the model failed: the server's fault
            return self._send(500, f"the model failed on this payload: {type(exc).__name__}: {exc}\n".encode())
        answer = "".join(f"{p:.10g}\n" for p in predictions).encode()
        if type(self).capture is not None:
            type(self).capture(body, answer)
        self._send(200, answer, "text/csv")


class _FrameworkHandler(_Front):
    """The PyTorch image's front end: /ping once model_fn has run, /invocations through the
    toolkit's request rules; one request at a time (the image's one TorchServe worker)."""
    service: inference_toolkit.Service = None  # type: ignore[assignment]
    capture: Callable | None = None
    lock = threading.Lock()

    def do_GET(self):
        if self.path == "/ping":
            self._send(200, b'{\n  "status": "Healthy"\n}\n', "application/json")
        else:
            self._send(404, b"not found: use GET /ping or POST /invocations\n")

    def do_POST(self):
        if self.path != "/invocations":
            return self._send(404, b"not found: use POST /invocations\n")
        body = self._read_body()
        with type(self).lock:
            answer = type(self).service.invoke(list(self.headers.items()), body)
        if answer.status == 200 and type(self).capture is not None:
            type(self).capture(body, answer.body, self.headers.get("Content-Type") or "", answer.content_type or "")
        self._send(answer.status, answer.body, answer.content_type or "text/plain")


class _ModelServer(ThreadingHTTPServer):
    """Removes the extracted model when closed."""
    model_dir: Path | None = None

    def server_close(self) -> None:
        super().server_close()
        if self.model_dir is not None:
            code_dir = str(self.model_dir / "code")
            if code_dir in sys.path:  # the inference script's folder, importable while it served
                sys.path.remove(code_dir)
            shutil.rmtree(self.model_dir, ignore_errors=True)
            self.model_dir = None


def _framework_server(model_tar: Path, port: int, capture: Callable | None, env: Mapping[str, str]):
    from steps.code import evaluate

    model_dir = Path(tempfile.mkdtemp(prefix="mlpipe-serve-"))
    try:
        evaluate._extract(model_tar, model_dir)   # regular files only, inside model_dir
        service = inference_toolkit.Service(model_dir, env)
        handler = type("FrameworkModelHandler", (_FrameworkHandler,), {
            "service": service, "capture": staticmethod(capture) if capture else None, "lock": threading.Lock()})
        server = _ModelServer(("127.0.0.1", port), handler)
    except BaseException:
        shutil.rmtree(model_dir, ignore_errors=True)
        raise
    server.model_dir = model_dir
    return server


class NotAModel(ValueError):
    """The file given to serve is not a loadable model.tar.gz."""


def check_model(model_tar: Path) -> None:
    """Refuse, with one message, a file that is not a model tarball."""
    import tarfile

    if model_tar.is_file() and not tarfile.is_tarfile(model_tar):
        raise NotAModel(f"{model_tar} is not a model tarball (a SageMaker model.tar.gz)")


def make_server(model_tar: Path, port: int = 0, capture: Callable | None = None,
                env: Mapping[str, str] | None = None) -> ThreadingHTTPServer:
    """A server for ``model_tar`` on 127.0.0.1:``port`` (0: any free port). Raises NotAModel
    for a file that is not a model, OverflowError/OSError for a port it cannot listen on.
    ``env``: a framework model's environment (default: the one the renderers give it; the local
    runner passes it, so that an endpoint stage's process never imports the config models)."""
    check_model(model_tar)
    if env is None:
        from steps.contract import FRAMEWORK_MODEL_ENV

        env = dict(FRAMEWORK_MODEL_ENV)
    if model_tar.is_file():
        with tarfile.open(model_tar, "r:*") as tar:
            names = tar.getnames()
        if inference_toolkit.is_framework_model(names, env):
            return _framework_server(model_tar, port, capture, env)
    handler = type("ModelHandler", (_Handler,), {"predict": staticmethod(load_predictor(model_tar)),
                                                 "capture": staticmethod(capture) if capture else None})
    return ThreadingHTTPServer(("127.0.0.1", port), handler)


class Capture:
    """Data capture, like an endpoint's DataCaptureConfig: a sample of requests and responses
    written as JSON lines. Sampling is deterministic (every k-th request)."""

    def __init__(self, path: Path, percentage: int) -> None:
        self.path, self.percentage, self.count, self.lock = path, percentage, 0, threading.Lock()

    def __call__(self, request: bytes, response: bytes, content_type: str = "text/csv",
                 response_type: str = "text/csv") -> None:
        with self.lock:
            self.count += 1
            if self.percentage <= 0 or (self.count * self.percentage) // 100 == ((self.count - 1) * self.percentage) // 100:
                return
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a") as f:
                f.write(json.dumps({"captureData": {
                    "endpointInput": {"mode": "INPUT", "observedContentType": content_type,
                                      "data": request.decode(errors="replace")},
                    "endpointOutput": {"mode": "OUTPUT", "observedContentType": response_type,
                                       "data": response.decode(errors="replace")}},
                    "eventMetadata": {"inferenceTime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}}) + "\n")
