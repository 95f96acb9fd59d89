"""The stage cache: ``runs/.cache/<key>/`` holds a finished stage directory (``tree/``) and
a manifest of its files' SHA-256 hashes (``manifest.json``).

- An entry is built under a unique temporary name (``.<key>.tmp-<pid>-<random>``) and appears
  under its key only when complete (a rename); a crashed writer leaves only a temp directory,
  removed by a later store once its process is gone.
- A run gets a *copy* of an entry (a reflink where the filesystem can), never hard links: a
  later write to the run cannot change the cache, nor the cache a finished run.
- Every use re-hashes the copy against the manifest. An entry that does not match (or has no
  manifest, or cannot be read) is dropped and the stage recomputed, with a warning.
- ``refresh=True`` (``--no-cache``) replaces an existing entry with the new result.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from workflows.local.data import sha256_file

MANIFEST = "manifest.json"
TREE = "tree"
DISK_ERRORS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS)
FICLONE = 0x40049409  # ioctl: share the source's extents (copy-on-write), on btrfs, XFS, ...


def clone_file(src: str, dst: str) -> str:
    """Copy one file: a reflink when the filesystem supports it, else a plain copy."""
    try:
        import fcntl

        with open(src, "rb") as fs, open(dst, "wb") as fd:
            fcntl.ioctl(fd.fileno(), FICLONE, fs.fileno())
    except (OSError, ImportError):
        shutil.copyfile(src, dst)
    shutil.copystat(src, dst)
    return dst


def copy_tree(src: Path, dst: Path) -> None:
    """Copy a directory tree (symlinks stay symlinks); files are independent copies."""
    shutil.copytree(src, dst, symlinks=True, copy_function=clone_file)


def describe_tree(root: Path) -> dict[str, dict[str, Any]]:
    """Every entry under ``root``: files by size and SHA-256, symlinks by target, directories."""
    out: dict[str, dict[str, Any]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in sorted(dirnames + filenames):
            path = Path(dirpath) / name
            rel = path.relative_to(root).as_posix()
            if path.is_symlink():
                out[rel] = {"link": os.readlink(path)}
            elif path.is_dir():
                out[rel] = {"dir": True}
            elif path.is_file():
                out[rel] = {"size": path.stat().st_size, "sha256": sha256_file(path)}
            else:
                out[rel] = {"other": True}
    return out


def difference(expected: dict[str, dict[str, Any]], root: Path) -> str | None:
    """The first way ``root`` differs from a manifest, or None when it matches."""
    actual = describe_tree(root)
    for rel in sorted(set(expected) | set(actual)):
        if rel not in actual:
            return f"{rel} is missing"
        if rel not in expected:
            return f"{rel} is not in the manifest"
        if actual[rel] != expected[rel]:
            return f"{rel} changed"
    return None


class StageCache:
    def __init__(self, root: Path) -> None:
        self.dir = root / ".cache"

    def fetch(self, key: str, dst: Path) -> tuple[bool, str | None]:
        """Copy the entry for ``key`` to ``dst`` (which must not exist) and verify the copy.
        Returns (hit, warning): a miss with a warning means a bad entry was dropped."""
        entry = self.dir / key
        if not entry.is_dir():
            return False, None
        manifest_bytes = b""
        try:
            manifest_bytes = (entry / MANIFEST).read_bytes()
            manifest = json.loads(manifest_bytes)
            copy_tree(entry / TREE, dst)
            problem = difference(manifest["files"], dst)
        except FileNotFoundError as exc:
            problem = f"{Path(exc.filename).name if exc.filename else 'a file'} is missing"
        except OSError as exc:
            if exc.errno in DISK_ERRORS:  # our disk is full: the entry is fine, the run cannot go on
                shutil.rmtree(dst, ignore_errors=True)
                raise
            problem = f"unreadable: {exc}"
        except (ValueError, KeyError, TypeError) as exc:
            problem = f"unreadable: {exc}"
        if problem is None:
            return True, None
        shutil.rmtree(dst, ignore_errors=True)
        self._drop(key, manifest_bytes)
        return False, f"cache entry {key[:12]} failed verification ({problem}); dropped it and recomputed the stage"

    def _drop(self, key: str, manifest_bytes: bytes) -> None:
        """Remove a bad entry, unless another process has meanwhile replaced it."""
        entry = self.dir / key
        with contextlib.suppress(OSError):
            current = (entry / MANIFEST).read_bytes() if (entry / MANIFEST).is_file() else b""
            if current != manifest_bytes:
                return
            aside = entry.with_name(f".{key[:16]}.bad-{os.getpid()}-{os.urandom(3).hex()}")
            entry.rename(aside)
            shutil.rmtree(aside, ignore_errors=True)

    def store(self, key: str, work: Path, refresh: bool = False, source: str = "") -> str | None:
        """Store a finished stage directory under ``key`` (a copy). With ``refresh``, replace an
        existing entry. Returns a warning when the entry could not be stored (the run goes on)."""
        final = self.dir / key
        if final.is_dir() and not refresh:
            return None
        tmp: Path | None = None
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            self._clean_stale()
            tmp = Path(tempfile.mkdtemp(prefix=f".{key[:16]}.tmp-{os.getpid()}-", dir=self.dir))
            os.chmod(tmp, 0o755)
            copy_tree(work, tmp / TREE)
            manifest = {"key": key, "source": source, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                        "files": describe_tree(tmp / TREE)}
            with open(tmp / MANIFEST, "w") as f:
                json.dump(manifest, f, indent=1, sort_keys=True)
                f.flush()
                os.fsync(f.fileno())
            for _ in range(5):
                try:
                    tmp.rename(final)
                    return None
                except OSError:  # an entry is there already (another run stored it first)
                    if not refresh:
                        return None
                    aside = self.dir / f".{key[:16]}.old-{os.getpid()}-{os.urandom(3).hex()}"
                    with contextlib.suppress(OSError):
                        final.rename(aside)
                        shutil.rmtree(aside, ignore_errors=True)
            return None
        except OSError as exc:
            return f"could not store the cache entry {key[:12]}: {exc.strerror or exc}"
        finally:
            if tmp is not None and tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)

    def _clean_stale(self) -> None:
        """Remove temp directories left by writers that died (their PID is gone)."""
        for path in self.dir.glob(".*.*-*-*"):
            try:
                kind_pid = path.name.rsplit("-", 2)
                pid = int(kind_pid[-2])
            except (ValueError, IndexError):
                continue
            if pid == os.getpid():
                continue
            try:
                os.kill(pid, 0)
                continue  # still running
            except ProcessLookupError:
                pass
            except PermissionError:
                continue
            shutil.rmtree(path, ignore_errors=True)
