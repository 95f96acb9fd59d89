"""The local XGBoost emulator against SageMaker's XGBoost 1.7-1 container (issue 10, item 2).

The first part tests the emulator's rules on small data: CSV channels, defaults, early stopping,
eval_metric lists, csv_weights, _kfold and the model file format. The second part runs the
container's own training and serving code (github.com/aws/sagemaker-xgboost-container, branch
1.7-1) in its reference environment (xgboost 1.7.4 and the image's pins, built by
bench/containers/xgboost_reference.py) on the abalone data, and checks that the container and
the emulator train the same model. It skips when that environment or the abalone data is absent.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
import xgboost

from conftest import ROOT
from workflows.local import xgboost_algo as algo
from workflows.local import xgboost_boost as xb
from workflows.local import xgboost_model as xm

sys.path.insert(0, str(ROOT / "bench" / "containers"))
import xgboost_reference as ref  # noqa: E402

ABALONE_PARAMS = {"objective": "reg:squarederror", "num_round": "50", "max_depth": "5", "eta": "0.2",
                  "gamma": "4", "min_child_weight": "6", "subsample": "0.7"}


def write_csv(path: Path, rows, fmt: str = "%.10g", delimiter: str = ",") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savetxt(path, np.asarray(rows), fmt=fmt, delimiter=delimiter)
    return path


def regression_data(n: int = 300, seed: int = 0, features: int = 4):
    rng = np.random.RandomState(seed)
    x = rng.rand(n, features)
    y = 3 * x[:, 0] + 2 * x[:, 1] ** 2 + rng.normal(0, 0.3, n) + 5
    return np.column_stack([y, x])


@pytest.fixture
def channels(tmp_path):
    data = regression_data(400)
    train = write_csv(tmp_path / "train" / "train.csv", data[:300]).parent
    validation = write_csv(tmp_path / "validation" / "validation.csv", data[300:]).parent
    return train, validation, data


def quiet(_line: str) -> None:
    pass


# --- CSV channels (data_utils.py) --------------------------------------------------------------

def test_csv_label_first_float32_parsed_by_xgboost(tmp_path):
    rows = [[1.5, 0.1, 0.123456789012345678], [2.25, 1e-8, 3.3333333333333335], [0, -7, 2]]
    path = tmp_path / "c" / "data.csv"
    path.parent.mkdir()
    path.write_text("1.5,0.1,0.123456789012345678\n2.25,1e-8,3.3333333333333335\n0,-7,2\n")
    dmatrix = algo.read_dmatrix([path.parent])
    assert dmatrix.num_row() == 3 and dmatrix.num_col() == 2
    np.testing.assert_array_equal(dmatrix.get_label(), np.float32([1.5, 2.25, 0]))
    values = dmatrix.get_data().toarray()
    np.testing.assert_array_equal(values, np.float32([r[1:] for r in rows]))
    assert values.dtype == np.float32


def test_csv_weights_are_the_second_column(tmp_path):
    path = write_csv(tmp_path / "c" / "data.csv", [[1, 2, 10, 11], [0, 0.5, 20, 21], [1, 0, 30, 31]])
    dmatrix = algo.read_dmatrix([path.parent], csv_weights=1)
    assert dmatrix.num_col() == 2
    np.testing.assert_array_equal(dmatrix.get_weight(), np.float32([2, 0.5, 0]))
    np.testing.assert_array_equal(dmatrix.get_data().toarray(), np.float32([[10, 11], [20, 21], [30, 31]]))
    assert algo.read_dmatrix([path.parent]).num_col() == 3  # without csv_weights it is a feature


def test_every_file_up_to_three_folders_deep_and_the_delimiter_is_sniffed(tmp_path):
    channel = tmp_path / "c"
    write_csv(channel / "a.csv", [[1, 1, 1]], delimiter=";")
    write_csv(channel / "sub" / "b.csv", [[2, 2, 2]], delimiter=";")
    write_csv(channel / "sub" / "deeper" / "c.csv", [[3, 3, 3]], delimiter=";")
    write_csv(channel / "sub" / "deeper" / "too" / "deep.csv", [[4, 4, 4]], delimiter=";")
    dmatrix = algo.read_dmatrix([channel])
    assert sorted(dmatrix.get_label()) == [1, 2, 3]


def test_hidden_files_fail_the_job_and_empty_channels_have_no_data(tmp_path):
    channel = tmp_path / "c"
    write_csv(channel / "a.csv", [[1, 1]])
    (channel / ".manifest").write_text("x")
    with pytest.raises(algo.UserError, match="Hidden file"):
        algo.read_dmatrix([channel])
    (tmp_path / "empty").mkdir()
    assert algo.read_dmatrix([tmp_path / "empty"]) is None
    with pytest.raises(algo.UserError, match="No data in training channel"):
        algo.train({"num_round": "2"}, tmp_path / "empty", None, tmp_path / "model", log=quiet)


# --- hyperparameters and defaults ------------------------------------------------------------

def test_hyperparameters_are_parsed_as_the_container_parses_them():
    cfg = algo.validate_hyperparameters({"num_round": "10", "learning_rate": "0.1", "eval_metric": "rmse,mae",
                                         "updater": "grow_colmaker,prune", "monotone_constraints": "(1,0)",
                                         "tree_method": "exact", "objective": "reg:squarederror"})
    assert cfg == {"num_round": 10, "eta": 0.1, "eval_metric": ["rmse", "mae"], "updater": "grow_colmaker,prune",
                   "monotone_constraints": (1, 0), "tree_method": "exact", "objective": "reg:squarederror"}
    with pytest.raises(algo.UserError, match="eval_metric needs an objective"):  # the container fails too
        algo.validate_hyperparameters({"num_round": "10", "eval_metric": "rmse"})
    with pytest.raises(algo.UserError, match="num_round"):
        algo.validate_hyperparameters({"max_depth": "3"})
    with pytest.raises(algo.UserError, match="not a hyperparameter"):
        algo.validate_hyperparameters({"num_round": "3", "num_rounds": "3"})


def test_xgboost_1_7_defaults_are_passed_to_a_newer_xgboost():
    params = algo.installed_xgboost_params({"num_round": 5, "early_stopping_rounds": 3, "csv_weights": 1,
                                            "predictor": "cpu_predictor"}, n_rows=100, log=quiet)
    if int(xgboost.__version__.split(".")[0]) >= 2:
        assert params == {"base_score": 0.5, "tree_method": "exact"}
        big = algo.installed_xgboost_params({"tree_method": "auto"}, n_rows=4 << 20, log=quiet)
        assert big["tree_method"] == "approx"
        assert "base_score" not in algo.installed_xgboost_params({"objective": "reg:absoluteerror"}, 10, quiet)
        assert algo.installed_xgboost_params({"base_score": 3.0}, 10, quiet)["base_score"] == 3.0
        assert algo.installed_xgboost_params({"updater": "grow_colmaker"}, 10, quiet).get("tree_method") is None


@pytest.mark.parametrize("weighted", [False, True])
def test_squared_error_rows_outside_the_draw_grow_the_same_tree_as_a_slice(weighted, monkeypatch):
    """boost()'s fast path for reg:squarederror (a negative hessian deletes the undrawn rows)
    must give exactly the model that growing each tree on the drawn rows' slice gives."""
    data = regression_data(2000, seed=3, features=5)
    dtrain = xgboost.DMatrix(data[:1500, 1:], label=data[:1500, 0],
                             weight=(1.0 + np.arange(1500) % 3) if weighted else None)
    dval = xgboost.DMatrix(data[1500:, 1:], label=data[1500:, 0])
    params = {"objective": "reg:squarederror", "max_depth": 4, "eta": 0.3, "gamma": 0.5, "min_child_weight": 3,
              "subsample": 0.6, "tree_method": "exact", "base_score": 0.5, "seed": 7, "verbosity": 0}
    fast, fast_history = xb.boost(params, dtrain, 15, [(dtrain, "train"), (dval, "validation")], log=quiet)
    monkeypatch.setattr(xb, "SQUARED_ERROR", ())
    sliced, sliced_history = xb.boost(params, dtrain, 15, [(dtrain, "train"), (dval, "validation")], log=quiet)
    assert fast.save_raw("json") == sliced.save_raw("json")
    assert fast_history == sliced_history


def test_the_model_keeps_base_score_0_5_as_xgboost_1_7_does(channels, tmp_path):
    train, validation, data = channels
    result = algo.train({"num_round": "3", "max_depth": "2"}, train, validation, tmp_path / "m", log=quiet)
    raw = result.model_files[0].read_bytes()
    base_score, *_rest = struct.unpack_from("<fIiiiIIIi", raw, 4)
    assert raw[:4] == b"binf" and base_score == 0.5
    assert struct.unpack_from("<fIiiiIIIi", raw, 4)[8] == 1  # boost_from_average: the user set none


# --- early stopping and eval_metric ------------------------------------------------------------

def test_early_stopping_keeps_the_best_iteration(channels, tmp_path):
    train, validation, _ = channels
    hps = {"num_round": "300", "eta": "0.5", "max_depth": "6", "objective": "reg:squarederror",
           "eval_metric": "rmse,mae", "early_stopping_rounds": "4"}
    result = algo.train(hps, train, validation, tmp_path / "m", log=quiet)
    history = result.history[0]["validation"]["mae"]
    best = int(np.argmin(history))
    assert len(history) == best + 5  # stopped 4 rounds without improvement after the best
    booster = xm.load_booster(result.model_files[0])
    assert booster.num_boosted_rounds() == best + 1  # the saved model ends at the best round
    assert booster.attributes() == {"best_iteration": str(best), "best_ntree_limit": str(best + 1)}


def test_early_stopping_needs_a_validation_channel_and_an_eval_metric(channels, tmp_path):
    train, validation, _ = channels
    lines: list[str] = []
    no_metric = algo.train({"num_round": "40", "eta": "0.9", "early_stopping_rounds": "2"}, train, validation,
                           tmp_path / "a", log=lines.append)
    assert xm.load_booster(no_metric.model_files[0]).num_boosted_rounds() == 40
    assert any("early_stopping_rounds is ignored" in line for line in lines)
    no_validation = algo.train({"num_round": "40", "eta": "0.9", "eval_metric": "rmse", "objective": "reg:squarederror",
                                "early_stopping_rounds": "2"}, train, None, tmp_path / "b", log=quiet)
    assert xm.load_booster(no_validation.model_files[0]).num_boosted_rounds() == 40


def test_eval_metric_lists_split_between_xgboost_and_the_container(channels, tmp_path):
    assert xb.eval_metrics_and_feval(None, None) == (None, None, None)
    cleaned, feval, tuning = xb.eval_metrics_and_feval("validation:rmse", ["mae", "error"])
    assert cleaned == ["error"] and tuning == ["rmse"] and feval is not None
    cleaned, feval, _ = xb.eval_metrics_and_feval(None, ["logloss", "auc"])
    assert cleaned == ["logloss", "auc"] and feval is None
    train, validation, _ = channels
    # r2 is the container's own metric, maximised: early stopping keeps its highest value
    hps = {"num_round": "200", "eta": "0.6", "objective": "reg:squarederror", "eval_metric": "mae,r2",
           "early_stopping_rounds": "3"}
    result = algo.train(hps, train, validation, tmp_path / "m", log=quiet)
    log = result.history[0]["validation"]
    assert set(log) == {"rmse", "mae", "r2"}  # no xgboost metric left: its default (rmse) is reported too
    assert len(log["rmse"]) == len(log["r2"])
    assert xm.load_booster(result.model_files[0]).num_boosted_rounds() == int(np.argmax(log["r2"])) + 1


def test_the_container_metrics_follow_scikit_learn():
    from sklearn import metrics

    rng = np.random.RandomState(3)
    labels = rng.rand(200).astype(np.float32) * 10
    preds = (labels + rng.normal(0, 1, 200)).astype(np.float32)
    dmatrix = xgboost.DMatrix(np.zeros((200, 1)), label=labels)
    assert xb.CUSTOM_METRICS["mse"](preds, dmatrix) == pytest.approx(metrics.mean_squared_error(labels, preds), rel=1e-6)
    assert xb.CUSTOM_METRICS["rmse"](preds, dmatrix) == pytest.approx(
        np.sqrt(metrics.mean_squared_error(labels, preds)), rel=1e-6)
    assert xb.CUSTOM_METRICS["mae"](preds, dmatrix) == pytest.approx(metrics.mean_absolute_error(labels, preds), rel=1e-6)
    assert xb.CUSTOM_METRICS["r2"](preds, dmatrix) == pytest.approx(metrics.r2_score(labels, preds), rel=1e-6)
    classes = (labels > 5).astype(np.float32)
    margins = rng.normal(0, 1, 200).astype(np.float32)
    binary = xgboost.DMatrix(np.zeros((200, 1)), label=classes)
    assert xb.CUSTOM_METRICS["f1_binary"](margins, binary) == metrics.f1_score(classes, margins > 0)
    assert xb.CUSTOM_METRICS["accuracy"](margins, binary) == metrics.accuracy_score(classes, margins > 0)


# --- csv_weights and _kfold ----------------------------------------------------------------------

def test_csv_weights_train_with_instance_weights(tmp_path):
    data = regression_data(200)
    weights = np.where(np.arange(200) % 2, 1.0, 3.0)
    weighted = np.column_stack([data[:, 0], weights, data[:, 1:]])
    train = write_csv(tmp_path / "w" / "train.csv", weighted).parent
    result = algo.train({"num_round": "5", "csv_weights": "1"}, train, None, tmp_path / "m", log=quiet)
    booster = xm.load_booster(result.model_files[0])
    assert booster.num_features() == 4
    x = data[:, 1:].astype(np.float32)
    direct = xgboost.train({"base_score": 0.5, "tree_method": "exact"},
                           xgboost.DMatrix(x, label=data[:, 0].astype(np.float32), weight=weights), 5)
    np.testing.assert_array_equal(booster.predict(xgboost.DMatrix(x)), direct.predict(xgboost.DMatrix(x)))


def test_kfold_saves_one_model_per_fold_and_out_of_fold_predictions(channels, tmp_path):
    train, validation, data = channels
    np.random.seed(0)
    hps = {"num_round": "5", "objective": "reg:squarederror", "_kfold": "3", "_num_cv_round": "2"}
    algo.train(hps, train, validation, tmp_path / "model", tmp_path / "output", log=quiet)
    assert sorted(p.name for p in (tmp_path / "model").iterdir()) == [f"xgboost-model-{i}" for i in range(6)]
    predictions = np.loadtxt(tmp_path / "output" / "predictions.csv", delimiter=",")
    assert predictions.shape == (400, 2)  # train and validation rows, (label, mean prediction)
    np.testing.assert_allclose(predictions[:, 0], data[:, 0], atol=1e-5)
    boosters = xm.load_model_dir(tmp_path / "model")
    x = data[:5, 1:]
    expected = np.mean([b.predict(xgboost.DMatrix(x)) for b in boosters], axis=0)
    np.testing.assert_array_equal(xm.predict(boosters, x), expected)
    with pytest.raises(algo.AlgorithmError, match="objective"):
        algo.train({"num_round": "2", "_kfold": "2"}, train, None, tmp_path / "m2", tmp_path / "o2", log=quiet)


def test_kfold_classification_is_stratified_and_votes(tmp_path):
    data = regression_data(120)
    data[:, 0] = (data[:, 0] > np.median(data[:, 0])).astype(float)
    train = write_csv(tmp_path / "t" / "train.csv", data).parent
    np.random.seed(1)
    algo.train({"num_round": "3", "objective": "binary:logistic", "_kfold": "4"}, train, None, tmp_path / "model",
               tmp_path / "out", log=quiet)
    predictions = np.loadtxt(tmp_path / "out" / "predictions.csv", delimiter=",")
    assert predictions.shape == (120, 3)  # label, mean probability, most frequent label
    assert set(np.unique(predictions[:, 2])) <= {0.0, 1.0}


# --- the model file ------------------------------------------------------------------------------

@pytest.mark.parametrize("params", [
    {"max_depth": 3, "base_score": 0.5},
    {"objective": "binary:logistic", "base_score": 0.5},
    {"objective": "multi:softprob", "num_class": 3, "base_score": 0.5},
    {"booster": "dart", "rate_drop": 0.3, "base_score": 0.5},
    {"booster": "gblinear", "base_score": 0.5},
    {"objective": "reg:tweedie", "tweedie_variance_power": 1.3, "base_score": 0.5},
    {"gamma": 20.0, "max_depth": 6},  # pruned: deleted nodes; base_score estimated by xgboost 2+
])
def test_binary_format_round_trips_and_keeps_predictions(params):
    data = regression_data(300)
    label = data[:, 0] if "num_class" not in params else np.digitize(data[:, 0], [6.5, 8])
    if params.get("objective") == "binary:logistic":
        label = (data[:, 0] > 7).astype(float)
    dtrain = xgboost.DMatrix(data[:, 1:], label=label)
    booster = xgboost.train({**params, "tree_method": "exact"}, dtrain, 4)
    binary = xm.json_to_legacy(xm.model_json(booster))
    assert xm.model_format(binary) == "binary"
    loaded = xm.load_booster(binary)
    np.testing.assert_array_equal(loaded.predict(dtrain), booster.predict(dtrain))
    assert xm.json_to_legacy(xm.legacy_to_json(binary)) == binary


def test_formats_are_told_apart_and_a_pickle_must_hold_a_booster(tmp_path):
    import pickle

    booster = xgboost.train({"base_score": 0.5}, xgboost.DMatrix(np.eye(3), label=[1, 2, 3]), 2)
    assert xm.model_format(bytes(booster.save_raw("json"))) == "json"
    assert xm.model_format(bytes(booster.save_raw("ubj"))) == "ubjson"
    pickled = pickle.dumps(booster)
    assert xm.model_format(pickled) == "pickle"
    np.testing.assert_array_equal(xm.load_booster(pickled).predict(xgboost.DMatrix(np.eye(3))),
                                  booster.predict(xgboost.DMatrix(np.eye(3))))
    with pytest.raises(pickle.UnpicklingError, match="not allowed"):
        xm.load_booster(pickle.dumps(os.system))
    with pytest.raises(xm.ModelFormatError):
        xm.model_format(b"not a model")


def test_the_job_writes_xgboost_model_under_the_sagemaker_contract(channels, tmp_path, monkeypatch):
    from steps.code import evaluate

    train, validation, data = channels
    config = tmp_path / "config"
    config.mkdir()
    (config / "hyperparameters.json").write_text(json.dumps({"num_round": "3", "max_depth": "2"}))
    for key, value in {"SM_INPUT_CONFIG_DIR": config, "SM_CHANNEL_TRAIN": train, "SM_CHANNEL_VALIDATION": validation,
                       "SM_MODEL_DIR": tmp_path / "model", "SM_OUTPUT_DATA_DIR": tmp_path / "out"}.items():
        monkeypatch.setenv(key, str(value))
    assert algo.main() == 0
    assert [p.name for p in (tmp_path / "model").iterdir()] == ["xgboost-model"]
    saved = (tmp_path / "model" / "xgboost-model").read_bytes()
    assert xm.model_format(saved) == "binary"          # the container's own format
    model = evaluate.load_model(tmp_path / "model")
    np.testing.assert_array_equal(model.predict(data[:20, 1:]), xm.predict(xm.load_booster(saved), data[:20, 1:]))
    (config / "hyperparameters.json").write_text(json.dumps({"num_round": "3", "max_depth": "two"}))
    assert algo.main() == 2


# --- against the container's own code, in its reference environment --------------------------

needs_reference = pytest.mark.skipif(ref.missing() is not None, reason=str(ref.missing()))
_SPLITS: dict[str, Path] = {}


@pytest.fixture
def abalone_split(abalone_csv, tmp_path_factory) -> Path:
    """The abalone data split and encoded by the pipeline's own preprocess step (seed 42)."""
    if "base" not in _SPLITS:
        base = tmp_path_factory.mktemp("abalone")
        (base / "input" / "data").mkdir(parents=True)
        (base / "input" / "data" / "abalone.csv").write_bytes(abalone_csv.read_bytes())
        subprocess.run([sys.executable, str(ROOT / "steps/code/preprocess.py"), "--target", "8", "--no-header",
                        "--categorical", "0"], env={**os.environ, "MLPIPE_PROCESSING_DIR": str(base)},
                       check=True, capture_output=True)
        _SPLITS["base"] = base
    return _SPLITS["base"]


def features_payload(csv_path: Path) -> tuple[np.ndarray, np.ndarray, str]:
    lines = csv_path.read_text().splitlines()
    table = np.loadtxt(csv_path, delimiter=",", ndmin=2)
    return table[:, 0], table[:, 1:], "\n".join(line.split(",", 1)[1] for line in lines)


def container_and_local(hps: dict, train: Path, validation: Path | None, work: Path, seed: int | None = None):
    """Train with the container's code and with the emulator on the same channels. Under
    _kfold the container reads train and validation in directory order, which the file system
    decides; the emulator is given the same order (it reads train first)."""
    answer = ref.container_train(hps, train, validation, work / "container" / "model", work / "container" / "output",
                                 numpy_seed=seed)
    validation_first = len(answer["read_order"]) == 2 and answer["read_order"][0].startswith("validation")
    read = algo.read_dmatrix
    with pytest.MonkeyPatch.context() as patch:
        if validation_first:
            patch.setattr(algo, "read_dmatrix", lambda paths, w=0: read(paths[::-1] if len(paths) == 2 else paths, w))
        if seed is not None:
            np.random.seed(seed)
        algo.train(hps, train, validation, work / "local" / "model", work / "local" / "output", log=quiet)
    return work / "container" / "model", work / "local" / "model"


def assert_same_models(container_dir: Path, local_dir: Path) -> None:
    names = sorted(p.name for p in container_dir.iterdir())
    assert names == sorted(p.name for p in local_dir.iterdir())
    for name in names:
        assert (container_dir / name).read_bytes() == (local_dir / name).read_bytes(), f"{name} differs"


@needs_reference
@pytest.mark.parametrize("case", ["abalone", "early-stopping", "custom-metric"])
def test_container_and_emulator_train_the_same_abalone_model(abalone_split, tmp_path, case):
    hps = {"abalone": ABALONE_PARAMS,
           "early-stopping": {**ABALONE_PARAMS, "num_round": "300", "eval_metric": "mae,rmse",
                              "early_stopping_rounds": "5"},
           "custom-metric": {"num_round": "200", "max_depth": "6", "objective": "reg:squarederror", "eval_metric": "rmse,r2",
                             "early_stopping_rounds": "5", "colsample_bytree": "0.8"}}[case]
    container, local = container_and_local(hps, abalone_split / "train", abalone_split / "validation", tmp_path)
    y, x, payload = features_payload(abalone_split / "test" / "test.csv")
    served = np.asarray(ref.container_predict(container, payload))
    mine = xm.predict(xm.load_model_dir(local), x)
    print(f"{case}: max |container - emulator| = {np.abs(served - mine).max():.3g}; test MSE container "
          f"{np.mean((served - y) ** 2):.3f}, emulator {np.mean((mine - y) ** 2):.3f}")
    np.testing.assert_array_equal(mine, served)
    assert_same_models(container, local)


@needs_reference
def test_csv_weights_match_the_container(abalone_split, tmp_path):
    for name in ("train", "validation"):
        table = np.loadtxt(abalone_split / name / f"{name}.csv", delimiter=",")
        weights = 1.0 + (np.arange(len(table)) % 3)
        write_csv(tmp_path / "w" / name / f"{name}.csv", np.column_stack([table[:, 0], weights, table[:, 1:]]))
    hps = {**ABALONE_PARAMS, "num_round": "20", "csv_weights": "1"}
    container, local = container_and_local(hps, tmp_path / "w/train", tmp_path / "w/validation", tmp_path)
    assert_same_models(container, local)


@needs_reference
@pytest.mark.parametrize("with_validation", [False, True])
def test_kfold_matches_the_container_with_the_same_numpy_seed(abalone_split, tmp_path, with_validation):
    hps = {**ABALONE_PARAMS, "num_round": "10", "_kfold": "3", "_num_cv_round": "2"}
    validation = abalone_split / "validation" if with_validation else None
    container, local = container_and_local(hps, abalone_split / "train", validation, tmp_path, seed=11)
    assert_same_models(container, local)
    mine = np.loadtxt(tmp_path / "local/output/predictions.csv", delimiter=",")
    theirs = np.loadtxt(tmp_path / "container/output/predictions.csv", delimiter=",")
    np.testing.assert_array_equal(mine, theirs)
    y, x, payload = features_payload(abalone_split / "test" / "test.csv")
    served = np.asarray(ref.container_predict(container, payload))
    # the endpoint averages the folds in directory order, float32: a few ulps apart at most
    np.testing.assert_allclose(xm.predict(xm.load_model_dir(local), x), served, rtol=2e-6)


def pack(model_dir: Path, tar_path: Path) -> Path:
    with tarfile.open(tar_path, "w:gz") as tar:
        for path in sorted(model_dir.iterdir()):
            tar.add(path, arcname=path.name)
    return tar_path


@needs_reference
def test_a_container_model_tar_loads_and_predicts_locally(abalone_split, tmp_path):
    ref.container_train(ABALONE_PARAMS, abalone_split / "train", abalone_split / "validation", tmp_path / "c" / "model")
    y, x, payload = features_payload(abalone_split / "test" / "test.csv")
    served = np.asarray(ref.container_predict(tmp_path / "c" / "model", payload))
    assert (tmp_path / "c" / "model" / "xgboost-model").read_bytes()[:4] == b"binf"
    np.testing.assert_array_equal(xm.predict(xm.load_model_dir(tmp_path / "c" / "model"), x), served)
    tar = pack(tmp_path / "c" / "model", tmp_path / "model.tar.gz")
    from steps.code import evaluate
    from workflows.local.serve import load_predictor

    predict = load_predictor(tar)
    np.testing.assert_allclose(predict(x), served, rtol=1e-6)
    report = evaluate.evaluate(evaluate.load_model(tar), y, x, "regression")
    assert report["regression_metrics"]["mse"]["value"] == pytest.approx(np.mean((served - y) ** 2), rel=1e-6)
    # a _kfold model: one file per fold, averaged as the container's endpoint does
    np.random.seed(0)
    algo.train({**ABALONE_PARAMS, "num_round": "5", "_kfold": "2"}, abalone_split / "train", None,
               tmp_path / "k" / "model", tmp_path / "k" / "out", log=quiet)
    folds = pack(tmp_path / "k" / "model", tmp_path / "kfold.tar.gz")
    np.testing.assert_allclose(load_predictor(folds)(x), xm.predict(xm.load_model_dir(tmp_path / "k" / "model"), x),
                               rtol=1e-6)


@needs_reference
def test_xgboost_1_7_predicts_what_the_emulator_predicts(abalone_split, tmp_path):
    result = algo.train(ABALONE_PARAMS, abalone_split / "train", abalone_split / "validation", tmp_path / "m",
                        log=quiet)
    y, x, payload = features_payload(abalone_split / "test" / "test.csv")
    mine = xm.predict(result.boosters, x)
    answer = ref.run_driver("predict", {"model_dir": str(tmp_path / "m"), "payload": payload})
    assert answer["format"] == "xgb_format" and answer["objective"] == "reg:squarederror"
    np.testing.assert_array_equal(np.asarray(answer["predictions"]), mine)
    assert np.mean((mine - y) ** 2) < 6.0


@needs_reference
def test_xgboost_1_7_loads_the_json_document_the_job_writes_until_evaluate_reads_binary(abalone_split, tmp_path):
    result = algo.train(ABALONE_PARAMS, abalone_split / "train", abalone_split / "validation", tmp_path / "m",
                        log=quiet, model_format="json")
    assert xm.model_format(result.model_files[0].read_bytes()) == "json"
    y, x, payload = features_payload(abalone_split / "test" / "test.csv")
    answer = ref.run_driver("predict", {"model_dir": str(tmp_path / "m"), "payload": payload})
    np.testing.assert_array_equal(np.asarray(answer["predictions"]), xm.predict(result.boosters, x))
    ref.run_driver("resave", {"source": str(result.model_files[0]), "target": str(tmp_path / "resaved")})
    binary = tmp_path / "b"
    algo.train(ABALONE_PARAMS, abalone_split / "train", abalone_split / "validation", binary, log=quiet)
    assert (tmp_path / "resaved").read_bytes() == (binary / "xgboost-model").read_bytes()


@needs_reference
def test_a_model_of_the_installed_xgboost_keeps_its_base_score_in_xgboost_1_7(abalone_split, tmp_path):
    """xgboost 2+ estimates base_score (here the mean rings, about 9.9) and writes it as a
    vector that xgboost 1.7 cannot read; the binary format carries it."""
    table = np.loadtxt(abalone_split / "train" / "train.csv", delimiter=",")
    booster = xgboost.train({"max_depth": 4}, xgboost.DMatrix(table[:, 1:], label=table[:, 0]), 20)
    xm.save_booster(booster, tmp_path / "m" / "xgboost-model")
    y, x, payload = features_payload(abalone_split / "test" / "test.csv")
    answer = ref.run_driver("predict", {"model_dir": str(tmp_path / "m"), "payload": payload})
    np.testing.assert_allclose(np.asarray(answer["predictions"]), booster.predict(xgboost.DMatrix(x)), rtol=1e-6)


@needs_reference
@pytest.mark.parametrize("params", [
    {"objective": "binary:logistic", "max_depth": 3},
    {"objective": "multi:softprob", "num_class": 3},
    {"booster": "dart", "rate_drop": 0.2},
    {"booster": "gblinear"},
    {"objective": "reg:tweedie", "tweedie_variance_power": 1.4},
    {"objective": "count:poisson"},
    {"gamma": 20.0, "max_depth": 6},
])
def test_xgboost_1_7_rewrites_the_emulator_binary_byte_for_byte(tmp_path, params):
    data = regression_data(300)
    label = {"binary:logistic": (data[:, 0] > 7).astype(float),
             "multi:softprob": np.digitize(data[:, 0], [6.5, 8]).astype(float)}.get(params.get("objective"), data[:, 0])
    booster = xgboost.train({**params, "base_score": 0.5, "tree_method": "exact"},
                            xgboost.DMatrix(data[:, 1:], label=label), 4)
    path = xm.save_booster(booster, tmp_path / "m" / "xgboost-model", boost_from_average=True)
    ref.run_driver("resave", {"source": str(path), "target": str(tmp_path / "resaved")})
    assert (tmp_path / "resaved").read_bytes() == path.read_bytes()
    payload = "\n".join(",".join(f"{v:.17g}" for v in row) for row in data[:50, 1:])
    answer = ref.run_driver("predict", {"model_dir": str(tmp_path / "m"), "payload": payload})
    np.testing.assert_allclose(np.asarray(answer["predictions"]), booster.predict(xgboost.DMatrix(data[:50, 1:])),
                               rtol=1e-6, atol=1e-7)


@needs_reference
def test_container_metrics_and_folds_match_the_emulator():
    rng = np.random.RandomState(5)
    labels = (rng.rand(300) * 10).astype(np.float32)
    preds = (labels + rng.normal(0, 1, 300)).astype(np.float32)
    names = ["mse", "rmse", "mae", "r2"]
    theirs = ref.run_driver("metrics", {"labels": labels.tolist(), "preds": preds.tolist(), "names": names})["values"]
    dmatrix = xgboost.DMatrix(np.zeros((300, 1)), label=labels)
    for name in names:
        assert f"{float(xb.CUSTOM_METRICS[name](preds, dmatrix)):f}" == f"{theirs[name]:f}", name
    classes = (labels > 5).astype(np.float32)
    margins = rng.normal(0, 1, 300).astype(np.float32)
    names = ["accuracy", "balanced_accuracy", "f1", "f1_binary", "precision", "recall", "recall_macro"]
    theirs = ref.run_driver("metrics", {"labels": classes.tolist(), "preds": margins.tolist(), "names": names})["values"]
    binary = xgboost.DMatrix(np.zeros((300, 1)), label=classes)
    for name in names:
        assert float(xb.CUSTOM_METRICS[name](margins, binary)) == pytest.approx(theirs[name], abs=1e-12), name
    from sklearn.model_selection import RepeatedKFold, RepeatedStratifiedKFold

    for y in (None, classes.tolist()):
        theirs = ref.run_driver("splits", {"seed": 4, "kfold": 3, "repeats": 2, "n": 300, "y": y})["splits"]
        np.random.seed(4)
        splitter = RepeatedStratifiedKFold(n_splits=3, n_repeats=2) if y else RepeatedKFold(n_splits=3, n_repeats=2)
        mine = [[tr.tolist(), va.tolist()] for tr, va in splitter.split(X=range(300), y=y)]
        assert mine == theirs


def test_reading_a_channel_survives_other_processes_churning_tmp(tmp_path):
    """dmlc lists the parent of the path it is given and stats every entry; directly under /tmp,
    a temporary directory another process removes meanwhile failed the load (seen in CI as
    "LocalFileSystem.GetPathInfo: /tmp/tmpXXXX: No such file or directory")."""
    import tempfile
    import threading

    channel = tmp_path / "train"
    channel.mkdir()
    (channel / "train.csv").write_text("".join(f"{i % 3},{i},{2 * i}\n" for i in range(50)))
    stop = threading.Event()

    def churn():
        while not stop.is_set():
            os.rmdir(tempfile.mkdtemp())

    worker = threading.Thread(target=churn)
    worker.start()
    try:
        for _ in range(120):  # without the fix about 1 load in 19 failed: 6 expected here
            assert algo.read_dmatrix([channel]).num_row() == 50
    finally:
        stop.set()
        worker.join()
