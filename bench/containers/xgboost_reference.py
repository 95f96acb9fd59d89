"""The reference environment of SageMaker's built-in XGBoost 1.7-1 container, without Docker.

It is the environment `mlpipe run --exact` trains in (workflows/local/envs.py; the pins and
where each is declared: workflows/local/pins.py, XGBOOST_1_7_1): a venv with the image's Python
3.9 and the pins of the libraries its CSV training path uses, and the container's own training
and serving code (github.com/aws/sagemaker-xgboost-container, branch 1.7-1), run unmodified
from a clone, with stand-ins for the modules that path never calls
(workflows/local/containers/stubs/). This module keeps the benchmark's and the tests' names
for it and adds the driver calls they make (workflows/local/containers/xgboost_driver.py).

The venv lives under ``$MLPIPE_ENV_CACHE`` (default ``~/.cache/mlpipe/envs``) as
``xgboost-1.7-1-<hash of the pins>``; the container's source comes from
``$MLPIPE_XGBOOST_CONTAINER_REPO`` (a clone), else a clone made once under the cache.

Usage:
  python bench/containers/xgboost_reference.py build     # create the venv (once; minutes)
  python bench/containers/xgboost_reference.py status    # where it is and whether it is ready
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from workflows.local import envs, pins  # noqa: E402

ENV = envs.Environment(pins.XGBOOST_1_7_1)
CONTAINER_VERSION = pins.XGBOOST_1_7_1.version
PYTHON_VERSION = pins.XGBOOST_1_7_1.python
PINS = tuple(pins.XGBOOST_1_7_1.requirements())


def env_dir() -> Path:
    return ENV.dir


def is_ready() -> bool:
    return ENV.ready()


def missing() -> str | None:
    """Why the reference cannot run here (None when it can); builds and clones nothing."""
    return ENV.missing()


def container_commit() -> str:
    return ENV.code_commit()


def build(quiet: bool = False) -> Path:
    """Create the venv and fetch the container's code (idempotent; concurrent builders wait)."""
    ENV.ensure(log=(lambda line: None) if quiet else (lambda line: print(line, file=sys.stderr)))
    return ENV.dir


def run_driver(command: str, request: dict, timeout: float = 600) -> dict:
    reason = missing()
    if reason:
        raise RuntimeError(reason)
    return ENV.run_driver(command, request, timeout)


def container_train(hyperparameters: dict, train_dir: Path, validation_dir: Path | None, model_dir: Path,
                    output_data_dir: Path | None = None, numpy_seed: int | None = None) -> dict:
    """Train with the container's sagemaker_train (algorithm mode, one host, File mode, text/csv)."""
    return run_driver("train", {
        "hyperparameters": {k: str(v) for k, v in hyperparameters.items()},
        "train": os.path.abspath(train_dir), "validation": os.path.abspath(validation_dir) if validation_dir else None,
        "model_dir": os.path.abspath(model_dir),
        "output_data_dir": os.path.abspath(output_data_dir or Path(model_dir).parent / "output-data"),
        "numpy_seed": numpy_seed})


def container_predict(model_dir: Path, csv_payload: str, ensemble: bool = True) -> list[float]:
    """Predict as the container's endpoint does: serve_utils.get_loaded_booster then predict."""
    return run_driver("predict", {"model_dir": os.path.abspath(model_dir), "payload": csv_payload,
                                  "ensemble": ensemble})["predictions"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=("build", "status", "path"))
    args = parser.parse_args(argv)
    if args.command == "build":
        print(f"ready: {build()}")
        return 0
    if args.command == "path":
        print(env_dir())
        return 0
    reason = missing()
    print(json.dumps({"env": str(env_dir()), "ready": reason is None, "why_not": reason,
                      "pins": list(PINS), "python": PYTHON_VERSION}, indent=2))
    return 0 if reason is None else 1


if __name__ == "__main__":
    sys.exit(main())
