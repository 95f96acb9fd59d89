"""The layout's rules, as tests: who may import what, and every stage kind handled everywhere."""

from __future__ import annotations

import ast
import json
import subprocess
import sys

import pytest

from conftest import ROOT

PACKAGES = ("config", "steps", "workflows", "lambda_handlers")


def _modules() -> dict[str, set[str]]:
    """Module path (relative) -> every module it imports, at any depth of the file."""
    out: dict[str, set[str]] = {}
    for pkg in PACKAGES:
        for path in (ROOT / pkg).rglob("*.py"):
            rel = path.relative_to(ROOT).as_posix()
            if rel.startswith("steps/code/"):
                continue  # container scripts: they run alone inside SageMaker images
            names: set[str] = set()
            for node in ast.walk(ast.parse(path.read_text(), rel)):
                if isinstance(node, ast.Import):
                    names |= {a.name for a in node.names}
                elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    names.add(node.module)
                    names |= {f"{node.module}.{a.name}" for a in node.names}
            out[rel] = names
    return out


MODULES = _modules()


def _offenders(paths, banned) -> list[str]:
    return sorted(f"{rel}: {name}" for rel in paths for name in MODULES[rel]
                  if any(name == b or name.startswith(b + ".") for b in banned))


def test_config_imports_nothing_of_ours():
    assert not _offenders([r for r in MODULES if r.startswith("config/")], ("steps", "workflows", "lambda_handlers"))


def test_steps_is_pure():
    assert not _offenders([r for r in MODULES if r.startswith("steps/")],
                          ("boto3", "botocore", "sagemaker", "stepfunctions", "workflows"))


def test_the_renderers_do_not_import_each_other():
    assert not _offenders(["workflows/render/stepfunctions.py"], ("workflows.render.sagemaker",))
    assert not _offenders(["workflows/render/sagemaker.py"], ("workflows.render.stepfunctions",))


def test_only_the_render_package_imports_the_sdks():
    outside = [r for r in MODULES if not r.startswith("workflows/render/")]
    assert not _offenders(outside, ("sagemaker", "stepfunctions"))


def test_only_the_aws_clients_and_lambda_handlers_import_boto3():
    outside = [r for r in MODULES if not r.startswith(("workflows/aws/", "lambda_handlers/"))
               and r != "workflows/render/sdk.py"]  # the SDK session is offline: every call is refused
    assert not _offenders(outside, ("boto3",))


def test_nothing_imports_the_cli():
    outside = [r for r in MODULES if not r.startswith("workflows/cli/")]
    assert not _offenders(outside, ("workflows.cli",))


def test_help_and_operations_import_neither_sdk():
    code = ("import contextlib, io, sys, json\nfrom workflows.cli.main import main\n"
            "with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):\n"
            "    for argv in (['--help'], *[[c, '--help'] for c in ('run', 'deploy', 'start', 'status', 'list',\n"
            "                 'history', 'stop', 'schedule', 'approve', 'reject', 'models', 'serve', 'lineage',\n"
            "                 'runs', 'graph', 'describe', 'iam-policy', 'export', 'build')]):\n"
            "        try:\n            main(argv)\n        except SystemExit:\n            pass\n"
            "    import workflows.cli.ops, workflows.ops.stepfunctions, workflows.ops.sagemaker\n"
            "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    loaded = set(json.loads(proc.stdout.strip().splitlines()[-1]))
    assert not loaded & {"sagemaker", "stepfunctions"}


# --- each stage kind in one place, handled by every backend ----------------------------------

def test_every_kind_has_a_handler_in_every_backend():
    from steps.contract import KINDS

    pytest.importorskip("sagemaker")
    from steps.pipeline import load_spec
    from workflows.local.runner import LocalRun
    from workflows.render.sagemaker import _Renderer as SageMakerRenderer
    from workflows.render.stepfunctions import _Renderer as StepFunctionsRenderer

    spec = load_spec(ROOT / "config" / "examples" / "abalone.yaml")
    assert set(StepFunctionsRenderer(spec).handlers()) == set(KINDS)
    assert set(SageMakerRenderer(spec).handlers()) == set(KINDS)
    assert [k for k in KINDS if not callable(getattr(LocalRun, f"_{k}", None))] == []


def test_config_kinds_match_the_contract():
    from config.models import STAGE_KINDS
    from steps.contract import CONFIG_KINDS

    assert set(STAGE_KINDS) == set(CONFIG_KINDS)


def test_a_kind_without_a_handler_is_an_error_not_skipped():
    from steps.contract import handler
    from steps.spec import GateStage

    with pytest.raises(NotImplementedError, match="no handler for gate stages"):
        handler({"processing": print}, GateStage(name="g"), "test")


def test_no_module_is_long_without_saying_why():
    long = []
    for rel in MODULES:
        text = (ROOT / rel).read_text()
        if text.count("\n") > 450 and "long on purpose" not in text:
            long.append(rel)
    assert not long, long
