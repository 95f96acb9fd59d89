"""Every AWS request a rendered definition would send, checked against its operation's input
shape in botocore's service models (``config.aws_api.validate_request``).

The config checks refuse what they can name; this is the net behind them: a value that slipped
through fails the build with the state or step and the member, and no definition AWS would
refuse is ever written. Values filled at run time (``Key.$`` paths, ``{"Get": ...}``) are not
checked; names that the orchestrator fills in itself are not required.
"""

from __future__ import annotations

import re
from typing import Any, Iterator

from config import aws_api
from config.errors import UserError
from workflows.render.asl import walk

# Step Functions integration (service:action) -> (botocore service, operation)
_SFN = re.compile(r"^arn:[\w-]+:states:::(?:aws-sdk:)?(?P<service>[a-z0-9]+):(?P<action>[A-Za-z]+)")
_SERVICES = {"sagemaker": "sagemaker", "sns": "sns", "lambda": "lambda", "s3": "s3"}
# SageMaker Pipelines step type -> operation; the service names the job and, for a model step, the model
_STEPS = {"Processing": "CreateProcessingJob", "Training": "CreateTrainingJob", "Transform": "CreateTransformJob",
          "Model": "CreateModel", "RegisterModel": "CreateModelPackage", "Tuning": "CreateHyperParameterTuningJob",
          "EndpointConfig": "CreateEndpointConfig", "Endpoint": "CreateEndpoint",
          "QualityCheck": "CreateProcessingJob"}   # a QualityCheck step's arguments are its processing job
_FILLED_BY_PIPELINES = ("ProcessingJobName", "TrainingJobName", "TransformJobName", "ModelName",
                        "HyperParameterTuningJobName")
# Lambda's Invoke takes a JSON document in Step Functions (not the raw bytes the API shape says).
_SKIP_MEMBERS = {("lambda", "Invoke"): ("Payload",)}


def _operation(action: str) -> str:
    return action[:1].upper() + action[1:]


def state_machine_requests(asl: dict[str, Any]) -> Iterator[tuple[str, str, str, dict[str, Any]]]:
    """(where, service, operation, parameters) for every Task state, nested ones included."""
    for name, state in walk(asl):
        if state.get("Type") == "Task":
            m = _SFN.match(state.get("Resource", ""))
            if m and m["service"] in _SERVICES:
                yield f"state {name}", _SERVICES[m["service"]], _operation(m["action"]), state.get("Parameters", {})


def pipeline_requests(doc: dict[str, Any]) -> Iterator[tuple[str, str, str, dict[str, Any]]]:
    def walk(steps):
        for step in steps:
            if step.get("Type") in _STEPS and isinstance(step.get("Arguments"), dict):
                yield f"step {step['Name']}", "sagemaker", _STEPS[step["Type"]], step["Arguments"]
            for key in ("IfSteps", "ElseSteps"):
                yield from walk(step.get("Arguments", {}).get(key, []) if isinstance(step.get("Arguments"), dict) else [])
    yield from walk(doc.get("Steps", []))


def problems(target: str, doc: dict[str, Any]) -> list[str]:
    found: list[str] = []
    requests = state_machine_requests(doc) if target == "stepfunctions" else pipeline_requests(doc)
    for where, service, operation, params in requests:
        params = {k: v for k, v in params.items() if k not in _SKIP_MEMBERS.get((service, operation), ())}
        for problem in aws_api.validate_request(service, operation, params):
            if target == "sagemaker" and any(f"Missing required parameter in input: \"{n}\"" in problem
                                             for n in _FILLED_BY_PIPELINES):
                continue
            found.append(f"{where} ({operation}): {problem}")
    return found


def check(target: str, doc: dict[str, Any], source: str | None = None) -> None:
    """Refuse a definition whose requests AWS would refuse."""
    found = problems(target, doc)
    if found:
        more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
        raise UserError(f"the rendered {target} definition would be refused by AWS: {found[0]}{more}",
                        source=source, fix="correct the config value behind it; this check follows "
                                           "botocore's service model of the API")
