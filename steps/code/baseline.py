"""Model Monitor's data-quality baseline of a CSV dataset: ``statistics.json`` and
``constraints.json`` in SageMaker Model Monitor's own format. The built-in ``baseline`` step of
local runs; on AWS, Model Monitor's analyzer image computes the same files from the same
environment.

Contract (the analyzer's environment, as the sagemaker SDK's DefaultModelMonitor.suggest_baseline
sets it; the local runner maps the paths into the run directory):
  dataset_source   folder with the dataset's CSV files (read in path order, concatenated)
  dataset_format   {"csv": {"header": true|false, ...}}; without a header, columns are _c0, _c1, ...
  output_path      where statistics.json and constraints.json are written

What each feature gets (the formats of "Schema for Statistics" and "Schema for Constraints" in
the Model Monitor guide):
  inferred_type    Integral (every value a whole number), Fractional (numbers), String, or
                   Unknown (no values)
  statistics       numbers: count present/missing, mean, sum, std_dev, min, max, a 10-bucket
                   histogram and a KLL-shaped sketch (parameters c 0.64, k 2048) holding every
                   value when there are at most k, else k evenly spaced order statistics (all of
                   weight one); strings: distinct count and each value's count
  constraints      completeness (the share of values present), is_non_negative for numbers, the
                   domain of strings with at most 20 distinct values, and the analyzer's default
                   monitoring_config (drift thresholds 0.1, comparison method Robust)

Imports only the standard library, numpy and pandas. ``mlpipe monitor`` reuses ``read_dataset``
and ``statistics`` for the data it checks. Unusable data exits with code 2 and one error line.
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

import numpy as np
import pandas as pd

SKETCH_K, SKETCH_C = 2048, 0.64
BUCKETS = 10
MAX_DOMAIN = 20
MONITORING_CONFIG = {
    "evaluate_constraints": "Enabled",
    "emit_metrics": "Enabled",
    "datatype_check_threshold": 1.0,
    "domain_content_threshold": 1.0,
    "distribution_constraints": {
        "perform_comparison": "Enabled",
        "comparison_threshold": 0.1,
        "comparison_method": "Robust",
        "categorical_comparison_threshold": 0.1,
        "categorical_drift_method": "LInfinity",
    },
}
_INTEGRAL = re.compile(r"^[+-]?\d+$")


class DataError(ValueError):
    """The dataset cannot be read; the message says what to fix."""


def column_names(count: int) -> list[str]:
    """The analyzer's names for the columns of a CSV without a header."""
    return [f"_c{i}" for i in range(count)]


def read_dataset(paths: list[Path], header: bool) -> pd.DataFrame:
    """The CSV files as one table of strings (None where a value is missing)."""
    if not paths:
        raise DataError("no CSV files in the dataset")
    frames = []
    for path in paths:
        try:
            frame = pd.read_csv(path, header=0 if header else None, dtype=str, keep_default_na=False,
                                skipinitialspace=True, encoding="utf-8-sig")
        except pd.errors.EmptyDataError:
            continue
        except (pd.errors.ParserError, UnicodeDecodeError) as exc:
            raise DataError(f"{path} is not a readable CSV file ({str(exc).strip()[:300]})") from None
        if not header:
            frame.columns = column_names(frame.shape[1])
        frames.append(frame)
    if not frames or sum(len(f) for f in frames) == 0:
        raise DataError(f"no rows in {', '.join(str(p) for p in paths[:3])}")
    widths = {f.shape[1] for f in frames}
    if len(widths) > 1:
        raise DataError(f"the files have different numbers of columns ({', '.join(map(str, sorted(widths)))})")
    frame = pd.concat(frames, ignore_index=True).apply(lambda c: c.str.strip())
    return frame.where(frame != "", None)


def infer_type(values: pd.Series) -> str:
    """Integral, Fractional, String or Unknown, from the values present."""
    present = values.dropna()
    if present.empty:
        return "Unknown"
    numbers = pd.to_numeric(present, errors="coerce")
    if numbers.isna().any():
        return "String"
    return "Integral" if present.map(lambda v: bool(_INTEGRAL.match(v))).all() else "Fractional"


def sketch(values: np.ndarray) -> list[float]:
    """At most SKETCH_K values standing for the distribution, each of weight one."""
    ordered = np.sort(values)
    if len(ordered) > SKETCH_K:
        ordered = ordered[((np.arange(SKETCH_K) + 0.5) * len(ordered) / SKETCH_K).astype(int)]
    return [float(v) for v in ordered]


def _numerical(values: np.ndarray, common: dict) -> dict:
    if not len(values):
        return {"common": common}
    low, high = float(values.min()), float(values.max())
    counts, edges = np.histogram(values, bins=BUCKETS if high > low else 1, range=(low, high) if high > low else None)
    return {
        "common": common, "mean": float(values.mean()), "sum": float(values.sum()),
        "std_dev": float(values.std()), "min": low, "max": high,
        "distribution": {"kll": {
            "buckets": [{"lower_bound": float(a), "upper_bound": float(b), "count": float(n)}
                        for a, b, n in zip(edges[:-1], edges[1:], counts)],
            "sketch": {"parameters": {"c": SKETCH_C, "k": float(SKETCH_K)}, "data": [sketch(values)]},
        }},
    }


def statistics(frame: pd.DataFrame) -> dict:
    """statistics.json of a table of strings (``read_dataset``)."""
    features = []
    for name in frame.columns:
        column = frame[name]
        kind = infer_type(column)
        present = column.dropna()
        common = {"num_present": int(len(present)), "num_missing": int(len(column) - len(present))}
        feature = {"name": str(name), "inferred_type": kind}
        if kind in ("Integral", "Fractional"):
            feature["numerical_statistics"] = _numerical(pd.to_numeric(present).to_numpy(dtype=float), common)
        else:
            counts = present.value_counts(sort=False)
            feature["string_statistics"] = {
                "common": common, "distinct_count": float(len(counts)),
                "distribution": {"categorical": {"buckets": [{"value": str(v), "count": float(n)}
                                                             for v, n in sorted(counts.items())]}}}
        features.append(feature)
    return {"version": 0.0, "dataset": {"item_count": int(len(frame))}, "features": features}


def constraints(stats: dict) -> dict:
    """constraints.json suggested from statistics.json."""
    out = []
    for f in stats["features"]:
        section = f.get("numerical_statistics") or f.get("string_statistics") or {}
        common = section.get("common", {})
        total = common.get("num_present", 0) + common.get("num_missing", 0)
        feature = {"name": f["name"], "inferred_type": f["inferred_type"],
                   "completeness": common.get("num_present", 0) / total if total else 0.0}
        if "numerical_statistics" in f and "min" in section:
            feature["num_constraints"] = {"is_non_negative": section["min"] >= 0}
        if "string_statistics" in f:
            values = [b["value"] for b in section["distribution"]["categorical"]["buckets"]]
            if len(values) <= MAX_DOMAIN:
                feature["string_constraints"] = {"domains": values}
        out.append(feature)
    return {"version": 0.0, "features": out, "monitoring_config": json.loads(json.dumps(MONITORING_CONFIG))}


def csv_files(source: Path) -> list[Path]:
    if source.is_file():
        return [source]
    files = sorted(p for p in source.rglob("*") if p.is_file() and not p.name.startswith("."))
    if not files:
        raise DataError(f"no files under {source}; point the baseline's data at a CSV file or folder")
    return files


def main() -> int:
    try:
        source = Path(os.environ["dataset_source"])
        output = Path(os.environ["output_path"])
        header = bool(json.loads(os.environ.get("dataset_format") or "{}").get("csv", {}).get("header", False))
    except (KeyError, ValueError, AttributeError) as exc:
        print(f"error: the analyzer's environment is incomplete ({exc}): set dataset_source, dataset_format "
              "and output_path", file=sys.stderr)
        return 2
    try:
        frame = read_dataset(csv_files(source), header)
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    stats = statistics(frame)
    output.mkdir(parents=True, exist_ok=True)
    for name, doc in (("statistics.json", stats), ("constraints.json", constraints(stats))):
        tmp = output / f".{name}.tmp"
        tmp.write_text(json.dumps(doc, indent=2) + "\n")
        tmp.replace(output / name)
    print(f"baseline: {len(frame)} rows, {frame.shape[1]} features "
          f"({', '.join(f['name'] + ':' + f['inferred_type'] for f in stats['features'][:12])}"
          f"{', ...' if frame.shape[1] > 12 else ''}) -> {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
