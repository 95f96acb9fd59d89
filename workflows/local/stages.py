"""What runs inside a local stage process, for the stage kinds that are not a user script.

Each function is called in a forked worker (see worker.py) with the stage's work directory as
its current directory, and reports through ``result.json`` there and its exit code. The
bookkeeping stages (gate, model, registry, approval) run in the run's own process instead:
``bookkeeping.py``.
"""

from __future__ import annotations

import gzip
import http.client
import io
import json
import os
import sys
import tarfile
from pathlib import Path
from typing import NamedTuple

from workflows.local.bookkeeping import write_result as _result




def pack_model(model_dir: str, out_tar: str) -> int:
    """Pack /opt/ml/model into model.tar.gz as SageMaker does after training (deterministic).
    At gzip's default level (6, as ``tar -czf``): level 9 took ten times as long (25 ms against
    2.6 ms for abalone's model) for a file 2 % smaller; what the archive holds is the same."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        for path in sorted(Path(model_dir).rglob("*")):
            info = tar.gettarinfo(str(path), arcname=path.relative_to(model_dir).as_posix())
            info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
            if path.is_file():
                with open(path, "rb") as f:
                    tar.addfile(info, f)
            else:
                tar.addfile(info)
    Path(out_tar).parent.mkdir(parents=True, exist_ok=True)
    with gzip.GzipFile(out_tar, "wb", compresslevel=6, mtime=0) as gz:
        gz.write(raw.getvalue())
    return 0


def train_xgboost(model_dir: str, out_tar: str) -> int:
    from workflows.local import xgboost_algo

    code = xgboost_algo.main()
    return code or pack_model(model_dir, out_tar)


def train_script(script: str, argv: list[str], model_dir: str, out_tar: str) -> int:
    """Framework script mode: run the entry point with the hyperparameters as arguments."""
    import runpy
    import sys

    sys.argv = [script, *argv]
    sys.path.insert(0, os.path.dirname(script))
    try:
        runpy.run_path(script, run_name="__main__")
    except SystemExit as exc:
        if exc.code not in (0, None):
            raise
    return pack_model(model_dir, out_tar)


def endpoint(model_tar: str, test_csv: str, capture: str, percentage: int, endpoint_name: str,
             env: dict[str, str]) -> int:
    """Start the local endpoint, send the test rows, compare with the in-process model, stop."""
    import numpy as np

    from workflows.local.data import feature_rows
    from workflows.local.serve import Capture, load_predictor, make_server

    rows = feature_rows(Path(test_csv))
    server = make_server(Path(model_tar), port=0, capture=Capture(Path(capture), percentage), env=env)
    import threading

    # A short poll: shutdown() waits for the serving loop to look up.
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.005}, daemon=True)
    thread.start()
    port = server.server_address[1]
    url = f"http://127.0.0.1:{port}"
    request = "GET /ping"
    served: list[float] = []
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)  # one, kept alive, as a client's
    try:
        answer = _http(connection, "GET", "/ping")
        if answer.status == 200:
            size = max(1, len(rows) // 20)  # about twenty requests, as clients would send them
            request = "POST /invocations"
            for start in range(0, len(rows), size):
                body = ("\n".join(rows[start:start + size]) + "\n").encode()
                answer = _http(connection, "POST", "/invocations", body, {"Content-Type": "text/csv"})
                if answer.status != 200:
                    break
                served += [float(x) for x in answer.body.decode().split()]
        if answer.status != 200:
            # The endpoint failed (the deployment's fault, not the user's input): a stage failure, exit 1.
            detail = answer.body[:2048].decode(errors="replace").strip()
            print(f"error: endpoint {endpoint_name}: {request} answered HTTP {answer.status} {answer.reason}"
                  + (f": {detail}" if detail else ""))
            return 1
    except (http.client.HTTPException, OSError) as exc:
        print(f"error: endpoint {endpoint_name}: {request} failed: {exc}")
        return 1
    finally:
        connection.close()
        server.shutdown()
        server.server_close()
    # The model as loaded in this process: the served one (its answers went through the HTTP
    # front end: request parsing, answer formatting, data capture), else loaded again (a
    # framework model, served by its own inference script).
    predict = getattr(server.RequestHandlerClass, "predict", None) or load_predictor(Path(model_tar))
    expected = predict(np.array([[float(v) for v in r.split(",")] for r in rows]))
    max_diff = float(np.max(np.abs(np.array(served) - expected))) if rows else 0.0
    ok = len(served) == len(rows) and max_diff <= 1e-6 * max(1.0, float(np.max(np.abs(expected))) if rows else 1.0)
    print(f"endpoint {endpoint_name} at {url}: {len(served)} predictions, max |served - in-process| = {max_diff:.3g}")
    _result({"endpoint_name": endpoint_name, "url": url, "requests": len(rows), "max_abs_diff": max_diff,
             "matches_in_process_model": ok, "data_capture": capture if Path(capture).exists() else None})
    if not ok:
        print("error: the endpoint's answers differ from the in-process model", flush=True)
        return 1
    return 0


class _Answer(NamedTuple):
    status: int
    reason: str
    body: bytes


def _http(connection: http.client.HTTPConnection, method: str, path: str, body: bytes | None = None,
          headers: dict[str, str] | None = None) -> _Answer:
    connection.request(method, path, body=body, headers=headers or {})
    response = connection.getresponse()
    return _Answer(response.status, response.reason, response.read())


def transform(model_tar: str, input_path: str, output_dir: str) -> int:
    """Batch transform with join_source=Input: each output line is the input row plus its
    prediction, so outputs line up with inputs row for row."""
    from workflows.local.serve import load_predictor, parse_csv

    predict = load_predictor(Path(model_tar))
    sources = [Path(input_path)] if Path(input_path).is_file() else sorted(p for p in Path(input_path).rglob("*") if p.is_file())
    out_dir = Path(output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    total = 0
    for src in sources:
        lines = [line for line in src.read_text().splitlines() if line.strip()]
        predictions = predict(parse_csv(("\n".join(lines) + "\n").encode())) if lines else []
        tmp = out_dir / f".{src.name}.out.tmp"
        tmp.write_text("".join(f"{line},{p:.10g}\n" for line, p in zip(lines, predictions)))
        tmp.rename(out_dir / f"{src.name}.out")
        total += len(lines)
    print(f"transformed {total} rows from {len(sources)} file(s)")
    _result({"rows": total, "predictions": str(out_dir)})
    return 0


def _save_parameters(parameters_file: str, region: str) -> None:
    """The emulator's SSM parameters to ``parameters_file`` (atomically). A failure here is
    logged, never raised: the handler's own outcome (its error, if any) stays the stage's."""
    try:
        from workflows.aws import ssm_client

        from workflows.local.store import write_json

        write_json(Path(parameters_file), ssm_client.all_parameters(os.environ["AWS_ENDPOINT_URL"], region))
    except Exception as exc:  # the emulator is gone, or answers oddly
        print(f"warning: could not read the emulator's SSM parameters back: {type(exc).__name__}: {exc}",
              file=sys.stderr, flush=True)


def invoke_lambda(handler: str, event: dict, parameters_file: str, region: str) -> int:
    """Call the real handler, as the Lambda runtime would (environment already applied); then,
    even when it failed, write the emulator's SSM parameters to ``parameters_file``, so the run
    keeps them without loading boto3 in the owner."""
    import importlib

    module, _, func = handler.rpartition(".")
    try:
        response = getattr(importlib.import_module(module), func)(event, None)
    finally:
        _save_parameters(parameters_file, region)
    print(f"{handler} returned {json.dumps(response, default=str)}")
    _result({"result": response})
    return 0
