"""One oracle call on one candidate: budget check, idempotent record, failure as data."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from amloop.loop.budget import Budget
from amloop.loop.steps.run import oracle_instance
from amloop.oracles.base import Oracle
from amloop.state.config import CampaignConfig, OracleConfig
from amloop.state.files import sha256_file
from amloop.state.schema import Artifact, Evaluation
from amloop.state.store import CampaignStore


@dataclass(frozen=True)
class EvaluationTask:
    """One oracle call the iteration wants: which oracle on which candidate."""

    oracle: str
    candidate_hash: str


#: Runs evaluation tasks (here, or fanned out by the flow); returns the count per status.
TaskRunner = Callable[[list[EvaluationTask]], dict[str, int]]


def evaluate(
    store: CampaignStore,
    config: CampaignConfig,
    oracle_cfg: OracleConfig,
    candidate_hash: str,
    iteration: int | None,
) -> Evaluation | None:
    """Run one oracle on one stored candidate and store the result (done or failed).

    Returns the stored evaluation; the finished one when it was finished before (nothing is
    redone); ``None`` when the call does not fit in the budget (nothing is stored).
    """
    existing = [
        e
        for e in store.evaluations(oracle=oracle_cfg.name, candidates=[candidate_hash])
        if e.status in ("done", "failed")
    ]
    if existing:
        return existing[0]
    reason = Budget.of(store, config).call_refused(oracle_cfg)
    if reason is not None:
        store.log_event("budget_skip", reason, iteration=iteration)
        return None
    oracle = oracle_instance(oracle_cfg)
    if not isinstance(oracle, Oracle):
        raise TypeError(f"oracle '{oracle_cfg.name}' ({oracle_cfg.type}) does not compute")
    candidate = store.candidate(candidate_hash)
    if candidate is None:
        raise LookupError(f"candidate {candidate_hash[:12]} is not in the store")
    claimed = store.claim_evaluation(
        candidate_hash,
        oracle.name,
        oracle.fidelity,
        iteration=iteration,
        max_attempts=config.execution.max_attempts,
    )
    if claimed is None:
        return evaluate(store, config, oracle_cfg, candidate_hash, iteration)  # finished meanwhile
    if claimed.status == "failed":  # its process died on every earlier attempt
        return claimed
    result = oracle.evaluate(candidate)
    result.iteration = iteration
    result.provenance["worker"] = f"{socket.gethostname()}:{os.getpid()}"
    stored = store.record_evaluation(result)
    pdos_file = stored.provenance.get("pdos_file")
    if stored.status == "done" and pdos_file and Path(pdos_file).is_file():
        store.add_artifact(
            Artifact(
                kind="pdos",
                path=str(pdos_file),
                sha256=sha256_file(Path(pdos_file)),
                iteration=iteration,
                metadata={"candidate_hash": candidate_hash, "oracle": oracle.name},
            )
        )
    return stored
