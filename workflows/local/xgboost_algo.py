"""SageMaker's built-in XGBoost algorithm, container 1.7-1, emulated with the installed ``xgboost``.

It follows the container's algorithm-mode training (github.com/aws/sagemaker-xgboost-container,
branch 1.7-1; paths below are under src/sagemaker_xgboost_container/), so that it trains the
model the container trains:

- Hyperparameters arrive as strings in ``hyperparameters.json`` and are validated and parsed
  by the container's schema (config/xgboost_hyperparameters.py): integers, floats, comma
  separated lists (``eval_metric``, ``updater``), aliases (``learning_rate`` is ``eta``). The
  container applies no defaults of its own: what the job does not set is xgboost 1.7.4's default
  (algorithm_mode/hyperparameter_validation.py; sagemaker_algorithm_toolkit validate()).
- CSV channels (data_utils.py): every file under the channel, up to three folders deep, is
  linked into one directory and read by xgboost's own text parser, ``DMatrix("<dir>?format=csv&
  label_column=0&delimiter=<d>")`` (data_utils.py:294-323): values are parsed straight to float32,
  the label is the first column, the delimiter is sniffed from the first line (csv.Sniffer), and
  with ``csv_weights=1`` the second column holds instance weights (``weight_column=1``). A hidden
  file anywhere in a channel fails the job (data_utils.py:672-675); an empty channel too.
- Evaluation metrics (algorithm_mode/train_utils.py:45-76, metrics/custom_metrics.py): the
  metrics of ``eval_metric`` that the container computes itself (accuracy, f1, mse, rmse, mae,
  r2, precision, recall and variants, with scikit-learn on the raw margin) go through ``feval``;
  the rest go to xgboost's ``eval_metric``. When no xgboost metric is left, xgboost's default
  metric for the objective is reported as well.
- Early stopping (algorithm_mode/train.py:286-293, callback.py:94-103): only with a validation
  channel *and* a metric (the last of ``eval_metric``, or the ``_tuning_objective_metric``);
  ``early_stopping_rounds`` alone is ignored. It watches ``validation``, maximises the metrics in
  XGB_MAXIMIZE_METRICS, and keeps the best iteration (``save_best=True``): the saved model ends at
  the best round, with attributes best_iteration, best_score and best_ntree_limit.
- ``_kfold`` (algorithm_mode/train.py:330-407): train and validation channels are read into one
  matrix, split by scikit-learn's RepeatedKFold (RepeatedStratifiedKFold for ``binary:`` objectives
  or with ``num_class``) ``_num_cv_round`` times, without a random_state (numpy's global
  generator: the container's folds differ from job to job); every fold's model is saved as
  ``xgboost-model-<i>``, and the out-of-fold predictions go to ``$SM_OUTPUT_DATA_DIR/predictions.csv``.
  Each fold is still evaluated (and early-stopped) on the original train and validation channels.
- The model is saved as ``xgboost-model`` in xgboost 1.7's legacy binary format
  (algorithm_mode/train.py:420-429), written by workflows/local/xgboost_model.py (evaluation
  and serving read it back through the same module under xgboost 3.1+).

Where the installed xgboost (3.x here) defaults differently from xgboost 1.7.4, the emulator
passes 1.7's behaviour explicitly: base_score 0.5 (1.7 estimates it only for reg:absoluteerror;
2.0+ estimates it for every objective), and tree_method "auto" resolved as 1.7 does (exact below
4M rows on one host, else approx; 2.0+ uses hist). gpu_hist runs as hist on the CPU.
"""

from __future__ import annotations

import ast
import csv
import json
import os
import sys
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from workflows.local import xgboost_model
from workflows.local.xgboost_boost import EarlyStopping, boost, eval_metrics_and_feval

# Hyperparameters the container takes out of the training parameters before xgb.train
# (algorithm_mode/train.py:161, 271-300, 331); csv_weights stays there but xgboost ignores it.
CONTAINER_ONLY = ("num_round", "save_model_on_termination", "_tuning_objective_metric", "early_stopping_rounds",
                  "_kfold", "_num_cv_round", "use_dask_gpu_training", "csv_weights")
MAX_FOLDER_DEPTH = 3             # data_utils.py:41
AUTO_APPROX_ROWS = 4 << 20       # xgboost 1.7 gbtree.cc PerformTreeMethodHeuristic
DEFAULT_BASE_SCORE = 0.5         # xgboost 1.7 ObjFunction::DefaultBaseScore
MODEL_NAME = "xgboost-model"


class UserError(Exception):
    """The job's own fault (the container raises sagemaker_algorithm_toolkit UserError)."""


class AlgorithmError(Exception):
    """The container's AlgorithmError: xgboost failed on something not in CUSTOMER_ERRORS."""


# Messages the container turns into a UserError (constants/xgb_constants.py:53-77).
CUSTOMER_ERRORS = (
    "label must be in [0,1] for logistic regression", "label must be in [0, num_class)",
    "Target is multiclass but average='binary'", "feature_names mismatch",
    "Check failed: preds.size() == info.labels_.size()",
    "Check failed: !auc_error AUC: the dataset only contains pos or neg samples",
    "Check failed: base_score > 0.0f && base_score < 1.0f base_score must be in (0,1) for logistic loss",
    "Check failed: label_correct PoissonRegression: label must be nonnegative",
    "Check failed: label_correct TweedieRegression: label must be nonnegative",
    "Parameter reg_lambda should be greater equal to 0",
)


# --- hyperparameters ---------------------------------------------------------------------------

def validate_hyperparameters(raw: Mapping[str, Any]) -> dict[str, Any]:
    """The container's validated training config: aliases replaced, values parsed (an error
    for what the container would refuse), ``updater`` joined back (train.py:123-126)."""
    from config import xgboost_hyperparameters as schema

    problems = schema.validate(raw)
    if problems:
        raise UserError("; ".join(f"{p.message} ({p.fix})" for p in problems))
    parsed: dict[str, Any] = {}
    for key, value in raw.items():
        name = schema.ALIASES.get(key, key)
        kind, text = schema.HYPERPARAMETERS[name].type, str(value)
        parsed[name] = (int(text) if kind == "integer" else float(text) if kind == "continuous"
                        else text.split(",") if kind == "list"
                        else ast.literal_eval(text) if kind in ("tuple", "nested") else text)
    if parsed.get("updater"):
        parsed["updater"] = ",".join(parsed["updater"])
    return parsed


def installed_xgboost_params(cfg: Mapping[str, Any], n_rows: int, log: Callable[[str], None] = print) -> dict:
    """The training parameters that make the installed xgboost train what xgboost 1.7.4 trains."""
    import xgboost

    params = {k: v for k, v in cfg.items() if k not in CONTAINER_ONLY}
    if int(xgboost.__version__.split(".")[0]) < 2:
        return params
    objective = params.get("objective", "reg:squarederror")
    if "base_score" not in params and objective != "reg:absoluteerror":
        params["base_score"] = DEFAULT_BASE_SCORE  # 2.0+ estimates it from the labels
    if params.get("tree_method", "auto") == "auto" and "updater" not in params and params.get("booster") != "gblinear":
        params["tree_method"] = "exact" if n_rows < AUTO_APPROX_ROWS else "approx"
    if params.get("tree_method") == "gpu_hist":
        log("tree_method gpu_hist: no GPU here, training with hist on the CPU")
        params["tree_method"] = "hist"
    params.pop("predictor", None)  # removed in xgboost 2.0 (prediction is the same)
    return params


# --- data --------------------------------------------------------------------------------------

def channel_files(path: str | os.PathLike) -> list[Path]:
    """The files the container reads from a channel: the file itself, or every file up to
    three folders deep (data_utils._make_symlinks_from_a_folder); hidden files are an error
    (data_utils.get_size)."""
    path = Path(path)
    if not path.exists():
        return []
    if path.is_file():
        return [path] if path.stat().st_size else []
    for root, _dirs, names in os.walk(path):
        hidden = [n for n in names if n.startswith(".")]
        if hidden:
            raise UserError(f"Hidden file found in the data path! Remove that before training. ({Path(root) / hidden[0]})")
    out: list[Path] = []

    def visit(folder: Path, depth: int) -> None:
        if depth > MAX_FOLDER_DEPTH:
            print(f"warning: the depth of folder {path} exceeds {MAX_FOLDER_DEPTH}; files in deeper folders are "
                  "not loaded (as in the container)", file=sys.stderr)
            return
        for item in sorted(folder.iterdir()):
            if item.is_file():
                out.append(item)
            elif item.is_dir():
                visit(item, depth + 1)

    visit(path, 1)
    return out


def _delimiter(first_line: str) -> str:
    try:
        return csv.Sniffer().sniff(first_line).delimiter
    except csv.Error as exc:
        raise UserError(f"Could not determine delimiter on line {first_line[:50]}:\n{exc}") from None


def read_dmatrix(paths: list[str | os.PathLike], csv_weights: int = 0):
    """The channel(s) as the container's DMatrix (data_utils.get_dmatrix, File mode, CSV), or
    None when they hold no data."""
    import xgboost

    files = [f for p in paths for f in channel_files(p)]
    if not sum(f.stat().st_size for f in files):
        return None
    # dmlc expands a path by listing its parent and stat-ing every entry there; under /tmp, an
    # entry another process removes meanwhile fails the load. So the data sits one level down,
    # in a parent that holds nothing else.
    with tempfile.TemporaryDirectory(prefix="mlpipe-xgb-") as parent:
        tmp = os.path.join(parent, "input")
        os.mkdir(tmp)
        for i, f in enumerate(files):
            os.symlink(f.resolve(), Path(tmp) / f"{i:05d}-{f.name}")
        with open(files[0], errors="ignore") as first:
            delimiter = _delimiter(first.readline())
        uri = f"{tmp}?format=csv&label_column=0&delimiter={delimiter}" + ("&weight_column=1" if csv_weights == 1 else "")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # xgboost >= 3.1: "Text file input has been deprecated"
                dmatrix = xgboost.DMatrix(uri)
        except Exception as exc:  # xgboost.core.XGBoostError
            raise UserError(f"Failed to load csv data with exception:\n{exc}") from None
    if dmatrix.get_label().size == 0:
        raise UserError("Got input data without labels. Please check the input data set.")
    return dmatrix


@dataclass
class TrainResult:
    boosters: list
    model_files: list[Path]
    history: list[dict] = field(default_factory=list)
    predictions_csv: Path | None = None


def _customer_error(exc: Exception) -> Exception:
    text = str(exc)
    if any(message in text for message in CUSTOMER_ERRORS):
        return UserError(text)
    return AlgorithmError(f"XGB train call failed with exception:\n {text}")


def train(hyperparameters: Mapping[str, Any], train_path, validation_path=None, model_dir="model",
          output_data_dir=None, log: Callable[[str], None] = print, model_format: str = "binary") -> TrainResult:
    """Train as the container's sagemaker_train + train_job (one host, File mode, text/csv).
    ``model_format`` "json" saves xgboost 1.7's JSON document instead of its binary format."""
    cfg = validate_hyperparameters(hyperparameters)
    csv_weights = cfg.get("csv_weights", 0)
    kfold = cfg.get("_kfold")
    dtrain = read_dmatrix([train_path], csv_weights)
    dval = read_dmatrix([validation_path], csv_weights) if validation_path else None
    if dtrain is None:
        raise UserError(f"No data in training channel path {train_path}")
    if validation_path and dval is None:
        raise UserError(f"No data in validation channel path {validation_path}")
    train_val = read_dmatrix([train_path, validation_path], csv_weights) \
        if kfold is not None and dval is not None else dtrain

    num_round = cfg["num_round"]
    eval_metric = cfg.get("eval_metric")
    cleaned, feval, tuning = eval_metrics_and_feval(cfg.get("_tuning_objective_metric"), eval_metric)
    params = dict(cfg)
    if cleaned:
        params["eval_metric"] = cleaned
    else:
        params.pop("eval_metric", None)
    rounds = cfg.get("early_stopping_rounds")
    metric = (tuning[-1] if tuning else eval_metric[-1] if eval_metric else None) if rounds else None
    early = (lambda: EarlyStopping(rounds, "validation", metric, metric in _maximize_metrics())) \
        if rounds and metric and dval is not None else (lambda: None)
    if rounds and early() is None:
        log("early_stopping_rounds is ignored: the container stops early only with a validation channel "
            "and an eval_metric (or a tuning objective metric)")
    # xgboost 1.7 resolves tree_method "auto" on the matrix each booster trains on (a fold's rows)
    rows = train_val.num_row() if kfold is None else train_val.num_row() - train_val.num_row() // kfold
    params = installed_xgboost_params(params, rows, log)
    evals = [(dtrain, "train")] + ([(dval, "validation")] if dval is not None else [])
    log(f"Train matrix has {dtrain.num_row()} rows and {dtrain.num_col()} columns")
    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    user_base_score = "base_score" in cfg
    try:
        if kfold is None:
            booster, history = boost(params, dtrain, num_round, evals, feval, early(), log)
            path = xgboost_model.save_booster(booster, model_dir / MODEL_NAME,
                                              boost_from_average=not user_base_score, fmt=model_format)
            return TrainResult([booster], [path], [history])
        return _cross_validate(cfg, params, train_val, evals, feval, early, num_round, kfold, model_dir,
                               Path(output_data_dir or model_dir.parent / "output" / "data"), log,
                               not user_base_score, model_format)
    except (UserError, AlgorithmError, xgboost_model.ModelFormatError):
        raise
    except Exception as exc:
        raise _customer_error(exc) from exc


def _maximize_metrics() -> tuple[str, ...]:
    from config.xgboost_hyperparameters import XGB_MAXIMIZE_METRICS

    return XGB_MAXIMIZE_METRICS


def _cross_validate(cfg, params, train_val, evals, feval, early, num_round, kfold, model_dir, output_dir, log,
                    boost_from_average, model_format) -> TrainResult:
    from sklearn.model_selection import RepeatedKFold, RepeatedStratifiedKFold

    num_cv_round = cfg.get("_num_cv_round", 1)
    objective = cfg.get("objective")
    if not cfg.get("num_class") and objective is None:
        # train.py:345 calls objective.startswith("binary:") with objective None
        raise AlgorithmError("XGB train call failed with exception:\n 'NoneType' object has no attribute "
                             "'startswith' (_kfold needs an objective, as in the container)")
    classification = bool(cfg.get("num_class")) or objective.startswith("binary:")
    n = train_val.num_row()
    log(f"Run {num_cv_round}-round of {kfold}-fold cross validation with {n} rows")
    y = train_val.get_label() if classification else None
    splitter = (RepeatedStratifiedKFold(n_splits=kfold, n_repeats=num_cv_round) if y is not None
                else RepeatedKFold(n_splits=kfold, n_repeats=num_cv_round))
    recorder = _PredictionRecorder(train_val.get_label(), num_cv_round, classification)
    boosters, files, histories = [], [], []
    for train_idx, val_idx in splitter.split(X=range(n), y=y):
        log(f"Train cross validation fold {(len(boosters) % kfold) + 1}")
        fold_train, fold_val = train_val.slice(train_idx), train_val.slice(val_idx)
        booster, history = boost(params, fold_train, num_round, evals, feval, early(), log)
        boosters.append(booster)
        histories.append(history)
        recorder.record(val_idx, booster.predict(fold_val))
        if len(boosters) % kfold == 0:
            log(_cv_report(num_round, histories[-kfold:]))
    predictions = recorder.save(output_dir)
    if num_cv_round > 1:
        log(_cv_report(num_round, histories))
    for fold, booster in enumerate(boosters):
        files.append(xgboost_model.save_booster(booster, model_dir / f"{MODEL_NAME}-{fold}",
                                                boost_from_average=boost_from_average, fmt=model_format))
    return TrainResult(boosters, files, histories, predictions)


def _cv_report(num_round: int, histories: list[dict]) -> str:
    """train.py print_cv_metric."""
    import numpy as np

    report = f"[{num_round}]"
    for metric in histories[0]["train"]:
        for data in histories[0]:
            report += f"\t{data}-{metric}:{np.mean([h[data][metric][-1] for h in histories]):.5f}"
    return report


class _PredictionRecorder:
    """prediction_utils.ValidationPredictionRecorder: out-of-fold predictions, averaged over
    the cross-validation rounds (classes: mean probability and most frequent label)."""

    def __init__(self, y_true, num_cv_round: int, classification: bool) -> None:
        import numpy as np

        self.y_true, self.num_cv_round, self.classification = y_true.copy(), num_cv_round, classification
        self.y_pred = np.zeros((len(y_true), num_cv_round))
        self.y_prob = self.y_pred.copy() if classification else None
        self.counter = np.zeros((len(y_true),)).astype(int)

    def record(self, indices, predictions) -> None:
        import numpy as np

        repeat = self.counter[indices]
        if self.classification:
            if predictions.ndim > 1:
                labels = np.argmax(predictions, axis=-1)
                proba = predictions[np.arange(len(labels)), labels]
            else:
                labels, proba = 1 * (predictions > 0.5), predictions
            self.y_pred[indices, repeat] = labels
            self.y_prob[indices, repeat] = proba
        else:
            self.y_pred[indices, repeat] = predictions
        self.counter[indices] += 1

    def save(self, output_dir: Path) -> Path:
        import numpy as np

        columns = [self.y_true]
        if self.classification:
            columns.append(self.y_prob.mean(axis=-1))
            values = np.unique(self.y_pred)
            counts = np.stack([(self.y_pred == v).sum(axis=1) for v in values])
            columns.append(values[np.argmax(counts, axis=0)])  # scipy.stats.mode(axis=1)
        else:
            columns.append(self.y_pred.mean(axis=-1))
        output_dir.mkdir(parents=True, exist_ok=True)
        path = output_dir / "predictions.csv"
        np.savetxt(path, np.vstack(columns).T, delimiter=",", fmt="%f")
        return path


# --- the job ---------------------------------------------------------------------------------

def main() -> int:
    """The training job under the SageMaker contract: hyperparameters.json, SM_CHANNEL_*,
    SM_MODEL_DIR, SM_OUTPUT_DATA_DIR. Exit 2 for the job's own errors, 1 for the algorithm's."""
    config_dir = Path(os.environ.get("SM_INPUT_CONFIG_DIR", "/opt/ml/input/config"))
    raw = json.loads((config_dir / "hyperparameters.json").read_text())
    try:
        train(raw, os.environ["SM_CHANNEL_TRAIN"], os.environ.get("SM_CHANNEL_VALIDATION"),
              Path(os.environ.get("SM_MODEL_DIR", "/opt/ml/model")), os.environ.get("SM_OUTPUT_DATA_DIR"),
              log=lambda line: print(line, flush=True), model_format="binary")
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (AlgorithmError, xgboost_model.ModelFormatError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0

if __name__ == "__main__":
    sys.exit(main())
