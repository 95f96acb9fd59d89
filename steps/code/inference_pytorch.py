"""Serving script for models trained by train_pytorch.py (SageMaker PyTorch inference contract).

train_pytorch.py copies this file into the model as ``code/inference.py``, so ``model.tar.gz``
is servable as is: the PyTorch inference container calls model_fn, input_fn, predict_fn and
output_fn below. Requests and responses are text/csv: one row of features per line, one
prediction per line. Self-contained (torch and numpy only), like every script in steps/code/.
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


def input_fn(body, content_type: str = CSV):
    if content_type.split(";")[0].strip() != CSV:
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
    """CSV for ``text/csv``, for ``*/*`` and for a request with no Accept header (the toolkit then
    passes SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT, which the model sets to text/csv)."""
    if (accept or CSV).split(";")[0].strip() not in (CSV, "*/*"):
        raise ValueError(f"unsupported accept type {accept!r}; ask for {CSV}")
    return "".join(f"{float(p):.10g}\n" for p in predictions)
