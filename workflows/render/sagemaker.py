"""Render a PipelineSpec as a SageMaker Pipeline definition with ``sagemaker.workflow``.

With ``render/sdk.py`` and the Step Functions renderer (whose SDK takes sagemaker objects), the
only code that imports the sagemaker SDK (v2; end of support July 2027), so moving to another
SDK changes one folder. Rendering is offline and deterministic: code is handed over as S3 URIs
of content-addressed assets, so the SDK never uploads, and job names are left to SageMaker
Pipelines (``pipelines-<execution>-<step>``), unique per run.
"""

from __future__ import annotations

import json
from typing import Any

from workflows.render.sdk import (
    RendererBase, inference_image_uri, isolated_env, monitor_image_uri, sdk_estimator, sdk_processor, sdk_tuner,
)

from sagemaker.inputs import TrainingInput
from sagemaker.lambda_helper import Lambda
from sagemaker.model import Model
from sagemaker.model_metrics import MetricsSource, ModelMetrics
from sagemaker.model_monitor import DataCaptureConfig, DatasetFormat
from sagemaker.processing import ProcessingInput, ProcessingOutput
from sagemaker.pytorch import PyTorchModel
from sagemaker.transformer import Transformer
from sagemaker.workflow import conditions as cond
from sagemaker.workflow.check_job_config import CheckJobConfig
from sagemaker.workflow.condition_step import ConditionStep
from sagemaker.workflow.endpoint_step import EndpointConfigStep, EndpointStep
from sagemaker.workflow.execution_variables import ExecutionVariables
from sagemaker.workflow.fail_step import FailStep
from sagemaker.workflow.functions import Join, JsonGet
from sagemaker.workflow.lambda_step import LambdaOutput, LambdaOutputTypeEnum, LambdaStep
from sagemaker.workflow.model_step import ModelStep
from sagemaker.workflow.parameters import ParameterBoolean, ParameterFloat, ParameterInteger, ParameterString
from sagemaker.workflow.pipeline import Pipeline
from sagemaker.workflow.pipeline_definition_config import PipelineDefinitionConfig
from sagemaker.workflow.properties import PropertyFile
from sagemaker.workflow.quality_check_step import DataQualityCheckConfig, QualityCheckStep
from sagemaker.workflow.retry import (
    SageMakerJobExceptionTypeEnum, SageMakerJobStepRetryPolicy, StepExceptionTypeEnum, StepRetryPolicy,
)
from sagemaker.workflow.steps import CacheConfig, ProcessingStep, TrainingStep, TransformStep, TuningStep

from steps import fanout, naming
from steps.contract import FRAMEWORK_MODEL_ENV, KINDS, handler
from steps.spec import (
    ApprovalStage, BaselineStage, EndpointStage, EvaluationStage, GateStage, Image, LambdaStage, ModelStage,
    OutputRef, ParamRef, PipelineSpec, ProcessingStage, RegisterStage, Stage, TrainingStage,
    TransformStage, TuningStage,
)

_PARAMETER_TYPES = {"String": ParameterString, "Integer": ParameterInteger, "Float": ParameterFloat,
                    "Boolean": ParameterBoolean}
_COMPARISONS = {"<=": cond.ConditionLessThanOrEqualTo, "<": cond.ConditionLessThan,
                ">=": cond.ConditionGreaterThanOrEqualTo, ">": cond.ConditionGreaterThan}


class _Renderer(RendererBase):
    def __init__(self, spec: PipelineSpec) -> None:
        super().__init__(spec)
        self.params = {p.name: _PARAMETER_TYPES[p.type](name=p.name, default_value=p.default)
                       for p in spec.parameters}
        # Lineage: SageMaker Pipelines links each job to its execution itself; the tags add the
        # config that produced the definition.
        self.tags = [{"Key": "mlpipe:pipeline", "Value": spec.name},
                     {"Key": "mlpipe:config-hash", "Value": spec.fingerprint}]
        self.steps: dict[str, Any] = {}
        self.models: dict[str, Model] = {}
        self.property_files: dict[str, PropertyFile] = {}

    # --- references ----------------------------------------------------------------------
    def value(self, v: Any) -> Any:
        if isinstance(v, ParamRef):
            return self.params[v.name]
        if isinstance(v, OutputRef):
            return self.output(v)
        return v

    def output(self, ref: OutputRef) -> Any:
        stage = self.spec.stage(ref.stage)
        step = self.steps[ref.stage]
        if isinstance(stage, (ProcessingStage, EvaluationStage)):
            return step.properties.ProcessingOutputConfig.Outputs[ref.output].S3Output.S3Uri
        if isinstance(stage, TrainingStage):
            return step.properties.ModelArtifacts.S3ModelArtifacts
        if isinstance(stage, TuningStage):  # <output path>/<best training job>/output/model.tar.gz
            return Join(on="/", values=[self.spec.s3_root, "runs", ExecutionVariables.PIPELINE_EXECUTION_ID, stage.name,
                                        step.properties.BestTrainingJob.TrainingJobName, "output/model.tar.gz"])
        if isinstance(stage, ModelStage):
            return step.properties.ModelName
        if isinstance(stage, RegisterStage):
            return step.properties.ModelPackageArn
        if isinstance(stage, TransformStage):
            return step.properties.TransformOutput.S3OutputPath
        if isinstance(stage, EndpointStage):
            return step.properties.EndpointName
        if isinstance(stage, LambdaStage):
            return step.properties.Outputs[ref.output]
        if isinstance(stage, BaselineStage):  # the S3 URIs of statistics.json and constraints.json
            return {"statistics": step.properties.CalculatedBaselineStatistics,
                    "constraints": step.properties.CalculatedBaselineConstraints}[ref.output]
        raise TypeError(f"{ref!r} cannot be referenced in a SageMaker pipeline")

    def run_uri(self, stage: str, *parts: str) -> Join:
        """s3://<bucket>/<prefix>/runs/<execution id>/<stage>/<parts>: a fresh place for every run.
        A fan-out copy writes where the Step Functions Map's item does: <member>/<item key>."""
        copies = self.spec.fanout.copies if self.spec.fanout else {}
        folder = list(copies[stage]) if stage in copies else [stage]
        return Join(on="/", values=[self.spec.s3_root, "runs", ExecutionVariables.PIPELINE_EXECUTION_ID,
                                    *folder, *parts])

    def job_step(self) -> dict[str, Any]:
        """What every job step gets: retries for throttling, service faults and capacity (as the
        Step Functions target retries its SageMaker tasks), and step caching when configured."""
        out: dict[str, Any] = {"retry_policies": [
            StepRetryPolicy(exception_types=[StepExceptionTypeEnum.SERVICE_FAULT, StepExceptionTypeEnum.THROTTLING],
                            interval_seconds=30, backoff_rate=2.0, max_attempts=3),
            SageMakerJobStepRetryPolicy(exception_types=[SageMakerJobExceptionTypeEnum.INTERNAL_ERROR,
                                                         SageMakerJobExceptionTypeEnum.CAPACITY_ERROR,
                                                         SageMakerJobExceptionTypeEnum.RESOURCE_LIMIT],
                                        interval_seconds=60, backoff_rate=2.0, max_attempts=3)]}
        if self.spec.cache_expire_after:
            out["cache_config"] = CacheConfig(enable_caching=True, expire_after=self.spec.cache_expire_after)
        return out

    def depends(self, stage: Stage) -> list[str]:
        """Explicit ordering edges; edges to a gate or approval are its ConditionStep branch."""
        return [d for d in stage.depends_on if self.spec.stage(d).kind not in _BRANCH_KINDS]

    # --- one method per stage kind -------------------------------------------------------
    def processor(self, s: ProcessingStage | EvaluationStage):
        return sdk_processor(s, region=self.spec.region, role=self.role, session=self.session,
                             instance_count=self.value(s.instance.count),
                             base_job_name=naming.job_prefix(self.spec.name, s.name), tags=self.tags)

    def processing(self, s: ProcessingStage) -> ProcessingStep:
        processor = self.processor(s)
        args = processor.run(
            code=s.code.uri,
            inputs=[ProcessingInput(source=self.value(v), destination=KINDS[s.kind].input_path(k), input_name=k)
                    for k, v in s.inputs.items()],
            outputs=[ProcessingOutput(output_name=o, source=KINDS[s.kind].output_path(o),
                                      destination=self.run_uri(s.name, o)) for o in s.outputs],
            arguments=list(s.arguments) or None,
        )
        return ProcessingStep(name=s.name, step_args=args, depends_on=self.depends(s) or None, **self.job_step())

    def estimator(self, s: TrainingStage, output_path: Any = None):
        return sdk_estimator(s, region=self.spec.region, role=self.role, session=self.session,
                             instance_count=self.value(s.instance.count),
                             output_path=output_path or s.output_path or self.run_uri(s.name),
                             base_job_name=naming.job_prefix(self.spec.name, s.name), tags=self.tags)

    def training(self, s: TrainingStage) -> TrainingStep:
        inputs = {k: TrainingInput(s3_data=self.value(v), content_type=s.content_type) for k, v in s.inputs.items()}
        return TrainingStep(name=s.name, step_args=self.estimator(s).fit(inputs=inputs), **self.job_step(),
                            depends_on=self.depends(s) or None)

    def tuning(self, s: TuningStage) -> TuningStep:
        """A TuningStep over the training template; its model output is the best job's artifact."""
        t = s.training
        tuner = sdk_tuner(s, self.estimator(t, output_path=self.run_uri(s.name)),
                          base_tuning_job_name=naming.tuning_job_prefix(self.spec.name, s.name))
        inputs = {k: TrainingInput(s3_data=self.value(v), content_type=t.content_type) for k, v in s.inputs.items()}
        return TuningStep(name=s.name, step_args=tuner.fit(inputs=inputs), depends_on=self.depends(s) or None,
                          **self.job_step())

    def evaluation(self, s: EvaluationStage) -> ProcessingStep:
        processor = self.processor(s)
        report = PropertyFile(name=f"{s.name}-report", output_name="evaluation", path="evaluation.json")
        self.property_files[s.name] = report
        args = processor.run(
            code=s.code.uri,
            inputs=[ProcessingInput(source=self.value(s.inputs["model"]), destination=KINDS[s.kind].input_path("model"),
                                    input_name="model"),
                    ProcessingInput(source=self.value(s.inputs["test"]), destination=KINDS[s.kind].input_path("test"),
                                    input_name="test")],
            outputs=[ProcessingOutput(output_name="evaluation", source=KINDS[s.kind].output_path("evaluation"),
                                      destination=self.run_uri(s.name, "evaluation"))],
            arguments=["--problem-type", s.problem_type],
        )
        return ProcessingStep(name=s.name, step_args=args, property_files=[report], **self.job_step(),
                              depends_on=self.depends(s) or None)

    def model_for(self, s: Stage, model_data_ref: OutputRef, image: Image, instance_type: str) -> Model:
        training = self.spec.stage(model_data_ref.stage)
        model_data = self.value(model_data_ref)
        if image.kind == "algorithm":
            return Model(image_uri=inference_image_uri(image, self.spec.region, instance_type),
                         model_data=model_data, role=self.role, sagemaker_session=self.session,
                         name=naming.model_name(self.spec.name, s.name))
        # The training script puts code/inference.py inside model.tar.gz, so no repack step runs.
        return PyTorchModel(model_data=model_data, framework_version=training.image.version,
                            py_version=training.image.py_version, role=self.role, sagemaker_session=self.session,
                            name=naming.model_name(self.spec.name, s.name), env=dict(FRAMEWORK_MODEL_ENV))

    def model(self, s: ModelStage) -> ModelStep:
        model = self.model_for(s, s.inputs["model_data"], s.image, s.instance.type)
        self.models[s.name] = model
        return ModelStep(name=s.name, step_args=model.create(instance_type=s.instance.type, tags=self.tags),
                         depends_on=self.depends(s) or None)

    def register(self, s: RegisterStage) -> ModelStep:
        model = self.models[s.inputs["model"].stage]
        metrics = None
        if "metrics" in s.inputs:
            metrics = ModelMetrics(model_statistics=MetricsSource(
                s3_uri=Join(on="/", values=[self.value(s.inputs["metrics"]), "evaluation.json"]),
                content_type="application/json"))
        args = model.register(
            content_types=list(s.content_types), response_types=list(s.response_types),
            inference_instances=list(s.inference_instances), transform_instances=list(s.transform_instances),
            model_package_group_name=s.model_package_group, approval_status=self.value(s.inputs["approval_status"]),
            model_metrics=metrics, customer_metadata_properties={"mlpipe:config-hash": self.spec.fingerprint,
                                                                 **fanout.item_metadata(self.spec, s.name)},
        )
        return ModelStep(name=s.name, step_args=args, depends_on=self.depends(s) or None)

    def transform(self, s: TransformStage) -> TransformStep:
        transformer = Transformer(
            model_name=self.value(s.inputs["model"]), instance_type=s.instance.type,
            instance_count=self.value(s.instance.count), output_path=self.run_uri(s.name),
            accept=s.content_type, assemble_with="Line", sagemaker_session=self.session,
            base_transform_job_name=naming.job_prefix(self.spec.name, s.name), tags=self.tags,
        )
        args = transformer.transform(data=self.value(s.inputs["data"]), content_type=s.content_type,
                                     split_type="Line", join_source="Input")
        return TransformStep(name=s.name, step_args=args, depends_on=self.depends(s) or None, **self.job_step())

    def lambda_(self, s: LambdaStage) -> LambdaStep:
        return LambdaStep(
            name=s.name,
            lambda_func=Lambda(function_arn=self.arns.function(s.function_name), session=self.session),
            inputs={k: self.value(v) for k, v in s.inputs.items()},
            outputs=[LambdaOutput(output_name=o, output_type=LambdaOutputTypeEnum.String) for o in s.outputs],
            depends_on=self.depends(s) or None,
        )

    def endpoint(self, s: EndpointStage) -> list[Any]:
        """Native steps (sagemaker >= 2.257.6): an EndpointConfig per execution (with data
        capture), then an Endpoint step, which creates the endpoint or updates it in place.
        A package approved later, after the run, is deployed by the deployer Lambda through
        the model-approved EventBridge rule: Pipelines has no step that waits for a person."""
        capture = DataCaptureConfig(enable_capture=True, sampling_percentage=s.sampling_percentage,
                                    destination_s3_uri=f"{self.spec.s3_root}/data-capture/{s.endpoint_name}",
                                    sagemaker_session=self.session)._to_request_dict() if s.data_capture else None
        config = EndpointConfigStep(
            name=f"{s.name}-config", depends_on=self.depends(s) or None,
            retry_policies=self.job_step()["retry_policies"][:1],
            step_args=self.session.create_endpoint_config(
                name=Join(on="-", values=[naming.endpoint_config_prefix(self.spec.name, s.name),
                                          ExecutionVariables.PIPELINE_EXECUTION_ID]),
                model_name=self.value(s.inputs["model"]), initial_instance_count=self.value(s.instance.count),
                instance_type=s.instance.type, data_capture_config_dict=capture))
        endpoint = EndpointStep(name=s.name, step_args=self.session.create_endpoint(
            endpoint_name=s.endpoint_name, config_name=config.properties.EndpointConfigName))
        if not s.monitoring_schedule:
            return [config, endpoint]
        return [config, self.monitoring(s, endpoint), endpoint]   # the stage's own step comes last

    def monitoring(self, s: EndpointStage, endpoint: EndpointStep) -> LambdaStep:
        """Pipelines has no step for monitoring schedules: after the Endpoint step, the
        scheduler function (lambda_handlers/monitoring_schedule.py) creates the data-quality
        schedule or updates it in place, with the request the Step Functions target sends."""
        m = s.monitoring_instance
        return LambdaStep(
            name=f"{s.name}-monitoring",
            lambda_func=Lambda(function_arn=self.arns.function(naming.scheduler_function_name(self.spec.name, s.name)),
                               session=self.session),
            inputs={"schedule_name": naming.monitoring_schedule_name(self.spec.name, s.name),
                    "endpoint_name": endpoint.properties.EndpointName,
                    "statistics_uri": self.value(s.inputs["statistics"]),
                    "constraints_uri": self.value(s.inputs["constraints"]),
                    "schedule_expression": s.monitoring_schedule, "image_uri": monitor_image_uri(self.spec.region),
                    "role_arn": self.role, "output_uri": f"{self.spec.s3_root}/monitoring/{s.endpoint_name}",
                    "instance_type": m.type, "volume_gb": m.volume_gb, "max_runtime_seconds": m.max_runtime_seconds,
                    "pipeline": self.spec.name},
            outputs=[LambdaOutput(output_name="action", output_type=LambdaOutputTypeEnum.String)])

    def baseline(self, s: BaselineStage) -> QualityCheckStep:
        """A QualityCheckStep computing a new data-quality baseline (no check against an earlier
        one: skip_check, register_new_baseline); its outputs are the calculated files' S3 URIs."""
        job = CheckJobConfig(
            role=self.role, instance_count=self.value(s.instance.count), instance_type=s.instance.type,
            volume_size_in_gb=s.instance.volume_gb, max_runtime_in_seconds=s.instance.max_runtime_seconds,
            base_job_name=naming.job_prefix(self.spec.name, s.name), sagemaker_session=self.session, tags=self.tags)
        check = DataQualityCheckConfig(baseline_dataset=self.value(s.inputs["data"]),
                                       dataset_format=DatasetFormat.csv(header=s.header),
                                       output_s3_uri=self.run_uri(s.name, "baseline"))
        return QualityCheckStep(name=s.name, quality_check_config=check, check_job_config=job, skip_check=True,
                                register_new_baseline=True, depends_on=self.depends(s) or None,
                                cache_config=self.job_step().get("cache_config"))

    def approval(self, s: ApprovalStage, downstream: list[Any]) -> ConditionStep:
        """The registry's approval status gates deployment: deploy now only if it is Approved;
        otherwise approving the package later triggers the deployer through EventBridge."""
        status = self.value(self.spec.stage(s.inputs["model_package"].stage).inputs["approval_status"]) \
            if "model_package" in s.inputs else "PendingManualApproval"
        return ConditionStep(name=s.name, conditions=[cond.ConditionEquals(left=status, right="Approved")],
                             if_steps=downstream, else_steps=[], depends_on=self.depends(s) or None)

    def gate(self, s: GateStage, downstream: list[Any]) -> ConditionStep:
        evaluation = s.inputs["evaluation"].stage
        metric = JsonGet(step_name=evaluation, property_file=self.property_files[evaluation], json_path=s.json_path)
        fail = FailStep(name=f"{s.name}-failed", error_message=Join(on=" ", values=[
            f"Quality gate failed: {s.metric} =", metric, f"is not {s.comparison} {s.threshold:g}"]))
        return ConditionStep(name=s.name, conditions=[_COMPARISONS[s.comparison](left=metric, right=s.threshold)],
                             if_steps=downstream, else_steps=[fail])

    # --- assembly ------------------------------------------------------------------------
    def render(self) -> Pipeline:
        """Build steps in order. A gate or approval becomes a ConditionStep whose if-branch holds
        every stage below it; an approval inside a gate becomes one of the gate's steps."""
        top: list[Any] = []
        branches: dict[str, list[Any]] = {}
        owner: dict[str, str | None] = {}
        for s in self.spec.stages:
            parent = self._branch_of(s, owner)
            owner[s.name] = parent
            if s.kind in _BRANCH_KINDS:
                branches[s.name] = []
                continue
            made = handler(self.handlers(), s, "SageMaker")(s)
            made = made if isinstance(made, list) else [made]   # the stage's own step comes last
            self.steps[s.name] = made[-1]
            (branches[parent] if parent else top).extend(made)
        for name in reversed(list(branches)):  # innermost first
            stage = self.spec.stage(name)
            step = self.steps[name] = handler(self.handlers(), stage, "SageMaker")(stage, branches[name])
            (branches[owner[name]] if owner[name] else top).append(step)
        return Pipeline(
            name=naming.sagemaker_pipeline_name(self.spec.name),
            parameters=list(self.params.values()),
            steps=top,
            sagemaker_session=self.session,
            pipeline_definition_config=PipelineDefinitionConfig(use_custom_job_prefix=False),
        )

    def _branch_of(self, stage: Stage, owner: dict[str, str | None]) -> str | None:
        """The innermost gate/approval this stage sits under, if any."""
        order = {s.name: i for i, s in enumerate(self.spec.stages)}
        candidates = {u for u in stage.upstream if self.spec.stage(u).kind in _BRANCH_KINDS}
        candidates |= {owner[u] for u in stage.upstream if owner.get(u)}
        return max(candidates, key=order.__getitem__) if candidates else None


_BRANCH_KINDS = ("gate", "approval")


def render_pipeline(spec: PipelineSpec) -> dict[str, Any]:
    """The pipeline definition as a dict (``mlpipe build`` writes it with sorted keys). A fan-out
    is static here: its stages copied once per item (``steps.fanout.static``)."""
    spec = fanout.static(spec)
    with isolated_env(spec.region):
        return json.loads(_Renderer(spec).render().definition())
