"""Local hyperparameter tuning: which trials to run, and how a trial's objective is read.

Each trial is a training job run through the same emulated algorithm as a training stage, in
the warm workers, ``max_parallel_jobs`` at a time. The objective is read from the trial's log
the way the service reads it: with the algorithm's metric definition (for built-in XGBoost,
``.*\\[[0-9]+\\].*#011validation-<metric>:(\\S+)`` from the container's
algorithm_mode/metrics.py; a tab is ``#011`` in the log the service reads), last value wins.

Strategies:
- **Random** and **Grid** do what the service does: Random draws each hyperparameter
  independently from its range (uniform, or log-uniform for Logarithmic scaling, and for Auto
  when the range spans two or more orders of magnitude; ReverseLogarithmic samples 1 - x
  log-uniformly), integers rounded; Grid runs every combination of the categorical values.
- **Bayesian** is approximated: the first batch is random; each later batch draws random
  candidates and keeps those closest (in the normalised search space) to the best trials so
  far, with a shrinking radius: exploration first, then exploitation, like the service's
  Gaussian-process search but without its model.
- **Hyperband** is approximated by successive halving on ``num_round``: every configuration
  trains a third of the rounds, the best third trains them all.
"""

from __future__ import annotations

import itertools
import math
import random
import re
from typing import Any, Callable, Iterable

from steps.spec import ParameterRange, TuningStage

Trial = dict[str, Any]


def metric_regex(stage: TuningStage) -> str:
    """The metric definition the service applies to the training log."""
    if stage.objective_regex:
        return stage.objective_regex
    return ".*\\[[0-9]+\\].*#011" + stage.objective_metric.replace(":", "-", 1) + ":(\\S+)"


def read_objective(log_text: str, regex: str) -> float | None:
    """The last value the metric definition matches, as the service reads a training log."""
    pattern = re.compile(regex)
    value = None
    for line in log_text.replace("\t", "#011").splitlines():
        m = pattern.match(line)
        if m:
            try:
                value = float(m.group(1))
            except ValueError:
                continue
    return value


def _log_scale(r: ParameterRange) -> bool:
    if r.scaling == "Logarithmic":
        return True
    return r.scaling == "Auto" and r.min is not None and r.min > 0 and r.max / r.min >= 100


def sample(r: ParameterRange, rng: random.Random) -> Any:
    if r.type == "categorical":
        return rng.choice(list(r.values))
    lo, hi = float(r.min), float(r.max)
    if r.scaling == "ReverseLogarithmic":
        x = 1.0 - math.exp(rng.uniform(math.log(1.0 - hi), math.log(1.0 - lo)))
    elif _log_scale(r):
        x = math.exp(rng.uniform(math.log(lo), math.log(hi)))
    else:
        x = rng.uniform(lo, hi)
    if r.type == "integer":
        return int(min(hi, max(lo, round(x))))
    return round(x, 6)


def _unit(r: ParameterRange, value: Any) -> float:
    """A value's position in its range, 0..1 (categoricals: their index)."""
    if r.type == "categorical":
        return list(r.values).index(value) / max(1, len(r.values) - 1)
    lo, hi, v = float(r.min), float(r.max), float(value)
    if _log_scale(r):
        return (math.log(v) - math.log(lo)) / (math.log(hi) - math.log(lo))
    return (v - lo) / (hi - lo)


def grid(ranges: Iterable[ParameterRange]) -> list[Trial]:
    ranges = list(ranges)
    return [dict(zip((r.name for r in ranges), combo)) for combo in itertools.product(*(r.values for r in ranges))]


def plan(stage: TuningStage) -> Callable[[list[tuple[Trial, float | None]]], list[Trial]]:
    """A function from the results so far to the next batch of trials ([] when done)."""
    rng = random.Random(stage.random_seed if stage.random_seed is not None else 0)
    ranges = list(stage.ranges)
    budget = stage.max_jobs or 10
    batch = stage.max_parallel_jobs
    minimize = stage.objective_type == "Minimize"

    if stage.strategy == "Grid":
        trials = grid(ranges)
        return lambda done: trials[len(done):len(done) + batch]

    def random_trial() -> Trial:
        return {r.name: sample(r, rng) for r in ranges}

    if stage.strategy == "Random":
        return lambda done: [random_trial() for _ in range(min(batch, budget - len(done)))]

    if stage.strategy == "Hyperband":
        configs = [random_trial() for _ in range(budget)]
        keep = max(1, budget // 3)

        def hyperband(done: list[tuple[Trial, float | None]]) -> list[Trial]:
            if len(done) < len(configs):                       # rung 1: a third of the rounds
                return [{**c, "_rung": 1} for c in configs[len(done):len(done) + batch]]
            first = done[:len(configs)]
            best = sorted((d for d in first if d[1] is not None), key=lambda d: d[1], reverse=not minimize)[:keep]
            finals = [{k: v for k, v in t.items() if k != "_rung"} for t, _ in best]
            start = len(done) - len(configs)
            return [{**c, "_rung": 2} for c in finals[start:start + batch]]
        return hyperband

    def bayesian(done: list[tuple[Trial, float | None]]) -> list[Trial]:  # approximated, see above
        left = budget - len(done)
        if left <= 0:
            return []
        scored = [d for d in done if d[1] is not None]
        if len(scored) < max(2, batch):
            return [random_trial() for _ in range(min(batch, left))]
        best = sorted(scored, key=lambda d: d[1], reverse=not minimize)[:max(1, len(scored) // 3)]
        radius = max(0.05, 0.5 * (1 - len(done) / budget))
        out = []
        for _ in range(min(batch, left)):
            candidates = [random_trial() for _ in range(48)]

            def distance(c: Trial) -> float:
                return min(math.dist([_unit(r, c[r.name]) for r in ranges], [_unit(r, t[r.name]) for r in ranges])
                           for t, _ in best)
            near = [c for c in candidates if distance(c) <= radius] or sorted(candidates, key=distance)[:1]
            out.append(near[0])
        return out
    return bayesian


def best(results: list[tuple[int, Trial, float | None]], minimize: bool) -> tuple[int, Trial, float] | None:
    """The best completed trial, as the service picks it (ties: the earlier trial)."""
    scored = [r for r in results if r[2] is not None and math.isfinite(r[2])]
    if not scored:
        return None
    return min(scored, key=lambda r: (r[2] if minimize else -r[2], r[0]))  # type: ignore[return-value]
