"""An embedded AWS emulator for local Lambda stages: moto in server mode on 127.0.0.1.

The real handler from ``lambda_handlers/`` runs against it over HTTP, exactly as it would call
SSM in AWS. moto keeps state in memory, so the SSM parameters are saved in the run store
(``runs/.emulator/ssm.json``) and loaded into the next run's emulator: a later run whose gate
fails leaves the parameter with the value an earlier run wrote.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from workflows.local.store import locked, read_json, write_json

REGION = "us-east-1"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "mlpipe-local", "AWS_SECRET_ACCESS_KEY": "mlpipe-local",
               "AWS_SESSION_TOKEN": "mlpipe-local", "AWS_DEFAULT_REGION": REGION, "AWS_REGION": REGION}


class LocalAws:
    """Start lazily (importing moto costs a second), in a background thread."""

    def __init__(self, state_dir: Path) -> None:
        self.state_file = state_dir / "ssm.json"
        self._server = None
        self._url: str | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None

    def start_in_background(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._start, name="moto-server", daemon=True)
            self._thread.start()

    def _start(self) -> None:
        try:
            import logging

            from moto.server import ThreadedMotoServer

            logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no request lines on the terminal

            self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
            self._server.start()
            host, port = self._server.get_host_and_port()
            self._url = f"http://{host}:{port}"
            self._load()
            # moto builds its SSM backend on the first request, which takes about a second;
            # do it now, while the pipeline's first stages run, not when the Lambda stage waits.
            self.ssm().describe_parameters(MaxResults=1)
        except BaseException as exc:  # reported to whoever waits for the URL
            self._error = exc
        finally:
            self._ready.set()

    @property
    def url(self) -> str:
        self.start_in_background()
        self._ready.wait()
        if self._error is not None:
            raise RuntimeError(f"the embedded AWS emulator did not start: {self._error}")
        return self._url  # type: ignore[return-value]

    def env(self) -> dict[str, str]:
        """Environment for a process that should talk to the emulator instead of AWS."""
        return {**CREDENTIALS, "AWS_ENDPOINT_URL": self.url}

    def ssm(self):
        from workflows.aws import ssm_client

        url = self._url if self._url and threading.current_thread() is self._thread else self.url
        return ssm_client.emulator_client(url, REGION)

    def _load(self) -> None:
        if not self.state_file.is_file():
            return
        from workflows.aws import ssm_client

        client = self.ssm()
        for name, value in sorted(read_json(self.state_file).items()):
            ssm_client.put(client, name, value)

    def save(self) -> None:
        """Persist every SSM parameter (merging with what other runs saved)."""
        from workflows.aws import ssm_client

        current = ssm_client.all_parameters(self.ssm())
        with locked(self.state_file):
            saved = read_json(self.state_file) if self.state_file.is_file() else {}
            saved.update(current)
            write_json(self.state_file, saved)

    def get_parameter(self, name: str) -> str | None:
        from workflows.aws import ssm_client

        return ssm_client.get(self.ssm(), name)

    def stop(self) -> None:
        """Shut down without waiting: werkzeug polls for shutdown every half second."""
        if self._server is not None:
            threading.Thread(target=self._server.stop, daemon=True).start()


def isolate_from_real_aws(env: dict[str, str]) -> dict[str, str]:
    """Drop profile/credential settings so a handler can never reach a real account."""
    for key in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
        env.pop(key, None)
    env["AWS_CONFIG_FILE"] = os.devnull
    env["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull
    return env
