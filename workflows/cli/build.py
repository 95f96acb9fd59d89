"""``mlpipe build``: render definitions and code assets into a directory, offline.

Everything is rendered in memory first and then moved into place in one rename, so a failed
build never leaves a half-written directory behind.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from workflows.files import write_tree


def main(args: argparse.Namespace) -> int:
    from steps.pipeline import load_spec
    from workflows.render import render

    spec = load_spec(args.config)
    files = render(spec, args.target)
    write_tree(files, Path(args.out))
    for rel in sorted(files):
        print(f"{args.out.rstrip('/')}/{rel}")
    print(f"built {spec.name} ({args.target}) offline; deploy uploads the assets", file=sys.stderr)
    return 0
