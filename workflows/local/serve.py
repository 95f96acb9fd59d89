"""Serve a model over HTTP on 127.0.0.1 under the SageMaker inference contract:
``GET /ping`` answers 200 when the model is loaded, ``POST /invocations`` takes text/csv rows
(features only, no header) and answers one prediction per line."""

from __future__ import annotations

import io
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable


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


class _Handler(BaseHTTPRequestHandler):
    predict: Callable = None  # type: ignore[assignment]
    capture: Callable | None = None

    def log_message(self, fmt, *args):  # quiet; the stage log records requests itself
        pass

    def _send(self, code: int, body: bytes, content_type: str = "text/plain") -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

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
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
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


class NotAModel(ValueError):
    """The file given to serve is not a loadable model.tar.gz."""


def check_model(model_tar: Path) -> None:
    """Refuse, with one message, a file that is not a model tarball."""
    import tarfile

    if model_tar.is_file() and not tarfile.is_tarfile(model_tar):
        raise NotAModel(f"{model_tar} is not a model tarball (a SageMaker model.tar.gz)")


def make_server(model_tar: Path, port: int = 0, capture: Callable | None = None) -> ThreadingHTTPServer:
    """A server for ``model_tar`` on 127.0.0.1:``port`` (0: any free port). Raises NotAModel
    for a file that is not a model, OverflowError/OSError for a port it cannot listen on."""
    check_model(model_tar)
    handler = type("ModelHandler", (_Handler,), {"predict": staticmethod(load_predictor(model_tar)),
                                                 "capture": staticmethod(capture) if capture else None})
    return ThreadingHTTPServer(("127.0.0.1", port), handler)


class Capture:
    """Data capture, like an endpoint's DataCaptureConfig: a sample of requests and responses
    written as JSON lines. Sampling is deterministic (every k-th request)."""

    def __init__(self, path: Path, percentage: int) -> None:
        self.path, self.percentage, self.count, self.lock = path, percentage, 0, threading.Lock()

    def __call__(self, request: bytes, response: bytes) -> None:
        with self.lock:
            self.count += 1
            if self.percentage <= 0 or (self.count * self.percentage) // 100 == ((self.count - 1) * self.percentage) // 100:
                return
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a") as f:
                f.write(json.dumps({"captureData": {
                    "endpointInput": {"mode": "INPUT", "observedContentType": "text/csv", "data": request.decode()},
                    "endpointOutput": {"mode": "OUTPUT", "observedContentType": "text/csv", "data": response.decode()}},
                    "eventMetadata": {"inferenceTime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}}) + "\n")
