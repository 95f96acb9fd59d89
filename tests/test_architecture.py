"""The layout's rules, as tests: who may import what, and every stage kind handled everywhere."""

from __future__ import annotations

import ast
import json
import subprocess
import sys

import pytest

from conftest import ROOT, run_cli

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
    outside = [r for r in MODULES if not r.startswith(("workflows/aws/", "lambda_handlers/"))]
    assert not _offenders(outside, ("boto3",))


def test_nothing_imports_the_cli():
    outside = [r for r in MODULES if not r.startswith("workflows/cli/")]
    assert not _offenders(outside, ("workflows.cli",))


def test_lambda_handlers_import_nothing_of_ours():
    """They are deployed alone (the Lambda zip holds lambda_handlers/ and pydantic)."""
    assert not _offenders([r for r in MODULES if r.startswith("lambda_handlers/")], ("config", "steps", "workflows"))


# What may be imported from lambda_handlers/ by the rest: the monitoring-schedule request, which
# the Step Functions target sends itself (built by the handler's own code, so both targets attach
# the same schedule). It must stay pure: no AWS SDK at import, so rendering stays offline.
PURE_HANDLER_MODULES = ("lambda_handlers.monitoring_schedule",)


def test_only_pure_handler_modules_are_imported_from_outside():
    outside = [r for r in MODULES if not r.startswith("lambda_handlers/")]
    imported = _offenders(outside, ("lambda_handlers",))
    assert [i for i in imported if not any(i.split(": ")[1] == m or i.split(": ")[1].startswith(m + ".")
                                           for m in PURE_HANDLER_MODULES)] == []
    code = (f"import sys, json\nimport {', '.join(PURE_HANDLER_MODULES)}\n"
            "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    loaded = set(json.loads(proc.stdout.strip().splitlines()[-1]))
    assert not loaded & {"boto3", "botocore", "config", "steps", "workflows"}


def test_help_and_operations_import_neither_sdk():
    """``mlpipe --help`` and every subcommand's ``--help`` (the list read from the parser, so a
    new command is covered), then the operations modules: neither SDK is loaded."""
    code = ("import argparse, contextlib, io, sys, json\nfrom workflows.cli.main import build_parser, main\n"
            "sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))\n"
            "commands, codes = sorted(sub.choices), {}\n"
            "with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):\n"
            "    for argv in (['--help'], *[[c, '--help'] for c in commands]):\n"
            "        try:\n            main(argv)\n        except SystemExit as exc:\n"
            "            codes[' '.join(argv)] = exc.code\n"
            "    import workflows.cli.ops, workflows.ops.stepfunctions, workflows.ops.sagemaker\n"
            "print(json.dumps({'commands': commands, 'codes': codes,\n"
            "                  'loaded': sorted({m.split('.')[0] for m in sys.modules})}))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert {"run", "deploy", "monitor", "resume", "versions", "rollback"} <= set(out["commands"])
    assert out["codes"] == {" ".join(argv): 0 for argv in (["--help"], *[[c, "--help"] for c in out["commands"]])}
    assert not set(out["loaded"]) & {"sagemaker", "stepfunctions"}


def test_version_is_read_only_when_asked():
    """``--version`` prints the installed version; building the parser (every command) does not
    read the package metadata, which costs tens of milliseconds."""
    code = ("import sys\nfrom workflows.cli.main import build_parser\nbuild_parser()\n"
            "print('importlib.metadata' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert proc.stdout.strip() == "False", proc.stderr
    from importlib.metadata import version

    result = run_cli("--version")
    assert (result.returncode, result.stdout) == (0, f"mlpipe {version('mlpipe')}\n")


# --- each stage kind in one place, handled by every backend ----------------------------------

def test_every_kind_has_a_handler_in_every_backend():
    from steps.contract import KINDS

    pytest.importorskip("sagemaker")
    from steps.pipeline import load_spec
    from workflows.render.sagemaker import _Renderer as SageMakerRenderer
    from workflows.render.stepfunctions import _Renderer as StepFunctionsRenderer

    spec = load_spec(ROOT / "config" / "examples" / "abalone.yaml")
    assert set(StepFunctionsRenderer(spec).handlers()) == set(KINDS)
    assert set(SageMakerRenderer(spec).handlers()) == set(KINDS)


def test_the_local_runner_has_a_handler_per_kind():
    """The local dispatch table names every kind of the contract, and only those, each with a
    method of the runner (a table of functions: nothing is looked up by name at run time)."""
    from steps.contract import KINDS
    from workflows.local.handlers import HANDLERS
    from workflows.local.runner import LocalRun

    assert set(HANDLERS) == set(KINDS)
    assert all(callable(fn) and getattr(LocalRun, fn.__name__, None) is fn for fn in HANDLERS.values())


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
    """Over 400 lines, a module's docstring says why ("long on purpose: ...")."""
    long = []
    for rel in MODULES:
        text = (ROOT / rel).read_text()
        if text.count("\n") > 400 and "long on purpose" not in (ast.get_docstring(ast.parse(text, rel)) or ""):
            long.append(rel)
    assert not long, long


# The README's Architecture table: which of our folders each folder may import (besides itself).
MAY_IMPORT = {
    "config/": (),
    "steps/": ("config",),
    "lambda_handlers/": (),
    "workflows/files.py": ("config",),
    "workflows/aws/": ("config",),
    "workflows/render/": ("config", "steps", "workflows.aws", "lambda_handlers.monitoring_schedule"),
    "workflows/views/": ("config", "steps", "workflows.local.record"),
    "workflows/local/": ("config", "steps", "workflows.files", "workflows.aws", "workflows.views"),
    "workflows/ops/": ("config", "steps", "workflows.aws", "workflows.render.asl", "workflows.local.store"),
    "workflows/infra/": ("config", "steps", "workflows.aws", "workflows.render", "workflows.ops"),
    "workflows/cli/": ("config", "steps", "lambda_handlers", "workflows"),
}
OURS = ("config", "steps", "lambda_handlers", "workflows")


def test_every_folder_imports_only_what_the_architecture_table_allows():
    folders = [f for f in MAY_IMPORT]
    unlisted = [r for r in MODULES if not any(r == f or r.startswith(f) for f in folders)
                and r != "workflows/__init__.py"]
    assert not unlisted, f"modules outside the README's table: {unlisted}"
    bad = []
    for rel, names in MODULES.items():
        folder = next((f for f in folders if rel == f or rel.startswith(f)), None)
        if folder is None:
            continue
        own = folder.rstrip("/").removesuffix(".py").replace("/", ".")
        for name in names:
            if name.split(".")[0] not in OURS or name == own or name.startswith(own + "."):
                continue
            if name == "workflows":  # `from workflows import x`: x is named as workflows.x too
                continue
            if not any(name == a or name.startswith(a + ".") for a in MAY_IMPORT[folder]):
                bad.append(f"{rel}: {name}")
    assert not bad, "imports the README's Architecture table does not allow:\n" + "\n".join(sorted(bad))
