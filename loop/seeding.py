"""The seed set: structures a campaign starts from, scored by its cheap oracles.

Crystalline campaigns get random solid solutions on a composition grid (seed paper 001:
20 orderings per composition, 54-atom cells); amorphous campaigns get melt-quenched cells
(seed paper 003, MPMorph protocol) made with the campaign's ``md`` oracle settings, or, with
``acquisition.seed_from: prior``, cells sampled from the generator prior (trained on such
melt-quenches) and refined with the campaign's cheap potential, at a fraction of the cost.

The plan is a list of recipes (composition + lattice + seed), a pure function of the config,
so an interrupted build re-creates the same plan: structures already made are found by their
recipe key in the candidates' provenance, finished and failed evaluations are kept, and only
what is missing runs.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pymatgen.core import Structure

from amloop.generator.cdvae import CondCDVAE
from amloop.generator.sample import Condition
from amloop.generator.solid_solution import composition_grid, random_solid_solution
from amloop.loop.budget import Budget
from amloop.oracles.base import Oracle, OracleFailed
from amloop.oracles.md import EngineFactory, MDOracle, melt_quench
from amloop.oracles.md.refine import RefineProtocol, refine_cell
from amloop.state.composition import formula
from amloop.state.config import CampaignConfig, OracleConfig
from amloop.state.schema import Candidate, Cost, Evaluation
from amloop.state.store import CampaignStore

#: Name under which a seed cell's melt-quench is recorded: an evaluation of that cell with the
#: melt-quench's cost (no properties).
MELT_QUENCH = "melt_quench"
#: ... and a seed cell's sampling from the generator prior and refinement.
PRIOR_SEED = "prior_seed"

#: Called after each recipe: (recipes finished, total, last message).
ProgressCallback = Callable[[int, int, str], None]


@dataclass(frozen=True)
class SeedRecipe:
    """How to make one seed structure, reproducibly."""

    composition: dict[str, float]
    lattice: str  # fcc | bcc | hcp | amorphous
    n_atoms: int
    seed: tuple[int, int, int]  # (campaign seed, grid index, replica)

    @property
    def key(self) -> str:
        """Stable identifier, stored in the candidate's provenance."""
        return f"{self.lattice}:{formula(self.composition)}:{self.n_atoms}:" + "-".join(
            map(str, self.seed)
        )


@dataclass
class SeedReport:
    """What one seed build did."""

    planned: int = 0
    structures_made: int = 0
    evaluated: int = 0
    skipped_done: int = 0
    failed: int = 0
    stopped_reason: str | None = None
    failures: list[str] = field(default_factory=list)
    failed_recipes: list[str] = field(default_factory=list)


def seed_plan(
    config: CampaignConfig, n: int, *, orderings: int = 20, step: float = 0.1
) -> list[SeedRecipe]:
    """``n`` seed recipes: ``orderings`` replicas (random orderings, or independent
    melt-quenches) per grid composition; with several lattices (``cell.lattice: [fcc, bcc]``)
    the recipes alternate between them in plan order (seed 001: half FCC, half BCC).

    Grid compositions (multiples of ``step`` inside the campaign's bounds) are visited in an
    order shuffled by ``config.seed``, so a larger ``n`` extends a smaller plan instead of
    replacing it. When the grid has fewer than ``n / orderings`` points, each composition gets
    more replicas.

    Raises:
        ValueError: no grid composition satisfies the bounds.
    """
    grid = composition_grid(config.elements, dict(config.bounds), step=step)
    if not grid:
        raise ValueError(f"no composition on a {step:g} grid satisfies the bounds {config.bounds}")
    visit = np.random.default_rng(config.seed).permutation(len(grid))
    per_composition = max(orderings, math.ceil(n / len(grid)))
    lattices = config.cell.lattices
    places = [
        (int(index), replica)
        for index in visit[: math.ceil(n / per_composition)]
        for replica in range(per_composition)
    ]
    return [
        SeedRecipe(
            grid[index],
            lattices[position % len(lattices)],
            config.cell.n_atoms,
            (config.seed, index, replica),
        )
        for position, (index, replica) in enumerate(places[:n])
    ]


@dataclass
class PriorSampler:
    """Amorphous seed cells from a generator prior (``acquisition.seed_from: prior``).

    Attributes:
        model: The prior (a trained Cond-CDVAE), its push-apart at the gate's closest distance.
        make_engine: The md oracle's engine factory that refines each sample (``None``: the
            decoded cell as it is).
        protocol: The refinement's settings (``generator.refine``).
        reject_crystallised: A sample that crystallised while refined fails its recipe.
        timeout_s: Wall-clock limit of one refinement (s).
    """

    model: CondCDVAE
    make_engine: EngineFactory | None = None
    protocol: RefineProtocol | None = None
    reject_crystallised: bool = True
    timeout_s: float = math.inf

    def make(self, recipe: SeedRecipe) -> Structure:
        """One sample at the recipe's composition and size, refined.

        Raises:
            OracleFailed: the refinement failed, or the cell crystallised (when rejected).
        """
        seed = int(np.random.default_rng(list(recipe.seed)).integers(2**31))
        condition = Condition(recipe.composition, n_atoms=recipe.n_atoms, phase="amorphous")
        (sample,) = self.model.sample([condition], 1, seed=seed)
        if self.make_engine is None:
            return sample.structure
        refined = refine_cell(
            sample.structure, self.make_engine, self.protocol, seed=seed, timeout_s=self.timeout_s
        )
        if refined.crystallised and self.reject_crystallised:
            raise OracleFailed(
                f"the prior's sample crystallised ({refined.phase}) during refinement"
            )
        return refined.structure


def make_structure(
    recipe: SeedRecipe, md: MDOracle | None = None, prior: PriorSampler | None = None
) -> Structure:
    """The structure a recipe describes: when amorphous, sampled from ``prior`` if given, else
    melt-quenched with ``md``'s engine.

    Raises:
        ValueError: an amorphous recipe without an MD oracle or a prior.
        OracleFailed: the melt-quench, or the prior sample's refinement, failed.
    """
    rng = np.random.default_rng(list(recipe.seed))
    if recipe.lattice != "amorphous":
        return random_solid_solution(recipe.composition, recipe.lattice, recipe.n_atoms, rng)  # type: ignore[arg-type]
    if prior is not None:
        return prior.make(recipe)
    if md is None:
        raise ValueError(
            "amorphous seed cells are melt-quenched with the campaign's md oracle: configure an "
            "oracle of type md (engine + potential or calculator)"
        )
    return melt_quench(
        recipe.composition,
        recipe.n_atoms,
        md.make_engine,
        md.protocol,
        seed=int(rng.integers(2**31)),
        timeout_s=md.timeout_s,
    )


def build_seed_set(
    store: CampaignStore,
    config: CampaignConfig,
    plan: list[SeedRecipe],
    oracles: list[tuple[OracleConfig, Oracle]],
    *,
    md: MDOracle | None = None,
    prior: PriorSampler | None = None,
    progress: ProgressCallback | None = None,
    skip: Collection[str] = (),
) -> SeedReport:
    """Make the plan's structures (amorphous ones from ``prior`` when given, else
    melt-quenched with ``md``) and score each with every oracle, resuming where a previous
    build stopped; stops cleanly when the budget would be exceeded. A structure whose
    melt-quench (or refinement) fails is reported (and logged, its key in ``failed_recipes``)
    and retried by the next build, unless its recipe key is in ``skip``.
    """
    report = SeedReport(planned=len(plan))
    for _, oracle in oracles:
        check = getattr(oracle, "check_elements", None)
        if check is not None:
            check(config.elements)  # OracleSetupError before any budget is spent
    made = {
        c.provenance["seed_recipe"]: c
        for c in store.candidates()
        if c.origin == "seed" and "seed_recipe" in c.provenance
    }
    finished = {
        (e.candidate_hash, e.oracle)
        for e in store.evaluations(structures=False)
        if e.status in ("done", "failed")
    }
    for index, recipe in enumerate(plan, start=1):
        candidate = made.get(recipe.key)
        if candidate is None and recipe.key in skip:
            continue
        if candidate is None:
            cpu0 = time.process_time()
            try:
                structure = make_structure(recipe, md, prior)
            except OracleFailed as exc:
                report.failed += 1
                report.failures.append(f"{recipe.key}: {exc}")
                report.failed_recipes.append(recipe.key)
                store.log_event(
                    "seed_failed", f"{recipe.key}: {exc}", payload={"recipe": recipe.key}
                )
                continue
            candidate = store.add_candidate(
                Candidate(
                    structure=structure,
                    origin="seed",
                    provenance={
                        "seed_recipe": recipe.key,
                        "builder": _builder(recipe, prior is not None),
                        "lattice": recipe.lattice,
                    },
                )
            )
            if recipe.lattice == "amorphous":  # the structure's cost, charged to the budget
                charge_structure(
                    store,
                    candidate,
                    time.process_time() - cpu0,
                    {"seed_recipe": recipe.key},
                    activity=PRIOR_SEED if prior is not None else MELT_QUENCH,
                )
            report.structures_made += 1
        message = candidate.formula
        for oracle_config, oracle in oracles:
            if (candidate.content_hash, oracle.name) in finished:
                report.skipped_done += 1
                continue
            reason = Budget.of(store, config).call_refused(oracle_config)
            if reason is not None:
                report.stopped_reason = reason
                store.log_event("seed_stopped", f"seed build stopped: {reason}")
                return report
            claimed = store.claim_evaluation(
                candidate.content_hash,
                oracle.name,
                oracle.fidelity,
                max_attempts=config.execution.max_attempts,
            )
            evaluation = (
                claimed
                if claimed is not None and claimed.status == "failed"
                else store.record_evaluation(oracle.evaluate(candidate))
            )
            report.evaluated += 1
            if evaluation.status == "failed":
                report.failed += 1
                report.failures.append(f"{candidate.formula} {oracle.name}: {evaluation.error}")
            message = f"{candidate.formula} {oracle.name}: {evaluation.status}"
        if progress is not None:
            progress(index, len(plan), message)
    return report


def charge_structure(
    store: CampaignStore,
    candidate: Candidate,
    core_s: float,
    provenance: dict[str, Any],
    iteration: int | None = None,
    activity: str = MELT_QUENCH,
) -> None:
    """Store the melt-quench (or, ``activity``: :data:`PRIOR_SEED`, the prior's sample and
    refinement) that made ``candidate`` (``core_s`` core-seconds) as a record of that name, so
    the campaign's budget and ``amloop status`` count it."""
    store.record_evaluation(
        Evaluation(
            candidate_hash=candidate.content_hash,
            oracle=activity,
            fidelity=0.0,
            status="done",
            cost=Cost(core_s=core_s),
            provenance=provenance,
            iteration=iteration,
            attempts=1,
        )
    )


def _builder(recipe: SeedRecipe, from_prior: bool) -> str:
    if recipe.lattice == "amorphous" and from_prior:
        return "generator prior (generator.sample, refined with oracles.md.refine)"
    if recipe.lattice == "amorphous":
        return "melt-quench (oracles.md, MPMorph protocol)"
    return f"random {recipe.lattice} solid solution (generator.solid_solution)"
