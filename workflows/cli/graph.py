"""``mlpipe graph``: draw the pipeline's DAG."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from config.errors import UserError


def main(args: argparse.Namespace) -> int:
    from steps.pipeline import load_spec
    from workflows.views.graph import mermaid, png, svg

    spec = load_spec(args.config)
    if args.format == "png":
        if not args.out:
            raise UserError("--format png needs --out FILE", fix="e.g. mlpipe graph --format png --out dag.png")
        png(spec, Path(args.out))
        print(f"wrote {args.out}", file=sys.stderr)
        return 0
    text = mermaid(spec) if args.format == "mermaid" else svg(spec)
    if args.out:
        Path(args.out).write_text(text, encoding="utf-8")
        print(f"wrote {args.out}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0
