"""The crafting step (seed 001): atom-swap local searches from the best cells after an iteration's calls, every child stored and scored within the budget."""

from __future__ import annotations

from collections import Counter
from typing import Any

from amloop.loop.steps.calls import EvaluationTask, TaskRunner
from amloop.loop.steps.gate import judge
from amloop.loop.steps.run import CampaignRun, iteration_seed, oracle_config, oracle_instance
from amloop.loop.steps.sampling import best_structures
from amloop.oracles.base import Oracle, OracleFailed
from amloop.oracles.local_search import local_search
from amloop.state.config import OracleConfig
from amloop.state.schema import Candidate, Evaluation

#: Iteration-metadata key of the crafting step: its starts (chosen once) and its outcome.
CRAFT_KEY = "local_search"


def craft(run: CampaignRun, index: int, run_tasks: TaskRunner) -> dict[str, Any] | None:
    """Run ``generator.local_search`` after iteration ``index``'s calls: from each of the
    ``starts`` best cells for the first objective that fewer than ``patience`` earlier searches
    left unimproved (a search that improved goes on from its better child, the campaign's new
    best; a cell ``patience`` searches could not improve is left for the next best; chosen once
    and kept in the iteration's metadata, so a resumed step searches from the same cells),
    ``steps`` steps of
    ``swaps_per_step`` unlike-atom swaps. Each child is stored as a ``local_search``
    candidate of iteration ``index`` (``parent_hash``: the cell it was swapped from); a step's
    children are scored together by the objective's oracle through ``run_tasks`` (here, or on
    the flow's workers; within the budget; a finished call is never redone); with an energy
    gate, each scored child gets the gate's energy verdict and a rejected one is never kept
    (nor is a rejected cell ever a start). Returns the
    summary stored in the metadata, or ``None`` when crafting is off."""
    settings = run.config.generator.local_search
    if settings is None:
        return None
    record = next(r for r in run.store.iterations() if r.index == index)
    summary = dict(record.metadata.get(CRAFT_KEY, {}))
    if "searches" in summary:
        return summary
    objective = run.config.objectives[0]
    oracle_cfg = _objective_oracle(run)
    if "starts" not in summary:
        exhausted = exhausted_starts(
            [r.metadata for r in run.store.iterations() if r.index < index], settings.patience
        )
        starts = best_structures(
            run, settings.starts, before_iteration=index + 1, exclude=exhausted
        )
        summary = {"starts": [start_hash for start_hash, _ in starts]}
        run.store.update_iteration(index, metadata={CRAFT_KEY: summary})
    oracle = oracle_instance(oracle_cfg)
    assert isinstance(oracle, Oracle)
    energy_gated = run.config.quality.energy_oracle is not None

    def store_and_evaluate(children: list[Candidate]) -> list[Evaluation | None]:
        provenance = {"builder": "local_search", "objective": objective.property}
        hashes = [
            run.store.add_candidate(
                child.model_copy(update={"iteration": index, "provenance": provenance})
            ).content_hash
            for child in children
        ]
        run_tasks([EvaluationTask(oracle_cfg.name, h) for h in hashes])
        finished = {
            e.candidate_hash: e
            for e in run.store.evaluations(oracle=oracle_cfg.name, candidates=hashes)
            if e.status in ("done", "failed")
        }
        # the energy rule on every scored child at once (a swap can raise the energy above the
        # gate's threshold): a rejected child counts as failed, so the search never keeps it
        scored = [h for h in hashes if h in finished and finished[h].status == "done"]
        verdicts = (
            judge(run, index, run.store.candidates(hashes=scored), structural=False)
            if energy_gated and scored
            else {}
        )
        return [
            finished[h].model_copy(update={"status": "failed", "error": "rejected by the gate"})
            if verdicts.get(h, "done") != "done"
            else finished.get(h)
            for h in hashes
        ]

    searches: list[dict[str, Any]] = []
    for k, start_hash in enumerate(summary["starts"]):
        start = run.store.candidate(start_hash)
        scored = run.store.evaluations(
            oracle=oracle_cfg.name, status="done", candidates=[start_hash]
        )
        if start is None or not scored:
            continue
        try:
            result = local_search(
                start,
                oracle,
                objective=objective.property,
                direction="max" if objective.direction == "maximize" else "min",
                n_swaps=settings.swaps_per_step,
                n_steps=settings.steps,
                rng=iteration_seed(run.config, index) + k,
                start_evaluation=scored[0],
                evaluate=store_and_evaluate,
            )
        except OracleFailed as exc:  # the start has no value of the objective after all
            searches.append({"start": start_hash, "error": str(exc)})
            continue
        searches.append(
            {
                "start": start_hash,
                "start_value": result.start_value,
                "best_value": result.best_value,
                "best": result.best.content_hash,
                "calls": len(result.evaluated) - 1,
                "stopped_early": result.stopped_early,
            }
        )
    summary = {**summary, "searches": searches}
    run.store.update_iteration(index, metadata={CRAFT_KEY: summary})
    return summary


def exhausted_starts(metadata: list[dict[str, Any]], patience: int) -> set[str]:
    """Content hashes of the cells that at least ``patience`` crafting searches (in the
    iterations' ``metadata``) left unimproved, or that a search could not start from."""
    unimproved: Counter[str] = Counter()
    for record in metadata:
        for search in record.get(CRAFT_KEY, {}).get("searches", []):
            if "error" in search:  # no value to start from: passed over at once
                unimproved[search["start"]] += patience
            elif search["best_value"] == search["start_value"]:
                unimproved[search["start"]] += 1
    return {start for start, n in unimproved.items() if n >= patience}


def _objective_oracle(run: CampaignRun) -> OracleConfig:
    """The oracle that scores the first objective: the one it names, else the first oracle
    that computes its property."""
    objective = run.config.objectives[0]
    if objective.oracle is not None:
        return oracle_config(run.config, objective.oracle)
    for candidate in run.config.oracles:
        source = oracle_instance(candidate)
        if isinstance(source, Oracle) and objective.property in source.properties:
            return candidate
    raise ValueError(f"no oracle computes {objective.property}: local search needs one")
