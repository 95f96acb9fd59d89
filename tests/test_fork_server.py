"""The warm fork server (workflows/local/worker.py, forkserver.py): what it imports before
which job, observed from the jobs themselves, with preloads that take a known time."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from conftest import ROOT
from workflows.local.envs import Interpreter
from workflows.local.worker import LATER, Job, Workers, _server_for

PROBE = '''
import gc, json, sys, time


def record(out, sleep=0.0):
    """What this job's process holds when it starts (then it sleeps ``sleep`` seconds)."""
    with open(out, "w") as f:
        json.dump({"at": time.time(), "loaded": sorted(m for m in ("slow_a", "slow_b", "slow_later") if m in sys.modules),
                   "collects": gc.isenabled(), "frozen": gc.get_freeze_count()}, f)
    time.sleep(sleep)
'''


def _server(tmp_path, preload):
    for name in ("slow_a", "slow_b", "slow_later"):  # each says whether the collector ran while it loaded
        (tmp_path / f"{name}.py").write_text(
            f"import gc, time\nopen({str(tmp_path / (name + '.gc'))!r}, 'w').write(str(gc.isenabled()))\n"
            "time.sleep(0.6)\n")
    (tmp_path / "probe.py").write_text(PROBE)
    it = Interpreter(python=sys.executable, path=(str(tmp_path), str(ROOT), *sys.path), preload=tuple(preload))
    return it, _server_for(it)


def _job(tmp_path, name, early=False, sleep=0.0):
    return Job(cwd=str(tmp_path), log=str(tmp_path / f"{name}.log"), call="probe:record",
               kwargs={"out": str(tmp_path / f"{name}.json"), "sleep": sleep}, early=early)


def test_an_early_job_is_forked_among_the_first_imports_and_a_stage_job_after_them(tmp_path):
    """A service marked ``early`` (the emulator needs none of the preloads) starts while the
    server still imports; a stage job sent at the same time waits for every import before
    LATER, and none after it."""
    it, server = _server(tmp_path, ["slow_a", "slow_b", LATER, "slow_later"])
    try:
        sent = time.time()
        early = server.submit(_job(tmp_path, "early", early=True))
        stage = server.submit(_job(tmp_path, "stage"))
        assert early.done.wait(30) and stage.done.wait(30)
        assert (early.code, stage.code) == (0, 0), [p.read_text() for p in tmp_path.glob("*.log")]
        early_seen = json.loads((tmp_path / "early.json").read_text())
        stage_seen = json.loads((tmp_path / "stage.json").read_text())
        assert early_seen["loaded"] in ([], ["slow_a"]), early_seen  # between two imports, not after both
        assert early_seen["at"] - sent < 1.1
        assert stage_seen["loaded"] == ["slow_a", "slow_b"], stage_seen
        assert stage_seen["at"] - sent >= 1.2
    finally:
        server.stop()


def test_a_job_waits_on_one_later_import_at_most(tmp_path):
    """Between jobs the server imports what follows LATER one module per turn: a job sent while
    it imports starts when that one import ends, not after all of them."""
    it, server = _server(tmp_path, ["slow_a", LATER, "slow_b", "slow_later"])
    try:
        first = server.submit(_job(tmp_path, "first", sleep=1.0))  # slow_b's import starts beside it
        assert first.started.wait(30)
        time.sleep(0.2)  # slow_b is being imported now; slow_later is still to come
        sent = time.time()
        code, _ = Workers().run(_job(tmp_path, "second"), interpreter=it)
        assert code == 0
        seen = json.loads((tmp_path / "second.json").read_text())
        assert seen["loaded"] == ["slow_a", "slow_b"], seen
        assert seen["at"] - sent < 0.6
        assert first.done.wait(30) and first.code == 0
    finally:
        server.stop()


def test_the_server_imports_without_the_collector_and_its_stages_collect(tmp_path):
    """The preloads run with the garbage collector off (a full collection among the imports'
    objects cost a tenth of their time); once they are done, what they made is frozen, so no
    collection scans it again, and every job's process collects as any process does, with what
    it inherited frozen (even when forked among the imports: else its first collection scans it)."""
    it, server = _server(tmp_path, ["slow_a", LATER, "slow_later"])
    try:
        early = server.submit(_job(tmp_path, "early", early=True))  # forked while slow_a loads
        assert early.done.wait(30) and early.code == 0
        time.sleep(1.5)  # slow_a, then slow_later: the preloads are done
        code, _ = Workers().run(_job(tmp_path, "last"), interpreter=it)
        assert code == 0
        seen = {name: json.loads((tmp_path / f"{name}.json").read_text()) for name in ("early", "last")}
        assert [(tmp_path / f"{m}.gc").read_text() for m in ("slow_a", "slow_later")] == ["False", "False"]
        assert seen["early"]["collects"] and seen["early"]["frozen"] > 1000, seen
        assert seen["last"]["loaded"] == ["slow_a", "slow_later"], seen
        assert seen["last"]["collects"] and seen["last"]["frozen"] > 1000, seen
    finally:
        server.stop()


def test_a_job_tells_its_own_exit_code_while_the_server_is_busy(tmp_path):
    """A job's process sends its exit code itself before it exits, so the owner goes on while
    the server is still in an import (or the kernel still tears the process down); the codes are
    those its exit status gives, and a job killed before it could tell is reported by the server."""
    (tmp_path / "ends.py").write_text(
        "import os, signal, sys, time\n"
        "def end(how):\n"
        "    time.sleep(0.2)  # the server is importing slow_b by now\n"
        "    if how == 'kill':\n"
        "        os.kill(os.getpid(), signal.SIGKILL)\n"
        "    sys.exit(how)\n")
    for how, expected in ((0, 0), (3, 3), (300, 300 % 256), ("kill", -9)):
        it, server = _server(tmp_path, ["slow_a", LATER, "slow_b"])
        try:
            # held while slow_a loads, forked when it is done; slow_b's import (0.6 s) starts then
            state = server.submit(Job(cwd=str(tmp_path), log=str(tmp_path / f"{how}.log"), call="ends:end",
                                      kwargs={"how": how}))
            assert state.started.wait(30)
            began = time.perf_counter()
            assert state.done.wait(30)
            took = time.perf_counter() - began
            assert state.code == expected, (how, state.code)
            if how != "kill":  # told by the job at about 0.2 s, not by the server after slow_b
                assert took < 0.45, (how, took)
        finally:
            server.stop()


def test_only_the_job_itself_reports_not_a_copy_it_forked(tmp_path):
    """A job that forks, whose copy returns at once: the owner waits for the job itself and
    gets its exit code, not the copy's."""
    it, server = _server(tmp_path, [])
    (tmp_path / "forks.py").write_text(
        "import os, time\n"
        "def run():\n"
        "    if os.fork() == 0:\n"
        "        return 0  # the copy goes back through the job's code, then exits\n"
        "    time.sleep(0.5)\n"
        "    return 7\n")
    try:
        began = time.perf_counter()
        code, _ = Workers().run(Job(cwd=str(tmp_path), log=str(tmp_path / "forks.log"), call="forks:run"),
                                interpreter=it)
        assert (code, time.perf_counter() - began >= 0.5) == (7, True)
    finally:
        server.stop()


def test_a_dead_server_is_noticed_at_once_whatever_its_jobs_left_running(tmp_path):
    """The server's end of the owner's socket is the server's alone (jobs report on a channel of
    their own), so its death ends the owner's wait at once, even while a job's child sleeps on;
    that child, in the job's process group, is killed."""
    it, server = _server(tmp_path, [])
    pid_file = tmp_path / "grandchild.pid"
    (tmp_path / "sleeper.py").write_text(
        "import os, time\n"
        f"def run():\n"
        "    pid = os.fork()\n"
        "    if pid == 0:\n"
        "        time.sleep(30)\n"
        "        os._exit(0)\n"
        f"    open({str(pid_file)!r}, 'w').write(str(pid))\n"
        "    time.sleep(30)\n")
    try:
        state = server.submit(Job(cwd=str(tmp_path), log=str(tmp_path / "sleeper.log"), call="sleeper:run"))
        assert state.started.wait(30)
        deadline = time.monotonic() + 10
        while not pid_file.is_file() and time.monotonic() < deadline:
            time.sleep(0.02)
        server.proc.kill()
        began = time.perf_counter()
        assert state.done.wait(10)
        assert time.perf_counter() - began < 2.0
        from workflows.local.worker import SERVER_GONE

        assert state.code == SERVER_GONE
        grandchild = int(pid_file.read_text())
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:  # gone, or a zombie its new parent has not reaped yet
                if Path(f"/proc/{grandchild}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                    break
            except (FileNotFoundError, ProcessLookupError):
                break
            time.sleep(0.02)
        else:
            raise AssertionError("the job's child outlived the server")
    finally:
        server.stop()
