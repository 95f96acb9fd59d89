"""Faults in local runs, for real: signals and SIGKILL in the middle of a stage (no process may
outlive the run by more than 2 s, counted from the signal), a tampered cache, cache and output
modes under a restrictive umask, a crash right after (or in the middle of) a side effect,
concurrent approve/reject, damaged records, a full disk, a failing endpoint, huge error texts
and a huge single-line CSV (refused under a memory limit). Concurrent runs in one runs directory are in
test_concurrent_runs.py; the helpers shared with it are in local_runs.py.

Every run is the real `mlpipe` CLI. Where the process itself is under test (signals, kills,
races between processes, injected faults) it runs in a subprocess; elsewhere in this process
(conftest.run_cli), which is the same code with a warm fork server. Faults that need code to
misbehave are injected through a ``sitecustomize`` module on PYTHONPATH, selected by
MLPIPE_TEST_FAULT.
"""

from __future__ import annotations

import json
import os
import re
import signal
import stat
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from conftest import run_cli
from local_runs import (  # noqa: F401  (faults_dir and shared are fixtures)
    EVALUATE, config_with, faults_dir, listed, marked_processes, mlpipe, new_runs, record, registry_versions, run,
    run_bounded, run_env, shared, slow_config, start, statuses, tree_digest, wait_for,
)


# --- signals and SIGKILL in the middle of a stage ------------------------------------------------

@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM, signal.SIGINT, signal.SIGHUP],
                         ids=lambda s: signal.Signals(s).name)
def test_signal_mid_stage_leaves_no_process_and_resume_completes(shared, tmp_path, sig):
    _, runs, _ = shared
    config, flag, started = slow_config(tmp_path)
    marker = uuid.uuid4().hex
    known = set(new_runs(runs, set()))
    proc = start(tmp_path, runs, "--config", str(config), env=run_env(marker))
    try:
        wait_for(lambda: started.exists() or proc.poll() is not None, 240, "the evaluation stage to start")
        assert proc.poll() is None, proc.out.read_text()
        time.sleep(0.2)
        before = marked_processes(marker)
        # the owner, the fork server, the stage process and the stage's own child
        assert len(before) >= 4, before
        # The 2 s count from the signal: by then the owner has exited and nothing of the run is
        # left. Polled until then; a state counts at the end of the scan that saw it.
        name = signal.Signals(sig).name
        t0 = time.monotonic()
        proc.send_signal(sig)
        while True:
            code, left = proc.poll(), marked_processes(marker)
            seen = time.monotonic() - t0
            if (code is None or left) and seen <= 2.0:
                time.sleep(0.02)
                continue
            break
        print(f"{name}: the owner and every process of the run gone {seen:.2f} s after the signal")
        assert code is not None, f"the owner still runs {seen:.2f} s after {name}"
        assert not left, f"processes still there {seen:.2f} s after {name}: {left}"
        assert seen <= 2.0, f"the run took {seen:.2f} s to go after {name}"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for line in marked_processes(marker):
            os.kill(int(line.split()[0]), signal.SIGKILL)
    if sig == signal.SIGKILL:
        assert code == -signal.SIGKILL
    else:
        assert code == 128 + sig, code
    [run_id] = new_runs(runs, known)
    assert listed(tmp_path, runs)[run_id] == "Interrupted"
    doc = record(runs, run_id)
    if sig != signal.SIGKILL:  # the owner wrote it itself
        assert doc["status"] == "Interrupted" and doc["signal_number"] == sig
        assert statuses(doc)["evaluate"] == "Interrupted"
        assert statuses(doc)["deploy"] == "Pending"
    flag.write_text("")
    resumed = mlpipe(tmp_path, "run", "--runs-dir", str(runs), "--output", "json", "--resume", run_id)
    assert resumed.returncode == 0, resumed.stderr
    after = json.loads(resumed.stdout)
    assert after["run_id"] == run_id and after["status"] == "Succeeded"
    assert len(registry_versions(runs, run_id)) == 1


# --- runs in one process -------------------------------------------------------------------------

def test_runs_in_one_process_share_the_warm_server_and_see_the_environment_of_their_time(tmp_path):
    """A second run in the same process reuses the fork server (no imports again), yet each
    stage gets the environment of its own run, not the one the server was started with."""
    from workflows.local import worker

    seen = tmp_path / "seen"
    config = config_with(tmp_path, "env_probe", (
        "import os, runpy\n"
        f"open({str(seen)!r}, 'a').write(os.environ.get('MLPIPE_PROBE', '-') + '\\n')\n"
        f"runpy.run_path({str(EVALUATE)!r}, run_name='__main__')\n"))
    servers = []
    for value in ("first", "second"):
        proc = run_cli("run", "--runs-dir", str(tmp_path / "runs"), "--config", str(config), "--no-cache",
                       env={"MLPIPE_PROBE": value}, cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        servers.append(worker._server.proc.pid)
    assert seen.read_text().split() == ["first", "second"]
    assert servers[0] == servers[1] and worker._server.alive()


# --- the cache -----------------------------------------------------------------------------------

def test_tampered_cache_entry_is_detected_and_recomputed(tmp_path):
    runs = tmp_path / "runs"
    proc, first = run(tmp_path, runs)
    assert proc.returncode == 0, proc.stderr
    first_dir = Path(first["run_dir"])
    before = tree_digest(first_dir / "stages")
    key = record(runs, first["run_id"])["stages"]["train"]["cache_key"]
    cached_model = runs / ".cache" / key / "tree/outputs/model/model.tar.gz"
    assert cached_model.is_file()
    cached_model.write_bytes(b"not the model any more")
    assert tree_digest(first_dir / "stages") == before, "the cache shares no inodes with the run"

    proc, second = run(tmp_path, runs)
    assert proc.returncode == 0, proc.stderr
    status = statuses(second)
    assert status["preprocess"] == "Cached" and status["train"] == "Succeeded", status
    doc = record(runs, second["run_id"])
    assert any("failed verification" in w for w in doc["stages"]["train"]["warnings"])
    assert "failed verification" in (Path(second["run_dir"]) / "stages/train/log.txt").read_text()
    assert "failed verification" in proc.stderr
    model = "stages/train/outputs/model/model.tar.gz"
    assert (Path(second["run_dir"]) / model).read_bytes() == (first_dir / model).read_bytes()
    assert second["metrics"] == first["metrics"]
    assert tree_digest(first_dir / "stages") == before, "the finished run's artifacts are unchanged"
    manifest = json.loads((runs / ".cache" / key / "manifest.json").read_text())
    assert manifest["source"] == second["run_id"], "the bad entry was replaced by the recomputed one"

    proc, third = run(tmp_path, runs)
    assert proc.returncode == 0 and statuses(third)["train"] == "Cached"
    (Path(third["run_dir"]) / model).write_bytes(b"a later write to the run")  # no hard link to the cache
    proc, fourth = run(tmp_path, runs)
    assert proc.returncode == 0 and statuses(fourth)["train"] == "Cached"
    assert "failed verification" not in proc.stderr
    assert (Path(fourth["run_dir"]) / model).read_bytes() == (first_dir / model).read_bytes()


def test_gate_threshold_and_no_cache_apply_on_resume(shared, tmp_path):
    cwd, runs, _ = shared
    proc, failed = run(tmp_path, runs, "--gate-threshold", "1.0")
    assert proc.returncode == 1 and statuses(failed)["evaluate-gate"] == "Failed"
    assert statuses(failed)["batch-score"] == "Skipped"
    proc = mlpipe(tmp_path, "run", "--runs-dir", str(runs), "--output", "json", "--resume", failed["run_id"],
                  "--gate-threshold", "65", "--no-cache")
    assert proc.returncode == 0, proc.stderr
    resumed = json.loads(proc.stdout)
    assert resumed["status"] == "Succeeded"
    assert statuses(resumed)["batch-score"] == "Succeeded", "--no-cache is honoured on resume"
    doc = record(runs, failed["run_id"])
    assert doc["options"]["gate_threshold"] == 65
    assert doc["stages"]["evaluate-gate"]["outputs"]["threshold"]["value"] == 65
    key = doc["stages"]["batch-score"]["cache_key"]
    manifest = json.loads((runs / ".cache" / key / "manifest.json").read_text())
    assert manifest["source"] == failed["run_id"], "--no-cache refreshed the entry"

    proc, again = run(tmp_path, runs, "--gate-threshold", "1.0")
    assert proc.returncode == 1
    proc = mlpipe(tmp_path, "run", "--runs-dir", str(runs), "--output", "json", "--resume", again["run_id"],
                  "--gate-threshold", "65")
    assert proc.returncode == 0, proc.stderr
    assert statuses(json.loads(proc.stdout))["batch-score"] == "Cached", "without --no-cache the cache is used"
    proc = mlpipe(tmp_path, "run", "--runs-dir", str(runs), "--resume", again["run_id"], "--input", "x.csv")
    assert proc.returncode == 2 and "--input cannot change" in proc.stderr



def _modes(root: Path) -> dict[str, int]:
    """Every directory and file under ``root`` (itself included; symlinks have no mode of their own)."""
    return {str(p): stat.S_IMODE(p.lstat().st_mode) for p in [root, *root.rglob("*")] if not p.is_symlink()}


def test_cache_entries_and_run_outputs_follow_the_umask(tmp_path):
    """Issue 11: file modes follow the umask. A run under umask 027 writes its outputs and its
    cache entries (directories 0750, files 0640 or 0750; the step scripts' own outputs too);
    a run under 077 served from those entries gets copies narrowed to its umask (cp's rule)."""
    runs = tmp_path / "runs"
    proc, first = run(tmp_path, runs, umask=0o027)
    assert proc.returncode == 0, proc.stderr[-3000:]
    entries = [p for p in (runs / ".cache").iterdir() if not p.name.startswith(".")]
    assert entries
    cached = {k: v for entry in entries for k, v in _modes(entry).items()}
    assert {oct(cached[str(e)]) for e in entries} == {"0o750"}, "an entry's directory: 0777 less the umask"
    first_dir = Path(first["run_dir"])
    produced = _modes(first_dir)
    wrong = {k: oct(v) for k, v in {**cached, **produced}.items() if v & 0o027}
    assert not wrong, f"modes the umask 027 takes away: {wrong}"
    train_csv = "stages/preprocess/opt/ml/processing/train/train.csv"  # written by the step script
    assert produced[str(first_dir / train_csv)] == 0o640
    assert cached[str(runs / ".cache" / record(runs, first["run_id"])["stages"]["preprocess"]["cache_key"] /
                      "tree/opt/ml/processing/train/train.csv")] == 0o640

    proc, second = run(tmp_path, runs, umask=0o077)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert statuses(second)["preprocess"] == "Cached" and statuses(second)["train"] == "Cached"
    second_dir = Path(second["run_dir"])
    copied = _modes(second_dir)
    wrong = {k: oct(v) for k, v in copied.items() if v & 0o077}
    assert not wrong, f"modes the umask 077 takes away: {wrong}"
    assert copied[str(second_dir / train_csv)] == 0o600
    assert {k: v for entry in entries for k, v in _modes(entry).items()} == cached, "using an entry leaves it as it was"


# --- crashes right after a side effect -----------------------------------------------------------

@pytest.mark.parametrize("fault", ["crash-after-register-job", "crash-after-rename:register",
                                   "crash-after-rename:deploy"])
def test_crash_after_a_side_effect_then_resume_repeats_nothing(shared, tmp_path, faults_dir, fault):
    _, runs, _ = shared
    known = set(new_runs(runs, set()))
    proc, _ = run(tmp_path, runs, env=run_env(fault=fault, faults_dir=faults_dir))
    assert proc.returncode == -signal.SIGKILL, (proc.returncode, proc.stderr[-2000:])
    [run_id] = new_runs(runs, known)
    assert listed(tmp_path, runs)[run_id] == "Interrupted"
    versions = registry_versions(runs, run_id)
    assert len(versions) == 1
    deploy_log = runs / run_id / "stages/deploy/log.txt"
    deployed = deploy_log.read_text() if fault.endswith("deploy") else None
    proc = mlpipe(tmp_path, "run", "--runs-dir", str(runs), "--output", "json", "--resume", run_id)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["status"] == "Succeeded"
    after = registry_versions(runs, run_id)
    assert [(v["version"], v["created"]) for v in after] == [(v["version"], v["created"]) for v in versions], \
        "one registry version: the one registered before the crash"
    assert after[0]["approval_status"] == "Approved"
    doc = record(runs, run_id)
    if fault == "crash-after-register-job":
        assert "registered by this run already" in (runs / run_id / "stages/register/log.txt").read_text()
    else:
        stage = fault.split(":")[1]
        assert doc["stages"][stage].get("adopted") is True, "the finished stage was not run again"
    if deployed is not None:
        assert deploy_log.read_text() == deployed, "the endpoint was not deployed twice"


SSM_NAME = "/mlpipe/quickstart/model-name"  # what the quick start's record-model Lambda writes


@pytest.mark.parametrize("fault", ["crash-after-rename:record-model", "crash-after-job:record-model",
                                   "crash-after-rename:batch-score", "crash-after-job:batch-score"])
def test_crash_in_or_after_the_lambda_or_the_transform_then_resume_repeats_nothing(shared, tmp_path, faults_dir,
                                                                                  fault):
    """The Lambda stage (an SSM parameter) and the transform (a set of prediction files): a
    SIGKILL right after the stage's directory got its final name (resume adopts it), or right
    after its process finished, before anything was recorded or renamed (resume runs it again,
    into a fresh work directory). Either way: one SSM value, the run's own, one set of
    predictions, and a record that agrees with both."""
    _, runs, first = shared
    point, stage = fault.split(":")
    known = set(new_runs(runs, set()))
    argv = ["--no-cache"] if stage == "batch-score" else []  # the transform really runs (no cache hit)
    proc, _ = run(tmp_path, runs, *argv, env=run_env(fault=fault, faults_dir=faults_dir))
    assert proc.returncode == -signal.SIGKILL, (proc.returncode, proc.stderr[-2000:])
    [run_id] = new_runs(runs, known)
    assert listed(tmp_path, runs)[run_id] == "Interrupted"
    stages_dir = runs / run_id / "stages"
    adopted = point == "crash-after-rename"
    if adopted:
        before = tree_digest(stages_dir / stage)
    else:
        assert not (stages_dir / stage).exists() and (stages_dir / f".{stage}.work").is_dir()

    proc = mlpipe(tmp_path, "run", "--runs-dir", str(runs), "--output", "json", "--resume", run_id)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["status"] == "Succeeded"
    doc = record(runs, run_id)
    assert doc["status"] == "Succeeded" and set(statuses(doc).values()) <= {"Succeeded", "Cached"}, statuses(doc)
    entry = doc["stages"][stage]
    assert bool(entry.get("adopted")) is adopted
    if adopted:
        assert tree_digest(stages_dir / stage) == before, "the finished stage was not run again"
    left = sorted(p.name for p in stages_dir.iterdir() if p.name not in doc["order"])
    assert not left, f"work, failed or replaced directories left behind: {left}"
    assert json.loads((stages_dir / stage / "stage.json").read_text())["outputs"] == entry["outputs"]
    if stage == "record-model":
        model_name = doc["stages"]["create-model"]["outputs"]["model_name"]["value"]
        assert model_name.endswith(run_id.rsplit("-", 1)[-1])
        saved = json.loads((runs / ".emulator/ssm.json").read_text())
        assert saved[SSM_NAME] == model_name, "SSM holds this run's value"
        assert entry["outputs"]["parameter"]["value"] == {"name": SSM_NAME, "value": model_name}
        assert doc.get("ssm") == {SSM_NAME: model_name}, "the record says what SSM holds"
        assert summary["ssm"] == {SSM_NAME: model_name}
    else:
        predictions = stages_dir / "batch-score/outputs/predictions"
        assert sorted(p.name for p in predictions.iterdir()) == ["batch.csv.out"], "one set of outputs"
        rows = (predictions / "batch.csv.out").read_text().splitlines()
        assert len(rows) == entry["outputs"]["rows"]["value"] > 0
        reference = Path(first["run_dir"]) / "stages/batch-score/outputs/predictions/batch.csv.out"
        assert (predictions / "batch.csv.out").read_bytes() == reference.read_bytes()


# --- approvals -----------------------------------------------------------------------------------

def test_concurrent_approve_and_reject_make_exactly_one_decision(shared, tmp_path):
    _, runs, _ = shared
    for _ in range(2):
        proc, doc = run(tmp_path, runs, "--approval", "manual")
        assert proc.returncode == 3, proc.stderr
        run_id = doc["run_id"]
        commands = [["approve", run_id], ["reject", run_id, "--reason", "race"]]
        procs = [subprocess.Popen([sys.executable, "-m", "workflows.cli", *c, "--runs-dir", str(runs)], cwd=tmp_path,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for c in commands]
        results = [(p.wait(timeout=300), p.stderr.read()) for p in procs]
        codes = [c for c, _ in results]
        assert sorted(codes) == [0, 2], results
        loser = results[codes.index(2)][1]
        assert "busy" in loser or "not waiting" in loser, loser
        assert "Traceback" not in loser
        winner = "approved" if codes[0] == 0 else "rejected"
        final = record(runs, run_id)
        [version] = registry_versions(runs, run_id)
        if winner == "approved":
            assert final["status"] == "Succeeded" and version["approval_status"] == "Approved"
            assert statuses(final)["deploy"] == "Succeeded"
        else:
            assert final["status"] == "Rejected" and version["approval_status"] == "Rejected"
            assert statuses(final)["deploy"] == "Skipped"


def test_a_busy_run_refuses_approve_reject_and_resume(shared, tmp_path):
    from workflows.local import store

    _, runs, _ = shared
    proc, doc = run(tmp_path, runs, "--approval", "manual")
    assert proc.returncode == 3
    run_dir = Path(doc["run_dir"])
    with store.RunLock(run_dir, "test holder"):
        for argv in (["approve", doc["run_id"]], ["reject", doc["run_id"], "--reason", "x"],
                     ["run", "--resume", doc["run_id"]]):
            proc = mlpipe(tmp_path, *argv, "--runs-dir", str(runs))
            assert proc.returncode == 2, (argv, proc.stderr)
            assert "busy" in proc.stderr and f"pid {os.getpid()}" in proc.stderr and "Traceback" not in proc.stderr
    assert record(runs, doc["run_id"])["status"] == "Waiting"


def test_the_record_tells_the_truth_about_approvals(shared, tmp_path):
    _, runs, auto = shared
    [version] = registry_versions(runs, auto["run_id"])
    assert version["approval_status"] == "Approved" and "automatically" in version["status_reason"]
    assert record(runs, auto["run_id"])["stages"]["register"]["outputs"]["approval_status"]["value"] == "Approved"

    proc, paused = run(tmp_path, runs, "--approval", "manual")
    assert proc.returncode == 3
    assert record(runs, paused["run_id"])["stages"]["deploy"]["reason"] == "waiting on approve"
    proc = mlpipe(tmp_path, "approve", paused["run_id"], "--runs-dir", str(runs))
    assert proc.returncode == 0, proc.stderr
    deploy = record(runs, paused["run_id"])["stages"]["deploy"]
    assert deploy["status"] == "Succeeded" and "reason" not in deploy
    assert "waiting on approve" not in proc.stdout

    proc, paused = run(tmp_path, runs, "--approval", "manual")
    proc = mlpipe(tmp_path, "reject", paused["run_id"], "--reason", "drift", "--runs-dir", str(runs))
    assert proc.returncode == 0, proc.stderr
    assert record(runs, paused["run_id"])["status"] == "Rejected"
    assert listed(tmp_path, runs)[paused["run_id"]] == "Rejected"
    proc = mlpipe(tmp_path, "run", "--resume", paused["run_id"], "--runs-dir", str(runs))
    assert proc.returncode == 2 and "rejected" in proc.stderr


# --- errors: one message, the right exit code ------------------------------------------------------

def test_damaged_run_record_is_one_message_and_runs_lists_the_others(shared, tmp_path):
    cwd, runs, good = shared
    bad = runs / "quickstart-damaged"
    bad.mkdir(exist_ok=True)
    (bad / "run.json").write_text(json.dumps({"run_id": "quickstart-damaged", "status": "Running"})[:25])
    try:
        proc = mlpipe(tmp_path, "runs", "--runs-dir", str(runs))
        assert proc.returncode == 0, proc.stderr
        assert good["run_id"] in proc.stdout and "Damaged" in proc.stdout and "damaged" in proc.stderr
        for argv in (["lineage", "quickstart-damaged"], ["run", "--resume", "quickstart-damaged"],
                     ["approve", "quickstart-damaged"], ["serve", "quickstart-damaged"]):
            proc = mlpipe(tmp_path, *argv, "--runs-dir", str(runs))
            assert proc.returncode == 2, (argv, proc.stderr)
            assert "is damaged" in proc.stderr and "Traceback" not in proc.stderr, (argv, proc.stderr)
    finally:
        (bad / "run.json").unlink()


def test_serve_refuses_a_bad_port_and_a_file_that_is_not_a_model(shared, tmp_path):
    _, runs, good = shared
    proc = mlpipe(tmp_path, "serve", good["run_id"], "--port", "99999", "--runs-dir", str(runs))
    assert proc.returncode == 2 and "99999" in proc.stderr and "Traceback" not in proc.stderr
    fake = tmp_path / "model.tar.gz"
    fake.write_text("these are not the weights you are looking for\n")
    proc = mlpipe(tmp_path, "serve", str(fake), "--port", "0", "--runs-dir", str(runs))
    assert proc.returncode == 2 and "not a model tarball" in proc.stderr and "Traceback" not in proc.stderr


def test_no_space_left_while_writing_the_run_store(shared, tmp_path, faults_dir):
    _, runs, _ = shared
    known = set(new_runs(runs, set()))
    proc, _ = run(tmp_path, runs, env=run_env(fault="enospc:5:1", faults_dir=faults_dir))
    assert proc.returncode == 1, proc.stderr
    assert "No space left on device" in proc.stderr and "Traceback" not in proc.stderr
    assert "free some disk space" in proc.stderr
    [run_id] = new_runs(runs, known)
    doc = record(runs, run_id)
    assert doc["status"] == "Failed" and "No space left on device" in doc["error"]
    assert listed(tmp_path, runs)[run_id] == "Failed"
    assert f"then `mlpipe run --resume {run_id} --runs-dir {runs}`" in proc.stderr, "a command to paste"


def test_no_space_for_any_record_leaves_no_run_directory_and_suggests_no_resume(shared, tmp_path, faults_dir):
    """At 100 %: every run.json write fails. A run that never got a record leaves nothing behind
    (no directory holding only report.html and run.lock), and its message does not offer a
    --resume that could not work."""
    _, runs, _ = shared
    before = sorted(p.name for p in runs.iterdir())
    proc, _ = run(tmp_path, runs, env=run_env(fault="enospc:1:1000", faults_dir=faults_dir))
    assert proc.returncode == 1, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr and proc.stderr.count("error:") == 1, proc.stderr
    assert "No space left on device" in proc.stderr and "free some disk space" in proc.stderr
    assert "--resume" not in proc.stderr and "RUN_ID" not in proc.stderr, proc.stderr
    [run_id] = re.findall(r"run (\S+) was not recorded, so nothing of it was kept", proc.stderr)
    assert "then run it again" in proc.stderr
    assert not (runs / run_id).exists() and sorted(p.name for p in runs.iterdir()) == before, \
        "no run directory is left behind"
    listing = mlpipe(tmp_path, "runs", "--runs-dir", str(runs))
    assert listing.returncode == 0 and run_id not in listing.stdout + listing.stderr


def test_http_500_from_the_local_endpoint_is_a_stage_failure(shared, tmp_path, faults_dir):
    _, runs, _ = shared
    proc, doc = run(tmp_path, runs, env=run_env(fault="endpoint-500", faults_dir=faults_dir))
    assert proc.returncode == 1, (proc.returncode, proc.stderr)
    assert statuses(doc)["deploy"] == "Failed"
    assert "HTTP 500" in proc.stderr and "simulated model server failure" in proc.stderr


def test_huge_error_texts_are_bounded_with_the_full_log_on_disk(shared, tmp_path):
    _, runs, _ = shared
    config = config_with(tmp_path, "noisy_eval", "import sys\nsys.stderr.write('x' * 300000 + '\\n')\n"
                                                  "sys.stderr.write('the real cause: simulated\\n')\nsys.exit(1)\n")
    proc, doc = run(tmp_path, runs, "--config", str(config))
    assert proc.returncode == 1
    stored = record(runs, doc["run_id"])
    error = stored["stages"]["evaluate"]["error"]
    assert len(error.encode()) < 5000 and "the real cause: simulated" in error and "bytes left out" in error
    assert len(stored["error"].encode()) < 5000
    assert len(proc.stderr.encode()) < 20000, "what is printed is bounded too"
    log = Path(doc["run_dir"]) / stored["stages"]["evaluate"]["log"]
    assert log.stat().st_size > 300000 and str(log) in error


# "Bad input fails fast: a line or field far beyond any sane size is refused early, in bounded
# memory." Measured here with PINNED_THREADS: a normal quick-start run (no cache) maps at most
# ~0.7 GB in any one process (a stage process forked from the warm server) and its largest
# resident set is ~0.2 GB; the 30 MB line, refused, maps ~0.53 GB (the fork server's imports)
# and ~0.19 GB resident. Without the refusal (MLPIPE_MAX_LINE_BYTES raised) pandas parsing that
# line dies of MemoryError under this limit (~0.74 GB resident before it does); before issue 11
# it took 6 GB.
ADDRESS_SPACE = 1 << 30   # RLIMIT_AS of every process of the run
RESIDENT = 400 << 20      # the largest resident set any process of the run may reach


def _one_line_csv(path: Path) -> Path:
    with open(path, "w") as f:
        for _ in range(30):
            f.write("1.5," * 250000)  # 30 MB, no newline
    return path


def test_a_normal_run_fits_the_memory_bound(tmp_path):
    """The bound below is a bound on the refusal, not on what any run needs: a whole quick-start
    run, every stage computed, completes under it."""
    proc, doc, rss = run_bounded(tmp_path, tmp_path / "runs", "--no-cache", address_space=ADDRESS_SPACE)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert doc["status"] == "Succeeded"
    assert rss < RESIDENT, f"a normal run's largest process: {rss >> 20} MB resident"


def test_single_line_csv_of_tens_of_mb_is_refused_early_in_bounded_memory(shared, tmp_path):
    """A subprocess whose every process is limited to ADDRESS_SPACE (an attempt to parse the
    line would raise MemoryError: a traceback, exit 1), and whose largest resident set is read
    back: exit 2, one message, the run recorded Failed."""
    _, runs, _ = shared
    big = _one_line_csv(tmp_path / "one-line.csv")
    t0 = time.monotonic()
    proc, doc, rss = run_bounded(tmp_path, runs, "--input", str(big), "--target", "0", address_space=ADDRESS_SPACE)
    elapsed = time.monotonic() - t0
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-3000:])
    assert "a line longer than" in proc.stderr and "Traceback" not in proc.stderr
    assert "MemoryError" not in proc.stderr and proc.stderr.count("error:") == 1, proc.stderr[-3000:]
    assert elapsed < 90
    assert rss < RESIDENT, f"{rss >> 20} MB resident for a refusal"
    assert doc["status"] == "Failed" and statuses(doc)["preprocess"] == "Failed"
    assert "a line longer than" in record(runs, doc["run_id"])["error"]


@pytest.mark.parametrize("case", ["missing", "empty"])
def test_failure_before_the_first_stage_marks_the_run_failed(tmp_path, case):
    runs = tmp_path / "runs"
    data = tmp_path / "data.csv"
    if case == "empty":
        data.write_text("")
    proc, _ = run(tmp_path, runs, "--input", str(data), "--target", "y")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert ("does not exist" if case == "missing" else "empty") in proc.stderr
    doc = record(runs)
    assert doc["status"] == "Failed" and ("does not exist" in doc["error"] or "empty" in doc["error"])
    assert listed(tmp_path, runs)[doc["run_id"]] == "Failed"


def test_target_without_input_is_refused(tmp_path):
    proc = mlpipe(tmp_path, "run", "--runs-dir", str(tmp_path / "runs"), "--target", "progression")
    assert proc.returncode == 2 and "--input" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "runs").exists() or not list((tmp_path / "runs").glob("*/run.json"))


def test_long_line_finds_lines_across_chunk_borders(tmp_path):
    from workflows.local.data import long_line

    path = tmp_path / "lines.csv"
    path.write_bytes(b"a" * 1000 + b"\n" + b"b" * 1500 + b"\n" + b"c" * 10)
    assert long_line(path, 2000) is None
    assert long_line(path, 1200) == 2
    path.write_bytes(b"short\n" * 3 + b"d" * 5000)
    assert long_line(path, 1024) == 4


@pytest.mark.parametrize("argv", [["run", "--no-such-option"], ["--region", "eu-west-1", "run", "--resume"]],
                         ids=["bad-option", "missing-value"])
def test_the_cli_leaves_no_fork_server_when_run_is_refused(tmp_path, argv):
    """`mlpipe run` starts its fork server before it parses its arguments (its imports are what
    the first stage waits for); a command line the parser refuses still ends with it gone."""
    marker = uuid.uuid4().hex
    proc = mlpipe(tmp_path, *argv, env=run_env(marker))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert not marked_processes(marker)


def test_only_run_starts_the_fork_server_before_parsing(monkeypatch):
    """Which command lines start it early: `run` wherever the global options put it, not its
    --help, and no other command (an ops command must stay light)."""
    from workflows.cli import main as cli
    from workflows.local import worker

    started = []
    monkeypatch.setattr(worker.Workers, "warm", lambda self: started.append(True))
    cases = {("run",): True, ("--region", "eu-west-1", "run", "--no-cache"): True, ("--profile", "run", "status"): False,
             ("run", "--help"): False, ("run", "-h"): False, ("status", "run"): False, ("--version",): False, (): False}
    for argv, early in cases.items():
        started.clear()
        assert (cli._prestart(list(argv)), bool(started)) == (early, early), argv
