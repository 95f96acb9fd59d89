"""Warm workers: every stage runs in its own process, forked from a server that has already
imported pandas, scikit-learn and xgboost.

A fresh interpreter per stage would pay ~1.5 s of imports each time; SageMaker pays minutes
of provisioning instead, so neither is a faithful rehearsal of *speed*, but isolation matters:
a stage must not see another stage's globals. ``multiprocessing``'s forkserver gives both.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import time
import traceback
from dataclasses import dataclass, field
from typing import Any

PRELOAD = [
    # what the step scripts import
    "numpy", "pandas", "sklearn.compose", "sklearn.impute", "sklearn.pipeline", "sklearn.preprocessing",
    "sklearn.model_selection", "sklearn.metrics", "xgboost",
    # what the Lambda, endpoint and bookkeeping stages import
    "boto3", "botocore.session", "pydantic", "http.server", "urllib.request", "workflows.local.stages",
    "workflows.local.xgboost_algo", "workflows.local.serve", "workflows.local.registry",
    # each stage process re-imports the parent's main module (multiprocessing's preparation)
    "workflows.cli",
]


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


class Workers:
    def __init__(self) -> None:
        self.ctx = multiprocessing.get_context("forkserver")
        self.ctx.set_forkserver_preload(PRELOAD)

    def warm(self) -> None:
        """Start the fork server now, so its imports overlap with the parent's own work."""
        from multiprocessing import forkserver

        forkserver.ensure_running()

    def shutdown(self) -> None:
        """Stop the fork server now. Left alone it lingers after mlpipe exits, tearing down
        pandas, scikit-learn and xgboost while still holding our stdout and stderr, so a
        caller reading them (a pipe, a CI log) waits half a second more for nothing."""
        from multiprocessing import forkserver

        server = forkserver._forkserver  # no public API for this; the state is reset as
        with server._lock:               # ensure_running() itself does after a crash
            if server._forkserver_pid is None:
                return
            try:
                os.kill(server._forkserver_pid, signal.SIGKILL)
                os.waitpid(server._forkserver_pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass
            os.close(server._forkserver_alive_fd)
            server._forkserver_address = server._forkserver_alive_fd = server._forkserver_pid = None

    def run(self, job: Job, timeout: float | None = None) -> tuple[int, float]:
        started = time.perf_counter()
        proc = self.ctx.Process(target=_child, args=(job,), daemon=True)
        proc.start()
        proc.join(timeout)
        if proc.is_alive():
            proc.kill()
            proc.join()
            with open(job.log, "a") as f:
                f.write(f"\nerror: stopped after the stage's max runtime of {timeout:g}s\n")
            return 124, time.perf_counter() - started
        return proc.exitcode if proc.exitcode is not None else 1, time.perf_counter() - started
