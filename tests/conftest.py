"""Shared fixtures and helpers: repo on sys.path, the real abalone data when present, statelint, an
offline guard, a moto server on 127.0.0.1 (and abalone's state machine on it), golden files, the
CLI and its user errors, config documents, pipeline steps and free ports."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
# Where the environment sets PYTHONDONTWRITEBYTECODE (this machine's does), every interpreter a
# test starts (a CLI, a fork server) would compile mlpipe's ~55 modules again, ~0.3 s each time;
# the tests keep bytecode in __pycache__/ (git-ignored) instead.
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
sys.dont_write_bytecode = False
# What the CLI sets at start: tests that call an SDK before any CLI command stay as quiet.
os.environ.setdefault("SAGEMAKER_SUPPRESS_V2_WARNING", "1")
EXAMPLES = ROOT / "config" / "examples"
ABALONE_CSV = ROOT.parent / "shared" / "data" / "abalone.csv"
STATELINT = Path(sys.executable).with_name("statelint")
UPDATE_GOLDEN = os.environ.get("MLPIPE_UPDATE_GOLDEN") == "1"
# abalone's state machine as deployed to the moto server (account 123456789012, us-east-1)
SM_ARN = "arn:aws:states:us-east-1:123456789012:stateMachine:mlpipe-abalone"


@pytest.fixture
def abalone_csv() -> Path:
    if not ABALONE_CSV.is_file():
        pytest.skip(f"{ABALONE_CSV} is not here (CI has it; a fresh clone does not)")
    return ABALONE_CSV


def statelint(definition: dict | str | Path) -> None:
    """Fail the test with statelint's findings unless the state machine is clean."""
    if isinstance(definition, dict):
        definition = json.dumps(definition)
    if isinstance(definition, Path):
        definition = definition.read_text()
    proc = subprocess.run([str(STATELINT), definition], capture_output=True, text=True)
    assert proc.returncode == 0 and not proc.stdout.strip(), f"statelint findings:\n{proc.stdout}{proc.stderr}"


@pytest.fixture
def offline(monkeypatch):
    """No credentials and no network except loopback: what `mlpipe build` must live with."""
    for var in list(os.environ):
        if var.startswith("AWS_") or var.startswith("SAGEMAKER_") and var.endswith("OVERRIDE"):
            monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    attempts: list = []
    real_connect = socket.socket.connect

    def guarded(self, address, *a, **kw):
        host = address[0] if isinstance(address, tuple) else address
        if host not in ("127.0.0.1", "localhost", "::1") and not isinstance(address, str):
            attempts.append(address)
            raise OSError(f"network disabled in this test: {address!r}")
        return real_connect(self, address, *a, **kw)

    monkeypatch.setattr(socket.socket, "connect", guarded)
    yield attempts
    assert not attempts, f"network was attempted: {attempts}"


_SHA256 = re.compile(r"\b[0-9a-f]{64}\b")
_ASSET_KEY = re.compile(r"/assets/(lambda/)?[0-9a-f]{16}/")
GOLDEN = ROOT / "tests" / "golden"
REGENERATE = ("MLPIPE_UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/test_build.py tests/test_describe.py "
              "-k 'golden or pinned'")


def mask_hashes(text: str) -> str:
    """Content hashes (config hash, script hashes, asset keys) as placeholders: a golden file
    pins the document's shape and values, and editing a script does not rewrite it."""
    return _ASSET_KEY.sub(lambda m: f"/assets/{m.group(1) or ''}<sha16>/", _SHA256.sub("<sha256>", text))


def check_golden(path: Path, actual: str) -> None:
    """Compare with a golden file, hashes masked; regenerate on purpose with REGENERATE."""
    actual = mask_hashes(actual)
    if UPDATE_GOLDEN:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(actual)
    assert path.is_file(), f"missing golden file {path}; regenerate on purpose: {REGENERATE}"
    assert actual == path.read_text(), f"{path} differs; if the change is intended, regenerate: {REGENERATE}"


def stage_named(doc: dict, name: str) -> dict:
    """The stage called ``name`` in a config document (the parsed YAML, not the model)."""
    return next(s for s in doc["stages"] if s["name"] == name)


def changed_config(tmp_path: Path, change, config: Path = EXAMPLES / "abalone.yaml") -> Path:
    """``config`` with ``change(doc)`` applied to its document, written as ``tmp_path/bad.yaml``."""
    doc = yaml.safe_load(config.read_text())
    change(doc)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def all_steps(steps: list[dict]):
    """Every step of a SageMaker pipeline definition's ``Steps``, a Condition's IfSteps and
    ElseSteps included (depth first)."""
    for step in steps:
        yield step
        args = step.get("Arguments") if isinstance(step.get("Arguments"), dict) else {}
        yield from all_steps(args.get("IfSteps", []) + args.get("ElseSteps", []))


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (at the time of asking)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_cli(*argv: str, env: dict | None = None, cwd: Path | None = None, timeout: float = 300,
            fresh: bool = False) -> subprocess.CompletedProcess:
    """Run the real `mlpipe` CLI (exit code, stdout, stderr): its ``main`` in this process, or
    with ``fresh`` the ``mlpipe`` entry point in a new interpreter.

    In this process the imports are paid once per test worker and local runs share one warm
    fork server, as a notebook's would: a local run costs about a fifth. Use ``fresh`` where the
    process itself is under test (signals, exit, imports, what is left behind) or the test
    reads the CLI's stderr logging (the SDKs' loggers are process-wide)."""
    if fresh:
        full_env = {**os.environ, **(env or {})}
        return subprocess.run([sys.executable, "-m", "workflows.cli", *argv], capture_output=True, text=True,
                              env=full_env, cwd=cwd or ROOT, timeout=timeout)
    return _in_process(list(argv), env or {}, cwd or ROOT)


def assert_user_error(result, *needles: str) -> str:
    """The command was refused as the CLI refuses bad input: exit code 2, stderr starting with
    ``error: `` and holding no traceback, and every needle in stderr. ``result``: what
    ``run_cli`` returns, or ``(exit code, stdout, stderr)`` of ``main`` called in a test.
    Returns stderr."""
    if isinstance(result, subprocess.CompletedProcess):
        result = (result.returncode, result.stdout, result.stderr)
    code, out, err = result
    assert code == 2, (code, out, err)
    assert "Traceback" not in err and err.startswith("error: "), err
    for needle in needles:
        assert needle in err, (needle, err)
    return err


def _in_process(argv: list[str], env: dict, cwd: Path) -> subprocess.CompletedProcess:
    """``workflows.cli.main.main(argv)`` with its own environment, working directory, stdout and
    stderr; an exception escaping it is printed as the interpreter would (exit code 1)."""
    import contextlib
    import io
    import traceback

    from workflows.cli.main import main
    from workflows.local.forkserver import exit_status

    out, err = io.StringIO(), io.StringIO()
    saved_env, saved_cwd = dict(os.environ), os.getcwd()
    os.environ.update(env)
    os.chdir(cwd)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(argv)
            except SystemExit as exc:  # argparse
                code = exit_status(exc)
            except BaseException:
                traceback.print_exc()
                code = 1
    finally:
        os.environ.clear()
        os.environ.update(saved_env)
        os.chdir(saved_cwd)
    return subprocess.CompletedProcess(argv, code, out.getvalue(), err.getvalue())


from moto_server import moto_server, moto_versions, reset  # noqa: E402,F401  (fixtures for every test module)


@pytest.fixture
def state_machine(moto_server):
    """The moto server, emptied, with a bare state machine under abalone's deployed name
    (SM_ARN; deploy itself is tested elsewhere): the server's URL."""
    import boto3

    reset(moto_server)
    sfn = boto3.client("stepfunctions", endpoint_url=moto_server, region_name="us-east-1")
    sfn.create_state_machine(name="mlpipe-abalone", roleArn="arn:aws:iam::123456789012:role/x",
                             definition=json.dumps({"StartAt": "a", "States": {"a": {"Type": "Succeed"}}}))
    return moto_server


@pytest.fixture
def running(state_machine):
    """``state_machine`` with one RUNNING execution, run-1: the server's URL."""
    import boto3

    sfn = boto3.client("stepfunctions", endpoint_url=state_machine, region_name="us-east-1")
    sfn.start_execution(stateMachineArn=SM_ARN, name="run-1")
    return state_machine

