"""``mlpipe describe``: parameters, stages, dependencies and, with ``--target``, what is deployed."""

from __future__ import annotations

import argparse
import json


def _print_table(doc: dict) -> None:
    print(f"pipeline {doc['pipeline']}: {doc['description']}")
    print("\nparameters")
    for p in doc["parameters"]:
        print(f"  {p['name']:<26} {p['type']:<8} default {p['default']!r}")
    print("\nstages")
    for s in doc["stages"]:
        instance = f"{s['instance_type']} x {s['instance_count']}" if s["instance_type"] else "-"
        print(f"  {s['name']:<16} {s['kind']:<11} {instance:<34} after: {', '.join(s['depends_on']) or '(start)'}")
        for k, v in s["inputs"].items():
            print(f"  {'':<16}   in  {k} <- {v}")
        if s["outputs"]:
            print(f"  {'':<16}   out {', '.join(s['outputs'])}")
        if s.get("monitoring"):
            m = s["monitoring"]
            print(f"  {'':<16}   monitoring {m['schedule']} against {m['baseline']} ({m['instance_type']}); "
                  "violations notify the topic")
    if doc.get("foreach"):
        f = doc["foreach"]
        items = ", ".join(f["items"]["values"]) if "values" in f["items"] else f["items"]["at_run_time"]
        print(f"\nforeach {f['name']}: {', '.join(f['stages'])} once per item of {items}")
        print(f"  registry: {f['registry']}; Step Functions: {f['stepfunctions']}; SageMaker: {f['sagemaker']}")
    if doc.get("schedule"):
        sched = doc["schedule"]
        print(f"\nschedule {sched['expression']} ({sched['timezone']}){'' if sched['enabled'] else ' disabled'}")
    if doc.get("trigger"):
        print(f"trigger  new objects under {doc['trigger']['s3_prefix']}")
    if doc.get("deployed"):
        print(f"\ndeployed ({doc['deployed']['target']})")
        for resource in doc["deployed"]["resources"]:
            print(f"  {resource['resource']:<22} {resource.get('arn') or resource.get('name')}  {resource.get('state', '')}")


def main(args: argparse.Namespace) -> int:
    from steps.pipeline import load_spec
    from workflows.views.describe import describe

    spec = load_spec(args.config)
    doc = describe(spec)
    if args.target:
        from workflows.infra.deployed import deployed_resources

        doc["deployed"] = {"target": args.target, "resources": deployed_resources(spec, args)}
    if args.output == "json":
        print(json.dumps(doc, indent=2, sort_keys=True, default=str))
    else:
        _print_table(doc)
    return 0
