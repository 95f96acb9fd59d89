"""`mlpipe run --exact` (issue 10, item 3): each stage in its image's Python and library pins.

The pins table (workflows/local/pins.py) against the container repositories, the fast mode's
summary of library drift, the environments (one per image, keyed by the hash of its pins, built
once under a lock), the refusals (no interpreter of the image's Python; an image without pins),
and, with the environments built, runs: which interpreter and libraries each stage really had,
and on abalone, the model the XGBoost container's own training code trains on the same split.
The tests that need the environments skip without them (`mlpipe run --exact` builds them).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tarfile
import threading
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import yaml

from conftest import EXAMPLES, ROOT, run_cli
from workflows.local import envs, pins

SKLEARN = envs.Environment(pins.SKLEARN_1_2_1)
XGBOOST = envs.Environment(pins.XGBOOST_1_7_1)
WHY_NOT = SKLEARN.missing() or XGBOOST.missing()
needs_environments = pytest.mark.skipif(WHY_NOT is not None, reason=str(WHY_NOT))


def clone_of(repo: str) -> Path | None:
    for path in (envs.MIRRORS / repo.replace("/", "+") / "repo",
                 envs.cache_root() / "repos" / (repo.replace("/", "+") + ".git")):
        if (path / "HEAD").exists() or (path / ".git").exists():
            return path
    return None


# --- the table -------------------------------------------------------------------------------------

@pytest.mark.parametrize("image", list(pins.IMAGES.values()), ids=lambda i: i.slug)
def test_every_pin_is_the_line_its_repository_declares(image):
    sources = [(image.python, image.python_source)] + [(p.version, p.source) for p in image.pins]
    for version, source in sources:
        assert version in source.text and source.line > 0 and source.path and source.repo.startswith("aws/")
        assert source.branch == image.version
    assert len({p.package for p in image.pins}) == len(image.pins)
    clone = clone_of(image.python_source.repo)
    if clone is None:
        pytest.skip(f"no clone of {image.python_source.repo} here to read the lines from")
    for _, source in sources:
        text = subprocess.run(["git", "-C", str(clone), "show", f"{source.branch}:{source.path}"],
                              capture_output=True, text=True, check=True).stdout
        assert text.splitlines()[source.line - 1].strip() == source.text, str(source)


def test_drift_names_each_library_that_differs_from_the_images():
    from steps.pipeline import load_spec

    spec = load_spec(EXAMPLES / "abalone.yaml")
    here = {"pandas": "3.0.0", "numpy": "1.24.1", "scikit-learn": "1.2.1", "scipy": "1.8.0", "xgboost": "3.1.0"}
    lines = pins.drift(spec.stages, installed=here, python="3.11")
    assert lines == ["Python 3.11 here, 3.9 in sagemaker-scikit-learn 1.2-1 and sagemaker-xgboost 1.7-1",
                     "pandas 3.0.0 here, 1.1.3 in sagemaker-scikit-learn 1.2-1",
                     "pandas 3.0.0 here, 1.2.4 in sagemaker-xgboost 1.7-1",
                     "scikit-learn 1.2.1 here, 0.24.1 in sagemaker-xgboost 1.7-1",
                     "xgboost 3.1.0 here, 1.7.4 in sagemaker-xgboost 1.7-1"]
    processing_only = [s for s in spec.stages if s.kind == "processing"]
    same = {"pandas": "1.1.3", "numpy": "1.24.1", "scikit-learn": "1.2.1", "scipy": "1.8.0"}
    assert pins.drift(processing_only, installed=same, python="3.9") == []


def test_the_fast_run_summary_names_the_drift(tmp_path):
    from importlib.metadata import version

    from steps.pipeline import load_spec

    proc = run_cli("run", "--runs-dir", str(tmp_path / "runs"))
    assert proc.returncode == 0, proc.stderr
    assert "library versions differ from the images' (mlpipe run --exact runs theirs):" in proc.stdout
    if version("pandas") != "1.1.3":
        assert f"  pandas {version('pandas')} here, 1.1.3 in sagemaker-scikit-learn 1.2-1\n" in proc.stdout
    record = json.loads(next((tmp_path / "runs").glob("quickstart-*/run.json")).read_text())
    assert record["exact"] is None
    assert record["library_drift"] == pins.drift(load_spec(EXAMPLES / "quickstart.yaml").stages)


# --- environments ---------------------------------------------------------------------------------

def test_an_environment_lives_under_the_hash_of_its_python_and_pins(monkeypatch, tmp_path):
    monkeypatch.setenv("MLPIPE_ENV_CACHE", str(tmp_path))
    first = envs.Environment(pins.SKLEARN_1_2_1)
    assert first.dir.parent == tmp_path and first.dir.name == f"sklearn-1.2-1-{first.hash}"
    assert envs.Environment(pins.SKLEARN_1_2_1).dir == first.dir
    newer = replace(pins.SKLEARN_1_2_1, pins=tuple(replace(p, version="1.1.4") if p.package == "pandas" else p
                                                   for p in pins.SKLEARN_1_2_1.pins))
    assert envs.Environment(newer).dir != first.dir
    assert envs.Environment(replace(pins.SKLEARN_1_2_1, python="3.10")).dir != first.dir
    sys.path.insert(0, str(ROOT / "bench" / "containers"))
    try:
        import xgboost_reference as ref
    finally:
        sys.path.pop(0)
    assert ref.env_dir() == envs.Environment(pins.XGBOOST_1_7_1).dir, "the bench reference is the product's"


def test_two_builds_at_once_create_the_environment_once(monkeypatch, tmp_path):
    """The build's steps are faked (no pip); the lock, the ready marker and the rebuild of a
    half-built environment are real."""
    import time

    monkeypatch.setenv("MLPIPE_ENV_CACHE", str(tmp_path))
    monkeypatch.setattr(envs, "find_python", lambda image: sys.executable)
    created: list[str] = []

    def fake_run(args, what, fix, env=None, cwd=None):
        if args[1:3] == ["-m", "venv"]:
            created.append(args[3])
            time.sleep(0.3)
            Path(args[3], "bin").mkdir(parents=True)
            Path(args[3], "bin", "python").write_text("")
        elif "-c" in args:
            return json.dumps({p.package: p.version for p in pins.SKLEARN_1_2_1.pins})
        return ""

    monkeypatch.setattr(envs, "_run", fake_run)
    environment = envs.Environment(pins.SKLEARN_1_2_1)
    threads = [threading.Thread(target=environment.build) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert created == [str(environment.dir)] and environment.ready()
    environment.build()
    assert len(created) == 1, "a ready environment is reused"
    (environment.dir / envs.READY).unlink()  # a build that died half way
    environment.build()
    assert len(created) == 2 and environment.ready()


def test_no_interpreter_of_the_image_python_is_exit_2_and_says_how_to_get_one(tmp_path):
    if Path("/usr/bin/python3.9").exists() or Path("/bin/python3.9").exists():
        pytest.skip("this machine has a system python3.9")
    env = {"MLPIPE_ENV_CACHE": str(tmp_path / "envs"), "PYENV_ROOT": str(tmp_path / "no-pyenv"),
           "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin"}
    proc = run_cli("run", "--exact", "--runs-dir", str(tmp_path / "runs"), env=env)
    assert proc.returncode == 2, proc.stderr
    assert "there is no Python 3.9 on this machine" in proc.stderr
    assert "pyenv install 3.9" in proc.stderr and "MLPIPE_PYTHON_3_9" in proc.stderr
    assert "Traceback" not in proc.stderr and proc.stderr.startswith("error: ")
    assert not list((tmp_path / "runs").glob("quickstart-*")), "nothing was run"
    proc = run_cli("run", "--exact", "--runs-dir", str(tmp_path / "runs"), env={**env, "MLPIPE_PYTHON_3_9": sys.executable})
    assert proc.returncode == 2 and f"MLPIPE_PYTHON_3_9={sys.executable} is not a Python 3.9" in proc.stderr


def test_an_image_without_pins_is_refused_naming_its_stage(tmp_path):
    proc = run_cli("run", "--exact", "--config", str(EXAMPLES / "bsm_pytorch.yaml"), "--runs-dir", str(tmp_path))
    assert proc.returncode == 2, proc.stderr
    assert "no pinned environment for the pytorch" in proc.stderr and "stages.train" in proc.stderr
    assert "run without --exact" in proc.stderr and "Traceback" not in proc.stderr


# --- runs in the environments ----------------------------------------------------------------------

PROBE = """import importlib.util, json, os, runpy, sys
import numpy, pandas, sklearn
try:
    import xgboost
    xgb = xgboost.__version__
except ImportError:
    xgb = None
json.dump({{"python": "%d.%d" % sys.version_info[:2], "executable": sys.executable, "numpy": numpy.__version__,
           "pandas": pandas.__version__, "scikit-learn": sklearn.__version__, "xgboost": xgb,
           "sees_mlpipe": importlib.util.find_spec("workflows") is not None, "LC_ALL": os.environ.get("LC_ALL")}},
          open("versions.json", "w"))
sys.argv = [{script!r}, *{args!r}, *sys.argv[1:]]
runpy.run_path({script!r}, run_name="__main__")
"""


@needs_environments
def test_each_stage_runs_under_its_image_python_and_pins(tmp_path):
    probes = tmp_path / "probe"
    probes.mkdir()
    # named preprocess.py, so the runner still maps the example's data onto it
    (probes / "preprocess.py").write_text(PROBE.format(script=str(ROOT / "steps/code/preprocess.py"),
                                                       args=["--target", "progression", "--header", "--categorical", "sex"]))
    (probes / "evaluate.py").write_text(PROBE.format(script=str(ROOT / "steps/code/evaluate.py"), args=[]))
    doc = yaml.safe_load((EXAMPLES / "quickstart.yaml").read_text())
    for stage in doc["stages"]:
        if stage["name"] in ("preprocess", "evaluate"):
            stage["code"] = str(probes / f"{stage['name']}.py")
    config = tmp_path / "probed.yaml"
    config.write_text(yaml.safe_dump(doc))
    runs = tmp_path / "runs"
    proc = run_cli("run", "--exact", "--config", str(config), "--runs-dir", str(runs), "--output", "json")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    run_dir = Path(result["run_dir"])
    seen = {name: json.loads((run_dir / "stages" / name / "versions.json").read_text())
            for name in ("preprocess", "evaluate")}
    assert seen["preprocess"] == {"python": "3.9", "executable": str(SKLEARN.python), "numpy": "1.24.1",
                                  "pandas": "1.1.3", "scikit-learn": "1.2.1", "xgboost": None,
                                  "sees_mlpipe": False, "LC_ALL": "C.UTF-8"}
    assert seen["evaluate"] == {"python": "3.9", "executable": str(XGBOOST.python), "numpy": "1.24.1",
                                "pandas": "1.2.4", "scikit-learn": "0.24.1", "xgboost": "1.7.4",
                                "sees_mlpipe": False, "LC_ALL": "C.UTF-8"}
    log = (run_dir / "stages/train/log.txt").read_text()
    assert "Single node training" in log and "[59]\ttrain-rmse:" in log, "the container's own training code ran"
    assert result["exact"] == {"sagemaker-scikit-learn 1.2-1": str(SKLEARN.python),
                               "sagemaker-xgboost 1.7-1": str(XGBOOST.python)}
    assert result["library_drift"] == []
    markers = {e.name: (e.dir / envs.READY).stat().st_mtime_ns for e in (SKLEARN, XGBOOST)}
    proc = run_cli("run", "--exact", "--config", str(config), "--runs-dir", str(runs), "--output", "json")
    assert proc.returncode == 0, proc.stderr
    again = {s["name"]: s["status"] for s in json.loads(proc.stdout)["stages"]}
    assert again["preprocess"] == again["train"] == again["evaluate"] == "Cached"
    assert markers == {e.name: (e.dir / envs.READY).stat().st_mtime_ns for e in (SKLEARN, XGBOOST)}, "reused"


@needs_environments
def test_exact_abalone_trains_the_model_the_container_trains(tmp_path, abalone_csv):
    sys.path.insert(0, str(ROOT / "bench" / "containers"))
    try:
        import xgboost_reference as ref
    finally:
        sys.path.pop(0)
    data = ["--config", str(EXAMPLES / "abalone.yaml"), "--input", str(abalone_csv), "--target", "8",
            "--categorical", "0", "--no-header", "--runs-dir", str(tmp_path / "runs"), "--output", "json"]
    proc = run_cli("run", "--exact", *data)
    assert proc.returncode == 0, proc.stderr
    exact = json.loads(proc.stdout)
    split = Path(exact["run_dir"]) / "stages/preprocess/opt/ml/processing"
    train = next(s for s in yaml.safe_load((EXAMPLES / "abalone.yaml").read_text())["stages"] if s["name"] == "train")
    ref.container_train(train["hyperparameters"], split / "train", split / "validation", tmp_path / "container")
    lines = (split / "test/test.csv").read_text().splitlines()
    y = np.array([float(line.split(",", 1)[0]) for line in lines])
    served = np.asarray(ref.container_predict(tmp_path / "container", "\n".join(line.split(",", 1)[1] for line in lines)))
    container_mse = float(np.mean((served - y) ** 2))
    print(f"test MSE: mlpipe run --exact {exact['metrics']['mse']:.6f}, the container's training code {container_mse:.6f}")
    assert f"{exact['metrics']['mse']:.3f}" == f"{container_mse:.3f}"
    with tarfile.open(Path(exact["run_dir"]) / "stages/train/outputs/model/model.tar.gz") as tar:
        assert tar.extractfile("xgboost-model").read() == (tmp_path / "container/xgboost-model").read_bytes()
    # the fast mode, on the same data: the same split (pandas 3 and pandas 1.1.3 agree) and model
    proc = run_cli("run", *data)
    assert proc.returncode == 0, proc.stderr
    fast = json.loads(proc.stdout)
    fast_split = Path(fast["run_dir"]) / "stages/preprocess/opt/ml/processing"
    for name in ("train/train.csv", "validation/validation.csv", "test/test.csv", "test/schema.json"):
        assert (fast_split / name).read_bytes() == (split / name).read_bytes(), name
    assert fast["metrics"]["mse"] == exact["metrics"]["mse"]
    shutil.rmtree(tmp_path / "runs", ignore_errors=True)
