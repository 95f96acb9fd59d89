"""The Lambda deployment package: lambda_handlers/ plus pydantic and its dependencies
(Lambda's Python runtime lacks pydantic), zipped deterministically (fixed timestamps,
permissions and order) so the zip's SHA-256 is stable and unchanged code is never re-uploaded.

pydantic_core is a compiled extension, so the dependencies are the ones built for the
functions' runtime (CPython 3.11, Linux x86_64), whatever machine runs deploy: like AWS SAM,
``pip download --only-binary=:all: --platform manylinux2014_x86_64 --python-version 3.11
--implementation cp`` fetches their wheels, pinned to the versions installed here (the ones the
local runner exercises the handlers with), into a cache directory keyed by those pins
(``$MLPIPE_CACHE_DIR``, else ``$XDG_CACHE_HOME/mlpipe``, else ``~/.cache/mlpipe``); the zip is made
from the unpacked wheels. When pip cannot reach an index, this interpreter's own site-packages
are used, but only if it already is CPython 3.11 on Linux x86_64 (glibc); anywhere else deploy
stops with a clear message rather than ship an extension Lambda cannot load.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import io
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path, PurePosixPath

from config.cachedir import cache_root
from config.errors import UserError

HANDLERS_DIR = Path(__file__).resolve().parents[2] / "lambda_handlers"
DEPENDENCIES = ("pydantic", "pydantic_core", "typing_extensions", "annotated_types", "typing_inspection")
RUNTIME = "python3.11"
# The runtime's platform, as pip and the interpreter name it.
PIP_PLATFORM = "manylinux2014_x86_64"       # glibc 2.17+: Lambda's Amazon Linux has 2.26
PIP_PYTHON_VERSION = "3.11"
PIP_IMPLEMENTATION = "cp"
RUNTIME_SOABI = "cpython-311-x86_64-linux-gnu"
PIP_TIMEOUT_SECONDS = 600
_EPOCH = (1980, 1, 1, 0, 0, 0)


@dataclass(frozen=True)
class Dependencies:
    """The files to bundle (archive name -> file) and where they came from."""

    files: tuple[tuple[str, Path], ...]
    source: str                    # "pip" (wheels for the runtime) | "local" (this interpreter's site-packages)
    where: Path | None = None      # the unpacked wheels (source "pip")


def pins() -> dict[str, str]:
    """Distribution -> the version installed here: what the Lambda package bundles."""
    out = {}
    for name in DEPENDENCIES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            raise UserError(f"{name} is not installed; it is bundled into the Lambda package",
                            fix="pip install -e . (in the project's virtualenv)") from None
    return out


def cache_dir(pinned: dict[str, str]) -> Path:
    """One directory per (runtime platform, pinned versions)."""
    key = json.dumps({"platform": PIP_PLATFORM, "python": PIP_PYTHON_VERSION, "implementation": PIP_IMPLEMENTATION,
                      "pins": pinned}, sort_keys=True)
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return cache_root() / "lambda-deps" / f"{PIP_IMPLEMENTATION}{PIP_PYTHON_VERSION.replace('.', '')}-{PIP_PLATFORM}-{digest}"


def local_is_runtime() -> bool:
    """True when this interpreter's compiled extensions would load on Lambda python3.11 x86_64."""
    return (sys.implementation.name == "cpython" and sys.version_info[:2] == (3, 11)
            and sysconfig.get_config_var("SOABI") == RUNTIME_SOABI)


def pip_download(requirements: list[str], dest: Path) -> subprocess.CompletedProcess:
    """Wheels for the Lambda runtime, resolved by pip for that platform (not this one)."""
    cmd = [sys.executable, "-m", "pip", "download", "--only-binary=:all:", "--platform", PIP_PLATFORM,
           "--python-version", PIP_PYTHON_VERSION, "--implementation", PIP_IMPLEMENTATION,
           "--dest", str(dest), "--disable-pip-version-check", "--no-input", "--progress-bar", "off",
           "--retries", "1", "--timeout", "30", *requirements]
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=PIP_TIMEOUT_SECONDS,
                              stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return subprocess.CompletedProcess(cmd, 1, "", f"{type(exc).__name__}: {exc}")


def _unpack(wheel: Path, site: Path) -> None:
    """A wheel's importable files into ``site`` (no metadata, no scripts)."""
    with zipfile.ZipFile(wheel) as zf:
        for info in zf.infolist():
            if info.is_dir():
                continue
            parts = PurePosixPath(info.filename).parts
            if not parts or parts[0].endswith(".dist-info") or info.filename.startswith("/") or ".." in parts:
                continue
            if parts[0].endswith(".data"):
                if len(parts) < 3 or parts[1] not in ("purelib", "platlib"):
                    continue
                parts = parts[2:]
            path = site.joinpath(*parts)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(zf.read(info))


def _download(pinned: dict[str, str], target: Path) -> tuple[bool, str]:
    """Fill ``target`` (atomically) with the unpacked wheels; (ok, pip's complaint)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists() and not (target / "resolved.json").is_file():
        shutil.rmtree(target, ignore_errors=True)          # not one of ours (they are renamed in whole)
    scratch = target.parent / f".{target.name}.{os.getpid()}.{os.urandom(3).hex()}"
    try:
        wheels = scratch / "wheels"
        wheels.mkdir(parents=True)
        proc = pip_download([f"{name}=={version}" for name, version in sorted(pinned.items())], wheels)
        found = sorted(wheels.glob("*.whl"))
        if proc.returncode != 0 or not found:
            lines = [ln for ln in (proc.stderr or proc.stdout or "").splitlines()
                     if ln.strip() and not ln.startswith("WARNING")]
            return False, (lines[-1].strip() if lines else f"pip exited with {proc.returncode}")
        site = scratch / "site"
        site.mkdir()
        for wheel in found:
            _unpack(wheel, site)
        (scratch / "resolved.json").write_text(json.dumps(
            {"platform": PIP_PLATFORM, "python": PIP_PYTHON_VERSION, "pins": pinned,
             "wheels": [w.name for w in found]}, indent=2, sort_keys=True) + "\n")
        try:
            os.rename(scratch, target)
        except OSError:
            if not (target / "resolved.json").is_file():   # not a concurrent deploy that got there first
                raise
        return True, ""
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _site_files(site: Path) -> list[tuple[str, Path]]:
    return [(p.relative_to(site).as_posix(), p) for p in sorted(site.rglob("*"))
            if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"]


def _local_files() -> list[tuple[str, Path]]:
    """The dependencies from this interpreter's site-packages."""
    out: list[tuple[str, Path]] = []
    for name in DEPENDENCIES:
        spec = importlib.util.find_spec(name)
        if spec is None:
            raise UserError(f"{name} is not installed; it is bundled into the Lambda package")
        if spec.submodule_search_locations:
            root = Path(next(iter(spec.submodule_search_locations)))
            for path in sorted(root.rglob("*")):
                if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                    out.append((f"{name}/{path.relative_to(root).as_posix()}", path))
        else:
            out.append((Path(spec.origin).name, Path(spec.origin)))
    return out


def resolve_dependencies() -> Dependencies:
    """The dependency files for the Lambda runtime: cached wheels, else downloaded, else (on
    the runtime's own platform only) this interpreter's site-packages."""
    pinned = pins()
    target = cache_dir(pinned)
    if not (target / "resolved.json").is_file():
        ok, complaint = _download(pinned, target)
        if not ok:
            if local_is_runtime():
                print(f"note: pip could not download the Lambda dependencies ({complaint}); bundling this "
                      f"interpreter's own (CPython 3.11, Linux x86_64, like the runtime)", file=sys.stderr)
                return Dependencies(tuple(_local_files()), "local")
            wanted = ", ".join(f"{k}=={v}" for k, v in sorted(pinned.items()))
            raise UserError(
                f"cannot build the Lambda package: pip could not download the {PIP_PLATFORM} CPython "
                f"{PIP_PYTHON_VERSION} wheels of {wanted} ({complaint}), and this interpreter "
                f"({sys.implementation.name} {sys.version_info[0]}.{sys.version_info[1]}, "
                f"{sysconfig.get_platform()}) cannot stand in for the Lambda runtime",
                fix="give pip access to a package index (see `pip config list`), or deploy from CPython 3.11 "
                    "on Linux x86_64 (e.g. CI)")
    return Dependencies(tuple(_site_files(target / "site")), "pip", target / "site")


def make_zip(deps: Dependencies) -> bytes:
    """lambda_handlers/ plus ``deps``, deterministically zipped."""
    entries: list[tuple[str, Path | None]] = []
    for path in sorted(HANDLERS_DIR.rglob("*.py")):
        if "__pycache__" not in path.parts:
            entries.append((f"lambda_handlers/{path.relative_to(HANDLERS_DIR).as_posix()}", path))
    entries += list(deps.files)
    if "lambda_handlers/__init__.py" not in {n for n, _ in entries}:
        entries.append(("lambda_handlers/__init__.py", None))
    buf = io.BytesIO()
    names: set[str] = set()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, path in sorted(entries, key=lambda e: e[0]):
            if name in names:
                continue
            names.add(name)
            info = zipfile.ZipInfo(name, date_time=_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            executable = path is not None and path.suffix == ".so"
            info.external_attr = ((0o755 if executable else 0o644) | 0o100000) << 16
            info.create_system = 3
            zf.writestr(info, b"" if path is None else path.read_bytes())
    return buf.getvalue()


@lru_cache(maxsize=1)
def build_zip() -> bytes:
    return make_zip(resolve_dependencies())


def package_key(prefix: str, zip_bytes: bytes) -> str:
    """Content-addressed S3 key of the Lambda zip: what deploy uploads and CloudFormation's
    Lambda code points at."""
    sha = hashlib.sha256(zip_bytes).hexdigest()
    return "/".join(p for p in (prefix, "assets", "lambda", sha[:16], "lambda.zip") if p)
