"""Experiment tracking with MLflow, when the optional ``tracking`` extra is installed.

SageMaker's managed MLflow is AWS's successor to SageMaker Experiments, so the same calls
work against a local store under the runs directory (default: ``runs/mlflow.db``, a SQLite
store, with artifacts in ``runs/mlartifacts``; MLflow's plain file store is deprecated) or any
tracking URI. Without MLflow nothing is logged and nothing breaks; a tracking failure is
reported as a warning and never fails the run.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any


def available() -> bool:
    return importlib.util.find_spec("mlflow") is not None


def default_uri(root: Path) -> str:
    return f"sqlite:///{(root / 'mlflow.db').resolve()}"


def log_run(record: dict[str, Any], root: Path, tracking_uri: str | None = None) -> str | None:
    """Log a finished local run; returns the MLflow run id, or None without MLflow."""
    if not available():
        return None
    try:
        return _log(record, root, tracking_uri)
    except Exception as exc:  # tracking is a side channel: report, never fail the run
        import sys

        print(f"warning: MLflow tracking failed: {exc}", file=sys.stderr)
        record["tracking"] = {"error": str(exc)}
        return None


def _log(record: dict[str, Any], root: Path, tracking_uri: str | None) -> str:
    import logging

    import mlflow

    logging.getLogger("mlflow").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    mlflow.set_tracking_uri(tracking_uri or default_uri(root))
    if mlflow.get_experiment_by_name(record["pipeline"]) is None:
        mlflow.create_experiment(record["pipeline"], artifact_location=(root / "mlartifacts").resolve().as_uri())
    mlflow.set_experiment(record["pipeline"])
    lineage = record.get("lineage", {})
    with mlflow.start_run(run_name=record["run_id"]) as run:
        mlflow.set_tags({"mlpipe.run_id": record["run_id"], "mlpipe.status": record["status"],
                         "mlpipe.config_hash": lineage.get("config_hash", "")})
        params = {f"param.{k}": v for k, v in record.get("parameters", {}).items()}
        params.update({f"code.{k}": v[:16] for k, v in lineage.get("code", {}).items()})
        params.update({f"data.{k}.sha256": v.get("sha256", "")[:16] for k, v in lineage.get("data", {}).items()})
        mlflow.log_params({k: str(v)[:500] for k, v in params.items()})
        if record.get("metrics"):
            mlflow.log_metrics({k: float(v) for k, v in record["metrics"].items()})
        run_json = Path(record["run_dir"]) / "run.json"
        if run_json.is_file():
            mlflow.log_artifact(str(run_json))
        model = (lineage.get("model") or {}).get("artifact")
        if model and Path(model).is_file():
            mlflow.log_artifact(model, artifact_path="model")
        record["tracking"] = {"uri": mlflow.get_tracking_uri(), "run_id": run.info.run_id}
    return run.info.run_id
