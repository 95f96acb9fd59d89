"""What AWS itself accepts, read from the API models botocore ships.

Config checks (instance types, name patterns, numeric ranges, list sizes, regions) are derived
from these models rather than from hand-written tables, so they follow AWS as botocore is
updated. Each model is loaded once, lazily, on first use; importing this module loads nothing
(not even botocore).

``validate_request`` checks a whole request against an operation's input shape: botocore's own
``ParamValidator`` (required members, unknown members, types, minimums) plus what it leaves to
the service (maximums, enums and ``pattern``), so a request AWS would refuse is refused first.
Which allowed values to suggest for a refused one is ``suggest.py``'s business.
"""

from __future__ import annotations

import functools
import json
import os
import re
import warnings
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from config.cachedir import cache_root
from config.suggest import closest

# The instance-type enum of each SageMaker API, by what the config calls it.
INSTANCE_TYPE_SHAPES: dict[str, str] = {
    "training": "TrainingInstanceType",        # CreateTrainingJob ResourceConfig.InstanceType
    "processing": "ProcessingInstanceType",    # CreateProcessingJob ProcessingResources.ClusterConfig
    "transform": "TransformInstanceType",      # CreateTransformJob TransformResources.InstanceType
    "endpoint": "ProductionVariantInstanceType",  # CreateEndpointConfig ProductionVariants[].InstanceType
}


class UnknownShape(LookupError):
    """A service, operation, shape or member botocore does not know."""


# --- loading ---------------------------------------------------------------------------------

@functools.lru_cache(maxsize=None)
def _loader():
    from botocore.loaders import create_loader

    return create_loader()


def _cached(name: str, build: Callable[[], Any], valid: Callable[[Any], bool]) -> Any:
    """``build()``, kept as JSON under the cache root per botocore version: botocore's files
    are large (documentation, every partition), and every command that loads a config would
    parse them again. Written atomically; a damaged copy is rebuilt."""
    from botocore import __version__

    path = cache_root() / "botocore" / __version__ / name
    try:
        value = json.loads(path.read_bytes())
        if valid(value):
            return value
    except (OSError, ValueError):
        pass
    value = build()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(value, separators=(",", ":")))
        os.replace(tmp, path)
    except OSError:  # a read-only or full cache: the value still works, just slower next time
        pass
    return value


@functools.lru_cache(maxsize=None)
def service_json(service: str) -> Mapping[str, Any]:
    """The service-2 model (operations, shapes, metadata) of ``service``, loaded once, kept
    without its documentation (most of botocore's file)."""
    def build() -> Mapping[str, Any]:
        try:
            return _without_docs(_loader().load_service_model(service, "service-2"))
        except Exception:  # botocore.exceptions.UnknownServiceError and friends
            raise UnknownShape(f"botocore has no model of service {service!r}") from None

    return _cached(f"{service}.service-2.json", build,
                   lambda model: isinstance(model, dict) and "shapes" in model and "operations" in model)


def _without_docs(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _without_docs(v) for k, v in node.items() if k not in ("documentation", "documentationUrl")}
    if isinstance(node, list):
        return [_without_docs(v) for v in node]
    return node


@functools.lru_cache(maxsize=None)
def service_model(service: str):
    """botocore's ``ServiceModel`` of ``service`` (what ``ParamValidator`` needs)."""
    from botocore.model import ServiceModel

    return ServiceModel(service_json(service), service_name=service)


def shape(service: str, name: str) -> Mapping[str, Any]:
    """One shape of a service model, as botocore ships it (``type``, ``min``, ``enum``, ...)."""
    try:
        return service_json(service)["shapes"][name]
    except KeyError:
        raise UnknownShape(f"{service} has no shape {name!r}") from None


def member_shape(service: str, operation: str, path: str) -> str:
    """Name of the shape at ``path`` in an operation's input, e.g. ("sagemaker",
    "CreateTransformJob", "TransformResources.InstanceCount") -> "TransformInstanceCount".
    Lists are stepped through to their member, so "ProductionVariants.InstanceType" works."""
    model = service_json(service)
    try:
        current = model["operations"][operation]["input"]["shape"]
    except KeyError:
        raise UnknownShape(f"{service} has no operation {operation!r} with an input") from None
    for part in path.split("."):
        node = shape(service, current)
        while node.get("type") == "list":
            current = node["member"]["shape"]
            node = shape(service, current)
        try:
            current = node["members"][part]["shape"]
        except KeyError:
            raise UnknownShape(f"{service} {operation}: no member {part!r} in {path!r}") from None
    return current


# --- constraints of one shape ----------------------------------------------------------------

@dataclass(frozen=True)
class StringConstraints:
    min_length: int | None
    max_length: int | None
    pattern: str | None

    def problem(self, value: str) -> str | None:
        """Why AWS would refuse ``value``, or None (patterns Python cannot run are skipped)."""
        if self.min_length is not None and len(value) < self.min_length:
            return f"is {len(value)} characters long; the minimum is {self.min_length}"
        if self.max_length is not None and len(value) > self.max_length:
            return f"is {len(value)} characters long; the maximum is {self.max_length}"
        regex = compiled_pattern(self.pattern) if self.pattern else None
        if regex is not None and not regex.fullmatch(value):
            return f"does not match the pattern {self.pattern}"
        return None


def enum_values(service: str, shape_name: str) -> tuple[str, ...]:
    """The values an enum string shape allows (empty if it is not an enum)."""
    return tuple(shape(service, shape_name).get("enum", ()))


def string_constraints(service: str, shape_name: str) -> StringConstraints:
    s = shape(service, shape_name)
    return StringConstraints(s.get("min"), s.get("max"), s.get("pattern"))


def numeric_range(service: str, shape_name: str) -> tuple[int | float | None, int | float | None]:
    """(min, max) of an integer/long/float/double shape; None where the model sets no bound."""
    s = shape(service, shape_name)
    return s.get("min"), s.get("max")


def size_limits(service: str, shape_name: str) -> tuple[int | None, int | None]:
    """(min, max) number of items of a list or map shape."""
    s = shape(service, shape_name)
    if s.get("type") not in ("list", "map"):
        raise UnknownShape(f"{service} shape {shape_name!r} is a {s.get('type')}, not a list or map")
    return s.get("min"), s.get("max")


def max_items(service: str, shape_name: str) -> int | None:
    """Most items a list or map shape may hold (None: unbounded)."""
    return size_limits(service, shape_name)[1]


# --- instance types and regions ----------------------------------------------------------------

@functools.lru_cache(maxsize=None)
def instance_types(api: str) -> tuple[str, ...]:
    """SageMaker instance types of one API: "training", "processing", "transform" or "endpoint"."""
    try:
        name = INSTANCE_TYPE_SHAPES[api]
    except KeyError:
        raise UnknownShape(f"no instance-type API {api!r}; one of {', '.join(INSTANCE_TYPE_SHAPES)}") from None
    return enum_values("sagemaker", name)


@functools.lru_cache(maxsize=None)
def regions(service: str = "sagemaker") -> tuple[str, ...]:
    """Regions where ``service`` has an endpoint, in every partition (aws, aws-cn, aws-us-gov,
    ...), from botocore's endpoint data: like ``Session.get_available_regions`` but across
    partitions, and without importing a session. endpoints.json is 1.2 MB, so the list is cached."""
    def build() -> list[str]:
        prefix = service_json(service).get("metadata", {}).get("endpointPrefix", service)
        found: set[str] = set()
        for partition in _loader().load_data("endpoints").get("partitions", []):
            regex = re.compile(partition.get("regionRegex", r"^$"))
            endpoints = partition.get("services", {}).get(prefix, {}).get("endpoints", {})
            for name, data in endpoints.items():
                if regex.match(name) and not (isinstance(data, Mapping) and data.get("deprecated")):
                    found.add(name)
        return sorted(found)

    names = _cached(f"{service}.regions.json", build,
                    lambda value: isinstance(value, list) and all(isinstance(v, str) for v in value))
    return tuple(names)


# --- patterns ----------------------------------------------------------------------------------

# Java regex features Python's re lacks or reads differently: \p{..} classes, possessive
# quantifiers, \Q..\E quoting, class intersection, \z. Such patterns are skipped, not guessed.
_JAVA_ONLY = re.compile(r"\\[pPQEz]|&&|[*+?}]\+")


@functools.lru_cache(maxsize=None)
def compiled_pattern(pattern: str) -> re.Pattern[str] | None:
    """The model's ``pattern`` as a Python regex (matched whole, as AWS does), or None when the
    pattern uses Java-only syntax."""
    if _JAVA_ONLY.search(pattern):
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # e.g. FutureWarning "possible nested set"
            return re.compile(pattern)
    except (re.error, Warning):
        return None


# --- whole requests ------------------------------------------------------------------------------

_PLACEHOLDER_STRING = re.compile(r"^(\$\$?(\.|\[|$)|States\.[A-Za-z]+\(|\{%.*%\}$)", re.S)
_PLACEHOLDER_KEYS = {"Get", "Std:Join", "Std:JsonGet"}


def is_placeholder(value: object) -> bool:
    """A value filled in at run time, not a concrete one: a JSONPath ("$.x", "$$.Execution.Name"),
    an intrinsic ("States.Format(...)"), a JSONata expression ("{% ... %}"), or a SageMaker
    Pipelines function ({"Get": "Parameters.X"}, {"Std:Join": ...})."""
    if isinstance(value, str):
        return bool(_PLACEHOLDER_STRING.match(value))
    if isinstance(value, Mapping) and len(value) == 1:
        (key,) = value
        return key in _PLACEHOLDER_KEYS or (isinstance(key, str) and key.startswith("Std:"))
    return False


def _member_name(key: Any, path: str, dynamic: set[str]) -> Any:
    """A Step Functions ``Key.$`` member is ``Key``, filled at run time."""
    if isinstance(key, str) and key.endswith(".$"):
        dynamic.add(f"{path}.{key[:-2]}")
        return key[:-2]
    return key


def _concrete(params: Any, shape_obj, path: str, dynamic: set[str], placeholder: Callable[[object], bool]) -> Any:
    """A copy of ``params`` with Step Functions "Key.$" members renamed to "Key"; the paths of
    every value that is not concrete are collected in ``dynamic``."""
    if placeholder(params):
        dynamic.add(path)
        return params
    kind = getattr(shape_obj, "type_name", None)
    if kind == "structure" and isinstance(params, Mapping):
        out = {}
        for key, value in params.items():
            name = _member_name(key, path, dynamic)
            member = shape_obj.members.get(name) if hasattr(shape_obj, "members") else None
            out[name] = _concrete(value, member, f"{path}.{name}", dynamic, placeholder) if member else value
        return out
    if kind == "list" and isinstance(params, (list, tuple)):
        return [_concrete(v, shape_obj.member, f"{path}[{i}]", dynamic, placeholder) for i, v in enumerate(params)]
    if kind == "map" and isinstance(params, Mapping):
        out = {}
        for key, value in params.items():
            name = _member_name(key, path, dynamic)
            out[name] = _concrete(value, shape_obj.value, f"{path}.{name}", dynamic, placeholder)
        return out
    return params


def _under(name: str, dynamic: set[str]) -> bool:
    return any(name == d or name.startswith(d + ".") or name.startswith(d + "[") or name.startswith(d + " ")
               for d in dynamic)


def _label(path: str) -> str:
    return path[1:] if path.startswith(".") else (path or "input")


def _check_constraints(params: Any, shape_obj, path: str, problems: list[str]) -> None:
    """What ParamValidator leaves to the service: maximums, enums and patterns."""
    if shape_obj is None:
        return
    kind = shape_obj.type_name
    meta = shape_obj.metadata
    if kind == "structure" and isinstance(params, Mapping):
        for key, value in params.items():
            member = shape_obj.members.get(key)
            if member is not None:
                _check_constraints(value, member, f"{path}.{key}", problems)
    elif kind == "list" and isinstance(params, (list, tuple)):
        if meta.get("max") is not None and len(params) > meta["max"]:
            problems.append(f"{_label(path)}: {len(params)} items; at most {meta['max']} allowed")
        for i, value in enumerate(params):
            _check_constraints(value, shape_obj.member, f"{path}[{i}]", problems)
    elif kind == "map" and isinstance(params, Mapping):
        if meta.get("max") is not None and len(params) > meta["max"]:
            problems.append(f"{_label(path)}: {len(params)} entries; at most {meta['max']} allowed")
        for key, value in params.items():
            _check_constraints(key, shape_obj.key, f"{path} (key: {key})", problems)
            _check_constraints(value, shape_obj.value, f"{path}.{key}", problems)
    elif kind == "string" and isinstance(params, str):
        enum = shape_obj.enum
        if enum and params not in enum:
            near = closest(params, enum, 3)
            problems.append(f"{_label(path)}: {params!r} is not one of the {shape_obj.name} values"
                            + (f" (closest: {', '.join(near)})" if near else ""))
            return
        if meta.get("max") is not None and len(params) > meta["max"]:
            problems.append(f"{_label(path)}: {len(params)} characters; at most {meta['max']} allowed")
        pattern = meta.get("pattern")
        regex = compiled_pattern(pattern) if pattern else None
        if regex is not None and not regex.fullmatch(params):
            problems.append(f"{_label(path)}: {params!r} does not match the pattern {pattern}")
    elif kind in ("integer", "long", "float", "double") and isinstance(params, (int, float)) \
            and not isinstance(params, bool):
        if meta.get("max") is not None and params > meta["max"]:
            problems.append(f"{_label(path)}: {params} is above the maximum {meta['max']}")


def validate_request(service: str, operation: str, params: Mapping[str, Any],
                     placeholder: Callable[[object], bool] = is_placeholder) -> list[str]:
    """Every reason AWS would refuse this request, one line each (empty: none found).

    botocore's ``ParamValidator`` checks required and unknown members, types and minimums; on
    top, maximums, enums and ``pattern`` (where Python's ``re`` can run it) are checked.
    Values that are not concrete (see ``is_placeholder``; Step Functions "Key.$" members) are
    not checked, nor is anything under them."""
    from botocore.validate import ParamValidator

    model = service_model(service)
    try:
        op = model.operation_model(operation)
    except Exception:
        raise UnknownShape(f"{service} has no operation {operation!r}") from None
    input_shape = op.input_shape
    if input_shape is None:
        return [] if not params else [f"{operation} takes no input"]
    dynamic: set[str] = set()
    concrete = _concrete(params, input_shape, "", dynamic, placeholder)
    report = ParamValidator().validate(concrete, input_shape)
    problems: list[str] = []
    errors = getattr(report, "_errors", None)
    if errors is None:  # a botocore without the structured list: fall back to its text
        problems += [line for line in report.generate_report().splitlines() if line]
    else:
        for error in errors:
            _, name, _ = error
            if not _under(name, dynamic):
                problems.append(report._format_error(error))
    extra: list[str] = []
    _check_constraints(_strip(concrete, dynamic, ""), input_shape, "", extra)
    return problems + extra


def _strip(params: Any, dynamic: set[str], path: str) -> Any:
    """``params`` without the values at dynamic paths (so constraint checks skip them)."""
    if path and path in dynamic:
        return _SKIP
    if isinstance(params, Mapping):
        return {k: v for k, v in ((k, _strip(v, dynamic, f"{path}.{k}")) for k, v in params.items())
                if v is not _SKIP}
    if isinstance(params, (list, tuple)):
        return [_strip(v, dynamic, f"{path}[{i}]") for i, v in enumerate(params)]
    return params


_SKIP = object()
