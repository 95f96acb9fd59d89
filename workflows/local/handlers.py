"""How the local runner runs each stage kind: the container contract mapped into the stage's
work directory, the stage's process started through the warm workers, and its outputs read
back. One method per kind, in the ``HANDLERS`` table at the end (a test checks that its kinds
are steps.contract's).

A mixin of ``LocalRun`` (runner.py), which owns the run record, the schedule and the cache.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path
from types import MethodType
from typing import Any, Callable

from steps.contract import FRAMEWORK_MODEL_ENV, INPUT_CONFIG_DIR, KINDS, MODEL_DIR, PROCESSING, handler
from steps.spec import (
    BaselineStage, EvaluationStage, GateStage, OutputRef, ParamRef, ProcessingStage, Stage, TrainingStage, TuningStage,
)
from workflows.local import bookkeeping, store, supervise
from workflows.local.data import feature_rows, fetch, tree_hash
from workflows.local.record import DONE
from workflows.local.worker import Job


class StageFailed(Exception):
    def __init__(self, stage: str, code: int, message: str) -> None:
        self.stage, self.code, self.message = stage, code, message
        super().__init__(message)


def local_rel(container_path: str) -> str:
    """A container path (steps/contract.py) inside a stage's work directory, relative to it."""
    return container_path.lstrip("/")


def local(work: Path, container_path: str) -> Path:
    return work / local_rel(container_path)


class StageHandlers:
    def handler(self, stage: Stage) -> Callable[[Stage, Path], dict]:
        """This run's handler of ``stage``'s kind, from ``HANDLERS`` (below the class)."""
        return MethodType(handler(HANDLERS, stage, "local"), self)

    def _job(self, stage: Stage, work: Path, **kwargs) -> None:
        if self.stopping:
            raise StageFailed(stage.name, -signal.SIGKILL, "not started: the run is being stopped")
        job = Job(cwd=str(work), log=str(work / "log.txt"), **kwargs)
        timeout = stage.instance.max_runtime_seconds if getattr(stage, "instance", None) else None
        code, _ = self.workers.run(job, timeout=timeout, interpreter=self._interpreter(stage))
        if code != 0:
            message = store.tail(work / "log.txt")
            if code < 0:
                message += f"\n(the stage process was killed by {supervise.signal_name(-code)})"
            raise StageFailed(stage.name, code, message)

    def _inline(self, stage: Stage, work: Path, func: Callable[..., int], **kwargs) -> None:
        """A bookkeeping stage (bookkeeping.py) in this process: the same log, result and exit
        code as a stage process would leave, without one. An exception goes through the
        runner's handling like any handler's: unusable input (a damaged registry) is exit 2 with
        one message, a full disk stops the run, anything else fails the stage with its traceback
        in the log."""
        if self.stopping:
            raise StageFailed(stage.name, -signal.SIGKILL, "not started: the run is being stopped")
        code = func(work, **kwargs)
        if code != 0:
            raise StageFailed(stage.name, code, store.tail(work / "log.txt"))

    def _link(self, src: Path, dst: Path) -> None:
        """Map an upstream artifact into this stage's contract path (a directory)."""
        dst.mkdir(parents=True, exist_ok=True)
        items = [src] if src.is_file() else sorted(src.iterdir())
        for item in items:
            (dst / item.name).symlink_to(item.resolve())

    def _processing(self, stage: ProcessingStage, work: Path) -> dict:
        kind = KINDS[stage.kind]
        for name, value in stage.inputs.items():
            self._link(self._input_path(stage, name, value), local(work, kind.input_path(name)))
        for out in stage.outputs:
            local(work, kind.output_path(out)).mkdir(parents=True, exist_ok=True)
        self._job(stage, work, script=str(stage.code.entry), argv=list(stage.arguments),
                  env={"MLPIPE_PROCESSING_DIR": str(local(work, PROCESSING))})
        return {o: {"path": local_rel(kind.output_path(o))} for o in stage.outputs}

    def _input_path(self, stage: Stage, name: str, value: Any) -> Path:
        if isinstance(value, ParamRef):
            path = self.local_data(value.name, value.name in self.options.params)
            if path is None:
                raise StageFailed(stage.name, 2, f"{stage.name}: input {name} (${value.name}) is an S3 URI; "
                                                 f"pass --param {value.name}=PATH")
            return path
        resolved = self.resolve(value, stage)
        if isinstance(resolved, str) and resolved.startswith("s3://"):
            return fetch(resolved, self.root / ".datasets", self.aws_settings())[0]
        return Path(resolved)

    def _training(self, stage: TrainingStage, work: Path) -> dict:
        ml = work / "opt/ml"
        env = {"SM_MODEL_DIR": str(local(work, MODEL_DIR)), "SM_INPUT_CONFIG_DIR": str(local(work, INPUT_CONFIG_DIR)),
               "SM_OUTPUT_DATA_DIR": str(ml / "output/data"), "SM_CHECKPOINT_DIR": str(ml / "checkpoints"),
               "SM_CHANNELS": json.dumps(sorted(stage.inputs)), "SM_NUM_GPUS": "0", "SM_NUM_CPUS": "1",
               "SM_HOSTS": json.dumps(["algo-1"]), "SM_CURRENT_HOST": "algo-1",
               "SM_HPS": json.dumps(dict(stage.hyperparameters), sort_keys=True)}
        for channel, value in stage.inputs.items():
            path = local(work, KINDS["training"].channel_path(channel))
            self._link(self._input_path(stage, channel, value), path)
            env[f"SM_CHANNEL_{channel.upper()}"] = str(path)
        for d in ("model", "output/data", "checkpoints"):
            (ml / d).mkdir(parents=True, exist_ok=True)
        store.write_json(ml / "input/config/hyperparameters.json",
                         {k: str(v) for k, v in stage.hyperparameters.items()})
        out_tar = str(work / "outputs/model/model.tar.gz")
        if stage.image.kind == "algorithm" and self._interpreter(stage) is not None:
            # --exact: the container's own training code (envs.py), in its environment
            from workflows.local.envs import XGBOOST_DRIVER
            from workflows.local.stages import pack_model

            self._job(stage, work, script=str(XGBOOST_DRIVER), argv=["stage"], env=env)
            pack_model(env["SM_MODEL_DIR"], out_tar)
        elif stage.image.kind == "algorithm":
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

    def _tuning(self, stage: TuningStage, work: Path) -> dict:
        """Trials of the training template, max_parallel_jobs at a time, chosen by the strategy
        (local/tuning.py); the best trial's model is this stage's model."""
        from concurrent.futures import ThreadPoolExecutor
        from dataclasses import replace

        from workflows.local import tuning

        template, regex = stage.training, tuning.metric_regex(stage)
        next_batch = tuning.plan(stage)
        done: list[tuple[dict, float | None]] = []
        results: list[tuple[int, dict, float | None]] = []
        with ThreadPoolExecutor(max_workers=stage.max_parallel_jobs, thread_name_prefix="trial") as pool:
            while batch := next_batch(done):
                running = []
                for trial in batch:
                    number = len(done) + len(running) + 1
                    hps = {**template.hyperparameters, **{k: v for k, v in trial.items() if not k.startswith("_")}}
                    if trial.get("_rung") == 1 and "num_round" in hps:
                        hps["num_round"] = max(1, int(hps["num_round"]) // 3)
                    job = replace(template, name=f"{stage.name}-{number:03d}", hyperparameters=hps)
                    trial_dir = work / "trials" / f"{number:03d}"
                    trial_dir.mkdir(parents=True)
                    running.append((number, trial, pool.submit(self._trial, job, trial_dir, regex)))
                for number, trial, future in running:
                    value = future.result()
                    done.append((trial, value))
                    results.append((number, trial, value))
        final = [r for r in results if r[1].get("_rung") == 2] if stage.strategy == "Hyperband" else results
        winner = tuning.best(final or results, stage.objective_type == "Minimize")
        summary = {"objective": {"metric": stage.objective_metric, "type": stage.objective_type, "regex": regex},
                   "strategy": stage.strategy,
                   "trials": [{"trial": n, "hyperparameters": {k: v for k, v in t.items() if not k.startswith("_")},
                               "rung": t.get("_rung"), "objective": v} for n, t, v in results]}
        if winner is None:
            store.write_json(work / "outputs/tuning.json", summary)
            raise StageFailed(stage.name, 1, f"no trial reported {stage.objective_metric} (read with {regex!r}); "
                                             f"see {work.name}/trials/*/log.txt")
        number, trial, value = winner
        summary["best"] = {"trial": number, "objective": value,
                           "hyperparameters": {k: v for k, v in trial.items() if not k.startswith("_")}}
        store.write_json(work / "outputs/tuning.json", summary)
        from workflows.local.cache import copy_tree

        copy_tree(work / "trials" / f"{number:03d}" / "outputs/model", work / "outputs/model")
        self._log(work, f"tuning {stage.name}: {len(results)} trials ({stage.strategy}); best trial {number}: "
                        f"{stage.objective_metric} = {value:.6g}")
        return {"model": {"path": "outputs/model"}, "best_trial": {"value": number},
                "objective": {"value": value}, "best_hyperparameters": {"value": summary["best"]["hyperparameters"]}}

    def _trial(self, job: TrainingStage, work: Path, regex: str) -> float | None:
        """One training job of a tuning stage; its objective as the service reads it (None if
        it failed or reported nothing: such a trial never wins)."""
        from workflows.local import tuning

        try:
            self._training(job, work)
        except StageFailed:
            return None
        log = work / "log.txt"
        return tuning.read_objective(log.read_text(errors="replace"), regex) if log.is_file() else None

    def _evaluation(self, stage: EvaluationStage, work: Path) -> dict:
        kind = KINDS[stage.kind]
        for name in ("model", "test"):
            self._link(self._input_path(stage, name, stage.inputs[name]), local(work, kind.input_path(name)))
        local(work, kind.output_path("evaluation")).mkdir(parents=True)
        self._job(stage, work, script=str(stage.code.entry), argv=["--problem-type", stage.problem_type],
                  env={"MLPIPE_PROCESSING_DIR": str(local(work, PROCESSING))})
        return {"evaluation": {"path": local_rel(kind.output_path("evaluation"))}}

    def _gate(self, stage: GateStage, work: Path) -> dict:
        threshold = self.options.gate_threshold if self.options.gate_threshold is not None else stage.threshold
        evaluation = self.resolve(stage.inputs["evaluation"], stage) / "evaluation.json"
        self._inline(stage, work, bookkeeping.gate, evaluation=str(evaluation), metric=stage.metric,
                     comparison=stage.comparison, threshold=threshold)
        return {"passed": {"value": True}, "threshold": {"value": threshold},
                **self._result_outputs(work, ["value"])}

    def _model(self, stage: Stage, work: Path) -> dict:
        artifact = self.resolve(stage.inputs["model_data"], stage) / "model.tar.gz"
        name = f"{self.spec.name}-{stage.name}-{self.record['run_id'].rsplit('-', 1)[-1]}"[:63]
        image = {"kind": stage.image.kind, "name": stage.image.name, "version": stage.image.version}
        self._inline(stage, work, bookkeeping.create_model, name=name, artifact=str(artifact), image=image)
        return {"model_name": {"value": name}, "artifact": {"value": str(artifact)}}

    def _model_artifact(self, model_ref: OutputRef) -> Path:
        return Path(self.record["stages"][model_ref.stage]["outputs"]["artifact"]["value"])

    def _register(self, stage: Stage, work: Path) -> dict:
        entry = {"model_name": self.resolve(stage.inputs["model"], stage),
                 "artifact": str(self._model_artifact(stage.inputs["model"])),
                 "approval_status": self.resolve(stage.inputs["approval_status"], stage),
                 "metrics": self.metrics(stage.inputs["metrics"].stage if "metrics" in stage.inputs else None),
                 "run_id": self.record["run_id"], "stage": stage.name, **self._item_of(stage),
                 "image": {"name": stage.image.name, "version": stage.image.version},
                 "content_types": list(stage.content_types), "response_types": list(stage.response_types)}
        self._inline(stage, work, bookkeeping.register, runs_root=str(self.root), group=stage.model_package_group,
                     entry=entry)
        return self._result_outputs(work, ["model_package_arn", "version", "group", "approval_status"])

    def _item_of(self, stage: Stage) -> dict:
        """A fan-out copy's item, recorded on its registry version (and in the run's lineage)."""
        from steps.fanout import item_metadata

        meta = item_metadata(self.spec, stage.name)
        return {"foreach": meta["mlpipe:foreach"], "item": meta["mlpipe:item"]} if meta else {}

    def _approval(self, stage: Stage, work: Path) -> dict:
        decision = self.record["approvals"].get(stage.name)  # set by `mlpipe approve RUN_ID`
        self._inline(stage, work, bookkeeping.approval, mode=self.options.approval, decision=decision)
        verdict = decision or "approved"
        if verdict == "approved":
            # The registry says so before anything downstream (the endpoint) deploys.
            if decision is None:
                self._set_registered(stage, "Approved", f"approved automatically (--approval {self.options.approval})",
                                     only_pending=True)
            else:
                self._set_registered(stage, "Approved", "approved with `mlpipe approve`", only_pending=False)
        return {"decision": {"value": verdict}}

    def _set_registered(self, stage: Stage, status: str, reason: str, only_pending: bool) -> None:
        """Set the registry status of the versions this run registered upstream of ``stage``
        (idempotent), and record it in the register stages' outputs."""
        from workflows.local import registry

        from steps.pipeline import ancestry

        ancestors = ancestry(self.spec.stages)[stage.name]
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
        capture = work / "outputs/data-capture/capture.jsonl"
        self._job(stage, work, call="workflows.local.stages:endpoint",
                  kwargs={"model_tar": str(self._model_artifact(stage.inputs["model"])),
                          "test_csv": str(self._test_csv()), "capture": str(capture),
                          "percentage": stage.sampling_percentage if stage.data_capture else 0,
                          "endpoint_name": stage.endpoint_name, "env": dict(FRAMEWORK_MODEL_ENV)})
        outputs = {"endpoint_name": {"value": stage.endpoint_name},
                   **self._result_outputs(work, ["url", "max_abs_diff", "matches_in_process_model"])}
        if stage.monitoring_schedule and capture.is_file():
            # the schedule's first execution: the captured requests against the baseline (a report,
            # never a failed deployment; on AWS violations notify the topic)
            self._job(stage, work, call="workflows.local.monitor:stage_execution", kwargs={
                "statistics": str(self.resolve(stage.inputs["statistics"], stage)),
                "constraints": str(self.resolve(stage.inputs["constraints"], stage)),
                "data": str(capture), "out_dir": str(work / "outputs/monitoring"),
                "schedule": stage.monitoring_schedule})
            outputs["monitoring"] = {"path": "outputs/monitoring"}
            outputs.update({f"monitoring_{k}": v for k, v in self._result_outputs(work, ["violations"]).items()})
        return outputs

    def _baseline(self, stage: BaselineStage, work: Path) -> dict:
        """Model Monitor's statistics.json and constraints.json of the stage's data, computed by
        the built-in script from the analyzer's own environment (on AWS the analyzer image runs)."""
        from steps.assets import CODE_DIR as SCRIPTS

        kind = KINDS[stage.kind]
        source, output = local(work, kind.input_path("data")), local(work, kind.output_path("baseline"))
        self._link(self._input_path(stage, "data", stage.inputs["data"]), source)
        output.mkdir(parents=True, exist_ok=True)
        self._job(stage, work, script=str(SCRIPTS / "baseline.py"), env={
            "dataset_source": str(source), "output_path": str(output), "publish_cloudwatch_metrics": "Disabled",
            "dataset_format": json.dumps({"csv": {"header": stage.header, "output_columns_position": "START"}})})
        folder = local_rel(kind.output_path("baseline"))
        return {"statistics": {"path": f"{folder}/statistics.json"}, "constraints": {"path": f"{folder}/constraints.json"}}

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

    def _batch_fallback_hash(self) -> str:
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
        from workflows.local.emulator import REGION, isolate_from_real_aws

        event = {k: self.resolve(v, stage) for k, v in stage.inputs.items()}
        event["execution_id"] = self.record["run_id"]
        env = isolate_from_real_aws({**dict(stage.environment), **self.emulator.env()})
        parameters_file = work / "ssm-parameters.json"
        try:
            self._job(stage, work, call="workflows.local.stages:invoke_lambda",
                      kwargs={"handler": stage.handler, "event": event, "parameters_file": str(parameters_file),
                              "region": REGION},
                      env=env)
        finally:
            parameters = store.read_json(parameters_file) if parameters_file.is_file() else {}
            self.emulator.save(parameters)
        outputs = self._result_outputs(work, ["result"])
        name = stage.environment.get("PARAMETER_NAME")
        if name:
            value = parameters.get(name)
            with self._lock:
                self.record.setdefault("ssm", {})[name] = value
            outputs["parameter"] = {"value": {"name": name, "value": value}}
        return outputs

    def _result_outputs(self, work: Path, keys: list[str]) -> dict:
        path = work / "result.json"
        result = store.read_json(path) if path.is_file() else {}
        return {k: {"value": result[k]} for k in keys if k in result}


# Each stage kind's handler: one method of StageHandlers per kind in steps.contract.KINDS
# (tests/test_architecture.py checks that the two have the same kinds).
HANDLERS: dict[str, Callable[..., dict]] = {
    "processing": StageHandlers._processing, "training": StageHandlers._training,
    "evaluation": StageHandlers._evaluation, "gate": StageHandlers._gate, "model": StageHandlers._model,
    "register": StageHandlers._register, "approval": StageHandlers._approval, "endpoint": StageHandlers._endpoint,
    "transform": StageHandlers._transform, "lambda": StageHandlers._lambda, "tuning": StageHandlers._tuning,
    "baseline": StageHandlers._baseline,
}
