"""xgboost 1.7.4's training loop, as SageMaker's XGBoost 1.7-1 container drives it, on any xgboost.

Used by the emulator (workflows/local/xgboost_algo.py). It reproduces, on xgboost 2+/3+:

- the container's own evaluation metrics (metrics/custom_metrics.py in
  sagemaker-xgboost-container 1.7-1) and how train_utils.get_eval_metrics_and_feval splits
  ``eval_metric`` between them and xgboost;
- xgboost 1.7.4's ``xgb.train`` loop with ``feval`` on the raw margin, its evaluation history,
  its EarlyStopping(save_best=True) and the attributes it leaves on the booster
  (python-package/xgboost/training.py, callback.py);
- xgboost 1.7.4's row subsampling for the exact tree method, draw for draw.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from typing import Any, Callable, Mapping


# --- metrics the container computes itself (metrics/custom_metrics.py) -------------------------

def _class_labels(preds):
    import numpy as np

    return np.argmax(preds, axis=-1) if preds.ndim > 1 else (preds > 0.0).astype(int)


def _classification(score: Callable):
    def metric(preds, dmatrix):
        return score(dmatrix.get_label(), _class_labels(preds)) if preds.size > 0 else 0.0
    return metric


def _regression(kind: str):
    """scikit-learn 0.24.1's formulas (mean_squared_error, mean_absolute_error, r2_score),
    float32 in, as the container computes them."""
    import numpy as np

    def metric(preds, dmatrix):
        y_true = dmatrix.get_label().reshape(-1, 1)
        y_pred = np.asarray(preds).reshape(-1, 1)
        if kind in ("mse", "rmse"):
            errors = np.average((y_true - y_pred) ** 2, axis=0)
            return np.average(np.sqrt(errors) if kind == "rmse" else errors)
        if kind == "mae":
            return np.average(np.average(np.abs(y_pred - y_true), axis=0))
        numerator = ((y_true - y_pred) ** 2).sum(axis=0, dtype=np.float64)
        denominator = ((y_true - np.average(y_true, axis=0)) ** 2).sum(axis=0, dtype=np.float64)
        scores = np.ones([y_true.shape[1]])
        valid = (denominator != 0) & (numerator != 0)
        scores[valid] = 1 - numerator[valid] / denominator[valid]
        scores[(numerator != 0) & (denominator == 0)] = 0.0
        return np.average(scores)
    return metric


def _sklearn(name: str, **kwargs):
    def score(y, labels):
        from sklearn import metrics

        return getattr(metrics, name)(y, labels, **kwargs)
    return score


CUSTOM_METRICS: dict[str, Callable] = {
    "accuracy": _classification(_sklearn("accuracy_score")),
    "balanced_accuracy": _classification(_sklearn("balanced_accuracy_score")),
    "f1": _classification(_sklearn("f1_score", average="macro")),
    "f1_binary": _classification(_sklearn("f1_score", average="binary")),
    "f1_macro": _classification(_sklearn("f1_score", average="macro")),
    "mse": _regression("mse"), "rmse": _regression("rmse"), "mae": _regression("mae"),
    "precision": _classification(_sklearn("precision_score")),
    "precision_macro": _classification(_sklearn("precision_score", average="macro")),
    "precision_micro": _classification(_sklearn("precision_score", average="micro")),
    "r2": _regression("r2"),
    "recall": _classification(_sklearn("recall_score")),
    "recall_macro": _classification(_sklearn("recall_score", average="macro")),
    "recall_micro": _classification(_sklearn("recall_score", average="micro")),
}


def eval_metrics_and_feval(tuning_objective_metric: str | None, eval_metric: list[str] | None):
    """(xgboost metrics or None, feval or None, tuning metric list or None), as
    train_utils.get_eval_metrics_and_feval: the union of the tuning metric and eval_metric
    (sorted when both are given), minus the container's own metrics, which go to feval."""
    tuning = tuning_objective_metric.split(":")[1].split(",") if tuning_objective_metric else None
    union = (sorted(set(tuning) | set(eval_metric)) if tuning is not None and eval_metric is not None
             else tuning if eval_metric is None else eval_metric)
    if union is None:
        return None, None, tuning
    custom = [m for m in union if m in CUSTOM_METRICS]
    if not custom:
        return union, None, tuning

    def feval(preds, dmatrix):
        return [(name, CUSTOM_METRICS[name](preds, dmatrix)) for name in custom]

    # The container takes a set difference here: the order of the rest is Python's set order.
    return [m for m in union if m not in custom], feval, tuning


# --- training ----------------------------------------------------------------------------------

class EarlyStopping:
    """xgboost 1.7.4's callback.EarlyStopping(rounds, metric_name, data_name, maximize,
    save_best=True) as the container configures it (callback.py:94-103)."""

    def __init__(self, rounds: int, data_name: str, metric_name: str, maximize: bool) -> None:
        self.rounds, self.data, self.metric, self.maximize = rounds, data_name, metric_name, maximize
        self.best: float | None = None
        self.current_rounds = 0

    def after_iteration(self, booster, epoch: int, history: dict) -> bool:
        import numpy as np

        if self.data not in history:
            raise ValueError("No dataset named:", self.data)
        score = history[self.data][self.metric][-1]
        if self.best is None:
            improved = True
        elif self.maximize:
            improved = bool(np.greater(score, self.best))
        else:
            improved = bool(np.greater(self.best, score))
        if improved:
            self.best, self.current_rounds = score, 0
            booster.set_attr(best_score=str(score), best_iteration=str(epoch))
        else:
            self.current_rounds += 1
        return self.current_rounds >= self.rounds


def _num_parallel_tree(booster) -> int:
    config = json.loads(booster.save_config())["learner"]["gradient_booster"]
    if config["name"] == "gblinear":
        return 0
    tree = config.get("gbtree", config)
    return int(tree.get("gbtree_model_param", {}).get("num_parallel_tree", "1"))


class RowSampler:
    """``subsample`` as xgboost 1.7.4's exact tree method draws it (updater_colmaker.cc:223-234,
    random.h:145-149): the global std::mt19937, seeded with ``seed`` when the booster is
    configured, gives per tree one value to the column sampler's seed, then for every row a
    std::bernoulli_distribution(subsample) coin made of two draws (libstdc++
    generate_canonical<double>). The tree is grown on the rows that win their coin.

    xgboost 2.0+ draws the column sampler's seed after the coins instead, so its trees differ;
    the emulator draws the coins itself and grows each tree on those rows."""

    def __init__(self, seed: int, subsample: float) -> None:
        import numpy as np

        key = np.random.RandomState(int(seed) % 2 ** 32).get_state()[1]  # std::mt19937(seed)
        self.engine = np.random.MT19937()
        self.engine.state = {"bit_generator": "MT19937", "state": {"key": key, "pos": 624}}
        self.p = float(np.float32(subsample))  # bst_float subsample, widened to double

    def next_tree(self, n_rows: int):
        import numpy as np

        self.engine.random_raw(1)  # ColumnSampler(): seed = GlobalRandom()()
        raw = self.engine.random_raw(2 * n_rows).astype(np.float64)
        u = (raw[0::2] + raw[1::2] * 2.0 ** 32) / 2.0 ** 64
        u[u >= 1.0] = np.nextafter(1.0, 0.0)
        return u < self.p


SQUARED_ERROR = ("reg:squarederror", "reg:linear")  # 1.7.4: reg:linear is squarederror, renamed


class _SquaredError:
    """The drawn rows' tree without a new DMatrix: 1.7.4's SquaredLoss gradient pair
    ((p - y) * w, w, in float32, from the booster's cached margins) with a negative hessian on
    the rows outside the draw, which the exact updater deletes before growing the tree
    (updater_colmaker.cc InitData) exactly as if they were absent. Growing on a slice instead
    sorts the columns again and predicts every earlier tree on it, each round: about twice the
    time at 100x abalone. tests/test_xgboost_fidelity.py pins that both give the same model.
    The labels and weights are read from the DMatrix once, not every round."""

    def __init__(self, dtrain) -> None:
        import numpy as np

        self.dtrain = dtrain
        self.label = dtrain.get_label().astype(np.float32, copy=False)
        weight = dtrain.get_weight()
        self.weight = weight.astype(np.float32) if weight.size else None

    def __call__(self, booster, keep) -> dict:
        import numpy as np

        margin = booster.predict(self.dtrain, output_margin=True, training=True).astype(np.float32, copy=False)
        grad = margin - self.label
        if self.weight is None:
            hess = np.ones_like(grad)
        else:
            grad *= self.weight
            hess = self.weight.copy()
        grad[~keep] = 0.0
        hess[~keep] = -1.0
        return {"grad": grad, "hess": hess}


_ROW_DEPENDENT = ("reg:absoluteerror", "survival:cox")  # gradients or leaves that need every row


def row_sampler(params: Mapping[str, Any]) -> RowSampler | None:
    """A RowSampler when xgboost 1.7 would subsample rows in a way the emulator reproduces
    (exact tree method, one tree per round), else None (the installed xgboost samples)."""
    subsample = float(params.get("subsample", 1.0))
    objective = str(params.get("objective", "reg:squarederror"))
    if (subsample >= 1.0 or params.get("tree_method") != "exact" or params.get("booster", "gbtree") != "gbtree"
            or params.get("num_class") or int(params.get("num_parallel_tree", 1)) != 1 or params.get("updater")
            or params.get("process_type", "default") != "default" or objective in _ROW_DEPENDENT
            or objective.startswith("rank:")):
        return None
    return RowSampler(int(params.get("seed", 0)), subsample)


def boost(params: Mapping[str, Any], dtrain, num_round: int, evals: list, feval=None,
          early_stopping: EarlyStopping | None = None, log: Callable[[str], None] = print):
    """xgboost 1.7.4's xgb.train(params, dtrain, num_round, evals=evals, feval=feval,
    callbacks=[EvaluationMonitor(), early_stopping]): the same loop, history, evaluation on the
    raw margin for feval, and the same attributes on the returned booster."""
    import numpy as np
    import xgboost

    sampler = row_sampler(params)
    if sampler is not None:
        params = {**params, "subsample": 1.0}
    booster = xgboost.Booster(dict(params), [dtrain] + [d for d, _ in evals])
    squared = _SquaredError(dtrain) if (
        sampler is not None and str(params.get("objective", "reg:squarederror")) in SQUARED_ERROR
        and float(params.get("scale_pos_weight", 1.0)) == 1.0) else None  # 1.7.4 scales rows labelled 1 by it
    history: dict[str, OrderedDict] = OrderedDict()
    for epoch in range(num_round):
        if sampler is None:
            booster.update(dtrain, epoch)
        elif squared is not None:
            booster.boost(dtrain, epoch, **squared(booster, sampler.next_tree(dtrain.num_row())))
        else:
            booster.update(dtrain.slice(np.flatnonzero(sampler.next_tree(dtrain.num_row()))), epoch)
        if evals:
            line = booster.eval_set(evals, epoch, feval, output_margin=True)
            for item in line.split()[1:]:
                name, value = item.split(":")
                data, metric = name.split("-", 1)
                history.setdefault(data, OrderedDict()).setdefault(metric, []).append(float(value))
            log(f"[{epoch}]" + "".join(f"\t{d}-{m}:{scores[-1]:.5f}" for d, ms in history.items()
                                      for m, scores in ms.items()))
        if early_stopping is not None and early_stopping.after_iteration(booster, epoch, history):
            break
    if early_stopping is not None:
        # save_best: the model up to the best round; xgboost 1.7's slice keeps no attributes.
        booster = booster[: int(booster.attr("best_iteration")) + 1]
        booster.set_attr(**{k: None for k in booster.attributes()})
    parallel = _num_parallel_tree(booster)
    if booster.attr("best_score") is not None:
        booster.set_attr(best_ntree_limit=str((int(booster.attr("best_iteration")) + 1) * parallel))
    else:
        best_iteration = booster.num_boosted_rounds() - 1
        booster.set_attr(best_iteration=str(best_iteration), best_ntree_limit=str((best_iteration + 1) * parallel))
    return booster, history
