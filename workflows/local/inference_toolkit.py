"""A framework model's inference script, run as the SageMaker PyTorch inference image runs it:
what ``mlpipe serve`` does with a model.tar.gz that holds ``code/<SAGEMAKER_PROGRAM>``.

Followed from the toolkit's own source: aws/sagemaker-inference-toolkit
(``src/sagemaker_inference/transformer.py``, ``environment.py``, ``utils.py``, ``errors.py``,
``decoder.py``, ``encoder.py``) and the copy of it that aws/sagemaker-pytorch-inference-toolkit
serves with (``handler_service.py``, ``default_pytorch_inference_handler.py``, TorchServe with
``decode_input_request=false``, so the body reaches the toolkit as bytes):

- At start-up: the user module is ``$SAGEMAKER_PROGRAM`` (default inference.py) from the
  model's ``code/`` folder, which is on the import path. ``model_fn(model_dir)`` runs once;
  if it fails, the endpoint never becomes healthy. A ``transform_fn`` replaces input_fn,
  predict_fn and output_fn (defining it beside any of them is an error); a function the module
  does not define is the PyTorch handler's default.
- Each request: the content type is the first header whose name matches
  ``^[Cc]ontent-?[Tt]ype``, as sent (parameters included; None without one), and the body is
  decoded as UTF-8 only for exactly ``text/csv`` or ``application/json``. The accept type is the
  ``Accept`` (or ``accept``) header; missing, empty or exactly ``*/*``, it is
  ``$SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT``, else ``application/json``. Then
  ``input_fn(body, content_type)``, ``predict_fn(data, model)``, ``output_fn(prediction,
  accept)``. A handler whose signature has one more parameter also gets the context.
- The answer is output_fn's value; a ``(body, content_type)`` tuple sets the response's content
  type, otherwise it is the accept value. TorchServe writes bytes as they are, str as UTF-8,
  anything else as JSON (indent 2), and answers 503 for what JSON cannot hold.
- Errors: an exception of the toolkit's ``BaseInferenceToolkitError`` family answers its own
  ``status_code``; any other (``UnsupportedFormatError`` from a default handler included) is
  500, with the message and the traceback as the body.
"""

from __future__ import annotations

import importlib.util
import inspect
import io
import json
import re
import sys
import traceback
from pathlib import Path
from typing import Callable, Mapping

JSON, CSV, NPY, ANY = "application/json", "text/csv", "application/x-npy", "*/*"
UTF8_TYPES = (JSON, CSV)
DEFAULT_MODULE = "inference.py"
_CONTENT_TYPE = re.compile("^[Cc]ontent-?[Tt]ype")


class UnsupportedFormatError(Exception):
    """The toolkit's error for a content or accept type its default handlers cannot serve."""

    def __init__(self, content_type) -> None:
        super().__init__(f"Content type {content_type} is not supported by this framework.\n\n"
                         "Please implement input_fn to to deserialize the request data or an output_fn to\n"
                         "serialize the response. For more information, see the SageMaker Python SDK README.")


class Context:
    """What a handler that takes a context gets: the model's folder and name."""

    def __init__(self, model_dir: Path) -> None:
        self.system_properties = {"model_dir": str(model_dir), "gpu_id": None}
        self.model_name = "model"


class Answer:
    def __init__(self, status: int, body: bytes, content_type: str | None) -> None:
        self.status, self.body, self.content_type = status, body, content_type


def is_framework_model(names: list[str], env: Mapping[str, str]) -> bool:
    """Whether a model.tar.gz with these member names holds its inference script."""
    program = env.get("SAGEMAKER_PROGRAM", DEFAULT_MODULE)
    return any(n.lstrip("./") == f"code/{program}" for n in names)


class Service:
    """One model, loaded from its extracted ``model_dir`` under the model's environment ``env``."""

    def __init__(self, model_dir: Path, env: Mapping[str, str]) -> None:
        self.model_dir = model_dir
        self.default_accept = env.get("SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT", JSON)
        self.context = Context(model_dir)
        program = env.get("SAGEMAKER_PROGRAM", DEFAULT_MODULE)
        module = _import(model_dir / "code", program[:-3] if program.endswith(".py") else program)
        defaults = _PyTorchDefaults()
        handlers = {name: getattr(module, name, None) for name in
                    ("model_fn", "transform_fn", "input_fn", "predict_fn", "output_fn")}
        if handlers["transform_fn"] and (handlers["input_fn"] or handlers["predict_fn"] or handlers["output_fn"]):
            raise ValueError("Cannot use transform_fn implementation in conjunction with input_fn, predict_fn, "
                             "and/or output_fn implementation")
        self.input_fn = handlers["input_fn"] or defaults.input_fn
        self.predict_fn = handlers["predict_fn"] or defaults.predict_fn
        self.output_fn = handlers["output_fn"] or defaults.output_fn
        self.transform_fn = handlers["transform_fn"] or self._default_transform_fn
        self.model = self._run(handlers["model_fn"] or defaults.model_fn, str(model_dir))

    def _run(self, func: Callable, *args):
        """The toolkit's _run_handler_function: the context goes to a handler with one more parameter."""
        count = len(inspect.signature(func).parameters)
        if count == len(args):
            return func(*args)
        if count == len(args) + 1:
            return func(*args, self.context)
        raise TypeError(f"{func.__name__} takes {count} arguments but {len(args)} were given.")

    def _default_transform_fn(self, model, data, content_type, accept):
        features = self._run(self.input_fn, data, content_type)
        prediction = self._run(self.predict_fn, features, model)
        return self._run(self.output_fn, prediction, accept)

    def invoke(self, headers: list[tuple[str, str]], body: bytes) -> Answer:
        """One POST /invocations: ``headers`` as sent (name, value), in order."""
        content_type = next((v for k, v in headers if _CONTENT_TYPE.match(k)), None)
        accept = next((v for k, v in headers if k == "Accept"), None) or next(
            (v for k, v in headers if k == "accept"), None)
        if not accept or accept == ANY:
            accept = self.default_accept
        try:
            data = body.decode("utf-8") if content_type in UTF8_TYPES else body
            result = self._run(self.transform_fn, self.model, data, content_type, accept)
            response, response_type = result if isinstance(result, tuple) else (result, accept)
        except Exception as exc:  # the toolkit answers every failure; the server goes on
            status = getattr(exc, "status_code", None) if _is_toolkit_error(exc) else None
            message = getattr(exc, "message", None) if status else None
            text = f"{message if message is not None else exc}\n{traceback.format_exc()}"
            return Answer(status or 500, text.encode("utf-8"), None)
        if isinstance(response, (bytes, bytearray)):
            return Answer(200, bytes(response), response_type)
        if isinstance(response, str):
            return Answer(200, response.encode("utf-8"), response_type)
        try:
            return Answer(200, json.dumps(response, indent=2).encode("utf-8"), response_type)
        except TypeError:
            return Answer(503, b"Unsupported model output data type.", None)


def _is_toolkit_error(exc: BaseException) -> bool:
    """An instance of sagemaker_inference.errors.BaseInferenceToolkitError (by name: the toolkit
    is installed in the image, not here)."""
    return any(c.__name__ == "BaseInferenceToolkitError" for c in type(exc).__mro__)


def _import(code_dir: Path, name: str):
    """The user module, importable beside its siblings in code/; None when it is not there."""
    path = code_dir / f"{name}.py"
    if not path.is_file():
        return None
    if str(code_dir) not in sys.path:
        sys.path.insert(0, str(code_dir))
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class _PyTorchDefaults:
    """DefaultPytorchInferenceHandler: what runs for a function the script does not define."""

    def model_fn(self, model_dir: str):
        import torch

        model_dir = Path(model_dir)
        path = model_dir / "model.pt"
        if not path.exists():
            found = [p for p in model_dir.iterdir() if p.is_file() and p.suffix in (".pt", ".pth")]
            if len(found) != 1:
                raise ValueError(f"Exactly one .pth or .pt file is required for PyTorch models: {[p.name for p in found]}")
            path = found[0]
        try:
            return torch.jit.load(str(path), map_location="cpu")
        except RuntimeError as exc:
            raise RuntimeError(f"Failed to load {path}. Please ensure model is saved using torchscript.") from exc

    def input_fn(self, data, content_type):
        import numpy as np
        import torch

        if content_type == CSV:
            array = np.genfromtxt(io.StringIO(data), delimiter=",")
        elif content_type == JSON:
            array = np.array(json.loads(data))
        elif content_type == NPY:
            array = np.load(io.BytesIO(data), allow_pickle=True)
        else:
            raise UnsupportedFormatError(content_type)
        return torch.FloatTensor(array) if content_type in UTF8_TYPES else torch.from_numpy(array)

    def predict_fn(self, data, model):
        import torch

        with torch.no_grad():
            model.eval()
            return model(data)

    def output_fn(self, prediction, accept):
        import numpy as np
        import torch

        if isinstance(prediction, torch.Tensor):
            prediction = prediction.detach().cpu().numpy().tolist()
        for content_type in accept.replace(" ", "").split(","):
            if content_type == JSON:
                return json.dumps(prediction, default=lambda a: a.tolist())
            if content_type == CSV:
                stream = io.StringIO()
                np.savetxt(stream, prediction, delimiter=",", fmt="%s")
                return stream.getvalue().encode("utf-8")
            if content_type == NPY:
                stream = io.BytesIO()
                np.save(stream, prediction)
                return stream.getvalue()
        raise UnsupportedFormatError(accept)
