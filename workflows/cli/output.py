"""How results are shown: JSON for scripts, aligned plain text for people."""

from __future__ import annotations

import json
import sys
from datetime import datetime, timezone
from typing import Any


def ts(v: Any) -> str:
    if isinstance(v, datetime):
        return v.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
    return "" if v is None else str(v)


def jsonable(v: Any) -> Any:
    if isinstance(v, datetime):
        return v.astimezone(timezone.utc).isoformat()
    if isinstance(v, dict):
        return {k: jsonable(x) for k, x in v.items()}
    if isinstance(v, list):
        return [jsonable(x) for x in v]
    return v


def emit(output: str, data: Any, columns: list[tuple[str, str]] | None = None, stream=None) -> None:
    """JSON for scripts; an aligned table (a list) or ``key  value`` lines (a dict) for people."""
    stream = stream or sys.stdout
    if output == "json":
        print(json.dumps(jsonable(data), indent=2, default=str), file=stream)
        return
    if isinstance(data, dict):
        width = max(len(k) for k in data) if data else 0
        for k, v in data.items():
            if v is not None:
                print(f"{k:<{width}}  {ts(v) if isinstance(v, datetime) else v}", file=stream)
        return
    columns = columns or [(k, k.upper()) for k in (data[0] if data else {})]
    table = [[h for _, h in columns]] + [[ts(r.get(k)) for k, _ in columns] for r in data]
    widths = [max(len(row[i]) for row in table) for i in range(len(columns))]
    for row in table:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip(), file=stream)
