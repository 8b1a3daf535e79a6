"""The refinement step of amorphous campaigns: each generated cell relaxed, annealed and relaxed again with the campaign's md engine before the gate; the refined cell is the candidate that is gated and scored."""

from __future__ import annotations

import time
from collections.abc import Sequence

from amloop.loop.steps.run import CampaignRun, iteration_seed, oracle_config, oracle_instance
from amloop.oracles.base import OracleFailed
from amloop.oracles.md import MDOracle
from amloop.oracles.md.refine import RefineProtocol, refine_cell
from amloop.state.config import RefineConfig
from amloop.state.schema import Candidate, Cost, Evaluation

#: Name under which refinements are recorded: an evaluation of the generated (raw) cell whose
#: ``relaxed_structure`` is the refined cell and whose cost is the refinement's.
REFINE_ORACLE = "refine"


def refine(run: CampaignRun, index: int, candidates: Sequence[Candidate]) -> list[Candidate]:
    """The refined candidates of iteration ``index`` (``candidates`` as they are without
    ``generator.refine``).

    Each generated cell is refined once (:func:`oracles.md.refine.refine_cell` with the
    ``generator.refine.oracle`` md oracle's engine), recorded as a ``refine`` evaluation of the
    generated cell (cost charged to the budget, numbers in its provenance); the refined cell is
    stored as a candidate of the same origin with ``refined_from`` and ``refinement`` in its
    provenance. A refinement that fails is stored as failed with its reason and its cell goes no
    further. Re-running after a crash reuses the stored refinements.
    """
    settings = run.config.generator.refine
    if settings is None:
        return list(candidates)
    recorded = {
        e.candidate_hash: e
        for e in run.store.evaluations(
            oracle=REFINE_ORACLE, candidates=[c.content_hash for c in candidates]
        )
        if e.status in ("done", "failed")
    }
    refined = []
    for raw in candidates:
        evaluation = recorded.get(raw.content_hash) or _refine_one(run, index, raw, settings)
        if evaluation.status != "done" or evaluation.relaxed_structure is None:
            continue
        provenance = {
            **raw.provenance,
            "refined_from": raw.content_hash,
            "refinement": evaluation.provenance,
        }
        refined.append(
            run.store.add_candidate(raw.with_structure(evaluation.relaxed_structure, provenance))
        )
    return refined


def refine_protocol(settings: RefineConfig) -> RefineProtocol:
    """The refinement protocol of the campaign's ``generator.refine`` settings."""
    return RefineProtocol(
        fmax_eV_A=settings.fmax_eV_A,
        max_relax_steps=settings.max_relax_steps,
        anneal_ps=settings.anneal_ps,
        anneal_temperature_K=settings.anneal_temperature_K,
        cooling_rate_K_per_ps=settings.cooling_rate_K_per_ps,
        final_temperature_K=settings.final_temperature_K,
        pressure_tolerance_GPa=settings.pressure_tolerance_GPa,
    )


def _refine_one(run: CampaignRun, index: int, raw: Candidate, settings: RefineConfig) -> Evaluation:
    md = oracle_instance(oracle_config(run.config, settings.oracle))
    assert isinstance(md, MDOracle)  # the config checks the oracle's type
    protocol = refine_protocol(settings)
    cpu0 = time.process_time()
    common = {
        "candidate_hash": raw.content_hash,
        "oracle": REFINE_ORACLE,
        "fidelity": 0.0,
        "iteration": index,
        "attempts": 1,
    }
    try:
        refinement = refine_cell(
            raw.structure,
            md.make_engine,
            protocol,
            seed=iteration_seed(run.config, index),
            timeout_s=md.timeout_s,
        )
    except OracleFailed as exc:
        evaluation = Evaluation(
            **common,
            status="failed",
            error=f"refinement failed: {exc}",
            cost=Cost(core_s=time.process_time() - cpu0),
        )
    else:
        evaluation = Evaluation(
            **common,
            status="done",
            cost=Cost(core_s=refinement.core_s),
            relaxed_structure=refinement.structure,
            provenance={"engine": settings.oracle, **refinement.summary()},
        )
    return run.store.record_evaluation(evaluation)
