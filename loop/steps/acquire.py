"""The acquisition step: the iteration's proposals (compositions, PDM targets, oracles), stored once."""

from __future__ import annotations

import time
from dataclasses import asdict

from amloop.acquisition.propose import Proposal, propose
from amloop.loop.steps.run import CampaignRun, data_cutoff, iteration_seed

#: Iteration-metadata key of the acquisition's GP hyper-parameters (:func:`acquire`).
GP_KEY = "gp_hyperparameters"
#: Iteration-metadata key of the acquisition's CPU time (core-s; not charged to the budget).
ACQUIRE_CORE_S = "acquire_core_s"


def acquire(run: CampaignRun, index: int) -> list[Proposal]:
    """The iteration's proposals: stored ones when acquisition already ran, else new ones, from
    the evaluations up to :func:`data_cutoff` (with ``execution.overlap``, the previous
    iteration's proposals are pending).

    The GP hyper-parameters go into the iteration's metadata (``gp_hyperparameters``); the
    next iteration's acquisition starts from them (``acquisition.refit_growth``). Its wall
    time and CPU time (``acquire_core_s``) go there too."""
    iterations = {r.index: r for r in run.store.iterations()}
    record = iterations[index]
    if "proposals" in record.metadata:
        return [Proposal(**p) for p in record.metadata["proposals"]]
    started, cpu0 = time.perf_counter(), time.process_time()
    previous = iterations.get(index - 1)
    hyperparameters = dict(previous.metadata.get(GP_KEY, {})) if previous else {}
    pending = (
        [p["composition"] for p in previous.metadata.get("proposals", [])]
        if previous is not None and run.config.execution.overlap
        else None
    )
    proposals = propose(
        run.store,
        run.config,
        q=run.config.acquisition.batch_size,
        seed=iteration_seed(run.config, index),
        pending=pending,
        hyperparameters=hyperparameters,
        through_iteration=data_cutoff(run.config, index),
    )
    run.store.update_iteration(
        index,
        phase="generate",
        metadata={
            "proposals": [asdict(p) for p in proposals],
            GP_KEY: hyperparameters,
            "timings_s": {"acquire": time.perf_counter() - started},
            ACQUIRE_CORE_S: time.process_time() - cpu0,
        },
    )
    return proposals
