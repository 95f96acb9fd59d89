"""A moto server over HTTP on 127.0.0.1 for the deploy/ops/approval tests.

Import the fixture into a test module: ``from tests.moto_server import moto_server  # noqa: F401``
(or ``from moto_server import ...`` when tests/ is on sys.path). It sets fake credentials and a
region in the environment (inherited by CLI subprocesses) and yields the server's URL.
"""

from __future__ import annotations

import os

import pytest

FAKE_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
    "AWS_CONFIG_FILE": "/dev/null",
    "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
}


def _atomic_server():
    """A moto server that handles one request at a time.

    Each AWS API call is atomic, but moto's are not: two CreateStateMachine calls at the same
    instant both pass its existence check and append two machines, and a later publish answers
    HTTP 500. Serialising requests gives the concurrency tests AWS's per-call atomicity, so they
    race mlpipe's multi-call sequences (what they test) rather than moto's internals.
    """
    import threading

    from moto.moto_server import threaded_moto_server as tms

    lock = threading.Lock()

    class _Atomic(tms.DomainDispatcherApplication):
        def __call__(self, environ, start_response):
            with lock:
                return list(super().__call__(environ, start_response))

    class AtomicMotoServer(tms.ThreadedMotoServer):
        def _server_entry(self) -> None:
            self._server = tms.make_server(self._ip_address, self._port, _Atomic(tms.create_backend_app),
                                           True, request_handler=tms.MotoRequestHandler)
            self._server_ready_event.set()
            self._server.serve_forever()

    return AtomicMotoServer


@pytest.fixture(scope="session")
def moto_server():
    import logging

    ThreadedMotoServer = _atomic_server()

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise

    saved = {k: os.environ.get(k) for k in FAKE_ENV}
    os.environ.update(FAKE_ENV)
    os.environ.pop("AWS_PROFILE", None)
    os.environ.pop("AWS_ENDPOINT_URL", None)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def reset(url: str) -> None:
    """Forget every resource (moto's reset API), so each test starts from an empty account."""
    import urllib.request

    urllib.request.urlopen(urllib.request.Request(f"{url}/moto-api/reset", method="POST"), timeout=10).read()


@pytest.fixture
def moto_versions(moto_server, monkeypatch):
    """The server, reset, with the two Step Functions version operations moto 5.2.5 lacks
    (ListStateMachineVersions, PublishStateMachineVersion; it answers HTTP 500), built from
    moto's own version records, for one test."""
    from moto.core.responses import ActionResult
    from moto.stepfunctions.responses import StepFunctionResponse

    def list_state_machine_versions(self):
        sm = self.stepfunction_backend.describe_state_machine(self._get_param("stateMachineArn"))
        return ActionResult({"stateMachineVersions": [
            {"stateMachineVersionArn": v.arn, "creationDate": v.creation_date}
            for v in sorted(sm.versions.values(), key=lambda v: v.version, reverse=True)]})

    def publish_state_machine_version(self):
        # idempotent, as documented: the version of the current revision if there is one
        sm = self.stepfunction_backend.describe_state_machine(self._get_param("stateMachineArn"))
        same = next((v for v in sm.versions.values()
                     if (v.definition, v.roleArn) == (sm.definition, sm.roleArn)), None)
        if same is None:
            sm.publish(self._get_param("description"))
            same = sm.latest_version
        return ActionResult({"stateMachineVersionArn": same.arn, "creationDate": same.creation_date})

    monkeypatch.setattr(StepFunctionResponse, "list_state_machine_versions", list_state_machine_versions,
                        raising=False)
    monkeypatch.setattr(StepFunctionResponse, "publish_state_machine_version", publish_state_machine_version,
                        raising=False)
    reset(moto_server)
    return moto_server
