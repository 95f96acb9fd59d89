"""kind: tuning, locally: which trials each strategy runs, how the objective is read (the
algorithm's metric definition), and a tuned abalone model at least as good as the untuned one."""

from __future__ import annotations

import json
import random
from pathlib import Path

import yaml

from conftest import EXAMPLES, run_cli

from steps.spec import ParameterRange, TrainingStage, TuningStage
from workflows.local import tuning


def _stage(strategy="Random", ranges=None, **kw) -> TuningStage:
    ranges = ranges or (ParameterRange("eta", "continuous", 0.01, 1.0, (), "Logarithmic"),
                        ParameterRange("max_depth", "integer", 2, 9))
    return TuningStage(name="tune", training=TrainingStage(name="train"), objective_metric="validation:rmse",
                       objective_type="Minimize", ranges=tuple(ranges), strategy=strategy,
                       **{"max_jobs": 6, "max_parallel_jobs": 2, "random_seed": 1, **kw})


def test_the_objective_is_read_with_the_containers_metric_definition():
    stage = _stage()
    regex = tuning.metric_regex(stage)
    assert regex == ".*\\[[0-9]+\\].*#011validation-rmse:(\\S+)"
    log = "[0]\ttrain-rmse:9.1\tvalidation-rmse:8.5\n[1]\ttrain-rmse:4.2\tvalidation-rmse:4.75\nrmse 3\n"
    assert tuning.read_objective(log, regex) == 4.75           # the last value, as the service reads it
    assert tuning.read_objective("[0]\ttrain-rmse:9.1\n", regex) is None


def test_random_draws_inside_the_ranges_on_their_scale_and_is_seeded():
    stage = _stage()
    first = tuning.plan(stage)([])
    assert first == tuning.plan(stage)([]) and len(first) == 2
    values = [tuning.sample(stage.ranges[0], random.Random(i)) for i in range(400)]
    assert all(0.01 <= v <= 1.0 for v in values)
    assert sum(v < 0.1 for v in values) > 150                   # log-uniform: half the draws below 0.1
    depths = {tuning.sample(stage.ranges[1], random.Random(i)) for i in range(200)}
    assert depths == set(range(2, 10))


def test_random_stops_at_max_jobs():
    stage = _stage(max_jobs=5)
    nxt = tuning.plan(stage)
    done = []
    while batch := nxt(done):
        done += [(t, 1.0) for t in batch]
    assert len(done) == 5


def test_grid_runs_every_combination_once():
    stage = _stage("Grid", ranges=(ParameterRange("booster", "categorical", values=("gbtree", "dart")),
                                   ParameterRange("max_depth", "categorical", values=(3, 5, 7))))
    nxt = tuning.plan(stage)
    done = []
    while batch := nxt(done):
        done += [(t, 1.0) for t in batch]
    assert [t for t, _ in done] == [{"booster": b, "max_depth": d} for b in ("gbtree", "dart") for d in (3, 5, 7)]


def test_bayesian_explores_then_stays_near_the_best():
    stage = _stage("Bayesian", max_jobs=24)
    nxt = tuning.plan(stage)
    done = []
    while batch := nxt(done):
        done += [(t, abs(t["eta"] - 0.3) + abs(t["max_depth"] - 5) / 10) for t in batch]
    assert len(done) == 24
    values = [v for _, v in done]
    assert sum(values[-8:]) < 0.75 * sum(values[:8])   # later trials cluster around the best ones


def test_hyperband_trains_a_third_of_the_rounds_then_the_best_third_fully():
    stage = _stage("Hyperband", max_jobs=6)
    nxt = tuning.plan(stage)
    done = []
    while batch := nxt(done):
        done += [(t, t["eta"]) for t in batch]
    rungs = [t["_rung"] for t, _ in done]
    assert rungs == [1] * 6 + [2] * 2
    first = sorted(v for t, v in done[:6])[:2]
    assert sorted(v for t, v in done[6:]) == first


def test_best_trial_ties_go_to_the_earlier_one():
    assert tuning.best([(1, {}, 2.0), (2, {}, 1.0), (3, {}, 1.0), (4, {}, None)], minimize=True)[0] == 2
    assert tuning.best([(1, {}, 2.0), (2, {}, 1.0)], minimize=False)[0] == 1
    assert tuning.best([(1, {}, None)], minimize=True) is None


def test_tuned_abalone_scores_at_least_as_well_as_untuned(abalone_csv, tmp_path):
    doc = yaml.safe_load((EXAMPLES / "abalone.yaml").read_text())
    for stage in doc["stages"]:
        if stage["name"] == "tune":
            stage.update(enabled=True, strategy="Random", max_jobs=6, max_parallel_jobs=2, random_seed=7)
    tuned = tmp_path / "abalone-tuned.yaml"
    tuned.write_text(yaml.safe_dump(doc, sort_keys=False))
    data = ["--input", str(abalone_csv), "--target", "8", "--categorical", "0", "--no-header",
            "--runs-dir", str(tmp_path / "runs"), "--output", "json"]
    base = run_cli("run", "--config", str(EXAMPLES / "abalone.yaml"), *data)
    assert base.returncode == 0, base.stderr[-2000:]
    result = run_cli("run", "--config", str(tuned), *data)
    assert result.returncode == 0, result.stderr[-2000:]
    untuned_mse = json.loads(base.stdout)["metrics"]["mse"]
    tuned_doc = json.loads(result.stdout)
    assert [s["name"] for s in tuned_doc["stages"]][:2] == ["preprocess", "tune"]
    assert tuned_doc["metrics"]["mse"] <= untuned_mse
    run_dir = Path(tuned_doc["run_dir"])
    summary = json.loads((run_dir / "stages/tune/outputs/tuning.json").read_text())
    assert len(summary["trials"]) == 6 and summary["best"]["objective"] == min(
        t["objective"] for t in summary["trials"] if t["objective"] is not None)
