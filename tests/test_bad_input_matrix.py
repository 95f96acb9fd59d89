"""The bad-input matrix of issue 11: every bad thing a user can type or hand over (a flag, a
file, a config, a region, an endpoint) is refused with exit code 2, exactly one ``error:``
message and no traceback, and nothing is half-written: the working directory (outputs, config
files, the run store) is byte-identical afterwards. Where a run is meant to be recorded (its
input is refused once the run exists: "every failure before the first stage marks the run
Failed"), the only change is that run's complete record, saying Failed and why.

The CLI runs in this process (conftest.run_cli), as it does for every fast test. Also here:
the SDKs' logging never reaches a user (build's stdout is its file list only; deploy prints no
botocore INFO line), and the unknown-run hint names the latest run.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable

import boto3
import pytest
import yaml
from conftest import EXAMPLES, run_cli
from moto_server import FAKE_ENV, reset

ABALONE = EXAMPLES / "abalone.yaml"
QUICKSTART = EXAMPLES / "quickstart.yaml"
SM_ARN = "arn:aws:states:us-east-1:123456789012:stateMachine:mlpipe-abalone"
DAMAGED = "quickstart-20260101-000000-damage"
UNKNOWN_REGION = "'us-east-7' is not an AWS region"


# --- the working directory: a run store with one finished run, configs and files ----------------

@dataclass
class Home:
    path: Path
    runs: Path
    good: str      # a finished run
    not_aws: str   # an endpoint that answers, but not as AWS


def _config(path: Path, source: Path, change: Callable[[dict], None]) -> None:
    doc = yaml.safe_load(source.read_text())
    change(doc)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))


class _NotAws(BaseHTTPRequestHandler):
    def _page(self) -> None:
        body = b"<!DOCTYPE html><html><body>Please sign in to the proxy</body></html>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = _page

    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Home:
    path = tmp_path_factory.mktemp("bad-input")
    runs = path / "runs"
    proc = run_cli("run", "--runs-dir", str(runs), "--output", "json", cwd=path)
    assert proc.returncode == 0, proc.stderr
    good = json.loads(proc.stdout)["run_id"]
    (path / "outdir").mkdir()
    (path / "outdir" / "keep.txt").write_text("a file of the user's\n")
    (path / "foreign").mkdir()
    (path / "foreign" / "notes.txt").write_text("my notes\n")
    (path / "foreign" / "src").mkdir()
    (path / "foreign" / "src" / "model.py").write_text("print('mine')\n")
    (path / "existing.txt").write_text("not a directory\n")
    (path / "fake.tar.gz").write_text("these are not the weights you are looking for\n")
    (path / "broken.yaml").write_text("pipeline: [unclosed\n")
    (path / "empty.csv").write_text("")
    with open(path / "one-line.csv", "w") as f:
        for _ in range(30):
            f.write("1.5," * 250000)  # 30 MB, no newline
    _config(path / "region-us-east-7.yaml", ABALONE, lambda d: d["aws"].update(region="us-east-7"))
    _config(path / "no-region.yaml", ABALONE, lambda d: d["aws"].pop("region"))
    damaged = runs / DAMAGED
    damaged.mkdir()
    record = json.loads((runs / good / "run.json").read_text())
    (damaged / "run.json").write_text(json.dumps({**record, "run_id": DAMAGED})[:300])  # truncated
    server = ThreadingHTTPServer(("127.0.0.1", 0), _NotAws)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield Home(path, runs, good, f"http://127.0.0.1:{server.server_address[1]}")
    finally:
        server.shutdown()
        server.server_close()


def tree(root: Path) -> dict[str, str]:
    """Every entry under ``root``: a file's sha256, a link's target, or "dir"."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            rel = p.relative_to(root).as_posix()
            if p.is_symlink():
                out[rel] = "-> " + os.readlink(p)
            elif p.is_dir():
                out[rel] = "dir"
            else:
                out[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


# --- the matrix ----------------------------------------------------------------------------------

@dataclass
class Case:
    argv: list[str]                  # {home}, {runs}, {good}, {abalone}, {moto}, {not_aws} are filled in
    needle: str                      # in the one error message
    env: dict = field(default_factory=dict)
    recorded: bool = False           # a run is recorded Failed (its input was refused once it existed)
    moto: bool = False               # needs the moto server (and is checked there: nothing was started)


RUN = ["run", "--runs-dir", "{runs}"]
CASES = {
    # an unknown but well-formed region: on the command line, in the config, in AWS_REGION
    "region-deploy": Case(["--region", "us-east-7", "deploy", "--config", "{abalone}"], UNKNOWN_REGION, FAKE_ENV),
    "region-deploy-dry-run": Case(["--region", "us-east-7", "deploy", "--config", "{abalone}", "--dry-run"],
                                  UNKNOWN_REGION, FAKE_ENV),
    "region-run": Case(["--region", "us-east-7", *RUN], UNKNOWN_REGION),
    "region-run-s3-input": Case(["--region", "us-east-7", *RUN, "--input", "s3://bucket/data.csv", "--target", "y"],
                                UNKNOWN_REGION),
    "region-ops-status": Case(["--region", "us-east-7", "status", "--config", "{abalone}"], UNKNOWN_REGION, FAKE_ENV),
    "region-ops-list-sagemaker": Case(["list", "--config", "{abalone}", "--target", "sagemaker", "--region",
                                       "us-east-7"], UNKNOWN_REGION, FAKE_ENV),
    "region-in-config-deploy": Case(["deploy", "--config", "{home}/region-us-east-7.yaml"], "'us-east-7' is not an "
                                    "AWS region where SageMaker is available", FAKE_ENV),
    "region-in-config-run": Case([*RUN, "--config", "{home}/region-us-east-7.yaml"], "region-us-east-7.yaml: "
                                 "aws.region: 'us-east-7' is not an AWS region"),
    "region-in-config-ops": Case(["status", "--config", "{home}/region-us-east-7.yaml"], UNKNOWN_REGION, FAKE_ENV),
    "region-in-aws-region-ops": Case(["status", "--config", "{home}/no-region.yaml"], UNKNOWN_REGION,
                                     {**FAKE_ENV, "AWS_REGION": "us-east-7", "AWS_DEFAULT_REGION": "us-east-7"}),
    # an endpoint that answers, but is not AWS
    "endpoint-not-aws": Case(["--endpoint-url", "{not_aws}", "status", "--config", "{abalone}"], "not as AWS does",
                             FAKE_ENV),
    # serve
    "serve-port-99999": Case(["serve", "{good}", "--port", "99999", "--runs-dir", "{runs}"],
                             "--port 99999 is not a TCP port"),
    "serve-not-a-tarball": Case(["serve", "{home}/fake.tar.gz", "--port", "0", "--runs-dir", "{runs}"],
                                "not a model tarball"),
    "serve-unknown-run": Case(["serve", "nope-run", "--runs-dir", "{runs}"], "no local run 'nope-run'"),
    # where output goes
    "graph-out-directory": Case(["graph", "--out", "{home}/outdir"], "is a directory; this writes one file there"),
    "graph-out-missing-parent": Case(["graph", "--out", "{home}/missing/sub/dag.mmd"], "missing/sub does not exist"),
    "export-out-directory": Case(["export", "cloudformation", "--config", "{abalone}", "--out", "{home}/outdir"],
                                 "is a directory"),
    "build-out-proc": Case(["build", "--config", "{abalone}", "--out", "/proc/nope"], "cannot write /proc/nope"),
    "build-out-existing-file": Case(["build", "--config", "{abalone}", "--out", "{home}/existing.txt"],
                                    "exists and is not a directory"),
    "build-out-foreign-files": Case(["build", "--config", "{abalone}", "--out", "{home}/foreign"],
                                    "2 file(s) that mlpipe did not write"),
    "build-out-project-dir": Case(["build", "--config", "{abalone}", "--out", "{home}"], "that mlpipe did not write"),
    # configs
    "config-missing": Case(["build", "--config", "{home}/nope.yaml", "--out", "{home}/new-out"], "file not found"),
    "config-malformed-yaml": Case(["build", "--config", "{home}/broken.yaml", "--out", "{home}/new-out"],
                                  "broken.yaml: invalid YAML"),
    # a truncated run.json
    "damaged-lineage": Case(["lineage", DAMAGED, "--runs-dir", "{runs}"], "is damaged"),
    "damaged-resume": Case([*RUN, "--resume", DAMAGED], "is damaged"),
    "damaged-approve": Case(["approve", DAMAGED, "--runs-dir", "{runs}"], "is damaged"),
    "damaged-reject": Case(["reject", DAMAGED, "--reason", "x", "--runs-dir", "{runs}"], "is damaged"),
    "damaged-serve": Case(["serve", DAMAGED, "--port", "0", "--runs-dir", "{runs}"], "is damaged"),
    "damaged-runs-show": Case(["runs", "show", DAMAGED, "--runs-dir", "{runs}", "--out", "{home}/run.html"],
                              "is damaged"),
    # local runs: options
    "target-without-input": Case([*RUN, "--target", "progression"], "it needs --input PATH"),
    "param-bad-integer": Case([*RUN, "--param", "TrainingInstanceCount=two"], "give an Integer value"),
    "param-not-allowed": Case([*RUN, "--param", "ModelApprovalStatus=Maybe"], "give one of PendingManualApproval"),
    "param-unknown": Case([*RUN, "--param", "NoSuchParam=1"], "unknown parameter 'NoSuchParam'"),
    "param-not-name-value": Case([*RUN, "--param", "novalue"], "is not NAME=VALUE"),
    "gate-threshold-not-a-number": Case([*RUN, "--gate-threshold", "high"], "invalid float value: 'high'"),
    "resume-unknown-run": Case([*RUN, "--resume", "nope-run"], "no local run 'nope-run'"),
    "resume-changes-input": Case([*RUN, "--resume", "{good}", "--input", "x.csv"], "--input cannot change"),
    "approve-finished-run": Case(["approve", "{good}", "--runs-dir", "{runs}"], "not waiting"),
    "reject-finished-run": Case(["reject", "{good}", "--reason", "x", "--runs-dir", "{runs}"], "not waiting"),
    "runs-show-without-run": Case(["runs", "show", "--runs-dir", "{runs}"], "runs show needs a RUN"),
    "models-approve-without-version": Case(["models", "approve", "--runs-dir", "{runs}"], "needs a VERSION"),
    # local runs: data, refused once the run exists (recorded Failed with the reason)
    "input-missing": Case([*RUN, "--input", "{home}/nope.csv", "--target", "y"], "does not exist", recorded=True),
    "input-empty": Case([*RUN, "--input", "{home}/empty.csv", "--target", "y"], "is empty", recorded=True),
    "input-30mb-single-line": Case([*RUN, "--input", "{home}/one-line.csv", "--target", "0"], "a line longer than",
                                   recorded=True),
    # operations
    "start-param-bad-integer": Case(["start", "--config", "{abalone}", "--param", "TrainingInstanceCount=two"],
                                    "give an Integer value", FAKE_ENV),
    "start-name-reused-other-params": Case(["--endpoint-url", "{moto}", "start", "--config", "{abalone}", "--name",
                                           "nightly-1", "--param", "TrainingInstanceCount=3"],
                                          "'nightly-1' of mlpipe-abalone already exists, started with other "
                                          "parameters", moto=True),
}


def _fill(argv: list[str], values: dict[str, str]) -> list[str]:
    return [a.format(**values) for a in argv]


def _executions(url: str) -> list[dict]:
    sfn = boto3.client("stepfunctions", endpoint_url=url, region_name="us-east-1")
    return [{k: e[k] for k in ("name", "status")} for e in sfn.list_executions(stateMachineArn=SM_ARN)["executions"]]


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_is_one_error_exit_2_and_nothing_half_written(home, request, name):
    case = CASES[name]
    values = {"home": str(home.path), "runs": str(home.runs), "good": home.good, "abalone": str(ABALONE),
              "not_aws": home.not_aws, "moto": ""}
    if case.moto:
        url = request.getfixturevalue("moto_server")
        reset(url)
        boto3.client("stepfunctions", endpoint_url=url, region_name="us-east-1").create_state_machine(
            name="mlpipe-abalone", roleArn="arn:aws:iam::123456789012:role/x",
            definition=json.dumps({"StartAt": "a", "States": {"a": {"Type": "Pass", "End": True}}}))
        values["moto"] = url
        first = run_cli("--endpoint-url", url, "start", "--config", str(ABALONE), "--name", "nightly-1",
                        "--param", "TrainingInstanceCount=2")
        assert first.returncode == 0, first.stderr
        started = _executions(url)
    before = tree(home.path)

    proc = run_cli(*_fill(case.argv, values), env=case.env, cwd=home.path)

    output = proc.stdout + proc.stderr
    assert proc.returncode == 2, (proc.returncode, output[-3000:])
    assert "Traceback" not in output, output[-3000:]
    errors = re.findall(r"(?m)^(?:mlpipe[\w -]*: )?error: ", proc.stderr)
    assert len(errors) == 1 and output.count("error:") == 1, f"one error message, not:\n{proc.stderr}"
    assert case.needle in proc.stderr, proc.stderr
    after = tree(home.path)
    if case.moto:
        assert _executions(values["moto"]) == started, "nothing was started"
    if not case.recorded:
        assert after == before, f"changed: {sorted(set(after.items()) ^ set(before.items()))[:10]}"
        return
    # The run was recorded: everything else is byte-identical; the new run directory holds a
    # complete record, Failed with the reason, and its failed stage's log; nothing else.
    assert {k: v for k, v in after.items() if k in before} == before, "what was there is unchanged"
    new = sorted(k for k in after if k not in before)
    run_ids = {Path(k).parts[1] for k in new}
    assert len(run_ids) == 1 and all(Path(k).parts[0] == "runs" for k in new), new
    [run_id] = run_ids
    assert not [k for k in new if any(part.startswith(".") for part in Path(k).parts)], f"temp files: {new}"
    record = json.loads((home.runs / run_id / "run.json").read_text())
    assert record["status"] == "Failed" and case.needle in record["error"], record.get("error")
    assert record["stages"]["preprocess"]["status"] == "Failed"
    listed = json.loads(run_cli("runs", "--runs-dir", str(home.runs), "--output", "json").stdout)
    assert [r["status"] for r in listed if r["run_id"] == run_id] == ["Failed"]


# --- wording ---------------------------------------------------------------------------------------

def test_the_unknown_run_hint_names_the_latest_run(tmp_path):
    runs = tmp_path / "runs"
    for n, run_id in enumerate(["quickstart-older", "quickstart-newest", "quickstart-middle"]):
        (runs / run_id).mkdir(parents=True)
        (runs / run_id / "run.json").write_text("{}")
        os.utime(runs / run_id / "run.json", (1_700_000_000 + 100 * [0, 2, 1][n],) * 2)
    for argv in (["lineage", "nope"], ["run", "--resume", "nope"], ["serve", "nope"], ["approve", "nope", "--local"]):
        proc = run_cli(*argv, "--runs-dir", str(runs), cwd=tmp_path)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, (argv, proc.stderr)
        assert "(latest: quickstart-newest)" in proc.stderr, (argv, proc.stderr)
        assert "run.json" not in proc.stderr.split("fix:")[1], proc.stderr


def test_the_unknown_run_hint_without_runs_names_none(tmp_path):
    proc = run_cli("lineage", "nope", "--runs-dir", str(tmp_path / "runs"), cwd=tmp_path)
    assert proc.returncode == 2 and "no local run 'nope'" in proc.stderr and "latest" not in proc.stderr


# --- the SDKs' logging ---------------------------------------------------------------------------------

def test_build_stdout_is_the_file_list_only(tmp_path):
    """A fresh process: sagemaker configures its loggers once per process (its config INFO lines)."""
    out = tmp_path / "build"
    proc = run_cli("build", "--config", str(ABALONE), "--out", str(out), fresh=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "sagemaker.config INFO" not in proc.stdout + proc.stderr
    assert not re.search(r"\b(INFO|DEBUG|WARNING)\b", proc.stdout + proc.stderr), proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert lines and all((tmp_path / line).is_file() or Path(line).is_file() for line in lines), proc.stdout
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert sorted(Path(line).relative_to(out).as_posix() for line in lines) == \
        [w for w in written if w != ".mlpipe-build.json"]


def test_deploy_prints_no_sdk_log_lines(moto_versions, tmp_path):
    proc = run_cli("--endpoint-url", moto_versions, "deploy", "--config", str(ABALONE), fresh=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = proc.stdout + proc.stderr
    assert "state machine" in proc.stdout and "created" in proc.stdout
    assert not re.search(r"\b(INFO|DEBUG)\b", text), text[-3000:]
    assert "botocore" not in text and "Found credentials" not in text, text[-3000:]
