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

This module is the owner's side; the server process's code is ``forkserver.py``.
"""

from __future__ import annotations

import json
import os
import pickle
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any

LATER = "|"  # in PRELOAD: what follows is imported between jobs, not before the first
# One module per step, in import order: the server handles the owner's requests between steps
# (a job waits on one import at most), so the large packages come in parts.
PRELOAD = [
    # what the step scripts import
    "numpy", "pandas", "scipy.sparse", "scipy.linalg", "scipy.optimize", "scipy.stats", "sklearn.base",
    "sklearn.compose", "sklearn.impute", "sklearn.pipeline", "sklearn.preprocessing", "sklearn.model_selection",
    "sklearn.metrics", LATER,
    # what training imports; the endpoint and transform stages; then a Lambda stage's handler
    # (boto3, pydantic: preloaded, the Lambda's process no longer ends the run)
    "xgboost", "workflows.local.stages", "workflows.local.xgboost_algo", "http.server",
    "workflows.local.serve", "urllib3", "botocore.compat",
    "botocore.credentials", "botocore.client", "botocore.session", "s3transfer.manager", "boto3", "pydantic",
    "pydantic.main", "pydantic.fields",
]

_HEADER = struct.Struct("!I")
SERVER_GONE = -255  # exit code reported when the fork server died under a stage


@dataclass
class Job:
    """What one stage process does: run a script (``script``) or call ``module:function``.

    ``env`` is applied over the fork server's environment (a value of None unsets the variable);
    with ``whole_env`` it is the stage's whole environment, the owner's as of submitting (the
    server may have been started for an earlier run, under another environment)."""

    cwd: str
    log: str
    env: dict[str, str | None] = field(default_factory=dict)
    whole_env: bool = False
    script: str | None = None
    argv: list[str] = field(default_factory=list)
    call: str | None = None
    kwargs: dict[str, Any] = field(default_factory=dict)
    early: bool = False          # a service needing none of the preloads: forked while they load


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
        self.reports: socket.socket | None = None
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
            # Exit reports from the jobs themselves come on a channel of their own: one message
            # per report, and the server's end of ``mine`` stays the server's alone (its EOF is
            # how the owner learns that the server died, whatever the jobs left running).
            reports, their_reports = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            # Only a server started by the main thread can watch it with PR_SET_PDEATHSIG (the
            # signal fires when the creating *thread* exits); the socket's EOF works always.
            watch = threading.current_thread() is threading.main_thread()
            code = ("import sys, json; sys.path[:] = json.loads(sys.argv[1]); "
                    "from workflows.local.forkserver import serve; serve(*json.loads(sys.argv[2]))")
            fds = [theirs.fileno(), their_reports.fileno()]
            args = [sys.executable, "-c", code, json.dumps(sys.path), json.dumps([*fds, os.getpid(), PRELOAD, watch])]
            environ, it = None, self.interpreter
            if it is not None:  # its own Python and path (mlpipe's only while importing this module)
                root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
                args = [it.python, "-c", code, json.dumps([*it.path, root]),
                        json.dumps([*fds, os.getpid(), list(it.preload), watch, list(it.path)])]
                environ = dict(it.environ)
            try:
                self.proc = subprocess.Popen(args, pass_fds=fds, stdin=subprocess.DEVNULL,
                                             stdout=subprocess.DEVNULL, env=environ)
            finally:
                theirs.close()
                their_reports.close()
            self.sock, self.reports = mine, reports
            threading.Thread(target=self._read, args=(mine,), name="fork-server-reader", daemon=True).start()
            threading.Thread(target=self._read_reports, args=(reports,), name="job-reports", daemon=True).start()

    def _exited(self, job_id: int, code: int) -> None:
        """A job ended with ``code``: the first report wins (the job's own, or the server's)."""
        state = self.jobs.pop(job_id, None)
        if state is not None:
            state.code = code
            state.started.set()
            state.done.set()

    def _read_reports(self, sock: socket.socket) -> None:
        while True:
            try:
                kind, job_id, code = pickle.loads(sock.recv(4096))
            except (OSError, EOFError, pickle.UnpicklingError, ValueError, TypeError):
                return  # closed (the server and its jobs are gone, or the owner stopped it)
            if kind == "exited":
                self._exited(job_id, code)

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
            try:
                frames = _frames(buffer)
            except Exception:  # a damaged stream: treat the server as gone (below), never hang
                break
            for kind, job_id, value in frames:
                if kind == "exited":
                    self._exited(job_id, value)
                    continue
                state = self.jobs.get(job_id)
                if state is not None and kind == "started":
                    state.pid = value
                    state.started.set()
                    if state.cancelled:
                        _kill_group(value)
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
        self._close_reports()

    def _close_reports(self) -> None:
        reports, self.reports = self.reports, None
        if reports is not None:
            try:
                reports.shutdown(socket.SHUT_RDWR)  # wakes its reader
            except OSError:
                pass
            reports.close()

    def _reset(self) -> None:
        if self.sock is not None:
            self.sock.close()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._close_reports()
        self.proc = self.sock = None


_server = _Server()
_others: dict[Any, _Server] = {}  # setdefault is atomic: one server per interpreter


def _server_for(interpreter: Any) -> _Server:
    return _server if interpreter is None else _others.setdefault(interpreter, _Server(interpreter))


def stop_servers() -> None:
    """Stop every fork server of this process (and whatever still runs in them): what a
    process does before it exits, so that nothing outlives it even for a moment."""
    for server in [_server, *_others.values()]:
        server.stop()


class Workers:
    """Runs stage jobs in processes forked from the warm server. ``kill_all`` stops this
    instance's running jobs and refuses new ones (the run is being interrupted).

    The server is shared by every run in this process and outlives a run that ended normally
    (``release``), so a second run in the same process (a notebook, a test session) pays no
    imports; ``shutdown`` stops it, and the CLI stops it before it exits."""

    def __init__(self) -> None:
        self.running: dict[int, _Running] = {}
        self.closed = False

    def warm(self) -> None:
        """Start the fork server now, so its imports overlap with the parent's own work."""
        _server.start()

    def shutdown(self) -> None:
        """Stop the fork server now (and whatever still runs in it): after an interruption or
        a fault, a stage that hangs would otherwise outlive the run and hold our stdout."""
        self.kill_all()
        stop_servers()

    def release(self) -> None:
        """The run is over: kill what it still runs (its services), keep the server warm."""
        self.kill_all()
        for state in list(self.running.values()):
            state.done.wait(5)
        self.running.clear()

    def spawn(self, job: Job) -> _Running:
        """Start a job that serves until it is stopped (``stop_job``, ``release``, ``kill_all``):
        a service the run's stages talk to, e.g. the embedded AWS emulator."""
        if self.closed:
            raise RuntimeError("the run is stopping")
        return self._submit(job, None)

    def stop_job(self, state: _Running) -> None:
        state.cancelled = True
        if state.pid is not None:
            _kill_group(state.pid)
        state.done.wait(5)
        self.running.pop(id(state), None)

    def _submit(self, job: Job, interpreter: Any) -> _Running:
        if interpreter is None:  # the shared server: the owner's environment as of now
            job.env, job.whole_env = {**os.environ, **job.env}, True
        state = _server_for(interpreter).submit(job)
        self.running[id(state)] = state
        return state

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
        state = self._submit(job, interpreter)
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
