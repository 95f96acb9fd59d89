"""An embedded AWS emulator for local Lambda stages: moto in server mode on 127.0.0.1.

The real handler from ``lambda_handlers/`` runs against it over HTTP, exactly as it would call
SSM in AWS. moto keeps state in memory, so the SSM parameters are saved in the run store
(``runs/.emulator/ssm.json``) and loaded into the next run's emulator: a later run whose gate
fails leaves the parameter with the value an earlier run wrote.

The server runs in its own process, forked from the run's warm fork server (``Workers.spawn``)
and killed when the run ends. moto's state is global to a process, so an emulator inside the
owner would share it with anything else there (a second run, or a test's own moto server);
in its own process each run gets exactly its saved parameters, and the owner's threads never
wait on moto's.
"""

from __future__ import annotations

import importlib
import os
import sys
import threading
import time
import types
import uuid
from pathlib import Path
from typing import NoReturn

from workflows.aws import ssm_client
from workflows.local.store import locked, read_json, tail, write_json

REGION = "us-east-1"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": ssm_client.ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": "mlpipe-local",
               "AWS_SESSION_TOKEN": "mlpipe-local", "AWS_DEFAULT_REGION": REGION, "AWS_REGION": REGION}
START_TIMEOUT = 120.0  # seconds; moto's import takes about one


class LocalAws:
    """The run's emulator: started ahead of need (``start``, when the runner reaches the last
    SageMaker job before a Lambda stage), its URL awaited when that stage runs."""

    def __init__(self, state_dir: Path, run_dir: Path, workers) -> None:
        self.state_file = state_dir / "ssm.json"
        self.log = run_dir / "emulator.log"
        self._port_file = run_dir / f".emulator-{uuid.uuid4().hex[:8]}.port"
        self._workers = workers
        self._job = None
        self._url: str | None = None
        self._starting = threading.Lock()  # the scheduler and a Lambda stage's thread may both start it

    def start(self, early: bool = False) -> None:
        """Fork the server now, so moto's import overlaps with the stages before the Lambda's.
        ``early``: while the fork server still imports the stages' libraries (it needs none)."""
        with self._starting:
            if self._job is None:
                from workflows.local.worker import Job

                self.log.parent.mkdir(parents=True, exist_ok=True)
                self._job = self._workers.spawn(Job(
                    cwd=str(self.log.parent), log=str(self.log), call="workflows.local.emulator:serve", early=early,
                    kwargs={"state_file": str(self.state_file), "port_file": str(self._port_file)}))

    @property
    def url(self) -> str:
        if self._url is None:
            self.start()
            deadline = time.monotonic() + START_TIMEOUT
            while not self._port_file.is_file():
                if self._job.done.is_set() or time.monotonic() > deadline:
                    raise RuntimeError("the embedded AWS emulator did not start: "
                                       + (tail(self.log) if self.log.is_file() else "no output"))
                time.sleep(0.02)
            port = int(self._port_file.read_text())
            self._port_file.unlink()
            self._url = f"http://127.0.0.1:{port}"
        return self._url

    def env(self) -> dict[str, str]:
        """Environment for a process that should talk to the emulator instead of AWS."""
        return {**CREDENTIALS, "AWS_ENDPOINT_URL": self.url}

    def save(self, parameters: dict[str, str]) -> None:
        """Persist the SSM parameters a Lambda stage left in the emulator (read there, by the
        stage's process: boto3 stays out of the run's owner), merging with what other runs saved."""
        with locked(self.state_file):
            saved = read_json(self.state_file) if self.state_file.is_file() else {}
            saved.update(parameters)
            write_json(self.state_file, saved)

    def stop(self) -> None:
        if self._job is not None:
            self._workers.stop_job(self._job)
        self._port_file.unlink(missing_ok=True)
        try:
            if self.log.stat().st_size == 0:  # kept only when moto said something
                self.log.unlink()
        except OSError:
            pass


def serve(state_file: str, port_file: str) -> NoReturn:
    """The emulator process: moto on a free port, the saved parameters loaded and SSM's backend
    built (about a second on its first request), then the port announced; serves until killed.
    Its start-up runs without the garbage collector, as the fork server's imports do."""
    import gc
    import logging

    gc.disable()

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no request lines in the log
    _load_ssm_backend_without_ec2()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    saved = read_json(Path(state_file)) if os.path.isfile(state_file) else {}
    for name, value in sorted(saved.items()):
        ssm_client.put(url, REGION, name, value)
    ssm_client.emulator_call(url, REGION, "DescribeParameters", {"MaxResults": 1})  # builds SSM's backend
    gc.freeze()
    gc.enable()
    tmp = f"{port_file}.tmp"
    with open(tmp, "w") as f:
        f.write(str(port))
    os.replace(tmp, port_file)
    while True:
        time.sleep(3600)


class _Ec2Backends:
    """Stands in for ``moto.ec2.ec2_backends`` inside moto's SSM backend; imports moto.ec2 on
    first use (SSM uses it only to resolve SendCommand's instance targets)."""

    def __getitem__(self, account_id: str):
        return importlib.import_module("moto.ec2").ec2_backends[account_id]


def _load_ssm_backend_without_ec2() -> None:
    """Import moto's SSM backend without importing moto.ec2 first.

    ``moto.ssm.models`` imports ``moto.ec2`` at module level, and that import (region, AMI and
    instance-type tables) is half of the emulator's start-up CPU, on every run with a Lambda
    stage. SSM needs EC2 only for SendCommand targets, which resolve it lazily here; everything
    else moto does is unchanged. If moto is already loaded, or changes shape, nothing is patched.
    """
    if "moto.ssm.models" in sys.modules or "moto.ec2" in sys.modules:
        return
    stub = types.ModuleType("moto.ec2")
    stub.ec2_backends = _Ec2Backends()  # type: ignore[attr-defined]
    sys.modules["moto.ec2"] = stub
    try:
        importlib.import_module("moto.ssm.models")
    finally:
        if sys.modules.get("moto.ec2") is stub:
            del sys.modules["moto.ec2"]
        import moto

        if getattr(moto, "ec2", None) is stub:
            delattr(moto, "ec2")


def isolate_from_real_aws(env: dict[str, str | None]) -> dict[str, str | None]:
    """Unset profile settings and point credential files at nothing, so a handler can never
    reach a real account (None unsets a variable in a stage's environment)."""
    for key in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ENDPOINT_URL_SSM"):
        env[key] = None
    env["AWS_CONFIG_FILE"] = os.devnull
    env["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull
    return env
