"""The reference environment of SageMaker's built-in XGBoost 1.7-1 container, without Docker.

The container's training and serving code (github.com/aws/sagemaker-xgboost-container, branch
1.7-1) runs here unmodified, from a git mirror of that repository, in a venv holding the
container's own pins of the libraries its CSV training path uses:

  docker/1.7-1/base/Dockerfile.cpu  ARG XGBOOST_VERSION=1.7.4, ARG PYTHON_VERSION=3.9
  requirements.txt                  numpy==1.24.1, pandas==1.2.4, scikit-learn==0.24.1,
                                    scipy==1.8.0, python-dateutil==2.8.1, retrying==1.3.3

The modules the container imports but the single-host, file-mode CSV path never calls (mlio,
pyarrow, smdebug, dask, sagemaker_containers: C++ builds or large trees) are replaced by the
stubs in ``stubs/`` beside this file; a stub that is called raises.

The venv is created once, under a directory keyed by the hash of the Python version and the
pins: ``$MLPIPE_ENV_CACHE`` (default ``~/.cache/mlpipe/envs``) ``/xgboost-1.7-1-<hash>``, or
exactly ``$MLPIPE_XGBOOST_REFERENCE_ENV``. The container source comes from
``$MLPIPE_XGBOOST_CONTAINER_REPO`` (default: the mirror at
/work/.mirror/aws+sagemaker-xgboost-container/repo), extracted at its branch 1.7-1 into the
cache; it is never copied into this repository.

Usage:
  python bench/containers/xgboost_reference.py build     # create the venv (once; minutes)
  python bench/containers/xgboost_reference.py status    # where it is and whether it is ready
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
STUBS = HERE / "stubs"
DRIVER = HERE / "xgboost_driver.py"

CONTAINER_VERSION = "1.7-1"
# The container's interpreter: docker/1.7-1/base/Dockerfile.cpu, ARG PYTHON_VERSION=3.9.
PYTHON_VERSION = "3.9"
PINS = (
    "xgboost==1.7.4",          # Dockerfile.cpu: ARG XGBOOST_VERSION=1.7.4
    "numpy==1.24.1",           # requirements.txt from here on
    "pandas==1.2.4",
    "scikit-learn==0.24.1",
    "scipy==1.8.0",
    "python-dateutil==2.8.1",
    "retrying==1.3.3",
)
DEFAULT_REPO = Path("/work/.mirror/aws+sagemaker-xgboost-container/repo")
READY = ".mlpipe-ready"


def pins_hash() -> str:
    doc = json.dumps({"python": PYTHON_VERSION, "pins": sorted(PINS)}, sort_keys=True)
    return hashlib.sha256(doc.encode()).hexdigest()[:16]


def cache_root() -> Path:
    return Path(os.environ.get("MLPIPE_ENV_CACHE") or Path.home() / ".cache" / "mlpipe" / "envs")


def env_dir() -> Path:
    explicit = os.environ.get("MLPIPE_XGBOOST_REFERENCE_ENV")
    return Path(explicit) if explicit else cache_root() / f"xgboost-{CONTAINER_VERSION}-{pins_hash()}"


def env_python() -> Path:
    return env_dir() / "bin" / "python"


def repo_dir() -> Path:
    return Path(os.environ.get("MLPIPE_XGBOOST_CONTAINER_REPO") or DEFAULT_REPO)


def is_ready() -> bool:
    return (env_dir() / READY).is_file() and env_python().exists()


def missing() -> str | None:
    """Why the reference cannot run here (None when it can)."""
    if not is_ready():
        return (f"no XGBoost {CONTAINER_VERSION} reference environment at {env_dir()}; build it with "
                f"`python bench/containers/xgboost_reference.py build`")
    if not _git(["rev-parse", "--verify", "-q", f"{CONTAINER_VERSION}^{{commit}}"], check=False):
        return f"no sagemaker-xgboost-container mirror with branch {CONTAINER_VERSION} at {repo_dir()}"
    return None


def _git(args: list[str], check: bool = True) -> str:
    if not repo_dir().exists():
        return ""
    proc = subprocess.run(["git", "-C", str(repo_dir()), *args], capture_output=True, text=True)
    if check and proc.returncode:
        raise RuntimeError(f"git {' '.join(args)} failed: {proc.stderr.strip()}")
    return proc.stdout.strip() if proc.returncode == 0 else ""


def container_commit() -> str:
    return _git(["rev-parse", f"{CONTAINER_VERSION}^{{commit}}"])


def container_src() -> Path:
    """The container's ``src/`` at branch 1.7-1, extracted once per commit into the cache."""
    commit = container_commit()
    dest = cache_root() / "src" / f"sagemaker-xgboost-container-{commit[:12]}"
    if (dest / READY).is_file():
        return dest / "src"
    dest.parent.mkdir(parents=True, exist_ok=True)
    with _lock(dest.parent / f".{dest.name}.lock"):
        if not (dest / READY).is_file():
            tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}."))
            archive = subprocess.run(["git", "-C", str(repo_dir()), "archive", commit, "src"],
                                     capture_output=True, check=True).stdout
            subprocess.run(["tar", "-x", "-C", str(tmp)], input=archive, check=True)
            (tmp / READY).write_text(commit + "\n")
            shutil.rmtree(dest, ignore_errors=True)
            tmp.rename(dest)
    return dest / "src"


class _lock:
    def __init__(self, path: Path) -> None:
        self.path = path

    def __enter__(self):
        self.f = open(self.path, "w")
        fcntl.flock(self.f, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc) -> None:
        fcntl.flock(self.f, fcntl.LOCK_UN)
        self.f.close()


def _pyenv_python() -> str:
    """The newest pyenv CPython of PYTHON_VERSION (override: $MLPIPE_PYTHON39)."""
    explicit = os.environ.get("MLPIPE_PYTHON39")
    if explicit:
        return explicit
    root = subprocess.run(["pyenv", "root"], capture_output=True, text=True).stdout.strip() \
        if shutil.which("pyenv") else str(Path.home() / ".pyenv")
    versions = sorted((p for p in Path(root, "versions").glob(f"{PYTHON_VERSION}.*")
                       if (p / "bin" / f"python{PYTHON_VERSION}").exists()),
                      key=lambda p: [int(x) for x in p.name.split(".") if x.isdigit()])
    if versions:
        return str(versions[-1] / "bin" / f"python{PYTHON_VERSION}")
    found = shutil.which(f"python{PYTHON_VERSION}")
    if found:
        return found
    raise SystemExit(f"error: no Python {PYTHON_VERSION} (the container's); install it with pyenv or set "
                     "MLPIPE_PYTHON39")


def build(quiet: bool = False) -> Path:
    """Create the venv with the pins (idempotent; concurrent builders wait for each other)."""
    target = env_dir()
    if is_ready():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with _lock(target.parent / f".{target.name}.lock"):
        if is_ready():
            return target
        shutil.rmtree(target, ignore_errors=True)
        subprocess.run([_pyenv_python(), "-m", "venv", str(target)], check=True)
        pip = [str(target / "bin" / "python"), "-m", "pip", "--disable-pip-version-check"]
        if quiet:
            pip.append("-q")
        # Compiled packages from wheels only (no compiler needed); retrying 1.3.3 is an sdist.
        subprocess.run([*pip, "install", "--only-binary=xgboost,numpy,pandas,scikit-learn,scipy", *PINS],
                       check=True)
        subprocess.run([str(target / "bin" / "python"), "-c",
                        "import xgboost, numpy, pandas, sklearn, scipy; print(xgboost.__version__)"], check=True)
        freeze = subprocess.run([*pip, "freeze"], capture_output=True, text=True, check=True).stdout
        (target / READY).write_text(json.dumps({"python": PYTHON_VERSION, "pins": list(PINS),
                                                "freeze": freeze.split()}, indent=2) + "\n")
    return target


def run_driver(command: str, request: dict, timeout: float = 600) -> dict:
    """Run ``xgboost_driver.py command`` in the reference venv with the container's source
    importable; ``request`` goes in as JSON on stdin and the answer comes back as JSON."""
    reason = missing()
    if reason:
        raise RuntimeError(reason)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "SM_", "SAGEMAKER_"))}
    env["PYTHONPATH"] = os.pathsep.join([str(container_src()), str(STUBS)])
    env["PYTHONHASHSEED"] = str(request.get("pythonhashseed", 0))
    with tempfile.TemporaryDirectory(prefix="mlpipe-xgb-ref-") as tmp:
        answer = Path(tmp) / "answer.json"
        proc = subprocess.run([str(env_python()), str(DRIVER), command, str(answer)],
                              input=json.dumps(request), capture_output=True, text=True, env=env, timeout=timeout)
        if proc.returncode or not answer.is_file():
            raise RuntimeError(f"the container code failed ({command}, exit {proc.returncode}):\n"
                               f"{proc.stderr[-4000:]}")
        doc = json.loads(answer.read_text())
    doc["log"] = proc.stderr
    return doc


def container_train(hyperparameters: dict, train_dir: Path, validation_dir: Path | None, model_dir: Path,
                    output_data_dir: Path | None = None, numpy_seed: int | None = None) -> dict:
    """Train with the container's sagemaker_train (algorithm mode, one host, File mode, text/csv)."""
    return run_driver("train", {
        "hyperparameters": {k: str(v) for k, v in hyperparameters.items()},
        "train": os.path.abspath(train_dir), "validation": os.path.abspath(validation_dir) if validation_dir else None,
        "model_dir": os.path.abspath(model_dir),
        "output_data_dir": os.path.abspath(output_data_dir or Path(model_dir).parent / "output-data"),
        "numpy_seed": numpy_seed})


def container_predict(model_dir: Path, csv_payload: str, ensemble: bool = True) -> list[float]:
    """Predict as the container's endpoint does: serve_utils.get_loaded_booster then predict."""
    return run_driver("predict", {"model_dir": os.path.abspath(model_dir), "payload": csv_payload,
                                  "ensemble": ensemble})["predictions"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=("build", "status", "path"))
    args = parser.parse_args(argv)
    if args.command == "build":
        path = build()
        print(f"ready: {path}")
        return 0
    if args.command == "path":
        print(env_dir())
        return 0
    reason = missing()
    print(json.dumps({"env": str(env_dir()), "ready": reason is None, "why_not": reason,
                      "repo": str(repo_dir()), "pins": list(PINS), "python": PYTHON_VERSION}, indent=2))
    return 0 if reason is None else 1


if __name__ == "__main__":
    sys.exit(main())
