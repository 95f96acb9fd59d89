"""The container scripts in steps/code/, run the way SageMaker and the local runner run them.

End-to-end cases run each script as a subprocess with MLPIPE_PROCESSING_DIR pointing into
tmp_path; the pure helpers the CLI and the model server import are tested in process.
"""

from __future__ import annotations

import io
import json
import math
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xgboost
from sklearn import datasets, metrics

from steps.code import evaluate, preprocess, train_pytorch
from steps.spec import GateStage

CODE = Path(__file__).resolve().parents[1] / "steps" / "code"
ABALONE = Path(__file__).resolve().parents[2] / "shared/data/abalone.csv"
# The SageMaker abalone example's hyperparameters for the built-in XGBoost 1.7-1 algorithm.
ABALONE_PARAMS = {"objective": "reg:squarederror", "max_depth": 5, "eta": 0.2, "gamma": 4,
                  "min_child_weight": 6, "subsample": 0.7}


def start(script: str, base: Path, *args: str) -> subprocess.Popen:
    env = {**os.environ, "MLPIPE_PROCESSING_DIR": str(base)}
    return subprocess.Popen([sys.executable, str(CODE / script), *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)


def run(script: str, base: Path, *args: str) -> subprocess.CompletedProcess:
    proc = start(script, base, *args)
    out, err = proc.communicate(timeout=120)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def ok(script: str, base: Path, *args: str) -> subprocess.CompletedProcess:
    proc = run(script, base, *args)
    assert proc.returncode == 0, proc.stderr
    return proc


def with_input(base: Path, name: str, text: str, newline: str = "\n") -> Path:
    data = base / "input" / "data"
    data.mkdir(parents=True, exist_ok=True)
    (data / name).write_text(text, newline=newline)
    return base


def split(base: Path, name: str) -> np.ndarray:
    # np.loadtxt fails on a header row, so loading is itself the no-header check.
    return np.loadtxt(base / name / f"{name}.csv", delimiter=",", ndmin=2)


def assert_splits(base: Path, n: int, ratios=(0.7, 0.15, 0.15)) -> tuple[np.ndarray, ...]:
    parts = tuple(split(base, name) for name in ("train", "validation", "test"))
    assert sum(len(p) for p in parts) == n
    for part, ratio in zip(parts, ratios):
        assert abs(len(part) - ratio * n) <= 1
        assert not np.isnan(part).any()
    assert len({p.shape[1] for p in parts}) == 1
    return parts


def model_tar(base: Path, booster: xgboost.Booster, tmp_path: Path) -> None:
    """model.tar.gz as the XGBoost 1.7 container writes it: one file named xgboost-model."""
    booster.save_model(str(tmp_path / "model.ubj"))
    (base / "model").mkdir(parents=True)
    with tarfile.open(base / "model" / "model.tar.gz", "w:gz") as tar:
        tar.add(tmp_path / "model.ubj", arcname="xgboost-model")


def gate_value(report: dict, metric: str) -> float:
    node = report
    for part in GateStage(name="g", metric=metric).json_path.split("."):
        node = node[part]
    return node


# --- preprocess, end to end ------------------------------------------------------------------

def test_diabetes_semicolon_crlf_named_target(tmp_path):
    frame = datasets.load_diabetes(as_frame=True).frame
    frame["sex"] = np.where(frame["sex"] > 0, "M", "F")  # a text column: one-hot by auto-detection
    frame.loc[[3, 50, 200], "bmi"] = np.nan               # blanks: median-imputed
    base = with_input(tmp_path, "diabetes.csv", frame.to_csv(sep=";", index=False), newline="\r\n")
    assert b"\r\n" in (base / "input/data/diabetes.csv").read_bytes()

    ok("preprocess.py", base, "--target", "target")

    parts = assert_splits(base, len(frame))
    # Target first: the first columns together are exactly the original targets.
    assert sorted(np.concatenate([p[:, 0] for p in parts])) == pytest.approx(sorted(frame["target"]))
    schema = json.loads((base / "test/schema.json").read_text())
    assert schema["target"] == "target" and schema["problem_type"] == "regression"
    assert {"cat__sex_F", "cat__sex_M", "num__bmi"} <= set(schema["feature_names"])
    assert len(schema["feature_names"]) == parts[0].shape[1] - 1
    # Fitted on train only: train's scaled columns are centred, the other splits only roughly.
    numeric = [i + 1 for i, n in enumerate(schema["feature_names"]) if n.startswith("num__")]
    assert np.abs(parts[0][:, numeric].mean(axis=0)).max() < 1e-6
    assert np.abs(parts[2][:, numeric].mean(axis=0)).max() > 1e-3
    assert not (base / "test/labels.json").exists()


def test_abalone_xgboost_evaluate_matches_reference(tmp_path):
    if not ABALONE.is_file():
        pytest.skip(f"{ABALONE} is not here")
    base = with_input(tmp_path / "run", "abalone.csv", ABALONE.read_text())
    ok("preprocess.py", base, "--target", "8", "--categorical", "0", "--no-header")

    train, validation, test = assert_splits(base, 4176)
    rings = pd.read_csv(ABALONE, header=None)[8]
    assert sorted(np.concatenate([train[:, 0], validation[:, 0], test[:, 0]])) == sorted(rings)
    assert train.shape[1] == 1 + 7 + 3  # target, seven measurements, sex one-hot (F, I, M)

    booster = xgboost.train(ABALONE_PARAMS, xgboost.DMatrix(train[:, 1:], label=train[:, 0]),
                            num_boost_round=50)
    model_tar(base, booster, tmp_path)
    ok("evaluate.py", base)

    report = json.loads((base / "evaluation/evaluation.json").read_text())
    mse = report["regression_metrics"]["mse"]["value"]
    assert 3.5 <= mse <= 6.0, mse  # the data's reference is about 4.8
    assert report["regression_metrics"]["rmse"]["value"] == pytest.approx(math.sqrt(mse))
    assert set(report["regression_metrics"]) == {"mse", "rmse", "mae", "r2"}
    assert all(m["standard_deviation"] > 0 for m in report["regression_metrics"].values())
    assert gate_value(report, "mse") == mse
    flat = json.loads((base / "evaluation/metrics.json").read_text())
    assert flat == {**{k: v["value"] for k, v in report["regression_metrics"].items()}, "n": len(test)}
    predictions = booster.predict(xgboost.DMatrix(test[:, 1:]))
    assert mse == pytest.approx(metrics.mean_squared_error(test[:, 0], predictions), rel=1e-5)
    print(f"abalone test mse = {mse:.4f}")


def test_iris_string_labels_classification(tmp_path, monkeypatch):
    """In process (main() as the container calls it), to keep the suite quick."""
    iris = datasets.load_iris(as_frame=True)
    frame = iris.frame.assign(species=iris.target_names[iris.target]).drop(columns="target")
    base = with_input(tmp_path, "iris.csv", frame.to_csv(index=False))
    monkeypatch.setattr(preprocess, "BASE", str(base))
    monkeypatch.setattr(evaluate, "BASE", str(base))
    assert preprocess.main(["--target", "species", "--problem-type", "classification", "--seed", "7"]) == 0

    train, _, test = assert_splits(base, 150)
    assert json.loads((base / "test/labels.json").read_text()) == {"classes": ["setosa", "versicolor", "virginica"]}
    assert set(np.unique(train[:, 0])) == {0.0, 1.0, 2.0}

    params = {"objective": "multi:softprob", "num_class": 3, "max_depth": 3, "eta": 0.3}
    booster = xgboost.train(params, xgboost.DMatrix(train[:, 1:], label=train[:, 0]), num_boost_round=20)
    model_tar(base, booster, tmp_path)
    assert evaluate.main(["--problem-type", "classification"]) == 0

    report = json.loads((base / "evaluation/evaluation.json").read_text())
    section = report["multiclass_classification_metrics"]
    assert set(section) == {"accuracy", "auc", "f1"}
    assert section["accuracy"]["value"] > 0.8 and section["auc"]["value"] > 0.9
    assert report["classification_metrics"] == section  # the quality gate's problem-neutral path
    assert gate_value(report, "accuracy") == section["accuracy"]["value"]


def test_several_files_are_concatenated_in_sorted_order(tmp_path):
    rows = [f"{i},{i % 3},{i * 0.5}" for i in range(30)]
    base = with_input(tmp_path, "b.csv", "\n".join(rows[15:]) + "\n")
    with_input(tmp_path, "a.csv", "\n".join(rows[:15]) + "\n")
    frame, target = preprocess.load_frame(preprocess.find_csv_files(base / "input/data"))
    assert target == "column_2"
    assert frame["column_0"].tolist() == list(range(30))  # pandas infers the numeric column


BAD_INPUTS = {
    "unknown target name": ("a,b,y\n" + "1,2,3\n" * 20, ["--target", "price"], "'price' is not a column"),
    "empty file": ("", [], "is empty"),
    "text regression target": ("a,b,y\n" + "1,2,3\n" * 19 + "1,2,lots\n", ["--target", "y"], "'lots'"),
    "too few rows": ("a,b,y\n" + "1,2,3\n" * 5, [], "only 5 rows"),
}
MORE_BAD_INPUTS = {
    "target index out of range": ("1,2,3\n" * 20, ["--target", "7"], "index 7 is out of range"),
    "no csv files": (None, [], "no CSV files"),
    "name target with --no-header": ("1,2,3\n" * 20, ["--target", "y", "--no-header"], "--column-names"),
}


def bad_base(base: Path, text: str | None) -> Path:
    if text is None:
        (base / "input/data").mkdir(parents=True)
        return base
    return with_input(base, "data.csv", text)


@pytest.fixture(scope="module")
def bad_runs(tmp_path_factory):
    """All bad-input runs at once: each pays the interpreter start-up, so they overlap."""
    procs = {case: start("preprocess.py", bad_base(tmp_path_factory.mktemp("bad"), text), *args)
             for case, (text, args, _) in BAD_INPUTS.items()}
    return {case: (proc, *proc.communicate(timeout=120)) for case, proc in procs.items()}


@pytest.mark.parametrize("case", BAD_INPUTS)
def test_bad_input_exits_2_with_a_message(bad_runs, case):
    proc, out, err = bad_runs[case]
    assert proc.returncode == 2, (out, err)
    assert err.startswith("error: ") and BAD_INPUTS[case][2] in err, err
    assert "Traceback" not in err


@pytest.mark.parametrize("case", MORE_BAD_INPUTS)
def test_more_bad_input_in_process(tmp_path, monkeypatch, capsys, case):
    text, args, message = MORE_BAD_INPUTS[case]
    monkeypatch.setattr(preprocess, "BASE", str(bad_base(tmp_path, text)))
    assert preprocess.main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err, err


# --- preprocess, pure helpers ------------------------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    ("a,b,c\r\n1,2,3\r\n4,5,6\r\n", (",", True)),
    ("1;2.5;x\n3;4.5;y\n5;6.5;z\n", (";", False)),
    ("name\tage\nann\t31\nbob\t42\n", ("\t", True)),
    ("x|y\n1|2\n3|4\n", ("|", True)),
    ("M,0.35,7\nF,0.53,9\nI,0.44,10\n", (",", False)),
    ("42\n43\n44\n", (",", False)),
])
def test_sniff(text, expected):
    assert preprocess.sniff(text) == expected


def test_sniff_reads_a_file(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("a;b\n1;2\n3;4\n")
    assert preprocess.sniff(path) == preprocess.sniff(str(path)) == (";", True)


def test_load_frame_options(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("M,0.35,7\nF,0.53,9\n")
    frame, target = preprocess.load_frame([path], target="rings", column_names=["sex", "length", "rings"])
    assert target == "rings" and list(frame.columns) == ["sex", "length", "rings"] and len(frame) == 2
    frame, target = preprocess.load_frame(path, target=0, header=False)
    assert target == "column_0"
    with pytest.raises(preprocess.DataError, match="--no-header"):
        preprocess.load_frame(path, target="rings", header=False)
    with pytest.raises(preprocess.DataError, match="gives 2 names but the data has 3"):
        preprocess.load_frame(path, column_names=["a", "b"])


def test_load_frame_strips_text_and_blanks_are_missing_under_any_pandas(tmp_path):
    """The SKLearn container's pandas 1.x gives text columns the object dtype, pandas 3 the str
    dtype: either way padded text is stripped and blank cells become missing values."""
    path = tmp_path / "t.csv"
    path.write_text("sex,length,rings\n M ,0.35,7\n  ,0.53,9\nF,,10\n I,0.4,\n")
    frame, _ = preprocess.load_frame(path, target="rings", header=True)
    assert frame["sex"].tolist()[0] == "M" and frame["sex"].tolist()[2:] == ["F", "I"]
    assert frame["sex"].isna().tolist() == [False, True, False, False]
    assert frame["length"].isna().tolist() == [False, False, True, False]
    assert frame["rings"].isna().tolist() == [False, False, False, True]


@pytest.mark.parametrize("shape", [(2503, 11), (7, 1), (0, 4), (5,)])
def test_split_files_are_written_as_savetxt_writes_them(shape):
    """preprocess.write_rows is a faster np.savetxt(fmt="%.10g", delimiter=","): the same bytes."""
    rng = np.random.default_rng(5)
    rows = rng.normal(0, 1, shape) * 10.0 ** rng.integers(-12, 12, shape)
    if rows.size:
        rows.flat[[0, -1]] = [np.nan, -np.inf]
    expected, mine = io.StringIO(), io.StringIO()
    np.savetxt(expected, rows, fmt="%.10g", delimiter=",", newline="\n")
    preprocess.write_rows(mine, rows, chunk=1000)
    assert mine.getvalue() == expected.getvalue()


def test_validate_and_split_rules():
    frame = pd.DataFrame({"x": [str(i) for i in range(12)], "y": ["1"] * 6 + ["2"] * 6})
    preprocess.validate(frame, "y", "classification")
    with pytest.raises(preprocess.DataError, match="sum to 1"):
        preprocess.validate(frame, "y", "regression", (0.7, 0.2, 0.2))
    with pytest.raises(preprocess.DataError, match="fewer than two classes"):
        preprocess.validate(frame.assign(y="a"), "y", "classification")
    assert preprocess.split_sizes(4176, (0.7, 0.15, 0.15)) == (2924, 626, 626)
    assert preprocess.minimum_rows((0.7, 0.15, 0.15)) == 10
    assert preprocess.minimum_rows((0.9, 0.05, 0.05)) == 11  # 10 * 0.05 rounds (half to even) to 0
    assert preprocess.minimum_rows((0.98, 0.01, 0.01)) == 51


def test_split_is_seeded_and_categorical_checked():
    frame = pd.DataFrame({"x": [str(i) for i in range(40)], "c": list("ab") * 20,
                          "y": [str(i % 7) for i in range(40)]})
    first = preprocess.split_and_transform(frame, "y", seed=1)
    assert np.array_equal(first.test, preprocess.split_and_transform(frame, "y", seed=1).test)
    assert not np.array_equal(first.test, preprocess.split_and_transform(frame, "y", seed=2).test)
    assert first.feature_names == ["num__x", "cat__c_a", "cat__c_b"]
    names = preprocess.split_and_transform(frame, "y", categorical=["x", 1]).feature_names
    assert all(n.startswith(("cat__x_", "cat__c_")) for n in names)
    with pytest.raises(preprocess.DataError, match="column 'c' is not numeric"):
        preprocess.split_and_transform(frame, "y", categorical=[])
    with pytest.raises(preprocess.DataError, match="is the target"):
        preprocess.split_and_transform(frame, "y", categorical=["y"])


# --- evaluate, pure helpers --------------------------------------------------------------------

def test_metrics_agree_with_sklearn():
    rng = np.random.RandomState(3)
    y = rng.normal(size=200)
    pred = y + rng.normal(scale=0.5, size=200)
    got = evaluate.regression_metrics(y, pred)
    assert got["mse"] == pytest.approx(metrics.mean_squared_error(y, pred))
    assert got["mae"] == pytest.approx(metrics.mean_absolute_error(y, pred))
    assert got["r2"] == pytest.approx(metrics.r2_score(y, pred))

    y2 = rng.randint(0, 2, 300)
    scores = np.round(np.clip(y2 * 0.3 + rng.uniform(size=300), 0, 1), 1)  # rounded: many ties
    labels = (scores > 0.5).astype(int)
    got = evaluate.classification_metrics(y2, labels, scores)
    assert got["accuracy"] == pytest.approx(metrics.accuracy_score(y2, labels))
    assert got["f1"] == pytest.approx(metrics.f1_score(y2, labels))
    assert got["auc"] == pytest.approx(metrics.roc_auc_score(y2, scores))

    y3 = rng.randint(0, 4, 300)
    proba = rng.dirichlet(np.ones(4), 300) + np.eye(4)[y3] * 0.3
    proba /= proba.sum(axis=1, keepdims=True)
    got = evaluate.classification_metrics(y3, proba.argmax(axis=1), proba, multiclass=True)
    assert got["f1"] == pytest.approx(metrics.f1_score(y3, proba.argmax(axis=1), average="macro"))
    assert got["auc"] == pytest.approx(metrics.roc_auc_score(y3, proba, multi_class="ovr", average="macro"))
    assert "auc" not in evaluate.classification_metrics(np.ones(5, int), np.ones(5, int), np.ones(5))


def test_load_model_reads_json_boosters_from_a_directory_and_predicts(tmp_path):
    x = np.random.RandomState(0).uniform(size=(50, 3))
    booster = xgboost.train({"objective": "binary:logistic"}, xgboost.DMatrix(x, label=x[:, 0] > 0.5), 5)
    booster.save_model(str(tmp_path / "m.json"))
    (tmp_path / "m.json").rename(tmp_path / "xgboost-model")
    model = evaluate.load_model(tmp_path)
    assert (model.kind, model.objective) == ("xgboost", "binary:logistic")
    assert evaluate.predict(tmp_path, x) == pytest.approx(booster.predict(xgboost.DMatrix(x)))
    with pytest.raises(evaluate.EvaluationError, match="expects 3"):
        model.predict(x[:, :2])


def test_load_model_refuses_bad_archives(tmp_path, monkeypatch):
    def archive(name: str, data: bytes = b"x") -> Path:
        path = tmp_path / f"{len(list(tmp_path.iterdir()))}.tar.gz"
        with tarfile.open(path, "w:gz") as tar:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        return path

    with pytest.raises(evaluate.EvaluationError, match="unsafe entry"):
        evaluate.load_model(archive("../escape"))
    with pytest.raises(evaluate.EvaluationError, match="neither xgboost-model"):
        evaluate.load_model(archive("weights.bin"))
    with pytest.raises(evaluate.EvaluationError, match="no model at"):
        evaluate.load_model(tmp_path / "missing.tar.gz")
    monkeypatch.setitem(sys.modules, "torch", None)  # as in an image without torch
    with pytest.raises(evaluate.EvaluationError, match="evaluation of pytorch models needs torch"):
        evaluate.load_model(archive("model.pt"))


def test_evaluate_refuses_a_regressor_for_classification():
    model = evaluate.Model("xgboost", "reg:squarederror", lambda x: x[:, 0])
    with pytest.raises(evaluate.EvaluationError, match="does not predict classes"):
        evaluate.evaluate(model, np.array([0.0, 1.0]), np.array([[0.2], [0.9]]), "classification")


def test_evaluate_missing_model_exits_2(tmp_path):
    proc = run("evaluate.py", tmp_path)
    assert proc.returncode == 2 and proc.stderr.startswith("error: no model at") and "Traceback" not in proc.stderr


# --- train_pytorch, without torch ---------------------------------------------------------------

def test_hyperparameters_layering(tmp_path):
    config = tmp_path / "hyperparameters.json"
    # SageMaker's file: every value a string, JSON-encoded by the SDK, plus sagemaker_* entries.
    config.write_text(json.dumps({"batch_size": "64", "tokenizer_choice": '"bert-base-uncased"',
                                  "sagemaker_program": '"train_pytorch.py"'}))
    hps = train_pytorch.parse_hyperparameters(["--lr", "0.01"], {"SM_INPUT_CONFIG_DIR": str(tmp_path)})
    assert (hps["batch_size"], hps["lr"], hps["tokenizer_choice"], hps["max_epochs"]) == (64, 0.01, "bert-base-uncased", 10)
    assert hps["checkpoint_path"] is None

    env = {"SM_HPS": json.dumps({"batch_size": 8, "model_class": "linear"}), "SM_INPUT_CONFIG_DIR": str(tmp_path)}
    hps = train_pytorch.parse_hyperparameters(["--batch_size", "16"], env)
    assert (hps["batch_size"], hps["model_class"], hps["tokenizer_choice"]) == (16, "linear", "hashing")

    for argv, message in ((["--model_class", "cnn"], "not one of mlp, linear"),
                          (["--batch_size", "many"], "must be an integer"), (["--lr", "0"], "lr must be positive")):
        with pytest.raises(train_pytorch.TrainingError, match=message):
            train_pytorch.parse_hyperparameters(argv, {})
    with pytest.raises(train_pytorch.TrainingError, match="unknown hyperparameter 'epochs'"):
        train_pytorch.parse_hyperparameters([], {"SM_HPS": '{"epochs": 3}'})


def test_featurize_hashes_text_columns(tmp_path):
    (tmp_path / "train.csv").write_text('1.5,0.2,"Good product, works"\n2.0,,bad\n')
    rows = train_pytorch.read_rows(tmp_path)
    text = train_pytorch.text_columns(rows)
    assert text == [2]
    name, tokenize = train_pytorch.resolve_tokenizer("hashing")
    y, x = train_pytorch.featurize(rows, text, tokenize, buckets=16)
    assert name == "hashing" and y.tolist() == [1.5, 2.0]
    assert x.shape == (2, 1 + 16) and x[0, 1:].sum() == 3 and x[1, 1:].sum() == 1 and x[1, 0] == 0
    assert np.array_equal(x, train_pytorch.featurize(rows, text, tokenize, buckets=16)[1])  # stable hashing
    assert train_pytorch.layer_spec("linear", 17) == [["linear", 17, 1]]


def test_train_pytorch_trains_resumes_and_evaluates(tmp_path):
    """Runs where the torch extra is installed (mlpipe[torch]); skipped elsewhere."""
    pytest.importorskip("torch")
    rng = np.random.RandomState(0)
    x = rng.normal(size=(150, 3))
    rows = np.column_stack([x @ [1.0, -2.0, 0.5] + 3.0, x])
    ml = tmp_path / "ml"
    for name, part in (("train", rows[:120]), ("validation", rows[120:])):
        (ml / name).mkdir(parents=True)
        np.savetxt(ml / name / f"{name}.csv", part, delimiter=",", fmt="%.6f")
    env = {**os.environ, "SM_CHANNEL_TRAIN": str(ml / "train"), "SM_CHANNEL_VALIDATION": str(ml / "validation"),
           "SM_MODEL_DIR": str(ml / "model"), "SM_OUTPUT_DATA_DIR": str(ml / "output"),
           "SM_CHECKPOINT_DIR": str(ml / "checkpoints"), "SM_HPS": json.dumps({"lr": 0.05, "model_class": "linear"})}

    def train(epochs: int) -> str:
        proc = subprocess.run([sys.executable, str(CODE / "train_pytorch.py"), "--max_epochs", str(epochs),
                               "--batch_size", "16"], capture_output=True, text=True, env=env, timeout=300)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    out = train(40)
    assert "epoch=1 train_loss=" in out and "epoch=40 " in out and "validation_loss=" in out
    assert (ml / "checkpoints/checkpoint.pt").is_file()
    assert (ml / "model/code/inference.py").is_file() == (CODE / "inference_pytorch.py").is_file()
    losses = json.loads((ml / "output/metrics.json").read_text())
    assert losses["validation_loss"] < 0.1 and losses["epochs"] == 40

    resumed = train(42)
    assert "resumed from" in resumed and "epoch=41 " in resumed and "epoch=1 " not in resumed

    base = tmp_path / "evaluation"
    (base / "model").mkdir(parents=True)
    with tarfile.open(base / "model/model.tar.gz", "w:gz") as tar:
        tar.add(ml / "model/model.pt", arcname="model.pt")
    (base / "test").mkdir()
    np.savetxt(base / "test/test.csv", rows[120:], delimiter=",", fmt="%.6f")
    ok("evaluate.py", base)
    report = json.loads((base / "evaluation/evaluation.json").read_text())
    assert report["regression_metrics"]["mse"]["value"] < 0.1


def test_train_pytorch_without_torch_exits_2(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "torch", None)
    monkeypatch.setenv("SM_HPS", "{}")
    assert train_pytorch.main([]) == 2
    assert capsys.readouterr().err.startswith("error: train_pytorch needs torch")


@pytest.mark.parametrize("accept", [None, "", "*/*", "text/csv", "text/csv; charset=utf-8", "application/json, */*"])
def test_pytorch_inference_answers_csv_without_an_accept_header(accept):
    from steps.code import inference_pytorch

    # with its content type, so the response says text/csv whatever the Accept list was
    assert inference_pytorch.output_fn(np.array([1.5, 2.25]), accept) == ("1.5\n2.25\n", "text/csv")


@pytest.mark.parametrize("content_type", [None, "text/csv", "text/csv; charset=utf-8"])
def test_pytorch_inference_reads_csv_bytes_or_text(content_type):
    from steps.code import inference_pytorch

    for body in (b"1,2\n3,4\n", "1,2\n3,4\n"):
        np.testing.assert_array_equal(inference_pytorch.input_fn(body, content_type), [[1, 2], [3, 4]])
    with pytest.raises(ValueError, match="unsupported content type 'application/json'"):
        inference_pytorch.input_fn(b"[[1, 2]]", "application/json")


def test_pytorch_inference_refuses_other_accept_types():
    from steps.code import inference_pytorch

    with pytest.raises(ValueError, match="unsupported accept type"):
        inference_pytorch.output_fn(np.array([1.0]), "application/json")
