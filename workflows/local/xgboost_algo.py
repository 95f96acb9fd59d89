"""The SageMaker built-in XGBoost algorithm, emulated with the ``xgboost`` library.

It honours the container's contract: hyperparameters (all strings) from
``/opt/ml/input/config/hyperparameters.json``, CSV channels with the target in the first
column and no header, ``num_round`` as the number of boosting rounds, evaluation lines on the
log, and the booster saved as ``xgboost-model`` in the model directory (which SageMaker, and
the local runner, packs into ``model.tar.gz``).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

# Hyperparameters the container consumes itself rather than passing to xgboost.train's params.
_CONTAINER_ONLY = {"num_round", "early_stopping_rounds", "csv_weights", "save_model_on_termination",
                   "_tuning_objective_metric"}


def _number(value: str):
    for cast in (int, float):
        try:
            return cast(value)
        except ValueError:
            pass
    return value


def _load_csv(channel: Path):
    """Every file in the channel, as the container reads it: headerless CSV, target first."""
    import numpy as np
    import pandas as pd

    files = sorted(p for p in channel.rglob("*") if p.is_file() and not p.name.startswith("."))
    if not files:
        raise SystemExit(f"error: channel {channel} holds no CSV files")
    data = np.vstack([pd.read_csv(f, header=None, dtype=float).to_numpy() for f in files if f.stat().st_size])
    return data[:, 1:], data[:, 0]


def main() -> int:
    import xgboost as xgb

    config_dir = Path(os.environ.get("SM_INPUT_CONFIG_DIR", "/opt/ml/input/config"))
    raw = json.loads((config_dir / "hyperparameters.json").read_text())
    if "num_round" not in raw:
        print("error: hyperparameter num_round is required by the XGBoost algorithm", file=sys.stderr)
        return 2
    params = {k: _number(str(v)) for k, v in raw.items() if k not in _CONTAINER_ONLY}
    params.setdefault("nthread", os.cpu_count() or 1)
    x, y = _load_csv(Path(os.environ["SM_CHANNEL_TRAIN"]))
    dtrain = xgb.DMatrix(x, label=y)
    evals = [(dtrain, "train")]
    if os.environ.get("SM_CHANNEL_VALIDATION"):
        vx, vy = _load_csv(Path(os.environ["SM_CHANNEL_VALIDATION"]))
        evals.append((xgb.DMatrix(vx, label=vy), "validation"))
    early = raw.get("early_stopping_rounds")
    booster = xgb.train(params, dtrain, num_boost_round=int(raw["num_round"]), evals=evals,
                        early_stopping_rounds=int(early) if early else None, verbose_eval=True)
    model_dir = Path(os.environ.get("SM_MODEL_DIR", "/opt/ml/model"))
    model_dir.mkdir(parents=True, exist_ok=True)
    booster.save_model(str(model_dir / "xgboost-model"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
