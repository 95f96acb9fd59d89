"""The render cache on disk: a rendered definition, kept under a key of everything its bytes
depend on, so an unchanged rebuild (build, deploy, export) imports neither SDK.

The key is the SHA-256 of:
- the spec's fingerprint (the whole config after loading, with the content hash of every code
  asset), the target (``stepfunctions`` or ``sagemaker``);
- mlpipe's renderer: the source of ``workflows/render/*.py``, ``steps/*.py``,
  ``lambda_handlers/monitoring_schedule.py`` (the monitoring request), ``config/aws_api.py``
  (the request check a definition passes before it is stored) and ``workflows/aws/offline.py``
  (the SDK's offline session);
- the installed ``sagemaker``, ``stepfunctions`` and ``botocore`` versions (and
  ``AWS_DATA_PATH``, which can replace botocore's models).

An entry is one file, ``<key>.def``: a JSON header line (format, key, size, SHA-256 of the
body) and the definition's bytes. It is written to a temporary name in the same directory and
renamed into place, so a reader sees a whole entry or none; a reader checks the header against
the body and treats any mismatch (a truncated, corrupt or foreign file) as a miss, and the
re-render overwrites it. Where the cache cannot be written (read-only home, full disk), builds
go on uncached.

Directory: ``$MLPIPE_CACHE_DIR/render``, else ``$XDG_CACHE_HOME/mlpipe/render``, else
``~/.cache/mlpipe/render`` (the same root as the Lambda dependency cache, ``infra/package.py``).
At most ``MAX_ENTRIES`` entries are kept; the least recently used go first.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import tempfile
from pathlib import Path

from config.cachedir import cache_root

FORMAT = 1
SUFFIX = ".def"
MAX_ENTRIES = 256
_ROOT = Path(__file__).resolve().parents[2]
_CODE = (("workflows/render", "*.py"), ("steps", "*.py"), ("config", "aws_api.py"),
         ("workflows/aws", "offline.py"),                  # the SDK session the renderers run on
         ("lambda_handlers", "monitoring_schedule.py"))   # the monitoring request the state machine sends
_VERSIONS = ("sagemaker", "stepfunctions", "botocore")


def cache_dir() -> Path:
    return cache_root() / "render"


@functools.lru_cache(maxsize=None)
def renderer_hash() -> str:
    """What identifies the renderer: its code and the SDK versions it drives."""
    from importlib import metadata

    h = hashlib.sha256()
    for folder, pattern in _CODE:
        for path in sorted((_ROOT / folder).glob(pattern)):
            h.update(f"{folder}/{path.name}\0".encode())
            h.update(path.read_bytes())
            h.update(b"\0")
    for dist in _VERSIONS:
        try:
            version = metadata.version(dist)
        except metadata.PackageNotFoundError:
            version = "-"
        h.update(f"{dist}=={version}\0".encode())
    h.update(f"AWS_DATA_PATH={os.environ.get('AWS_DATA_PATH', '')}\0".encode())
    return h.hexdigest()


def key(fingerprint: str, target: str) -> str:
    blob = json.dumps({"format": FORMAT, "spec": fingerprint, "target": target, "renderer": renderer_hash()},
                      sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def path_of(entry_key: str) -> Path:
    return cache_dir() / f"{entry_key}{SUFFIX}"


def load(entry_key: str) -> bytes | None:
    """The cached bytes, or None: absent, unreadable, or failing the check (then it is
    overwritten by the next ``store``)."""
    path = path_of(entry_key)
    try:
        raw = path.read_bytes()
    except OSError:
        return None
    header, sep, body = raw.partition(b"\n")
    try:
        meta = json.loads(header) if sep else None
    except ValueError:
        meta = None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT or meta.get("key") != entry_key \
            or meta.get("size") != len(body) or meta.get("sha256") != hashlib.sha256(body).hexdigest():
        return None
    try:
        os.utime(path)  # least recently used goes first when the cache is pruned
    except OSError:
        pass
    return body


def store(entry_key: str, data: bytes) -> bool:
    """Write an entry atomically (temp file + rename); False if the cache is not writable."""
    directory = cache_dir()
    header = json.dumps({"format": FORMAT, "key": entry_key, "size": len(data),
                         "sha256": hashlib.sha256(data).hexdigest()}, sort_keys=True).encode()
    tmp = None
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{entry_key[:16]}-", suffix=".tmp", dir=directory)
        with os.fdopen(fd, "wb") as f:
            f.write(header + b"\n" + data)
        os.replace(tmp, path_of(entry_key))
        tmp = None
    except OSError:
        return False
    finally:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass
    _prune(directory)
    return True


def _prune(directory: Path) -> None:
    try:
        entries = [(p.stat().st_mtime, p) for p in directory.glob(f"*{SUFFIX}")]
    except OSError:
        return
    if len(entries) <= MAX_ENTRIES:
        return
    for _, p in sorted(entries)[:len(entries) - MAX_ENTRIES]:
        try:
            p.unlink()
        except OSError:
            pass
