"""Render a PipelineSpec as an AWS Step Functions state machine with the ``stepfunctions`` SDK.

The only module that imports ``stepfunctions`` (unmaintained; it pins the sagemaker v2 API);
the sagemaker objects it takes come through ``render/sdk.py``.
The SDK builds each state; what it cannot express (intrinsic functions, ResultSelector,
Fail's ErrorPath/CausePath) is added in one place, ``finalize()``: every dynamic value is
handed to the SDK as an opaque marker string and rewritten there to a ``"Key.$"`` field.

State data layout:
    $.parameters   pipeline parameters: declared defaults merged with the execution input
    $.run          {"execution": $$.Execution.Name, "hash": MD5 of it (32 hex chars)}
    $.stages.<id>  each stage's trimmed result (ResultSelector), e.g. $.stages.train.model

Job names: ``<pipeline>-<stage>-<md5(execution name)>-<redrive count><retry count>``, computed
inside the state machine with States.Format, at most 63 characters of [a-z0-9-]. The hash makes two executions
(scheduled ones too) differ; ``$$.State.RetryCount`` makes a retry differ from its first attempt,
and ``$$.Execution.RedriveCount`` a redriven attempt (``mlpipe resume``) from the failed one. A
failed task is not caught: the execution fails at that task, with its error and cause, so a
redrive restarts it there.

The SDK's partition lookup for each integration ARN is asked once per region (``_partition_once``).

The module is long on purpose: one method per stage kind (the SDK's own states.py layout), plus
the assembly and ``finalize()``, which do what the SDK cannot.
"""

from __future__ import annotations

import contextlib
import functools
import json
import re
from typing import Any

from workflows.render.asl import walk as asl_walk
from workflows.render.fanout_states import FanOutStates, complete_map
from workflows.render.sdk import (
    BASELINE_INPUT, BASELINE_OUTPUT, RendererBase, baseline_environment, inference_image_uri, isolated_env,
    monitor_image_uri, sdk_estimator, sdk_processor, sdk_tuner,
)

from sagemaker.inputs import TrainingInput
from sagemaker.model import Model
from sagemaker.model_monitor import DataCaptureConfig
from sagemaker.processing import ProcessingInput, ProcessingOutput, Processor
from sagemaker.pytorch import PyTorchModel
from sagemaker.transformer import Transformer
from stepfunctions.steps import (
    Catch, Chain, Choice, ChoiceRule, EndpointConfigStep, EndpointStep, Fail, LambdaStep, Map, ModelStep,
    Parallel, Pass, ProcessingStep, Retry, Succeed, Task, TrainingStep, TransformStep, TuningStep, Wait,
)
from stepfunctions.steps import integration_resources
from stepfunctions.workflow import Workflow

from steps import fanout, naming
from steps import pipeline
from steps.contract import CODE_DIR, FRAMEWORK_MODEL_ENV, KINDS, handler
from steps.spec import (
    ApprovalStage, BaselineStage, EndpointStage, EvaluationStage, GateStage, ItemRef, LambdaStage, ModelStage, OutputRef,
    ParamRef, PipelineSpec, ProcessingStage, RegisterStage, Stage, TrainingStage, TransformStage, TuningStage,
)
from lambda_handlers.monitoring_schedule import schedule_config

HASH = "$.run.hash"
RETRY = "$$.State.RetryCount"
REDRIVE = "$$.Execution.RedriveCount"
SAGEMAKER_RETRY_ATTEMPTS = 2          # keeps the retry count to one digit in job names
DONE = "pipeline-succeeded"
APPROVAL_DECLINED = "Rejected"        # error name `mlpipe reject` sends; caught, ends the run cleanly

_MARK = re.compile(r"^<<ASL:(.*)>>$", re.S)


def dyn(expr: str) -> str:
    """An ASL path or intrinsic, smuggled through the SDK as a string; see finalize()."""
    return f"<<ASL:{expr}>>"


def fmt(template: str, *args: str) -> str:
    """States.Format with a literal template (quotes and braces in it escaped)."""
    literal = template.replace("\\", "\\\\").replace("'", "\\'")
    return f"States.Format('{literal}', {', '.join(args)})" if args else f"'{literal}'"


def state_id(stage_name: str) -> str:
    return stage_name.replace("-", "_")


def job_name(spec: PipelineSpec, stage: str) -> str:
    """A fan-out member's carries its item's key (``steps.fanout.job_prefix``; fanout_states.py)."""
    key = ("-{}", "$.item.key") if fanout.keyed(spec, stage) else ("", None)
    return dyn(fmt(fanout.job_prefix(spec, stage) + key[0] + "-{}-{}{}", *filter(None, (key[1], HASH, REDRIVE, RETRY))))


def run_name(spec: PipelineSpec, stage: str) -> str:
    """A per-execution name (no retry part) that later states can recompute, e.g. a model."""
    key = ("-{}", "$.item.key") if fanout.keyed(spec, stage) else ("", None)
    return dyn(fmt(fanout.job_prefix(spec, stage) + key[0] + "-{}", *filter(None, (key[1], HASH))))


class _Renderer(FanOutStates, RendererBase):
    def __init__(self, spec: PipelineSpec) -> None:
        super().__init__(spec)
        self.selectors: dict[str, dict[str, str]] = {}
        self.patches: dict[str, dict[str, Any]] = {}
        self.maps: dict[str, dict[str, Any]] = {}   # Map state -> what complete_map adds

    # --- references ----------------------------------------------------------------------
    def path(self, v: Any) -> Any:
        """A spec value as an ASL value: parameters and stage outputs become markers."""
        if isinstance(v, ParamRef):
            return dyn(f"$.parameters.{v.name}")
        if isinstance(v, OutputRef):
            return dyn(f"$.stages.{state_id(v.stage)}.{v.output}")
        if isinstance(v, ItemRef):
            return dyn("$.item.value")
        return v

    def run_uri(self, stage: str, *parts: str) -> str:
        template, args = self.run_key(stage, *parts)
        return dyn(fmt(f"{self.spec.s3_root}/{template}", *args))

    def tags(self) -> dict[str, str]:
        """Lineage on every SageMaker resource: which run made it, from which config."""
        return {"mlpipe:pipeline": self.spec.name, "mlpipe:config-hash": self.spec.fingerprint,
                "mlpipe:run-id": dyn("$.run.execution")}

    def result_path(self, stage: Stage) -> str:
        return f"$.stages.{state_id(stage.name)}"

    def guard(self, task, selector: dict[str, str] | None, sagemaker_job: bool = False):
        if selector is not None:
            self.selectors[task.state_id] = selector
        if sagemaker_job:
            # API errors (throttling, capacity) are retried; the new attempt gets a new job name.
            task.add_retry(Retry(error_equals=["SageMaker.AmazonSageMakerException"], interval_seconds=30,
                                 max_attempts=SAGEMAKER_RETRY_ATTEMPTS, backoff_rate=2.0))
        # No catch-all: a failed task fails the execution in place, with its own error and
        # cause, so a redrive (`mlpipe resume`) restarts that very task.
        return task

    # --- one method per stage kind; each returns the states of that stage, in order ------
    def processor(self, s: ProcessingStage | EvaluationStage):
        return sdk_processor(s, region=self.spec.region, role=self.role, session=self.session,
                             instance_count=self.path(s.instance.count))

    def processing(self, s: ProcessingStage) -> list:
        return [self._processing_job(s, self.processor(s), {k: v for k, v in s.inputs.items()}, list(s.outputs),
                                     list(s.arguments))]

    def evaluation(self, s: EvaluationStage) -> list:
        return [self._processing_job(s, self.processor(s), dict(s.inputs), ["evaluation"],
                                     ["--problem-type", s.problem_type])]

    def _processing_job(self, s: Stage, processor, inputs: dict, outputs: list[str], arguments: list[str]):
        kind = KINDS[s.kind]
        step = ProcessingStep(
            s.name, processor=processor, job_name=job_name(self.spec, s.name),
            inputs=[ProcessingInput(source=self.path(v), input_name=k, destination=kind.input_path(k))
                    for k, v in inputs.items()]
            + [ProcessingInput(source=s.code.uri, destination=CODE_DIR, input_name="code")],
            outputs=[ProcessingOutput(output_name=o, source=kind.output_path(o),
                                      destination=self.run_uri(s.name, o)) for o in outputs],
            container_entrypoint=["python3", f"{CODE_DIR}/{s.code.name}"],
            container_arguments=self.container_arguments(arguments),
            result_path=self.result_path(s), tags=self.tags(),
        )
        selector = {"job_name.$": "$.ProcessingJobName"}
        selector.update({f"{o}.$": f"$.ProcessingOutputConfig.Outputs[{i}].S3Output.S3Uri"
                         for i, o in enumerate(outputs)})
        return self.guard(step, selector, sagemaker_job=True)

    def estimator(self, s: TrainingStage, output_path: str | None = None):
        return sdk_estimator(s, region=self.spec.region, role=self.role, session=self.session,
                             instance_count=self.path(s.instance.count),
                             output_path=output_path or s.output_path or self.run_uri(s.name))

    def training(self, s: TrainingStage) -> list:
        estimator = self.estimator(s)
        step = TrainingStep(
            s.name, estimator=estimator, job_name=job_name(self.spec, s.name),
            data={k: TrainingInput(self.path(v), content_type=s.content_type) for k, v in s.inputs.items()},
            result_path=self.result_path(s), tags=self.tags(),
        )
        as_the_sagemaker_sdk_sends(step.parameters, estimator)
        return [self.guard(step, {"job_name.$": "$.TrainingJobName",
                                  "model.$": "$.ModelArtifacts.S3ModelArtifacts"}, sagemaker_job=True)]

    def tuning(self, s: TuningStage) -> list:
        """createHyperParameterTuningJob.sync over the training template; the best training job's
        artifact is ``<output path>/<best job>/output/model.tar.gz``, read from the result.
        Tuning job names are at most 32 characters: the stage's short prefix and 8 random hex
        digits (a retry or a redrive gets a new one)."""
        t = s.training
        tuner = sdk_tuner(s, self.estimator(t, output_path=self.run_uri(s.name)))
        name = dyn(fmt(naming.tuning_job_prefix(self.spec.name, s.name) + "-{}",
                       "States.ArrayGetItem(States.StringSplit(States.UUID(), '-'), 0)"))
        step = TuningStep(s.name, tuner=tuner, job_name=name, tags=self.tags(), result_path=self.result_path(s),
                          data={k: TrainingInput(self.path(v), content_type=t.content_type) for k, v in s.inputs.items()})
        if s.random_seed is not None:  # the SDK's request builder predates RandomSeed
            step.parameters["HyperParameterTuningJobConfig"]["RandomSeed"] = s.random_seed
        return [self.guard(step, {
            "job_name.$": "$.HyperParameterTuningJobName",
            "best_training_job.$": "$.BestTrainingJob.TrainingJobName",
            "model.$": "States.Format('{}/{}/output/model.tar.gz', $.TrainingJobDefinition.OutputDataConfig."
                       "S3OutputPath, $.BestTrainingJob.TrainingJobName)"}, sagemaker_job=True)]

    def gate(self, s: GateStage) -> list:
        """Read evaluation.json with the S3 SDK integration (no Lambda), then compare."""
        evaluation = s.inputs["evaluation"].stage
        key, args = self.run_key(evaluation, "evaluation", "evaluation.json")
        read = Task(f"{s.name}-read", resource=self.arns.sdk_integration("s3", "getObject"),
                    parameters={"Bucket": self.spec.bucket,
                                "Key": dyn(fmt(f"{self.spec.prefix}/{key}".lstrip("/"), *args))},
                    result_path=self.result_path(s))
        self.guard(read, {"metrics.$": "States.StringToJson($.Body)"})
        value = f"{self.result_path(s)}.metrics.{s.json_path}"
        fail = Fail(f"{s.name}-failed", error="QualityGateFailed")
        self.patches[fail.state_id] = {"CausePath": fmt(
            f"Quality gate failed: {s.metric} = {{}} is not {s.comparison} {s.threshold:g}", value)}
        rule = {"<=": ChoiceRule.NumericLessThanEquals, "<": ChoiceRule.NumericLessThan,
                ">=": ChoiceRule.NumericGreaterThanEquals, ">": ChoiceRule.NumericGreaterThan}[s.comparison]
        choice = Choice(s.name, comment=f"quality gate: {s.describe()}")
        choice.default_choice(fail)
        self._gate_rules[choice.state_id] = rule(variable=value, value=s.threshold)
        return [read, choice]

    def model(self, s: ModelStage) -> list:
        training = self.spec.stage(s.inputs["model_data"].stage)
        model_data = self.path(s.inputs["model_data"])
        if s.image.kind == "algorithm":
            model = Model(image_uri=inference_image_uri(s.image, self.spec.region, s.instance.type),
                          model_data=model_data, role=self.role, sagemaker_session=self.session)
        else:
            model = PyTorchModel(model_data=model_data, framework_version=training.image.version,
                                 py_version=training.image.py_version, role=self.role,
                                 sagemaker_session=self.session, env=dict(FRAMEWORK_MODEL_ENV),
                                 image_uri=inference_image_uri(s.image, self.spec.region, s.instance.type))
        step = ModelStep(s.name, model=model, model_name=run_name(self.spec, s.name),
                         instance_type=s.instance.type, result_path=self.result_path(s), tags=self.tags())
        # CreateModel returns only the ARN; the name is its last path segment.
        return [self.guard(step, {"model_name.$": "States.ArrayGetItem(States.StringSplit($.ModelArn, '/'), 1)"})]

    def register(self, s: RegisterStage) -> list:
        model_stage = self.spec.stage(s.inputs["model"].stage)
        parameters: dict[str, Any] = {
            "ModelPackageGroupName": self.package_group(s),
            "ModelPackageDescription": dyn(fmt(f"{self.spec.name} model from execution {{}}", "$.run.execution")),
            "ModelApprovalStatus": self.path(s.inputs["approval_status"]),
            "InferenceSpecification": {
                "Containers": [{"Image": inference_image_uri(s.image, self.spec.region, model_stage.instance.type),
                                "ModelDataUrl": self.path(s.inputs["model_data"])}],
                "SupportedContentTypes": list(s.content_types),
                "SupportedResponseMIMETypes": list(s.response_types),
                "SupportedRealtimeInferenceInstanceTypes": list(s.inference_instances),
                "SupportedTransformInstanceTypes": list(s.transform_instances),
            },
            "Tags": [{"Key": k, "Value": v} for k, v in self.tags().items()],
        }
        if self.item_metadata(s):
            parameters["CustomerMetadataProperties"] = self.item_metadata(s)
        if "metrics" in s.inputs:
            metrics = s.inputs["metrics"].stage
            parameters["ModelMetrics"] = {"ModelQuality": {"Statistics": {
                "ContentType": "application/json",
                "S3Uri": self.run_uri(metrics, "evaluation", "evaluation.json")}}}
        task = Task(s.name, resource=self.arns.sdk_integration("sagemaker", "createModelPackage"),
                    parameters=parameters, result_path=self.result_path(s))
        return [self.guard(task, {"model_package_arn.$": "$.ModelPackageArn"})]

    def approval(self, s: ApprovalStage) -> list:
        """Publish what is to be approved, with the task token, and wait for `mlpipe approve`."""
        parts, args = [f"Approval needed for pipeline {self.spec.name}, execution {{}}."], ["$.run.execution"]
        if "model_package" in s.inputs:
            parts.append("Model package: {}.")
            args.append(f"$.stages.{state_id(s.inputs['model_package'].stage)}.model_package_arn")
        gate = next((g for g in self.spec.stages if g.kind == "gate"), None)
        if gate is not None:
            parts.append(f"{gate.metric} = {{}} (gate: {gate.describe()}).")
            args.append(f"$.stages.{state_id(gate.name)}.metrics.{gate.json_path}")
        parts.append(f"Approve: mlpipe approve {{}} --config <config>   "
                     f"Reject: mlpipe reject {{}} --reason ... (times out after {s.timeout_seconds}s)")
        args += ["$.run.execution", "$.run.execution"]
        task = Task(s.name, resource=self.arns.integration("sns", "publish.waitForTaskToken"), timeout_seconds=s.timeout_seconds,
                    parameters={
                        "TopicArn": self.arns.topic(),
                        "Subject": f"mlpipe: approve the new {self.spec.name} model?",
                        "Message": dyn(fmt(" ".join(parts), *args)),
                        "MessageAttributes": {"TaskToken": {"DataType": "String", "StringValue": dyn("$$.Task.Token")}},
                    }, result_path=self.result_path(s))
        declined = Succeed(f"{s.name}-declined", comment="Rejected or timed out: the run ends without deploying.")
        task.add_catch(Catch(error_equals=[APPROVAL_DECLINED, "States.Timeout"], next_step=declined,
                             result_path="$.approval_error"))
        return [self.guard(task, {"decision.$": "$.decision"})]

    def endpoint(self, s: EndpointStage) -> list:
        """EndpointConfig (with data capture), then create the endpoint or update it in place."""
        config_name = run_name(self.spec, f"{s.name}-cfg")
        capture = DataCaptureConfig(enable_capture=s.data_capture, sampling_percentage=s.sampling_percentage,
                                    destination_s3_uri=f"{self.spec.s3_root}/data-capture/{s.endpoint_name}",
                                    sagemaker_session=self.session) if s.data_capture else None
        cfg = EndpointConfigStep(f"{s.name}-config", endpoint_config_name=config_name,
                                 model_name=self.path(s.inputs["model"]),
                                 initial_instance_count=self.path(s.instance.count),
                                 instance_type=s.instance.type, data_capture_config=capture,
                                 result_path=f"$.stages.{state_id(s.name)}_config")
        self.guard(cfg, {"endpoint_config_arn.$": "$.EndpointConfigArn"})
        find = Task(f"{s.name}-find", resource=self.arns.sdk_integration("sagemaker", "listEndpoints"),
                    parameters={"NameContains": s.endpoint_name, "MaxResults": 100},
                    result_path=f"$.stages.{state_id(s.name)}_existing")
        self.guard(find, {"names.$": "$.Endpoints[*].EndpointName"})
        exists = Pass(f"{s.name}-exists", parameters={
            "exists": dyn(f"States.ArrayContains($.stages.{state_id(s.name)}_existing.names, '{s.endpoint_name}')")},
            result_path=f"$.stages.{state_id(s.name)}_existing")
        create = EndpointStep(f"{s.name}-create", endpoint_name=s.endpoint_name, endpoint_config_name=config_name,
                              result_path=self.result_path(s))
        update = EndpointStep(f"{s.name}-update", endpoint_name=s.endpoint_name, endpoint_config_name=config_name,
                              update=True, result_path=self.result_path(s))
        for t in (create, update):
            self.guard(t, {"endpoint_arn.$": "$.EndpointArn"})
        choice = Choice(f"{s.name}-exists?")
        choice.add_choice(ChoiceRule.BooleanEquals(f"$.stages.{state_id(s.name)}_existing.exists", True), update)
        choice.default_choice(create)
        join = Pass(f"{s.name}-done", parameters={"endpoint_name": s.endpoint_name}, result_path=self.result_path(s))
        create.next(join)
        update.next(join)
        self._joins[choice.state_id] = join
        return [cfg, find, exists, choice] + (self._monitoring(s) if s.monitoring_schedule else [])

    def _monitoring(self, s: EndpointStage) -> list:
        """Wait until the endpoint is InService, then create its data-quality monitoring schedule,
        or update it when the endpoint has it already: the request the SageMaker target's
        scheduler function sends (``lambda_handlers/monitoring_schedule.py`` builds both)."""
        sid, name = state_id(s.name), naming.monitoring_schedule_name(self.spec.name, s.name)
        sdk = functools.partial(self.arns.sdk_integration, "sagemaker")
        status = Task(f"{s.name}-status", resource=sdk("describeEndpoint"),
                      parameters={"EndpointName": s.endpoint_name}, result_path=f"$.stages.{sid}_status")
        self.guard(status, {"status.$": "$.EndpointStatus"})
        wait = Wait(f"{s.name}-wait", seconds=60, comment="Creating or Updating: look again in a minute.")
        wait.next(status)
        ready = Choice(f"{s.name}-in-service?")
        ready.add_choice(ChoiceRule.StringEquals(f"$.stages.{sid}_status.status", "Failed"),
                         Fail(f"{s.name}-failed", error="EndpointFailed",
                              cause=f"endpoint {s.endpoint_name} failed; no monitoring schedule was attached"))
        ready.default_choice(wait)
        self._gate_rules[ready.state_id] = ChoiceRule.StringEquals(f"$.stages.{sid}_status.status", "InService")
        find = Task(f"{s.name}-schedule-find", resource=sdk("listMonitoringSchedules"),
                    parameters={"EndpointName": s.endpoint_name, "NameContains": name, "MaxResults": 100},
                    result_path=f"$.stages.{sid}_schedules")
        self.guard(find, {"names.$": "$.MonitoringScheduleSummaries[*].MonitoringScheduleName"})
        exists = Pass(f"{s.name}-schedule-exists", result_path=f"$.stages.{sid}_schedules", parameters={
            "exists": dyn(f"States.ArrayContains($.stages.{sid}_schedules.names, '{name}')")})
        config = schedule_config(
            endpoint_name=s.endpoint_name, statistics_uri=self.path(s.inputs["statistics"]),
            constraints_uri=self.path(s.inputs["constraints"]), schedule_expression=s.monitoring_schedule,
            image_uri=monitor_image_uri(self.spec.region), role_arn=self.role,
            output_uri=f"{self.spec.s3_root}/monitoring/{s.endpoint_name}", instance_type=s.monitoring_instance.type,
            volume_gb=s.monitoring_instance.volume_gb, max_runtime_seconds=s.monitoring_instance.max_runtime_seconds)
        create = Task(f"{s.name}-schedule-create", resource=sdk("createMonitoringSchedule"),
                      result_path=f"$.stages.{sid}_schedule", parameters={
                          "MonitoringScheduleName": name, "MonitoringScheduleConfig": config,
                          "Tags": [{"Key": k, "Value": v} for k, v in self.tags().items()]})
        update = Task(f"{s.name}-schedule-update", resource=sdk("updateMonitoringSchedule"),
                      result_path=f"$.stages.{sid}_schedule",
                      parameters={"MonitoringScheduleName": name, "MonitoringScheduleConfig": config})
        for t in (create, update):
            self.guard(t, {"monitoring_schedule_arn.$": "$.MonitoringScheduleArn"})
        choice = Choice(f"{s.name}-schedule-exists?")
        choice.add_choice(ChoiceRule.BooleanEquals(f"$.stages.{sid}_schedules.exists", True), update)
        choice.default_choice(create)
        join = Pass(f"{s.name}-monitored", result_path=self.result_path(s),
                    parameters={"endpoint_name": s.endpoint_name, "monitoring_schedule": name})
        create.next(join)
        update.next(join)
        self._joins[choice.state_id] = join
        return [status, ready, find, exists, choice]

    def baseline(self, s: BaselineStage) -> list:
        """Model Monitor's analyzer image as a processing job, with the environment the sagemaker
        SDK's DefaultModelMonitor.suggest_baseline gives it; statistics.json and constraints.json
        land in the stage's run folder, and the stage's outputs are their S3 URIs."""
        kind = KINDS[s.kind]
        source, output = kind.input_path("data"), kind.output_path("baseline")
        processor = Processor(
            role=self.role, image_uri=monitor_image_uri(self.spec.region), instance_count=self.path(s.instance.count),
            instance_type=s.instance.type, volume_size_in_gb=s.instance.volume_gb,
            max_runtime_in_seconds=s.instance.max_runtime_seconds, sagemaker_session=self.session,
            env=baseline_environment(s.header, source, output))
        step = ProcessingStep(
            s.name, processor=processor, job_name=job_name(self.spec, s.name),
            inputs=[ProcessingInput(source=self.path(s.inputs["data"]), destination=source, input_name=BASELINE_INPUT)],
            outputs=[ProcessingOutput(output_name=BASELINE_OUTPUT, source=output,
                                      destination=self.run_uri(s.name, "baseline"))],
            result_path=self.result_path(s), tags=self.tags())
        report = "$.ProcessingOutputConfig.Outputs[0].S3Output.S3Uri"
        return [self.guard(step, {"job_name.$": "$.ProcessingJobName",
                                  "statistics.$": f"States.Format('{{}}/statistics.json', {report})",
                                  "constraints.$": f"States.Format('{{}}/constraints.json', {report})"},
                           sagemaker_job=True)]

    def transform(self, s: TransformStage) -> list:
        transformer = Transformer(model_name=self.path(s.inputs["model"]), instance_type=s.instance.type,
                                  instance_count=self.path(s.instance.count), output_path=self.run_uri(s.name),
                                  accept=s.content_type, assemble_with="Line", sagemaker_session=self.session)
        step = TransformStep(s.name, transformer=transformer, job_name=job_name(self.spec, s.name),
                             model_name=self.path(s.inputs["model"]), data=self.path(s.inputs["data"]),
                             content_type=s.content_type, split_type="Line", join_source="Input",
                             result_path=self.result_path(s), tags=self.tags())
        return [self.guard(step, {"job_name.$": "$.TransformJobName",
                                  "predictions.$": "$.TransformOutput.S3OutputPath"}, sagemaker_job=True)]

    def lambda_(self, s: LambdaStage) -> list:
        payload = {k: self.path(v) for k, v in s.inputs.items()}
        payload["execution_id"] = dyn("$.run.execution")
        step = LambdaStep(s.name, parameters={"FunctionName": self.arns.function(s.function_name),
                                              "Payload": payload}, result_path=self.result_path(s))
        step.add_retry(Retry(error_equals=["Lambda.ServiceException", "Lambda.AWSLambdaException",
                                           "Lambda.SdkClientException", "Lambda.TooManyRequestsException"],
                             interval_seconds=2, max_attempts=3, backoff_rate=2.0))
        return [self.guard(step, {"result.$": "$.Payload"})]

    # --- assembly ------------------------------------------------------------------------
    def graph(self):
        self._gate_rules: dict[str, Any] = {}
        self._joins: dict[str, Pass] = {}
        self._ancestors = pipeline.ancestry(self.spec.stages)
        stages = self.spec.stages
        if self.spec.fanout:  # the group is one stage here: a Map state (fanout_states.py)
            stages = fanout.plan_stages(self.spec)[0]
            self._ancestors.update(pipeline.ancestry(stages))
        defaults = {p.name: p.default for p in self.spec.parameters}
        built = {stage.name: handler(self.handlers(), stage, "Step Functions")(stage) for stage in self.spec.stages}
        states: list = [
            Pass("initialize", comment="Keep the execution input beside the declared parameter defaults.",
                 parameters={"defaults": defaults, "input": dyn("$")}),
            Pass("resolve-parameters", comment="Execution input overrides defaults; the run hash names jobs.",
                 parameters={"parameters": dyn("States.JsonMerge($.defaults, $.input, false)"),
                             "run": {"execution": dyn("$$.Execution.Name"),
                                     "hash": dyn("States.Hash($$.Execution.Name, 'MD5')")},
                             "stages": {}}),
        ]
        states += self._sequence(pipeline.parallel_plan(stages), built)
        states.append(Succeed(DONE))
        self._link(states)
        return states[0]

    def _sequence(self, items: tuple, built: dict[str, list]) -> list:
        """The states of a series-parallel plan (steps.pipeline.parallel_plan), unlinked."""
        out: list = []
        for i, item in enumerate(items):
            if isinstance(item, str):
                out += self.map_states(built) if self.spec.fanout and item == self.spec.fanout.name else built[item]
                continue
            heads = [_first(b) for b in item.branches]
            par = Parallel(("in-parallel-" + "+".join(heads))[:80],
                           comment="Independent stages at once: the critical path is the DAG's.")
            for branch in item.branches:
                states = self._sequence(branch, built)
                if isinstance(states[-1], Choice):   # a Choice cannot end a branch
                    states.append(Pass(f"{_first(branch)}-branch-end"))
                self._link(states)
                par.add_branch(states[0])
            # Each branch returns the whole state; keep one copy, with every branch's stages.
            merged = "$[0].stages"
            for n in range(1, len(item.branches)):
                merged = f"States.JsonMerge({merged}, $[{n}].stages, false)"
            self.selectors[par.state_id] = {"parameters.$": "$[0].parameters", "run.$": "$[0].run", "stages.$": merged}
            out.append(par)
            out += self._declined_checks(item, items[i + 1:])
        return out

    def _declined_checks(self, item: pipeline.Parallel, later: tuple) -> list:
        """A rejected approval inside a branch ends only its branch; stop the run after the
        Parallel if a later stage needs that approval (it has no result then)."""
        needs = set().union(*(self._ancestors[n] for n in _names(later)))
        checks = []
        for name in _names(item.branches):
            if name in built_names(self.spec) and self.spec.stage(name).kind == "approval" and name in needs:
                check = Choice(f"{name}-approved?")
                check.add_choice(ChoiceRule.Not(ChoiceRule.IsPresent(f"$.stages.{state_id(name)}", True)),
                                 Succeed(f"{name}-declined-end", comment="Rejected or timed out: later stages skipped."))
                checks.append(check)
        return checks

    def _link(self, states: list) -> None:
        """Link states in order. A gate's Choice sends its passing rule to the next state, an
        endpoint's create/update branches meet at its join state, and an approval check's
        default goes on."""
        for st, nxt in zip(states, states[1:]):
            if isinstance(st, Choice):
                if st.state_id in self._gate_rules:
                    st.add_choice(self._gate_rules[st.state_id], nxt)
                elif st.state_id in self._joins:
                    self._joins[st.state_id].next(nxt)
                else:
                    st.default_choice(nxt)
            else:
                st.next(nxt)


def as_the_sagemaker_sdk_sends(request: dict[str, Any], estimator) -> None:
    """Complete a CreateTrainingJob request built by the stepfunctions SDK (through
    ``sagemaker.workflow.airflow.training_base_config``) where it differs from what the sagemaker
    SDK's own builder (``_TrainingJob._get_train_args``, what the SageMaker target sends) writes
    for the same estimator; a test compares the two targets field by field.

    - ``CheckpointConfig``: the airflow builder writes it only when a local path is set as well,
      so a checkpoint S3 URI alone was dropped and SageMaker never synced the checkpoints.
    - ``ProfilerConfig`` and ``AlgorithmSpecification.EnableSageMakerMetricsTimeSeries``: not
      written by the airflow builder.
    - The ``sagemaker_job_name`` hyperparameter is removed, as SageMaker Pipelines removes it (its
      TrainingStep pops it). The SDK fills it with the client-side job name, which here would
      be a fixed string that never matches the name computed at run time. The training toolkit
      only copies it to ``$SAGEMAKER_JOB_NAME`` and keeps it out of ``SM_HPS``: the job's real
      name reaches the container as ``$TRAINING_JOB_NAME`` (``environment.job_name``), and
      neither the PyTorch training toolkit nor train_pytorch.py reads it.
    """
    request.get("HyperParameters", {}).pop("sagemaker_job_name", None)
    if estimator.checkpoint_s3_uri:
        request["CheckpointConfig"] = {"S3Uri": estimator.checkpoint_s3_uri}
        if estimator.checkpoint_local_path:
            request["CheckpointConfig"]["LocalPath"] = estimator.checkpoint_local_path
    if estimator.profiler_config is not None:
        request["ProfilerConfig"] = estimator.profiler_config._to_request_dict()
    elif estimator.disable_profiler:
        request["ProfilerConfig"] = {"DisableProfiler": True}
    if estimator.enable_sagemaker_metrics is not None:
        request["AlgorithmSpecification"]["EnableSageMakerMetricsTimeSeries"] = estimator.enable_sagemaker_metrics


def _names(items) -> list[str]:
    out: list[str] = []
    for item in items:
        if isinstance(item, str):
            out.append(item)
        elif isinstance(item, pipeline.Parallel):
            out += _names(item.branches)
        else:
            out += _names(item)
    return out


def _first(branch: tuple) -> str:
    return _names(branch)[0]


def built_names(spec: PipelineSpec) -> set[str]:
    return {s.name for s in spec.stages}


def finalize(asl: dict[str, Any], selectors: dict[str, dict[str, str]], patches: dict[str, dict[str, Any]],
             maps: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """The single place where SDK output is completed with what the SDK cannot express
    (a Map's ItemProcessor, ItemSelector and Distributed Map fields: ``maps``, fanout_states.py)."""
    for name, state in asl_walk(asl):
        for field in ("Parameters", "Result"):
            if field in state:
                state[field] = _rewrite(state[field])
        if state.get("Type") == "Map":
            complete_map(state, (maps or {}).get(name, {}))
        if name in selectors:
            state["ResultSelector"] = selectors[name]
        state.update(patches.get(name, {}))
    leftover = re.findall(r"<<ASL:[^>]*>>", json.dumps(asl))
    if leftover:
        raise ValueError(f"dynamic values the renderer could not place: {leftover}")
    return asl


def _rewrite(node: Any) -> Any:
    if isinstance(node, dict):
        out = {}
        for k, v in node.items():
            m = _MARK.match(v) if isinstance(v, str) else None
            if m:
                out[f"{k}.$"] = m.group(1)
            else:
                out[k] = _rewrite(v)
        return out
    if isinstance(node, list):
        return [_rewrite(v) for v in node]
    return node


_PARTITIONS: dict[str, str] = {}


@contextlib.contextmanager
def _partition_once(region: str):
    """The SDK looks up the partition of every service-integration ARN it writes by building
    three or more fresh boto3 sessions (``get_aws_partition``: ~30 lookups per state machine).
    Inside ``isolated_env(region)`` the answer depends only on the region, so the SDK's own
    function is asked once per region and its answer reused while this render runs."""
    original = integration_resources.get_aws_partition
    if region not in _PARTITIONS:
        _PARTITIONS[region] = original()
    integration_resources.get_aws_partition = lambda: _PARTITIONS[region]
    try:
        yield
    finally:
        integration_resources.get_aws_partition = original


def render_state_machine(spec: PipelineSpec) -> dict[str, Any]:
    with isolated_env(spec.region), _partition_once(spec.region):
        return _render(spec)


def _render(spec: PipelineSpec) -> dict[str, Any]:
    renderer = _Renderer(spec)
    start = renderer.graph()
    workflow = Workflow(name=naming.state_machine_name(spec.name), definition=Chain([start]),
                        role=renderer.arns.role("stepfunctions"), client=renderer.session.boto_session.client("stepfunctions"))
    asl = json.loads(workflow.definition.to_json())
    asl["Comment"] = f"mlpipe pipeline {spec.name}: {spec.description}".strip().rstrip(":")
    return finalize(asl, renderer.selectors, renderer.patches, renderer.maps)
