"""Concurrent local runs in one runs directory: rounds of two `mlpipe run` processes racing
over one cache and one registry (issue 11: "10 rounds of two concurrent runs in one directory
all succeed"), and processes racing over one cache entry through the cache's own API. Its own
module, so that `-n 2 --dist loadfile` can give it a worker of its own.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import traceback
import uuid
from pathlib import Path

from local_runs import marked_processes, record, registry_versions, run_env, start, statuses

from workflows.local.cache import MANIFEST, TREE, StageCache, difference

ROUNDS = 10  # each round races two runs (two processes) over one cache and one registry


def _entries_verify(cache: Path) -> dict[str, str]:
    """Every cache entry whose tree does not match its manifest: key -> how."""
    bad = {}
    for entry in cache.iterdir():
        if entry.name.startswith("."):
            continue
        problem = difference(json.loads((entry / MANIFEST).read_text())["files"], entry / TREE)
        if problem:
            bad[entry.name[:12]] = problem
    return bad


def test_rounds_of_two_concurrent_runs_all_succeed_and_leave_no_process_behind(tmp_path):
    """Odd rounds pass --no-cache, which refreshes the entries: both processes compute every
    stage and store the same keys at the same moment (the store race: unique temp names,
    renames into place). Even rounds are served from what the previous round left: every entry
    is whole and verifies, so they are cached throughout and no warning is given."""
    runs = tmp_path / "runs"
    run_ids: list[str] = []
    for round_number in range(ROUNDS):
        refresh = round_number % 2 == 1
        marker = uuid.uuid4().hex
        argv = ["--no-cache"] if refresh else []
        procs = [start(tmp_path, runs, *argv, env=run_env(marker)) for _ in range(2)]
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
            assert not doc.get("warnings"), (round_number, run_id, doc["warnings"])
            if refresh:
                assert "Cached" not in statuses(doc).values(), (round_number, statuses(doc))
            elif round_number > 0:
                assert statuses(doc)["preprocess"] == statuses(doc)["train"] == "Cached", (round_number,
                                                                                         statuses(doc))
        versions = json.loads((runs / "registry/mlpipe-quickstart.json").read_text())["versions"]
        assert sorted(v["version"] for v in versions) == list(range(1, len(run_ids) + 1)), \
            f"round {round_number}: registry versions are unique and consecutive"
        temps = [p.name for p in (runs / ".cache").iterdir() if p.name.startswith(".")]
        assert not temps, f"round {round_number}: temp cache entries left: {temps}"
        assert not _entries_verify(runs / ".cache"), f"round {round_number}: entries that do not verify"
    assert len(run_ids) == 2 * ROUNDS


# --- the cache's API, raced by processes -----------------------------------------------------------

KEY = "ab" * 32
WRITERS, READERS, STORES = 3, 3, 12
FILES = ("a.bin", "sub/b.bin", "sub/deeper/c.bin", "stage.json")


def _work_tree(root: Path, tag: str) -> Path:
    """A stage directory whose every file says which store wrote it (large enough that copies
    overlap), so a reader can tell a whole entry from a mix of two."""
    for i, name in enumerate(FILES):
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(f"{tag}\n".encode() * (20000 * (i + 1)))
    os.symlink("a.bin", root / "link")
    return root


def _reporting(kind: str):
    """A process's function that reports its result, or its traceback, on the queue (its last
    argument), so that the test fails at once rather than waiting for a result."""
    def wrap(func):
        def run(*args) -> None:
            try:
                value = func(*args[:-1])
            except BaseException:
                value = (0, 0, [traceback.format_exc()]) if kind == "reader" else [traceback.format_exc()]
            args[-1].put((kind, args[2], value))
        return run
    return wrap


@_reporting("writer")
def _writer(cache_dir: str, scratch: str, writer: int) -> list[str]:
    cache = StageCache(Path(cache_dir))
    warnings = []
    for n in range(STORES):
        tag = f"writer{writer}-store{n}"
        work = _work_tree(Path(scratch) / tag, tag)
        warning = cache.store(KEY, work, refresh=True, source=tag)
        if warning:
            warnings.append(warning)
    return warnings


@_reporting("reader")
def _reader(cache_dir: str, scratch: str, reader: int, stop) -> tuple[int, int, list[str]]:
    cache = StageCache(Path(cache_dir))
    hits = misses = n = 0
    problems = []
    while not stop.is_set() or n < 20:
        n += 1
        dst = Path(scratch) / f"reader{reader}-{n}"
        hit, warning = cache.fetch(KEY, dst)
        if warning:
            problems.append(f"warning: {warning}")
        if not hit:
            misses += 1
            if dst.exists():
                problems.append(f"a miss left {dst.name} behind")
            continue
        hits += 1
        tags = {(dst / name).read_bytes().split(b"\n", 1)[0] for name in FILES}
        if len(tags) != 1:
            problems.append(f"a mix of stores: {sorted(tags)}")
        else:
            line = len(tags.pop()) + 1
            sizes = [(dst / name).stat().st_size for name in FILES]
            if sizes != [line * 20000 * (i + 1) for i in range(len(FILES))]:
                problems.append(f"incomplete files: {sizes}")
        if os.readlink(dst / "link") != "a.bin":
            problems.append("the symlink is wrong")
        shutil.rmtree(dst)
    hit, warning = cache.fetch(KEY, Path(scratch) / f"reader{reader}-at-rest")  # the writers are done
    if not hit or warning:
        problems.append(f"the entry at rest: hit {hit}, warning {warning}")
    return hits, misses, problems


def test_processes_storing_and_fetching_one_key_at_once_see_nothing_or_a_whole_entry(tmp_path):
    """Writers store one key over and over with refresh (--no-cache: each store replaces the
    entry) while readers fetch it: a reader gets a miss or a complete copy of exactly one store,
    verified, and never a warning (no entry here is bad: one replaced under a reader is not);
    no store fails; nothing temporary is left; the entry in place at the end verifies."""
    ctx = multiprocessing.get_context("fork")
    results, stop = ctx.Queue(), ctx.Event()
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    # a first entry, so that readers have something to copy from the start
    assert StageCache(tmp_path).store(KEY, _work_tree(scratch / "first", "first"), source="first") is None
    writers = [ctx.Process(target=_writer, args=(str(tmp_path), str(scratch), w, results)) for w in range(WRITERS)]
    readers = [ctx.Process(target=_reader, args=(str(tmp_path), str(scratch), r, stop, results))
               for r in range(READERS)]
    for p in readers + writers:
        p.start()
    got = {}
    try:
        while sum(kind == "writer" for kind, _ in got) < WRITERS:  # the writers finish; then the readers stop
            kind, number, value = results.get(timeout=120)
            got[(kind, number)] = value
        stop.set()
        while len(got) < WRITERS + READERS:
            kind, number, value = results.get(timeout=120)
            got[(kind, number)] = value
    finally:
        stop.set()
        for p in writers + readers:
            p.join(timeout=30)
            if p.exitcode is None:
                p.kill()
    assert all(p.exitcode == 0 for p in writers + readers), [p.exitcode for p in writers + readers]
    assert [got[("writer", w)] for w in range(WRITERS)] == [[]] * WRITERS, "every store succeeded"
    hits = sum(got[("reader", r)][0] for r in range(READERS))
    problems = [p for r in range(READERS) for p in got[("reader", r)][2]]
    assert not problems, problems[:5]
    assert hits > 0, got
    cache_dir = tmp_path / ".cache"
    assert sorted(p.name for p in cache_dir.iterdir()) == [KEY], "no temp entry left behind"
    assert not _entries_verify(cache_dir)
