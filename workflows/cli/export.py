"""``mlpipe export cloudformation``: the deployment as one CloudFormation template, written
atomically, JSON or YAML by the output file's suffix."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from config.errors import UserError
from workflows.files import check_output_file, write_output_file

SUFFIXES = (".json", ".yaml", ".yml")


def main(args: argparse.Namespace) -> int:
    out = Path(args.out)
    check_output_file(out, create_parents=True)    # a directory: refused before anything else
    suffix = out.suffix.lower()
    if suffix not in SUFFIXES:  # before the (slow) render
        raise UserError(f"cannot tell the format from {out.name!r}", field="--out",
                        fix="name the file *.json, *.yaml or *.yml")
    from steps.pipeline import load_spec
    from workflows.infra import cloudformation
    from workflows.infra.package import build_zip, package_key
    from workflows.cli.progress import progress, rendering
    from workflows.render import render_cached

    target = getattr(args, "target", "stepfunctions")
    spec = load_spec(args.config)
    with progress(rendering(target)):
        files = render_cached(spec, target)
    zip_bytes = build_zip()
    doc = cloudformation.template(spec, target, files, zip_bytes)
    write_output_file(out, cloudformation.dump(doc, suffix).encode())
    print(str(out))
    print(f"exported {spec.name} ({target}) as CloudFormation; `mlpipe deploy --assets-only --target {target}` "
          f"uploads the code assets and the Lambda zip (s3://{spec.bucket}/{package_key(spec.prefix, zip_bytes)}) "
          "it refers to", file=sys.stderr)
    return 0
