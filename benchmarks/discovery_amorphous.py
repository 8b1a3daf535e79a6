"""Discovery benchmark, task B: amorphous Cu-Zr, two objectives, hypervolume vs oracle calls.

The campaign is ``examples/cuzr-glass.yaml`` at the benchmark's size: Cu-Zr cells (Cu 0.3-0.8)
with the Mendelev ``CuZr_mm.eam.fs`` EAM, maximise the LAMMPS Voigt bulk modulus B (GPa) and
minimise the relaxed energy per atom E (eV/atom) of the same call. Progress is the hypervolume
(BoTorch's ``Hypervolume``) of the points (B, -E) found so far above a fixed reference point,
the nadir of a reference pool, as a share of the pool's own hypervolume.

Every strategy of one seed starts from the same seed set (``loop.steps.seed``: cells
melt-quenched with LAMMPS MD at grid compositions, each scored by one LAMMPS call; built once
per seed and copied, so every strategy sees identical cells) and has the same budget of LAMMPS
calls, seed calls included:

- ``random``: random PACKMOL packings (closest pair ``quality.min_distance``) at random
  compositions, relaxed by the oracle;
- ``local_search``: seed 001's atom-swap search on B (a single-objective method: E is whatever
  its structures have) from the seed cell of highest B;
- ``composition_bo``: qLogNEHVI on composition alone, a random packing at each proposal;
- ``amloop``: the full loop (BO over composition + PDM, tiny Cond-CDVAE, latent optimisation,
  quality gate), as in task A;
- ``amloop_prior``: the same loop starting from a Cu-Zr generator prior of the task's cell size
  (:func:`size_prior`: 16 melt-quenches with the benchmark's protocol, a snapshot every
  0.25 ps below 1000 K; built once per size, cached, its cost printed) with every generated cell
  refined before the gate (``generator.refine``: relax, 2 ps at 300 K, relax).

Reference pool (cached in ``build/bench/discovery/``): ``pool_orderings`` random packings and one
melt-quenched cell per 0.1-grid composition, plus local searches on B from the cells of highest
B. Printed: calls to reach 95/99/100 % of the pool's hypervolume (median [IQR] over seeds), the
hypervolume share at fixed budgets, the ratios of the loop's calls to the other strategies',
and the loop's overhead share; written to ``benchmarks/results/discovery-b-<size>/``.

Usage: ``python -m benchmarks.discovery_amorphous`` (CI size) or ``--full``.
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
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
from botorch.utils.multi_objective.hypervolume import Hypervolume
from botorch.utils.multi_objective.pareto import is_non_dominated

from amloop.generator.solid_solution import composition_grid
from amloop.loop import steps
from amloop.loop.prior import CARD_JSON, pretrain
from amloop.loop.steps import CampaignRun
from amloop.oracles.base import OracleFailed
from amloop.oracles.local_search import local_search
from amloop.oracles.md import MDOracle, SnapshotPlan, melt_quench, random_packing
from amloop.state.config import CampaignConfig, RefineConfig
from amloop.state.database import dispose_engines
from amloop.state.schema import Candidate, Evaluation
from amloop.state.store import CampaignStore
from benchmarks.discovery import (
    CACHE,
    CurvePlot,
    RunResult,
    Size,
    cached_reference,
    composition_search,
    format_speedup,
    lammps,
    oracle_calls,
    overhead_share,
    parse_invocation,
    plot,
    pool_settings,
    produced_by,
    run_all,
    run_loop,
    save_runs,
    speedup,
    summary_rows,
    swap_search_from,
    table,
    timed,
)
from benchmarks.discovery import campaign_config as discovery_config

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "cuzr-glass.yaml"
RESULTS = REPO / "benchmarks" / "results"
ORACLE = "lammps_eam"
BULK, ENERGY = "bulk_modulus", "energy_per_atom"
#: Swaps per local-search step (seed 001).
N_SWAPS = 10
REFERENCE_SEED = 54321
#: Snapshots of the prior's melt-quenches (the benchmark's quench is short: 1.4 ps below 1000 K).
PRIOR_SNAPSHOTS = SnapshotPlan(every_ps=0.25, below_K=1000.0)
STRATEGIES_B = ("random", "local_search", "composition_bo", "amloop", "amloop_prior")
#: Melt-quench of the benchmark's seed and pool cells (faster than the example's 100 K/ps).
MD_PROTOCOL = {
    "melt_ps": 2,
    "volume_ps": 1,
    "quench_rate_K_per_ps": 500,
    "anneal_ps": 1,
}


#: Sizes (:class:`benchmarks.discovery.Size`; ``pool_orderings``: random packings per grid
#: composition, besides one melt-quenched cell).
CI = Size("ci", 32, 2, 24, (8, 16, 24), 6, 2, 2, 100, 20, 5, 4, 2, 2)
FULL = Size("full", 54, 3, 200, (50, 100, 200), 16, 4, 3, 200, 20, 5, 4, 3, 5)


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
    size: Size,
    seed: int,
    *,
    strategy: str = "qLogNEHVI",
    overlap: bool = False,
    prior: bool = False,
) -> CampaignConfig:
    """``examples/cuzr-glass.yaml`` at the benchmark's size
    (:func:`benchmarks.discovery.campaign_config`) with the faster melt-quench
    :data:`MD_PROTOCOL`; with ``prior``, the generator starts from :func:`size_prior` and
    generated cells are refined with the md oracle's engine."""
    config = discovery_config(size, seed, strategy=strategy, example=EXAMPLE, overlap=overlap)
    for oracle in config.oracles:
        if oracle.type == "md":
            oracle.options |= MD_PROTOCOL
    if prior:
        config.generator.prior = str(size_prior(size))
        config.generator.refine = RefineConfig(oracle="md")
    return config


def size_prior(size: Size) -> Path:
    """The Cu-Zr prior of ``size``'s cells (built on first use, then cached; resumable)."""
    folder = CACHE / f"prior-b-{size.name}-{size.n_atoms}"
    if not (folder / CARD_JSON).is_file():
        config = campaign_config(size, REFERENCE_SEED)
        md = steps.oracle_instance(steps.oracle_config(config, "md"))
        assert isinstance(md, MDOracle)
        pretrain(folder, config, md, n_compositions=16, snapshots=PRIOR_SNAPSHOTS, epochs=100)
    return folder


# ----------------------------------------------------------------------------- scores


def point(evaluation: Evaluation) -> list[float] | None:
    """``[B (GPa), -E (eV/atom)]`` of a successful call (both maximised), else ``None``."""
    props = evaluation.properties
    if evaluation.status != "done" or BULK not in props or ENERGY not in props:
        return None
    return [props[BULK].value, -props[ENERGY].value]


def hypervolume_so_far(
    values: Sequence[list[float] | None], budget: int, ref: list[float]
) -> np.ndarray:
    """Hypervolume (GPa·eV/atom) of the points found after each of ``budget`` calls above
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


# ----------------------------------------------------------------------------- campaigns


@contextmanager
def seeded_campaign(config: CampaignConfig, size: Size) -> Iterator[CampaignRun]:
    """A throw-away campaign holding the seed set of ``config.seed`` (built once per seed and
    size in ``build/bench/discovery/``, then copied)."""
    CACHE.mkdir(parents=True, exist_ok=True)
    template = CACHE / f"seedset-{config.name}-{size.name}-{size.n_atoms}-{size.n_initial}.sqlite"
    if not template.is_file():
        with tempfile.TemporaryDirectory(dir=CACHE, prefix="seed-") as folder:
            path = Path(folder) / "store.sqlite"
            store = CampaignStore.create(
                f"sqlite:///{path}", config.name, config.model_dump(mode="json")
            )
            steps.seed(CampaignRun(store, config, Path(folder)))
            dispose_engines()  # checkpoints the WAL into the file
            shutil.copy(path, template)
    with tempfile.TemporaryDirectory(dir=CACHE, prefix="run-") as folder:
        path = Path(folder) / "store.sqlite"
        shutil.copy(template, path)
        try:
            yield CampaignRun(
                CampaignStore.open(f"sqlite:///{path}", config.name), config, Path(folder)
            )
        finally:
            dispose_engines()


def run_local_search(run: CampaignRun, timings: dict[str, float]) -> list[Evaluation]:
    """Seed 001's swap search on B from the seed cell of highest B."""
    seeds = oracle_calls(run, structures=True)
    scored = [(p[0], e) for e in seeds if (p := point(e)) is not None]
    _, start = max(scored, key=lambda pair: pair[0])
    with timed(timings, "oracle"):
        return swap_search_from(run, seeds, start, BULK, N_SWAPS)


def run_strategy(strategy: str, size: Size, seed: int) -> RunResult:
    """One strategy on one seed: the shared seed set, then the strategy until the budget is
    spent (or it stalls, :func:`benchmarks.discovery.composition_search`)."""
    functions = {
        "random": (composition_search, "random"),
        "local_search": (run_local_search, "qLogNEHVI"),
        "composition_bo": (composition_search, "qLogNEHVI"),
        "amloop": (run_loop, "qLogNEHVI"),
        "amloop_prior": (run_loop, "qLogNEHVI"),
    }
    function, acquisition = functions[strategy]
    timings: dict[str, float] = {}
    started = time.perf_counter()
    config = campaign_config(
        size,
        seed,
        strategy=acquisition,
        overlap=strategy.startswith("amloop"),
        prior=strategy == "amloop_prior",
    )
    with seeded_campaign(config, size) as run:
        trace = function(run, timings)
    wall = time.perf_counter() - started
    return RunResult(strategy, seed, [point(e) for e in trace[: size.budget]], wall, timings)


# ----------------------------------------------------------------------------- reference


def reference_pool(size: Size) -> ReferenceB:
    """Random packings and one melt-quenched cell per grid composition, then swap searches on
    B from the best cells; the reference point is the pool's nadir (see the module doc)."""
    started = time.perf_counter()
    config = campaign_config(size, REFERENCE_SEED)
    oracle = lammps(config)
    md = steps.oracle_instance(steps.oracle_config(config, "md"))
    assert isinstance(md, MDOracle)
    rng = np.random.default_rng(REFERENCE_SEED)
    pool: list[tuple[Candidate, Evaluation]] = []

    def score(structure_maker: str, composition: dict[str, float]) -> None:
        seed = int(rng.integers(2**31))
        try:
            if structure_maker == "melt_quench":
                structure = melt_quench(
                    composition, size.n_atoms, md.make_engine, md.protocol, seed=seed
                )
            else:
                structure = random_packing(
                    composition, size.n_atoms, tolerance_A=config.quality.min_distance, seed=seed
                )
        except OracleFailed as exc:  # an MD blow-up or no PACKMOL packing: that cell is missing
            print(f"  pool {structure_maker} {composition}: {exc}; skipped")
            return
        candidate = Candidate(structure=structure, origin="seed")
        pool.append((candidate, oracle.evaluate(candidate)))

    for composition in composition_grid(config.elements, dict(config.bounds), step=0.1):
        score("melt_quench", composition)
        for _ in range(size.pool_orderings):
            score("random_packing", composition)
    scored = sorted(
        ((p[0], c, e) for c, e in pool if (p := point(e)) is not None), key=lambda s: -s[0]
    )
    for _, candidate, evaluation in scored[: size.pool_starts]:
        result = local_search(
            candidate,
            oracle,
            objective=BULK,
            n_swaps=N_SWAPS,
            n_steps=size.pool_steps,
            rng=rng,
            start_evaluation=evaluation,
        )
        pool.extend(result.evaluated[1:])
    points = np.array([p for _, e in pool if (p := point(e)) is not None])
    span = points.max(axis=0) - points.min(axis=0)
    ref = (points.min(axis=0) - 0.01 * span).tolist()
    Y = torch.tensor(points, dtype=torch.float64)
    front = Y[is_non_dominated(Y)]
    return ReferenceB(
        hypervolume=Hypervolume(torch.tensor(ref, dtype=torch.float64)).compute(front),
        ref_point=ref,
        front=front.tolist(),
        calls=len(pool),
        wall_s=time.perf_counter() - started,
        pool=pool_settings(size),
    )


def reference(size: Size, *, refresh: bool = False) -> tuple[ReferenceB, Path]:
    """The cached reference pool of ``size`` (computed when missing or stale, or ``refresh``)."""
    path = CACHE / f"reference-b-{size.name}.json"
    return cached_reference(path, ReferenceB, reference_pool, size, refresh)


# ----------------------------------------------------------------------------- report


def ratio_lines(
    reached: dict[str, dict[float, list[int | None]]], runs: Sequence[RunResult], size: Size
) -> list[str]:
    """How many times fewer calls the loop needs than each other strategy to reach 95 % and
    99 % of the reference hypervolume, and its overhead share."""
    lines = []
    for fraction in (0.95, 0.99):
        for name in reached:
            if name == "amloop":
                continue
            value, lower_bound = speedup(
                reached[name][fraction], reached["amloop"][fraction], size.budget
            )
            lines.append(
                f"calls to {fraction:.0%} of the reference hypervolume, {name} / amloop: {format_speedup(value, lower_bound)}"
            )
    lines.append(f"amloop overhead: {overhead_share(runs):.1%} of wall time")
    return lines


def write_summary(
    path: Path,
    command: str,
    rows: dict[str, dict[str, str]],
    lines: list[str],
    ref: ReferenceB,
    size: Size,
    wall_s: float,
) -> None:
    """The Markdown summary of one task-B run."""
    text = [
        f"# Discovery benchmark, task B ({size.name} size)",
        "",
        produced_by(command, wall_s),
        "",
        f"Task B: amorphous Cu-Zr (Cu 0.3-0.8), {size.n_atoms}-atom cells, Mendelev EAM;"
        " maximise the LAMMPS Voigt bulk modulus B and minimise the relaxed energy per atom E."
        f" Every strategy of a seed starts from the same {size.n_initial} melt-quenched seed"
        f" cells and has {size.budget} LAMMPS calls, seed calls included; {size.seeds} seeds."
        " Progress: hypervolume of the (B, -E) points found so far above the reference point,"
        " as a share of the reference pool's hypervolume (cells: median [IQR] over seeds).",
        "",
        f"Reference: hypervolume {ref.hypervolume:.4f} GPa·eV/atom above the point"
        f" (B, -E) = ({ref.ref_point[0]:.2f} GPa, {ref.ref_point[1]:.4f} eV/atom), the nadir of"
        f" a pool of {ref.calls} calls (random packings and melt-quenched cells on the 0.1"
        " composition grid + swap searches on B); cached in"
        f" `build/bench/discovery/reference-b-{size.name}.json`.",
        "",
        *table(rows),
        "",
        "`HV@n`: hypervolume share after n calls; `overhead`: the share of the wall time in"
        " which no oracle call ran (amloop prepares each iteration while the previous one's"
        " calls run, `execution.overlap`); `loop s/call`: acquisition + generator time per"
        " oracle call, overlapped or not; `oracle s/call`: the wall time in which oracle calls"
        " (with gate and store) ran, per call. Task A's summary explains the columns.",
        "",
        "## Ratios",
        "",
        *[f"- {line}" for line in lines],
        "",
        "![hypervolume](hypervolume.png)",
        "",
    ]
    path.write_text("\n".join(text))


def main() -> None:
    """Run the reference pool (cached) and every strategy on every seed; print and write."""
    invocation = parse_invocation(__doc__.splitlines()[0], CI, FULL, STRATEGIES_B)
    size, strategies = invocation.size, invocation.strategies
    torch.set_num_threads(1)
    started = time.perf_counter()
    ref, ref_path = reference(size, refresh=invocation.refresh_reference)
    print(
        f"task B reference hypervolume {ref.hypervolume:.4f} above {ref.ref_point} from {ref.calls}"
        f" calls ({ref.wall_s:.0f} s when computed; {ref_path.relative_to(REPO)})",
        flush=True,
    )

    def share(result: RunResult) -> str:
        found = hypervolume_so_far(result.values, size.budget, ref.ref_point)[-1]
        return f"HV {found / ref.hypervolume:.3f} of the reference"

    prior_line = ""
    if "amloop_prior" in strategies:
        card = json.loads((size_prior(size) / CARD_JSON).read_text())
        prior_line = (
            f"amloop_prior's generator prior: {card['structures']} structures from "
            f"{card['melt_quenches']['done']} melt-quenches, {card['cost_core_s']['total']:.0f} "
            f"core-s to build (once; {size_prior(size).relative_to(REPO)})"
        )
        print(prior_line, flush=True)
    out = RESULTS / f"discovery-b-{size.name}"
    runs = run_all(invocation, run_strategy, share, out)
    wall = time.perf_counter() - started

    def share_curve(r: RunResult) -> np.ndarray:
        return hypervolume_so_far(r.values, size.budget, ref.ref_point) / ref.hypervolume

    rows, reached = summary_rows(
        runs, 1.0, size.checkpoints, share_curve, column="HV@{budget}", digits=3
    )
    print(
        f"\nCu-Zr {size.n_atoms}-atom glass, max B and min E, budget {size.budget} calls, {size.seeds} seeds"
    )
    print("\n".join(table(rows)))
    lines = ratio_lines(reached, runs, size) if "amloop" in strategies else []
    lines += [prior_line] if prior_line else []
    print("\n".join(lines))
    spec = CurvePlot(
        curve_of=share_curve,
        budget=size.budget,
        n_initial=size.n_initial,
        reference=1.0,
        reference_label="reference pool",
        ylabel="hypervolume of (B, -E) found / reference",
        title=f"Cu-Zr {size.n_atoms}-atom glass, {size.seeds} seeds (median, IQR)",
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
