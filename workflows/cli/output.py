"""How results are shown: JSON for scripts, aligned plain text for people."""

from __future__ import annotations

import json
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping


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


# --- pictures of runs (`runs show`, `status --format`) ---------------------------------------

def picture_out(fmt: str, out: str | None, example: str) -> Path | None:
    """Where a picture goes, checked before any work: a file (``--out``), or stdout for text;
    png is binary, so it needs a file."""
    from config.errors import UserError
    from workflows.files import check_output_file

    if fmt == "png" and not out:
        raise UserError("--format png needs --out FILE (a PNG is binary)", field="--out",
                        fix=f"e.g. {example} --format png --out run.png")
    if not out:
        return None
    check_output_file(Path(out), create_parents=False)
    return Path(out)


def write_document(out: Path | None, data: str | bytes) -> None:
    """A picture or a page: to ``out`` atomically (a bad place is one UserError), else stdout."""
    from workflows.files import write_output_file

    if out is None:
        sys.stdout.write(data if isinstance(data, str) else data.decode())
        return
    write_output_file(out, data.encode() if isinstance(data, str) else data, create_parents=False)
    print(f"wrote {out}", file=sys.stderr)


def write_picture(spec, states: Mapping[str, Mapping[str, Any]], fmt: str, out: Path | None, title: str) -> None:
    """The DAG (a PipelineSpec's) coloured by each stage's state (``workflows.views.graph``), as
    svg or png: the picture of a local run (``runs show``) and of an execution (``status``)."""
    from workflows.views import graph

    if fmt == "png":
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            graph.png(spec, Path(tmp) / "run.png", states)
            write_document(out, (Path(tmp) / "run.png").read_bytes())
        return
    write_document(out, graph.svg(spec, states, title=title))
