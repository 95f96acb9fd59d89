"""Errors the Lambda handlers raise on purpose.

Lambda reports the exception's class name as ``errorType``, so a Step Functions ``Catch`` or
``Retry`` can match these by name: keep the names stable.
"""


class HandlerError(Exception):
    """Base class: a failure with a message for the person reading the execution history."""


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
