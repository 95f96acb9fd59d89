"""The local model registry: model package groups with numbered versions, metrics and an
approval status, kept in the run store (``runs/registry/<group>.json``)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from config.errors import UserError
from workflows.local.store import locked, read_json, write_json

STATUSES = ("PendingManualApproval", "Approved", "Rejected")


def _path(root: Path, group: str) -> Path:
    return root / "registry" / f"{group}.json"


def register(root: Path, group: str, entry: dict[str, Any]) -> dict[str, Any]:
    path = _path(root, group)
    with locked(path):
        doc = read_json(path) if path.is_file() else {"group": group, "versions": []}
        version = {**entry, "version": len(doc["versions"]) + 1,
                   "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                   "arn": f"local:model-package/{group}/{len(doc['versions']) + 1}"}
        if version.get("approval_status") not in STATUSES:
            raise UserError(f"approval status {version.get('approval_status')!r} is not one of {', '.join(STATUSES)}")
        doc["versions"].append(version)
        write_json(path, doc)
    return version


def versions(root: Path, group: str | None = None) -> list[dict[str, Any]]:
    out = []
    for path in sorted((root / "registry").glob("*.json")):
        doc = read_json(path)
        if group is None or doc["group"] == group:
            out += [{"group": doc["group"], **v} for v in doc["versions"]]
    return out


def set_status(root: Path, group: str | None, version: str, status: str, reason: str = "") -> dict[str, Any]:
    """Approve or reject a version, given as N (with --group), GROUP/N, or a package ARN."""
    if version.startswith("local:model-package/"):
        version = version.split("/", 1)[1]
    if "/" in version:
        group, version = version.rsplit("/", 1)
    groups = {v["group"] for v in versions(root)}
    if group is None:
        if len(groups) != 1:
            raise UserError("several model package groups exist", fix=f"name one: --group {{{', '.join(sorted(groups))}}}")
        group = next(iter(groups))
    path = _path(root, group)
    if not path.is_file():
        raise UserError(f"no model package group {group!r} in the local registry", fix="list them with `mlpipe models list`")
    with locked(path):
        doc = read_json(path)
        match = [v for v in doc["versions"] if str(v["version"]) == str(version)]
        if not match:
            raise UserError(f"group {group!r} has no version {version}", fix="list them with `mlpipe models list`")
        match[0]["approval_status"] = status
        match[0]["status_reason"] = reason
        write_json(path, doc)
    return {"group": group, **match[0]}
