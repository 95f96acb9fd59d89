"""The stage cache: ``runs/.cache/<key>/`` holds a finished stage directory (``tree/``) and
a manifest of its files' SHA-256 hashes (``manifest.json``).

- An entry is built under a unique temporary name (``.<key>.tmp-<pid>-<random>``) and appears
  under its key only when complete (a rename); a crashed writer leaves only a temp directory,
  removed by a later store once its process is gone.
- A run gets a *copy* of an entry (a reflink where the filesystem can), never hard links: a
  later write to the run cannot change the cache, nor the cache a finished run.
- Every use re-hashes the copy against the manifest. An entry that does not match (or has no
  manifest, or cannot be read) is dropped and the stage recomputed, with a warning. An entry
  that another process replaced or removed while it was being copied is not a bad entry: the
  copy is read again (or is a plain miss), without a warning.
- ``refresh=True`` (``--no-cache``) replaces an existing entry with the new result. Every
  manifest names its writer (``writer``), so two stores of one key never look alike.
- Modes follow the umask: entry directories are created as ``mkdir`` does, and a copy (into the
  cache or out of it) keeps its source's mode less what the umask takes away, as ``cp`` does.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import stat
import time
from pathlib import Path
from typing import Any

from workflows.files import umask
from workflows.local.data import sha256_file

MANIFEST = "manifest.json"
TREE = "tree"
DISK_ERRORS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS)
FICLONE = 0x40049409  # ioctl: share the source's extents (copy-on-write), on btrfs, XFS, ...
FETCH_ATTEMPTS = 3    # copies of an entry that other processes keep replacing, before a plain miss
STORE_ATTEMPTS = 5    # renames into place while other processes keep storing the same key


def clone_file(src: str, dst: str, mask: int | None = None) -> str:
    """Copy one file: a reflink when the filesystem supports it, else a plain copy. Its mode is
    the source's less ``mask`` (the umask unless given)."""
    try:
        import fcntl

        with open(src, "rb") as fs, open(dst, "wb") as fd:
            fcntl.ioctl(fd.fileno(), FICLONE, fs.fileno())
    except (OSError, ImportError):
        shutil.copyfile(src, dst)
    shutil.copystat(src, dst)
    _narrow(dst, umask() if mask is None else mask)
    return dst


def _narrow(path: str | Path, mask: int) -> None:
    mode = stat.S_IMODE(os.lstat(path).st_mode)
    if mode & mask:
        os.chmod(path, mode & ~mask)


def copy_tree(src: Path, dst: Path) -> None:
    """Copy a directory tree (symlinks stay symlinks); files are independent copies. Modes are
    the source's less what the umask takes away (``cp`` without ``-p``)."""
    mask = umask()
    shutil.copytree(src, dst, symlinks=True, copy_function=lambda s, d: clone_file(s, d, mask))
    if mask:
        for dirpath, _, _ in os.walk(dst):
            _narrow(dirpath, mask)


def _identity(path: Path) -> tuple[int, int] | None:
    """Which directory ``path`` is now (device, inode), or None when there is none."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino) if stat.S_ISDIR(st.st_mode) else None


def make_dir(parent: Path, prefix: str) -> Path:
    """A fresh directory ``<parent>/<prefix><random>``, its mode what ``mkdir`` gives (0777 less
    the umask; ``tempfile.mkdtemp`` would make it 0700)."""
    for _ in range(100):
        path = parent / f"{prefix}{os.urandom(4).hex()}"
        try:
            os.mkdir(path)
            return path
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no free temporary directory name", str(parent))


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
        Returns (hit, warning): a miss with a warning means a bad entry was dropped.

        A copy that does not match while the entry was replaced or removed meanwhile (another
        run storing the same key with ``--no-cache``) is read again, up to FETCH_ATTEMPTS
        times, then a plain miss: only an entry that stayed the same and still does not match
        its manifest is bad."""
        entry = self.dir / key
        for _ in range(FETCH_ATTEMPTS):
            before = _identity(entry)
            if before is None:
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
            # The same directory before and after, holding the same manifest: this entry is bad.
            # (A stored entry is complete when it appears, and its manifest names its writer.)
            if self._manifest(key) == manifest_bytes and _identity(entry) == before:
                self._drop(key, manifest_bytes)
                return False, (f"cache entry {key[:12]} failed verification ({problem}); dropped it and "
                               "recomputed the stage")
        return False, None  # replaced under us again and again: compute the stage instead

    def _manifest(self, key: str) -> bytes:
        """The entry's manifest as it is now (b"" when there is none)."""
        try:
            return (self.dir / key / MANIFEST).read_bytes()
        except OSError:
            return b""

    def _drop(self, key: str, manifest_bytes: bytes) -> None:
        """Remove a bad entry, unless another process has meanwhile replaced it."""
        entry = self.dir / key
        with contextlib.suppress(OSError):
            if self._manifest(key) != manifest_bytes:
                return
            aside = entry.with_name(f".{key[:16]}.bad-{os.getpid()}-{os.urandom(3).hex()}")
            entry.rename(aside)
            shutil.rmtree(aside, ignore_errors=True)

    def store(self, key: str, work: Path, refresh: bool = False, source: str = "") -> str | None:
        """Store a finished stage directory under ``key`` (a copy). With ``refresh``, replace an
        existing entry. Returns a warning when the entry could not be stored (the run goes on)."""
        staged, warning = self.stage(key, work, refresh)
        return warning if staged is None else self.commit(key, staged, refresh, source)

    def stage(self, key: str, work: Path, refresh: bool = False) -> tuple[Path | None, str | None]:
        """The first half of ``store``: the copy, under a temporary name (None: nothing to store,
        or it failed, with a warning). The runner makes it before any later stage can read the
        stage's outputs, and commits it beside them."""
        if (self.dir / key).is_dir() and not refresh:
            return None, None
        tmp: Path | None = None
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            self._clean_stale()
            tmp = make_dir(self.dir, f".{key[:16]}.tmp-{os.getpid()}-")
            copy_tree(work, tmp / TREE)
            return tmp, None
        except OSError as exc:
            if tmp is not None:
                shutil.rmtree(tmp, ignore_errors=True)
            return None, f"could not store the cache entry {key[:12]}: {exc.strerror or exc}"

    def commit(self, key: str, tmp: Path, refresh: bool = False, source: str = "") -> str | None:
        """The second half of ``store``: the manifest (every file's hash), then the entry appears
        under its key. The staged copy is gone afterwards, whatever happened."""
        final = self.dir / key
        try:
            manifest = {"key": key, "source": source, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                        "writer": f"{os.getpid()}-{os.urandom(4).hex()}", "files": describe_tree(tmp / TREE)}
            with open(tmp / MANIFEST, "w") as f:
                json.dump(manifest, f, indent=1, sort_keys=True)
                f.flush()
                os.fsync(f.fileno())
            for attempt in range(STORE_ATTEMPTS):
                try:
                    tmp.rename(final)
                    return None
                except OSError as exc:
                    if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                        raise  # not "an entry is there already": reported below, nothing moved aside
                    if not refresh or attempt == STORE_ATTEMPTS - 1:  # another run stored it first
                        return None  # never move an entry aside without putting ours in its place
                    aside = self.dir / f".{key[:16]}.old-{os.getpid()}-{os.urandom(3).hex()}"
                    with contextlib.suppress(OSError):
                        final.rename(aside)
                        shutil.rmtree(aside, ignore_errors=True)
            return None
        except OSError as exc:
            return f"could not store the cache entry {key[:12]}: {exc.strerror or exc}"
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)

    def discard(self, tmp: Path) -> None:
        """A staged copy that will not be committed (the run is stopping)."""
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
