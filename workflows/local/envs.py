"""Container-exact environments for ``mlpipe run --exact``: one venv per SageMaker image, with
the image's Python minor version and its library pins (the table in pins.py).

- Each is created once, under ``$MLPIPE_ENV_CACHE`` (default: ``envs/`` under the cache root
  of config/cachedir.py, ``~/.cache/mlpipe/envs``) as ``<image>-<hash of the Python version and
  the pins>``, and reused. Builders hold ``.<name>.lock`` (fcntl), so two runs at once build it once; a finished
  environment holds ``.mlpipe-ready``, written last, so one whose build died is built again.
- The interpreter: ``$MLPIPE_PYTHON_3_9`` (for 3.9), else pyenv's newest 3.9.x, else
  ``python3.9`` on PATH. Without one, a UserError says how to get it (exit 2).
- An image whose own code runs (the XGBoost container's training) gets it from its repository
  at the image's branch: a clone named by ``$MLPIPE_XGBOOST_CONTAINER_REPO``, else one made once
  under the cache; its ``src/`` is extracted per commit. The modules that code imports but the
  CSV path never calls are stand-ins (containers/stubs/).

Stages use an environment through a warm fork server of its own (``interpreter()``, read by
worker.py): the environment's Python, its sys.path only, the image's ENV settings.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Iterator

from config.cachedir import cache_root as mlpipe_cache_root
from config.errors import UserError
from workflows.local import pins as table
from workflows.local.worker import PRELOAD

CONTAINERS = Path(__file__).resolve().parent / "containers"
STUBS = CONTAINERS / "stubs"
XGBOOST_DRIVER = CONTAINERS / "xgboost_driver.py"
READY = ".mlpipe-ready"
MIRRORS = Path("/work/.mirror")  # git mirrors some machines keep (<owner>+<name>/repo); optional
_PATHS: dict[str, tuple[str, ...]] = {}


@dataclass(frozen=True)
class Interpreter:
    """Where a warm fork server of worker.py runs instead of this Python: the environment's
    interpreter, its sys.path (the stage processes see nothing else: mlpipe's modules, which the
    server starts from, are dropped from them), its whole environment and what it preloads."""

    python: str
    path: tuple[str, ...]
    environ: tuple[tuple[str, str], ...] = ()
    preload: tuple[str, ...] = ()


def cache_root() -> Path:
    explicit = os.environ.get("MLPIPE_ENV_CACHE")
    if explicit:
        return Path(explicit)
    return mlpipe_cache_root() / "envs"


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _clean_environ() -> dict[str, str]:
    """The environment for another interpreter: none of this one's PYTHON* settings or venv."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON") and k != "VIRTUAL_ENV"}
    env["PYTHONNOUSERSITE"] = "1"
    return env


def _run(args: list[str], what: str, fix: str, env: dict | None = None, cwd: str | None = None) -> str:
    proc = subprocess.run(args, capture_output=True, text=True, env=env or _clean_environ(), cwd=cwd)
    if proc.returncode:
        tail = "\n".join((proc.stderr.strip() or proc.stdout.strip()).splitlines()[-12:])
        raise UserError(f"could not {what} (exit {proc.returncode}):\n{tail}", fix=fix)
    return proc.stdout


def _version_of(python: str) -> str | None:
    try:
        proc = subprocess.run([python, "-c", "import sys, venv; print('%d.%d' % sys.version_info[:2])"],
                              capture_output=True, text=True, timeout=60, env=_clean_environ())
    except (OSError, subprocess.SubprocessError):
        return None
    return proc.stdout.strip() if proc.returncode == 0 else None


def find_python(image: table.ImagePins) -> str:
    """An interpreter of the image's Python minor version (with venv), or a UserError saying how
    to get one."""
    version = image.python
    variable = "MLPIPE_PYTHON_" + version.replace(".", "_")
    explicit = os.environ.get(variable)
    if explicit:
        if _version_of(explicit) != version:
            raise UserError(f"{variable}={explicit} is not a Python {version} interpreter with the venv module",
                            fix=f"point {variable} at a python{version} executable, or unset it")
        return explicit
    root = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv")
    found = [p for p in (root / "versions").glob(f"{version}.*") if p.name[len(version) + 1:].isdigit()]
    candidates = [str(p / "bin" / f"python{version}") for p in
                  sorted(found, key=lambda p: int(p.name[len(version) + 1:]), reverse=True)]
    candidates += [c for c in [shutil.which(f"python{version}")] if c]
    for candidate in candidates:
        if Path(candidate).exists() and _version_of(candidate) == version:
            return candidate
    source = image.python_source
    raise UserError(f"--exact runs the {image.label} image's stages under its Python {version} "
                    f"({source.path}: {source.text}), and there is no Python {version} on this machine",
                    fix=f"install it (`pyenv install {version}`, or your system's python{version} with its venv "
                        f"module), or set {variable} to a Python {version} interpreter; or run without --exact")


class Environment:
    """One image's environment: where it lives, whether it is ready, how to build and run it."""

    def __init__(self, image: table.ImagePins) -> None:
        self.image = image
        doc = json.dumps({"python": image.python, "pins": sorted(image.requirements())}, sort_keys=True)
        self.hash = hashlib.sha256(doc.encode()).hexdigest()[:16]
        self.name = f"{image.slug}-{self.hash}"

    @property
    def dir(self) -> Path:
        return cache_root() / self.name

    @property
    def python(self) -> Path:
        return self.dir / "bin" / "python"

    def ready(self) -> bool:
        return (self.dir / READY).is_file() and self.python.exists()

    def missing(self) -> str | None:
        """Why this environment cannot run here yet, without building or cloning anything."""
        if not self.ready():
            return f"no {self.image.label} environment at {self.dir} (mlpipe run --exact builds it)"
        if self.image.code is not None and self._repo() is None:
            code = self.image.code
            return f"no clone of github.com/{code.repo} (set {code.env_var}, or let mlpipe run --exact clone it)"
        return None

    # --- building --------------------------------------------------------------------------
    def ensure(self, log: Callable[[str], None] = lambda line: None) -> "Environment":
        """Fetch the container's code if it runs (first: it fails fast), and build the environment
        unless it is ready."""
        if self.image.code is not None:
            self.code_dir(clone=True, log=log)
        if not self.ready():
            self.build(log)
        return self

    def build(self, log: Callable[[str], None] = lambda line: None) -> Path:
        image = self.image
        python = find_python(image)
        fix = "check that pip reaches its package index (PIP_INDEX_URL), then run again; or run without --exact"
        with _locked(self.dir.parent / f".{self.name}.lock"):
            if self.ready():  # another run built it while we waited
                return self.dir
            log(f"building the {image.label} environment once (Python {image.python}, "
                f"{', '.join(image.requirements())}) in {self.dir}")
            shutil.rmtree(self.dir, ignore_errors=True)
            _run([python, "-m", "venv", str(self.dir)], f"create a Python {image.python} venv in {self.dir}", fix)
            pip = [str(self.python), "-m", "pip", "--disable-pip-version-check", "--no-input"]
            _run([*pip, "install", "-q", f"--only-binary={','.join(image.binary)}", *image.requirements()],
                 f"install the {image.label} pins", fix)
            probe = ("import json, sys, importlib.metadata as m; print(json.dumps({p: m.version(p) for p in "
                     "sys.argv[1:]}))")
            got = json.loads(_run([str(self.python), "-c", probe, *(p.package for p in image.pins)],
                                  "read the installed versions", fix))
            wrong = [f"{p.package} {got.get(p.package)} (pinned {p.version})" for p in image.pins
                     if got.get(p.package) != p.version]
            if wrong:
                raise UserError(f"the {image.label} environment got other versions: {', '.join(wrong)}", fix=fix)
            freeze = _run([*pip, "freeze"], "list the installed packages", fix).split()
            marker = self.dir / READY
            tmp = marker.with_name(READY + ".tmp")
            tmp.write_text(json.dumps({"image": image.label, "python": image.python,
                                       "pins": image.requirements(), "freeze": freeze}, indent=2) + "\n")
            tmp.rename(marker)
        log(f"built {self.dir}")
        return self.dir

    # --- the container's own code ------------------------------------------------------------
    def _repo(self, clone: bool = False, log: Callable[[str], None] = lambda line: None) -> Path | None:
        code = self.image.code
        explicit = os.environ.get(code.env_var)
        if explicit:
            if not (Path(explicit) / "HEAD").exists() and not (Path(explicit) / ".git").exists():
                raise UserError(f"{code.env_var}={explicit} is not a git clone of github.com/{code.repo}",
                                fix=f"git clone -b {code.branch} https://github.com/{code.repo} and point "
                                    f"{code.env_var} at it")
            return Path(explicit)
        owned = cache_root() / "repos" / (code.repo.replace("/", "+") + ".git")
        for candidate in (owned, MIRRORS / code.repo.replace("/", "+") / "repo"):
            if (candidate / "HEAD").exists() or (candidate / ".git").exists():
                return candidate
        if not clone:
            return None
        log(f"cloning github.com/{code.repo} (branch {code.branch}) once into {owned}")
        with _locked(owned.parent / f".{owned.name}.lock"):
            if not (owned / "HEAD").exists():
                tmp = Path(tempfile.mkdtemp(dir=owned.parent, prefix=f".{owned.name}."))
                try:
                    _run(["git", "clone", "-q", "--bare", "--single-branch", "--branch", code.branch,
                          f"https://github.com/{code.repo}.git", str(tmp / "repo")],
                         f"clone github.com/{code.repo}",
                         f"clone it yourself (git clone -b {code.branch} https://github.com/{code.repo}) and set "
                         f"{code.env_var} to the clone; or run without --exact")
                    (tmp / "repo").rename(owned)
                finally:
                    shutil.rmtree(tmp, ignore_errors=True)
        return owned

    def code_commit(self) -> str:
        code = self.image.code
        repo = self._repo()
        fix = f"fetch branch {code.branch} into {repo}, or point {code.env_var} at a clone that has it"
        return _run(["git", "-C", str(repo), "rev-parse", f"{code.branch}^{{commit}}"],
                    f"find branch {code.branch} in {repo}", fix).strip()

    def code_dir(self, clone: bool = False, log: Callable[[str], None] = lambda line: None) -> Path:
        """The container's code (its ``src/``) at the image's branch, extracted once per commit."""
        code = self.image.code
        repo = self._repo(clone, log)
        if repo is None:
            raise UserError(f"no clone of github.com/{code.repo} here", fix=f"set {code.env_var} to a clone")
        commit = self.code_commit()
        dest = cache_root() / "src" / f"{code.repo.split('/')[1]}-{commit[:12]}"
        if not (dest / READY).is_file():
            with _locked(dest.parent / f".{dest.name}.lock"):
                if not (dest / READY).is_file():
                    tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}."))
                    archive = subprocess.run(["git", "-C", str(repo), "archive", commit, code.subdir],
                                             capture_output=True, check=True).stdout
                    subprocess.run(["tar", "-x", "-C", str(tmp)], input=archive, check=True)
                    (tmp / READY).write_text(commit + "\n")
                    shutil.rmtree(dest, ignore_errors=True)
                    tmp.rename(dest)
        return dest / code.subdir

    # --- running -------------------------------------------------------------------------------
    def code_paths(self) -> list[str]:
        """What the image has installed beside the pins: its own code and the stand-ins."""
        if self.image.code is None:
            return []
        return [str(self.code_dir())] + ([str(STUBS)] if self.image.code.stubs else [])

    def sys_path(self) -> tuple[str, ...]:
        if self.name not in _PATHS:
            out = _run([str(self.python), "-I", "-c", "import sys, json; print(json.dumps(sys.path))"],
                       f"start {self.python}", f"delete {self.dir} and run again: it is rebuilt")
            _PATHS[self.name] = (*self.code_paths(), *json.loads(out))
        return _PATHS[self.name]

    def interpreter(self) -> Interpreter:
        """The warm fork server's settings for stages in this environment."""
        environ = tuple(sorted({**_clean_environ(), **dict(self.image.environ)}.items()))
        return Interpreter(python=str(self.python), path=self.sys_path(), environ=environ,
                           preload=tuple(m for m in PRELOAD if m.split(".")[0] in
                                         ("numpy", "pandas", "scipy", "sklearn", "xgboost")))

    def key(self) -> str:
        """What a stage's result in this environment depends on: the pins, and the container's
        code (its commit, and the driver that calls it)."""
        if self.image.code is None:
            return self.hash
        return f"{self.hash}+{self.code_commit()}+{hashlib.sha256(XGBOOST_DRIVER.read_bytes()).hexdigest()[:16]}"

    def run_driver(self, command: str, request: dict, timeout: float = 600) -> dict:
        """``xgboost_driver.py COMMAND`` in this environment, forked from its warm server (one per
        process, started with PYTHONHASHSEED=0, so the many calls of a fidelity check pay the
        imports once): ``request`` in as JSON, the answer back as JSON (its output under "log").

        Not called by mlpipe itself: the public helper of the xgboost fidelity checks, which
        compare the emulator with the container's own code (bench/containers/xgboost_reference.py
        wraps it for tests/test_xgboost_fidelity.py and bench/bench_xgboost_fidelity.py). It stays
        here because it needs this environment's interpreter and the warm worker servers."""
        from workflows.local.worker import Job, Workers

        it = self.interpreter()
        environ = {k: v for k, v in it.environ if not k.startswith(("SM_", "SAGEMAKER_"))}
        it = replace(it, environ=tuple(sorted({**environ, "PYTHONHASHSEED": "0"}.items())))
        with tempfile.TemporaryDirectory(prefix="mlpipe-driver-") as tmp:
            work = Path(tmp)
            (work / "request.json").write_text(json.dumps(request))
            answer, log = work / "answer.json", work / "log.txt"
            job = Job(cwd=tmp, log=str(log), script=str(XGBOOST_DRIVER),
                      argv=[command, str(answer), str(work / "request.json")])
            code, _ = Workers().run(job, timeout=timeout, interpreter=it)
            output = log.read_text(errors="replace") if log.is_file() else ""
            if code or not answer.is_file():
                raise RuntimeError(f"the container code failed ({command}, exit {code}):\n{output[-4000:]}")
            doc = json.loads(answer.read_text())
        doc["log"] = output
        return doc


def for_spec(spec) -> dict[tuple[str, str, str], Environment]:
    """The environment of every image whose stages run code, or a UserError for an image the
    table has no pins for."""
    out: dict[tuple[str, str, str], Environment] = {}
    for stage in spec.stages:
        if not table.runs_code(stage):
            continue
        image = table.image_of(stage)
        pins = table.for_image(image)
        if pins is None:
            known = ", ".join(p.label for p in table.IMAGES.values())
            raise UserError(f"--exact has no pinned environment for the {image.name} {image.version} image of "
                            f"stage {stage.name!r} ({stage.kind})", source=spec.where,
                            field=f"stages.{stage.name}",
                            fix=f"pinned images: {known} (workflows/local/pins.py); run without --exact")
        out.setdefault(pins.key, Environment(pins))
    return out


def prepare(spec, log: Callable[[str], None] = lambda line: None) -> dict[tuple[str, str, str], Environment]:
    """Every environment the spec's stages need, built (once) and ready to run."""
    environments = for_spec(spec)
    for environment in environments.values():  # a missing interpreter is said first, before any work
        if not environment.ready():
            find_python(environment.image)
    for environment in environments.values():
        environment.ensure(log)
    return environments
