"""Split and encode a CSV table for training: the built-in ``preprocess`` processing step.

Runs in the SageMaker SKLearn container (framework 1.2-1: Python 3.9, pandas 1.1, scikit-learn
1.2) and, unmodified, in mlpipe's local runner, so it imports nothing beyond the standard
library, numpy, pandas and scikit-learn.

Contract (BASE is /opt/ml/processing, or $MLPIPE_PROCESSING_DIR when the local runner maps the
Processing contract into a run directory):
  reads   every *.csv under BASE/input/data/ (sorted by path, concatenated)
  writes  BASE/train/train.csv, BASE/validation/validation.csv, BASE/test/test.csv in the
          SageMaker XGBoost CSV layout (target first, no header, no index),
          BASE/test/schema.json and, for classification, BASE/test/labels.json (beside the
          test split, not the training channels: the XGBoost container reads every file in a
          channel, so a JSON file there would break training); with --baseline also
          BASE/baseline/baseline.csv: the training split's features only (no target, no header),
          what an endpoint receives, for a Model Monitor data-quality baseline;
          --filter-column C --filter-value V keeps only the rows where C is V (one fan-out item);
          --list-values C writes only BASE/items/items.json, C's distinct values (a fan-out's items)
Unusable data exits with code 2 and one ``error: ...`` line on stderr.

mlpipe's CLI imports this module to check a user's data before a run, so the building blocks
(sniff, load_frame, validate, split_and_transform, write_outputs) are plain functions and
importing the module does no work.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Callable, NamedTuple, Sequence

import numpy as np
import pandas as pd

BASE = os.environ.get("MLPIPE_PROCESSING_DIR", "/opt/ml/processing")
PROBLEM_TYPES = ("regression", "classification")
DELIMITERS = ",;\t|"
SNIFF_CHARS = 64 * 1024
SNIFF_ROWS = 200
MIN_ROWS = 10
DEFAULT_RATIOS = (0.7, 0.15, 0.15)


class DataError(ValueError):
    """The data or the arguments describing it cannot be used; the message says what to fix."""


class Splits(NamedTuple):
    """Encoded splits, each a float matrix with the target in column 0."""

    train: np.ndarray
    validation: np.ndarray
    test: np.ndarray
    feature_names: list
    classes: list | None  # classification: the original label of each class code, in code order


# --- reading ---------------------------------------------------------------------------------

def find_csv_files(directory: str | os.PathLike) -> list[Path]:
    """Every *.csv under ``directory``, sorted, so several files concatenate in a stable order."""
    directory = Path(directory)
    every = _files(directory)
    files = [p for p in every if p.suffix.lower() == ".csv"]
    if not files:
        others = [p.name for p in every][:5]
        found = f" (found: {', '.join(others)})" if others else ""
        raise DataError(f"no CSV files under {directory}{found}; point the processing input 'data' "
                        "at a .csv file or at an S3 prefix that holds .csv files")
    return files


def _files(directory: Path) -> list[Path]:
    """Every file under ``directory``, sorted; symlinked folders count (the local runner links inputs)."""
    return sorted(Path(root) / name for root, _, names in os.walk(directory, followlinks=True) for name in names)


def sniff(path_or_text: str | os.PathLike) -> tuple[str, bool]:
    """(delimiter, has_header) of a CSV file, or of CSV text, guessed from its first 64 KiB."""
    sample = _sample(path_or_text)
    delimiter = _sniff_delimiter(sample)
    return delimiter, _sniff_header(sample, delimiter)


def _sample(source: str | os.PathLike) -> str:
    """The first 64 KiB of a file (cut at a line end), or ``source`` itself when it is CSV text."""
    is_path = isinstance(source, os.PathLike) or ("\n" not in source and os.path.isfile(source))
    if not is_path:
        return source
    try:
        with open(source, encoding="utf-8-sig", newline="") as f:
            text = f.read(SNIFF_CHARS)
            if f.read(1) and "\n" in text:
                text = text[: text.rindex("\n") + 1]  # a cut-off last row would mislead the sniffer
    except UnicodeDecodeError as exc:
        raise DataError(f"{source} is not UTF-8 text ({exc.reason}); save it as UTF-8") from None
    return text


def _sniff_delimiter(sample: str) -> str:
    try:
        return csv.Sniffer().sniff(sample, delimiters=DELIMITERS).delimiter
    except csv.Error:  # one column, or too little text to tell
        return ","


def _sniff_header(sample: str, delimiter: str) -> bool:
    """A header names columns: a text cell on top of a column whose other cells are all numbers.

    Tables without any numeric column fall back to csv.Sniffer's heuristic.
    """
    rows = [r for r in csv.reader(io.StringIO(sample), delimiter=delimiter) if any(c.strip() for c in r)]
    rows = rows[:SNIFF_ROWS]
    if len(rows) < 2:  # a lone row of names is a header of an empty table
        return bool(rows) and not any(_is_number(c) for c in rows[0])
    first, body = rows[0], rows[1:]
    numeric = [j for j in range(len(first))
               if _all_numbers([r[j] for r in body if j < len(r) and r[j].strip()])]
    if numeric:
        return any(first[j].strip() and not _is_number(first[j]) for j in numeric)
    try:
        return csv.Sniffer().has_header(sample)
    except csv.Error:
        return False


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _all_numbers(cells: list[str]) -> bool:
    return bool(cells) and all(_is_number(c) for c in cells)


def load_frame(paths: str | os.PathLike | Sequence[str | os.PathLike], target: str | int | None = None,
               header: bool | None = None, delimiter: str | None = None,
               column_names: Sequence[str] | None = None) -> tuple[pd.DataFrame, str]:
    """Read and concatenate CSV files; return the table and the target column's name.

    Column types are pandas' inference (NaN where empty); which columns are categorical is
    decided in split_and_transform, where the categorical choice is known. ``header``/``delimiter`` of None
    are sniffed from the first file; a target given by name implies a header row unless
    ``column_names`` name the columns. Headerless columns are called column_0, column_1, ...
    """
    paths = [Path(paths)] if isinstance(paths, (str, os.PathLike)) else [Path(p) for p in paths]
    if not paths:
        raise DataError("no CSV files to read")
    for path in paths:
        if not path.is_file():
            raise DataError(f"{path} does not exist or is not a file")
    named_target = isinstance(target, str) and not _is_index(target)
    if named_target and column_names is None:
        if header is False:
            raise DataError(f"--target {target!r} is a column name, but --no-header says the data has "
                            "no header row; give the target as a 0-based index, or name the columns "
                            "with --column-names")
        header = True
    sample = _sample(paths[0])
    if not sample.strip():
        raise DataError(f"{paths[0]} is empty; it needs one row per example")
    if delimiter is None:
        delimiter = _sniff_delimiter(sample)
    if header is None:
        header = _sniff_header(sample, delimiter)

    frames = [_read_csv(path, delimiter, header) for path in paths]
    for path, frame in zip(paths[1:], frames[1:]):
        if list(frame.columns) != list(frames[0].columns):
            raise DataError(f"{path} has columns {_names(frame.columns)} but {paths[0]} has "
                            f"{_names(frames[0].columns)}; all input files need the same columns")
    frame = pd.concat(frames, ignore_index=True)
    if column_names is not None:
        if len(column_names) != frame.shape[1]:
            raise DataError(f"--column-names gives {len(column_names)} names but the data has "
                            f"{frame.shape[1]} columns")
        frame.columns = [str(n) for n in column_names]
    elif not header:
        frame.columns = [f"column_{i}" for i in range(frame.shape[1])]
    target_name = frame.columns[-1] if target is None else _resolve_column(frame.columns, target, "target")
    return frame, target_name


def _read_csv(path: Path, delimiter: str, header: bool) -> pd.DataFrame:
    try:
        # pandas' own type inference (C parser) rather than strings converted later: on large
        # tables converting every cell with to_numeric costs more than the rest of the step.
        frame = pd.read_csv(path, sep=delimiter, header=0 if header else None,
                            encoding="utf-8-sig", skipinitialspace=True)
    except pd.errors.EmptyDataError:
        raise DataError(f"{path} is empty; it needs one row per example") from None
    except pd.errors.ParserError as exc:
        raise DataError(f"{path} is not a readable {delimiter!r}-separated table ({str(exc).strip()}); "
                        "every row needs the same number of fields, and values holding the "
                        "delimiter need quotes") from None
    except UnicodeDecodeError as exc:
        raise DataError(f"{path} is not UTF-8 text ({exc.reason}); save it as UTF-8") from None
    # Text columns: object dtype under the container's pandas 1.x, the ``str`` dtype under pandas 3;
    # either way they are what is not numeric (numeric columns are parsed already).
    text = [c for c in frame.columns if not pd.api.types.is_numeric_dtype(frame[c])]
    if text:
        frame[text] = frame[text].apply(lambda column: column.str.strip()).replace("", np.nan)
    if header:  # names are padded like cells: " length " is the column --target length names
        names = [str(c).strip() for c in frame.columns]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise DataError(f"{path} names the column(s) {_names(twice)} twice (spaces around names are "
                            "ignored); give every column its own name")
        frame.columns = names
    return frame.dropna(how="all").reset_index(drop=True)


def _is_index(ref: str) -> bool:
    return ref.strip().lstrip("-").isdigit()


def _names(columns, limit: int = 20) -> str:
    names = [str(c) for c in columns]
    more = f", ... ({len(names) - limit} more)" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def _resolve_column(columns, ref: str | int, what: str) -> str:
    """A column name from a name or a 0-based index; an exact name wins over a digit string."""
    names = [str(c) for c in columns]
    if isinstance(ref, str) and ref in names:
        return ref
    if isinstance(ref, int) or _is_index(ref):
        index = int(ref)
        if 0 <= index < len(names):
            return names[index]
        raise DataError(f"{what} index {index} is out of range: the table has {len(names)} columns "
                        f"(0-{len(names) - 1}): {_names(names)}")
    raise DataError(f"{what} {ref!r} is not a column; the columns are: {_names(names)} (if the data "
                    "has no header row, give a 0-based index or pass --column-names)")


# --- checking --------------------------------------------------------------------------------

def split_sizes(n: int, ratios: Sequence[float]) -> tuple[int, int, int]:
    """(train, validation, test) row counts; train takes the rounding remainder."""
    validation, test = int(round(n * ratios[1])), int(round(n * ratios[2]))
    return n - validation - test, validation, test


def minimum_rows(ratios: Sequence[float]) -> int:
    """The fewest rows (at least MIN_ROWS) that give every split one row or more."""
    n = MIN_ROWS
    while min(split_sizes(n, ratios)) < 1:
        n += 1
    return n


def _check_ratios(ratios: Sequence[float]) -> None:
    if len(ratios) != 3 or any(r <= 0 for r in ratios) or abs(sum(ratios) - 1.0) > 1e-6:
        shown = "/".join(f"{r:g}" for r in ratios)
        raise DataError(f"split ratios {shown} must be three positive numbers (train, validation, "
                        "test) that sum to 1")


def validate(frame: pd.DataFrame, target: str, problem_type: str = "regression",
             ratios: Sequence[float] = DEFAULT_RATIOS) -> None:
    """Raise DataError unless ``frame`` can be split and encoded for ``problem_type``."""
    _check_ratios(ratios)
    if problem_type not in PROBLEM_TYPES:
        raise DataError(f"problem type {problem_type!r} is not one of {', '.join(PROBLEM_TYPES)}")
    if target not in frame.columns:
        raise DataError(f"target {target!r} is not a column; the columns are: {_names(frame.columns)}")
    if frame.shape[1] < 2:
        raise DataError(f"the table has only the target column {target!r}; it needs feature columns too")
    values = frame[target].dropna()
    if problem_type == "regression":
        bad = values[pd.to_numeric(values, errors="coerce").isna()]
        if len(bad):
            raise DataError(f"the regression target {target!r} is not numeric: {len(bad)} value(s) such "
                            f"as {bad.iloc[0]!r}; fix those values, choose another --target, or use "
                            "--problem-type classification")
    elif values.nunique() < 2:
        raise DataError(f"the classification target {target!r} has fewer than two classes; "
                        "classification needs at least two")
    need = minimum_rows(ratios)
    if len(values) < need:
        shown = "/".join(f"{r:g}" for r in ratios)
        have = "1 row has" if len(values) == 1 else f"{len(values)} rows have"
        raise DataError(f"only {have} a target value; a {shown} split needs at least "
                        f"{need} rows so that every split gets one; add rows")


# --- encoding --------------------------------------------------------------------------------

def split_and_transform(frame: pd.DataFrame, target: str, problem_type: str = "regression",
                        ratios: Sequence[float] = DEFAULT_RATIOS, seed: int = 42,
                        categorical: Sequence[str | int] | None = None) -> Splits:
    """Shuffle-split the rows that have a target, fit the encoder on train only, encode all three.

    Numeric features are median-imputed and standardised; categorical ones are imputed with the
    most frequent value and one-hot encoded (unseen values encode as all zeros). ``categorical``
    of None means every non-numeric feature column.
    """
    validate(frame, target, problem_type, ratios)
    frame = frame[frame[target].notna()].reset_index(drop=True)
    features = [c for c in frame.columns if c != target]
    categorical_columns = _categorical_columns(frame, target, features, categorical)
    numeric_columns = [c for c in features if c not in categorical_columns]

    x = pd.DataFrame({c: (frame[c].astype(object) if c in categorical_columns
                          else pd.to_numeric(frame[c])) for c in features})
    if problem_type == "regression":
        y, classes = pd.to_numeric(frame[target]).to_numpy(dtype=float), None
    else:
        y, classes = _encode_labels(frame[target])

    n_train, n_validation, _ = split_sizes(len(frame), ratios)
    order = np.random.RandomState(seed).permutation(len(frame))
    parts = order[:n_train], order[n_train:n_train + n_validation], order[n_train + n_validation:]

    encoder = _encoder(numeric_columns, categorical_columns).fit(x.iloc[parts[0]])
    train, validation, test = (np.column_stack([y[p], encoder.transform(x.iloc[p])]) for p in parts)
    return Splits(train, validation, test, [str(n) for n in encoder.get_feature_names_out()], classes)


def _categorical_columns(frame: pd.DataFrame, target: str, features: list[str],
                         categorical: Sequence[str | int] | None) -> list[str]:
    non_numeric = {}
    for c in features:
        values = frame[c].dropna()
        bad = values[pd.to_numeric(values, errors="coerce").isna()]
        if len(bad):
            non_numeric[c] = bad.iloc[0]
    if categorical is None:
        return list(non_numeric)
    chosen = [_resolve_column(frame.columns, ref, "categorical column") for ref in categorical]
    if target in chosen:
        raise DataError(f"{target!r} is the target; it cannot also be a categorical feature")
    for c, example in non_numeric.items():
        if c not in chosen:
            raise DataError(f"column {c!r} is not numeric (e.g. {example!r}); list it with --categorical "
                            "or fix its values")
    return [c for c in features if c in chosen]


def _encode_labels(labels: pd.Series) -> tuple[np.ndarray, list[str]]:
    """Class codes 0..k-1 in sorted label order (numeric order when every label is a number)."""
    labels = labels.astype(str)
    unique = list(labels.unique())
    numbers = pd.to_numeric(pd.Series(unique), errors="coerce")
    classes = ([u for _, u in sorted(zip(numbers, unique))] if numbers.notna().all() else sorted(unique))
    codes = {label: i for i, label in enumerate(classes)}
    return labels.map(codes).to_numpy(dtype=float), classes


def _encoder(numeric: list[str], categorical: list[str]):
    """The ColumnTransformer; scikit-learn is imported here so that checking data stays quick."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    return ColumnTransformer([
        ("num", Pipeline([("impute", SimpleImputer(strategy="median")),
                          ("scale", StandardScaler())]), numeric),
        ("cat", Pipeline([("impute", SimpleImputer(strategy="most_frequent")),
                          ("onehot", OneHotEncoder(handle_unknown="ignore", sparse_output=False))]),
         categorical),
    ], sparse_threshold=0.0)


# --- writing ---------------------------------------------------------------------------------

def write_outputs(base: str | os.PathLike, splits: Splits, target: str, problem_type: str,
                  baseline: bool = False) -> None:
    """The three split CSVs plus schema.json (and labels.json for classification); with
    ``baseline``, the training features in the model's input format too."""
    base = Path(base)
    files = [(name, f"{name}.csv", getattr(splits, name)) for name in ("train", "validation", "test")]
    if baseline:
        files.append(("baseline", "baseline.csv", splits.train[:, 1:]))
    for folder, file, rows in files:
        _write_atomic(base / folder / file, lambda f, rows=rows: write_rows(f, rows))
    schema = {"feature_names": splits.feature_names, "target": target, "problem_type": problem_type}
    _write_atomic(base / "test" / "schema.json", _json_writer(schema))
    if splits.classes is not None:
        _write_atomic(base / "test" / "labels.json", _json_writer({"classes": splits.classes}))


def write_rows(f, rows: np.ndarray, chunk: int = 10000) -> None:
    """What ``np.savetxt(f, rows, fmt="%.10g", delimiter=",")`` writes, byte for byte, in about
    60 % of its time: one %-format per chunk of Python floats instead of one per row of numpy
    scalars (at 100x abalone the three splits took 1.5 s to write)."""
    rows = np.asarray(rows, dtype=float)
    if rows.ndim == 1:
        rows = rows[:, None]
    line = ",".join(["%.10g"] * rows.shape[1]) + "\n"
    for start in range(0, len(rows), chunk):
        block = rows[start:start + chunk]
        f.write((line * len(block)) % tuple(block.ravel().tolist()))


def _json_writer(obj) -> Callable:
    return lambda f: f.write(json.dumps(obj, indent=2, sort_keys=True) + "\n")


def _file_mode() -> int:
    """0666 less the umask: what a file created with open() gets (reading the umask sets it;
    set it straight back: this script runs in one thread)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


def _write_atomic(path: Path, write: Callable) -> None:
    """Write through a temp file in the same directory, so readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            write(f)
        os.chmod(tmp, _file_mode())  # mkstemp creates 0600; the mode open() would give, as the umask says
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


# --- command line ----------------------------------------------------------------------------

def _delimiter(text: str) -> str:
    text = {"\\t": "\t", "tab": "\t"}.get(text, text)
    if len(text) != 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a single character")
    return text


def _column_names(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",")]
    if not all(names):
        raise argparse.ArgumentTypeError(f"{text!r} has an empty column name")
    return names


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Split a CSV table into train/validation/test and encode it.")
    p.add_argument("--target", help="target column: a name or a 0-based index (default: the last column)")
    header = p.add_mutually_exclusive_group()
    header.add_argument("--header", dest="header", action="store_true", help="the first row names the columns")
    header.add_argument("--no-header", dest="header", action="store_false", help="the first row is data")
    p.set_defaults(header=None)
    p.add_argument("--delimiter", type=_delimiter, help="field separator (default: sniffed among , ; tab |)")
    p.add_argument("--categorical", nargs="*", metavar="COLUMN",
                   help="categorical feature columns, names or indices (default: the non-numeric ones)")
    p.add_argument("--column-names", type=_column_names, help="comma-separated names for headerless data")
    p.add_argument("--problem-type", choices=PROBLEM_TYPES, default="regression")
    p.add_argument("--train-ratio", type=float, default=DEFAULT_RATIOS[0])
    p.add_argument("--validation-ratio", type=float, default=DEFAULT_RATIOS[1])
    p.add_argument("--test-ratio", type=float, default=DEFAULT_RATIOS[2])
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--baseline", action="store_true",
                   help="also write baseline/baseline.csv: the training features, as an endpoint receives them")
    p.add_argument("--filter-column", metavar="COLUMN",
                   help="keep only the rows whose COLUMN equals --filter-value (one item of a fan-out)")
    p.add_argument("--filter-value", metavar="VALUE")
    p.add_argument("--list-values", metavar="COLUMN",
                   help="only write COLUMN's distinct values to BASE/items/items.json (a fan-out's items)")
    return p


def filter_rows(frame: pd.DataFrame, column: str, value: str | None) -> pd.DataFrame:
    """The rows whose ``column`` equals ``value`` (compared as text, or as numbers in a numeric
    column): one item of a fan-out (``foreach: {column: ...}``)."""
    if value is None:
        raise DataError("--filter-column needs --filter-value")
    name = _resolve_column(frame.columns, column, "filter column")
    cells = frame[name]
    if pd.api.types.is_numeric_dtype(cells) and _is_number(value):
        keep = cells == float(value)
    else:
        keep = cells.astype(str).str.strip() == value.strip()
    if not keep.any():
        raise DataError(f"no row has {name} = {value!r}; the column holds {_names(sorted(map(str, cells.dropna().unique())))}")
    return frame[keep].reset_index(drop=True)


def item_values(frame: pd.DataFrame, column: str) -> list[str]:
    """A column's distinct values as text, sorted (whole numbers without a trailing .0)."""
    name = _resolve_column(frame.columns, column, "fan-out column")
    values = frame[name].dropna().unique()
    text = {str(int(v)) if isinstance(v, float) and v.is_integer() else str(v).strip() for v in values}
    return sorted(t for t in text if t)


def write_items(base: Path, frame: pd.DataFrame, column: str) -> int:
    """BASE/items/items.json: one {"value", "key"} object per distinct value, what a Distributed
    Map's ItemReader reads (the key, the item's index, names its outputs)."""
    items = [{"value": v, "key": str(i)} for i, v in enumerate(item_values(frame, column))]
    _write_atomic(base / "items" / "items.json", _json_writer(items))
    print(f"preprocess: {len(items)} distinct value(s) of {column!r}: {', '.join(i['value'] for i in items[:20])}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    base = Path(BASE)
    ratios = (args.train_ratio, args.validation_ratio, args.test_ratio)
    try:
        paths = find_csv_files(base / "input" / "data")
        frame, target = load_frame(paths, args.target, args.header, args.delimiter, args.column_names)
        if args.list_values is not None:
            return write_items(base, frame, args.list_values)
        if args.filter_column is not None:
            frame = filter_rows(frame, args.filter_column, args.filter_value)
        splits = split_and_transform(frame, target, args.problem_type, ratios, args.seed, args.categorical)
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    write_outputs(base, splits, target, args.problem_type, baseline=args.baseline)
    print(f"preprocess: {len(frame)} rows from {len(paths)} file(s); target {target!r}; "
          f"{len(splits.feature_names)} features; train {len(splits.train)}, "
          f"validation {len(splits.validation)}, test {len(splits.test)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
