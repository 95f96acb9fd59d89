"""Runs inside the XGBoost 1.7-1 environment (workflows/local/envs.py), with the container's
``src/`` and the stand-ins of ``stubs/`` on the path. Not imported by mlpipe.

  python xgboost_driver.py stage                  # a training stage of `mlpipe run --exact`
  python xgboost_driver.py COMMAND ANSWER_JSON REQUEST_JSON

stage    the training job under the SageMaker contract (SM_CHANNEL_*, SM_MODEL_DIR,
         SM_INPUT_CONFIG_DIR/hyperparameters.json), as the container's training.py
         run_algorithm_mode calls sagemaker_train; exit 2 for the container's UserError
train    the container's algorithm-mode training, sagemaker_train(...), on one host in File
         mode with text/csv channels, as SageMaker calls it (training.py run_algorithm_mode)
predict  the container's endpoint path: serve_utils.get_loaded_booster, parse_content_data
         (text/csv) and serve_utils.predict
resave   xgboost 1.7 loads a model file and saves it again as "xgboost-model" (legacy binary)
metrics  the container's custom metrics (metrics/custom_metrics.py) on given predictions
splits   the container's k-fold splitter (RepeatedKFold / RepeatedStratifiedKFold) indices
"""

import contextlib
import fcntl
import importlib.util
import io
import json
import os
import sys
import types


def _import_algorithm_mode():
    """Import algorithm_mode's modules without running its package __init__, which imports the
    endpoint's Flask app (algorithm_mode/__init__.py:15-22); training never needs it."""
    spec = importlib.util.find_spec("sagemaker_xgboost_container")
    package = "sagemaker_xgboost_container.algorithm_mode"
    if package not in sys.modules:
        module = types.ModuleType(package)
        module.__path__ = [os.path.join(os.path.dirname(spec.origin), "algorithm_mode")]
        sys.modules[package] = module


def train(request):
    import numpy as np

    _import_algorithm_mode()
    from sagemaker_xgboost_container.algorithm_mode.train import sagemaker_train

    os.environ["SM_OUTPUT_DATA_DIR"] = request["output_data_dir"]
    channel = {"ContentType": "text/csv", "TrainingInputMode": "File", "S3DistributionType": "FullyReplicated",
               "RecordWrapperType": "None"}
    data_config = {"train": dict(channel)}
    if request.get("validation"):
        data_config["validation"] = dict(channel)
    if request.get("numpy_seed") is not None:
        np.random.seed(request["numpy_seed"])  # RepeatedKFold(random_state=None) draws from it
    out = io.StringIO()
    # data_utils links the channels into the fixed /tmp/sagemaker_xgboost_input_data: one
    # training at a time on this machine.
    with open("/tmp/sagemaker_xgboost_input_data.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        with contextlib.redirect_stdout(out):
            sagemaker_train(train_config=dict(request["hyperparameters"]), data_config=data_config,
                            train_path=request["train"], val_path=request.get("validation"),
                            model_dir=request["model_dir"], sm_hosts=["algo-1"], sm_current_host="algo-1",
                            checkpoint_config={})
        # the order in which xgboost's parser read the last channel directory it was given (the
        # combined train+validation one under _kfold): readdir order, which the container leaves
        # to the file system
        read_order = os.listdir("/tmp/sagemaker_xgboost_input_data")
    return {"files": sorted(os.listdir(request["model_dir"])), "stdout": out.getvalue(), "read_order": read_order}


def stage():
    """run_algorithm_mode (training.py:29-71) with the local contract: every channel is text/csv
    in File mode (the only input mlpipe's stages write). The container's log goes to stderr."""
    _import_algorithm_mode()
    from sagemaker_algorithm_toolkit import exceptions
    from sagemaker_xgboost_container.algorithm_mode.train import sagemaker_train

    config_dir = os.environ["SM_INPUT_CONFIG_DIR"]
    with open(os.path.join(config_dir, "hyperparameters.json")) as f:
        train_config = json.load(f)
    channel = {"ContentType": "text/csv", "TrainingInputMode": "File", "S3DistributionType": "FullyReplicated",
               "RecordWrapperType": "None"}
    data_config = {name: dict(channel) for name in json.loads(os.environ["SM_CHANNELS"])}
    with open("/tmp/sagemaker_xgboost_input_data.lock", "w") as lock:  # see train() below
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            sagemaker_train(train_config=train_config, data_config=data_config,
                            train_path=os.environ["SM_CHANNEL_TRAIN"], val_path=os.environ.get("SM_CHANNEL_VALIDATION"),
                            model_dir=os.environ["SM_MODEL_DIR"], sm_hosts=json.loads(os.environ["SM_HOSTS"]),
                            sm_current_host=os.environ["SM_CURRENT_HOST"], checkpoint_config={})
        except exceptions.UserError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    return 0


def predict(request):
    import json as _json

    os.environ["SAGEMAKER_INFERENCE_ENSEMBLE"] = "true" if request.get("ensemble", True) else "false"
    _import_algorithm_mode()
    from sagemaker_xgboost_container.algorithm_mode import serve_utils

    booster, model_format = serve_utils.get_loaded_booster(request["model_dir"], request.get("ensemble", True))
    first = booster[0] if isinstance(booster, list) else booster
    objective = _json.loads(first.save_config())["learner"]["objective"]["name"]  # serve.py get_config_json
    dtest, content_type = serve_utils.parse_content_data(request["payload"].encode(), "text/csv")
    predictions = serve_utils.predict(booster, model_format, dtest, content_type, objective)
    return {"predictions": [[float(v) for v in row] if hasattr(row, "__len__") else float(row)
                            for row in predictions],
            "format": model_format if isinstance(model_format, str) else list(model_format),
            "objective": objective, "n_models": len(booster) if isinstance(booster, list) else 1,
            "attributes": first.attributes()}


def resave(request):
    import xgboost as xgb

    booster = xgb.Booster()
    booster.load_model(request["source"])
    booster.save_model(request["target"])
    return {"attributes": booster.attributes()}


def metrics(request):
    import numpy as np
    import xgboost as xgb

    from sagemaker_xgboost_container.metrics.custom_metrics import CUSTOM_METRICS

    labels = np.asarray(request["labels"], dtype=np.float32)
    preds = np.asarray(request["preds"], dtype=np.float32)
    dmatrix = xgb.DMatrix(np.zeros((len(labels), 1)), label=labels)
    out = {}
    for name in request["names"]:
        try:
            out[name] = float(CUSTOM_METRICS[name](preds, dmatrix)[1])
        except Exception as exc:  # the error itself is part of the contract
            out[name] = f"error: {exc}"
    return {"values": out}


def splits(request):
    import numpy as np
    from sklearn.model_selection import RepeatedKFold, RepeatedStratifiedKFold

    np.random.seed(request["seed"])
    y = request.get("y")
    rkf = (RepeatedStratifiedKFold(n_splits=request["kfold"], n_repeats=request["repeats"]) if y is not None
           else RepeatedKFold(n_splits=request["kfold"], n_repeats=request["repeats"]))
    return {"splits": [[tr.tolist(), va.tolist()]
                       for tr, va in rkf.split(X=range(request["n"]), y=None if y is None else np.asarray(y))]}


def versions(request):
    import numpy
    import pandas
    import sklearn
    import xgboost

    return {"python": sys.version.split()[0], "xgboost": xgboost.__version__, "numpy": numpy.__version__,
            "pandas": pandas.__version__, "scikit-learn": sklearn.__version__}


COMMANDS = {"train": train, "predict": predict, "resave": resave, "metrics": metrics, "splits": splits,
            "versions": versions}


def main():
    if sys.argv[1:] == ["stage"]:
        sys.exit(stage())
    command, answer_path, request_path = sys.argv[1:4]  # a forked job has no stdin of its own
    with open(request_path) as f:
        request = json.load(f)
    answer = COMMANDS[command](request)
    with open(answer_path, "w") as f:
        json.dump(answer, f)


if __name__ == "__main__":
    main()
