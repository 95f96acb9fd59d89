"""``mlpipe iam-policy``: print every IAM document deploy would attach (offline).

The documents come from ``workflows.infra.iam``, the generator deploy and export use. Roles the
config names (``aws.roles``) are listed as given: deploy attaches nothing to them, but they
need at least these permissions.
"""

from __future__ import annotations

import argparse
import json

from config.errors import UserError
from workflows.infra import iam as policies


def collect(spec, targets: list[str]) -> list[dict]:
    merged: dict[str, dict] = {}
    for target in targets:
        for role in policies.roles(spec, target):
            entry = merged.setdefault(role.name, {"role": role.name, "service": role.service, "arn": role.arn,
                                                  "given": role.given, "targets": [], "trust": role.trust,
                                                  "policies": {}})
            entry["targets"].append(target)
            entry["policies"].update(role.policies)
    for entry in merged.values():
        for name, doc in entry["policies"].items():
            bad = policies.wildcard_actions(doc)
            if bad:  # a generator bug; never print a policy that breaks the rule
                raise UserError(f"policy {name} of {entry['role']} has wildcard actions: {bad}")
    return list(merged.values())


def main(args: argparse.Namespace) -> int:
    from steps.pipeline import load_spec

    spec = load_spec(args.config)
    targets = ["stepfunctions", "sagemaker"] if args.target == "all" else [args.target]
    entries = collect(spec, targets)
    if args.output == "json":
        print(json.dumps(entries, indent=2, sort_keys=False))
        return 0
    for e in entries:
        note = " (given in the config: deploy attaches nothing; it needs at least this)" if e["given"] else ""
        print(f"# role {e['role']}  [{e['service']}; {', '.join(e['targets'])}]{note}")
        print(f"#   {e['arn']}")
        print("## trust policy")
        print(json.dumps(e["trust"], indent=2))
        for name, doc in e["policies"].items():
            print(f"## inline policy {name}")
            print(json.dumps(doc, indent=2))
        print()
    return 0
