"""``mlpipe build``: render definitions and code assets into a directory, offline.

Everything is rendered in memory first and then moved into place in one rename, so a failed
build never leaves a half-written directory behind. The same config gives the same bytes.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from steps.spec import PipelineSpec
from workflows.files import replace_dir

STATE_MACHINE_FILE = "stepfunctions/state_machine.asl.json"
PIPELINE_FILE = "sagemaker/pipeline.json"


def dumps(doc: Any) -> str:
    """Canonical JSON for everything mlpipe writes: sorted keys, two-space indent, final newline."""
    return json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def render(spec: PipelineSpec, target: str) -> dict[str, bytes]:
    """Relative path -> bytes of every file a build writes."""
    files: dict[str, bytes] = {}
    if target in ("stepfunctions", "all"):
        from workflows.stepfunctions_renderer import render_state_machine

        files[STATE_MACHINE_FILE] = dumps(render_state_machine(spec)).encode()
    if target in ("sagemaker", "all"):
        from workflows.sagemaker_renderer import render_pipeline

        files[PIPELINE_FILE] = dumps(render_pipeline(spec)).encode()
    manifest = {"pipeline": spec.name, "fingerprint": spec.fingerprint, "assets": []}
    for asset in spec.assets:
        files[f"assets/{asset.key}"] = asset.content()
        manifest["assets"].append({"key": asset.key, "sha256": asset.sha256, "uri": asset.uri,
                                   "entry": asset.entry.name})
    files["manifest.json"] = dumps(manifest).encode()
    return files


def write_tree(files: dict[str, bytes], out: Path) -> None:
    """Write into a sibling temp dir, then swap it in: readers see the old tree or the new one."""
    out = out.resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        for rel, data in sorted(files.items()):
            path = tmp / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        replace_dir(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def main(args: argparse.Namespace) -> int:
    from steps.pipeline import load_spec

    spec = load_spec(args.config)
    files = render(spec, args.target)
    write_tree(files, Path(args.out))
    for rel in sorted(files):
        print(f"{args.out.rstrip('/')}/{rel}")
    print(f"built {spec.name} ({args.target}) offline; deploy uploads the assets", file=sys.stderr)
    return 0
