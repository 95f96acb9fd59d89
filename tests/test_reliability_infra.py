"""Issue 11 outside the local runner: outputs that never destroy a user's files, deploys that
converge (deletions and concurrent deploys included), one clear message instead of a traceback,
and a Lambda package built for the Lambda runtime whatever machine deploys.

Deploy tests run against the moto server (``moto_server``); ``deploy`` and ``build`` run
in-process (the SDKs are imported once), error paths through the real entry point (``run_cli``).
"""

from __future__ import annotations

import argparse
import contextlib
import http.server
import io
import json
import os
import stat
import struct
import subprocess
import sys
import threading
import zipfile
from pathlib import Path

import boto3
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from conftest import EXAMPLES, assert_user_error, run_cli  # noqa: E402
from moto_server import reset  # noqa: E402

ABALONE = str(EXAMPLES / "abalone.yaml")
QUICKSTART = str(EXAMPLES / "quickstart.yaml")
MOTO_BLIND = {"s3 eventbridge notifications"}   # see test_deploy_cycle.py
PREFIX = "mlpipe-abalone-"


@pytest.fixture(scope="module")
def moto_server(moto_server):
    """The session's moto server, left empty for the modules after this one."""
    yield moto_server
    reset(moto_server)


def _main(*argv: str) -> tuple[int, str, str]:
    from workflows.cli.main import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


@contextlib.contextmanager
def _umask(mask: int):
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# === 1. outputs are never destructive ===========================================================

def test_build_into_a_project_refuses_and_keeps_its_files(tmp_path):
    project = tmp_path / "project"
    (project / "src").mkdir(parents=True)
    (project / "src" / "model.py").write_text("print('mine')\n")
    (project / "README.md").write_text("mine\n")

    assert_user_error(_main("build", "--config", QUICKSTART, "--out", str(project)),
                      "did not write", "src/model.py", "README.md", "--force")
    assert (project / "src" / "model.py").read_text() == "print('mine')\n"
    assert sorted(p.name for p in project.iterdir()) == ["README.md", "src"], "nothing written when refused"

    code, out, err = _main("build", "--config", QUICKSTART, "--out", str(project), "--force")
    assert code == 0, err
    assert (project / "src" / "model.py").read_text() == "print('mine')\n"
    assert (project / "README.md").read_text() == "mine\n"
    manifest = json.loads((project / ".mlpipe-build.json").read_text())
    assert "stepfunctions/state_machine.asl.json" in manifest["files"]
    assert not {"src/model.py", "README.md"} & set(manifest["files"])
    assert not [p for p in project.iterdir() if p.name.startswith(".mlpipe-build.tmp")], "no scratch left"


def test_rebuild_replaces_only_its_own_files_and_modes_follow_the_umask(tmp_path):
    out = tmp_path / "build"
    with _umask(0o027):
        code, _, err = _main("build", "--config", QUICKSTART, "--out", str(out))
    assert code == 0, err
    assert _mode(out) == 0o750 and _mode(out / "stepfunctions") == 0o750
    assert _mode(out / "stepfunctions" / "state_machine.asl.json") == 0o640
    assert _mode(out / ".mlpipe-build.json") == 0o640
    first = json.loads((out / ".mlpipe-build.json").read_text())["files"]
    assert set(first) == {p.relative_to(out).as_posix() for p in out.rglob("*")
                          if p.is_file() and p.name != ".mlpipe-build.json"}

    # a file an older build wrote (listed in the manifest) and the build no longer produces
    stale = out / "assets" / "old" / "gone.py"
    stale.parent.mkdir(parents=True)
    stale.write_text("old\n")
    doc = json.loads((out / ".mlpipe-build.json").read_text())
    doc["files"]["assets/old/gone.py"] = "0" * 64
    (out / ".mlpipe-build.json").write_text(json.dumps(doc))

    code, _, err = _main("build", "--config", QUICKSTART, "--out", str(out))
    assert code == 0, err
    assert not stale.exists() and not stale.parent.exists(), "stale output removed, its empty directory too"
    assert json.loads((out / ".mlpipe-build.json").read_text())["files"] == first

    (out / "notes.txt").write_text("mine\n")
    assert_user_error(_main("build", "--config", QUICKSTART, "--out", str(out)), "notes.txt")
    assert (out / "notes.txt").read_text() == "mine\n"


def test_build_targets_that_cannot_be_a_build_directory(tmp_path):
    a_file = tmp_path / "a-file"
    a_file.write_text("keep me\n")
    assert_user_error(_main("build", "--config", QUICKSTART, "--out", str(a_file)), "is not a directory")
    assert a_file.read_text() == "keep me\n"
    assert_user_error(_main("build", "--config", QUICKSTART, "--out", str(a_file / "sub")), "is not a directory")
    proc = run_cli("build", "--config", QUICKSTART, "--out", "/proc/nope")
    assert_user_error(proc, "cannot write /proc/nope")
    assert proc.stderr.count("error:") == 1


def test_export_writes_one_file_and_refuses_a_directory(tmp_path):
    assert_user_error(_main("export", "cloudformation", "--config", QUICKSTART, "--out", str(tmp_path)),
                      "is a directory")
    as_dir = tmp_path / "stack.json"
    as_dir.mkdir()
    assert_user_error(_main("export", "cloudformation", "--config", QUICKSTART, "--out", str(as_dir)),
                      "is a directory")

    out = tmp_path / "t.json"
    with _umask(0o022):
        code, _, err = _main("export", "cloudformation", "--config", QUICKSTART, "--out", str(out))
    assert code == 0, err
    assert _mode(out) == 0o644, "a new file's mode follows the umask (not mkstemp's 0600)"
    os.chmod(out, 0o600)
    code, _, err = _main("export", "cloudformation", "--config", QUICKSTART, "--out", str(out))
    assert code == 0 and _mode(out) == 0o600, "a replaced file keeps its mode"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["stack.json", "t.json"], "no temp file left"


def test_graph_out_on_a_directory_or_a_missing_parent(tmp_path):
    for fmt in ("svg", "png"):
        assert_user_error(run_cli("graph", "--config", QUICKSTART, "--format", fmt, "--out", str(tmp_path)),
                          "is a directory")
        assert_user_error(run_cli("graph", "--config", QUICKSTART, "--format", fmt, "--out",
                                  str(tmp_path / "missing" / f"dag.{fmt}")), "does not exist", "mkdir -p")
    assert list(tmp_path.iterdir()) == []
    proc = run_cli("graph", "--config", QUICKSTART, "--format", "png", "--out", str(tmp_path / "dag.png"))
    assert proc.returncode == 0, proc.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["dag.png"]


# === 5. the Lambda package is built for the Lambda runtime ======================================

ELF_MACHINE_X86_64 = 62


def _check_runtime_binaries(zip_bytes: bytes) -> list[str]:
    """Every compiled file is a 64-bit little-endian x86-64 ELF tagged for CPython 3.11 on
    Linux (glibc); returns their names."""
    compiled = []
    with zipfile.ZipFile(io.BytesIO(zip_bytes)) as zf:
        for name in zf.namelist():
            if not name.endswith(".so") and ".so." not in name:
                assert not name.endswith((".pyd", ".dylib", ".dll")), name
                continue
            compiled.append(name)
            assert name.endswith(".cpython-311-x86_64-linux-gnu.so"), name
            head = zf.read(name)[:20]
            assert head[:4] == b"\x7fELF", name
            assert head[4] == 2 and head[5] == 1, f"{name}: not a 64-bit little-endian ELF"
            (machine,) = struct.unpack_from("<H", head, 18)
            assert machine == ELF_MACHINE_X86_64, f"{name}: e_machine {machine}"
    return compiled


def test_lambda_zip_is_built_from_wheels_resolved_for_the_runtime(tmp_path, monkeypatch):
    from workflows.infra import package

    monkeypatch.setenv("MLPIPE_CACHE_DIR", str(tmp_path / "cache"))
    # as on a Mac: the local site-packages could never stand in for the runtime's
    monkeypatch.setattr(package, "local_is_runtime", lambda: False)
    deps = package.resolve_dependencies()
    assert deps.source == "pip" and deps.where is not None and str(tmp_path) in str(deps.where)
    resolved = json.loads((deps.where.parent / "resolved.json").read_text())
    assert resolved["pins"] == package.pins()
    core = [w for w in resolved["wheels"] if w.startswith("pydantic_core-")]
    assert len(core) == 1 and "-cp311-cp311-" in core[0] and "manylinux" in core[0] and "x86_64" in core[0]
    first = package.make_zip(deps)
    compiled = _check_runtime_binaries(first)
    assert any(n.startswith("pydantic_core/_pydantic_core.") for n in compiled)
    names = zipfile.ZipFile(io.BytesIO(first)).namelist()
    assert {"lambda_handlers/deploy_endpoint.py", "pydantic/__init__.py", "typing_extensions.py"} <= set(names)
    assert not any(".dist-info/" in n or "__pycache__" in n for n in names)

    # the cache, keyed by the pins, answers the next build without pip; same bytes
    def no_pip(*a, **k):
        raise AssertionError("pip ran although the cache holds the wheels")
    monkeypatch.setattr(package, "pip_download", no_pip)
    assert package.make_zip(package.resolve_dependencies()) == first


def test_unreachable_index_falls_back_only_on_the_runtime_platform(tmp_path, monkeypatch):
    from config.errors import UserError
    from workflows.infra import package

    monkeypatch.setenv("MLPIPE_CACHE_DIR", str(tmp_path / "cache"))
    # a package index nobody answers at, and none of this machine's local ones
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")
    for var in ("PIP_EXTRA_INDEX_URL", "PIP_FIND_LINKS"):
        monkeypatch.delenv(var, raising=False)

    monkeypatch.setattr(package, "local_is_runtime", lambda: False)
    with pytest.raises(UserError) as refused:
        package.resolve_dependencies()
    assert "pip could not download" in refused.value.message and "CPython 3.11" in refused.value.message
    assert "package index" in (refused.value.fix or "")
    assert not list((tmp_path / "cache").rglob("resolved.json")), "nothing half-made is cached"

    monkeypatch.setattr(package, "local_is_runtime", lambda: True)
    deps = package.resolve_dependencies()
    assert deps.source == "local"
    if package.RUNTIME_SOABI == __import__("sysconfig").get_config_var("SOABI"):
        _check_runtime_binaries(package.make_zip(deps))


def test_local_is_runtime_reads_this_interpreter():
    from workflows.infra import package

    import sysconfig

    expected = sys.version_info[:2] == (3, 11) and sysconfig.get_config_var("SOABI") == "cpython-311-x86_64-linux-gnu"
    assert package.local_is_runtime() is expected


# === 2. deploy converges, deletions included ===================================================

def _deploy(url: str, config: str, target: str, *extra: str) -> tuple[int, list[dict] | str, str]:
    code, out, err = _main("--endpoint-url", url, "deploy", "--config", config, "--target", target, "-o", "json",
                           *extra)
    if code != 0:
        return code, out, err
    return code, json.loads(out[out.index("["):]), err


def _changes(rows: list[dict]) -> set[tuple[str, str, str]]:
    return {(r["resource"], r["name"], r["action"]) for r in rows
            if r["action"] != "unchanged" and r["resource"] not in MOTO_BLIND}


def _client(url: str, service: str):
    return boto3.client(service, endpoint_url=url, region_name="us-east-1")


def _slim_config(tmp_path: Path) -> str:
    """abalone without the S3 trigger, the schedule (so no dead-letter queue), the lambda
    stage, the endpoint stage (so no deployer, no model-approved rule), and another e-mail."""
    doc = yaml.safe_load(Path(ABALONE).read_text())
    doc.pop("trigger")
    doc.pop("schedule")
    doc["stages"] = [s for s in doc["stages"] if s["name"] not in ("record-model", "deploy")]
    doc["notifications"]["emails"] = ["new-owner@example.com"]
    path = tmp_path / "abalone-slim.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return str(path)


def _state(url: str) -> dict[str, set]:
    lam, events = _client(url, "lambda"), _client(url, "events")
    return {
        "functions": {f["FunctionName"] for f in lam.list_functions()["Functions"]},
        "rules": {r["Name"] for r in events.list_rules()["Rules"]},
        "schedules": {s["Name"] for s in _client(url, "scheduler").list_schedules()["Schedules"]},
        "queues": {q.rsplit("/", 1)[-1] for q in _client(url, "sqs").list_queues().get("QueueUrls", [])},
        "emails": {s["Endpoint"] for s in _client(url, "sns").list_subscriptions()["Subscriptions"]},
        "state_machines": {m["name"] for m in _client(url, "stepfunctions").list_state_machines()["stateMachines"]},
        "pipelines": {p["PipelineName"] for p in _client(url, "sagemaker").list_pipelines()["PipelineSummaries"]},
        "roles": {r["RoleName"] for r in _client(url, "iam").list_roles()["Roles"]},
    }


def _lookalikes(url: str) -> None:
    """Resources under the pipeline's name prefix that mlpipe did not create (no tag)."""
    _client(url, "events").put_rule(Name=PREFIX + "handmade", EventPattern=json.dumps({"source": ["x"]}))
    role = _client(url, "iam").create_role(RoleName="someone-elses", AssumeRolePolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"},
                                               "Action": "sts:AssumeRole"}]}))["Role"]["Arn"]
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("h.py", "def handler(e, c):\n    return 1\n")
    _client(url, "lambda").create_function(
        FunctionName=PREFIX + "handmade", Runtime="python3.11", Role=role,
        Handler="h.handler", Code={"ZipFile": buf.getvalue()}, Description="mlpipe abalone: made by hand")


def test_redeploy_removes_what_the_config_no_longer_declares_and_only_its_own(moto_server, tmp_path):
    url = moto_server
    reset(url)
    _lookalikes(url)
    for target in ("stepfunctions", "sagemaker"):
        code, rows, err = _deploy(url, ABALONE, target)
        assert code == 0, err

    # every kind deploy tags can be listed back with its mlpipe:pipeline tag
    from workflows.aws.session import from_args
    from workflows.infra import plan, prune

    for target in ("stepfunctions", "sagemaker"):
        d = plan.prepare(ABALONE, target, from_args(argparse.Namespace(endpoint_url=url, region="us-east-1",
                                                                        profile=None)))
        kinds = set()
        for step in d.steps:
            r = step.resource
            assert step.remove is None, f"nothing to delete right after a deploy: {r.kind} {r.name}"
            found = prune.tags_of(d, r.kind, r.name, r.arn)
            if found is not None:
                assert found.get("mlpipe:pipeline") == "abalone", (r.kind, r.name, found)
                kinds.add(r.kind)
        assert kinds >= {"sns topic", "sqs queue", "iam role", "lambda function", "model package group",
                         "eventbridge rule"} | ({"state machine", "log group"} if target == "stepfunctions"
                                                else {"sagemaker pipeline"})

    slim = _slim_config(tmp_path)
    before = _state(url)

    # --- Step Functions first: only its own trigger rule and schedule go --------------------------
    code, rows, err = _deploy(url, slim, "stepfunctions", "--dry-run")
    assert code == 0, err
    deletes = {(r["resource"], r["name"]) for r in rows if r["action"] == "delete"}
    assert deletes == {
        ("eventbridge rule", PREFIX + "stepfunctions-new-data"), ("schedule", PREFIX + "stepfunctions-retrain"),
        ("sns subscription", "ml-ops@example.com"),
        ("iam role policy", PREFIX + "events/mlpipe-stepfunctions-start"),
        ("iam role policy", PREFIX + "scheduler/mlpipe-stepfunctions-start"),
    }, rows
    assert _state(url) == before, "a dry run changes nothing"
    code, summary_out, summary_err = _main("--endpoint-url", url, "deploy", "--config", slim, "--target",
                                           "stepfunctions", "--dry-run")
    assert code == 0 and "(5 to delete" in summary_err, summary_err
    assert summary_out.count(" delete") >= 5

    code, rows, err = _deploy(url, slim, "stepfunctions")
    assert code == 0, err
    assert {(k, n) for k, n, a in _changes(rows) if a == "deleted"} == deletes
    after = _state(url)
    assert after["rules"] == before["rules"] - {PREFIX + "stepfunctions-new-data"}
    assert after["schedules"] == {PREFIX + "sagemaker-retrain"}
    # the SageMaker target's pipeline still calls record-model, its schedule still uses the queue
    assert after["functions"] == before["functions"]
    assert after["queues"] == {PREFIX + "schedule-dlq"}
    assert after["emails"] == {"new-owner@example.com"}

    # --- then SageMaker: its own rules, schedule, functions, and now the queue -----------------
    code, rows, err = _deploy(url, slim, "sagemaker")
    assert code == 0, err
    assert {(k, n) for k, n, a in _changes(rows) if a == "deleted"} == {
        ("eventbridge rule", PREFIX + "sagemaker-new-data"), ("eventbridge rule", PREFIX + "deploy-approved"),
        ("schedule", PREFIX + "sagemaker-retrain"), ("lambda function", PREFIX + "record-model"),
        ("lambda function", PREFIX + "deploy"), ("lambda function", PREFIX + "trigger"),
        ("sqs queue", PREFIX + "schedule-dlq"),
        ("iam role policy", PREFIX + "lambda/mlpipe-sagemaker-endpoint-deployer"),
        ("iam role policy", PREFIX + "lambda/mlpipe-sagemaker-trigger-starter"),
        ("iam role policy", PREFIX + "scheduler/mlpipe-sagemaker-start"),
    }, rows
    final = _state(url)
    assert final["functions"] == {PREFIX + "handmade"}, "only what mlpipe did not create is left"
    assert final["rules"] == {PREFIX + "handmade", PREFIX + "stepfunctions-status", PREFIX + "sagemaker-status"}
    assert final["schedules"] == set() and final["queues"] == set()
    assert final["state_machines"] == {"mlpipe-abalone"} and final["pipelines"] == {"mlpipe-abalone"}
    assert final["roles"] == before["roles"], "roles are shared and stay"

    # converged: deploying again changes nothing
    for target in ("stepfunctions", "sagemaker"):
        code, rows, err = _deploy(url, slim, target)
        assert code == 0 and not _changes(rows), rows


def test_lambda_permission_of_a_removed_rule_is_removed(moto_server, tmp_path):
    """The SageMaker starter function stays while only its permission's rule goes (a stale
    statement on a kept function)."""
    url = moto_server
    reset(url)
    assert _deploy(url, ABALONE, "sagemaker")[0] == 0
    lam = _client(url, "lambda")
    lam.add_permission(FunctionName=PREFIX + "trigger", StatementId=PREFIX + "old-rule-invoke",
                       Action="lambda:InvokeFunction", Principal="events.amazonaws.com",
                       SourceArn="arn:aws:events:us-east-1:123456789012:rule/" + PREFIX + "old-rule")
    lam.add_permission(FunctionName=PREFIX + "trigger", StatementId="someone-elses",
                       Action="lambda:InvokeFunction", Principal="events.amazonaws.com")
    code, rows, err = _deploy(url, ABALONE, "sagemaker")
    assert code == 0, err
    assert _changes(rows) == {("lambda permission", f"{PREFIX}trigger/{PREFIX}old-rule", "deleted")}
    sids = {s["Sid"] for s in json.loads(lam.get_policy(FunctionName=PREFIX + "trigger")["Policy"])["Statement"]}
    assert sids == {PREFIX + "sagemaker-new-data-invoke", "someone-elses"}


class _RacingClient:
    """A client whose every create is preceded by the same create from "another deploy", so
    this deploy always loses the race (AlreadyExists / ResourceConflict / Conflict)."""

    def __init__(self, real, rival):
        self._real, self._rival = real, rival
        self.raced: list[str] = []

    def __getattr__(self, name):
        attr = getattr(self._real, name)
        if not (name.startswith("create_") or name == "add_permission") or name == "create_bucket":
            return attr

        def raced(**kwargs):
            try:
                getattr(self._rival, name)(**kwargs)
                self.raced.append(name)
            except Exception:
                pass
            return attr(**kwargs)
        return raced


def test_a_deploy_that_loses_every_create_race_converges(moto_server, capsys):
    from workflows.cli import deploy as deploy_cli

    url = moto_server
    reset(url)
    clients: dict[str, _RacingClient] = {}

    def factory(service):
        if service not in clients:
            clients[service] = _RacingClient(_client(url, service), _client(url, service))
        return clients[service]

    args = argparse.Namespace(endpoint_url=url, region="us-east-1", profile=None, config=ABALONE,
                              target="sagemaker", dry_run=False, output="json", assets_only=False)
    capsys.readouterr()
    assert deploy_cli.main(args, clients=factory) == 0
    rows = json.loads(capsys.readouterr().out)
    raced = {name for c in clients.values() for name in c.raced}
    assert {"create_role", "create_function", "create_schedule", "add_permission", "create_pipeline"} <= raced
    assert all(r["action"] in ("created", "updated", "unchanged") for r in rows), rows
    state = _state(url)
    assert len(state["pipelines"]) == 1 and len(state["schedules"]) == 1 and len(state["queues"]) == 1
    code, again, err = _deploy(url, ABALONE, "sagemaker")
    assert code == 0 and not _changes(again), again


def test_two_deploys_at_once_converge(moto_versions):
    url = moto_versions  # reset; the loser of the state-machine race publishes the winner's version
    # Everything races, the code assets included (the server makes each call atomic, as AWS does).
    cmd = [sys.executable, "-m", "workflows.cli", "--endpoint-url", url, "deploy", "--config", ABALONE,
           "--target", "stepfunctions", "-o", "json"]
    procs = [subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    results = [p.communicate(timeout=300) + (p.returncode,) for p in procs]
    for out, err, code in results:
        assert code == 0 and "Traceback" not in err, err
    state = _state(url)
    assert state["state_machines"] == {"mlpipe-abalone"}
    assert state["schedules"] == {PREFIX + "stepfunctions-retrain"}
    assert state["functions"] == {PREFIX + "record-model"}
    assert len(state["queues"]) == 1 and state["emails"] == {"ml-ops@example.com"}
    assert len(_client(url, "sns").list_topics()["Topics"]) == 1
    code, again, err = _deploy(url, ABALONE, "stepfunctions")
    assert code == 0 and not _changes(again), again


def test_race_retries_are_bounded_and_clear(monkeypatch):
    from botocore.exceptions import ClientError

    from config.errors import UserError
    from workflows.infra import plan
    from workflows.infra.resources import Resource

    calls = []

    def always_busy(d, r, apply):
        calls.append(1)
        raise ClientError({"Error": {"Code": "ResourceConflictException", "Message": "update in progress"}},
                          "UpdateFunctionCode")
    monkeypatch.setitem(plan.APPLY, "lambda function", always_busy)
    step = plan.Step(Resource("lambda function", "f"))
    with pytest.raises(UserError) as err:
        plan.apply_step(None, step, True, sleep=lambda s: None)
    assert len(calls) == plan.RACE_ATTEMPTS
    assert "kept changing" in err.value.message and "another `mlpipe deploy`" in err.value.fix


# === 3. one message, exit 2 ====================================================================

def test_unknown_region_for_ops_commands(moto_server):
    for argv in (["status"], ["list"], ["schedule", "show"]):
        proc = run_cli("--region", "us-east-7", *argv, "--config", ABALONE)
        assert_user_error(proc, "'us-east-7' is not an AWS region", "us-east-1")
    proc = run_cli("--endpoint-url", moto_server, "status", "--config", ABALONE, "--region", "us-east-7")
    assert_user_error(proc, "'us-east-7' is not an AWS region")


class _NotAws(http.server.BaseHTTPRequestHandler):
    body = b"<!DOCTYPE html><html><body>Welcome to nginx!</body></html>"
    status = 200

    def _answer(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(self.status)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    do_GET = do_POST = do_PUT = do_HEAD = _answer

    def log_message(self, *args):
        pass


@pytest.fixture
def not_aws():
    """An HTTP server on 127.0.0.1 that answers everything, but not as AWS does."""
    servers = []

    def start(body: bytes, status: int = 200) -> str:
        handler = type("H", (_NotAws,), {"body": body, "status": status})
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"
    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("body, status", [(_NotAws.body, 200), (_NotAws.body, 404), (b"hello", 200)],
                         ids=["html-200", "html-404", "text-200"])
def test_an_endpoint_that_is_not_aws(moto_server, not_aws, body, status):
    url = not_aws(body, status)
    proc = run_cli("--endpoint-url", url, "status", "--config", ABALONE)
    assert_user_error(proc, "but not as AWS does", "--endpoint-url")
    assert proc.stdout == ""


def test_an_endpoint_that_is_not_aws_for_deploy(moto_server, not_aws):
    """Deploy starts with sts:GetCallerIdentity (an XML API): a page it cannot parse."""
    for body in (b"hello", _NotAws.body):
        assert_user_error(_main("--endpoint-url", not_aws(body), "deploy", "--config", ABALONE, "--dry-run"),
                          "not as AWS does", "--endpoint-url")


def test_start_with_a_reused_name(state_machine):
    common = ["--endpoint-url", state_machine, "start", "--config", ABALONE, "--name", "nightly-1", "-o", "json"]
    first = run_cli(*common, "--param", "TrainingInstanceCount=2")
    assert first.returncode == 0, first.stderr
    same = run_cli(*common, "--param", "TrainingInstanceCount=2")
    assert same.returncode == 0 and json.loads(same.stdout)["arn"] == json.loads(first.stdout)["arn"]
    other = run_cli(*common, "--param", "TrainingInstanceCount=3")
    assert_user_error(other, "'nightly-1'", "already exists", "other parameters", "--name")


def test_sdk_logging_stays_off_stdout_and_off_stderr_unless_verbose(state_machine):
    # a library that sent every log record to stdout, at DEBUG
    code = ("import logging, sys\n"
            "logging.basicConfig(stream=sys.stdout, level=logging.DEBUG)\n"
            "from workflows.cli.main import main\n"
            "sys.exit(main(sys.argv[1:]))\n")
    argv = ["--endpoint-url", state_machine, "list", "--config", ABALONE, "-o", "json"]
    for verbose in (False, True):
        proc = subprocess.run([sys.executable, "-c", code, *(["--verbose"] if verbose else []), *argv],
                              capture_output=True, text=True, cwd=ROOT, timeout=120)
        assert proc.returncode == 0, proc.stderr
        assert json.loads(proc.stdout) == [], "stdout holds the result only"
        assert ("botocore" in proc.stderr) is verbose, proc.stderr[-2000:]
    after = run_cli("--endpoint-url", state_machine, "list", "--config", ABALONE, "--verbose", "-o", "json")
    assert after.returncode == 0 and json.loads(after.stdout) == [] and "botocore" in after.stderr
