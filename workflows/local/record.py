"""The statuses a local run record (``run.json``) holds: the run's ``status`` and each stage's.

``Status`` is a ``StrEnum``: a member is its string (``Status.FAILED == "Failed"``, hashes
alike, and ``json.dumps`` writes ``"Failed"``), so run.json stays as it was and a record read
back from disk, whose statuses are plain strings, compares the same.

A run is ``Running``, then ``Succeeded``, ``Failed``, ``Waiting`` (paused for a manual approval),
``Rejected`` (the approval said no) or ``Interrupted`` (a signal, or its owner process died).
A stage is ``Pending``, ``Running``, then ``Succeeded``, ``Cached`` (reused from the cache),
``Failed``, ``Skipped``, ``Waiting``, ``Rejected`` or ``Interrupted``. ``Damaged`` is never
written: ``mlpipe runs`` lists a ``run.json`` it cannot read with it.
"""

from __future__ import annotations

import enum


class Status(enum.StrEnum):
    PENDING = "Pending"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    CACHED = "Cached"
    FAILED = "Failed"
    SKIPPED = "Skipped"
    WAITING = "Waiting"
    REJECTED = "Rejected"
    INTERRUPTED = "Interrupted"
    DAMAGED = "Damaged"


# A stage that finished with its outputs in place (it ran, or its outputs came from the cache):
# what a downstream stage may read, and what a resume does not run again.
DONE = frozenset({Status.SUCCEEDED, Status.CACHED})
