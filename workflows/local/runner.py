"""Run a PipelineSpec on this machine, stage by stage, in dependency order.

The runner maps each stage's container contract into ``runs/<run-id>/stages/<stage>/``, runs
the stage in its own (warm, forked) process, and records status, timing, outputs and metrics
in ``run.json``. A stage's directory gets its final name only when the stage succeeded; a
failed stage leaves ``<stage>.failed/`` with its log. Deterministic stages (processing,
training, evaluation, transform) are cached by a content hash of their code, config and
inputs, and reused when nothing changed (see ``cache.py``: entries are verified by content
hash on every use, and runs get copies).

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
  the record can still be written, and a ``StoreWriteError`` (exit 1) says what to do.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import signal
import threading
import time
import traceback
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Callable

from config.errors import UserError
from steps.spec import (
    EvaluationStage, GateStage, OutputRef, ParamRef, PipelineSpec, ProcessingStage, Stage, TrainingStage,
)
from workflows.local import store, supervise
from workflows.local.cache import StageCache, copy_tree
from workflows.local.data import feature_rows, fetch, tree_hash
from workflows.local.stages import WAITING
from workflows.local.worker import Job, Workers

CACHEABLE = {"processing", "training", "evaluation", "transform"}
PARALLEL = 2  # stages running at once when the DAG allows: independent branches overlap
DONE = {"Succeeded", "Cached"}
# The code that emulates SageMaker's containers is part of every cache key (all xgboost_* modules:
# the algorithm and its model format), so changing it recomputes what it produced.
EMULATOR_CODE = sorted(Path(__file__).parent.glob("xgboost*.py")) + [Path(__file__).with_name("stages.py")]
GRACE = 5.0  # seconds the stage threads get to wind down after an interruption
MAX_LINE_BYTES = 1 << 20  # a longer "row" in an input file is refused (MLPIPE_MAX_LINE_BYTES overrides)
DISK_ERRORS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS)


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
    aws: dict[str, str | None] = field(default_factory=dict)  # endpoint_url, region, profile for S3 inputs

    @classmethod
    def from_record(cls, stored: dict[str, Any]) -> "Options":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in stored.items() if k in known})


class StageFailed(Exception):
    def __init__(self, stage: str, code: int, message: str) -> None:
        self.stage, self.code, self.message = stage, code, message
        super().__init__(message)


def max_line_bytes() -> int:
    try:
        return max(1024, int(os.environ.get("MLPIPE_MAX_LINE_BYTES", MAX_LINE_BYTES)))
    except ValueError:
        return MAX_LINE_BYTES


def long_line(path: Path, limit: int) -> int | None:
    """The number of the first line of ``path`` longer than ``limit`` bytes, or None. Reads in
    chunks of at most ``limit`` bytes, so memory stays bounded whatever the file holds."""
    chunk_size = min(limit, 1 << 20)
    current = 0  # bytes of the line being read so far
    line = 1
    with open(path, "rb") as f:
        while chunk := f.read(chunk_size):
            first = chunk.find(b"\n")
            if first < 0:
                current += len(chunk)
            else:
                if current + first > limit:
                    return line
                line += chunk.count(b"\n")  # lines wholly inside a chunk are shorter than the limit
                current = len(chunk) - chunk.rfind(b"\n") - 1
            if current > limit:
                return line
    return None


def check_line_length(path: Path, source: str) -> None:
    """Refuse an input whose "rows" are not rows (e.g. a single line of tens of MB) early, in
    bounded memory, instead of letting a CSV reader chew on it for minutes."""
    limit = max_line_bytes()
    paths = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for p in paths:
        number = long_line(p, limit)
        if number is not None:
            where = "" if p == path else f" ({p.name})"
            raise UserError(f"input data {source}{where}: line {number} is a line longer than {limit} bytes; "
                            "this does not look like a CSV file with one row per line",
                            fix="pass a CSV file with one row per line (or raise the limit with "
                                "MLPIPE_MAX_LINE_BYTES)")


class LocalRun:
    def __init__(self, spec: PipelineSpec, options: Options, root: Path, record: dict[str, Any] | None = None,
                 observer: Callable[[dict[str, Any]], None] | None = None,
                 lock: store.RunLock | None = None) -> None:
        self.spec, self.options, self.root = spec, options, root
        self.observer = observer or (lambda record: None)
        self.workers = Workers()
        self.cache = StageCache(root)
        self.emulator = None
        if record is None:
            run_id = store.new_run_id(spec.name)
            record = {
                "run_id": run_id, "pipeline": spec.name, "status": "Running", "run_dir": str(root / run_id),
                "config": str(spec.source) if spec.source else None, "options": dict(options.__dict__),
                "stages": {s.name: {"kind": s.kind, "status": "Pending"} for s in spec.stages},
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
        own_lock = self.lock is None
        if own_lock:
            try:
                self.run_dir.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise store.write_failed(exc, self.run_dir) from None
            self.lock = store.RunLock(self.run_dir, "run").acquire()
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

            self.emulator = LocalAws(self.root / ".emulator")
            self.emulator.start_in_background()  # moto's import overlaps with the first stages
        started = time.time()
        with self._lock:
            self.record.setdefault("started", time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)))
            for key in ("error", "signal", "signal_number", "ended", "warnings"):
                self.record.pop(key, None)
            self.record.update(status="Running", parameters=parameters, config_hash=self.spec.fingerprint,
                               owner=store.owner())
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
            self.workers.shutdown()
            if self.emulator is not None:
                self.emulator.stop()
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
                if entry["status"] == "Running":  # abandoned while winding down
                    entry.update(status="Interrupted" if self.stopping else "Failed")
            statuses = {record["stages"][n]["status"] for n in record["order"]}
            if self.signum is not None:
                record["status"] = "Interrupted"
                record["signal"] = supervise.signal_name(self.signum)
                record["signal_number"] = self.signum
                record["error"] = f"interrupted by {record['signal']}; continue with: mlpipe run --resume " \
                                  f"{record['run_id']}"
            elif self.fatal is not None or error is not None:
                record["status"] = "Failed"
                text = self.fatal.render() if self.fatal is not None else f"{type(error).__name__}: {error}"
                record["error"] = store.bounded(text)
            elif "Failed" in statuses:
                record["status"] = "Failed"
                first = next(n for n in record["order"] if record["stages"][n]["status"] == "Failed")
                record["error"] = f"stage {first} failed: " + store.bounded(record["stages"][first].get("error", ""))
            elif "Waiting" in statuses:
                record["status"] = "Waiting"
            else:
                record["status"] = "Succeeded"
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
        with self._lock:
            try:
                store.write_json(self.run_dir / "run.json", self.record)
            except store.StoreWriteError as exc:
                if self.fatal is None:
                    self.fatal = exc
            else:
                self._observe()
            self._closed = True

    def _schedule(self) -> None:
        """Run stages as their upstream stages finish, up to PARALLEL at once, in spec order
        among those ready (the spec's order is the config's, approvals last). Stops starting
        stages when the run is interrupted."""
        pending = list(self.spec.stages)
        running: dict = {}
        pool = ThreadPoolExecutor(max_workers=PARALLEL, thread_name_prefix="stage")
        try:
            while (pending or running) and not self.stopping:
                active = {s.name for s in pending} | {s.name for s in running.values()}
                for stage in [s for s in pending if not (set(s.upstream) & active)]:
                    if len(running) >= PARALLEL:
                        break
                    pending.remove(stage)
                    running[pool.submit(self._run_stage, stage)] = stage
                    active = {s.name for s in pending} | {s.name for s in running.values()}
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

    def _set(self, target: dict, **values: Any) -> None:
        with self._lock:
            target.update(values)

    # --- parameters and references ---------------------------------------------------------
    def parameters(self) -> dict[str, Any]:
        values = {p.name: p.default for p in self.spec.parameters}
        for name, raw in self.options.params.items():
            try:
                values[name] = self.spec.parameter(name).coerce(raw)
            except KeyError:
                raise UserError(f"unknown parameter {name!r}",
                                fix=f"declared parameters: {', '.join(values) or 'none'}") from None
            except ValueError as exc:
                raise UserError(f"parameter {name}: {exc}", fix=f"give a {self.spec.parameter(name).type}") from None
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

    def local_data(self, param: str, explicit: bool) -> Path | None:
        """Fetch a data parameter's value to a local file, recording its lineage."""
        data = self.spec.data or {}
        if param == self.data_parameter():
            source = (self.options.input or (self.options.params.get(param) if explicit else None)
                      or self._relative(data.get("local")) or self.record["parameters"][param])
        else:
            source = self.record["parameters"][param]
            if not explicit and source.startswith("s3://"):
                return None  # an example's S3 default: the caller falls back to local data
        path, lineage = fetch(source, self.root / ".datasets", self.options.aws)
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
            self._set(entry, status="Skipped", reason=f"waiting on {', '.join(blocked)}")
            self._save()
            return
        with self._lock:
            for key in ("error", "error_kind", "reason", "exit_code", "warnings", "log", "duration", "adopted"):
                entry.pop(key, None)
            entry.update(status="Running", started=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
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
                self._set(entry, outputs=meta["outputs"], status="Cached", cache_key=key)
            else:
                outputs = getattr(self, f"_{stage.kind}")(stage, work)
                self._set(entry, outputs=outputs, status="Succeeded", cache_key=key)
            self._set(entry, duration=round(time.perf_counter() - t0, 3), log=f"stages/{stage.name}/log.txt")
            with self._lock:
                store.write_json(work / "stage.json", entry)
            if key and entry["status"] == "Succeeded":
                warning = self.cache.store(key, work, refresh=self.options.no_cache, source=self.record["run_id"])
                if warning:
                    self._warn(entry, None, warning)
            store.replace_dir(work, final)
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

    def _stage_failed(self, stage: Stage, entry: dict, work: Path, code: int, message: str, t0: float) -> None:
        interrupted = self.stopping and code != WAITING
        waiting = code == WAITING and not self.stopping
        status = "Interrupted" if interrupted else "Waiting" if waiting else "Failed"
        keep = status != "Failed"  # an interrupted or waiting stage keeps its work directory
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
        second deployment."""
        meta_path = self.stage_root / stage.name / "stage.json"
        try:
            meta = store.read_json(meta_path)
        except (OSError, ValueError):
            return False
        if not isinstance(meta, dict) or meta.get("status") not in DONE or not isinstance(meta.get("outputs"), dict):
            return False
        self._set(entry, status=meta["status"], outputs=meta["outputs"], cache_key=meta.get("cache_key"),
                  duration=meta.get("duration", 0.0), log=f"stages/{stage.name}/log.txt", adopted=True)
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
        if stage.kind in ("processing", "evaluation") and getattr(stage, "instance", None):
            h.update(json.dumps(self.resolve(stage.instance.count, stage)).encode())
        if stage.kind == "transform":
            h.update(self._batch_fallback_hash(stage).encode())
        for path in EMULATOR_CODE:
            h.update(path.read_bytes())
        return h.hexdigest()

    def _job(self, stage: Stage, work: Path, **kwargs) -> None:
        if self.stopping:
            raise StageFailed(stage.name, -signal.SIGKILL, "not started: the run is being stopped")
        job = Job(cwd=str(work), log=str(work / "log.txt"), **kwargs)
        timeout = stage.instance.max_runtime_seconds if getattr(stage, "instance", None) else None
        code, _ = self.workers.run(job, timeout=timeout)
        if code != 0:
            message = store.tail(work / "log.txt")
            if code < 0:
                message += f"\n(the stage process was killed by {supervise.signal_name(-code)})"
            raise StageFailed(stage.name, code, message)

    def _link(self, src: Path, dst: Path) -> None:
        """Map an upstream artifact into this stage's contract path (a directory)."""
        dst.mkdir(parents=True, exist_ok=True)
        items = [src] if src.is_file() else sorted(src.iterdir())
        for item in items:
            (dst / item.name).symlink_to(item.resolve())

    def _processing(self, stage: ProcessingStage, work: Path) -> dict:
        base = work / "opt/ml/processing"
        for name, value in stage.inputs.items():
            src = self._input_path(stage, name, value)
            self._link(src, base / "input" / name)
        for out in stage.outputs:
            (base / out).mkdir(parents=True, exist_ok=True)
        self._job(stage, work, script=str(stage.code.entry), argv=list(stage.arguments),
                  env={"MLPIPE_PROCESSING_DIR": str(base)})
        return {o: {"path": f"opt/ml/processing/{o}"} for o in stage.outputs}

    def _input_path(self, stage: Stage, name: str, value: Any) -> Path:
        if isinstance(value, ParamRef):
            path = self.local_data(value.name, value.name in self.options.params)
            if path is None:
                raise StageFailed(stage.name, 2, f"{stage.name}: input {name} (${value.name}) is an S3 URI; "
                                                 f"pass --param {value.name}=PATH")
            return path
        resolved = self.resolve(value, stage)
        if isinstance(resolved, str) and resolved.startswith("s3://"):
            return fetch(resolved, self.root / ".datasets", self.options.aws)[0]
        return Path(resolved)

    def _training(self, stage: TrainingStage, work: Path) -> dict:
        ml = work / "opt/ml"
        env = {"SM_MODEL_DIR": str(ml / "model"), "SM_INPUT_CONFIG_DIR": str(ml / "input/config"),
               "SM_OUTPUT_DATA_DIR": str(ml / "output/data"), "SM_CHECKPOINT_DIR": str(ml / "checkpoints"),
               "SM_CHANNELS": json.dumps(sorted(stage.inputs)), "SM_NUM_GPUS": "0", "SM_NUM_CPUS": "1",
               "SM_HOSTS": json.dumps(["algo-1"]), "SM_CURRENT_HOST": "algo-1",
               "SM_HPS": json.dumps(dict(stage.hyperparameters), sort_keys=True)}
        for channel, value in stage.inputs.items():
            self._link(self._input_path(stage, channel, value), ml / "input/data" / channel)
            env[f"SM_CHANNEL_{channel.upper()}"] = str(ml / "input/data" / channel)
        for d in ("model", "output/data", "checkpoints"):
            (ml / d).mkdir(parents=True, exist_ok=True)
        store.write_json(ml / "input/config/hyperparameters.json",
                         {k: str(v) for k, v in stage.hyperparameters.items()})
        out_tar = str(work / "outputs/model/model.tar.gz")
        if stage.image.kind == "algorithm":
            self._job(stage, work, call="workflows.local.stages:train_xgboost",
                      kwargs={"model_dir": env["SM_MODEL_DIR"], "out_tar": out_tar}, env=env)
        else:
            try:
                import importlib.util

                missing = importlib.util.find_spec("torch") is None
            except ValueError:
                missing = True
            if missing:
                raise StageFailed(stage.name, 2, "PyTorch is not installed; install the extra: "
                                                 ".venv/bin/pip install -e '.[torch]'")
            argv = [a for k, v in sorted(stage.hyperparameters.items()) for a in (f"--{k}", str(v))]
            self._job(stage, work, call="workflows.local.stages:train_script",
                      kwargs={"script": str(stage.entry_point.entry), "argv": argv,
                              "model_dir": env["SM_MODEL_DIR"], "out_tar": out_tar}, env=env)
        return {"model": {"path": "outputs/model"}}

    def _evaluation(self, stage: EvaluationStage, work: Path) -> dict:
        base = work / "opt/ml/processing"
        self._link(self._input_path(stage, "model", stage.inputs["model"]), base / "model")
        self._link(self._input_path(stage, "test", stage.inputs["test"]), base / "test")
        (base / "evaluation").mkdir(parents=True)
        self._job(stage, work, script=str(stage.code.entry), argv=["--problem-type", stage.problem_type],
                  env={"MLPIPE_PROCESSING_DIR": str(base)})
        return {"evaluation": {"path": "opt/ml/processing/evaluation"}}

    def _gate(self, stage: GateStage, work: Path) -> dict:
        threshold = self.options.gate_threshold if self.options.gate_threshold is not None else stage.threshold
        evaluation = self.resolve(stage.inputs["evaluation"], stage) / "evaluation.json"
        self._job(stage, work, call="workflows.local.stages:gate",
                  kwargs={"evaluation": str(evaluation), "metric": stage.metric,
                          "comparison": stage.comparison, "threshold": threshold})
        return {"passed": {"value": True}, "threshold": {"value": threshold},
                **self._result_outputs(work, ["value"])}

    def _model(self, stage: Stage, work: Path) -> dict:
        artifact = self.resolve(stage.inputs["model_data"], stage) / "model.tar.gz"
        name = f"{self.spec.name}-{stage.name}-{self.record['run_id'].rsplit('-', 1)[-1]}"[:63]
        image = {"kind": stage.image.kind, "name": stage.image.name, "version": stage.image.version}
        self._job(stage, work, call="workflows.local.stages:create_model",
                  kwargs={"name": name, "artifact": str(artifact), "image": image})
        return {"model_name": {"value": name}, "artifact": {"value": str(artifact)}}

    def _model_artifact(self, model_ref: OutputRef) -> Path:
        return Path(self.record["stages"][model_ref.stage]["outputs"]["artifact"]["value"])

    def _register(self, stage: Stage, work: Path) -> dict:
        entry = {"model_name": self.resolve(stage.inputs["model"], stage),
                 "artifact": str(self._model_artifact(stage.inputs["model"])),
                 "approval_status": self.resolve(stage.inputs["approval_status"], stage),
                 "metrics": self.metrics(), "run_id": self.record["run_id"], "stage": stage.name,
                 "image": {"name": stage.image.name, "version": stage.image.version},
                 "content_types": list(stage.content_types), "response_types": list(stage.response_types)}
        self._job(stage, work, call="workflows.local.stages:register",
                  kwargs={"runs_root": str(self.root), "group": stage.model_package_group, "entry": entry})
        return self._result_outputs(work, ["model_package_arn", "version", "group", "approval_status"])

    def _approval(self, stage: Stage, work: Path) -> dict:
        decision = self.record["approvals"].get(stage.name)  # set by `mlpipe approve RUN_ID`
        self._job(stage, work, call="workflows.local.stages:approval",
                  kwargs={"mode": self.options.approval, "decision": decision})
        verdict = decision or "approved"
        if verdict == "approved":
            # The registry says so before anything downstream (the endpoint) deploys.
            if decision is None:
                self._set_registered(stage, "Approved", f"approved automatically (--approval {self.options.approval})",
                                     only_pending=True)
            else:
                self._set_registered(stage, "Approved", "approved with `mlpipe approve`", only_pending=False)
        return {"decision": {"value": verdict}}

    def _ancestors(self, name: str) -> set[str]:
        found: set[str] = set()
        frontier = [name]
        while frontier:
            for up in self.spec.stage(frontier.pop()).upstream:
                if up not in found:
                    found.add(up)
                    frontier.append(up)
        return found

    def _set_registered(self, stage: Stage, status: str, reason: str, only_pending: bool) -> None:
        """Set the registry status of the versions this run registered upstream of ``stage``
        (idempotent), and record it in the register stages' outputs."""
        from workflows.local import registry

        ancestors = self._ancestors(stage.name)
        registers = [s for s in self.spec.stages if s.kind == "register" and s.name in ancestors] \
            or [s for s in self.spec.stages if s.kind == "register"]
        for s in registers:
            entry = self.record["stages"][s.name]
            outs = entry.get("outputs", {})
            if entry["status"] not in DONE or "version" not in outs or "group" not in outs:
                continue
            if only_pending and outs.get("approval_status", {}).get("value") != "PendingManualApproval":
                continue
            registry.set_status(self.root, outs["group"]["value"], str(outs["version"]["value"]), status, reason)
            with self._lock:
                outs["approval_status"] = {"value": status}
        self._save()

    def _test_csv(self) -> Path:
        for s in self.spec.stages:
            if isinstance(s, EvaluationStage):
                path = self.resolve(s.inputs["test"], s)
                return path / "test.csv" if path.is_dir() else path
        raise RuntimeError("no evaluation stage provides test rows")

    def _endpoint(self, stage: Stage, work: Path) -> dict:
        self._job(stage, work, call="workflows.local.stages:endpoint",
                  kwargs={"model_tar": str(self._model_artifact(stage.inputs["model"])),
                          "test_csv": str(self._test_csv()),
                          "capture": str(work / "outputs/data-capture/capture.jsonl"),
                          "percentage": stage.sampling_percentage if stage.data_capture else 0,
                          "endpoint_name": stage.endpoint_name})
        return {"endpoint_name": {"value": stage.endpoint_name},
                **self._result_outputs(work, ["url", "max_abs_diff", "matches_in_process_model"])}

    def _batch_input(self, stage: Stage, work: Path) -> Path:
        data = stage.inputs["data"]
        path = None
        if isinstance(data, ParamRef):
            path = self.local_data(data.name, data.name in self.options.params)
        if path is None:
            # No local batch file: score the test split's rows (features only, model-input format).
            path = work / "input/batch.csv"
            store.write_bytes(path, ("\n".join(feature_rows(self._test_csv())) + "\n").encode())
        return path

    def _batch_fallback_hash(self, stage: Stage) -> str:
        try:
            return tree_hash(self._test_csv())
        except Exception:
            return ""

    def _transform(self, stage: Stage, work: Path) -> dict:
        source = self._batch_input(stage, work)
        self._job(stage, work, call="workflows.local.stages:transform",
                  kwargs={"model_tar": str(self._model_artifact(stage.inputs["model"])),
                          "input_path": str(source), "output_dir": str(work / "outputs/predictions")})
        return {"predictions": {"path": "outputs/predictions"}, **self._result_outputs(work, ["rows"])}

    def _lambda(self, stage: Stage, work: Path) -> dict:
        from workflows.local.emulator import isolate_from_real_aws

        event = {k: self.resolve(v, stage) for k, v in stage.inputs.items()}
        event["execution_id"] = self.record["run_id"]
        env = isolate_from_real_aws({**dict(stage.environment), **self.emulator.env()})
        try:
            self._job(stage, work, call="workflows.local.stages:invoke_lambda",
                      kwargs={"handler": stage.handler, "event": event}, env=env)
        finally:
            self.emulator.save()
        outputs = self._result_outputs(work, ["result"])
        name = stage.environment.get("PARAMETER_NAME")
        if name:
            value = self.emulator.get_parameter(name)
            with self._lock:
                self.record.setdefault("ssm", {})[name] = value
            outputs["parameter"] = {"value": {"name": name, "value": value}}
        return outputs

    def _result_outputs(self, work: Path, keys: list[str]) -> dict:
        path = work / "result.json"
        result = store.read_json(path) if path.is_file() else {}
        return {k: {"value": result[k]} for k in keys if k in result}

    # --- summary -------------------------------------------------------------------------
    def metrics(self) -> dict[str, float]:
        for s in reversed(self.spec.stages):
            if isinstance(s, EvaluationStage) and self.record["stages"][s.name]["status"] in DONE:
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
            "parameters": self.record.get("parameters", {}),
            "metrics": self.metrics(),
            "model": {"name": model["outputs"]["model_name"]["value"], "artifact": artifact,
                      "sha256": tree_hash(Path(artifact))} if model and Path(artifact).exists() else None,
            "registry": {k: registered["outputs"][k]["value"] for k in ("group", "version", "model_package_arn",
                                                                         "approval_status")
                         if k in registered["outputs"]} if registered else None,
        }

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


def _link_tree(src: Path, dst: Path) -> None:
    """Copy a finished stage directory (reflinks where the filesystem can, else plain copies;
    never hard links, which a later write would change in both places)."""
    copy_tree(src, dst)


def _tail(log: Path, lines: int = 25) -> str:
    """The last lines of a stage log, bounded (see ``store.tail``)."""
    return store.tail(log, lines)
