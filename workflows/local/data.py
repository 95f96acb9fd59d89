"""Where a local run's input data comes from: a path, an S3 URI, or a dataset bundled with
scikit-learn (``sklearn:diabetes``), so the default run needs no download."""

from __future__ import annotations

import csv
import gzip
import hashlib
import os
from pathlib import Path

from config.errors import UserError
from workflows.local.store import write_bytes

BUNDLED = {
    # name: (features file, target file, column names, target name)
    "diabetes": ("diabetes_data_raw.csv.gz", "diabetes_target.csv.gz",
                 ["age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6"], "progression"),
}


def materialize_bundled(name: str, cache: Path) -> Path:
    """Write a bundled scikit-learn dataset as one CSV with a header (done once, then cached)."""
    if name not in BUNDLED:
        raise UserError(f"unknown bundled dataset sklearn:{name}", fix=f"use one of: {', '.join('sklearn:' + n for n in BUNDLED)}")
    out = cache / f"{name}.csv"
    if out.is_file():
        return out
    import importlib.util

    spec = importlib.util.find_spec("sklearn.datasets")
    data_dir = Path(spec.origin).parent / "data"
    features, target, columns, target_name = BUNDLED[name]
    rows = gzip.open(data_dir / features, "rt").read().split("\n")
    targets = gzip.open(data_dir / target, "rt").read().split("\n")
    rows = [r.split() for r in rows if r.strip()]
    targets = [t.strip() for t in targets if t.strip()]
    lines = [",".join(columns + [target_name])]
    lines += [",".join(r + [t]) for r, t in zip(rows, targets)]
    write_bytes(out, ("\n".join(lines) + "\n").encode())
    return out


def fetch(source: str, cache: Path, aws: dict | None = None) -> tuple[Path, dict]:
    """A local file for ``source`` and its lineage record (content hash, or S3 URI + ETag)."""
    if source.startswith("sklearn:"):
        path = materialize_bundled(source.split(":", 1)[1], cache)
        return path, {"source": source, "sha256": sha256_file(path)}
    if source.startswith("s3://"):
        return _download(source, cache, aws or {})
    path = Path(source).expanduser()
    if not path.exists():
        raise UserError(f"input data {source!r} does not exist", fix="pass an existing file or directory with --input")
    if path.is_file() and path.stat().st_size == 0:
        raise UserError(f"input data {source!r} is empty", fix="pass a CSV file with data rows")
    return path.resolve(), {"source": str(path.resolve()), "sha256": tree_hash(path)}


def _download(uri: str, cache: Path, aws: dict) -> tuple[Path, dict]:
    """S3 input through the same client factory as every other AWS call (honours
    --endpoint-url, --region, --profile, the config's region and the standard AWS settings)."""
    from workflows.aws import s3_client
    from workflows.aws.session import Aws, aws_errors, resolve_region

    bucket, _, key = uri[5:].partition("/")
    settings = dict(aws)
    settings["region"] = resolve_region(settings.get("region"))
    s3 = Aws(**settings).client("s3")
    with aws_errors(f"reading {uri} (or pass a local file with --input)"):
        head = s3_client.head(s3, bucket, key)
    if head is None:
        raise UserError(f"input data {uri} does not exist", fix="check the S3 URI, or pass a local file with --input")
    etag = head["ETag"].strip('"')
    out = cache / "s3" / hashlib.sha256(f"{uri}@{etag}".encode()).hexdigest()[:16] / Path(key).name
    if not out.is_file():
        with aws_errors(f"reading {uri}"):
            body = s3_client.read_object(s3, bucket, key)
        write_bytes(out, body)
    return out, {"source": uri, "etag": etag, "sha256": sha256_file(out)}


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _sha256_dir(path: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(path.rglob("*")):
        if p.is_file():
            h.update(p.relative_to(path).as_posix().encode())
            h.update(sha256_file(p).encode())
    return h.hexdigest()


def tree_hash(path: Path) -> str:
    return sha256_file(path) if path.is_file() else _sha256_dir(path)


def feature_rows(test_csv: Path) -> list[str]:
    """Rows of a model-input CSV (target first) with the target dropped: what batch transform
    and the local endpoint send to the model."""
    with open(test_csv, newline="") as f:
        return [",".join(row[1:]) for row in csv.reader(f) if row]


MAX_LINE_BYTES = 1 << 20  # a longer "row" in an input file is refused (MLPIPE_MAX_LINE_BYTES overrides)


def max_line_bytes() -> int:
    try:
        return max(1024, int(os.environ.get("MLPIPE_MAX_LINE_BYTES", MAX_LINE_BYTES)))
    except ValueError:
        return MAX_LINE_BYTES


def long_line(path: Path, limit: int) -> int | None:
    """The number of the first line of ``path`` longer than ``limit`` bytes, or None. Reads in
    chunks of at most ``limit`` bytes, so memory stays bounded whatever the file holds."""
    chunk_size = min(limit, 1 << 20)
    current = 0  # bytes of the line being read so far
    line = 1
    with open(path, "rb") as f:
        while chunk := f.read(chunk_size):
            first = chunk.find(b"\n")
            if first < 0:
                current += len(chunk)
            else:
                if current + first > limit:
                    return line
                line += chunk.count(b"\n")  # lines wholly inside a chunk are shorter than the limit
                current = len(chunk) - chunk.rfind(b"\n") - 1
            if current > limit:
                return line
    return None


def check_line_length(path: Path, source: str) -> None:
    """Refuse an input whose "rows" are not rows (e.g. a single line of tens of MB) early, in
    bounded memory, instead of letting a CSV reader chew on it for minutes."""
    limit = max_line_bytes()
    paths = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for p in paths:
        number = long_line(p, limit)
        if number is not None:
            where = "" if p == path else f" ({p.name})"
            raise UserError(f"input data {source}{where}: line {number} is a line longer than {limit} bytes; "
                            "this does not look like a CSV file with one row per line",
                            fix="pass a CSV file with one row per line (or raise the limit with "
                                "MLPIPE_MAX_LINE_BYTES)")
