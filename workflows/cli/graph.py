"""``mlpipe graph``: draw the pipeline's DAG."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from pathlib import Path

from config.errors import UserError
from workflows.files import cannot_write, check_output_file, file_mode, write_output_file


def main(args: argparse.Namespace) -> int:
    from steps.pipeline import load_spec
    from workflows.views.graph import mermaid, png, svg

    out = Path(args.out) if args.out else None
    if args.format == "png" and out is None:
        raise UserError("--format png needs --out FILE", fix="e.g. mlpipe graph --format png --out dag.png")
    if out is not None:                      # before any work: a directory or a missing parent
        check_output_file(out, create_parents=False)
    spec = load_spec(args.config)
    if args.format == "png":
        # drawn into a temp file beside the target, then renamed: atomic, and the mode follows the umask
        tmp = out.with_name(f".{out.stem}.{os.getpid()}.tmp.png")
        try:
            png(spec, tmp)
            os.chmod(tmp, file_mode())
            os.replace(tmp, out)
        except OSError as exc:
            raise cannot_write(out, exc) from None
        finally:
            with contextlib.suppress(OSError):
                tmp.unlink()
        print(f"wrote {args.out}", file=sys.stderr)
        return 0
    text = mermaid(spec) if args.format == "mermaid" else svg(spec)
    if out is not None:
        write_output_file(out, text.encode("utf-8"), create_parents=False)
        print(f"wrote {args.out}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0

