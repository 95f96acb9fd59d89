"""The step scripts give the same outputs under the images' libraries and under mlpipe's own
(issue 10, item 5).

steps/code/preprocess.py runs in the SKLearn 1.2-1 image (Python 3.9, pandas 1.1.3, scikit-learn
1.2.1, numpy 1.24.1) and evaluate.py in the training image it scores (XGBoost 1.7-1: Python 3.9,
pandas 1.2.4, numpy 1.24.1, xgboost 1.7.4); locally both run under this environment's pandas 3,
scikit-learn 1.x and numpy 2. Each case here feeds padded text, blank cells and missing values
to the script under both, in the environments `mlpipe run --exact` uses (workflows/local/envs.py),
and compares exit codes, messages and every output file byte for byte. Each script runs as
`mlpipe run` runs it: forked from a warm server of its environment. The cases also check what
the outputs mean, so that "the same" is also "right". Skips when those environments are absent
(`mlpipe run --exact` builds them).
"""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import numpy as np
import pytest

from conftest import ROOT
from workflows.local import envs, pins

SKLEARN = envs.Environment(pins.SKLEARN_1_2_1)
XGBOOST = envs.Environment(pins.XGBOOST_1_7_1)
PREPROCESS = ROOT / "steps" / "code" / "preprocess.py"
EVALUATE = ROOT / "steps" / "code" / "evaluate.py"


# Runs a step script with its stderr in a file of its own (a forked job's output is one log).
_SEPARATE_STDERR = (
    "import os, runpy, sys\n"
    "err = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)\n"
    "os.dup2(err, 2)\n"
    "sys.stderr = open(2, 'w', buffering=1, closefd=False)\n"
    "script = sys.argv[2]\n"
    "sys.argv = [script, *sys.argv[3:]]\n"
    "sys.path[0] = os.path.dirname(script)\n"
    "runpy.run_path(script, run_name='__main__')\n")


def run_script(environment: envs.Environment | None, script: Path, base: Path, args: list[str]) -> dict:
    """The script under the processing contract in ``base``, forked from the warm server of
    ``environment`` (None: mlpipe's own), as `mlpipe run` (--exact) runs it; everything it
    wrote, with ``base`` masked in messages so that two runs compare."""
    from workflows.local.worker import Job, Workers

    logs = base.parent / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    wrapper = logs / "separate_stderr.py"
    wrapper.write_text(_SEPARATE_STDERR)
    job = Job(cwd=str(base), log=str(logs / "stdout.txt"), script=str(wrapper),
              argv=[str(logs / "stderr.txt"), str(script), *args],
              env={"MLPIPE_PROCESSING_DIR": str(base), "PYTHONNOUSERSITE": "1"})
    code, _ = Workers().run(job, timeout=300, interpreter=environment.interpreter() if environment else None)
    stdout, stderr = ((logs / name).read_text() if (logs / name).is_file() else "" for name in ("stdout.txt", "stderr.txt"))
    files = {str(p.relative_to(base)): p.read_bytes() for p in sorted(base.rglob("*"))
             if p.is_file() and "input" not in p.relative_to(base).parts[:1] and p.parts[-2] != "model"}
    return {"exit": code, "stdout": stdout.replace(str(base), "BASE"),
            "stderr": stderr.replace(str(base), "BASE"), "files": files}


def both(tmp_path: Path, environment: envs.Environment, script: Path, inputs: dict[str, bytes],
         args: list[str]) -> tuple[dict, dict]:
    reason = environment.missing()
    if reason:
        pytest.skip(reason)
    out = []
    for env, name in ((environment, "image"), (None, "local")):
        base = tmp_path / name / "job"
        for rel, data in inputs.items():
            (base / rel).parent.mkdir(parents=True, exist_ok=True)
            (base / rel).write_bytes(data)
        base.mkdir(parents=True, exist_ok=True)
        out.append(run_script(env, script, base, args))
    image, local = out
    assert "Traceback" not in image["stderr"] + local["stderr"], image["stderr"] + local["stderr"]
    assert (image["exit"], image["stderr"], image["stdout"]) == (local["exit"], local["stderr"], local["stdout"])
    assert image["files"].keys() == local["files"].keys()
    for name in image["files"]:
        assert image["files"][name] == local["files"][name], f"{name} differs"
    return image, local


def table(result: dict, name: str) -> np.ndarray:
    return np.loadtxt(result["files"][name].decode().splitlines(), delimiter=",", ndmin=2)


# --- preprocess.py ---------------------------------------------------------------------------------

PADDED = (  # a header with padded names; padded and blank categories; blank, "NA" and whitespace-only numbers
    "sex , length ,diameter,rings\n"
    " M ,0.455, 0.365 ,15\n"
    "F,  0.35,0.265,7\n"
    "  ,0.53,,9\n"
    "M,0.44,0.365 , 10\n"
    " I,,0.255,7\n"
    '"  F  ",0.425,0.3,8\n'
    "M ,0.53,0.415,20\n"
    "   ,   ,   ,\n"
    "F,0.545,0.425,16\n"
    "I,0.475,0.37,9\n"
    "M,0.55,0.44,19\n"
    "F,0.525, ,14\n"
    "I,0.43,0.35,10\n"
    " M,0.49,0.38,11\n"
    "F,NA,0.4,12\n"
    "I,0.3,0.22,5\n")

LABELS = (  # no header, semicolons; padded class labels, a blank label, blank and padded features
    " yes ; 1.5 ;red ; 3\nno;2.5; blue;4\n no ;  ;  ;5\nyes;3.5;red ;\n maybe;4.5;;6\nno;5.5;green;7\n"
    "yes ; 6.5;blue;8\nno;7.5; red;9\nyes;8.5;green ; 10\n no;9.5;red;11\nyes;10.5;  blue  ;12\n"
    "no;11.5;red;13\nmaybe ;12.5;green;14\n  ;13.5;red;15\n")


@pytest.mark.parametrize("case", ["padded header and cells", "named padded target", "categorical by index",
                                  "classification labels", "missing targets"])
def test_preprocess_is_the_same_under_the_sklearn_image_libraries(tmp_path, case):
    data, args = {
        "padded header and cells": (PADDED, ["--target", "rings"]),
        "named padded target": (PADDED, ["--target", "length", "--categorical", "sex"]),
        "categorical by index": (PADDED.split("\n", 1)[1], ["--target", "3", "--no-header", "--categorical", "0"]),
        "classification labels": (LABELS, ["--target", "0", "--problem-type", "classification"]),
        "missing targets": ("a,b,y\n" + "".join(f"{i}, {'x' if i % 2 else ' z '} ,{'' if i % 4 == 0 else i}\n"
                                                 for i in range(40)), ["--target", "y"]),
    }[case]
    image, _ = both(tmp_path, SKLEARN, PREPROCESS, {"input/data/data.csv": data.encode()}, args)
    assert image["exit"] == 0, image["stderr"]
    schema = json.loads(image["files"]["test/schema.json"])
    rows = [table(image, f"{s}/{s}.csv") for s in ("train", "validation", "test")]
    assert all(np.isfinite(r).all() for r in rows), "blanks are imputed, never written as nan"
    if case == "padded header and cells":
        # the padded categories are three, the all-blank row is dropped, padding never makes a category
        assert schema["feature_names"] == ["num__length", "num__diameter", "cat__sex_F", "cat__sex_I", "cat__sex_M"]
        assert sum(len(r) for r in rows) == 15
    elif case == "named padded target":
        assert schema["target"] == "length" and "num__rings" in schema["feature_names"]
        assert sum(len(r) for r in rows) == 13, "rows without a length are not training rows"
    elif case == "categorical by index":
        assert schema["feature_names"][-3:] == ["cat__column_0_F", "cat__column_0_I", "cat__column_0_M"]
    elif case == "classification labels":
        assert json.loads(image["files"]["test/labels.json"]) == {"classes": ["maybe", "no", "yes"]}
        assert sum(len(r) for r in rows) == 13 and set(np.concatenate([r[:, 0] for r in rows])) == {0, 1, 2}
        assert [n for n in schema["feature_names"] if n.startswith("cat__")] == \
            ["cat__column_2_blue", "cat__column_2_green", "cat__column_2_red"]
    else:
        assert sum(len(r) for r in rows) == 30 and schema["feature_names"][-2:] == ["cat__b_x", "cat__b_z"]


@pytest.mark.parametrize("data", ["a,b,y\n1,2,3\n4,5,6\n", "x,y\nlow,1\nhigh,2\n" * 6, ""])
def test_preprocess_refuses_the_same_data_with_the_same_message(tmp_path, data):
    image, _ = both(tmp_path, SKLEARN, PREPROCESS, {"input/data/data.csv": data.encode()}, ["--target", "y"])
    assert image["exit"] == 2 and image["stderr"].startswith("error: ") and image["files"] == {}


# --- evaluate.py -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, bytes]:
    """model.tar.gz files holding xgboost-model in xgboost 1.7's format (what the image writes)."""
    import xgboost

    from workflows.local import xgboost_model as xm

    root = tmp_path_factory.mktemp("models")
    rng = np.random.RandomState(0)
    x = rng.rand(200, 3)
    y = 3 * x[:, 0] + x[:, 1] + rng.normal(0, 0.1, 200)
    out = {}
    for name, params, label in (("regression", {}, y), ("binary", {"objective": "binary:logistic"}, y > 2)):
        booster = xgboost.train({"base_score": 0.5, "tree_method": "exact", "max_depth": 3, **params},
                                xgboost.DMatrix(x, label=label.astype(float)), 10)
        path = xm.save_booster(booster, root / name / "xgboost-model")
        with tarfile.open(root / name / "model.tar.gz", "w:gz") as tar:
            tar.add(path, arcname="xgboost-model")
        out[name] = (root / name / "model.tar.gz").read_bytes()
    return out


EVALUATION_CASES = {
    # padded numbers and blank lines
    "padded": ("regression", " 1.5, 0.2 ,0.3, 0.1\n2.5 ,0.5,0.6 ,0.2\n\n3.1,0.9,0.4,0.3\n0.7,0.1,0.2,0.3 \n", 0, 4),
    # an empty and a whitespace-only feature: xgboost's missing value
    "missing features": ("regression", "1.5,0.2,0.3,0.1\n2.5,0.5,,0.2\n3.1, 0.9 ,  ,0.3\n", 0, 3),
    "padded labels": ("binary", " 1 ,0.9,0.2,0.1\n0, 0.1,0.5,0.2\n 0,0.2 ,0.1,0.9\n1 ,0.8,0.7,0.3\n", 0, 4),
    "missing target": ("regression", "1.5,0.2,0.3,0.1\n  ,0.5,0.6,0.2\n3.1,0.9,0.4,0.3\n", 2, None),
    "text": ("regression", "1.5,abc,0.3,0.1\n2.5,0.5,0.6,0.2\n", 2, None),
}


@pytest.mark.parametrize("case", list(EVALUATION_CASES))
def test_evaluate_is_the_same_under_the_xgboost_image_libraries(tmp_path, models, case):
    kind, test_csv, code, n = EVALUATION_CASES[case]
    problem = "classification" if kind == "binary" else "regression"
    image, _ = both(tmp_path, XGBOOST, EVALUATE, {"model/model.tar.gz": models[kind], "test/test.csv": test_csv.encode()},
                    ["--problem-type", problem])
    assert image["exit"] == code, image["stderr"]
    if code:
        assert image["stderr"].startswith("error: BASE/test/test.csv") or "numbers only" in image["stderr"]
        assert "data row 2 has no target" in image["stderr"] or case == "text"
        return
    metrics = json.loads(image["files"]["evaluation/metrics.json"])
    assert metrics["n"] == n and all(np.isfinite(v) for v in metrics.values())
    predictions = image["files"]["evaluation/predictions.csv"].decode().splitlines()
    assert predictions[0] == "actual,predicted" and len(predictions) == n + 1
    if kind == "binary":
        assert [line.split(",")[0] for line in predictions[1:]] == ["1", "0", "0", "1"]
