"""Warm workers: every stage runs in its own process, forked from a server that has already
imported pandas, scikit-learn and xgboost.

A fresh interpreter per stage would pay ~1.5 s of imports each time; SageMaker pays minutes
of provisioning instead, so neither is a faithful rehearsal of *speed*, but isolation matters:
a stage must not see another stage's globals. A fork server gives both.

The fork server is our own (not ``multiprocessing``'s), so that nothing outlives the run:

- the server is started with one end of a socket pair; it reads job requests from it and
  answers "started PID" and "exited CODE". When the owner process dies (however: even
  SIGKILL), the socket reaches EOF and the server kills every stage process group and exits;
  on Linux it also has ``PR_SET_PDEATHSIG`` (SIGTERM, which does the same).
- each stage process is its own process group (so a kill reaches whatever it started) and has
  ``PR_SET_PDEATHSIG`` SIGKILL on the server.
- the owner can kill its running stages at once (``Workers.kill_all``, safe in a signal
  handler), e.g. on SIGINT/SIGTERM/SIGHUP.
"""

from __future__ import annotations

import json
import os
import pickle
import selectors
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from typing import Any

LATER = "|"  # in PRELOAD: what follows is imported between jobs, not before the first
PRELOAD = [
    # what the step scripts import
    "numpy", "pandas", "sklearn.compose", "sklearn.impute", "sklearn.pipeline", "sklearn.preprocessing",
    "sklearn.model_selection", "sklearn.metrics", LATER, "xgboost",
    # what the Lambda, endpoint and bookkeeping stages import
    "boto3", "botocore.session", "pydantic", "http.server", "urllib.request", "workflows.local.stages",
    "workflows.local.xgboost_algo", "workflows.local.serve", "workflows.local.registry",
]

_HEADER = struct.Struct("!I")
SERVER_GONE = -255  # exit code reported when the fork server died under a stage


@dataclass
class Job:
    """What one stage process does: run a script (``script``) or call ``module:function``."""

    cwd: str
    log: str
    env: dict[str, str] = field(default_factory=dict)
    script: str | None = None
    argv: list[str] = field(default_factory=list)
    call: str | None = None
    kwargs: dict[str, Any] = field(default_factory=dict)


def _child(job: Job) -> None:
    """Runs in the forked process: redirect output to the stage log, apply the contract, run."""
    log = os.open(job.log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(log, 1)
    os.dup2(log, 2)
    sys.stdout = open(1, "w", buffering=1, closefd=False)
    sys.stderr = open(2, "w", buffering=1, closefd=False)
    os.environ.update(job.env)
    os.chdir(job.cwd)
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
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        if not isinstance(exc.code, (int, type(None))):
            print(exc.code, file=sys.stderr)
    except BaseException:
        traceback.print_exc()
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # no atexit handlers from the parent's imports; the exit code is the status


# --- framing -----------------------------------------------------------------------------------

def _send(sock: socket.socket, message: tuple) -> None:
    data = pickle.dumps(message)
    sock.sendall(_HEADER.pack(len(data)) + data)


def _frames(buffer: bytearray) -> list[tuple]:
    out = []
    while len(buffer) >= _HEADER.size:
        (size,) = _HEADER.unpack_from(buffer)
        if len(buffer) < _HEADER.size + size:
            break
        out.append(pickle.loads(bytes(buffer[_HEADER.size:_HEADER.size + size])))
        del buffer[:_HEADER.size + size]
    return out


def _kill_group(pid: int, sig: int = signal.SIGKILL) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        try:
            os.kill(pid, sig)  # not yet its own group leader
        except (ProcessLookupError, PermissionError):
            pass


# --- the server process ------------------------------------------------------------------------

def _preload(name: str) -> None:
    try:
        __import__(name)
    except Exception:  # a stage that needs it reports the error itself
        pass


def serve(ctl_fd: int, parent_pid: int, preload: list[str], watch_parent: bool,
          isolate: list[str] | None = None) -> None:
    """The fork server's main loop (see ``_Server.start``); ``isolate``: sys.path from here on."""
    from workflows.local import supervise

    sys.path[:] = sys.path if isolate is None else isolate
    ctl = socket.socket(fileno=ctl_fd)
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
    # What the first stage (a processing script) needs is imported before serving; the rest
    # (after LATER) between jobs, while that stage runs on the other core.
    eager, later = (preload[:preload.index(LATER)], preload[preload.index(LATER) + 1:]) \
        if LATER in preload else (list(preload), [])
    for name in eager:
        _preload(name)

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

    while True:
        events = selector.select(timeout=0 if later else 1.0)
        if not events and later:
            _preload(later.pop(0))
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
                            ctl.close()
                            os.close(wake_r)
                            os.close(wake_w)
                            if isolate is not None:
                                for name in [m for m in sys.modules if m.split(".")[0] == "workflows"]:
                                    del sys.modules[name]
                            _child(job)
                        finally:
                            os._exit(1)
                    try:
                        os.setpgid(pid, pid)
                    except OSError:
                        pass  # the child did it first
                    children[pid] = job_id
                    reply(("started", job_id, pid))
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
        if os.getppid() != parent_pid:  # belt and braces where there is no PDEATHSIG
            stop()


# --- the owner's side --------------------------------------------------------------------------

class _Running:
    def __init__(self) -> None:
        self.pid: int | None = None
        self.code: int | None = None
        self.cancelled = False
        self.started = threading.Event()
        self.done = threading.Event()


class _Server:
    """A fork server of this process (started once per interpreter, shared by every Workers)."""

    def __init__(self, interpreter: Any = None) -> None:  # envs.Interpreter: another Python
        self.interpreter = interpreter
        self.lock = threading.Lock()
        self.send_lock = threading.Lock()
        self.proc: subprocess.Popen | None = None
        self.sock: socket.socket | None = None
        self.jobs: dict[int, _Running] = {}
        self.next_id = 0

    def alive(self) -> bool:
        return self.proc is not None and self.sock is not None and self.proc.poll() is None

    def start(self) -> None:
        with self.lock:
            if self.alive():
                return
            self._reset()
            mine, theirs = socket.socketpair()
            # Only a server started by the main thread can watch it with PR_SET_PDEATHSIG (the
            # signal fires when the creating *thread* exits); the socket's EOF works always.
            watch = threading.current_thread() is threading.main_thread()
            code = ("import sys, json; sys.path[:] = json.loads(sys.argv[1]); "
                    "from workflows.local.worker import serve; serve(*json.loads(sys.argv[2]))")
            args = [sys.executable, "-c", code, json.dumps(sys.path),
                    json.dumps([theirs.fileno(), os.getpid(), PRELOAD, watch])]
            environ, it = None, self.interpreter
            if it is not None:  # its own Python and path (mlpipe's only while importing this module)
                root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
                args = [it.python, "-c", code, json.dumps([*it.path, root]),
                        json.dumps([theirs.fileno(), os.getpid(), list(it.preload), watch, list(it.path)])]
                environ = dict(it.environ)
            try:
                self.proc = subprocess.Popen(args, pass_fds=[theirs.fileno()], stdin=subprocess.DEVNULL,
                                             stdout=subprocess.DEVNULL, env=environ)
            finally:
                theirs.close()
            self.sock = mine
            threading.Thread(target=self._read, args=(mine,), name="fork-server-reader", daemon=True).start()

    def _read(self, sock: socket.socket) -> None:
        buffer = bytearray()
        while True:
            try:
                data = sock.recv(1 << 16)
            except OSError:
                data = b""
            if not data:
                break
            buffer += data
            for kind, job_id, value in _frames(buffer):
                state = self.jobs.get(job_id)
                if state is None:
                    continue
                if kind == "started":
                    state.pid = value
                    state.started.set()
                    if state.cancelled:
                        _kill_group(value)
                elif kind == "exited":
                    state.code = value
                    self.jobs.pop(job_id, None)
                    state.started.set()
                    state.done.set()
        for job_id, state in list(self.jobs.items()):  # the server is gone: nothing will finish
            if state.pid is not None:
                _kill_group(state.pid)
            state.code = SERVER_GONE
            state.started.set()
            state.done.set()
            self.jobs.pop(job_id, None)

    def submit(self, job: Job) -> _Running:
        self.start()
        state = _Running()
        with self.lock:
            self.next_id += 1
            job_id = self.next_id
            self.jobs[job_id] = state
            sock = self.sock
        try:
            with self.send_lock:
                _send(sock, ("run", job_id, job))
        except OSError:
            self.jobs.pop(job_id, None)
            state.code = SERVER_GONE
            state.started.set()
            state.done.set()
        return state

    def stop(self) -> None:
        """Close the socket (the server kills what is left and exits) and reap it."""
        with self.lock:
            proc, sock = self.proc, self.sock
            self.proc = self.sock = None
        for state in list(self.jobs.values()):
            if state.pid is not None:
                _kill_group(state.pid)
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()
        if proc is not None:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def _reset(self) -> None:
        if self.sock is not None:
            self.sock.close()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = self.sock = None


_server = _Server()
_others: dict[Any, _Server] = {}  # setdefault is atomic: one server per interpreter


def _server_for(interpreter: Any) -> _Server:
    return _server if interpreter is None else _others.setdefault(interpreter, _Server(interpreter))


class Workers:
    """Runs stage jobs in processes forked from the warm server. ``kill_all`` stops this
    instance's running jobs and refuses new ones (the run is being interrupted)."""

    def __init__(self) -> None:
        self.running: dict[int, _Running] = {}
        self.closed = False

    def warm(self) -> None:
        """Start the fork server now, so its imports overlap with the parent's own work."""
        _server.start()

    def shutdown(self) -> None:
        """Stop the fork server now (and whatever still runs in it). Left alone it would
        outlive a stage that hangs, and hold our stdout and stderr."""
        self.kill_all()
        for server in [_server, *_others.values()]:
            server.stop()

    def kill_all(self) -> None:
        """Kill every running job's process group and refuse new jobs. Takes no lock: it is
        called from signal handlers."""
        self.closed = True
        for state in list(self.running.values()):
            state.cancelled = True
            if state.pid is not None:
                _kill_group(state.pid)
            elif not state.done.is_set():  # not forked yet: stop waiting; it is killed once it starts
                state.code = -signal.SIGKILL
                state.started.set()
                state.done.set()

    def run(self, job: Job, timeout: float | None = None,
            interpreter: Any = None) -> tuple[int, float]:
        """Run one job (in ``interpreter``'s fork server, else the project's); its exit code
        (negative: killed by that signal; 124: timed out) and its duration."""
        started = time.perf_counter()
        if self.closed:
            return -signal.SIGKILL, 0.0
        state = _server_for(interpreter).submit(job)
        self.running[id(state)] = state
        try:
            if self.closed:  # interrupted while submitting
                state.cancelled = True
                if state.pid is not None:
                    _kill_group(state.pid)
            state.started.wait()
            if not state.done.wait(timeout):
                if state.pid is not None:
                    _kill_group(state.pid)
                state.done.wait(30)
                with open(job.log, "a") as f:
                    f.write(f"\nerror: stopped after the stage's max runtime of {timeout:g}s\n")
                return 124, time.perf_counter() - started
        finally:
            self.running.pop(id(state), None)
        code = state.code if state.code is not None else 1
        if code == SERVER_GONE:
            with open(job.log, "a") as f:
                f.write("\nerror: the stage worker server exited while this stage ran\n")
            code = 1 if not self.closed else -signal.SIGKILL
        return code, time.perf_counter() - started
