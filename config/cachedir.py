"""Where mlpipe keeps what it can recompute: ``$MLPIPE_CACHE_DIR``, else
``$XDG_CACHE_HOME/mlpipe``, else ``~/.cache/mlpipe``. Every cache (rendered definitions,
container environments, botocore's models without their documentation) lives below it."""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    if os.environ.get("MLPIPE_CACHE_DIR"):
        return Path(os.environ["MLPIPE_CACHE_DIR"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "mlpipe"
