"""``mlpipe deploy``: apply the pipeline's resource list to AWS (``--dry-run``: the plan)."""

from __future__ import annotations

import argparse
import sys

from workflows.aws.session import from_args
from workflows.cli.output import emit

COLUMNS = [("resource", "RESOURCE"), ("name", "NAME"), ("action", "ACTION")]


def main(args: argparse.Namespace, clients=None) -> int:
    from config.loader import load_config
    from workflows.cli.progress import progress
    from workflows.infra import plan

    cfg = load_config(args.config)
    aws = from_args(args, cfg.aws.region, clients)
    with progress(f"preparing the {args.target} deploy (definition, Lambda package)"):
        d = plan.prepare(args.config, args.target, aws, assets_only=getattr(args, "assets_only", False))
    apply = not args.dry_run
    try:
        items = plan.deploy(d, apply)
    except plan.DeployFailed as failed:
        emit(args.output, failed.rows, COLUMNS, sys.stderr if args.output == "json" else sys.stdout)
        if failed.at is None:
            raise failed.cause from None
        print(f"error: deploy failed at {failed.at}: {failed.cause}", file=sys.stderr)
        return 1
    emit(args.output, items, COLUMNS)
    if args.output != "json":
        print(plan.summary(d, items, apply), file=sys.stderr)
    return 0
