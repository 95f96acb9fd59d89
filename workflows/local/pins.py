"""The SageMaker images' interpreters and library pins, as their own repositories declare them.

``mlpipe run --exact`` builds one environment per image from this table (``envs.py``); the
default, fast mode runs in mlpipe's own environment and names the libraries whose versions
differ from these (``drift``). Every pin names where it is declared: repository, branch, file,
line and the line's text (tests/test_exact.py checks each against a clone of the repository
when one is at hand).

Only what the stages run is pinned: the libraries the step scripts (steps/code/) and the
XGBoost container's CSV training path import, and their pinned dependencies. The rest of each
image's requirements.txt (boto3, Flask, gunicorn, the serving stack, sagemaker-training...) is
never imported by those stages and is not installed. Unpinned transitive dependencies (joblib,
threadpoolctl, pytz) are whatever pip resolves, as when the images were built.
"""

from __future__ import annotations

from dataclasses import dataclass

from steps.contract import KINDS


@dataclass(frozen=True)
class Source:
    """Where a pin is declared: ``text`` is the line, as it reads in ``repo``@``branch``:``path``."""

    repo: str
    branch: str
    path: str
    line: int
    text: str

    def __str__(self) -> str:
        return f"github.com/{self.repo}@{self.branch}:{self.path}:{self.line} ({self.text.strip()})"


@dataclass(frozen=True)
class Pin:
    package: str
    version: str
    source: Source

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}"


@dataclass(frozen=True)
class ContainerCode:
    """A container's own code, run from its repository (extracted at ``branch``)."""

    repo: str
    branch: str
    subdir: str
    env_var: str          # names a local clone (none here: envs.py clones it once)
    stubs: bool           # stand-ins for imports the CSV path never calls (containers/stubs/)


@dataclass(frozen=True)
class ImagePins:
    kind: str             # steps.spec.Image.kind
    name: str             # steps.spec.Image.name
    version: str          # steps.spec.Image.version
    label: str            # how people name the image
    python: str           # minor version
    python_source: Source
    pins: tuple[Pin, ...]
    binary: tuple[str, ...]  # installed from wheels only (no compiler needed)
    environ: tuple[tuple[str, str], ...] = ()  # the image's ENV lines that change Python's behaviour
    code: ContainerCode | None = None

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.kind, self.name, self.version)

    @property
    def slug(self) -> str:
        return f"{self.name}-{self.version}"

    def requirements(self) -> list[str]:
        return [p.requirement for p in self.pins]


_SK = ("aws/sagemaker-scikit-learn-container", "1.2-1")
_SK_BASE = "docker/1.2-1/base/Dockerfile.cpu"


def _sk(path: str, line: int, text: str) -> Source:
    return Source(*_SK, path, line, text)


SKLEARN_1_2_1 = ImagePins(
    kind="framework", name="sklearn", version="1.2-1", label="sagemaker-scikit-learn 1.2-1",
    python="3.9", python_source=_sk(_SK_BASE, 10, "ARG PYTHON_VERSION=3.9"),
    pins=(
        Pin("scikit-learn", "1.2.1", _sk(_SK_BASE, 160, "RUN python3 -m pip install --no-cache -I scikit-learn==1.2.1")),
        Pin("pandas", "1.1.3", _sk("requirements.txt", 9, "pandas==1.1.3")),
        Pin("numpy", "1.24.1", _sk("requirements.txt", 23, "numpy==1.24.1")),
        Pin("scipy", "1.8.0", _sk("requirements.txt", 18, "scipy==1.8.0")),
        Pin("python-dateutil", "2.8.1", _sk("requirements.txt", 12, "python-dateutil==2.8.1")),
        Pin("six", "1.15.0", _sk("requirements.txt", 20, "six==1.15.0")),
    ),
    binary=("scikit-learn", "pandas", "numpy", "scipy"),
    # base/Dockerfile.cpu:155 ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PYTHONIOENCODING=UTF-8 LANG=C.UTF-8 LC_ALL=C.UTF-8
    environ=(("PYTHONUNBUFFERED", "1"), ("PYTHONIOENCODING", "UTF-8"), ("LANG", "C.UTF-8"), ("LC_ALL", "C.UTF-8")),
)

_XG = ("aws/sagemaker-xgboost-container", "1.7-1")
_XG_BASE = "docker/1.7-1/base/Dockerfile.cpu"


def _xg(path: str, line: int, text: str) -> Source:
    return Source(*_XG, path, line, text)


XGBOOST_1_7_1 = ImagePins(
    kind="algorithm", name="xgboost", version="1.7-1", label="sagemaker-xgboost 1.7-1",
    python="3.9", python_source=_xg(_XG_BASE, 32, "ARG PYTHON_VERSION=3.9"),
    pins=(
        # installed at line 197: RUN python3 -m pip install --no-cache -I xgboost==${XGBOOST_VERSION}
        Pin("xgboost", "1.7.4", _xg(_XG_BASE, 35, "ARG XGBOOST_VERSION=1.7.4")),
        Pin("numpy", "1.24.1", _xg("requirements.txt", 13, "numpy==1.24.1")),
        Pin("pandas", "1.2.4", _xg("requirements.txt", 14, "pandas==1.2.4")),
        Pin("scikit-learn", "0.24.1", _xg("requirements.txt", 23, "scikit-learn==0.24.1")),
        Pin("scipy", "1.8.0", _xg("requirements.txt", 24, "scipy==1.8.0")),
        Pin("python-dateutil", "2.8.1", _xg("requirements.txt", 18, "python-dateutil==2.8.1")),
        Pin("retrying", "1.3.3", _xg("requirements.txt", 19, "retrying==1.3.3")),
    ),
    binary=("xgboost", "numpy", "pandas", "scikit-learn", "scipy"),
    # base/Dockerfile.cpu:38-39, 44-45 (ENV LANG, LC_ALL, PYTHONUNBUFFERED, PYTHONIOENCODING)
    environ=(("PYTHONUNBUFFERED", "1"), ("PYTHONIOENCODING", "utf-8"), ("LANG", "C.UTF-8"), ("LC_ALL", "C.UTF-8")),
    code=ContainerCode(*_XG, subdir="src", env_var="MLPIPE_XGBOOST_CONTAINER_REPO", stubs=True),
)

IMAGES = {image.key: image for image in (SKLEARN_1_2_1, XGBOOST_1_7_1)}
COMPARED = ("numpy", "pandas", "scikit-learn", "scipy", "xgboost")  # what the stages' results depend on


def for_image(image) -> ImagePins | None:
    """The pins of a ``steps.spec.Image`` (None: not in the table)."""
    return IMAGES.get((image.kind, image.name, image.version)) if image is not None else None


def runs_code(stage) -> bool:
    """Stages whose code runs in their image (``runs_code`` in steps/contract.py): processing and
    evaluation scripts, training (and a tuning stage's trials). The other kinds are bookkeeping,
    serving, Lambda or Model Monitor's analyzer."""
    return KINDS[stage.kind].runs_code


def image_of(stage):
    return stage.training.image if stage.kind == "tuning" else getattr(stage, "image", None)


def drift(stages, installed=None, python: str | None = None) -> list[str]:
    """The libraries of this environment whose versions differ from the images the stages run
    in, e.g. "pandas 3.0.0 here, 1.1.3 in sagemaker-scikit-learn 1.2-1"."""
    import sys
    from importlib import metadata

    def version(package: str) -> str | None:
        if installed is not None:
            return installed.get(package)
        try:
            return metadata.version(package)
        except metadata.PackageNotFoundError:
            return None

    python = python or "%d.%d" % sys.version_info[:2]
    images = []
    for stage in stages:
        pins = for_image(image_of(stage)) if runs_code(stage) else None
        if pins is not None and pins not in images:
            images.append(pins)
    found: dict[tuple[str, str, str], list[str]] = {}
    for image in images:
        if image.python != python:
            found.setdefault(("Python", python, image.python), []).append(image.label)
        for pin in image.pins:
            here = version(pin.package)
            if pin.package in COMPARED and here is not None and here != pin.version:
                found.setdefault((pin.package, here, pin.version), []).append(image.label)
    return [f"{package} {here} here, {theirs} in {' and '.join(labels)}"
            for (package, here, theirs), labels in sorted(found.items(), key=lambda kv: (kv[0][0] != "Python",
                                                                                          kv[0][0].lower()))]
