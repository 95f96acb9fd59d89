"""The local model registry: model package groups with numbered versions, metrics and an
approval status, kept in the run store (``runs/registry/<group>.json``).

Registering is idempotent per run and stage: a version records the ``run_id`` and ``stage``
that registered it, and registering again from the same run and stage (a resume after a
crash) returns that version instead of adding another."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from config.errors import UserError
from workflows.local.store import locked, read_json, write_json

STATUSES = ("PendingManualApproval", "Approved", "Rejected")


def _path(root: Path, group: str) -> Path:
    return root / "registry" / f"{group}.json"


def _read(path: Path, group: str) -> dict[str, Any]:
    if not path.is_file():
        return {"group": group, "versions": []}
    try:
        doc = read_json(path)
        if not isinstance(doc, dict) or not isinstance(doc.get("versions"), list):
            raise ValueError("not a registry document")
    except (ValueError, UnicodeDecodeError) as exc:
        raise UserError(f"the local registry file {path} is damaged ({str(exc)[:200]})",
                        fix="restore it from a backup, or move it away to start the group afresh") from None
    return doc


def register(root: Path, group: str, entry: dict[str, Any]) -> dict[str, Any]:
    """Add a version (or return the one this run's stage registered already)."""
    path = _path(root, group)
    with locked(path):
        doc = _read(path, group)
        if entry.get("run_id") and entry.get("stage"):
            for existing in doc["versions"]:
                if existing.get("run_id") == entry["run_id"] and existing.get("stage") == entry["stage"]:
                    return {**existing, "existing": True}
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
        doc = _read(path, path.stem)
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
        doc = _read(path, group)
        match = [v for v in doc["versions"] if str(v["version"]) == str(version)]
        if not match:
            raise UserError(f"group {group!r} has no version {version}", fix="list them with `mlpipe models list`")
        match[0]["approval_status"] = status
        match[0]["status_reason"] = reason
        write_json(path, doc)
    return {"group": group, **match[0]}
