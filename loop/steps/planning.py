"""The evaluation half of an iteration: which oracle runs on which survivor (cheap ones on all, dear ones where proposals chose them, lab requests), and running them."""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any

from amloop.acquisition.propose import MIN_POINTS, Proposal
from amloop.loop.steps.acquire import acquire
from amloop.loop.steps.calls import EvaluationTask, TaskRunner, evaluate
from amloop.loop.steps.crafting import craft
from amloop.loop.steps.gate import gate
from amloop.loop.steps.potential import labelling_tasks, refit_potential
from amloop.loop.steps.run import CampaignRun, is_cheap, oracle_config, oracle_instance
from amloop.loop.steps.stopping import finish_iteration, record
from amloop.oracles.campaign_potential import committee_missing
from amloop.oracles.experiment import ExperimentOracle
from amloop.state.schema import Candidate


def cheap_tasks(run: CampaignRun, survivors: Sequence[Candidate]) -> list[EvaluationTask]:
    """Every cheap oracle (except the gate's energy oracle, which ran already, and the
    campaign's own potential before its first fit) on every survivor."""
    return [
        EvaluationTask(o.name, c.content_hash)
        for c in survivors
        for o in run.config.oracles
        if is_cheap(o) and o.name != run.config.quality.energy_oracle and not committee_missing(o)
    ]


def expensive_tasks(
    run: CampaignRun, index: int, proposals: Sequence[Proposal], survivors: Sequence[Candidate]
) -> list[EvaluationTask]:
    """The dear oracles the proposals chose, each on its proposal's best survivor (by the
    first objective among the cheap results; a cell the gate rejected is never one, even if
    listed); experiment choices become lab requests. A dear oracle that alone measures an
    objective still short of data runs for every proposal."""
    objective = run.config.objectives[0]
    sign = objective.sign
    values: dict[str, float] = {}
    for evaluation in run.store.evaluations(iteration=index, status="done"):
        if objective.property in evaluation.properties:
            values[evaluation.candidate_hash] = (
                sign * evaluation.properties[objective.property].value
            )
    rejected = run.store.gate_rejected()
    survivors = [c for c in survivors if c.content_hash not in rejected]
    tasks = []
    starving = _starving_oracles(run)
    for k, proposal in enumerate(proposals):
        for name in [*starving, proposal.oracle]:
            if name is not None and not committee_missing(oracle_config(run.config, name)):
                tasks.extend(_proposal_task(run, index, k, proposal, name, survivors, values))
    return list(dict.fromkeys(tasks))


def _starving_oracles(run: CampaignRun) -> list[str]:
    """Dear oracles that alone measure an objective with fewer values than the surrogate needs;
    without this, the acquisition (which chooses by value per cost among fitted models) would
    never call them."""
    names = []
    for objective in run.config.objectives:
        if objective.oracle is None or is_cheap(oracle_config(run.config, objective.oracle)):
            continue
        if oracle_config(run.config, objective.oracle).type == ExperimentOracle.type_name:
            continue
        count = sum(
            objective.property in e.properties
            for e in run.store.evaluations(oracle=objective.oracle, status="done", structures=False)
        )
        if count < MIN_POINTS:
            names.append(objective.oracle)
    return names


def _proposal_task(
    run: CampaignRun,
    index: int,
    k: int,
    proposal: Proposal,
    name: str,
    survivors: Sequence[Candidate],
    values: dict[str, float],
) -> list[EvaluationTask]:
    chosen = oracle_config(run.config, name)
    if is_cheap(chosen):
        return []
    if chosen.type == ExperimentOracle.type_name:
        request_lab(run, index, proposal)
        return []
    own = [c for c in survivors if c.provenance.get("proposal_index") == k]
    if not own:
        return []
    best = max(own, key=lambda c: values.get(c.content_hash, -math.inf))
    return [EvaluationTask(chosen.name, best.content_hash)]


def request_lab(run: CampaignRun, index: int, proposal: Proposal) -> None:
    """File a lab request for a proposal (once per iteration and composition)."""
    lab = oracle_instance(oracle_config(run.config, proposal.oracle or ""))
    assert isinstance(lab, ExperimentOracle)
    for request in run.store.lab_requests():
        if request.iteration == index and _same(request.composition, proposal.composition):
            return
    run.store.add_lab_request(
        lab.request(
            proposal.composition,
            reason=proposal.reason,
            decision={"score": proposal.score, "mean": proposal.mean, "sigma": proposal.sigma},
            iteration=index,
        )
    )


def _same(a: dict[str, float], b: dict[str, float], tolerance: float = 1e-6) -> bool:
    return all(abs(a.get(el, 0.0) - b.get(el, 0.0)) <= tolerance for el in {*a, *b})


def evaluate_here(run: CampaignRun, index: int) -> TaskRunner:
    """A :data:`TaskRunner` that calls the oracles one after another in this process."""

    def run_tasks(tasks: list[EvaluationTask]) -> dict[str, int]:
        evaluations = (
            evaluate(
                run.store, run.config, oracle_config(run.config, t.oracle), t.candidate_hash, index
            )
            for t in tasks
        )
        return dict(Counter("skipped" if e is None else e.status for e in evaluations))

    return run_tasks


def evaluate_iteration(
    run: CampaignRun, index: int, candidate_hashes: Sequence[str], run_tasks: TaskRunner
) -> str:
    """The oracle half of iteration ``index``: gate its candidates (the energy gate's oracle call
    scores a structure), run the cheap oracles on the survivors and the dear ones its proposals
    chose (through ``run_tasks``), craft cells by local search (``generator.local_search``),
    label where the campaign's potential disagrees most and refit it when its labels grew
    (``mlp``), and record the best values;
    returns a log line. Every step is idempotent, so a resumed
    iteration redoes nothing finished."""
    started = time.perf_counter()
    candidates = [c for h in candidate_hashes if (c := run.store.candidate(h)) is not None]
    survivors = gate(run, index, candidates, run_tasks)
    cheap = run_tasks(cheap_tasks(run, survivors))
    dear = run_tasks(expensive_tasks(run, index, acquire(run, index), survivors))
    crafted = craft(run, index, run_tasks)
    labelled = run_tasks(labelling_tasks(run, index))
    potential = refit_potential(run, index) if run.config.mlp is not None else None
    best = record(run, index, {"evaluate": time.perf_counter() - started})
    searches: list[dict[str, Any]] = crafted["searches"] if crafted else []
    calls = sum(int(search.get("calls", 0)) for search in searches)
    return (
        f"iteration {index}: {len(survivors)} of {len(candidates)} candidates passed the gate; "
        f"cheap {cheap}, expensive {dear}"
        + (f"; local search {calls} call(s) from {len(searches)} cell(s)" if crafted else "")
        + (f"; labelled where the committee disagrees {labelled}" if any(labelled.values()) else "")
        + (f"; potential {potential.version.name} refitted" if potential else "")
        + f"; best {best}"
    )


def evaluate_and_finish(
    run: CampaignRun, index: int, candidate_hashes: Sequence[str]
) -> tuple[str, float]:
    """The oracle half of iteration ``index`` in this process, one call after another
    (:func:`evaluate_iteration`), then the iteration is done: what a worker runs beside the
    loop with ``execution.overlap``. Returns the log line and the half's wall time (s)."""
    started = time.perf_counter()
    line = evaluate_iteration(run, index, candidate_hashes, evaluate_here(run, index))
    elapsed = time.perf_counter() - started
    finish_iteration(run, index, {})
    return line, elapsed
