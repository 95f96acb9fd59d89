"""Baseline for bench_local.py: the same preprocessing, training and evaluation as the abalone
pipeline, written as one plain single-process script (what a data scientist would write first).

Usage: python bench/baseline_pipeline.py DATA.csv OUT_DIR
"""

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import xgboost as xgb
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler


def main(data: str, out: str) -> None:
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    frame = pd.read_csv(data, header=None)
    y, x = frame[8].astype(float), frame.drop(columns=[8])
    x.columns = [str(c) for c in x.columns]
    numeric = [c for c in x.columns if c != "0"]
    encoder = ColumnTransformer([
        ("num", Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())]), numeric),
        ("cat", Pipeline([("impute", SimpleImputer(strategy="most_frequent")),
                          ("onehot", OneHotEncoder(handle_unknown="ignore"))]), ["0"]),
    ])
    x_train, x_rest, y_train, y_rest = train_test_split(x, y, test_size=0.3, random_state=42)
    x_val, x_test, y_val, y_test = train_test_split(x_rest, y_rest, test_size=0.5, random_state=42)
    splits = {"train": (encoder.fit_transform(x_train), y_train), "validation": (encoder.transform(x_val), y_val),
              "test": (encoder.transform(x_test), y_test)}
    for name, (features, target) in splits.items():
        np.savetxt(out_dir / f"{name}.csv", np.column_stack([target, features]), delimiter=",", fmt="%.10g")
    # The container's algorithm: xgboost 1.7 resolves tree_method "auto" to "exact" below 2**22
    # rows, so the baseline grows its trees the same way (today's default, hist, is another model).
    params = {"objective": "reg:squarederror", "max_depth": 5, "eta": 0.2, "gamma": 4, "min_child_weight": 6,
              "subsample": 0.7, "tree_method": "exact"}
    dtrain = xgb.DMatrix(splits["train"][0], label=splits["train"][1])
    dval = xgb.DMatrix(splits["validation"][0], label=splits["validation"][1])
    booster = xgb.train(params, dtrain, num_boost_round=50, evals=[(dtrain, "train"), (dval, "validation")],
                        verbose_eval=False)
    booster.save_model(str(out_dir / "xgboost-model"))
    predictions = booster.predict(xgb.DMatrix(splits["test"][0]))
    mse = float(np.mean((predictions - splits["test"][1].to_numpy()) ** 2))
    (out_dir / "metrics.json").write_text(json.dumps({"mse": mse, "rmse": mse ** 0.5}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
