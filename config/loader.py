"""Load a config file (YAML or JSON), apply overrides, and validate it.

Overrides are applied here only: the ``MLPIPE_*`` environment variables and a command's dotted
settings (``apply_overrides``, before validation), and a local run's data options
(``apply_data_options``, on the validated config).

Every failure becomes a ``ConfigError`` naming the file, the field path and what is expected.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Mapping

from config.errors import ConfigError, UserError

EXAMPLES = Path(__file__).resolve().parent / "examples"
DEFAULT_CONFIG = EXAMPLES / "quickstart.yaml"

# Environment variables that override AWS settings, so one config serves several accounts.
ENV_OVERRIDES: dict[str, tuple[str, ...]] = {
    "MLPIPE_AWS_REGION": ("aws", "region"),
    "MLPIPE_AWS_ACCOUNT_ID": ("aws", "account_id"),
    "MLPIPE_AWS_BUCKET": ("aws", "bucket"),
    "MLPIPE_AWS_PREFIX": ("aws", "prefix"),
    "MLPIPE_SAGEMAKER_ROLE_ARN": ("aws", "roles", "sagemaker"),
    "MLPIPE_STEPFUNCTIONS_ROLE_ARN": ("aws", "roles", "stepfunctions"),
    "MLPIPE_LAMBDA_ROLE_ARN": ("aws", "roles", "lambda"),
    "MLPIPE_SCHEDULER_ROLE_ARN": ("aws", "roles", "scheduler"),
    "MLPIPE_EVENTS_ROLE_ARN": ("aws", "roles", "events"),
}


def read_document(path: Path) -> dict[str, Any]:
    """Parse YAML or JSON (by suffix), with a clear error for unreadable or malformed files."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError("file not found", source=str(path),
                          fix="pass an existing file with --config, e.g. config/examples/abalone.yaml") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read file ({exc})", source=str(path)) from None
    try:
        if path.suffix.lower() == ".json":
            doc = json.loads(text)
        else:
            import yaml

            doc = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except json.JSONDecodeError as exc:
        raise ConfigError(f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}",
                          source=str(path)) from None
    except Exception as exc:  # yaml.YAMLError carries the position in its text
        text = str(exc).replace('"<unicode string>"', str(path)).replace("\n", " ")
        raise ConfigError(f"invalid YAML: {' '.join(text.split())}", source=str(path)) from None
    if not isinstance(doc, dict):
        raise ConfigError("the top level must be a mapping (pipeline:, aws:, stages:, ...)", source=str(path))
    return doc


def apply_overrides(doc: dict[str, Any], env: Mapping[str, str],
                    overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A config document overridden by the ``MLPIPE_*`` environment variables, then by explicit
    dotted ``overrides`` from a command (e.g. ``{"aws.account_id": ...}``, what deploy learns
    from the caller's credentials). The file's own document stays untouched."""
    doc = json.loads(json.dumps(doc))  # deep copy
    settings = [(var, path, env.get(var)) for var, path in ENV_OVERRIDES.items()]
    settings += [(name, tuple(name.split(".")), value) for name, value in (overrides or {}).items()]
    for origin, path, value in settings:
        if value:
            node = doc
            for key in path[:-1]:
                node = node.setdefault(key, {})
                if not isinstance(node, dict):
                    raise ConfigError(f"cannot apply {origin}: {'.'.join(path[:-1])} is not a mapping")
            node[path[-1]] = value
    return doc


def _index_or_name(value: str) -> int | str:
    return int(value) if value.lstrip("-").isdigit() else value


def apply_data_options(config, *, input_data: str | None = None, target: str | None = None,
                       delimiter: str | None = None, header: bool | None = None,
                       categorical: list[str] | None = None, problem_type: str | None = None):
    """A validated config with a local run's data options in its ``data`` section (``--input``,
    ``--target``, ``--delimiter``, ``--header``/``--no-header``, ``--categorical``,
    ``--problem-type``), validated again; the config itself when none is given.

    ``input_data`` (``--input``) replaces the data: the file's own reading options (``local``,
    column names, header, delimiter, categorical columns) no longer apply, so ``target`` is
    required. Without it the options adjust the configured data. A ``UserError`` (exit 2) says
    what is missing."""
    data = config.data
    if not (input_data or target is not None or delimiter or header is not None or categorical or problem_type):
        return config
    if data is None:
        raise UserError("this pipeline has no data section, so --input/--target cannot replace it",
                        source=source_name(config), field="data")
    if input_data and target is None:
        raise UserError("--input needs --target NAME_OR_INDEX (the column to predict)")
    columns = [_index_or_name(c) for c in categorical] if categorical else None
    changes: dict[str, Any]
    if input_data:
        changes = {"local": None, "target": _index_or_name(target), "header": header, "delimiter": delimiter,
                   "column_names": None, "categorical": columns}
    else:
        changes = {}
        if target is not None:
            changes["target"] = _index_or_name(target)
        if header is not None:
            changes["header"] = header
        if delimiter:
            changes["delimiter"] = delimiter
        if columns:
            changes["categorical"] = columns
    if problem_type:
        changes["problem_type"] = problem_type
    if isinstance(changes.get("target"), str) and changes.get("header") is False:
        raise UserError("a target given by name needs a header row", fix="drop --no-header, or give the column index")
    doc = config.model_dump(mode="json", by_alias=True)
    doc["data"] = {**data.model_dump(mode="json"), **changes}
    if doc["data"].get("header") is None and isinstance(doc["data"]["target"], str):
        doc["data"]["header"] = True
    source, text = config._source, config._source_text
    config = validate_document(doc, f"{source_name(config)} (with command-line data options)")
    config._source, config._source_text = source, text
    return config


def _stage_kinds() -> tuple[str, ...]:
    from config.models import STAGE_KINDS

    return STAGE_KINDS


def _field_path(loc: tuple[Any, ...], doc: Any) -> str:
    """Turn pydantic's location into a readable path; name stages by their name, not index."""
    parts: list[str] = []
    node = doc
    for item in loc:
        if isinstance(item, int):
            name = node[item].get("name") if isinstance(node, list) and item < len(node) and isinstance(node[item], dict) else None
            parts.append(f"[{item}]" + (f"({name})" if name else ""))
            node = node[item] if isinstance(node, list) and item < len(node) else None
        elif (isinstance(item, str) and item in _stage_kinds() and parts and parts[-1].startswith("[")
              and isinstance(node, dict) and node.get("kind") == item):
            continue  # the discriminator tag pydantic inserts; the user never wrote it
        else:
            parts.append(("." if parts else "") + str(item))
            node = node.get(item) if isinstance(node, dict) else None
    return "".join(parts)


def _fix_for(err: dict[str, Any]) -> str:
    cause = (err.get("ctx") or {}).get("error")
    if getattr(cause, "fix", None):  # config.models.FieldError: the validator knows the fix
        return cause.fix
    kind = err["type"]
    if kind == "extra_forbidden":
        return "remove this field; it is not part of the schema (check the spelling)"
    if kind == "missing":
        return "add this required field"
    if kind == "union_tag_invalid":
        return f"set kind to one of {', '.join(_stage_kinds())}"
    if kind.endswith("_type") or kind.endswith("_parsing"):
        return f"use a value of the expected type ({err['msg'].lower()})"
    return "see config/examples/ for a valid config"


def validate_document(doc: dict[str, Any], source: str):
    # pydantic is imported here, not at module level: ops commands read configs without it
    from pydantic import ValidationError

    from config.models import PipelineConfig

    try:
        return PipelineConfig.model_validate(doc)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        err = errors[0]
        msg = err["msg"].removeprefix("Value error, ")
        extra = len(errors) - 1
        if extra:
            msg += f" (and {extra} more problem{'s' if extra > 1 else ''})"
        # A config.models.FieldError says where, below the model that raised it.
        loc = tuple(err["loc"]) + tuple(getattr((err.get("ctx") or {}).get("error"), "loc", ()))
        raise ConfigError(msg, source=source, field=_field_path(loc, doc) or "(top level)",
                          fix=_fix_for(err)) from None


def load_config(path: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None,
                overrides: Mapping[str, Any] | None = None):
    """Load and validate a config; ``None`` means the embedded quick-start default."""
    p = Path(path) if path is not None else DEFAULT_CONFIG
    doc = apply_overrides(read_document(p), os.environ if env is None else env, overrides)
    config = validate_document(doc, str(p))
    config._source = p.resolve()
    config._source_text = str(p)
    return config


def source_name(config) -> str | None:
    """How messages name a config's file: as the user gave it (``--config``), the way every
    error from reading and validating it does; the resolved path when that is all there is."""
    return config._source_text or (str(config._source) if config._source else None)


def config_dir(config) -> Path:
    """Directory that relative paths in the config (code, local data) are resolved against."""
    return config._source.parent if config._source else Path.cwd()
