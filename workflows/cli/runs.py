"""``mlpipe runs``, ``lineage``, ``serve`` and ``models``: what local runs left behind (their
records, lineage, models and the local registry), read and shown. Starting and continuing a
run is ``local.py``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from config.errors import UserError
from workflows.cli.local import summary
from workflows.local import session, store
from workflows.local.record import Status


def runs(args: argparse.Namespace) -> int:
    """List local runs with their effective status (``Running`` only while the owner process
    lives, else ``Interrupted``). A damaged ``run.json`` is listed as ``Damaged`` with a
    warning; the other runs are listed as usual."""
    if getattr(args, "action", "list") == "show":
        return _show_run(args)
    records = store.list_runs(store.runs_dir(args.runs_dir))
    damaged = [r for r in records if r["status"] == Status.DAMAGED]
    for r in damaged:
        print(f"warning: {r['error']}", file=sys.stderr)
    if args.output == "json":
        docs = [summary(r) for r in records]
        for doc, r in zip(docs, records):
            if r.get("error"):
                doc["error"] = r["error"]
        print(json.dumps(docs, indent=2, sort_keys=True, default=str))
        return 0
    for r in records:
        metrics = ", ".join(f"{k}={v:.4g}" for k, v in sorted((r.get("metrics") or {}).items())
                            if k in ("mse", "rmse", "accuracy") and isinstance(v, (int, float)))
        print(f"{r['run_id']:<40} {r['status']:<11} {str(r.get('started', '')):<22} {metrics}")
    if not records:
        print("no local runs yet: mlpipe run", file=sys.stderr)
    return 0


def _show_run(args: argparse.Namespace) -> int:
    """A picture of a run: its DAG coloured by each stage's state (svg, png), or its report."""
    if not args.run:
        raise UserError("runs show needs a RUN", fix="e.g. mlpipe runs show RUN_ID --format html --out run.html")
    from workflows.cli.output import picture_out, write_document, write_picture
    from workflows.local.runner import Options
    from workflows.views.report import report_html, states_of

    path = store.find_run(store.runs_dir(args.runs_dir), args.run)
    record = store.read_record(path)
    spec = session.spec_for(Options.from_record(record.get("options") or {}))
    out = picture_out(args.format, args.out, "mlpipe runs show RUN")
    if args.format == "html":
        write_document(out, report_html(spec, record, path))
    else:
        write_picture(spec, states_of(record), args.format, out, title=f"{spec.name} run {record['run_id']}")
    return 0


def lineage(args: argparse.Namespace) -> int:
    """A local run's lineage, or, with --target, an AWS execution's (read back from AWS)."""
    if getattr(args, "target", None):
        from workflows.cli.ops import lineage as aws_lineage

        doc = aws_lineage(args)
    else:
        path = store.find_run(store.runs_dir(args.runs_dir), args.run_id)
        record = store.read_record(path)
        doc = record.get("lineage")
        if not isinstance(doc, dict) or not doc:
            raise UserError(f"run {record['run_id']} has no lineage yet (status {store.effective_status(record)})")
    if args.output == "json":
        print(json.dumps(doc, indent=2, sort_keys=True, default=str))
        return 0
    print(f"run          {doc['run_id']}" + (f"  ({doc['status']})" if doc.get("status") else ""))
    if doc.get("config"):
        print(f"config       {doc['config']}")
    print(f"config hash  {doc.get('config_hash')}")
    if doc.get("version"):
        version = doc["version"]
        print(f"version      {version.get('number')}" + (f" (alias {version['alias']})" if version.get("alias") else ""))
    for name, sha in sorted(doc["code"].items()):
        print(f"code         {name}  sha256 {sha}")
    for param, data in sorted(doc.get("data", {}).items()):
        extra = f"  etag {data['etag']}" if data.get("etag") else ""
        digest = f"  sha256 {data['sha256']}" if data.get("sha256") else ""
        print(f"data         {param}: {data['source']}{digest}{extra}")
    for k, v in sorted(doc["parameters"].items()):
        print(f"parameter    {k} = {v}")
    for k, v in sorted(doc["metrics"].items()):
        print(f"metric       {k} = {v:.6g}")
    if doc.get("model"):
        m = doc["model"]
        print(f"model        {m.get('name', '')}  {m.get('artifact', '')}" + (f"  sha256 {m['sha256']}" if m.get("sha256") else ""))
    if doc.get("registry"):
        r = doc["registry"]
        print(f"registry     {r.get('group')} v{r.get('version')} ({r.get('approval_status')})")
    for stage, files in sorted((doc.get("baseline") or {}).items()):
        for what, f in sorted(files.items()):
            print(f"baseline     {stage} {what}: {f.get('path')}" + (f"  sha256 {f['sha256']}" if f.get("sha256") else ""))
    return 0


def serve(args: argparse.Namespace) -> int:
    from workflows.local.serve import Capture, NotAModel, make_server

    if not 0 <= args.port <= 65535:
        raise UserError(f"--port {args.port} is not a TCP port", fix="give a port from 1 to 65535 (0: any free port)")
    model = session.model_path(store.runs_dir(args.runs_dir), args.model)
    capture = getattr(args, "capture", None)
    if capture and Path(capture).is_dir():
        raise UserError(f"--capture {capture} is a directory", fix="name a file, e.g. --capture captured.jsonl")
    try:
        server = make_server(model, port=args.port, capture=Capture(Path(capture), 100) if capture else None)
    except NotAModel as exc:
        raise UserError(str(exc), fix="serve a run id, a run directory, or a model.tar.gz from a training stage") \
            from None
    except OSError as exc:
        raise UserError(f"cannot listen on 127.0.0.1:{args.port}: {exc.strerror or exc}",
                        fix="pick another --port") from None
    except (OverflowError, ValueError) as exc:
        raise UserError(f"cannot serve {model}: {exc}", fix="check --port and the model file") from None
    except Exception as exc:  # the model's own loader failed
        raise UserError(f"cannot load a model from {model}: {type(exc).__name__}: {store.bounded(str(exc), 500, 500)}",
                        fix="serve a model.tar.gz written by a training stage") from None
    host, port = server.server_address[:2]
    print(f"serving {model} on http://{host}:{port}  (GET /ping, POST /invocations text/csv; Ctrl-C stops)",
          file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


def models(args: argparse.Namespace) -> int:
    from workflows.local import registry

    root = store.runs_dir(args.runs_dir)
    if args.action == "list":
        rows = registry.versions(root, args.group)
        if args.output == "json":
            print(json.dumps(rows, indent=2, sort_keys=True, default=str))
            return 0
        if not rows:
            print("the local registry is empty: a run with a register stage adds versions", file=sys.stderr)
        for v in rows:
            metrics = ", ".join(f"{k}={val:.4g}" for k, val in sorted(v.get("metrics", {}).items()))
            print(f"{v['group']:<24} v{v['version']:<4} {v['approval_status']:<22} {v['run_id']:<40} {metrics}")
        return 0
    if not args.version:
        raise UserError(f"models {args.action} needs a VERSION", fix=f"e.g. mlpipe models {args.action} 3 --group NAME")
    status = "Approved" if args.action == "approve" else "Rejected"
    version = registry.set_status(root, args.group, args.version, status, args.reason)
    if args.output == "json":
        print(json.dumps(version, indent=2, sort_keys=True, default=str))
    else:
        print(f"{version['group']} v{version['version']}: {status}")
    return 0
