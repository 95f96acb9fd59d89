"""Errors the Lambda handlers raise on purpose.

Lambda reports the exception's class name as ``errorType``, so a Step Functions ``Catch`` or
``Retry`` can match these by name: keep the names stable.
"""


def bounded(text: str, head: int = 2048, tail: int = 1024) -> str:
    """The start and the end of a long text, saying how much was left out."""
    if len(text) <= head + tail + 64:
        return text
    return f"{text[:head]} ... ({len(text) - head - tail} characters left out) ... {text[-tail:]}"


class HandlerError(Exception):
    """Base class: a failure with a message for the person reading the execution history
    (bounded: values from the event are never echoed whole)."""

    def __init__(self, message: str = "") -> None:
        super().__init__(bounded(str(message)))


class InvalidEventError(HandlerError):
    """The event does not have the fields the handler needs; retrying will not help."""


class ConfigurationError(HandlerError):
    """The function's environment is incomplete or wrong (e.g. PARAMETER_NAME unset)."""


class ParameterWriteError(HandlerError):
    """Parameter Store refused the read or the write (permissions, throttling, a bad name)."""


class EndpointDeployError(HandlerError):
    """SageMaker refused to create or update the model, endpoint config or endpoint."""


class PipelineStartError(HandlerError):
    """SageMaker refused to start the pipeline execution for a new object."""
