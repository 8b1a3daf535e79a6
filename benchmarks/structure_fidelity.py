"""Structure fidelity of a generator prior (issue 27): are generated + refined glasses as good as
melt-quenched ones, and how much cheaper?

For held-out compositions of the prior's family (a space-filling design with another seed than
the prior's corpus), three ways to make ``--cells`` glass cells each:

- ``melt-quench``: the prior's own protocol (the card's ``quench_protocol``, 100 K/ps), relaxed:
  the reference;
- ``generated+refined``: sampled from the prior (conditioned on the composition, the training
  set's mean PDM) and refined (:func:`oracles.md.refine.refine_cell`) with the same potential,
  as the campaign's ``generator.refine`` says (the config's; defaults without it);
- ``fast quench``: the same protocol with its times cut (melt, volume runs, anneal) and the
  quench rate raised until one cell costs about what one generated + refined cell costs.

Per cell: relaxed energy per atom (eV/atom), the LAMMPS Voigt bulk modulus (GPa) of the
campaign's objective oracle, CPU seconds; per method and composition, Dismai-Bench's d_rdf and
d_angle to the melt-quenched set. Printed: per method the mean over compositions of
``|mean - mean_melt-quench| / std_melt-quench`` for E and B (target: <= 1 for generated +
refined), the distances, and the cost per structure relative to the melt-quench (target: >= 10x
cheaper). Every finished composition is kept in ``build/bench/fidelity/`` (resumable).

Usage: ``python -m benchmarks.structure_fidelity --prior examples/priors/cuzr-glass
--config examples/cuzr-glass.yaml [--compositions 10 --cells 3]``; results in
``benchmarks/results/structure-fidelity.md``.

``--sweep`` (after a run of the same size): the refinement protocols of :data:`SWEEP` (hotter
anneals, anneals near the glass transition followed by a cooling at the melt-quench's rate) on
the same generated cells, against the kept melt-quench energies: how far a longer refinement
closes the energy gap and what it costs (``benchmarks/results/structure-fidelity-sweep.md``).
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse
import contextlib
import hashlib
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from amloop.generator.cdvae import CondCDVAE
from amloop.generator.quality import describe, set_distance
from amloop.generator.sample import Condition
from amloop.loop.prior import CARD_JSON, prior_compositions
from amloop.loop.steps.refinement import refine_protocol
from amloop.oracles.base import Oracle, OracleFailed
from amloop.oracles.md import MDOracle, MeltQuench, melt_quench
from amloop.oracles.md.refine import RefineProtocol, refine_cell
from amloop.oracles.registry import oracle_from_config
from amloop.state.composition import formula
from amloop.state.config import CampaignConfig, load_config
from amloop.state.schema import Candidate

REPO = Path(__file__).resolve().parents[1]
CACHE = REPO / "build" / "bench" / "fidelity"
RESULTS = REPO / "benchmarks" / "results" / "structure-fidelity.md"
METHODS = ("melt-quench", "generated+refined", "fast quench")
#: Seed of the held-out design (the prior's corpus used its own, 0 by default).
HELD_OUT_SEED = 1000


def fast_protocol(protocol: MeltQuench, factor: float) -> MeltQuench:
    """``protocol`` with every duration divided by ``factor`` and the quench rate multiplied by
    it (volume runs kept at 0.5 ps at least, the anneal at 0.2 ps)."""
    return replace(
        protocol,
        melt_ps=protocol.melt_ps / factor,
        volume_ps=max(0.5, protocol.volume_ps / factor),
        anneal_ps=max(0.2, protocol.anneal_ps / factor),
        quench_rate_K_per_ps=protocol.quench_rate_K_per_ps * factor,
        pressure_tolerance_GPa=max(protocol.pressure_tolerance_GPa, 1.5),
    )


def score(cell, md: MDOracle, lammps: Oracle) -> dict[str, float]:
    """Relaxed energy per atom (eV/atom) and bulk modulus (GPa) of one cell."""
    relaxed = refine_cell(cell, md.make_engine, RefineProtocol(anneal_ps=0.0))
    result = lammps.evaluate(Candidate(structure=relaxed.structure, origin="injected"))
    bulk = result.properties.get("bulk_modulus")
    return {
        "energy_per_atom": relaxed.energy_after,
        "bulk_modulus": float("nan") if bulk is None else bulk.value,
    }


def one_composition(
    k: int,
    composition: dict[str, float],
    config: CampaignConfig,
    prior: CondCDVAE,
    md: MDOracle,
    lammps: Oracle,
    n_cells: int,
) -> dict:
    """Make and score the cells of every method at one composition."""
    n_atoms = config.cell.n_atoms
    made: dict[str, list] = {}
    cost: dict[str, float] = {}

    def quench(method: str, protocol: MeltQuench, seed: int) -> None:
        cpu0 = time.process_time()
        made[method] = []
        for c in range(n_cells):
            with contextlib.suppress(OracleFailed):  # a failed quench: fewer cells
                made[method].append(
                    melt_quench(composition, n_atoms, md.make_engine, protocol, seed=seed + c)
                )
        cost[method] = time.process_time() - cpu0

    quench("melt-quench", md.protocol, 100 * k)
    cpu0 = time.process_time()
    sampled = prior.sample([Condition(composition=composition, n_atoms=n_atoms)], n_cells, seed=k)
    protocol = refine_protocol(config.generator.refine) if config.generator.refine else None
    made["generated+refined"] = [
        refine_cell(candidate.structure, md.make_engine, protocol, seed=k).structure
        for candidate in sampled
    ]
    cost["generated+refined"] = time.process_time() - cpu0
    per_cell = cost["generated+refined"] / max(n_cells, 1)
    factor = max(1.0, cost["melt-quench"] / max(n_cells, 1) / max(per_cell, 1e-3))
    quench("fast quench", fast_protocol(md.protocol, factor), 100 * k + 50)
    reference = describe(made["melt-quench"], config.elements)
    row: dict = {"composition": formula(composition), "fast_factor": factor, "methods": {}}
    for method, cells in made.items():
        scores = [score(cell, md, lammps) for cell in cells]
        described = describe(cells, config.elements) if cells else None
        row["methods"][method] = {
            "n": len(cells),
            "core_s_per_cell": cost[method] / max(len(cells), 1),
            "energy": [s["energy_per_atom"] for s in scores],
            "bulk": [s["bulk_modulus"] for s in scores],
            "d_rdf": None
            if described is None
            else set_distance(reference.rdf, described.rdf, n_bootstrap=0)[0],
            "d_angle": None
            if described is None
            else set_distance(reference.angles, described.angles, n_bootstrap=0)[0],
        }
    return row


Deviation = tuple[float, float, float]


def deviation(reference: dict, energies: list[float], bulks: list[float]) -> Deviation:
    """``(ΔE, abs ΔE / σ_E, abs ΔB / σ_B)`` of cells with these energies (eV/atom) and bulk
    moduli (GPa) from the melt-quenched ``reference`` cells (σ: their standard deviation)."""
    scaled = []
    for key, values in (("energy", energies), ("bulk", bulks)):
        ref = np.array(reference[key], float)
        sigma = np.nanstd(ref, ddof=1)
        gap = abs(np.nanmean(np.array(values, float)) - np.nanmean(ref))
        scaled.append(float(gap / sigma) if sigma > 0 else float("nan"))
    shift = float(np.nanmean(energies) - np.nanmean(reference["energy"]))
    return shift, scaled[0], scaled[1]


def deviation_cells(deviations: list[Deviation]) -> str:
    """Table cells of the mean ΔE, abs ΔE / σ_E and abs ΔB / σ_B over compositions."""
    shift, energy, bulk = np.array(deviations, float).T
    return f"{np.mean(shift):+.3f} | {np.nanmean(energy):.2f} | {np.nanmean(bulk):.2f}"


def summary(rows: list[dict]) -> str:
    """The Markdown table: per method, means over compositions of the energy shift from the
    melt-quench (eV/atom), of the deviations from it in its standard deviations, of the
    distances to it, and the cost."""
    lines = [
        "| method | cells | ΔE (eV/atom) | abs ΔE / σ_E | abs ΔB / σ_B | d_rdf | d_angle "
        "| core-s per cell | cheaper than melt-quench |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    reference_cost = np.mean([r["methods"]["melt-quench"]["core_s_per_cell"] for r in rows])
    for method in METHODS:
        deviations: list[Deviation] = []
        rdf, angle, cost, cells = [], [], [], 0
        for row in rows:
            ref, got = row["methods"]["melt-quench"], row["methods"][method]
            cells += got["n"]
            if not got["n"] or ref["n"] < 2:
                continue
            deviations.append(deviation(ref, got["energy"], got["bulk"]))
            rdf.append(got["d_rdf"])
            angle.append(got["d_angle"])
            cost.append(got["core_s_per_cell"])
        mean_cost = float(np.mean(cost)) if cost else float("nan")
        lines.append(
            f"| {method} | {cells} | {deviation_cells(deviations)} "
            f"| {np.mean(rdf):.2f} | {np.mean(angle):.4f} | {mean_cost:.1f} "
            f"| {reference_cost / mean_cost:.1f}x |"
        )
    return "\n".join(lines) + "\n"


#: Refinement protocols of ``--sweep``: name -> protocol (the first is the default's).
SWEEP = {
    "300 K, 2 ps (default)": RefineProtocol(),
    "600 K, 2 ps": RefineProtocol(anneal_temperature_K=600.0),
    "700 K 1 ps, cool 100 K/ps": RefineProtocol(
        anneal_ps=1.0, anneal_temperature_K=700.0, cooling_rate_K_per_ps=100.0
    ),
    "800 K 1 ps, cool 100 K/ps": RefineProtocol(
        anneal_ps=1.0, anneal_temperature_K=800.0, cooling_rate_K_per_ps=100.0
    ),
    "750 K 4 ps, cool 100 K/ps": RefineProtocol(
        anneal_ps=4.0, anneal_temperature_K=750.0, cooling_rate_K_per_ps=100.0
    ),
    "700 K 2 ps, cool 50 K/ps": RefineProtocol(
        anneal_ps=2.0, anneal_temperature_K=700.0, cooling_rate_K_per_ps=50.0
    ),
}


def sweep(
    rows: list[dict],
    compositions: list[dict[str, float]],
    prior: CondCDVAE,
    config: CampaignConfig,
    md: MDOracle,
    lammps: Oracle,
    n_cells: int,
    folder: Path,
) -> str:
    """The :data:`SWEEP` table: per refinement protocol, the generated cells' mean energy
    shift from the kept melt-quench cells (eV/atom), its size in their standard deviations,
    the same for B, and the cost per cell (sampling + refinement, core-s) against theirs."""
    lines = [
        "| refinement | ΔE (eV/atom) | abs ΔE / σ_E | abs ΔB / σ_B | core-s per cell "
        "| cheaper than melt-quench |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    reference_cost = np.mean([r["methods"]["melt-quench"]["core_s_per_cell"] for r in rows])
    for name, protocol in SWEEP.items():
        deviations: list[Deviation] = []
        cost = []
        key = hashlib.sha256(repr(protocol).encode()).hexdigest()[:10]
        for k, (row, composition) in enumerate(zip(rows, compositions, strict=True)):
            path = folder / f"sweep-{key}-{k:02d}.json"
            if not path.is_file():
                cpu0 = time.process_time()
                condition = Condition(composition=composition, n_atoms=config.cell.n_atoms)
                cells = [
                    refine_cell(c.structure, md.make_engine, protocol, seed=k).structure
                    for c in prior.sample([condition], n_cells, seed=k)
                ]
                per_cell = (time.process_time() - cpu0) / n_cells
                scores = [score(cell, md, lammps) for cell in cells]
                path.write_text(json.dumps({"core_s_per_cell": per_cell, "scores": scores}))
            got = json.loads(path.read_text())
            energies = [x["energy_per_atom"] for x in got["scores"]]
            bulks = [x["bulk_modulus"] for x in got["scores"]]
            deviations.append(deviation(row["methods"]["melt-quench"], energies, bulks))
            cost.append(got["core_s_per_cell"])
        lines.append(
            f"| {name} | {deviation_cells(deviations)} | {np.mean(cost):.1f} | {reference_cost / np.mean(cost):.1f}x |"
        )
        print(lines[-1], flush=True)
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prior", type=Path, default=REPO / "examples/priors/cuzr-glass")
    parser.add_argument("--config", type=Path, default=REPO / "examples/cuzr-glass.yaml")
    parser.add_argument("--compositions", type=int, default=10)
    parser.add_argument("--cells", type=int, default=3)
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument(
        "--sweep", action="store_true", help="compare the refinement protocols of SWEEP"
    )
    args = parser.parse_args()
    config = load_config(args.config)
    md = next(oracle_from_config(o) for o in config.oracles if o.type == "md")
    lammps = oracle_from_config(next(o for o in config.oracles if o.type == "lammps"))
    assert isinstance(md, MDOracle) and isinstance(lammps, Oracle)
    prior = CondCDVAE.load(args.prior)
    card = json.loads((args.prior / CARD_JSON).read_text())
    folder = CACHE / f"{args.prior.name}-{args.cells}"
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    compositions = prior_compositions(config, args.compositions, seed=HELD_OUT_SEED)
    for k, composition in enumerate(compositions):
        done = folder / f"composition-{k:02d}.json"
        if not done.is_file():
            row = one_composition(k, composition, config, prior, md, lammps, args.cells)
            done.write_text(json.dumps(row))
        rows.append(json.loads(done.read_text()))
        print(f"{k + 1}/{len(compositions)} {rows[-1]['composition']}", flush=True)
    prior_path = args.prior.resolve()
    shown = prior_path.relative_to(REPO) if prior_path.is_relative_to(REPO) else prior_path
    if args.sweep:
        table = sweep(rows, compositions, prior, config, md, lammps, args.cells, folder)
        text = (
            f"Refinement protocols on the generated cells of the prior `{shown}`, "
            f"{len(rows)} held-out compositions x {args.cells} cells, against the melt-quenched "
            f"cells of `benchmarks/results/structure-fidelity.md`; `python -m "
            f"benchmarks.structure_fidelity --compositions {args.compositions} --cells "
            f"{args.cells} --sweep` (2 cores)\n\n" + table
        )
        print(text)
        (args.output.parent / "structure-fidelity-sweep.md").write_text(text)
        return
    table = summary(rows)
    header = (
        f"Structure fidelity of the prior `{shown}` ({card['structures']} "
        f"structures, {card['cost_core_s']['total'] / 3600:.2f} core-h to build), "
        f"{len(rows)} held-out compositions x {args.cells} cells of {config.cell.n_atoms} atoms; "
        f"`python -m benchmarks.structure_fidelity --compositions {args.compositions} --cells "
        f"{args.cells}` (2 cores)\n\n"
    )
    per_composition = ["", "| composition | method | E (eV/atom) | B (GPa) | core-s/cell |",
                       "| --- | --- | --- | --- | ---: |"]  # fmt: skip
    for row in rows:
        for method, got in row["methods"].items():
            e, b = np.array(got["energy"], float), np.array(got["bulk"], float)
            per_composition.append(
                f"| {row['composition']} | {method} | {np.nanmean(e):.3f} ± {np.nanstd(e):.3f} "
                f"| {np.nanmean(b):.1f} ± {np.nanstd(b):.1f} | {got['core_s_per_cell']:.1f} |"
            )
    text = header + table + "\n".join(per_composition) + "\n"
    print(text)
    args.output.write_text(text)


if __name__ == "__main__":
    main()
