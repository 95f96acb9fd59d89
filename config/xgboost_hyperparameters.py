"""Hyperparameters of SageMaker's built-in XGBoost algorithm, container version 1.7-1.

Source, transcribed (names, types, ranges, categories, aliases, required, dependencies):
  github.com/aws/sagemaker-xgboost-container, branch 1.7-1 (commit f7a93a21e50e, 2025-09-17):
    src/sagemaker_xgboost_container/algorithm_mode/hyperparameter_validation.py
    src/sagemaker_xgboost_container/constants/xgb_constants.py   (eval_metric names)
    src/sagemaker_xgboost_container/algorithm_mode/metrics.py     (_tuning_objective_metric)
    src/sagemaker_algorithm_toolkit/hyperparameter_validation.py  (how values are parsed/checked)

The container validates the hyperparameters of a training job as strings (the SageMaker SDK
sends ``str(value)``), before it reads any data: an unknown name ("Extraneous hyperparameter"),
a value that does not parse or is out of range fails the job. ``validate`` applies the same
rules to a config, so such a job is refused before it is ever started.
"""

from __future__ import annotations

import ast
import difflib
from dataclasses import dataclass
from typing import Any, Mapping

VERSION = "1.7-1"


@dataclass(frozen=True)
class Interval:
    min_open: float | None = None
    min_closed: float | None = None
    max_open: float | None = None
    max_closed: float | None = None

    def __contains__(self, value: float) -> bool:
        return not ((self.min_open is not None and value <= self.min_open)
                    or (self.min_closed is not None and value < self.min_closed)
                    or (self.max_open is not None and value >= self.max_open)
                    or (self.max_closed is not None and value > self.max_closed))

    def __str__(self) -> str:
        low = f"({self.min_open:g}" if self.min_open is not None else \
            f"[{self.min_closed:g}" if self.min_closed is not None else "(-inf"
        high = f"{self.max_open:g})" if self.max_open is not None else \
            f"{self.max_closed:g}]" if self.max_closed is not None else "+inf)"
        return f"{low}, {high}"


@dataclass(frozen=True)
class Hyperparameter:
    name: str
    type: str  # integer, continuous, categorical, list (comma-separated), tuple, nested
    range: Interval | tuple[str, ...] | tuple[int, ...] | None = None
    required: bool = False


_I, _C, _CAT, _LIST = "integer", "continuous", "categorical", "list"

OBJECTIVES = (
    "aft_loss_distribution", "binary:logistic", "binary:logitraw", "binary:hinge", "count:poisson",
    "multi:softmax", "multi:softprob", "rank:pairwise", "rank:ndcg", "rank:map", "reg:linear",
    "reg:squarederror", "reg:logistic", "reg:gamma", "reg:pseudohubererror", "reg:squaredlogerror",
    "reg:absoluteerror", "reg:tweedie", "survival:aft", "survival:cox",
)
XGB_MAXIMIZE_METRICS = (
    "accuracy", "auc", "aucpr", "balanced_accuracy", "f1", "f1_binary", "f1_macro", "map", "ndcg",
    "precision", "r2", "recall", "precision_macro", "precision_micro", "recall_macro", "recall_micro",
)
XGB_MINIMIZE_METRICS = (
    "aft-nloglik", "cox-nloglik", "error", "gamma-deviance", "gamma-nloglik",
    "interval-regression-accuracy", "logloss", "mae", "mape", "merror", "mlogloss", "mphe", "mse",
    "poisson-nloglik", "rmse", "rmsle", "tweedie-nloglik",
)
EVAL_METRICS = XGB_MAXIMIZE_METRICS + XGB_MINIMIZE_METRICS
TUNING_METRICS = tuple(f"validation:{m}" for m in EVAL_METRICS)
TREE_METHODS = ("auto", "exact", "approx", "hist", "gpu_hist")
PREDICTORS = ("auto", "cpu_predictor", "gpu_predictor")
UPDATERS = ("grow_colmaker", "distcol", "grow_histmaker", "grow_skmaker", "sync", "refresh", "prune",
            "shotgun", "coord_descent")
_TREE_PLUGINS = ("grow_colmaker", "distcol", "grow_histmaker", "grow_skmaker", "sync", "refresh", "prune",
                 "grow_quantile_histmaker")
_TREE_BUILD_PLUGINS = ("grow_colmaker", "distcol", "grow_histmaker", "grow_quantile_histmaker")
_LINEAR_PLUGINS = ("shotgun", "coord_descent")
_TRUE_FALSE = ("true", "false")

HYPERPARAMETERS: dict[str, Hyperparameter] = {h.name: h for h in (
    Hyperparameter("num_round", _I, Interval(min_closed=1), required=True),
    Hyperparameter("csv_weights", _I, Interval(min_closed=0, max_closed=1)),
    Hyperparameter("early_stopping_rounds", _I, Interval(min_closed=1)),
    Hyperparameter("booster", _CAT, ("gbtree", "gblinear", "dart")),
    Hyperparameter("verbosity", _I, Interval(min_closed=0, max_closed=3)),
    Hyperparameter("nthread", _I, Interval(min_closed=1)),
    Hyperparameter("eta", _C, Interval(min_closed=0, max_closed=1)),
    Hyperparameter("gamma", _C, Interval(min_closed=0)),
    Hyperparameter("max_depth", _I, Interval(min_closed=0)),
    Hyperparameter("min_child_weight", _C, Interval(min_closed=0)),
    Hyperparameter("max_delta_step", _C, Interval(min_closed=0)),
    Hyperparameter("subsample", _C, Interval(min_open=0, max_closed=1)),
    Hyperparameter("colsample_bytree", _C, Interval(min_open=0, max_closed=1)),
    Hyperparameter("colsample_bylevel", _C, Interval(min_open=0, max_closed=1)),
    Hyperparameter("colsample_bynode", _C, Interval(min_open=0, max_closed=1)),
    Hyperparameter("lambda", _C, Interval(min_closed=0)),
    Hyperparameter("alpha", _C, Interval(min_closed=0)),
    Hyperparameter("tree_method", _CAT, TREE_METHODS),
    Hyperparameter("sketch_eps", _C, Interval(min_open=0, max_open=1)),
    Hyperparameter("scale_pos_weight", _C, Interval(min_open=0)),
    Hyperparameter("updater", _LIST, UPDATERS),
    Hyperparameter("dsplit", _CAT, ("row", "col")),
    Hyperparameter("refresh_leaf", _I, Interval(min_closed=0, max_closed=1)),
    Hyperparameter("process_type", _CAT, ("default", "update")),
    Hyperparameter("grow_policy", _CAT, ("depthwise", "lossguide")),
    Hyperparameter("max_leaves", _I, Interval(min_closed=0)),
    Hyperparameter("max_bin", _I, Interval(min_closed=0)),
    Hyperparameter("predictor", _CAT, PREDICTORS),
    Hyperparameter("monotone_constraints", "tuple", (-1, 0, 1)),
    Hyperparameter("interaction_constraints", "nested", Interval(min_closed=1)),
    Hyperparameter("sample_type", _CAT, ("uniform", "weighted")),
    Hyperparameter("normalize_type", _CAT, ("tree", "forest")),
    Hyperparameter("rate_drop", _C, Interval(min_closed=0, max_closed=1)),
    Hyperparameter("one_drop", _I, Interval(min_closed=0, max_closed=1)),
    Hyperparameter("skip_drop", _C, Interval(min_closed=0, max_closed=1)),
    Hyperparameter("lambda_bias", _C, Interval(min_closed=0, max_closed=1)),
    Hyperparameter("tweedie_variance_power", _C, Interval(min_open=1, max_open=2)),
    Hyperparameter("objective", _CAT, OBJECTIVES),
    Hyperparameter("num_class", _I, Interval(min_closed=2)),
    Hyperparameter("base_score", _C, Interval(min_closed=0)),
    Hyperparameter("_kfold", _I, Interval(min_closed=2)),
    Hyperparameter("_num_cv_round", _I, Interval(min_closed=1)),
    Hyperparameter("_tuning_objective_metric", _CAT, TUNING_METRICS),
    Hyperparameter("eval_metric", _LIST, EVAL_METRICS),
    Hyperparameter("seed", _I, Interval(min_open=-(2 ** 31), max_open=2 ** 31 - 1)),
    Hyperparameter("num_parallel_tree", _I, Interval(min_closed=1)),
    Hyperparameter("save_model_on_termination", _CAT, _TRUE_FALSE),
    Hyperparameter("aft_loss_distribution", _CAT, ("normal", "logistic", "extreme")),
    Hyperparameter("aft_loss_distribution_scale", _C, Interval(min_closed=0)),
    Hyperparameter("deterministic_histogram", _CAT, _TRUE_FALSE),
    Hyperparameter("sampling_method", _CAT, ("uniform", "gradient_based")),
    Hyperparameter("prob_buffer_row", _I, Interval(min_open=1.0)),
    Hyperparameter("use_dask_gpu_training", _CAT, _TRUE_FALSE),
)}

ALIASES = {"learning_rate": "eta", "min_split_loss": "gamma", "reg_lambda": "lambda", "reg_alpha": "alpha"}


@dataclass(frozen=True)
class Problem:
    name: str     # the hyperparameter as the config wrote it
    message: str
    fix: str


def _near(value: str, choices, n: int = 3) -> list[str]:
    return difflib.get_close_matches(value, list(choices), n=n, cutoff=0.6)


def _as_sent(value: Any) -> str:
    """What the container receives: the SDK sends str(value) for a built-in algorithm."""
    return str(value)


def _eval_metric_ok(metric: str) -> str | None:
    if "@" in metric:
        name, _, threshold = (p.strip() for p in metric.partition("@"))
        if name not in ("error", "ndcg", "map"):
            return f"metric {metric!r}: only error, ndcg and map take an '@threshold'"
        try:
            float(threshold)
        except ValueError:
            return f"metric {metric!r}: the threshold after '@' must be a number"
        return None
    return None if metric in EVAL_METRICS else f"{metric!r} is not an XGBoost {VERSION} evaluation metric"


def validate(hyperparameters: Mapping[str, Any]) -> list[Problem]:
    """Every reason the XGBoost 1.7-1 container would refuse these hyperparameters."""
    problems: list[Problem] = []
    written = {ALIASES.get(k, k): k for k in hyperparameters}
    values = {ALIASES.get(k, k): v for k, v in hyperparameters.items()}
    for spec in HYPERPARAMETERS.values():
        if spec.required and spec.name not in values:
            problems.append(Problem(spec.name, f"the built-in XGBoost {VERSION} algorithm needs {spec.name!r}",
                                    f"add {spec.name} to the hyperparameters, e.g. {spec.name}: 100"))
    parsed: dict[str, Any] = {}
    for name, raw in values.items():
        label = written[name]
        spec = HYPERPARAMETERS.get(name)
        if spec is None:
            near = _near(label, [*HYPERPARAMETERS, *ALIASES])
            problems.append(Problem(
                label, f"{label!r} is not a hyperparameter of the built-in XGBoost {VERSION} algorithm",
                (f"did you mean {' or '.join(near)}? " if near else "")
                + "see the XGBoost hyperparameters in the SageMaker developer guide"))
            continue
        text = _as_sent(raw)
        problem = _check_one(spec, label, raw, text)
        if problem:
            problems.append(problem)
        else:
            parsed[name] = _parse(spec, text)
    problems += _dependencies(parsed, written)
    return problems


def _parse(spec: Hyperparameter, text: str) -> Any:
    if spec.type == _I:
        return int(text)
    if spec.type == _C:
        return float(text)
    if spec.type == _LIST:
        return text.split(",")
    if spec.type in ("tuple", "nested"):
        return ast.literal_eval(text)
    return text


def _check_one(spec: Hyperparameter, label: str, raw: Any, text: str) -> Problem | None:
    try:
        value = _parse(spec, text)
    except (ValueError, SyntaxError, TypeError):
        kind = {"integer": "an integer", "continuous": "a number"}.get(spec.type, "a valid value")
        return Problem(label, f"{label}: {raw!r} is not {kind} (the container reads {text!r})",
                       f"write {label} as {kind}" + (", e.g. 5 (not 5.0)" if spec.type == _I else ""))
    if isinstance(spec.range, Interval):
        try:
            items = [value] if spec.type in (_I, _C) else [e for outer in value for e in outer]
            bad = [v for v in items if isinstance(v, bool) or not isinstance(v, (int, float)) or v not in spec.range]
        except TypeError:  # interaction_constraints that is not a list of lists
            bad = [value]
        if bad:
            return Problem(label, f"{label}: {raw!r} is outside {spec.range}",
                           f"use a value in {spec.range}")
        return None
    if spec.type == _CAT:
        if value in spec.range:
            return None
        near = _near(value, spec.range)
        hint = " (quote it: true/false are lower case)" if isinstance(raw, bool) else ""
        what = "objective" if spec.name == "objective" else f"value of {label}"
        return Problem(label, f"{label}: {raw!r} is not an XGBoost {VERSION} {what}{hint}",
                       (f"did you mean {' or '.join(near)}? " if near else "")
                       + f"valid: {', '.join(spec.range)}")
    if spec.type == _LIST:
        for item in value:
            if spec.name == "eval_metric":
                why = _eval_metric_ok(item)
                if why:
                    near = _near(item, EVAL_METRICS)
                    return Problem(label, f"eval_metric: {why}",
                                   (f"did you mean {' or '.join(near)}? " if near else "")
                                   + f"valid: {', '.join(EVAL_METRICS)}")
            elif item not in spec.range:
                return Problem(label, f"{label}: {item!r} is not an XGBoost {VERSION} updater",
                               f"valid: {', '.join(spec.range)}")
        return None
    if spec.type == "tuple":
        if not isinstance(value, tuple) or any(v not in spec.range for v in value):
            return Problem(label, f"{label}: {raw!r} must be a tuple of -1, 0 and 1",
                           "e.g. monotone_constraints: '(1,0,-1)'")
    return None


def _dependencies(parsed: Mapping[str, Any], written: Mapping[str, str]) -> list[Problem]:
    out: list[Problem] = []
    objective = parsed.get("objective")
    if objective in ("multi:softmax", "multi:softprob") and "num_class" not in parsed:
        out.append(Problem("objective", f"objective {objective} needs num_class",
                           "add num_class (the number of classes, at least 2)"))
    metrics = parsed.get("eval_metric")
    if metrics is not None:
        if objective is None:
            out.append(Problem(written["eval_metric"], "eval_metric needs an objective",
                               "set objective, e.g. reg:squarederror"))
        elif "auc" in metrics and not objective.startswith(("binary:", "rank:")):
            out.append(Problem(written["eval_metric"], "metric 'auc' applies to binary: and rank: objectives only",
                               "use another eval_metric, e.g. rmse"))
        elif "aft-nloglik" in metrics and objective != "survival:aft":
            out.append(Problem(written["eval_metric"], "metric 'aft-nloglik' needs objective survival:aft",
                               "use another eval_metric"))
    tree_method = parsed.get("tree_method")
    if "monotone_constraints" in parsed and tree_method not in ("exact", "hist"):
        out.append(Problem("monotone_constraints", "monotone_constraints needs tree_method exact or hist",
                           "set tree_method: hist"))
    if "interaction_constraints" in parsed and tree_method not in ("exact", "hist", "approx"):
        out.append(Problem("interaction_constraints",
                           "interaction_constraints needs tree_method exact, hist or approx", "set tree_method: hist"))
    updater = parsed.get("updater")
    if updater is not None:
        if parsed.get("booster") == "gblinear":
            if not (len(updater) == 1 and updater[0] in _LINEAR_PLUGINS):
                out.append(Problem("updater", "with booster gblinear, updater must be one of shotgun, coord_descent",
                                   "updater: shotgun"))
        elif parsed.get("process_type") == "update":
            if not all(u in ("refresh", "prune") for u in updater):
                out.append(Problem("updater", "process_type update works with updaters refresh and prune only",
                                   "updater: refresh,prune"))
        elif not all(u in _TREE_PLUGINS for u in updater) \
                or sum(u in _TREE_BUILD_PLUGINS for u in updater) > 1:
            out.append(Problem("updater", "choose tree updaters, with at most one tree-growing plugin",
                               "e.g. updater: grow_colmaker,prune"))
    return out
