""""Did you mean" fixes: the allowed values nearest to a refused one (instance types by family
and size, anything else by spelling). Pure: no botocore, no AWS models (``aws_api.py`` says
what is allowed; this says which of it to suggest)."""

from __future__ import annotations

import difflib
import re
from typing import Iterable


def closest(value: str, choices: Iterable[str], n: int = 5) -> list[str]:
    """Up to ``n`` of ``choices`` nearest to ``value`` (for "did you mean" fixes)."""
    choices = list(choices)
    near = difflib.get_close_matches(value, choices, n=n, cutoff=0.6)
    if len(near) < n:
        near += [c for c in difflib.get_close_matches(value, choices, n=n, cutoff=0.0) if c not in near]
    return near[:n]


_SIZE = re.compile(r"^ml\.(?P<family>[a-z0-9-]+)\.(?P<size>[a-z0-9-]+)$")
_SIZES = ["nano", "micro", "small", "medium", "large", "xlarge"]
_USUAL = ("ml.m5.large", "ml.m5.xlarge", "ml.c5.xlarge", "ml.m5.2xlarge", "ml.c5.2xlarge", "ml.r5.xlarge")


def _size_rank(size: str) -> float:
    if size in _SIZES:
        return _SIZES.index(size)
    m = re.match(r"^(\d+)xlarge$", size)
    if m:
        return len(_SIZES) + int(m[1])
    return 1000.0 if size == "metal" else _SIZES.index("xlarge")  # an unknown size: the usual one


def closest_instance_types(value: str, allowed: Iterable[str], n: int = 5) -> list[str]:
    """Up to ``n`` of ``allowed`` most like ``value``: the same family in the nearest sizes,
    then the same size in other families of its kind, then the usual general-purpose types."""
    allowed = sorted(set(allowed))
    m = _SIZE.match(value)
    picks: list[str] = []
    if m:
        family, size = m["family"], m["size"]
        same_family = [t for t in allowed if _SIZE.match(t) and _SIZE.match(t)["family"] == family]
        picks += sorted(same_family, key=lambda t: abs(_size_rank(_SIZE.match(t)["size"]) - _size_rank(size)))
        kind = re.match(r"^[a-z]*", family)[0]
        same_kind = [t for t in allowed if t not in picks and _SIZE.match(t) and kind
                     and re.match(r"^[a-z]*", _SIZE.match(t)["family"])[0] == kind
                     and _SIZE.match(t)["size"] == size]
        picks += sorted(same_kind, key=lambda t: -difflib.SequenceMatcher(None, value, t).ratio())
        if size in {"large", "xlarge", "2xlarge"}:
            picks += [t for t in _USUAL if t in allowed and t not in picks and t.endswith(f".{size}")]
    picks += [t for t in _USUAL if t in allowed and t not in picks]
    picks += [t for t in closest(value, allowed, n) if t not in picks]
    return picks[:n]
