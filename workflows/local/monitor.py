"""A data-quality monitoring execution, locally: new rows (a CSV file, or the requests an
endpoint captured) checked against a Model Monitor baseline (statistics.json and
constraints.json), reported as ``constraint_violations.json`` in Model Monitor's format, with
the current data's ``statistics.json`` beside it.

The checks are Model Monitor's (constraint_check_type): data_type_check, completeness_check,
baseline_drift_check, missing_column_check, extra_column_check, categorical_values_check.
Drift distances come from scipy, not from code of ours:

- numbers: the two-sample Kolmogorov-Smirnov statistic (``scipy.stats.ks_2samp``), the
  largest distance between the two empirical CDFs, against the baseline's sketch. It is a
  violation above ``comparison_threshold``; with ``comparison_method: Robust`` (the analyzer's
  default) the KS test must also reject "same distribution" at 5 %, so a handful of captured
  requests does not raise an alarm on sampling noise alone (our reading of Robust: AWS does not
  publish the analyzer's rule).
- strings: ``LInfinity``, the largest difference between the two value frequencies
  (``scipy.spatial.distance.chebyshev``), above ``categorical_comparison_threshold``; or
  ``ChiSquared``, the chi-squared test of the current counts against the baseline frequencies
  (``scipy.stats.chisquare``), a violation when its p-value is below that threshold.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from steps.code import baseline as mm
from workflows import files

ROBUST_ALPHA = 0.05
_NUMERIC = ("Integral", "Fractional")


class MonitorInputError(ValueError):
    """The data or the baseline cannot be read; the message says what to fix."""


# --- reading ---------------------------------------------------------------------------------

def captured_csv(path: Path) -> str:
    """The CSV bodies of the requests in a data-capture file (JSON lines, one per request, as
    an endpoint's DataCaptureConfig and the local endpoint write them)."""
    rows: list[str] = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            request = json.loads(line)["captureData"]["endpointInput"]
        except (ValueError, KeyError, TypeError):
            raise MonitorInputError(f"{path}:{number} is not a data-capture record "
                                    "({\"captureData\": {\"endpointInput\": ...}})") from None
        if request.get("observedContentType", "text/csv").split(";")[0].strip() != "text/csv":
            continue
        data = request.get("data", "")
        if request.get("encoding") == "BASE64":
            import base64

            data = base64.b64decode(data).decode("utf-8")
        rows += [r for r in data.splitlines() if r.strip()]
    if not rows:
        raise MonitorInputError(f"{path} holds no captured text/csv requests")
    return "\n".join(rows) + "\n"


def is_capture(path: Path) -> bool:
    """JSON lines (a data-capture file) rather than CSV: the first thing in it is a JSON object."""
    with open(path, "rb") as f:
        return f.read(4096).lstrip().startswith(b"{")


def load_data(path: Path, header: bool) -> Any:
    """A CSV file or a data-capture file as a table of strings (the baseline script's reader)."""
    import tempfile

    if not path.is_file():
        raise MonitorInputError(f"{path} does not exist or is not a file")
    try:
        if is_capture(path):
            with tempfile.TemporaryDirectory() as tmp:
                csv = Path(tmp) / "captured.csv"
                csv.write_text(captured_csv(path))
                return mm.read_dataset([csv], header=False)
        return mm.read_dataset([path], header)
    except UnicodeDecodeError as exc:
        raise MonitorInputError(f"{path} is not UTF-8 text ({exc.reason})") from None
    except mm.DataError as exc:
        raise MonitorInputError(str(exc)) from None


def load_baseline(folder_or_files: tuple[Path, Path]) -> tuple[dict, dict]:
    statistics, constraints = folder_or_files
    docs = []
    for path, what in ((statistics, "statistics"), (constraints, "constraints")):
        try:
            doc = json.loads(path.read_text())
        except FileNotFoundError:
            raise MonitorInputError(f"the baseline's {what} file {path} is missing") from None
        except (ValueError, UnicodeDecodeError) as exc:
            raise MonitorInputError(f"{path} is not valid JSON ({str(exc)[:200]})") from None
        if not isinstance(doc, dict) or not isinstance(doc.get("features"), list):
            raise MonitorInputError(f"{path} is not Model Monitor's {what}.json (no features list)")
        docs.append(doc)
    return docs[0], docs[1]


def header_of(constraints: dict) -> bool:
    """A baseline of headerless data names its features _c0, _c1, ...; new data then has no header either."""
    names = [f.get("name", "") for f in constraints["features"]]
    return names != mm.column_names(len(names))


# --- checking --------------------------------------------------------------------------------

def _sketch_values(feature: dict) -> np.ndarray:
    """The baseline's sample of a numeric feature: its sketch's items, level i weighing 2**i."""
    kll = feature.get("numerical_statistics", {}).get("distribution", {}).get("kll", {})
    levels = kll.get("sketch", {}).get("data") or []
    parts = [np.repeat(np.asarray(level, dtype=float), 2 ** i) for i, level in enumerate(levels) if level]
    return np.concatenate(parts) if parts else np.empty(0)


def _matches(values, kind: str) -> float:
    """The share of present values that are of the baseline's type."""
    present = values.dropna()
    if present.empty or kind in ("String", "Unknown"):
        return 1.0
    ok = present.map(lambda v: bool(mm._INTEGRAL.match(v))) if kind == "Integral" else \
        present.map(lambda v: _is_number(v))
    return float(ok.mean())


def _is_number(text: str) -> bool:
    try:
        return not np.isnan(float(text))
    except ValueError:
        return False


def _drift(base: dict, current_values, config: dict) -> tuple[float, float, str] | None:
    """(distance, threshold, method) when the feature drifted, else None."""
    from scipy import stats
    from scipy.spatial import distance

    dist = config.get("distribution_constraints", {})
    if dist.get("perform_comparison", "Enabled") != "Enabled":
        return None
    present = current_values.dropna()
    if base["inferred_type"] in _NUMERIC:
        reference = _sketch_values(base)
        numbers = np.array([float(v) for v in present if _is_number(v)])
        if not len(reference) or not len(numbers):
            return None
        test = stats.ks_2samp(numbers, reference)
        threshold = float(dist.get("comparison_threshold", 0.1))
        robust = dist.get("comparison_method", "Robust") == "Robust"
        if test.statistic > threshold and (not robust or test.pvalue < ROBUST_ALPHA):
            return float(test.statistic), threshold, "Kolmogorov-Smirnov"
        return None
    buckets = base.get("string_statistics", {}).get("distribution", {}).get("categorical", {}).get("buckets", [])
    if not buckets or present.empty:
        return None
    observed = present.value_counts()
    values = sorted({b["value"] for b in buckets} | set(observed.index))
    expected = np.array([next((b["count"] for b in buckets if b["value"] == v), 0.0) for v in values], dtype=float)
    counts = np.array([float(observed.get(v, 0)) for v in values])
    threshold = float(dist.get("categorical_comparison_threshold", 0.1))
    if dist.get("categorical_drift_method", "LInfinity") == "ChiSquared":
        known = expected > 0
        scaled = expected[known] / expected[known].sum() * counts[known].sum()
        p = float(stats.chisquare(counts[known], scaled).pvalue) if known.sum() > 1 else 1.0
        return (p, threshold, "ChiSquared p-value") if p < threshold else None
    d = float(distance.chebyshev(counts / counts.sum(), expected / expected.sum()))
    return (d, threshold, "LInfinity") if d > threshold else None


def check(statistics: dict, constraints: dict, frame) -> tuple[dict, list[dict]]:
    """The current data's statistics and the violations of the baseline's constraints."""
    current = mm.statistics(frame)
    config = constraints.get("monitoring_config", {})
    violations: list[dict] = []
    if config.get("evaluate_constraints", "Enabled") != "Enabled":
        return current, violations
    expected = [f["name"] for f in constraints["features"]]
    got = [str(c) for c in frame.columns]
    counts = (f"Number of columns in current dataset: {len(got)}, Number of columns in baseline "
              f"constraints: {len(expected)}")
    if len(got) < len(expected):
        violations.append(_violation("", "missing_column_check", f"There are missing columns in current dataset. {counts}"))
    if len(got) > len(expected):
        violations.append(_violation("", "extra_column_check", f"There are extra columns in current dataset. {counts}"))
    base_stats = {f["name"]: f for f in statistics["features"]}
    for feature in constraints["features"]:
        name = feature["name"]
        if name not in got:
            continue
        values, kind = frame[name], feature.get("inferred_type", "Unknown")
        share = _matches(values, kind)
        need = float(config.get("datatype_check_threshold", 1.0))
        if share < need:
            violations.append(_violation(name, "data_type_check", (
                f"Data type match requirement is not met. Expected data type: {kind}, Expected match: "
                f"{need:.1%}. Observed: Only {share:.1%} of data is {kind}.")))
        complete = float(values.notna().mean()) if len(values) else 0.0
        if complete < float(feature.get("completeness", 0.0)):
            violations.append(_violation(name, "completeness_check", (
                f"Data completeness requirement is not met. Expected completeness: "
                f"{feature['completeness']:.1%}. Observed: Only {complete:.1%} of data is complete.")))
        domain = feature.get("string_constraints", {}).get("domains")
        if domain is not None and values.notna().any():
            known = float(values.dropna().isin(domain).mean())
            need = float(config.get("domain_content_threshold", 1.0))
            if known < need:
                unknown = sorted(set(values.dropna()) - set(domain))[:5]
                violations.append(_violation(name, "categorical_values_check", (
                    f"Data content requirement is not met. Expected: {need:.1%} of values in the baseline's "
                    f"domain. Observed: {known:.1%} (unknown values such as {', '.join(unknown)}).")))
        if name in base_stats:
            drift = _drift(base_stats[name], values, config)
            if drift is not None:
                distance, threshold, method = drift
                word = "is below" if method.startswith("ChiSquared") else "exceeds"
                violations.append(_violation(name, "baseline_drift_check", (
                    f"Baseline drift distance: {distance:.6g} {word} threshold: {threshold:g} ({method})")))
    return current, violations


def _violation(feature: str, check_type: str, description: str) -> dict:
    return {"feature_name": feature, "constraint_check_type": check_type, "description": description}


# --- one monitoring execution ---------------------------------------------------------------

def execute(statistics: str, constraints: str, data: str, out_dir: str, header: bool | None = None) -> dict:
    """Check ``data`` against the baseline; write constraint_violations.json and statistics.json
    into ``out_dir``. Returns {"rows", "violations", "report"}."""
    base_stats, base_constraints = load_baseline((Path(statistics), Path(constraints)))
    path = Path(data)
    named = header_of(base_constraints) if header is None else header
    frame = load_data(path, named)
    if not named or is_capture(path):   # no header: columns are the baseline's features, by position
        names = [f["name"] for f in base_constraints["features"]]
        frame.columns = [names[i] if i < len(names) else f"_c{i}" for i in range(frame.shape[1])]
    current, violations = check(base_stats, base_constraints, frame)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for name, doc in (("statistics.json", current), ("constraint_violations.json", {"violations": violations})):
        files.write_bytes(out / name, (json.dumps(doc, indent=2) + "\n").encode())
    return {"rows": int(len(frame)), "violations": violations, "report": str(out / "constraint_violations.json")}


def stage_execution(statistics: str, constraints: str, data: str, out_dir: str, schedule: str) -> int:
    """The local endpoint's first scheduled execution, run in a stage process: never fails the
    deployment (a schedule reports; the topic would be notified), records what it found."""
    from workflows.local.stages import _result

    result = execute(statistics, constraints, data, out_dir)
    found = result["violations"]
    print(f"monitoring ({schedule}): {result['rows']} captured rows checked against the baseline: "
          f"{len(found)} violation(s)" + "".join(f"\n  {v['feature_name'] or '-'}: {v['constraint_check_type']}: "
                                                 f"{v['description']}" for v in found))
    _result({"monitoring_schedule": schedule, "violations": len(found), "report": result["report"]})
    return 0
