"""Time of one acquisition step (surrogate refit + proposal) against the number of data points.

The data: a synthetic campaign over four elements (Ni, Fe, Cr, Co) with composition-consistent
PDMs (``C_ab = 12 x_b (1 ± 0.2)``, 10 entries), a smooth two-peak objective measured by a cheap
oracle (fidelity 0.5, 90 % of the points, with a fidelity bias) and an expensive one (0.9), and
5 % failed calls (feasibility labels). One step is
:func:`acquisition.propose.propose_from_training` with a batch of ``q`` = 4: the subsample above
``acquisition.max_points``, the objective GP and the feasibility GP fitted by maximum marginal
likelihood, qLogNEI (with the feasibility constraint) maximised over the constrained simplex and
PDM cone, and the oracle choice. Reading a store and computing PDMs of stored structures
(:func:`acquisition.features.build_training_set`) is not timed.

Runs pinned to one thread. Target (issue 8): under 30 s at 10⁴ points on this 2-core machine.
Usage: ``python benchmarks/acquisition.py [--sizes 100,1000,10000] [--repeats N]``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import statistics
import time

import numpy as np
import torch

from amloop.acquisition.features import ObjectiveData, TrainingSet
from amloop.acquisition.propose import propose_from_training
from amloop.generator.pdm import pair_indices, pair_labels
from amloop.state.config import CampaignConfig

ELEMENTS = ["Ni", "Fe", "Cr", "Co"]
#: Target wall time (s) of one step at 10⁴ points.
TARGET_S = 30.0
Q = 4


def campaign_config() -> CampaignConfig:
    """Four elements, one maximised objective, a cheap and an expensive oracle."""
    return CampaignConfig.model_validate(
        {
            "name": "bench",
            "elements": ELEMENTS,
            "objectives": [{"property": "bulk_modulus", "direction": "maximize"}],
            "oracles": [
                {"name": "lammps", "type": "lammps", "fidelity": 0.5, "cost": {"core_s": 2.0}},
                {"name": "dft", "type": "dft", "fidelity": 0.9, "cost": {"core_s": 3600.0}},
            ],
            "budget": {"core_hours": 100.0},
            "acquisition": {"batch_size": Q, "max_elements": 3},
        }
    )


def synthetic_training_set(n: int, seed: int = 0) -> TrainingSet:
    """``n`` synthetic values (see the module docstring), oldest first."""
    rng = np.random.default_rng(seed)
    x = rng.dirichlet(np.ones(len(ELEMENTS)), size=n)
    x[rng.random(x.shape) < 0.2] = 0.0
    x[x.sum(axis=1) == 0, 0] = 1.0
    x /= x.sum(axis=1, keepdims=True)
    pairs = pair_indices(len(ELEMENTS))
    pdm = np.array([[12 * row[b] * (row[a] > 0) for a, b in pairs] for row in x])
    pdm *= rng.uniform(0.8, 1.2, size=pdm.shape)
    fidelity = np.where(rng.random(n) < 0.9, 0.5, 0.9)
    peak = np.exp(-np.sum((x - [0.4, 0.3, 0.2, 0.1]) ** 2, axis=1) / 0.05)
    y = 150 + 50 * peak + 5 * np.sin(6 * x[:, 1]) + 8 * (fidelity < 0.9) * x[:, 2]
    y += rng.normal(0, 1.0, n)
    X = np.hstack([x, pdm, fidelity[:, None]])
    failed = rng.random(n) < 0.05
    return TrainingSet(
        elements=ELEMENTS,
        feature_names=[*ELEMENTS, *pair_labels(ELEMENTS), "fidelity"],
        objectives={"bulk_modulus": ObjectiveData(X=X[~failed], Y=y[~failed], Yvar=np.full(
            int((~failed).sum()), np.nan))},
        feasibility_X=X,
        feasibility_y=(~failed).astype(float),
    )  # fmt: skip


def time_step(n: int, repeats: int) -> tuple[float, int, str]:
    """Median wall time (s) of one refit + propose on ``n`` points, the number of objective
    values the GP is fitted on, and the first proposal's reason."""
    config = campaign_config()
    training = synthetic_training_set(n)
    fitted = min(len(training.objectives["bulk_modulus"]), config.acquisition.max_points)
    times = []
    reason = ""
    for k in range(repeats):
        started = time.perf_counter()
        proposals = propose_from_training(training, config, q=Q, seed=k)
        times.append(time.perf_counter() - started)
        reason = proposals[0].reason
    return statistics.median(times), fitted, reason


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100,1000,10000", help="numbers of data points")
    parser.add_argument("--repeats", type=int, default=1, help="timed steps per size (median)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    sizes = [int(s) for s in args.sizes.split(",")]
    limit = campaign_config().acquisition.max_points
    print(f"refit + propose (q = {Q}), one thread; exact GP up to {limit} points per objective")
    print(f"{'points':>8} {'fitted on':>10} {'time (s)':>9} {'ratio':>7}")
    base = None
    rows = []
    for n in sizes:
        seconds, fitted, reason = time_step(n, args.repeats)
        base = base or seconds
        rows.append((n, seconds))
        print(f"{n:>8} {fitted:>10} {seconds:>9.2f} {seconds / base:>7.1f}", flush=True)
    print(f"first proposal's reason at {sizes[-1]} points: {reason}")
    largest, seconds = rows[-1]
    verdict = "meets" if seconds < TARGET_S else "MISSES"
    print(f"{largest} points: {seconds:.1f} s, {verdict} the {TARGET_S:.0f} s target")


if __name__ == "__main__":
    main()
