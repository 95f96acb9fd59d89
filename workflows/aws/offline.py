"""The boto3/botocore set-up the renderers' sagemaker SDK session runs on (``render/sdk.py``):
a session that never reaches AWS, and botocore's data files parsed once per process.

- ``offline_boto_session`` has dummy credentials and reads no profile; every botocore call it
  would make raises ``OfflineCallError``, so no hidden STS/S3 call can slip into a render.
- ``share_loaders`` (and ``default_loader_shared`` around ``import sagemaker``): botocore gives
  every session its own loader, so each session (``import sagemaker`` makes several; each
  PipelineSession, the estimator's default-session client and the stepfunctions SDK's
  partition lookups make more) and the SDK's endpoint resolver re-parse the same files (the
  sagemaker service model, endpoints.json: ~0.1-0.2 s each). Here there is one loader per
  search path; a loader's cache only ever holds what it read from those paths, so sharing it
  changes nothing but the number of reads. The default path shares the loader the config checks
  already used (``config.aws_api``), whose models are parsed by then.
"""

from __future__ import annotations

import contextlib
from typing import Any

import boto3
import botocore.loaders
import botocore.session

from config import aws_api


class OfflineCallError(RuntimeError):
    """The SDK tried to call AWS while rendering; rendering must stay offline."""


def offline_boto_session(region: str) -> boto3.Session:
    """A boto3 session in ``region`` whose credentials are dummies that never leave: no profile
    is read, and any botocore call raises ``OfflineCallError``."""
    isolated = botocore.session.Session(session_vars={"profile": (None, None, None, None)})
    session = boto3.Session(botocore_session=isolated, region_name=region,
                            aws_access_key_id="offline", aws_secret_access_key="offline")

    def refuse(event_name: str, **_: Any) -> None:
        raise OfflineCallError(f"the sagemaker SDK attempted an AWS call while rendering: {event_name}")

    session.events.register("before-call.*.*", refuse)
    return session


# --- botocore's data files, parsed once per process ------------------------------------------

class _SearchPaths(list):
    """A shared loader's search paths: each ``boto3.Session`` appends boto3's data directory
    to its loader's; appending a path already there is a no-op, so sharing does not grow the
    list (nor change which file a lookup finds)."""

    def append(self, path: str) -> None:
        if path not in self:
            super().append(path)


def _shareable(loader):
    if not isinstance(loader.search_paths, _SearchPaths):
        loader._search_paths = _SearchPaths(loader.search_paths)
    return loader


_create_loader = botocore.loaders.create_loader
_LOADERS: dict[str | None, Any] = {}


def _shared_loader(search_path_string: str | None = None):
    """``botocore.loaders.create_loader``, one loader per search path."""
    if search_path_string not in _LOADERS:
        _LOADERS[search_path_string] = _shareable(_create_loader(search_path_string))
    return _LOADERS[search_path_string]


def share_loaders() -> None:
    """From now on, every botocore session in this process gets the one loader of its search
    path (idempotent)."""
    if None not in _LOADERS:
        _LOADERS[None] = _shareable(aws_api._loader())
    botocore.loaders.create_loader = _shared_loader
    botocore.session.create_loader = _shared_loader


@contextlib.contextmanager
def default_loader_shared():
    """While the SDK is imported, ``botocore.loaders.Loader()`` with no arguments (what
    ``sagemaker.workflow.properties`` calls to read the sagemaker service model's shapes) is
    the shared default loader too."""
    share_loaders()
    loader_class = botocore.loaders.Loader
    botocore.loaders.Loader = lambda *a, **k: _LOADERS[None] if not (a or k) else loader_class(*a, **k)
    try:
        yield
    finally:
        botocore.loaders.Loader = loader_class
