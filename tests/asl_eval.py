"""A tiny evaluator for the ASL intrinsic functions our renderer emits in job names, so tests
can compute the names Step Functions would produce for given execution names and retries."""

from __future__ import annotations

import hashlib
import re
from typing import Any

_TOKEN = re.compile(r"\s*(States\.[A-Za-z]+\(|'(?:\\.|[^'\\])*'|\$\$?[A-Za-z0-9_.\[\]]*|\d+|,|\))")


def _lookup(path: str, data: dict, context: dict) -> Any:
    root, rest = (context, path[3:]) if path.startswith("$$.") else (data, path[2:])
    node: Any = root
    for part in rest.split("."):
        node = node[part]
    return node


def evaluate(expr: str, data: dict, context: dict) -> Any:
    tokens = [t for t in _TOKEN.findall(expr)]
    pos = 0

    def parse():
        nonlocal pos
        tok = tokens[pos]
        pos += 1
        if tok.startswith("States."):
            name, args = tok[:-1], []
            while tokens[pos] != ")":
                args.append(parse())
                if tokens[pos] == ",":
                    pos += 1
            pos += 1
            return _call(name, args)
        if tok.startswith("'"):
            return re.sub(r"\\(.)", r"\1", tok[1:-1])
        if tok.startswith("$"):
            return _lookup(tok, data, context)
        return int(tok)

    return parse()


def _call(name: str, args: list) -> Any:
    if name == "States.Format":
        template, values = args[0], iter(args[1:])
        return re.sub(r"\{\}", lambda _: str(next(values)), template)
    if name == "States.Hash":
        return hashlib.new(args[1].lower(), str(args[0]).encode()).hexdigest()
    if name == "States.StringSplit":
        return [p for p in re.split("[" + re.escape(args[1]) + "]", args[0]) if p]
    if name == "States.ArrayGetItem":
        return args[0][args[1]]
    if name == "States.Array":
        return list(args)
    raise NotImplementedError(name)
