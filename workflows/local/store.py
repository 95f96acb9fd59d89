"""The local run store: ``runs/<run-id>/`` directories, ``run.json`` records, atomic writes.

Nothing half-written ever looks complete: files are written to a temp name and renamed, and a
stage's directory appears under its final name only when the stage succeeded.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from pathlib import Path
from typing import Any, Iterator

from config.errors import UserError
from workflows.files import replace_dir, write_bytes, write_json

# The store's own writers are the shared atomic ones.
__all__ = ["DEFAULT_RUNS_DIR", "find_run", "list_runs", "locked", "new_run_id", "read_json", "replace_dir",
           "runs_dir", "write_bytes", "write_json"]

DEFAULT_RUNS_DIR = "runs"


def runs_dir(option: str | None) -> Path:
    return Path(option or os.environ.get("MLPIPE_RUNS_DIR") or DEFAULT_RUNS_DIR).resolve()


def read_json(path: Path) -> Any:
    return json.loads(path.read_text())


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """An exclusive lock for read-modify-write of shared files (registry, emulator state)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(path.suffix + ".lock"), "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def new_run_id(pipeline: str) -> str:
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    return f"{pipeline}-{stamp}-{os.urandom(3).hex()}"


def find_run(root: Path, run_id: str) -> Path:
    """A run by id (or a path to its directory); a clear error when there is none."""
    candidate = Path(run_id)
    for path in (candidate, root / run_id):
        if (path / "run.json").is_file():
            return path.resolve()
    known = sorted(p.name for p in root.glob("*/run.json")) if root.is_dir() else []
    raise UserError(f"no local run {run_id!r} in {root}",
                    fix="list runs with `mlpipe runs`" + (f" (latest: {sorted(known)[-1].split('/')[0]})" if known else ""))


def list_runs(root: Path) -> list[dict[str, Any]]:
    records = []
    for path in root.glob("*/run.json") if root.is_dir() else []:
        with contextlib.suppress(ValueError, OSError):
            records.append(read_json(path))
    return sorted(records, key=lambda r: r.get("started", ""))
