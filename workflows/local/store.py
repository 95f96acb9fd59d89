"""The local run store: ``runs/<run-id>/`` directories, ``run.json`` records, atomic writes.

Nothing half-written ever looks complete: files are written to a temp name and renamed, and a
stage's directory appears under its final name only when the stage succeeded.

Run statuses (``run.json`` ``status``, ``record.Status``): ``Running``, ``Succeeded``, ``Failed``,
``Waiting`` (paused for a manual approval), ``Rejected`` (the approval said no; nothing was
deployed), ``Interrupted`` (stopped by SIGINT/SIGTERM/SIGHUP, or its owner process died:
resumable with ``--resume``). A record whose owner process is gone is *shown* as ``Interrupted``
even if it still says ``Running`` (the owner was killed before it could write). ``Damaged`` is
shown by ``mlpipe runs`` for a ``run.json`` that cannot be read.

Each run directory has a ``run.lock``: the process running, resuming, approving or rejecting
the run holds an exclusive ``flock`` on it, so those never overlap; a second one gets a
``UserError`` (exit 2) naming the holder.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import socket
import time
from pathlib import Path
from typing import Any, Iterator

from config.errors import UserError
from workflows import files
from workflows.files import replace_dir
from workflows.local.record import Status

__all__ = ["DEFAULT_RUNS_DIR", "DamagedRecord", "RunLock", "StoreWriteError", "bounded", "effective_status",
           "find_run", "for_run", "list_runs", "lock_run", "locked", "new_run_id", "owner", "owner_alive", "read_json",
           "read_record", "replace_dir", "runs_dir", "tail", "write_bytes", "write_failed", "write_json"]

DEFAULT_RUNS_DIR = "runs"
RECORD_KEYS = ("run_id", "status", "stages", "order")
ERROR_HEAD = ERROR_TAIL = 2048  # bytes of an error text kept (or printed) from its start and its end


class StoreWriteError(UserError):
    """The run store could not be written (disk full, quota, read-only): one message, exit 1
    (the run failed; the input was fine). ``remedy`` is what to do about the disk, without
    what to run next (``for_run`` adds that, for the run it stopped)."""

    exit_code = 1
    remedy: str = "check the runs directory's permissions and free space"


class DamagedRecord(UserError):
    """A ``run.json`` that is not a run record (truncated, corrupt, edited): exit 2."""


def runs_dir(option: str | None) -> Path:
    return Path(option or os.environ.get("MLPIPE_RUNS_DIR") or DEFAULT_RUNS_DIR).resolve()


def read_json(path: Path) -> Any:
    return json.loads(path.read_text())


# --- writing -----------------------------------------------------------------------------------

def write_failed(exc: OSError, path: Path) -> StoreWriteError:
    """The one message for a write to the run store that failed (disk full, quota, read-only)."""
    reason = os.strerror(exc.errno) if exc.errno else str(exc)
    fixes = {errno.ENOSPC: "free some disk space (or use --runs-dir on another disk)",
             errno.EDQUOT: "free some space within your disk quota (or use --runs-dir elsewhere)",
             errno.EROFS: "use a writable --runs-dir"}
    fix = fixes.get(exc.errno, StoreWriteError.remedy)
    error = StoreWriteError(f"cannot write {path}: {reason}", fix=f"{fix}, then `mlpipe run --resume RUN_ID`")
    error.remedy = fix
    return error


def for_run(exc: StoreWriteError, run_id: str, recorded: bool, runs_option: str = "") -> StoreWriteError:
    """``exc`` as the run it stopped should say it: with a record, resume that run (a command to
    paste); without one, nothing of the run was kept, so run again (a --resume would find
    nothing)."""
    if recorded:
        error = StoreWriteError(exc.message, fix=f"{exc.remedy}, then `mlpipe run --resume {run_id}{runs_option}`")
    else:
        error = StoreWriteError(f"{exc.message}; run {run_id} was not recorded, so nothing of it was kept",
                                fix=f"{exc.remedy}, then run it again")
    error.remedy = exc.remedy
    return error


def write_bytes(path: Path, data: bytes) -> None:
    """Atomic write (temp name, then rename); a full disk is a ``StoreWriteError``, not a traceback."""
    try:
        files.write_bytes(path, data)
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EIO):
            raise write_failed(exc, path) from None
        raise


def write_json(path: Path, doc: Any) -> None:
    write_bytes(path, (json.dumps(doc, indent=2, sort_keys=True, default=str) + "\n").encode())


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


# --- error texts -------------------------------------------------------------------------------

def bounded(text: str, head: int = ERROR_HEAD, tail_bytes: int = ERROR_TAIL, where: str | None = None) -> str:
    """At most about head + tail bytes of ``text``: its start and its end, with a note of what
    was left out (and where the full text is)."""
    data = text.encode("utf-8", errors="replace")
    if len(data) <= head + tail_bytes + 256:
        return text
    omitted = len(data) - head - tail_bytes
    note = f"\n… [{omitted} bytes left out" + (f"; the full text is in {where}" if where else "") + "] …\n"
    return (data[:head].decode("utf-8", errors="ignore") + note
            + data[-tail_bytes:].decode("utf-8", errors="ignore"))


def tail(log: Path, lines: int = 25, window: int = 64 * 1024) -> str:
    """The last lines of a log, read from its end (bounded memory, however large the log),
    then bounded to head and tail."""
    try:
        with open(log, "rb") as f:
            size = f.seek(0, os.SEEK_END)
            f.seek(max(0, size - window))
            data = f.read(window)
    except FileNotFoundError:
        return "(no log)"
    text = data.decode("utf-8", errors="replace").rstrip()
    if size > window:  # the window starts inside a line
        text = "…" + text
    return bounded("\n".join(text.splitlines()[-lines:]), where=str(log)) or "(empty log)"


# --- records -----------------------------------------------------------------------------------

def new_run_id(pipeline: str) -> str:
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    return f"{pipeline}-{stamp}-{os.urandom(3).hex()}"


def find_run(root: Path, run_id: str) -> Path:
    """A run by id (or a path to its directory); a clear error when there is none."""
    candidate = Path(run_id)
    for path in (candidate, root / run_id):
        if (path / "run.json").is_file():
            return path.resolve()
    known = sorted(root.glob("*/run.json"), key=lambda p: p.stat().st_mtime) if root.is_dir() else []
    raise UserError(f"no local run {run_id!r} in {root}",
                    fix="list runs with `mlpipe runs`" + (f" (latest: {known[-1].parent.name})" if known else ""))


def read_record(run_dir: Path) -> dict[str, Any]:
    """A run's ``run.json``; a ``DamagedRecord`` (one message, exit 2) when it is not one."""
    path = run_dir / "run.json"
    try:
        doc = json.loads(path.read_bytes().decode("utf-8"))
    except FileNotFoundError:
        raise UserError(f"no run record at {path}", fix="list runs with `mlpipe runs`") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise _damaged(path, f"not valid JSON: {bounded(str(exc), 200, 200)}") from None
    except OSError as exc:
        raise _damaged(path, f"unreadable: {exc.strerror or exc}") from None
    if not isinstance(doc, dict):
        raise _damaged(path, "not a JSON object")
    missing = [k for k in RECORD_KEYS if k not in doc]
    if missing:
        raise _damaged(path, f"missing {', '.join(missing)}")
    if not isinstance(doc["stages"], dict) or not isinstance(doc["order"], list) \
            or any(n not in doc["stages"] or not isinstance(doc["stages"][n], dict) for n in doc["order"]):
        raise _damaged(path, "its stages do not match its stage order")
    if not isinstance(doc.setdefault("options", {}), dict) or not isinstance(doc.setdefault("approvals", {}), dict):
        raise _damaged(path, "its options or approvals are not objects")
    doc.setdefault("run_dir", str(run_dir))
    return doc


def _damaged(path: Path, reason: str) -> DamagedRecord:
    return DamagedRecord(f"the run record {path} is damaged ({reason})",
                         fix=f"this run cannot be resumed, approved or served; its stage outputs are still in "
                             f"{path.parent / 'stages'}; start a new run with `mlpipe run`")


def list_runs(root: Path) -> list[dict[str, Any]]:
    """Every run's record, oldest first, with its effective status. A damaged record is listed
    as a stub with status ``Damaged`` (and ``error``), so the others are still shown."""
    records = []
    for path in root.glob("*/run.json") if root.is_dir() else []:
        try:
            record = read_record(path.parent)
        except UserError as exc:
            record = {"run_id": path.parent.name, "status": Status.DAMAGED, "run_dir": str(path.parent),
                      "error": exc.message, "stages": {}, "order": [], "started": ""}
            with contextlib.suppress(OSError):
                record["started"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(path.stat().st_mtime))
        else:
            record["status"] = effective_status(record)
        records.append(record)
    return sorted(records, key=lambda r: str(r.get("started", "")))


# --- who owns a run ----------------------------------------------------------------------------

def _start_ticks(pid: int) -> str | None:
    """A process's start time (clock ticks since boot), so a reused PID is not mistaken for the
    owner; None where /proc is not available."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return None if fields[0] == "Z" else fields[19]  # field 3 is the state, field 22 the start time


def owner() -> dict[str, Any]:
    """What identifies this process as a run's owner (recorded in run.json)."""
    return {"pid": os.getpid(), "host": socket.gethostname(), "start": _start_ticks(os.getpid())}


def owner_alive(info: dict[str, Any] | None) -> bool:
    """Whether the process recorded as a run's owner still runs. On another host it cannot be
    told, so it counts as alive."""
    if not info or not isinstance(info.get("pid"), int):
        return False
    if info.get("host") and info["host"] != socket.gethostname():
        return True
    pid = info["pid"]
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    if Path("/proc/self/stat").exists():
        start = _start_ticks(pid)
        if start is None:  # gone, or a zombie (dead, not yet reaped)
            return False
        if info.get("start") is not None and start != info["start"]:
            return False  # the PID was reused
    return True


def effective_status(record: dict[str, Any]) -> str:
    """The status to show: ``Running`` only while the owner lives, else ``Interrupted``."""
    status = record.get("status", "")
    if status == Status.RUNNING and not owner_alive(record.get("owner")):
        return Status.INTERRUPTED
    return status


def lock_run(root: Path, run_id: str, action: str) -> "RunLock":
    """The lock of an existing run, for ``action`` (resume, approve, reject): a damaged record
    is refused first, before run.lock is created in its directory."""
    path = find_run(root, run_id)
    read_record(path)
    return RunLock(path, action)


class RunLock:
    """An exclusive, non-blocking ``flock`` on ``<run-dir>/run.lock``: the holder runs,
    resumes, approves or rejects the run; anyone else gets a clear ``UserError``. The kernel
    releases it when the holder exits, however it exits."""

    def __init__(self, run_dir: Path, action: str) -> None:
        self.path = run_dir / "run.lock"
        self.action = action
        self.fd: int | None = None

    def acquire(self) -> "RunLock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = ""
            with contextlib.suppress(OSError):
                holder = os.pread(fd, 200, 0).decode(errors="replace").strip()
            os.close(fd)
            pid, _, action = holder.partition(" ")
            who = f"pid {pid}, {action}" if pid else "another process"
            raise UserError(f"run {self.path.parent.name} is busy: another mlpipe process ({who}) is using it",
                            fix="wait for that command to finish, then try again") from None
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()} {self.action}\n".encode(), 0)
        self.fd = fd
        return self

    def release(self) -> None:
        if self.fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self.fd, 0)
            os.close(self.fd)  # closing the descriptor releases the lock
            self.fd = None

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
