"""Serving script for models trained by train_pytorch.py (SageMaker PyTorch inference contract).

train_pytorch.py copies this file into the model as ``code/inference.py``, so ``model.tar.gz``
is servable as is: the PyTorch inference container calls model_fn, input_fn, predict_fn and
output_fn below. Requests and responses are text/csv: one row of features per line, one
prediction per line. Self-contained (torch and numpy only), like every script in steps/code/.

Under the SageMaker inference toolkit (sagemaker_inference/transformer.py), input_fn gets the
request's Content-Type as sent (None without one; the body is bytes unless it is exactly
text/csv or application/json), and output_fn gets the Accept header, except that a missing
one or exactly ``*/*`` becomes $SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT, which mlpipe sets to
text/csv on the model (the toolkit's own default is application/json). An exception here is
HTTP 500 from the toolkit; ``mlpipe serve`` runs this file under the same rules.
"""

from __future__ import annotations

import io
import os

import numpy as np

CSV = "text/csv"


def _layer(nn, spec):
    if spec[0] == "linear":
        return nn.Linear(int(spec[1]), int(spec[2]))
    if spec[0] == "relu":
        return nn.ReLU()
    raise ValueError(f"unknown layer {spec!r} in model.pt")


def model_fn(model_dir: str):
    import torch

    saved = torch.load(os.path.join(model_dir, "model.pt"), map_location="cpu", weights_only=True)
    net = torch.nn.Sequential(*(_layer(torch.nn, spec) for spec in saved["layers"]))
    net.load_state_dict(saved["state_dict"])
    net.eval()
    net.input_dim = int(saved["input_dim"])
    return net


def _media_type(value: str) -> str:
    return value.split(";")[0].strip().lower()


def input_fn(body, content_type: str | None = CSV):
    """CSV rows; a request without a Content-Type is read as CSV too."""
    if content_type is not None and _media_type(content_type) != CSV:
        raise ValueError(f"unsupported content type {content_type!r}; send {CSV}")
    text = body.decode("utf-8") if isinstance(body, (bytes, bytearray)) else str(body)
    return np.loadtxt(io.StringIO(text.strip()), delimiter=",", ndmin=2)


def predict_fn(features, model):
    import torch

    if features.shape[1] != model.input_dim:
        raise ValueError(f"expected {model.input_dim} features per row, got {features.shape[1]}")
    with torch.no_grad():
        return model(torch.as_tensor(features, dtype=torch.float32)).numpy().ravel()


def output_fn(predictions, accept: str | None = CSV):
    """(CSV, text/csv) when the Accept value admits CSV: ``text/csv``, ``text/*`` or ``*/*``,
    alone or in a list (``application/json, */*``), or no value at all. Returned with its content
    type, so the response says text/csv whatever the Accept list was."""
    accepted = {_media_type(a) for a in (accept or CSV).split(",")}
    if not accepted & {CSV, "text/*", "*/*"}:
        raise ValueError(f"unsupported accept type {accept!r}; ask for {CSV}")
    return "".join(f"{float(p):.10g}\n" for p in predictions), CSV
