"""A generator prior for a chemical family: a corpus of glasses from melt-quench trajectories,
the Cond-CDVAE trained on it, and a data card.

Each campaign would otherwise train its generator from scratch on its own few seed cells;
seed 001 trained on 1,150 structures, and seed 003's database is built from melt-quench runs.
One melt-quench yields many glass configurations: the supercooled liquid and the glass are
sampled every ``every_ps`` (:class:`oracles.md.SnapshotPlan`), and each sample is relaxed with
the same potential (its inherent structure), which makes it a training structure with an
energy. Compositions fill the family's composition space (:func:`prior_compositions`).

Folder of a prior (``amloop generator pretrain``; a campaign names it as ``generator.prior``)::

    PRIOR/corpus/run-NNN.extxyz   relaxed snapshots of melt-quench NNN (kept: resumable)
    PRIOR/corpus/run-NNN.json     its composition, cost (core-s) or failure
    PRIOR/hparams.json, model.pt  the trained generator (:meth:`CondCDVAE.save`)
    PRIOR/card.json, card.md      the data card

Units: energies in eV/atom, times in ps, temperatures in K, costs in core-seconds.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from ase.io import read, write
from pymatgen.core import Structure
from pymatgen.io.ase import AseAtomsAdaptor

from amloop.generator.cdvae import HPARAMS_FILE, WEIGHTS_FILE, CondCDVAE
from amloop.generator.config import CondCDVAEConfig
from amloop.generator.train import RESUME_FILE
from amloop.oracles.base import OracleFailed
from amloop.oracles.md import (
    Deadline,
    MDOracle,
    SnapshotPlan,
    random_packing,
    run_melt_quench,
)
from amloop.oracles.md.refine import RefineProtocol, refine_cell
from amloop.state.composition import formula
from amloop.state.config import CampaignConfig, ConfigError
from amloop.state.files import atomic_path

CORPUS_DIR = "corpus"
CARD_JSON, CARD_MD = "card.json", "card.md"
#: Cost and metrics of the prior's training, written when it finished.
TRAINING_FILE = "training.json"
#: Dirichlet draws the space-filling design picks its compositions from.
DESIGN_POOL = 4096
#: The property the corpus carries: relaxed energy per atom under the prior's potential.
ENERGY = "energy_per_atom"


def prior_compositions(config: CampaignConfig, n: int, seed: int = 0) -> list[dict[str, float]]:
    """``n`` compositions spread over the campaign's composition space: uniform draws on the
    simplex within ``bounds``, then greedy farthest-point selection (maximin) from the centre
    of the draws; fractions rounded to 0.01."""
    rng = np.random.default_rng(seed)
    elements = config.elements
    low = np.array([config.element_bounds(el)[0] for el in elements])
    high = np.array([config.element_bounds(el)[1] for el in elements])
    pool: list[np.ndarray] = []
    while len(pool) < DESIGN_POOL:
        draws = rng.dirichlet(np.ones(len(elements)), size=DESIGN_POOL)
        pool.extend(draws[np.all((draws >= low) & (draws <= high), axis=1)])
    points = np.array(pool[:DESIGN_POOL])
    chosen = [int(np.argmin(np.linalg.norm(points - points.mean(0), axis=1)))]
    distance = np.linalg.norm(points - points[chosen[0]], axis=1)
    while len(chosen) < n:
        chosen.append(int(np.argmax(distance)))
        distance = np.minimum(distance, np.linalg.norm(points - points[chosen[-1]], axis=1))
    return [
        {el: round(float(x), 2) for el, x in zip(elements, points[k], strict=True) if x >= 0.005}
        for k in chosen
    ]


@dataclass(frozen=True)
class CorpusRun:
    """One melt-quench of the corpus: its composition and what came of it."""

    index: int
    composition: dict[str, float]
    n_structures: int
    core_s: float
    error: str | None = None


def build_corpus(
    folder: Path,
    config: CampaignConfig,
    md: MDOracle,
    compositions: Sequence[dict[str, float]],
    *,
    snapshots: SnapshotPlan,
    seed: int = 0,
    progress: Callable[[int, int, str], None] | None = None,
) -> list[CorpusRun]:
    """Melt-quench every composition with ``md``'s engine and protocol (``cell.n_atoms``
    atoms), keep ``snapshots`` of each run, relax each with the same engine, and write them to
    ``folder/corpus``. Resumable: a run whose files exist is not redone; a failed run is kept
    as failed with its reason (and not retried)."""
    corpus = folder / CORPUS_DIR
    corpus.mkdir(parents=True, exist_ok=True)
    runs = []
    for k, composition in enumerate(compositions):
        record = corpus / f"run-{k:03d}.json"
        if not record.is_file():
            _melt_quench_run(corpus, k, config, md, composition, snapshots, seed + k)
        runs.append(CorpusRun(**json.loads(record.read_text())))
        if progress is not None:
            progress(k + 1, len(compositions), formula(composition))
    return runs


def _melt_quench_run(
    corpus: Path,
    index: int,
    config: CampaignConfig,
    md: MDOracle,
    composition: dict[str, float],
    snapshots: SnapshotPlan,
    seed: int,
) -> None:
    cpu0 = time.process_time()
    frames = []
    error = None
    try:
        start = random_packing(composition, config.cell.n_atoms, seed=seed)
        with md.make_engine(start) as engine:
            report = run_melt_quench(
                engine, md.protocol, np.random.default_rng(seed), Deadline(md.timeout_s), snapshots
            )
        for snapshot in report.snapshots:
            relaxed = refine_cell(
                snapshot.structure,
                md.make_engine,
                RefineProtocol(anneal_ps=0, pressure_tolerance_GPa=None),
            )
            atoms = AseAtomsAdaptor.get_atoms(relaxed.structure)
            atoms.info.update(
                {
                    ENERGY: relaxed.energy_after,
                    "temperature_K": snapshot.temperature_K,
                    "time_ps": snapshot.time_ps,
                    "run": index,
                }
            )
            frames.append(atoms)
    except OracleFailed as exc:
        error = str(exc)
    if frames:
        with atomic_path(corpus / f"run-{index:03d}.extxyz") as partial:
            write(partial, frames, format="extxyz")
    run = CorpusRun(index, composition, len(frames), time.process_time() - cpu0, error)
    with atomic_path(corpus / f"run-{index:03d}.json") as partial:  # written last: run done
        partial.write_text(json.dumps(asdict(run)))


def corpus_pairs(folder: Path) -> list[tuple[Structure, dict[str, float]]]:
    """``(structure, {"energy_per_atom": eV/atom})`` of every structure in ``folder/corpus``."""
    pairs = []
    for path in sorted((folder / CORPUS_DIR).glob("run-*.extxyz")):
        for atoms in read(path, index=":", format="extxyz"):
            pairs.append(
                (AseAtomsAdaptor.get_structure(atoms), {ENERGY: float(atoms.info[ENERGY])})
            )
    return pairs


def write_card(folder: Path, card: dict[str, Any]) -> Path:
    """Write ``card.json`` and a readable ``card.md`` into the prior's folder; returns the
    Markdown file."""
    with atomic_path(folder / CARD_JSON) as partial:
        partial.write_text(json.dumps(card, indent=2))
    lines = [f"# Generator prior: {card['family']}", ""]
    for key, value in card.items():
        shown = json.dumps(value) if isinstance(value, dict | list) else value
        lines.append(f"- **{key}**: {shown}")
    with atomic_path(folder / CARD_MD) as partial:
        partial.write_text("\n".join(lines) + "\n")
    return folder / CARD_MD


def energy_labels_apply(config: CampaignConfig, md: MDOracle) -> bool:
    """Whether the corpus energies are the campaign's ``energy_per_atom``: an objective of that
    name whose oracle runs the same LAMMPS potential as the prior's md oracle."""
    objective = next((o for o in config.objectives if o.property == ENERGY), None)
    if objective is None or objective.oracle is None or md.potential is None:
        return False
    scorer = next(o for o in config.oracles if o.name == objective.oracle)
    return scorer.type == "lammps" and scorer.options.get("potential") == md.options.potential


def pretrain(
    folder: Path,
    config: CampaignConfig,
    md: MDOracle,
    *,
    n_compositions: int,
    snapshots: SnapshotPlan,
    epochs: int,
    preset: str = "tiny",
    seed: int = 0,
    progress: Callable[[int, int, str], None] | None = None,
) -> Path:
    """Build the corpus (:func:`build_corpus` over :func:`prior_compositions`), train the
    Cond-CDVAE on it (resumable) and write the data card; returns ``card.md``.

    The property head has the campaign's objectives; the corpus labels ``energy_per_atom``
    only where :func:`energy_labels_apply` (the others are learnt in the campaign's
    fine-tuning, which then sets their scale).

    Raises:
        RuntimeError: fewer than 2 structures in the corpus.
    """
    compositions = prior_compositions(config, n_compositions, seed)
    runs = build_corpus(
        folder, config, md, compositions, snapshots=snapshots, seed=seed, progress=progress
    )
    labelled = energy_labels_apply(config, md)
    pairs = [(s, values if labelled else {}) for s, values in corpus_pairs(folder)]
    if len(pairs) < 2:
        raise RuntimeError(
            f"the corpus in {folder / CORPUS_DIR} holds {len(pairs)} structure(s); every "
            "melt-quench failed? see its run-NNN.json files"
        )
    if not (folder / TRAINING_FILE).is_file():
        cpu0 = time.process_time()
        model = CondCDVAE(CondCDVAEConfig.preset(preset), seed=seed)
        history = model.fit(
            pairs,
            epochs=epochs,
            checkpoint_dir=folder,
            resume=(folder / RESUME_FILE).is_file(),
            elements=config.elements,
            property_names=[o.property for o in config.objectives],
        )
        training = {
            "core_s": time.process_time() - cpu0,
            "epochs": len(history.records),
            "best_epoch": history.best_epoch,
            "best_val_loss": history.best_val_loss,
            "n_structures": len(pairs),
        }
        with atomic_path(folder / TRAINING_FILE) as partial:
            partial.write_text(json.dumps(training))
        (folder / RESUME_FILE).unlink(missing_ok=True)  # the resume file: training is done
    training = json.loads((folder / TRAINING_FILE).read_text())
    corpus_core_s = sum(run.core_s for run in runs)
    card = {
        "family": "-".join(config.elements),
        "elements": config.elements,
        "composition_bounds": {el: list(config.element_bounds(el)) for el in config.elements},
        "compositions": len(compositions),
        "atoms_per_cell": config.cell.n_atoms,
        "potential": {k: v for k, v in md.provenance().items() if k not in ("parameters", "host")},
        "quench_protocol": asdict(md.protocol),
        "snapshots": asdict(snapshots),
        "melt_quenches": {
            "done": sum(run.error is None for run in runs),
            "failed": [f"run {run.index}: {run.error}" for run in runs if run.error],
        },
        "structures": len(pairs),
        "energy_labels": labelled,
        "preset": preset,
        "properties": [o.property for o in config.objectives],
        "training": training,
        "cost_core_s": {
            "corpus": corpus_core_s,
            "training": training["core_s"],
            "total": corpus_core_s + training["core_s"],
        },
    }
    return write_card(folder, card)


def check_prior(config: CampaignConfig) -> None:
    """Refuse a ``generator.prior`` that is not a finished prior of the campaign's elements
    (read from its files; nothing is loaded).

    Raises:
        ConfigError: no such folder, no trained generator in it, or an element it lacks.
    """
    if config.generator.prior is None:
        return
    folder = Path(config.generator.prior)
    hparams, weights = folder / HPARAMS_FILE, folder / WEIGHTS_FILE
    if not (hparams.is_file() and weights.is_file()):
        raise ConfigError(
            f"generator.prior: no trained generator in {folder} (hparams.json and model.pt); "
            "build one with `amloop generator pretrain` (e.g. `make prior-cuzr`)"
        )
    try:
        known = json.loads(hparams.read_text())["spec"]["elements"]
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"generator.prior: {hparams} is not a generator's: {exc}") from None
    if missing := sorted(set(config.elements) - set(known)):
        raise ConfigError(
            f"generator.prior: the prior in {folder} knows {', '.join(known)}, not "
            f"{', '.join(missing)}; use a prior of this chemical family"
        )


def prior_cost_core_s(folder: Path) -> float:
    """The whole cost (core-s) of building the prior in ``folder`` (corpus and training), from
    its card; 0 for a generator folder without a card (trained elsewhere, cost unknown)."""
    card = folder / CARD_JSON
    if not card.is_file():
        return 0.0
    return float(json.loads(card.read_text())["cost_core_s"]["total"])
