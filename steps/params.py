"""The one ``--param NAME=VALUE`` parser: run, start and resume all use it, so a mistake reads
the same everywhere, and nothing starts while one item is wrong."""

from __future__ import annotations

from typing import Any

from steps.spec import Parameter


def split_params(raw: list[str] | tuple[str, ...], example: str = "Name") -> dict[str, str]:
    """``NAME=VALUE`` items as a dict of strings (the first half of ``parse_params``, for a run
    whose parameters are checked once its spec is built)."""
    from config.errors import UserError

    out: dict[str, str] = {}
    for item in raw:
        key, eq, value = str(item).partition("=")
        if not eq or not key:
            raise UserError(f"--param {item!r} is not NAME=VALUE", field="--param", fix=f"e.g. --param {example}=value")
        out[key] = value
    return out


def parse_params(raw: list[str] | tuple[str, ...], parameters: tuple[Parameter, ...] | list[Parameter]) -> dict[str, Any]:
    """``--param NAME=VALUE`` items, checked and converted against the declared parameters.

    The one parser every command uses (run, start, resume), so a mistake reads the same
    everywhere; nothing is started when one item is wrong.
    """
    from config.errors import UserError

    declared = {p.name: p for p in parameters}
    out: dict[str, Any] = {}
    for key, value in split_params(raw, next(iter(declared), "Name")).items():
        if key not in declared:
            raise UserError(f"unknown parameter {key!r}", field="--param",
                            fix=f"declared parameters: {', '.join(sorted(declared)) or 'none'}")
        param = declared[key]
        try:
            out[key] = param.coerce(value)
        except (TypeError, ValueError) as exc:
            article = "an" if param.type[0] in "AEIOU" else "a"
            allowed = f"one of {', '.join(map(str, param.allowed))}" if param.allowed else f"{article} {param.type} value"
            raise UserError(f"parameter {key} ({param.type}): {exc}", field="--param",
                            fix=f"give {allowed}, e.g. --param {key}={param.default}") from None
    return out
