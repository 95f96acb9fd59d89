"""Content-addressed code assets: the S3 key carries the hash of the bytes.

A changed script gets a new key, so a running execution never sees its code swapped, and
deploy can skip uploads that already exist. Build never uploads; it only computes keys.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import tarfile
from pathlib import Path

from config.errors import ConfigError
from steps.spec import CodeAsset

CODE_DIR = Path(__file__).resolve().parent / "code"
BUILTIN_PREFIX = "builtin:"


def asset_bytes(entry: Path, archive: bool, extra: tuple[Path, ...] = ()) -> bytes:
    return _tarball((entry, *extra)) if archive else entry.read_bytes()


def _tarball(members: tuple[Path, ...]) -> bytes:
    """A byte-identical tar.gz on every build: fixed mtimes, owners and order, gzip mtime 0."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for path in sorted(members, key=lambda p: p.name):
            data = path.read_bytes()
            info = tarfile.TarInfo(path.name)
            info.size, info.mtime, info.mode = len(data), 0, 0o644
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            tar.addfile(info, io.BytesIO(data))
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", mtime=0, filename="") as gz:
        gz.write(raw.getvalue())
    return out.getvalue()


def resolve_script(ref: str, base_dir: Path, field: str, source: str | None) -> Path:
    """``builtin:<name>`` is one of the scripts in steps/code/; anything else is a path."""
    if ref.startswith(BUILTIN_PREFIX):
        path = CODE_DIR / f"{ref[len(BUILTIN_PREFIX):]}.py"
        available = sorted(p.stem for p in CODE_DIR.glob("*.py") if not p.stem.startswith("_"))
        fix = f"use one of: {', '.join(BUILTIN_PREFIX + a for a in available)}"
    else:
        path = (base_dir / ref).resolve()
        fix = "give a path relative to the config file, or builtin:<script>"
    if not path.is_file():
        raise ConfigError(f"script {ref!r} not found ({path})", source=source, field=field, fix=fix)
    return path


def make_asset(entry: Path, bucket: str, prefix: str, archive: bool = False,
               extra: tuple[Path, ...] = ()) -> CodeAsset:
    data = asset_bytes(entry, archive, extra)
    sha = hashlib.sha256(data).hexdigest()
    name = "sourcedir.tar.gz" if archive else entry.name
    key = "/".join(p for p in (prefix, "assets", sha[:16], name) if p)
    return CodeAsset(name=name, entry=entry, sha256=sha, key=key, bucket=bucket, archive=archive, extra=extra)
