"""Writing files so that nothing half-written ever looks complete, and nothing that is not ours
is ever lost: a temp name in the same directory, then a rename. Used by build, export, graph
and the local run store.

- ``write_bytes``: one file, atomically; a new file's mode follows the umask, a replaced
  file keeps its mode.
- ``write_output_file``: the same for a file a person named (``export --out``, ``graph --out``):
  a directory or an unwritable place is a ``UserError``, never a traceback.
- ``write_owned_tree``: a directory of generated files (``build --out``). A manifest
  (``.mlpipe-build.json``) records what was written; a later write replaces only those files,
  removes the ones it no longer produces, and refuses a directory holding anything else.
- ``replace_dir``: swap a finished directory in place of an older one (the run store).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Any

from config.errors import UserError

MANIFEST = ".mlpipe-build.json"
SCRATCH = ".mlpipe-build.tmp-"        # scratch directories: ignored by the foreign-file check
_LIST_AT_MOST = 10


_UMASK_LOCK = threading.Lock()


def umask() -> int:
    """The process umask. Linux shows it in /proc/self/status; elsewhere reading it means
    setting it and setting it straight back, which a file created by another thread in between
    would see (the local runner runs stages in threads), so that is the fallback only."""
    try:
        with open("/proc/self/status", "rb") as f:
            for line in f:
                if line.startswith(b"Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    with _UMASK_LOCK:  # two threads setting and restoring at once could leave 022 in place
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def file_mode() -> int:
    return 0o666 & ~umask()


def write_bytes(path: Path, data: bytes) -> None:
    """Write ``path`` atomically (temp file in the same directory, then a rename).

    A new file gets the umask's mode (mkstemp alone would leave 0600); a replaced file keeps
    the mode it had."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        mode = os.stat(path).st_mode & 0o7777
    except FileNotFoundError:
        mode = file_mode()
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), mode)
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_json(path: Path, doc: Any) -> None:
    write_bytes(path, (json.dumps(doc, indent=2, sort_keys=True, default=str) + "\n").encode())


def cannot_write(path: Path | str, exc: OSError, field: str = "--out") -> UserError:
    """One clear message for a place that cannot be written."""
    return UserError(f"cannot write {path}: {exc.strerror or exc}", field=field,
                     fix="choose a place you can write to (an existing, writable parent directory)")


def check_output_file(path: Path, *, create_parents: bool, field: str = "--out") -> None:
    """Refuse, before any work, an output file path that cannot be one."""
    if path.is_dir():
        raise UserError(f"{path} is a directory; this writes one file there", field=field,
                        fix=f"name a file, e.g. {path / 'out'}{path.suffix or ''}".rstrip("/"))
    parent = path.parent
    if not create_parents and not parent.is_dir():
        what = "is not a directory" if parent.exists() else "does not exist"
        raise UserError(f"the directory {parent} {what}", field=field,
                        fix=f"create it first (mkdir -p {parent}) or choose another --out")


def write_output_file(path: Path | str, data: bytes, *, create_parents: bool = True, field: str = "--out") -> None:
    """``write_bytes`` for a path a person gave: a directory, a missing parent (unless
    ``create_parents``) or an unwritable place is a ``UserError``."""
    path = Path(path)
    check_output_file(path, create_parents=create_parents, field=field)
    try:
        write_bytes(path, data)
    except IsADirectoryError as exc:
        raise UserError(f"{path} is a directory; this writes one file there", field=field) from exc
    except OSError as exc:
        raise cannot_write(path, exc, field) from None


def replace_dir(src: Path, dst: Path) -> None:
    """Move a finished directory into place, replacing an older one: readers see the old
    tree or the new one, never a mix."""
    if dst.exists():
        old = dst.with_name(f".{dst.name}.old-{os.getpid()}")
        dst.rename(old)
        src.rename(dst)
        shutil.rmtree(old, ignore_errors=True)
    else:
        src.rename(dst)


# --- a directory of generated files -----------------------------------------------------------

def _make_scratch(parent: Path, prefix: str) -> Path:
    """A fresh directory whose mode follows the umask (``mkdtemp`` would make it 0700)."""
    for _ in range(100):
        path = parent / f"{prefix}{os.urandom(4).hex()}"
        try:
            os.mkdir(path, 0o777)
            return path
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no free scratch directory name", str(parent))


def read_manifest(out: Path) -> dict[str, str] | None:
    """The files a previous write recorded (relative path -> sha256), or None."""
    try:
        doc = json.loads((out / MANIFEST).read_text())
        files = doc["files"]
        if isinstance(files, dict) and all(isinstance(k, str) for k in files):
            return dict(files)
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return None


def _entries(out: Path) -> list[str]:
    """Every non-directory entry under ``out`` (symlinks included, never followed), relative."""
    found: list[str] = []
    for root, dirs, names in os.walk(out):
        rel_root = Path(root).relative_to(out)
        if rel_root == Path("."):
            dirs[:] = [d for d in dirs if not d.startswith(SCRATCH)]
        for d in list(dirs):
            if os.path.islink(os.path.join(root, d)):
                dirs.remove(d)
                names.append(d)
        found += [(rel_root / n).as_posix() for n in names]
    return sorted(found)


def _listing(paths: list[str]) -> str:
    shown = ", ".join(paths[:_LIST_AT_MOST])
    return shown + (f" and {len(paths) - _LIST_AT_MOST} more" if len(paths) > _LIST_AT_MOST else "")


def _check_rel(rel: str) -> None:
    p = Path(rel)
    if p.is_absolute() or ".." in p.parts or rel in ("", MANIFEST) or p.parts[0].startswith(SCRATCH):
        raise ValueError(f"refusing to write {rel!r} into an output directory")


def _manifest_bytes(files: dict[str, str], writer: str) -> bytes:
    return (json.dumps({"written_by": writer, "files": dict(sorted(files.items()))}, indent=2, sort_keys=True)
            + "\n").encode()


def _write_all(root: Path, files: dict[str, bytes], manifest: bytes) -> None:
    for rel, data in sorted(files.items()):
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)   # mode 0777 & ~umask
        with open(path, "xb") as f:                       # mode 0666 & ~umask
            f.write(data)
    with open(root / MANIFEST, "xb") as f:
        f.write(manifest)


def write_owned_tree(files: dict[str, bytes], out: Path | str, *, force: bool = False,
                     writer: str = "mlpipe build", field: str = "--out") -> None:
    """Write generated ``files`` (relative path -> bytes) into the directory ``out``.

    Never destructive: ``out`` may hold only what a previous write recorded in its manifest
    (``.mlpipe-build.json``); anything else is refused, naming the files, unless ``force``
    (then it is left alone: only the generated paths are replaced). An existing file at
    ``out`` is refused. Everything is written into a fresh scratch directory first: beside
    ``out`` when ``out`` is new (then renamed into place whole), inside it otherwise (then
    each file is renamed into place, and files of the previous write that are no longer
    generated are removed). Modes follow the umask.
    """
    for rel in files:
        _check_rel(rel)
    out = Path(os.path.abspath(out))
    sums = {rel: hashlib.sha256(data).hexdigest() for rel, data in files.items()}
    scratch: Path | None = None
    try:
        check_output_dir(out, force=force, field=field)
        if not out.exists():
            out.parent.mkdir(parents=True, exist_ok=True)
            scratch = _make_scratch(out.parent, f".{out.name}{SCRATCH}")
            _write_all(scratch, files, _manifest_bytes(sums, writer))
            try:
                os.rename(scratch, out)
                scratch = None
                return
            except OSError as exc:
                if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY, errno.EISDIR, errno.ENOTDIR):
                    raise
                # `out` appeared meanwhile (another build?): merge into it like any existing one
        _write_into_existing(files, sums, out, force=force, writer=writer, field=field)
    except UserError:
        raise
    except OSError as exc:
        raise cannot_write(out, exc, field) from None
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)


def check_output_dir(out: Path | str, *, force: bool = False, field: str = "--out") -> None:
    """Refuse, before any work, an output directory that ``write_owned_tree`` would refuse:
    a file, a broken link, a path under a file, or a directory holding foreign files."""
    out = Path(os.path.abspath(out))
    if out.is_symlink() and not out.exists():
        raise UserError(f"{out} is a broken symbolic link", field=field, fix="remove it or choose another --out")
    if out.exists() and not out.is_dir():
        raise UserError(f"{out} exists and is not a directory; build writes a directory", field=field,
                        fix="choose another --out (build never replaces a file with a directory)")
    for parent in out.parents:
        if parent.exists():
            if not parent.is_dir():
                raise UserError(f"cannot write {out}: {parent} is not a directory", field=field,
                                fix="choose another --out")
            break
    if out.is_dir() and not force:
        previous = read_manifest(out) or {}
        foreign = [p for p in _entries(out) if p not in previous and p != MANIFEST]
        if foreign:
            raise UserError(
                f"{out} holds {len(foreign)} file(s) that mlpipe did not write: {_listing(foreign)}",
                field=field, fix="choose an empty or new directory for --out, or pass --force to write beside "
                                 "them (they are kept; only the generated files are replaced)")


def _write_into_existing(files: dict[str, bytes], sums: dict[str, str], out: Path, *, force: bool, writer: str,
                         field: str) -> None:
    check_output_dir(out, force=force, field=field)
    previous = read_manifest(out) or {}
    blocked = []
    for rel in files:
        path = out / rel
        if path.is_dir() and not path.is_symlink():
            blocked.append(rel)
        for parent in Path(rel).parents:
            if parent != Path(".") and ((out / parent).is_symlink() or (out / parent).exists()
                                        and not (out / parent).is_dir()):
                blocked.append(parent.as_posix())
    if blocked:
        raise UserError(f"{out} has entries where generated files go: {_listing(sorted(set(blocked)))}",
                        field=field, fix="move them away or choose another --out")
    scratch = _make_scratch(out, SCRATCH)
    try:
        _write_all(scratch, files, _manifest_bytes(sums, writer))
        # Record the union first: a crash half way leaves nothing that looks foreign next time.
        union = {**previous, **sums}
        (scratch / ".union").write_bytes(_manifest_bytes(union, writer))
        os.replace(scratch / ".union", out / MANIFEST)
        for rel in sorted(files):
            target = out / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(scratch / rel, target)
        for rel in sorted(set(previous) - set(files)):
            stale = out / rel
            if stale.is_file() or stale.is_symlink():
                with contextlib.suppress(FileNotFoundError):
                    stale.unlink()
            for parent in Path(rel).parents:           # directories the stale files leave empty
                if parent == Path("."):
                    break
                try:
                    (out / parent).rmdir()
                except OSError:
                    break
        os.replace(scratch / MANIFEST, out / MANIFEST)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
