"""Score a trained model on the test split: the built-in ``evaluate`` processing step.

Runs in the training image of the model it scores (SageMaker XGBoost 1.7-1: Python 3.8,
numpy 1.19; or the PyTorch training image) and, unmodified, in mlpipe's local runner. The
metrics are plain numpy so that every one of those images can run it; xgboost and torch are
imported only when a model of that kind turns up.

Contract (BASE is /opt/ml/processing, or $MLPIPE_PROCESSING_DIR for the local runner):
  reads   BASE/model/model.tar.gz (``xgboost-model``, or the folds ``xgboost-model-<i>`` of a
          _kfold job, whose predictions are averaged as the XGBoost image's endpoint does; or
          ``model.pt``/``model.pth`` written by train_pytorch) and every *.csv under BASE/test/
          (no header, target first)
  args    --problem-type regression|classification (default regression)
  writes  BASE/evaluation/evaluation.json, the SageMaker model-quality report layout,
          metrics.json (flat) and predictions.csv (actual,predicted per test row)
          ({"regression_metrics": {"mse": {"value": .., "standard_deviation": ..}, ..}}), and
          BASE/evaluation/metrics.json, the same values flat plus the row count
          ({"mse": .., "n": ..}); the report holds metric sections only, as readers expect
An unusable model or test set exits with code 2 and one ``error: ...`` line on stderr.

The local model server reuses load_model and predict.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Callable, NamedTuple, Sequence

import numpy as np
import pandas as pd

BASE = os.environ.get("MLPIPE_PROCESSING_DIR", "/opt/ml/processing")
PROBLEM_TYPES = ("regression", "classification")
PYTORCH_FILES = ("model.pt", "model.pth")
BOOTSTRAP_ROUNDS = 100


class EvaluationError(ValueError):
    """The model or the test data cannot be scored; the message says what to fix."""


class Model(NamedTuple):
    """A loaded model: its library, its training objective (XGBoost naming) and its predictor.

    ``predict(features)`` returns the raw output: values for regression, positive-class
    probabilities for binary:logistic, an (n, classes) matrix for multi:softprob.
    """

    kind: str
    objective: str
    predict: Callable[[np.ndarray], np.ndarray]


# --- models ----------------------------------------------------------------------------------

def load_model(model_tar_path: str | os.PathLike) -> Model:
    """Load the model in a SageMaker model.tar.gz, or in a directory it was extracted to."""
    path = Path(model_tar_path)
    if path.is_dir():
        return _load_dir(path)
    if not path.is_file():
        raise EvaluationError(f"no model at {path}; the evaluation input 'model' must be the training "
                              "job's model.tar.gz")
    with tempfile.TemporaryDirectory() as tmp:  # both loaders read the whole model into memory
        _extract(path, Path(tmp))
        return _load_dir(Path(tmp))


def predict(model_dir: str | os.PathLike, features: np.ndarray) -> np.ndarray:
    """One-shot prediction; a server should call load_model once and reuse Model.predict."""
    return load_model(model_dir).predict(features)


def _extract(archive: Path, dest: Path) -> None:
    """Extract regular files and directories only, and only inside ``dest``."""
    root = os.path.realpath(dest)
    try:
        with tarfile.open(archive, "r:*") as tar:
            for member in tar.getmembers():
                target = os.path.realpath(os.path.join(root, member.name))
                if not (member.isfile() or member.isdir()) or os.path.commonpath([root, target]) != root:
                    raise EvaluationError(f"{archive.name} holds an unsafe entry {member.name!r} "
                                          "(a link, a device or a path outside the archive)")
            # The data filter exists from Python 3.12 (and in patched 3.8+); older ones are
            # covered by the check above.
            if hasattr(tarfile, "data_filter"):
                tar.extractall(dest, filter="data")
            else:
                tar.extractall(dest)
    except tarfile.TarError as exc:
        raise EvaluationError(f"{archive} is not a readable tar.gz: {exc}") from None


def _load_dir(directory: Path) -> Model:
    # xgboost-model, or xgboost-model-<fold> for each fold of a _kfold job (the XGBoost image's
    # endpoint loads every file of the model and averages their predictions)
    boosters = sorted(p for p in directory.iterdir() if p.is_file() and re.fullmatch(r"xgboost-model(-\d+)?", p.name))
    if boosters:
        return _load_xgboost(boosters)
    for name in PYTORCH_FILES:
        if (directory / name).is_file():
            return _load_pytorch(directory / name)
    found = [str(p.relative_to(directory)) for p in _files(directory)][:10]
    raise EvaluationError(f"the model holds neither xgboost-model nor {' nor '.join(PYTORCH_FILES)} "
                          f"(found: {', '.join(found) or 'nothing'})")


def _load_xgboost(paths: list[Path]) -> Model:
    try:
        import xgboost
    except ImportError:
        raise EvaluationError("evaluating an XGBoost model needs the xgboost package; run the "
                              "evaluation in the XGBoost image") from None
    boosters = [_load_booster(xgboost, path) for path in paths]
    objective = json.loads(boosters[0].save_config())["learner"]["objective"]["name"]
    width = boosters[0].num_features()

    def predict_xgboost(features) -> np.ndarray:
        dmatrix = xgboost.DMatrix(_check_width(features, width))
        outputs = [booster.predict(dmatrix) for booster in boosters]
        if len(outputs) == 1:
            return outputs[0]
        if objective in ("multi:softmax", "binary:hinge"):  # the endpoint's vote: the most frequent, smallest first
            stacked = np.asarray(outputs)
            values = np.unique(stacked)
            return values[np.argmax([(stacked == v).sum(axis=0) for v in values], axis=0)]
        return np.mean(outputs, axis=0)

    return Model("xgboost", objective, predict_xgboost)


def _load_booster(xgboost, path: Path):
    booster = xgboost.Booster()
    try:
        # From a buffer, xgboost tells JSON, UBJSON and the legacy binary format apart by content;
        # from an extension-less path, newer versions guess and warn.
        booster.load_model(bytearray(path.read_bytes()))
        return booster
    except Exception as exc:  # XGBoostError (its message may hold binary bytes: UnicodeDecodeError)
        reason = (str(exc).splitlines() or [type(exc).__name__])[0]
    try:
        # Local runs: xgboost >= 3.1 no longer reads the binary format the XGBoost 1.x images
        # write; mlpipe converts it (the XGBoost image's own xgboost reads it natively).
        from workflows.local.xgboost_model import load_booster
    except ImportError:
        load_booster = None
    if load_booster is not None:
        try:
            return load_booster(path)
        except Exception as exc:  # not a model in any format
            reason = str(exc)
    raise EvaluationError(f"cannot load {path.name} ({reason}); models from SageMaker XGBoost before 1.3-1 "
                          "are pickles: retrain with 1.3-1 or later")


def _load_pytorch(path: Path) -> Model:
    try:
        import torch
    except ImportError:
        raise EvaluationError("evaluation of pytorch models needs torch: run the evaluation in the "
                              "PyTorch training image (an evaluation stage uses its training stage's "
                              "image by default) or install mlpipe[torch] for local runs") from None
    try:
        saved = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises pickle, runtime and zip errors alike for a bad file
        raise EvaluationError(f"cannot load {path.name}: {exc}") from None
    if not isinstance(saved, dict) or not {"layers", "state_dict", "input_dim"} <= saved.keys():
        raise EvaluationError(f"{path.name} was not written by train_pytorch (a dict with layers, "
                              "state_dict and input_dim); evaluation of other pytorch models needs "
                              "their own evaluation script")
    if saved.get("text_columns"):
        raise EvaluationError(f"{path.name} was trained on text columns; evaluation of such pytorch "
                              "models needs the model's own inference code and raw test data")
    net = torch.nn.Sequential(*(_torch_layer(torch.nn, spec) for spec in saved["layers"]))
    net.load_state_dict(saved["state_dict"])
    net.eval()

    def predict_pytorch(features) -> np.ndarray:
        features = _check_width(features, saved["input_dim"])
        with torch.no_grad():
            out = net(torch.as_tensor(features, dtype=torch.float32))
        return out.numpy().astype(float).ravel()

    return Model("pytorch", saved.get("objective", "reg:squarederror"), predict_pytorch)


def _torch_layer(nn, spec):
    """The layer list train_pytorch records: ["linear", in, out] or ["relu"]."""
    if spec[0] == "linear":
        return nn.Linear(int(spec[1]), int(spec[2]))
    if spec[0] == "relu":
        return nn.ReLU()
    raise EvaluationError(f"unknown layer {spec!r} in the pytorch model")


def _check_width(features, width: int) -> np.ndarray:
    """``features`` as a float matrix, provided it has the model's number of columns."""
    features = np.asarray(features, dtype=float)
    if features.ndim != 2 or features.shape[1] != width:
        got = features.shape[1] if features.ndim == 2 else "?"
        raise EvaluationError(f"the data has {got} feature columns but the model expects {width}; "
                              "score data made by the same preprocessing run as the training data")
    return features


def _files(directory: Path) -> list[Path]:
    """Every file under ``directory``, sorted; symlinked folders count (the local runner links inputs)."""
    return sorted(Path(root) / name for root, _, names in os.walk(directory, followlinks=True) for name in names)


# --- test data -------------------------------------------------------------------------------

def read_test(directory: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """(targets, features) from the headerless, target-first CSVs under ``directory``."""
    directory = Path(directory)
    files = [p for p in _files(directory) if p.suffix.lower() == ".csv"]
    if not files:
        raise EvaluationError(f"no CSV files under {directory}; the evaluation input 'test' must be "
                              "the preprocess step's test output")
    frames = []
    for path in files:
        try:
            # padding is ignored and a blank cell is a missing value, as in preprocess.py (a missing
            # feature is xgboost's missing value; a missing target cannot be scored)
            frame = pd.read_csv(path, header=None, skipinitialspace=True)
        except pd.errors.EmptyDataError:
            raise EvaluationError(f"{path} is empty") from None
        unlabelled = np.flatnonzero(frame[0].isna().to_numpy())
        if len(unlabelled):
            raise EvaluationError(f"{path}: data row {unlabelled[0] + 1} has no target (the first column); "
                                  f"{len(unlabelled)} row(s) lack one: score rows with a target only, such as "
                                  "the preprocess step's test output")
        frames.append(frame)
    table = pd.concat(frames, ignore_index=True)
    text = [c for c in table.columns if not pd.api.types.is_numeric_dtype(table[c])]
    if table.shape[1] < 2 or text:
        raise EvaluationError(f"{directory} must hold numbers only, target first then at least one "
                              "feature, without a header row (the preprocess step's test output)")
    values = table.to_numpy(dtype=float)
    return values[:, 0], values[:, 1:]


# --- metrics ---------------------------------------------------------------------------------

def regression_metrics(y: np.ndarray, predictions: np.ndarray) -> dict:
    """mse, rmse, mae and r2 (r2 is 1.0 for a perfect fit of a constant target, else 0.0 there)."""
    errors = predictions - y
    mse = float(np.mean(errors ** 2))
    spread = float(np.sum((y - y.mean()) ** 2))
    residual = float(np.sum(errors ** 2))
    r2 = 1.0 - residual / spread if spread else (1.0 if residual == 0 else 0.0)
    return {"mse": mse, "rmse": math.sqrt(mse), "mae": float(np.mean(np.abs(errors))), "r2": r2}


def classification_metrics(y: np.ndarray, labels: np.ndarray, scores: np.ndarray | None = None,
                           multiclass: bool = False) -> dict:
    """accuracy, f1 (binary: of class 1; multiclass: macro) and, given scores, ROC auc.

    Binary scores are positive-class scores; multiclass scores an (n, classes) matrix, whose auc
    is the one-vs-rest macro average over the classes present in ``y``. auc is left out when
    ``y`` holds a single class.
    """
    metrics = {"accuracy": float(np.mean(labels == y))}
    if multiclass:
        classes = np.union1d(y, labels)
        metrics["f1"] = float(np.mean([_f1(y == c, labels == c) for c in classes]))
        if scores is not None:
            aucs = [_auc(y == c, scores[:, c]) for c in range(scores.shape[1])
                    if np.any(y == c) and np.any(y != c)]
            if aucs:
                metrics["auc"] = float(np.mean(aucs))
    else:
        metrics["f1"] = _f1(y == 1, labels == 1)
        if scores is not None and np.any(y == 1) and np.any(y != 1):
            metrics["auc"] = _auc(y == 1, scores)
    return metrics


def _f1(actual: np.ndarray, predicted: np.ndarray) -> float:
    both = np.sum(actual) + np.sum(predicted)
    return float(2 * np.sum(actual & predicted) / both) if both else 0.0


def _auc(positive: np.ndarray, scores: np.ndarray) -> float:
    """ROC auc as the Mann-Whitney statistic, ties counted half."""
    _, inverse, counts = np.unique(scores, return_inverse=True, return_counts=True)
    ranks = (np.cumsum(counts) - (counts - 1) / 2.0)[inverse.ravel()]
    n_pos = int(np.sum(positive))
    n_neg = len(positive) - n_pos
    return float((np.sum(ranks[positive]) - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def _decide(raw: np.ndarray, objective: str) -> tuple[np.ndarray, np.ndarray | None, bool]:
    """(labels, scores or None, multiclass) from a classifier's raw output."""
    if objective.startswith("multi:"):
        if raw.ndim == 2:  # multi:softprob
            return raw.argmax(axis=1), raw, True
        return np.rint(raw).astype(int), None, True  # multi:softmax predicts labels only
    if objective in ("binary:logistic", "reg:logistic"):
        return (raw > 0.5).astype(int), raw, False
    if objective == "binary:logitraw":
        return (raw > 0).astype(int), raw, False
    if objective == "binary:hinge":
        return raw.astype(int), None, False
    raise EvaluationError(f"the model's objective {objective!r} does not predict classes; train a "
                          "classifier with binary:logistic or multi:softprob")


def evaluate(model: Model, y: np.ndarray, features: np.ndarray, problem_type: str,
             predicted: list | None = None) -> dict:
    """The model-quality report: each metric's value and its bootstrap standard deviation.
    ``predicted``, if given, receives the prediction of every row (a value, or a class code)."""
    raw = np.asarray(model.predict(features), dtype=float)
    if not np.all(np.isfinite(raw)):
        raise EvaluationError(f"the model predicted {int(np.sum(~np.isfinite(raw)))} non-finite values")
    if problem_type == "regression":
        section = "regression_metrics"

        def compute(rows):
            return regression_metrics(y[rows], raw[rows])
    else:
        if not np.array_equal(y, np.rint(y)) or y.min() < 0:
            raise EvaluationError("classification targets must be class codes 0..k-1; preprocess the "
                                  "data with --problem-type classification")
        y = y.astype(int)
        labels, scores, multiclass = _decide(raw, model.objective)
        section = "multiclass_classification_metrics" if multiclass else "binary_classification_metrics"

        def compute(rows):
            return classification_metrics(y[rows], labels[rows], None if scores is None else scores[rows],
                                          multiclass)
    if predicted is not None:
        predicted.extend((raw if problem_type == "regression" else labels).tolist())
    n = len(y)
    values = compute(np.arange(n))
    rng = np.random.RandomState(0)
    samples = [compute(rng.randint(0, n, n)) for _ in range(BOOTSTRAP_ROUNDS)]
    metrics = {}
    for name, value in values.items():
        spread = [s[name] for s in samples if name in s]
        metrics[name] = {"value": value, "standard_deviation": float(np.std(spread)) if spread else 0.0}
    report = {section: metrics}
    if problem_type == "classification":
        # The quality gate's path is fixed when the pipeline is built, before binary vs multiclass
        # is known, so it reads this problem-type-neutral copy.
        report["classification_metrics"] = metrics
    return report


def flatten(report: dict, n: int) -> dict:
    """{"mse": 4.8, ..., "n": 627}: a report's values and the number of rows scored."""
    flat = {name: metric["value"] for section in report.values() for name, metric in section.items()}
    flat["n"] = n
    return flat


# --- command line ----------------------------------------------------------------------------

def _file_mode() -> int:
    """0666 less the umask: what a file created with open() gets (reading the umask sets it;
    set it straight back: this script runs in one thread)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


def _write_json_atomic(path: Path, obj: dict) -> None:
    """Write through a temp file in the same directory, so readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(json.dumps(obj, indent=2, sort_keys=True, allow_nan=False) + "\n")
        os.chmod(tmp, _file_mode())  # mkstemp creates 0600; the mode open() would give, as the umask says
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Score a model on the test split.")
    parser.add_argument("--problem-type", choices=PROBLEM_TYPES, default="regression")
    args = parser.parse_args(argv)
    base = Path(BASE)
    try:
        model = load_model(base / "model" / "model.tar.gz")
        y, features = read_test(base / "test")
        predicted: list = []
        report = evaluate(model, y, features, args.problem_type, predicted)
    except EvaluationError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    flat = flatten(report, len(y))
    _write_json_atomic(base / "evaluation" / "evaluation.json", report)
    _write_json_atomic(base / "evaluation" / "metrics.json", flat)
    # actual and predicted per test row: what a report plots (predicted vs actual, confusion matrix)
    rows = "".join(f"{a:.10g},{p:.10g}\n" for a, p in zip(y.tolist(), predicted))
    (base / "evaluation" / "predictions.csv").write_text("actual,predicted\n" + rows)
    print("evaluation: " + json.dumps(flat, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
