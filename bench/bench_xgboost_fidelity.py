"""Benchmark: does the local XGBoost emulator train the model SageMaker's XGBoost 1.7-1 trains?

On the abalone data, split and encoded by the pipeline's own preprocess step, it trains with the
container's own code (sagemaker_train, run from the sagemaker-xgboost-container mirror in its
reference environment: xgboost 1.7.4 and the image's pins) and with mlpipe's emulator, with the
train stage's hyperparameters of config/examples/abalone.yaml, plus an early-stopping and a k-fold
variant. It scores the test split with the container's endpoint code and with mlpipe's local
loader, and reports the largest difference from the container's own predictions and each test MSE.
"previous emulator" is the emulator before issue 10 (xgboost 3.x defaults, features read as
float64 by pandas, the model saved by xgboost 3.x as UBJSON).

Usage: .venv/bin/python bench/bench_xgboost_fidelity.py [--build] [--json]
Needs ../shared/data/abalone.csv and the reference environment
(python bench/containers/xgboost_reference.py build, or --build here).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from unittest import mock

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench" / "containers"))

import xgboost_reference as ref  # noqa: E402

from workflows.local import xgboost_algo, xgboost_model  # noqa: E402

ABALONE = ROOT.parent / "shared" / "data" / "abalone.csv"
SECTION = "## XGBoost emulator vs the SageMaker XGBoost 1.7-1 container"


def abalone_hyperparameters() -> dict[str, str]:
    doc = yaml.safe_load((ROOT / "config/examples/abalone.yaml").read_text())
    train = next(s for s in doc["stages"] if s["name"] == "train")
    return {k: str(v) for k, v in train["hyperparameters"].items()}


def preprocess(base: Path) -> None:
    (base / "input" / "data").mkdir(parents=True)
    (base / "input" / "data" / "abalone.csv").write_bytes(ABALONE.read_bytes())
    subprocess.run([sys.executable, str(ROOT / "steps/code/preprocess.py"), "--target", "8", "--no-header",
                    "--categorical", "0"], env={**os.environ, "MLPIPE_PROCESSING_DIR": str(base)},
                   check=True, capture_output=True)


def previous_emulator(hps: dict, train: Path, validation: Path, model_dir: Path) -> None:
    """The emulator as it was before: xgboost's own defaults, pandas float64, save_model."""
    import pandas as pd
    import xgboost

    def load(channel: Path):
        data = np.vstack([pd.read_csv(f, header=None, dtype=float).to_numpy() for f in sorted(channel.glob("*.csv"))])
        return xgboost.DMatrix(data[:, 1:], label=data[:, 0])

    def number(v: str):
        for cast in (int, float):
            try:
                return cast(v)
            except ValueError:
                pass
        return v

    skip = {"num_round", "early_stopping_rounds", "csv_weights", "_kfold", "_num_cv_round"}
    params = {k: number(v) for k, v in hps.items() if k not in skip}
    params.setdefault("nthread", os.cpu_count() or 1)
    dtrain, dval = load(train), load(validation)
    early = hps.get("early_stopping_rounds")
    booster = xgboost.train(params, dtrain, int(hps["num_round"]), evals=[(dtrain, "train"), (dval, "validation")],
                            early_stopping_rounds=int(early) if early else None, verbose_eval=False)
    model_dir.mkdir(parents=True, exist_ok=True)
    booster.save_model(str(model_dir / "xgboost-model"))


def test_rows(base: Path) -> tuple[np.ndarray, np.ndarray, str]:
    path = base / "test" / "test.csv"
    table = np.loadtxt(path, delimiter=",", ndmin=2)
    payload = "\n".join(line.split(",", 1)[1] for line in path.read_text().splitlines())
    return table[:, 0], table[:, 1:], payload


def identical(a: Path, b: Path) -> bool:
    names = sorted(p.name for p in a.iterdir())
    return names == sorted(p.name for p in b.iterdir()) and all(
        (a / n).read_bytes() == (b / n).read_bytes() for n in names)


def run_case(name: str, hps: dict, base: Path, work: Path, seed: int | None) -> dict:
    y, x, payload = test_rows(base)
    train, validation = base / "train", base / "validation"
    mse = lambda p: float(np.mean((np.asarray(p) - y) ** 2))  # noqa: E731
    t = time.perf_counter()
    answer = ref.container_train(hps, train, validation, work / "container" / "model", work / "container" / "out",
                                 numpy_seed=seed)
    container_seconds = time.perf_counter() - t
    served = np.asarray(ref.container_predict(work / "container" / "model", payload))
    # Under _kfold the container reads train and validation into one matrix in directory order,
    # which the file system decides; the emulator reads train first. Give it the same order.
    validation_first = len(answer["read_order"]) == 2 and answer["read_order"][0].startswith("validation")
    read = xgboost_algo.read_dmatrix
    with mock.patch.object(xgboost_algo, "read_dmatrix",
                           lambda paths, w=0: read(paths[::-1] if validation_first and len(paths) == 2 else paths, w)):
        if seed is not None:
            np.random.seed(seed)
        t = time.perf_counter()
        xgboost_algo.train(hps, train, validation, work / "local" / "model", work / "local" / "out",
                           log=lambda s: None)
        local_seconds = time.perf_counter() - t
    rows = {
        "container model, container endpoint (xgboost 1.7.4)": served,
        "container model, mlpipe local loader": xgboost_model.predict(
            xgboost_model.load_model_dir(work / "container" / "model"), x),
        "emulator model, mlpipe local loader": xgboost_model.predict(
            xgboost_model.load_model_dir(work / "local" / "model"), x),
        "emulator model, container endpoint (xgboost 1.7.4)": np.asarray(
            ref.container_predict(work / "local" / "model", payload)),
    }
    failed: dict[str, str] = {}
    if seed is None:
        try:
            previous_emulator(hps, train, validation, work / "previous" / "model")
            rows["previous emulator, local xgboost"] = xgboost_model.predict(
                xgboost_model.load_model_dir(work / "previous" / "model"), x)
            rows["previous emulator model, container endpoint (xgboost 1.7.4)"] = np.asarray(
                ref.container_predict(work / "previous" / "model", payload))
        except Exception as exc:  # e.g. eval_metric "mae,rmse" passed to xgboost as one name
            failed["previous emulator"] = re.sub(r"^\[[\d:]+\] \S+: ", "", str(exc).splitlines()[0])
    return {"case": name, "hyperparameters": hps, "container_read_order": answer["read_order"],
            "model_files_identical": identical(work / "container" / "model", work / "local" / "model"),
            "train_seconds": {"container": round(container_seconds, 2), "emulator": round(local_seconds, 2)},
            "rows": {k: {"max_abs_diff": float(np.max(np.abs(np.asarray(v) - served))), "mse": mse(v)}
                     for k, v in rows.items()},
            "failed": failed}


OTHER_SETTINGS = {  # on top of objective=reg:squarederror, num_round=50, max_depth=5, eta=0.2
    "tree_method=hist": {"tree_method": "hist"},
    "tree_method=approx": {"tree_method": "approx"},
    "objective=reg:absoluteerror (base_score estimated)": {"objective": "reg:absoluteerror"},
    "objective=reg:tweedie": {"objective": "reg:tweedie"},
    "booster=dart, rate_drop=0.1": {"booster": "dart", "rate_drop": "0.1", "num_round": "20"},
    "booster=gblinear, updater=coord_descent": {"booster": "gblinear", "updater": "coord_descent"},
    "booster=gblinear (shotgun, all threads)": {"booster": "gblinear"},
    "subsample=0.7, colsample_bytree=0.7": {"subsample": "0.7", "colsample_bytree": "0.7"},
    "colsample_bynode=0.5": {"colsample_bynode": "0.5"},
}


def other_settings(base: Path, work: Path) -> list[dict]:
    y, x, payload = test_rows(base)
    rows = []
    for i, (name, extra) in enumerate(OTHER_SETTINGS.items()):
        hps = {"objective": "reg:squarederror", "num_round": "50", "max_depth": "5", "eta": "0.2", **extra}
        case = work / f"other{i}"
        ref.container_train(hps, base / "train", base / "validation", case / "container")
        served = np.asarray(ref.container_predict(case / "container", payload))
        row = {"case": name, "container_mse": float(np.mean((served - y) ** 2))}
        try:
            xgboost_algo.train(hps, base / "train", base / "validation", case / "local", log=lambda s: None)
        except xgboost_algo.AlgorithmError as exc:
            row["emulator_error"] = str(exc).splitlines()[1].split(": ", 1)[-1].strip()
            rows.append(row)
            continue
        mine = xgboost_model.predict(xgboost_model.load_model_dir(case / "local"), x)
        row.update(identical=identical(case / "container", case / "local"),
                   max_abs_diff=float(np.max(np.abs(mine - served))), emulator_mse=float(np.mean((mine - y) ** 2)))
        rows.append(row)
    return rows


def markdown(results: list[dict], versions: dict, others: list[dict]) -> str:
    import xgboost

    lines = [SECTION, "",
             f"Abalone (`../shared/data/abalone.csv`), split by the pipeline's preprocess step (seed 42: "
             f"2924 train, 626 validation, 626 test rows). Container: sagemaker-xgboost-container branch "
             f"{ref.CONTAINER_VERSION} (commit {ref.container_commit()[:12]}) run by "
             f"`bench/containers/xgboost_reference.py` with Python {versions['python']}, xgboost "
             f"{versions['xgboost']}, numpy {versions['numpy']}, pandas {versions['pandas']}, scikit-learn "
             f"{versions['scikit-learn']}; emulator: xgboost {xgboost.__version__}, Python "
             f"{platform.python_version()}. Max abs diff is against the container endpoint's own predictions "
             "on the 626 test rows. `.venv/bin/python bench/bench_xgboost_fidelity.py`", ""]
    for r in results:
        hps = ", ".join(f"{k}={v}" for k, v in r["hyperparameters"].items())
        lines += [f"**{r['case']}** ({hps}); model files byte-identical: "
                  f"{'yes' if r['model_files_identical'] else 'no'}; training wall time: container "
                  f"{r['train_seconds']['container']:.1f} s (process start included), emulator "
                  f"{r['train_seconds']['emulator']:.1f} s", "",
                  "| model, scored by | max abs diff | test MSE |", "|---|---|---|"]
        for name, row in r["rows"].items():
            lines.append(f"| {name} | {row['max_abs_diff']:.3g} | {row['mse']:.3f} |")
        for name, why in r["failed"].items():
            lines.append(f"| {name} | training fails: `{why[:90]}` | - |")
        lines.append("")
    lines += ["**Other settings** (objective=reg:squarederror, num_round=50, max_depth=5, eta=0.2, plus the "
              "setting; emulator model scored by the local loader)", "",
              "| setting | model files byte-identical | max abs diff | test MSE container | test MSE emulator |",
              "|---|---|---|---|---|"]
    for o in others:
        if "emulator_error" in o:
            lines.append(f"| {o['case']} | - | emulator fails: `{o['emulator_error'][:80]}` | "
                         f"{o['container_mse']:.3f} | - |")
        else:
            lines.append(f"| {o['case']} | {'yes' if o['identical'] else 'no'} | {o['max_abs_diff']:.3g} | "
                         f"{o['container_mse']:.3f} | {o['emulator_mse']:.3f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--build", action="store_true", help="build the reference environment if absent")
    parser.add_argument("--json", action="store_true", help="print the numbers as JSON instead of markdown")
    args = parser.parse_args(argv)
    if not ABALONE.is_file():
        print(f"error: {ABALONE} is not here", file=sys.stderr)
        return 2
    if args.build and not ref.is_ready():
        ref.build(quiet=True)
    reason = ref.missing()
    if reason:
        print(f"error: {reason}", file=sys.stderr)
        return 2
    hps = abalone_hyperparameters()
    cases = [("abalone.yaml", hps, None),
             ("early stopping", {**hps, "num_round": "300", "eval_metric": "mae,rmse", "early_stopping_rounds": "5"},
              None),
             ("3-fold x 2 cross validation (numpy seed 11 in both)",
              {**hps, "num_round": "20", "_kfold": "3", "_num_cv_round": "2"}, 11)]
    with tempfile.TemporaryDirectory(prefix="mlpipe-bench-xgb-") as tmp:
        base = Path(tmp) / "data"
        preprocess(base)
        results = [run_case(name, h, base, Path(tmp) / f"case{i}", seed) for i, (name, h, seed) in enumerate(cases)]
        others = other_settings(base, Path(tmp))
    versions = ref.run_driver("versions", {})
    if args.json:
        print(json.dumps({"versions": versions, "results": results, "other_settings": others}, indent=2))
    else:
        print(markdown(results, versions, others))
    return 0


if __name__ == "__main__":
    sys.exit(main())
