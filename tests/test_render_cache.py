"""The render cache (``workflows/render/cache.py``), the SDK set-up that renders without
re-validating or re-reading (``workflows/render/sdk.py``), and the progress indicator
(``workflows/cli/progress.py``).

Every test points ``MLPIPE_CACHE_DIR`` at a temporary directory.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import time

import pytest
from conftest import EXAMPLES, ROOT, run_cli

from steps.pipeline import load_spec
from workflows.render import PIPELINE_FILE, STATE_MACHINE_FILE, cache

CLEAN_ENV = {k: "" for k in ("MLPIPE_AWS_REGION", "MLPIPE_AWS_ACCOUNT_ID", "MLPIPE_AWS_BUCKET", "MLPIPE_AWS_PREFIX")}
ABALONE = EXAMPLES / "abalone.yaml"
SDKS = ("sagemaker", "stepfunctions")

# Build through the CLI's own entry in a fresh interpreter; report the files' hashes and
# which SDKs got imported.
_PROBE = """
import contextlib, io, json, sys
from workflows.cli.main import main
out = io.StringIO()
with contextlib.redirect_stdout(out):
    code = main(["build", "--config", sys.argv[1], "--target", "all", "--out", sys.argv[2]])
print(json.dumps({"code": code, "stdout": out.getvalue(),
                  "sdks": sorted({m.split(".")[0] for m in sys.modules} & {"sagemaker", "stepfunctions"})}))
"""


def _tree(out) -> dict[str, str]:
    return {p.relative_to(out).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(out.rglob("*")) if p.is_file() and not p.name.startswith(".mlpipe-build")}


def _probe_build(out, cache_dir, config=ABALONE) -> tuple[dict, str]:
    env = {**os.environ, **CLEAN_ENV, "MLPIPE_CACHE_DIR": str(cache_dir)}
    proc = subprocess.run([sys.executable, "-c", _PROBE, str(config), str(out)], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=600)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1]), proc.stderr


@pytest.fixture(scope="module")
def cold(tmp_path_factory):
    """One real build through the CLI with an empty cache: the reference bytes."""
    base = tmp_path_factory.mktemp("render-cache")
    cache_dir, out = base / "cache", base / "cold"
    env = {**CLEAN_ENV, "MLPIPE_CACHE_DIR": str(cache_dir)}
    proc = run_cli("build", "--config", str(ABALONE), "--target", "all", "--out", str(out), env=env, fresh=True)
    assert proc.returncode == 0, proc.stderr
    return {"cache": cache_dir, "out": out, "tree": _tree(out), "stdout": proc.stdout, "stderr": proc.stderr,
            "base": base}


@pytest.fixture
def cache_env(cold, monkeypatch):
    monkeypatch.setenv("MLPIPE_CACHE_DIR", str(cold["cache"]))
    return cold


# --- hits, misses, corruption ------------------------------------------------------------------

def test_a_cold_build_stores_one_entry_per_target(cold):
    entries = sorted((cold["cache"] / "render").glob(f"*{cache.SUFFIX}"))
    assert len(entries) == 2
    assert not list((cold["cache"] / "render").glob("*.tmp")), "no temporary file is left behind"


def test_an_unchanged_rebuild_gives_identical_bytes_without_importing_either_sdk(cold):
    out = cold["base"] / "hit"
    report, stderr = _probe_build(out, cold["cache"])
    assert report["code"] == 0
    assert report["sdks"] == [], f"a cache hit imported {report['sdks']}"
    assert _tree(out) == cold["tree"]
    assert "rendering" not in stderr, "a hit finishes within a second: no progress line"


def test_the_cached_bytes_are_what_the_sdks_render(cache_env):
    """Hit or miss, ``render`` returns the same bytes as a render that ignores the cache."""
    from workflows.render import render

    spec = load_spec(ABALONE, env=CLEAN_ENV)
    assert render(spec, "all") == render(spec, "all", use_cache=False)


@pytest.fixture
def counted(monkeypatch):
    """Count the renders that reach the SDKs."""
    import workflows.render as render_pkg

    calls: list[str] = []
    real = render_pkg.definition

    def definition(spec, target):
        calls.append(target)
        return real(spec, target)

    monkeypatch.setattr(render_pkg, "definition", definition)
    return calls


def test_a_changed_config_re_renders(cache_env, counted, tmp_path):
    from workflows.render import render

    changed = tmp_path / "abalone.yaml"
    changed.write_text(ABALONE.read_text().replace("threshold: 6.0", "threshold: 5.5"))
    assert changed.read_text() != ABALONE.read_text()
    before = set((cache_env["cache"] / "render").glob(f"*{cache.SUFFIX}"))
    spec = load_spec(changed, env=CLEAN_ENV)
    files = render(spec, "all")
    assert sorted(counted) == ["sagemaker", "stepfunctions"], "both definitions were rendered again"
    assert b"5.5" in files[STATE_MACHINE_FILE] and b"5.5" in files[PIPELINE_FILE]
    assert len(set((cache_env["cache"] / "render").glob(f"*{cache.SUFFIX}")) - before) == 2
    counted.clear()
    assert render(spec, "all") == files and counted == [], "and the next build of it is a hit"


def test_a_changed_renderer_changes_the_key(tmp_path, monkeypatch):
    """The key covers mlpipe's renderer code (and the SDK versions): edit one file, new key."""
    for folder in ("workflows/render", "steps", "config"):
        shutil.copytree(ROOT / folder, tmp_path / folder, ignore=shutil.ignore_patterns("__pycache__", "code"))
    monkeypatch.setattr(cache, "_ROOT", tmp_path)
    cache.renderer_hash.cache_clear()
    try:
        before = cache.key("f" * 64, "stepfunctions")
        assert before == cache.key("f" * 64, "stepfunctions")
        assert before != cache.key("f" * 64, "sagemaker") and before != cache.key("e" * 64, "stepfunctions")
        for rel in ("workflows/render/stepfunctions.py", "steps/naming.py"):
            path = tmp_path / rel
            path.write_text(path.read_text() + "\n# changed\n")
            cache.renderer_hash.cache_clear()
            after = cache.key("f" * 64, "stepfunctions")
            assert after != before, rel
            before = after
    finally:
        cache.renderer_hash.cache_clear()


@pytest.mark.parametrize("damage", ["flipped byte", "truncated", "garbage header", "empty"])
def test_a_corrupt_entry_is_detected_and_rewritten(cache_env, counted, damage):
    from workflows.render import render

    spec = load_spec(ABALONE, env=CLEAN_ENV)
    key = cache.key(spec.fingerprint, "stepfunctions")
    path = cache.path_of(key)
    good = path.read_bytes()
    header, _, body = good.partition(b"\n")
    if damage == "flipped byte":
        i = len(body) // 2
        bad = header + b"\n" + body[:i] + bytes([body[i] ^ 0x20]) + body[i + 1:]
    elif damage == "truncated":
        bad = good[: len(good) // 2]
    elif damage == "garbage header":
        bad = b"not json\n" + body
    else:
        bad = b""
    path.write_bytes(bad)
    assert cache.load(key) is None, "the damaged entry is not served"
    files = render(spec, "stepfunctions")
    assert counted == ["stepfunctions"], "the definition was rendered again"
    assert hashlib.sha256(files[STATE_MACHINE_FILE]).hexdigest() == cache_env["tree"][STATE_MACHINE_FILE]
    assert path.read_bytes() == good, "and the entry was rewritten whole"
    assert cache.load(key) == files[STATE_MACHINE_FILE]


def test_an_unwritable_cache_does_not_fail_the_build(tmp_path, monkeypatch):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the cache directory would go")
    monkeypatch.setenv("MLPIPE_CACHE_DIR", str(blocker))
    assert cache.store("0" * 64, b"{}") is False
    assert cache.load("0" * 64) is None


def test_the_cache_is_pruned_to_its_most_recent_entries(tmp_path, monkeypatch):
    monkeypatch.setenv("MLPIPE_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(cache, "MAX_ENTRIES", 3)
    keys = [f"{i:064x}" for i in range(5)]
    for n, k in enumerate(keys):
        assert cache.store(k, f"{{\"n\": {n}}}".encode())
        os.utime(cache.path_of(k), (1_000_000 + n, 1_000_000 + n))
    cache.store(keys[-1], b"{}")
    assert [cache.load(k) is not None for k in keys] == [False, False, True, True, True]


# --- the SDK set-up -----------------------------------------------------------------------------

def test_the_sdk_config_is_still_validated_once_per_content():
    """Validation is memoized, not skipped: a bad SDK-defaults dict still fails, every time,
    and the SDK's own schema (checked once here, not on every build) is a valid schema."""
    import jsonschema

    from workflows.render import sdk
    from sagemaker import session as sm_session
    from sagemaker import utils as sm_utils
    from sagemaker.config import config as sm_config

    jsonschema.validators.validator_for(sm_config.SAGEMAKER_PYTHON_SDK_CONFIG_SCHEMA).check_schema(
        sm_config.SAGEMAKER_PYTHON_SDK_CONFIG_SCHEMA)
    sm_utils.validate_sagemaker_config(sdk._OFFLINE_SDK_CONFIG)
    bad = {"SchemaVersion": "1.0", "SageMaker": {"PythonSDK": {"Modules": {"TelemetryOptOut": "yes please"}}}}
    for validate in (sm_utils.validate_sagemaker_config, sm_session.validate_sagemaker_config) * 2:
        with pytest.raises(jsonschema.ValidationError):
            validate(bad)


def test_a_render_neither_revalidates_the_sdk_config_nor_rereads_data_files(monkeypatch, tmp_path):
    """After one render in this process, another reads no botocore data file and no image-URI
    table, and no render runs ``jsonschema.validate`` (the meta-schema check of the SDK's
    config schema, ~0.2 s a time)."""
    import botocore.loaders
    import jsonschema

    from workflows.render import render
    from workflows.render.sdk import image_uris  # the SDK as the renderers set it up

    monkeypatch.setenv("MLPIPE_CACHE_DIR", str(tmp_path))
    spec = load_spec(ABALONE, env=CLEAN_ENV)
    render(spec, "all", use_cache=False)

    def no_validate(*a, **k):
        raise AssertionError("jsonschema.validate ran during a render")

    reads: list[str] = []
    real_load_file = botocore.loaders.JSONFileLoader.load_file

    def load_file(self, path):
        reads.append(path)
        return real_load_file(self, path)

    monkeypatch.setattr(jsonschema, "validate", no_validate)
    monkeypatch.setattr(botocore.loaders.JSONFileLoader, "load_file", load_file)
    tables = image_uris.config_for_framework.cache_info().misses
    render(spec, "all", use_cache=False)
    assert reads == []
    assert image_uris.config_for_framework.cache_info().misses == tables


def test_the_sdk_session_refuses_every_aws_call():
    """The renderers' session (``workflows/aws/offline.py``) never reaches AWS."""
    from workflows.aws.offline import OfflineCallError
    from workflows.render.sdk import offline_session

    session = offline_session(load_spec(ABALONE, env=CLEAN_ENV))
    with pytest.raises(OfflineCallError, match="GetCallerIdentity"):
        session.boto_session.client("sts").get_caller_identity()


# --- progress -----------------------------------------------------------------------------------

def test_progress_goes_to_stderr_only_and_once_when_not_a_tty(capsys):
    from workflows.cli.progress import progress

    with progress("rendering stepfunctions", delay=0.05, tick=0.01):
        time.sleep(0.3)
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == "rendering stepfunctions ...\n"


def test_no_progress_for_quick_work(capsys):
    from workflows.cli.progress import progress

    with progress("rendering stepfunctions"):
        pass
    assert capsys.readouterr() == ("", "")


def test_progress_on_a_terminal_counts_seconds_and_clears_its_line(capsys):
    from workflows.cli.progress import progress

    class Tty(io.StringIO):
        def isatty(self):
            return True

    tty = Tty()
    with progress("rendering sagemaker", stream=tty, delay=0.05, tick=0.02):
        time.sleep(0.3)
    text = tty.getvalue()
    assert text.startswith("\rrendering sagemaker ... 0s\033[K")
    assert text.endswith("\r\033[K") and "\n" not in text
    assert capsys.readouterr() == ("", "")


def test_a_cold_cli_build_reports_progress_on_stderr_and_only_paths_on_stdout(cold):
    assert "rendering stepfunctions and sagemaker ..." in cold["stderr"]
    lines = cold["stdout"].splitlines()
    assert lines and all(line.startswith(str(cold["out"])) for line in lines), lines
    assert "rendering" not in cold["stdout"]
