"""Helpers for the tests that drive real local runs in subprocesses (test_local_faults.py,
test_concurrent_runs.py): the CLI in a subprocess or in this process,
the run store read back, processes found by a marker in their environment, and faults injected
through a ``sitecustomize`` module on PYTHONPATH, selected by MLPIPE_TEST_FAULT.

Import what you need (``from local_runs import run, record, faults_dir, ...``); the fixtures
``faults_dir`` and ``shared`` are module-scoped in each test module that imports them.
"""

from __future__ import annotations

import hashlib
import json
import os
import resource
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import yaml
from conftest import EXAMPLES, ROOT, run_cli

MARK = "MLPIPE_FAULT_MARKER"
EVALUATE = ROOT / "steps/code/evaluate.py"

FAULTS = r'''
import os

_fault = os.environ.get("MLPIPE_TEST_FAULT", "")
if _fault:
    import errno
    import signal

    if _fault == "crash-after-register-job":
        from workflows.local import handlers

        _original_register = handlers.HANDLERS["register"]

        def _register(self, stage, work):
            _original_register(self, stage, work)
            os.kill(os.getpid(), signal.SIGKILL)  # registered; nothing recorded yet

        handlers.HANDLERS["register"] = _register
    elif _fault.startswith("crash-after-job:"):
        _stage = _fault.split(":", 1)[1]
        from workflows.local import runner

        _original_job = runner.LocalRun._job

        def _job(self, stage, work, **kwargs):
            _original_job(self, stage, work, **kwargs)
            if stage.name == _stage:
                os.kill(os.getpid(), signal.SIGKILL)  # the stage's process is done; nothing recorded or renamed

        runner.LocalRun._job = _job
    elif _fault.startswith("crash-after-rename:"):
        _stage = _fault.split(":", 1)[1]
        from workflows.local import store

        _original_replace = store.replace_dir

        def _replace_dir(src, dst):
            _original_replace(src, dst)
            if dst.name == _stage:
                os.kill(os.getpid(), signal.SIGKILL)  # the stage's directory is final; run.json is not

        store.replace_dir = _replace_dir
    elif _fault.startswith("enospc:"):
        _first, _count = map(int, _fault.split(":")[1:])
        from workflows import files

        _original_write = files.write_bytes
        _seen = [0]

        def _write_bytes(path, data):
            if path.name == "run.json":
                _seen[0] += 1
                if _first <= _seen[0] < _first + _count:
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
            return _original_write(path, data)

        files.write_bytes = _write_bytes
    elif _fault == "endpoint-500":
        from workflows.local import serve

        def _do_post(self):
            self._send(500, b"simulated model server failure\n")

        serve._Handler.do_POST = _do_post
'''


# --- helpers -------------------------------------------------------------------------------------

def run_env(marker: str | None = None, fault: str | None = None, faults_dir: Path | None = None) -> dict:
    """This process's environment for a CLI subprocess, with a marker (to find its processes)
    and a fault (MLPIPE_TEST_FAULT, the ``sitecustomize`` in ``faults_dir`` on PYTHONPATH)."""
    env = {k: v for k, v in os.environ.items() if k not in ("MLPIPE_TEST_FAULT",)}
    if marker:
        env[MARK] = marker
    if fault:
        env["MLPIPE_TEST_FAULT"] = fault
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(faults_dir), env.get("PYTHONPATH")) if p)
    return env


def mlpipe(cwd: Path, *argv: str, env: dict | None = None, timeout: float = 300,
           umask: int | None = None) -> subprocess.CompletedProcess:
    """The CLI in this process; in a subprocess when given an environment (a marker, a fault)
    or a ``umask`` (the subprocess's own: this process's would not reach a warm fork server)."""
    if env is None and umask is None:
        return run_cli(*argv, cwd=cwd)
    return subprocess.run([sys.executable, "-m", "workflows.cli", *argv], cwd=cwd, env=env or run_env(),
                          capture_output=True, text=True, timeout=timeout,
                          preexec_fn=None if umask is None else lambda: os.umask(umask))


def _json(text: str) -> dict | None:
    try:
        return json.loads(text) if text.strip() else None
    except json.JSONDecodeError:
        return None


def run(cwd: Path, runs: Path, *argv: str, env: dict | None = None,
        umask: int | None = None) -> tuple[subprocess.CompletedProcess, dict | None]:
    proc = mlpipe(cwd, "run", "--runs-dir", str(runs), "--output", "json", *argv, env=env, umask=umask)
    return proc, _json(proc.stdout)


# The libraries' thread pools (OpenBLAS, OpenMP) and glibc's malloc arenas reserve address space
# per thread and core: pinned, a process's address space no longer grows with the machine.
PINNED_THREADS = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
                  "MALLOC_ARENA_MAX": "2"}


def run_bounded(cwd: Path, runs: Path, *argv: str, address_space: int,
                timeout: float = 300) -> tuple[subprocess.CompletedProcess, dict | None, int]:
    """`mlpipe run` in a subprocess whose every process (the owner, the fork server, the
    stages: the limit is inherited) may map at most ``address_space`` bytes (RLIMIT_AS), with
    PINNED_THREADS. Returns the process, its JSON summary and the largest resident set (bytes)
    of any process of the run (wait4's ru_maxrss covers the owner and every descendant reaped
    below it)."""
    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (address_space, address_space))

    outs = [cwd / f"bounded-{uuid.uuid4().hex[:6]}.{name}" for name in ("out", "err")]
    with open(outs[0], "w") as out, open(outs[1], "w") as err:
        proc = subprocess.Popen([sys.executable, "-m", "workflows.cli", "run", "--runs-dir", str(runs),
                                 "--output", "json", *argv], cwd=cwd, env={**run_env(), **PINNED_THREADS},
                                stdout=out, stderr=err, preexec_fn=limit)
    deadline = time.monotonic() + timeout
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if time.monotonic() > deadline:
            proc.kill()
            pid, status, usage = os.wait4(proc.pid, 0)
            break
        time.sleep(0.02)
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here: Popen must not wait again
    stdout, stderr = (p.read_text() for p in outs)
    done = subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)
    return done, _json(stdout), usage.ru_maxrss * 1024  # Linux: KiB


def start(cwd: Path, runs: Path, *argv: str, env: dict) -> subprocess.Popen:
    """`mlpipe run` in the background; its output goes to ``proc.out`` (a file)."""
    out = cwd / f"out-{uuid.uuid4().hex[:6]}.txt"
    with open(out, "w") as f:
        proc = subprocess.Popen([sys.executable, "-m", "workflows.cli", "run", "--runs-dir", str(runs),
                                 "--output", "json", *argv], cwd=cwd, env=env, stdout=f, stderr=subprocess.STDOUT)
    proc.out = out
    return proc


def new_runs(runs: Path, before: set[str]) -> list[str]:
    return sorted(p.parent.name for p in runs.glob("*/run.json") if p.parent.name not in before)


def record(runs: Path, run_id: str | None = None) -> dict:
    paths = [runs / run_id / "run.json"] if run_id else sorted(runs.glob("*/run.json"))
    assert len(paths) == 1, paths
    return json.loads(paths[0].read_text())


def statuses(doc: dict) -> dict[str, str]:
    if "stages" in doc and isinstance(doc["stages"], dict):
        return {n: doc["stages"][n]["status"] for n in doc["order"]}
    return {s["name"]: s["status"] for s in doc["stages"]}


def listed(cwd: Path, runs: Path) -> dict[str, str]:
    proc = mlpipe(cwd, "runs", "--runs-dir", str(runs), "--output", "json")
    assert proc.returncode == 0, proc.stderr
    return {r["run_id"]: r["status"] for r in json.loads(proc.stdout)}


def marked_processes(marker: str) -> list[str]:
    """Live (non-zombie) processes whose environment carries the marker."""
    found = []
    try:
        import psutil
    except ImportError:
        psutil = None
    if psutil is not None:
        for p in psutil.process_iter(["pid"]):
            try:
                if p.environ().get(MARK) == marker and p.status() != psutil.STATUS_ZOMBIE:
                    found.append(f"{p.pid} {' '.join(p.cmdline())[:120]}")
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                pass
        return found
    needle = f"{MARK}={marker}".encode()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if needle in (proc / "environ").read_bytes().split(b"\0"):
                state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
                if state != "Z":
                    found.append(f"{proc.name} {(proc / 'cmdline').read_bytes()[:120]!r}")
        except OSError:
            pass
    return found


def wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.1)


def config_with(tmp_path: Path, name: str, evaluate_code: str) -> Path:
    """The quick-start config whose evaluation script is ``evaluate_code`` (a file written here)."""
    script = tmp_path / f"{name}.py"
    script.write_text(evaluate_code)
    doc = yaml.safe_load((EXAMPLES / "quickstart.yaml").read_text())
    next(s for s in doc["stages"] if s["name"] == "evaluate")["code"] = str(script)
    config = tmp_path / f"{name}.yaml"
    config.write_text(yaml.safe_dump(doc))
    return config


def slow_config(tmp_path: Path) -> tuple[Path, Path, Path]:
    """Evaluation sleeps (with a grandchild process) until ``flag`` exists; ``started`` says it is asleep."""
    flag, started = tmp_path / "go-on", tmp_path / "evaluate-started"
    code = (
        "import os, runpy, subprocess, sys, time\n"
        f"if not os.path.exists({str(flag)!r}):\n"
        "    child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)'])\n"
        f"    open({str(started)!r}, 'w').write(f'{{os.getpid()}} {{child.pid}}')\n"
        "    time.sleep(120)\n"
        f"runpy.run_path({str(EVALUATE)!r}, run_name='__main__')\n")
    return config_with(tmp_path, "slow_eval", code), flag, started


def tree_digest(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and not p.is_symlink()}


def registry_versions(runs: Path, run_id: str) -> list[dict]:
    out = []
    for path in (runs / "registry").glob("*.json"):
        out += [v for v in json.loads(path.read_text())["versions"] if v["run_id"] == run_id]
    return out


@pytest.fixture(scope="module")
def shared(tmp_path_factory) -> tuple[Path, Path, dict]:
    """A runs directory with one finished quick-start run (and a warm cache)."""
    cwd = tmp_path_factory.mktemp("faults")
    runs = cwd / "runs"
    proc, doc = run(cwd, runs)
    assert proc.returncode == 0, proc.stderr
    return cwd, runs, doc


@pytest.fixture(scope="module")
def faults_dir(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("sitecustomize")
    (path / "sitecustomize.py").write_text(FAULTS)
    return path

