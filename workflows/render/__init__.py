"""Renderers: the spec as a Step Functions state machine and as a SageMaker pipeline.

``stepfunctions.py`` and ``sagemaker.py`` never import each other; what both need from the
sagemaker SDK lives in ``sdk.py``. This package's ``__init__`` imports neither SDK: they load
only when something is rendered and the render cache (``cache.py``) does not already hold the
definition. The same spec gives the same bytes.
"""

from __future__ import annotations

import contextlib
import json
import sys
from typing import Any

from steps.spec import PipelineSpec

STATE_MACHINE_FILE = "stepfunctions/state_machine.asl.json"
PIPELINE_FILE = "sagemaker/pipeline.json"
TARGETS = ("stepfunctions", "sagemaker")


def dumps(doc: Any) -> str:
    """Canonical JSON for everything mlpipe writes: sorted keys, two-space indent, final newline."""
    return json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def definition(spec: PipelineSpec, target: str) -> dict[str, Any]:
    """One target's definition as a dict, every request in it checked against botocore's
    input shapes (``requests.py``): what AWS would refuse is never returned."""
    from workflows.render import requests

    # the sagemaker SDK logs to stdout; keep stdout for results
    with contextlib.redirect_stdout(sys.stderr):
        if target == "stepfunctions":
            from workflows.render.stepfunctions import render_state_machine

            doc = render_state_machine(spec)
        else:
            from workflows.render.sagemaker import render_pipeline

            doc = render_pipeline(spec)
    requests.check(target, doc, spec.where)
    return doc


def definition_bytes(spec: PipelineSpec, target: str, use_cache: bool = True) -> bytes:
    """One target's definition as the bytes a build writes: from the render cache when it
    holds them (no SDK is imported), else rendered, checked and stored there."""
    if not use_cache:
        return dumps(definition(spec, target)).encode()
    from workflows.render import cache

    key = cache.key(spec.fingerprint, target)
    data = cache.load(key)
    if data is None:
        data = dumps(definition(spec, target)).encode()
        cache.store(key, data)
    return data


def render(spec: PipelineSpec, target: str, use_cache: bool = True) -> dict[str, bytes]:
    """Relative path -> bytes of every file a build writes (``target``: one, or ``all``).
    ``use_cache=False`` renders with the SDKs whatever the render cache holds."""
    files: dict[str, bytes] = {}
    for t, path in (("stepfunctions", STATE_MACHINE_FILE), ("sagemaker", PIPELINE_FILE)):
        if target in (t, "all"):
            files[path] = definition_bytes(spec, t, use_cache)
    manifest = {"pipeline": spec.name, "fingerprint": spec.fingerprint, "assets": []}
    for asset in spec.assets:
        files[f"assets/{asset.key}"] = asset.content()
        manifest["assets"].append({"key": asset.key, "sha256": asset.sha256, "uri": asset.uri,
                                   "entry": asset.entry.name})
    files["manifest.json"] = dumps(manifest).encode()
    return files


_RENDERED: dict[tuple[str, str], dict[str, bytes]] = {}


def render_cached(spec: PipelineSpec, target: str) -> dict[str, bytes]:
    """``render`` once per spec fingerprint (config + code hashes + account) and target in
    this process: a deploy and an export in one process reuse it (and across processes, the
    render cache on disk does)."""
    key = (spec.fingerprint, target)
    if key not in _RENDERED:
        _RENDERED[key] = render(spec, target)
    return _RENDERED[key]
