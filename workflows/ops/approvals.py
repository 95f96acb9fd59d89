"""What an approval decision records, and whether an approve/reject is for a local run."""

from __future__ import annotations

import getpass
from datetime import datetime, timezone
from typing import Any


def who() -> str:
    try:
        return getpass.getuser()
    except Exception:
        return "unknown"


def decision_record(decision: str, reason: str = "") -> dict[str, Any]:
    record = {"decision": decision, "by": who(), "at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    if decision == "rejected":
        record["reason"] = reason
    return record


def is_local(execution: str, local: bool, runs_dir: str | None) -> bool:
    """``--local``, or a run directory of that name under ``--runs-dir``/``./runs``."""
    if local:
        return True
    if execution.startswith("arn:"):
        return False
    from workflows.local.store import runs_dir as resolve_runs_dir

    return (resolve_runs_dir(runs_dir) / execution).is_dir()
