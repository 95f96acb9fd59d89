"""Shared fixtures: repo on sys.path, the real abalone data when present, statelint, an
offline guard, and a moto server on 127.0.0.1."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
EXAMPLES = ROOT / "config" / "examples"
ABALONE_CSV = ROOT.parent / "shared" / "data" / "abalone.csv"
STATELINT = Path(sys.executable).with_name("statelint")
UPDATE_GOLDEN = os.environ.get("MLPIPE_UPDATE_GOLDEN") == "1"


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


def run_cli(*argv: str, env: dict | None = None, cwd: Path | None = None, timeout: float = 300):
    """Run the real `mlpipe` entry point in a subprocess (exit code, stdout, stderr)."""
    full_env = {**os.environ, **(env or {})}
    proc = subprocess.run([sys.executable, "-m", "workflows.cli", *argv], capture_output=True, text=True,
                          env=full_env, cwd=cwd or ROOT, timeout=timeout)
    return proc


from moto_server import moto_server  # noqa: E402,F401  (session fixture for every test module)
