"""The fork server's side of ``worker.py``: the process that imports the libraries once, then
forks one process per stage job (``serve``), and what each forked process does (``_child``).

It runs as ``python -c "... serve(...)"`` started by ``worker._Server``; see ``worker.py`` for
the protocol and for what keeps anything from outliving the run.
"""

from __future__ import annotations

import gc
import os
import pickle
import selectors
import signal
import socket
import sys
import traceback
from typing import Any

from workflows.local.worker import LATER, Job, _frames, _kill_group, _send


def exit_status(exc: SystemExit) -> int:
    """The exit status the interpreter gives ``sys.exit(code)``, printing a non-integer code to
    stderr as it does."""
    if isinstance(exc.code, int) or exc.code is None:
        return exc.code or 0
    print(exc.code, file=sys.stderr)
    return 1


def _child(job: Job, job_id: int | None = None, report: socket.socket | None = None) -> None:
    """Runs in the forked process: redirect output to the stage log, apply the contract, run.
    With ``report`` (the jobs' channel to the owner, one message a report), the process tells
    the owner its exit code itself, before it exits: the owner goes on while the kernel tears
    the process down and the server reaps it (a few milliseconds a stage; the server's own
    report of the same exit, which also covers a process killed before it could tell, is then
    ignored). Only this process reports: not a copy the job forked that returns here."""
    # What the server made is frozen here too (forked while it still imported, the collector's
    # first pass would scan every object the imports made: ~0.1 s), and this process collects.
    gc.freeze()
    gc.enable()
    log = os.open(job.log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(log, 1)
    os.dup2(log, 2)
    sys.stdout = open(1, "w", buffering=1, closefd=False)
    sys.stderr = open(2, "w", buffering=1, closefd=False)
    if job.whole_env:
        os.environ.clear()
    for key, value in job.env.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    os.chdir(job.cwd)
    me = os.getpid()
    code = 0
    try:
        if job.script:
            import runpy

            sys.argv = [job.script, *job.argv]
            sys.path.insert(0, os.path.dirname(job.script))
            runpy.run_path(job.script, run_name="__main__")
        else:
            import importlib

            module, _, func = job.call.partition(":")
            result = getattr(importlib.import_module(module), func)(**job.kwargs)
            code = int(result or 0)
    except SystemExit as exc:
        code = exit_status(exc)
    except BaseException:
        traceback.print_exc()
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    if report is not None and os.getpid() == me:
        try:
            report.send(pickle.dumps(("exited", job_id, code & 0xFF)))  # what the exit status will say
        except OSError:
            pass  # the server reports it
    os._exit(code)  # no atexit handlers from the parent's imports; the exit code is the status


def _settle() -> None:
    """After the last preload: what the imports made stays (frozen: no collection scans it again,
    here or in a stage process) and the collector runs again for what comes next."""
    gc.freeze()
    gc.enable()


def _preload(name: str) -> None:
    try:
        __import__(name)
    except Exception:  # a stage that needs it reports the error itself
        pass


def serve(ctl_fd: int, report_fd: int, parent_pid: int, preload: list[str], watch_parent: bool,
          isolate: list[str] | None = None) -> None:
    """The fork server's main loop (see ``_Server.start``); ``isolate``: sys.path from here on."""
    from workflows.local import supervise

    sys.path[:] = sys.path if isolate is None else isolate
    ctl = socket.socket(fileno=ctl_fd)
    report = socket.socket(fileno=report_fd)  # the jobs' own exit reports (the server never writes it)
    ctl.set_inheritable(False)     # a job's exec'd programs get neither
    report.set_inheritable(False)
    children: dict[int, int] = {}  # pid -> job id

    def stop(*_: Any) -> None:
        for pid in list(children):
            _kill_group(pid)
        for pid in list(children):
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass
        os._exit(0)

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the owner decides what a Ctrl-C stops
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGHUP, stop)
    if watch_parent:
        supervise.die_with_parent(signal.SIGTERM)
    if os.getppid() != parent_pid:  # the owner died before we could watch it
        os._exit(0)
    # What the first stage (a processing script) needs is imported before any stage job is
    # forked, the rest (after LATER) while that stage runs on the other core: one module per
    # turn of the loop, so that no job waits on more than one import. A job marked ``early``
    # (a service that needs none of it, e.g. the emulator) is forked between the first imports.
    eager, later = (preload[:preload.index(LATER)], preload[preload.index(LATER) + 1:]) \
        if LATER in preload else (list(preload), [])
    # No collection while importing: imports leave no cycles worth collecting, and a full
    # collection among hundreds of thousands of new objects costs tens of milliseconds (a tenth
    # of the imports' time, measured). A job forked meanwhile turns it back on (``_child``).
    gc.disable()
    settled = False
    held: list[tuple[int, Job]] = []  # stage jobs that came before the first imports ended

    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_r, False)
    os.set_blocking(wake_w, False)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    signal.set_wakeup_fd(wake_w)
    selector = selectors.DefaultSelector()
    selector.register(ctl, selectors.EVENT_READ)
    selector.register(wake_r, selectors.EVENT_READ)
    buffer = bytearray()
    me = os.getpid()

    def reply(message: tuple) -> None:
        try:
            _send(ctl, message)
        except OSError:  # the owner is gone
            stop()

    def fork(job_id: int, job: Job) -> None:
        pid = os.fork()
        if pid == 0:
            try:
                signal.set_wakeup_fd(-1)
                for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
                    signal.signal(sig, signal.SIG_DFL)
                os.setpgid(0, 0)
                supervise.die_with_parent(signal.SIGKILL)
                if os.getppid() != me:  # the server died before we could watch it
                    os._exit(1)
                selector.close()
                ctl.close()  # the server's alone: its EOF tells the owner that the server died
                os.close(wake_r)
                os.close(wake_w)
                if isolate is not None:
                    for name in [m for m in sys.modules if m.split(".")[0] == "workflows"]:
                        del sys.modules[name]
                _child(job, job_id, report)
            finally:
                os._exit(1)
        try:
            os.setpgid(pid, pid)
        except OSError:
            pass  # the child did it first
        children[pid] = job_id
        reply(("started", job_id, pid))

    while True:
        if not (eager or later or settled):
            _settle()
            settled = True
        events = selector.select(timeout=0 if eager or later else 1.0)
        for key, _ in events:
            if key.fileobj is ctl:
                try:
                    data = ctl.recv(1 << 16)
                except OSError:
                    data = b""
                if not data:  # EOF: the owner closed the socket or died
                    stop()
                buffer += data
                for kind, job_id, job in _frames(buffer):
                    if kind != "run":
                        continue
                    if eager and not job.early:
                        held.append((job_id, job))
                    else:
                        fork(job_id, job)
            else:
                try:
                    os.read(wake_r, 4096)
                except BlockingIOError:
                    pass
        while children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            job_id = children.pop(pid, None)
            if job_id is not None:
                reply(("exited", job_id, os.waitstatus_to_exitcode(status)))
        if eager:
            _preload(eager.pop(0))
            if not eager:
                for job_id, job in held:
                    fork(job_id, job)
                held.clear()
        elif later and not events:
            _preload(later.pop(0))
        if os.getppid() != parent_pid:  # belt and braces where there is no PDEATHSIG
            stop()
