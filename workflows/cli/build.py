"""``mlpipe build``: render definitions and code assets into a directory, offline.

Everything is rendered in memory first, written into a fresh scratch directory, and only then
moved into place, so a failed build never leaves a half-written directory behind. The output
directory's manifest (``.mlpipe-build.json``) records what build wrote: a rebuild replaces only
those files, and a directory holding anything else is refused unless ``--force``
(``workflows/files.py``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from workflows.files import check_output_dir, write_owned_tree


def main(args: argparse.Namespace) -> int:
    from steps.pipeline import load_spec
    from workflows.cli.progress import progress, rendering
    from workflows.render import render

    check_output_dir(args.out, force=getattr(args, "force", False))   # before the (slow) render
    spec = load_spec(args.config)
    with progress(rendering(args.target)):
        files = render(spec, args.target)
    write_owned_tree(files, Path(args.out), force=getattr(args, "force", False))
    for rel in sorted(files):
        print(f"{args.out.rstrip('/')}/{rel}")
    print(f"built {spec.name} ({args.target}) offline; deploy uploads the assets", file=sys.stderr)
    return 0
