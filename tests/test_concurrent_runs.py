"""Concurrent local runs in one runs directory: rounds of two `mlpipe run` processes racing
over one cache and one registry (issue 11: "10 rounds of two concurrent runs in one directory
all succeed"). Its own module, so that `-n 2 --dist loadfile` can give it a worker of its own.
"""

from __future__ import annotations

import json
import uuid

from local_runs import marked_processes, record, registry_versions, run_env, start, statuses

ROUNDS = 10  # each round races two runs (two processes) over one cache and one registry


def test_rounds_of_two_concurrent_runs_all_succeed_and_leave_no_process_behind(tmp_path):
    runs = tmp_path / "runs"
    run_ids: list[str] = []
    for round_number in range(ROUNDS):
        marker = uuid.uuid4().hex
        procs = [start(tmp_path, runs, env=run_env(marker)) for _ in range(2)]
        for p in procs:
            assert p.wait(timeout=300) == 0, (round_number, p.out.read_text()[-3000:])
        assert not marked_processes(marker), f"round {round_number}: a fork server, a stage or an emulator " \
                                             "outlived its run"
        new = [p.parent.name for p in runs.glob("*/run.json") if p.parent.name not in run_ids]
        assert len(new) == 2, (round_number, new)
        run_ids += new
        for run_id in new:
            doc = record(runs, run_id)
            assert doc["status"] == "Succeeded", (round_number, run_id, statuses(doc))
            assert len(registry_versions(runs, run_id)) == 1, (round_number, run_id)
        versions = json.loads((runs / "registry/mlpipe-quickstart.json").read_text())["versions"]
        assert sorted(v["version"] for v in versions) == list(range(1, len(run_ids) + 1)), \
            f"round {round_number}: registry versions are unique and consecutive"
        temps = [p.name for p in (runs / ".cache").iterdir() if p.name.startswith(".")]
        assert not temps, f"round {round_number}: temp cache entries left: {temps}"
    assert len(run_ids) == 2 * ROUNDS
