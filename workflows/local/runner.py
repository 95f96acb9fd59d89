"""Run a PipelineSpec on this machine, stage by stage, in dependency order.

The runner maps each stage's container contract into ``runs/<run-id>/stages/<stage>/``, runs
the stage in its own (warm, forked) process, and records status, timing, outputs and metrics
in ``run.json``. A stage's directory gets its final name only when the stage succeeded; a
failed stage leaves ``<stage>.failed/`` with its log. The kinds steps/contract.py marks
``cached`` (processing, training, evaluation, transform, tuning) are cached by a content hash
of their code, config and inputs, and reused when nothing changed (see ``cache.py``: entries
are verified by content hash on every use, and runs get copies).

Reliability:

- The run holds ``run.lock`` while it runs (see ``store.RunLock``) and records its owner
  (PID, host, process start time): a run whose owner died is shown as ``Interrupted``.
- SIGINT, SIGTERM and SIGHUP kill the running stage processes and the fork server, mark the
  stages that were running and the run ``Interrupted``; the CLI exits 128 + the signal
  (130, 143, 129). ``--resume`` continues it.
- Any failure, including one before the first stage ran (missing, empty or unusable input), is
  recorded: the stage and the run become ``Failed`` with the reason (bounded to its first and
  last 2 KB; the full text is in the stage's log).
- Resuming never repeats a finished side effect: a stage whose directory is complete is
  adopted as it is, and the registry returns the version a run's register stage already
  created.
- A run store that cannot be written (disk full) stops the run: it is marked ``Failed`` when
  the record can still be written, and a ``StoreWriteError`` (exit 1) says what to do (free
  space, then ``--resume`` it). A run that never got a record leaves no directory behind, and
  its message says to run it again (a ``--resume`` would find nothing).

This module is long on purpose: a run's lifecycle (record, schedule, signals, cache, lineage) is one class;
how each stage kind runs is in ``handlers.py``.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import threading
import time
import traceback
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Callable

from config.errors import UserError
from steps.contract import KINDS
from steps.spec import EvaluationStage, OutputRef, ParamRef, PipelineSpec, ProcessingStage, Stage
from workflows.local import store, supervise
from workflows.local.bookkeeping import WAITING
from workflows.local.cache import DISK_ERRORS, StageCache
from workflows.local.fanout import lineage as fanout_lineage
from workflows.local.data import check_line_length, fetch, tree_hash
from workflows.local.handlers import StageFailed, StageHandlers
from workflows.local.record import DONE, Status
from workflows.local.worker import Workers

CACHEABLE = {name for name, kind in KINDS.items() if kind.cached}
LIGHT_PARALLEL = 4  # light stages at once besides (a Lambda is a process too; a fan-out has many)
PARALLEL = 2  # stages running at once when the DAG allows: independent branches overlap
# The code that emulates SageMaker's containers is part of every cache key (all xgboost_* modules:
# the algorithm and its model format), so changing it recomputes what it produced.
EMULATOR_CODE = sorted(Path(__file__).parent.glob("xgboost*.py")) + [Path(__file__).with_name("stages.py")]
SMALL_INPUT = 4 << 20  # bytes: a data input up to this size lets the emulator start at once
GRACE = 5.0  # seconds the stage threads get to wind down after an interruption


@dataclass
class Options:
    """Everything a run was started with; stored in run.json so --resume can repeat it."""

    config: str | None = None
    input: str | None = None
    target_column: str | None = None
    delimiter: str | None = None
    header: bool | None = None
    categorical: list[str] | None = None
    problem_type: str | None = None
    gate_threshold: float | None = None
    approval: str = "auto"
    params: dict[str, str] = field(default_factory=dict)
    no_cache: bool = False
    tracking_uri: str | None = None
    exact: bool = False  # each stage in its image's Python and library pins (envs.py)
    aws: dict[str, str | None] = field(default_factory=dict)  # endpoint_url, region, profile for S3 inputs
    fanout_items: list[str] | None = None  # a fan-out's items read at run time (local/fanout.py)

    @classmethod
    def from_record(cls, stored: dict[str, Any]) -> "Options":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in stored.items() if k in known})


class LocalRun(StageHandlers):
    def __init__(self, spec: PipelineSpec, options: Options, root: Path, record: dict[str, Any] | None = None,
                 observer: Callable[[dict[str, Any]], None] | None = None,
                 lock: store.RunLock | None = None) -> None:
        self.spec, self.options, self.root = spec, options, root
        self.observer = observer or (lambda record: None)
        self.workers = Workers()
        self.cache = StageCache(root)
        self._storing = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cache-store")
        self._commits: list = []  # (future, staged copy)
        self.emulator = None
        self.exact: dict[tuple, Any] = {}       # image key -> envs.Interpreter, with --exact
        self.exact_keys: dict[tuple, str] = {}  # image key -> what its results depend on
        if record is None:
            run_id = store.new_run_id(spec.name)
            record = {
                "run_id": run_id, "pipeline": spec.name, "status": Status.RUNNING, "run_dir": str(root / run_id),
                "config": str(spec.source) if spec.source else None, "options": dict(options.__dict__),
                "stages": {s.name: {"kind": s.kind, "status": Status.PENDING} for s in spec.stages},
                "order": [s.name for s in spec.stages], "approvals": {},
            }
        record.setdefault("approvals", {})
        self.record = record
        self._lock = threading.RLock()  # stages run in threads; the record is shared
        self.run_dir = Path(record["run_dir"])
        self.stage_root = self.run_dir / "stages"
        self.lock = lock           # the run lock, when the caller already holds it
        self.signum: int | None = None
        self.stopping = False      # a signal or a fatal store error: start nothing new
        self.fatal: store.StoreWriteError | None = None
        self._closed = False       # the final record is written: later writes are dropped

    # --- public --------------------------------------------------------------------------
    def execute(self) -> dict[str, Any]:
        """Run (or continue) the pipeline. Returns the record; its ``status`` is Succeeded,
        Failed, Waiting or Interrupted (then ``signal_number`` says which signal)."""
        parameters = self.parameters()  # a bad --param is refused before anything is written
        if self.options.exact:  # built once (the CLI shows it building), else a UserError before anything is written
            from workflows.local import envs

            environments = envs.prepare(self.spec)
            self.exact = {k: e.interpreter() for k, e in environments.items()}
            self.exact_keys = {k: e.key() for k, e in environments.items()}
        own_lock = self.lock is None
        if own_lock:
            try:
                self.run_dir.mkdir(parents=True, exist_ok=True)
                self.lock = store.RunLock(self.run_dir, "run").acquire()
            except OSError as exc:  # a full disk before the run has a record: nothing of it is kept
                self._discard_unrecorded()
                raise store.for_run(store.write_failed(exc, self.run_dir), self.record["run_id"],
                                    recorded=False) from None
        try:
            with supervise.signals(self._on_signal):
                return self._execute(parameters)
        finally:
            if own_lock:
                self.lock.release()
                self.lock = None

    def _on_signal(self, signum: int) -> None:
        """SIGINT/SIGTERM/SIGHUP: stop the stage processes now; the main loop winds down."""
        if self.signum is None:
            self.signum = signum
        self.stopping = True
        self.workers.kill_all()

    def _fatal(self, exc: store.StoreWriteError) -> None:
        if self.fatal is None:
            self.fatal = exc
        self.stopping = True
        self.workers.kill_all()

    def _execute(self, parameters: dict[str, Any]) -> dict[str, Any]:
        self.workers.warm()
        if any(s.kind == "lambda" for s in self.spec.stages):
            from workflows.local.emulator import LocalAws

            self.emulator = LocalAws(self.root / ".emulator", self.run_dir, self.workers)
        started = time.time()
        with self._lock:
            self.record.setdefault("started", time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)))
            for key in ("error", "signal", "signal_number", "ended", "warnings"):
                self.record.pop(key, None)
            self.record.update(status=Status.RUNNING, parameters=parameters, config_hash=self.spec.fingerprint,
                               owner=store.owner(), **self._environments())
        error: BaseException | None = None
        try:
            self._save(strict=True)
            self._schedule()
        except store.StoreWriteError as exc:
            self._fatal(exc)
        except BaseException as exc:  # a bug in the runner: still record how the run ended
            error = exc
            self.stopping = True
        finally:
            self._drain_commits()  # the cache entries of finished stages are complete
            if self.emulator is not None:
                self.emulator.stop()
            if self.stopping or error is not None:
                self.workers.shutdown()  # a stage may hang: nothing of this run may outlive it
            else:
                self.workers.release()   # the server stays warm for this process's next run
        self._finish(started, error)
        if error is not None:
            raise error
        if self.fatal is not None:
            raise self.fatal
        return self.record

    def _finish(self, started: float, error: BaseException | None) -> None:
        with self._lock:
            record = self.record
            for name in record["order"]:
                entry = record["stages"][name]
                if entry["status"] == Status.RUNNING:  # abandoned while winding down
                    entry.update(status=Status.INTERRUPTED if self.stopping else Status.FAILED)
            statuses = {record["stages"][n]["status"] for n in record["order"]}
            if self.signum is not None:
                record["status"] = Status.INTERRUPTED
                record["signal"] = supervise.signal_name(self.signum)
                record["signal_number"] = self.signum
                record["error"] = f"interrupted by {record['signal']}; continue with: mlpipe run --resume " \
                                  f"{record['run_id']}"
            elif self.fatal is not None or error is not None:
                record["status"] = Status.FAILED
                text = self.fatal.render() if self.fatal is not None else f"{type(error).__name__}: {error}"
                record["error"] = store.bounded(text)
            elif Status.FAILED in statuses:
                record["status"] = Status.FAILED
                first = next(n for n in record["order"] if record["stages"][n]["status"] == Status.FAILED)
                record["error"] = f"stage {first} failed: " + store.bounded(record["stages"][first].get("error", ""))
            elif Status.WAITING in statuses:
                record["status"] = Status.WAITING
            else:
                record["status"] = Status.SUCCEEDED
            record["ended"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            record["duration"] = round(record.get("duration", 0) + time.time() - started, 3)
        try:
            metrics, lineage = self.metrics(), self.lineage()
        except Exception as exc:  # a summary must not hide how the run ended
            self._warn_run(f"could not summarize the run: {type(exc).__name__}: {exc}")
        else:
            with self._lock:
                self.record["metrics"], self.record["lineage"] = metrics, lineage
        if self.signum is None:
            self._track()
        self._write_report()
        with self._lock:
            try:
                store.write_json(self.run_dir / "run.json", self.record)
            except store.StoreWriteError as exc:
                if self.fatal is None:
                    self.fatal = exc
            else:
                self._observe()
            self._closed = True
        if self.fatal is not None:  # the fix names what to run next: a resume needs a record
            recorded = (self.run_dir / "run.json").is_file()
            if not recorded:
                self._discard_unrecorded()
            self.fatal = store.for_run(self.fatal, self.record["run_id"], recorded, self._runs_option())

    def _discard_unrecorded(self) -> None:
        """A run that never got a record (every write of run.json failed) leaves nothing behind:
        its directory would hold only report.html and run.lock, which no command lists or resumes."""
        if not (self.run_dir / "run.json").exists():
            shutil.rmtree(self.run_dir, ignore_errors=True)

    def _runs_option(self) -> str:
        """`` --runs-dir DIR`` when this run's store is not the default one, for hints to paste."""
        if self.root.resolve() == store.runs_dir(None):
            return ""
        import shlex

        return f" --runs-dir {shlex.quote(str(self.root))}"

    def _write_report(self) -> None:
        """report.html: the DAG with each stage's state, timings, metrics and the evaluation plot
        (views/report.py), self-contained so it opens offline. Never fails the run."""
        try:
            from workflows.views.report import report_html

            store.write_bytes(self.run_dir / "report.html", report_html(self.spec, self.record, self.run_dir).encode())
        except Exception as exc:
            self._warn_run(f"could not write report.html: {type(exc).__name__}: {exc}")

    def _emulator_after(self) -> set[str] | None:
        """The stages whose start lets the emulator start (None: it is not needed; empty: at once).

        With a small local input (SMALL_INPUT), at once: moto's start-up (about half a second
        of CPU) then runs beside the fork server's imports, on the core they leave idle, instead
        of ending the run after the last stage. Otherwise when the SageMaker jobs upstream of the
        first Lambda stage have started: moto's import overlaps with the last of them, and its
        memory (about 100 MB) never adds to the peak of the stages that hold a large input."""
        if self.emulator is None:
            return None
        from steps.pipeline import ancestry

        to_run = [s for s in self.spec.stages  # spec order; a resume skips the Lambdas already done
                  if s.kind == "lambda" and self.record["stages"][s.name]["status"] not in DONE]
        if not to_run:
            return None  # nothing will call it (a stage asking anyway starts it: LocalAws.url)
        if self._small_input():
            return set()
        kinds = {s.name: s.kind for s in self.spec.stages}
        return {a for a in ancestry(self.spec.stages)[to_run[0].name] if KINDS[kinds[a]].job}

    def _small_input(self) -> bool:
        """The run's data input is a local file of at most SMALL_INPUT bytes (an S3 object or a
        dataset name is not known to be small)."""
        param = self.data_parameter()
        if param is None:
            return False
        try:
            return Path(self._data_source(param, param in self.options.params)).stat().st_size <= SMALL_INPUT
        except (OSError, ValueError):
            return False

    def _schedule(self) -> None:
        """Run stages as their upstream stages finish, up to PARALLEL at once (stages of a kind
        the contract calls ``light`` have their own LIGHT_PARALLEL: a condition, a record, a
        decision, a short API call never keep a job waiting). Among those ready, the one with
        the longest chain of stages after it first (that chain bounds the run's end: abalone's
        approval, which the endpoint waits for, before the Lambda, which nothing waits for), then
        in spec order (the config's, approvals last). Stops starting stages when the run is
        interrupted."""
        from steps.pipeline import chain_after

        after = chain_after(self.spec.stages)
        pending = sorted(self.spec.stages, key=lambda s: -after[s.name])  # stable: spec order among equals
        running: dict = {}
        emulator_after = self._emulator_after()
        early = emulator_after == set()  # needs none of the fork server's imports: forked among them
        pool = ThreadPoolExecutor(max_workers=len(pending) or 1, thread_name_prefix="stage")
        try:
            while (pending or running) and not self.stopping:
                active = {s.name for s in pending} | {s.name for s in running.values()}
                for stage in [s for s in pending if not (set(s.upstream) & active)]:
                    light = KINDS[stage.kind].light
                    alike = sum(KINDS[s.kind].light == light for s in running.values())
                    if alike >= (LIGHT_PARALLEL if light else PARALLEL):
                        continue
                    pending.remove(stage)
                    running[pool.submit(self._run_stage, stage)] = stage
                    active = {s.name for s in pending} | {s.name for s in running.values()}
                if emulator_after is not None and not (emulator_after & {s.name for s in pending}) and not self.stopping:
                    emulator_after = None
                    try:
                        self.emulator.start(early=early)
                    except RuntimeError:  # stopped meanwhile (a signal, a full disk): the loop ends
                        if not self.stopping:
                            raise
                if not running:
                    break  # nothing can start (cannot happen with a topological order)
                done, _ = wait(running, timeout=0.2, return_when=FIRST_COMPLETED)
                for future in done:
                    running.pop(future)
                    future.result()
            if running:
                wait(running, timeout=GRACE)  # their processes are killed: they end quickly
        finally:
            pool.shutdown(wait=False, cancel_futures=True)

    def _environments(self) -> dict[str, Any]:
        """Where the stages' code runs: with --exact, each image's environment; else this one,
        and the libraries whose versions differ from the images' (pins.py)."""
        from workflows.local import pins

        if self.options.exact:
            return {"exact": {pins.IMAGES[k].label: str(i.python) for k, i in self.exact.items()}, "library_drift": []}
        return {"exact": None, "library_drift": pins.drift(self.spec.stages)}

    def _interpreter(self, stage: Stage):
        """--exact: the warm workers of the environment of the stage's image; else None (ours)."""
        from workflows.local import pins

        if not self.exact or not pins.runs_code(stage):
            return None
        return self.exact[pins.for_image(pins.image_of(stage)).key]

    def _set(self, target: dict, **values: Any) -> None:
        with self._lock:
            target.update(values)

    # --- parameters and references ---------------------------------------------------------
    def parameters(self) -> dict[str, Any]:
        """Declared defaults, overridden by ``--param`` (checked by the one parser every command uses)."""
        from steps.params import parse_params

        values = {p.name: p.default for p in self.spec.parameters}
        values.update(parse_params([f"{k}={v}" for k, v in self.options.params.items()], self.spec.parameters))
        return values

    def data_parameter(self) -> str | None:
        """The parameter that feeds the built-in preprocessing: --input replaces it."""
        for s in self.spec.stages:
            if isinstance(s, ProcessingStage) and s.code and s.code.entry.name == "preprocess.py":
                for v in s.inputs.values():
                    if isinstance(v, ParamRef):
                        return v.name
        return None

    def resolve(self, value: Any, stage: Stage) -> Any:
        """A spec value as something local: a path for data, a plain value otherwise."""
        if isinstance(value, OutputRef):
            out = self.record["stages"][value.stage].get("outputs", {}).get(value.output)
            if out is None:
                raise RuntimeError(f"{stage.name}: output {value.stage}.{value.output} is not available")
            return self.stage_root / value.stage / out["path"] if "path" in out else out["value"]
        if isinstance(value, ParamRef):
            return self.record["parameters"][value.name]
        return value

    def aws_settings(self) -> dict[str, Any]:
        """Where S3 inputs are read: --endpoint-url/--region/--profile, else the config's region
        (the spec's region already falls back to AWS_REGION / AWS_DEFAULT_REGION)."""
        settings = dict(self.options.aws or {})
        settings["region"] = settings.get("region") or self.spec.region
        return settings

    def _data_source(self, param: str, explicit: bool) -> str:
        """Where a data parameter's value comes from: for the built-in preprocessing's, --input,
        then --param, the config's data.local, the declared default."""
        if param == self.data_parameter():
            return (self.options.input or (self.options.params.get(param) if explicit else None)
                    or self._relative((self.spec.data or {}).get("local")) or self.record["parameters"][param])
        return self.record["parameters"][param]

    def local_data(self, param: str, explicit: bool) -> Path | None:
        """Fetch a data parameter's value to a local file, recording its lineage."""
        source = self._data_source(param, explicit)
        if param != self.data_parameter() and not explicit and source.startswith("s3://"):
            return None  # an example's S3 default: the caller falls back to local data
        path, lineage = fetch(source, self.root / ".datasets", self.aws_settings())
        check_line_length(path, source)
        with self._lock:
            self.record.setdefault("lineage_inputs", {})[param] = lineage
        return path

    def _relative(self, value: str | None) -> str | None:
        if value and not value.startswith(("sklearn:", "s3://")) and self.spec.source:
            return str((self.spec.source.parent / value).resolve())
        return value

    # --- stage execution -----------------------------------------------------------------
    def _run_stage(self, stage: Stage) -> None:
        entry = self.record["stages"][stage.name]
        if entry["status"] in DONE or self.stopping:
            return
        blocked = [u for u in stage.upstream if self.record["stages"][u]["status"] not in DONE]
        if blocked:
            self._set(entry, status=Status.SKIPPED, reason=f"waiting on {', '.join(blocked)}")
            self._save()
            return
        with self._lock:
            for key in ("error", "error_kind", "reason", "exit_code", "warnings", "log", "duration", "adopted"):
                entry.pop(key, None)
            entry.update(status=Status.RUNNING, started=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
        self._save()
        if self._adopt(stage, entry):
            return
        final = self.stage_root / stage.name
        work = self.stage_root / f".{stage.name}.work"
        t0 = time.perf_counter()
        try:
            shutil.rmtree(work, ignore_errors=True)
            shutil.rmtree(self.stage_root / f"{stage.name}.failed", ignore_errors=True)
            key = self._cache_key(stage) if stage.kind in CACHEABLE else None
            hit, warning = False, None
            if key is not None and not self.options.no_cache:
                work.parent.mkdir(parents=True, exist_ok=True)
                hit, warning = self.cache.fetch(key, work)
            if not hit:
                work.mkdir(parents=True, exist_ok=True)
            if warning:
                self._warn(entry, work, warning)
            if hit:
                meta = store.read_json(work / "stage.json")
                self._set(entry, outputs=meta["outputs"], status=Status.CACHED, cache_key=key)
            else:
                outputs = self.handler(stage)(stage, work)
                self._set(entry, outputs=outputs, status=Status.SUCCEEDED, cache_key=key)
            self._set(entry, duration=round(time.perf_counter() - t0, 3), log=f"stages/{stage.name}/log.txt")
            with self._lock:
                store.write_json(work / "stage.json", entry)
            staged = None
            if key and entry["status"] == Status.SUCCEEDED:
                # The copy now, before any later stage reads (or, through its input links, writes)
                # these outputs; its hashing and the entry's rename beside the stages after it.
                staged, warning = self.cache.stage(key, work, refresh=self.options.no_cache)
                if warning:
                    self._warn(entry, None, warning)
            store.replace_dir(work, final)
            if staged is not None:
                self._commit_later(entry, key, staged)
        except StageFailed as exc:
            self._stage_failed(stage, entry, work, exc.code, exc.message, t0)
            return
        except store.StoreWriteError as exc:
            self._fatal(exc)
            self._stage_failed(stage, entry, work, 1, exc.render(), t0)
            return
        except UserError as exc:  # unusable input found before the stage could start
            self._log(work, f"error: {exc.render()}")
            self._set(entry, error_kind="input")
            self._stage_failed(stage, entry, work, 2, exc.render(), t0)
            return
        except OSError as exc:
            if exc.errno in DISK_ERRORS:
                failure = store.write_failed(exc, Path(exc.filename) if exc.filename else self.run_dir)
                self._fatal(failure)
                self._stage_failed(stage, entry, work, 1, failure.render(), t0)
                return
            self._log(work, traceback.format_exc())
            self._stage_failed(stage, entry, work, 1, f"{type(exc).__name__}: {exc}", t0)
            return
        except Exception as exc:
            self._log(work, traceback.format_exc())
            self._stage_failed(stage, entry, work, 1, f"{type(exc).__name__}: {exc}", t0)
            return
        self._save()

    def _commit_later(self, entry: dict, key: str, staged: Path) -> None:
        """Commit a staged cache entry (hash every file, then rename) beside the stages that
        follow, not before them; the run waits for its commits before it ends (``_execute``)."""
        def commit() -> None:
            try:
                warning = self.cache.commit(key, staged, refresh=self.options.no_cache, source=self.record["run_id"])
            except Exception as exc:  # a bug here must not pass unseen in a thread: the run goes on, warned
                warning = f"could not store the cache entry {key[:12]}: {type(exc).__name__}: {exc}"
            if warning:
                self._warn(entry, None, warning)

        try:
            self._commits.append((self._storing.submit(commit), staged))
        except RuntimeError:  # the run is winding down: no new commits
            self.cache.discard(staged)

    def _drain_commits(self) -> None:
        """Wait for the cache commits; when the run is stopping, only for the one under way (the
        others' staged copies are removed: a later run recomputes those stages)."""
        self._storing.shutdown(wait=False, cancel_futures=self.stopping)
        for future, staged in self._commits:
            if future.cancelled():
                self.cache.discard(staged)
            else:
                wait([future], timeout=GRACE if self.stopping else None)

    def _stage_failed(self, stage: Stage, entry: dict, work: Path, code: int, message: str, t0: float) -> None:
        interrupted = self.stopping and code != WAITING
        waiting = code == WAITING and not self.stopping
        status = Status.INTERRUPTED if interrupted else Status.WAITING if waiting else Status.FAILED
        keep = status != Status.FAILED  # an interrupted or waiting stage keeps its work directory
        log = f"stages/.{stage.name}.work/log.txt" if keep else f"stages/{stage.name}.failed/log.txt"
        message = message.replace(str(work / "log.txt"), str(self.run_dir / log))  # where the log ends up
        self._set(entry, status=status, error=store.bounded(message, where=str(self.run_dir / log)),
                  exit_code=code, duration=round(time.perf_counter() - t0, 3), log=log)
        try:
            if work.is_dir():
                with self._lock:
                    store.write_json(work / "stage.json", entry)
                if not keep:
                    store.replace_dir(work, self.stage_root / f"{stage.name}.failed")
        except store.StoreWriteError as exc:
            self._fatal(exc)
        except OSError:
            pass
        self._save()

    def _adopt(self, stage: Stage, entry: dict) -> bool:
        """A stage whose final directory is complete (the owner died after the rename, before
        the record said so) is taken as it is, not run again: no second registry version, no
        second deployment, no second SSM write. What the stage put in the run's record besides
        its own entry (a Lambda's SSM parameter) is put back from its outputs."""
        meta_path = self.stage_root / stage.name / "stage.json"
        try:
            meta = store.read_json(meta_path)
        except (OSError, ValueError):
            return False
        if not isinstance(meta, dict) or meta.get("status") not in DONE or not isinstance(meta.get("outputs"), dict):
            return False
        self._set(entry, status=meta["status"], outputs=meta["outputs"], cache_key=meta.get("cache_key"),
                  duration=meta.get("duration", 0.0), log=f"stages/{stage.name}/log.txt", adopted=True)
        parameter = meta["outputs"].get("parameter", {}).get("value") if stage.kind == "lambda" else None
        if isinstance(parameter, dict) and "name" in parameter:
            with self._lock:
                self.record.setdefault("ssm", {})[parameter["name"]] = parameter.get("value")
        self._save()
        return True

    def _log(self, work: Path | None, text: str) -> None:
        if work is None:
            return
        try:
            work.mkdir(parents=True, exist_ok=True)
            with open(work / "log.txt", "a") as f:
                f.write(text.rstrip() + "\n")
        except OSError:
            pass

    def _warn(self, entry: dict, work: Path | None, warning: str) -> None:
        """A warning goes to the stage's log and record, and to the run's warnings."""
        self._log(work, f"warning: {warning}")
        with self._lock:
            entry.setdefault("warnings", []).append(warning)
        self._warn_run(warning)

    def _warn_run(self, warning: str) -> None:
        with self._lock:
            self.record.setdefault("warnings", []).append(store.bounded(warning))

    def _cache_key(self, stage: Stage) -> str:
        h = hashlib.sha256(json.dumps(stage.to_dict(), sort_keys=True, default=str).encode())
        for name, value in sorted(stage.inputs.items()):
            h.update(name.encode())
            if isinstance(value, OutputRef):
                resolved = self.resolve(value, stage)
                if self.spec.stage(value.stage).kind == "model":  # a name per run: hash what it serves
                    resolved = self._model_artifact(value)
                h.update((tree_hash(resolved) if isinstance(resolved, Path) else json.dumps(resolved)).encode())
            elif isinstance(value, ParamRef):
                path = self.local_data(value.name, value.name in self.options.params)
                h.update((tree_hash(path) if path else "fallback").encode())
        if KINDS[stage.kind].job == "processing" and getattr(stage, "instance", None):
            h.update(json.dumps(self.resolve(stage.instance.count, stage)).encode())
        if stage.kind == "transform":
            h.update(self._batch_fallback_hash().encode())
        if self._interpreter(stage) is not None:  # --exact: the environment and the container's code
            from workflows.local import pins

            h.update(self.exact_keys[pins.for_image(pins.image_of(stage)).key].encode())
        for path in EMULATOR_CODE:
            h.update(path.read_bytes())
        return h.hexdigest()

    def metrics(self, evaluation: str | None = None) -> dict[str, float]:
        """The last finished evaluation's metrics (or the named one's: a fan-out item's)."""
        for s in reversed(self.spec.stages):
            if isinstance(s, EvaluationStage) and self.record["stages"][s.name]["status"] in DONE \
                    and evaluation in (None, s.name):
                folder = self.stage_root / s.name / "opt/ml/processing/evaluation"
                flat = folder / "metrics.json"
                if flat.is_file():
                    return {k: v for k, v in store.read_json(flat).items() if isinstance(v, (int, float))}
                report = store.read_json(folder / "evaluation.json")
                return {m: v["value"] for section in report.values() for m, v in section.items()}
        return {}

    def lineage(self) -> dict[str, Any]:
        model = next((self.record["stages"][s.name] for s in self.spec.stages if s.kind == "model"
                      and self.record["stages"][s.name]["status"] in DONE), None)
        registered = next((self.record["stages"][s.name] for s in self.spec.stages if s.kind == "register"
                           and self.record["stages"][s.name]["status"] in DONE), None)
        artifact = model["outputs"]["artifact"]["value"] if model else None
        return {
            "run_id": self.record["run_id"],
            "config": self.record.get("config"),
            "config_hash": self.spec.fingerprint,
            "code": {a.name if a.archive else a.entry.name: a.sha256 for a in self.spec.assets},
            "data": self.record.get("lineage_inputs", {}),
            # what the run really used: a data parameter's value is the file that was read
            "parameters": {**self.record.get("parameters", {}),
                           **{k: v["source"] for k, v in self.record.get("lineage_inputs", {}).items()
                              if isinstance(v, dict) and v.get("source")}},
            "metrics": self.metrics(),
            "model": {"name": model["outputs"]["model_name"]["value"], "artifact": artifact,
                      "sha256": tree_hash(Path(artifact))} if model and Path(artifact).exists() else None,
            "registry": {k: registered["outputs"][k]["value"] for k in ("group", "version", "model_package_arn",
                                                                         "approval_status")
                         if k in registered["outputs"]} if registered else None,
            "baseline": self._baselines() or None,
            "foreach": fanout_lineage(self.spec, self.record),   # a fan-out: each item's model and version
        }

    def _baselines(self) -> dict[str, Any]:
        """Each finished baseline stage's Model Monitor files, with their hashes."""
        out: dict[str, Any] = {}
        for s in self.spec.stages:
            entry = self.record["stages"][s.name]
            if s.kind == "baseline" and entry["status"] in DONE:
                files = {k: self.stage_root / s.name / entry["outputs"][k]["path"] for k in ("statistics", "constraints")}
                out[s.name] = {k: {"path": str(p), "sha256": tree_hash(p)} for k, p in files.items() if p.is_file()}
        return out

    def _track(self) -> None:
        from workflows.local import tracking

        tracking.log_run(self.record, self.root, self.options.tracking_uri)

    def _save(self, strict: bool = False) -> None:
        """Write run.json (atomically). A store that cannot be written stops the run (the
        error is raised at its end, or now with ``strict``)."""
        with self._lock:
            if self._closed:
                return
            try:
                store.write_json(self.run_dir / "run.json", self.record)
            except store.StoreWriteError as exc:
                self._fatal(exc)
                if strict:
                    raise
                return
            self._observe()

    def _observe(self) -> None:
        try:
            self.observer(self.record)
        except Exception:  # progress display is best effort
            pass
