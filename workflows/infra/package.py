"""The Lambda deployment package: lambda_handlers/ plus pydantic and its dependencies
(Lambda's Python runtime lacks pydantic), zipped deterministically (fixed timestamps,
permissions and order) so the zip's SHA-256 is stable and unchanged code is never re-uploaded.

pydantic_core is a compiled extension: the copy is only valid on Lambda when this interpreter
is CPython 3.11 on Linux x86_64 (the functions' runtime and architecture).
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import zipfile
from functools import lru_cache
from pathlib import Path

HANDLERS_DIR = Path(__file__).resolve().parents[2] / "lambda_handlers"
DEPENDENCIES = ("pydantic", "pydantic_core", "typing_extensions", "annotated_types", "typing_inspection")
RUNTIME = "python3.11"
_EPOCH = (1980, 1, 1, 0, 0, 0)


def _files() -> list[tuple[str, Path]]:
    out: list[tuple[str, Path]] = []
    for path in sorted(HANDLERS_DIR.rglob("*.py")):
        if "__pycache__" not in path.parts:
            out.append((f"lambda_handlers/{path.relative_to(HANDLERS_DIR).as_posix()}", path))
    for name in DEPENDENCIES:
        spec = importlib.util.find_spec(name)
        if spec is None:
            raise RuntimeError(f"{name} is not installed; it is bundled into the Lambda package")
        if spec.submodule_search_locations:
            root = Path(next(iter(spec.submodule_search_locations)))
            for path in sorted(root.rglob("*")):
                if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                    out.append((f"{name}/{path.relative_to(root).as_posix()}", path))
        else:
            out.append((Path(spec.origin).name, Path(spec.origin)))
    return out


@lru_cache(maxsize=1)
def build_zip() -> bytes:
    buf = io.BytesIO()
    names: set[str] = set()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        entries = _files()
        if "lambda_handlers/__init__.py" not in {n for n, _ in entries}:
            entries.append(("lambda_handlers/__init__.py", None))
        for name, path in sorted(entries, key=lambda e: e[0]):
            if name in names:
                continue
            names.add(name)
            info = zipfile.ZipInfo(name, date_time=_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            executable = path is not None and path.suffix == ".so"
            info.external_attr = ((0o755 if executable else 0o644) | 0o100000) << 16
            info.create_system = 3
            zf.writestr(info, b"" if path is None else path.read_bytes())
    return buf.getvalue()


def package_key(prefix: str, zip_bytes: bytes) -> str:
    """Content-addressed S3 key of the Lambda zip: what deploy uploads and CloudFormation's
    Lambda code points at."""
    sha = hashlib.sha256(zip_bytes).hexdigest()
    return "/".join(p for p in (prefix, "assets", "lambda", sha[:16], "lambda.zip") if p)
