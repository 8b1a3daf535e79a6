"""Fitting the campaign's own potential: a committee of matgl potentials (M3GNet or TensorNet,
matgl's own trainer) on force labels, with one held-out split shared by every member.

A version is built in ``<root>/vNNN.partial`` and renamed to ``<root>/vNNN`` when every member
is trained and evaluated; a member already saved in the partial folder for the same labels
and settings is kept, so a fit killed at any moment goes on where it stopped.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from ase import units
from ase.calculators.calculator import Calculator
from pymatgen.io.ase import AseAtomsAdaptor

from amloop.oracles.campaign_potential import SUMMARY_FILE, committee_versions
from amloop.oracles.mlp.backends import package_version
from amloop.oracles.mlp.committee import CommitteeCalculator
from amloop.state.config import PotentialFitConfig
from amloop.state.schema import ForceLabel

#: Files of one finished member: matgl's saved potential and our record of it.
MEMBER_FILE = "member.json"


@dataclass(frozen=True)
class Errors:
    """Mean absolute errors on held-out labels: energy (eV/atom), forces (eV/Å, per
    component), stress (GPa, per Voigt component; ``None`` where no label has one)."""

    energy_eV_per_atom: float
    force_eV_per_A: float
    stress_GPa: float | None


@dataclass(frozen=True)
class CommitteeFit:
    """One fitted committee version.

    Attributes:
        version: Its folder (``<root>/vNNN``).
        n_train: Labels the members trained on (each a bootstrap resample of them).
        n_validation: Held-out labels, the same for every member.
        members: Held-out errors of each member.
        committee: Held-out errors of the committee mean.
        core_s: CPU time of the fit (core-seconds, this process).
    """

    version: Path
    n_train: int
    n_validation: int
    members: list[Errors]
    committee: Errors
    core_s: float


def split_labels(
    labels: Sequence[ForceLabel], fraction: float
) -> tuple[list[ForceLabel], list[ForceLabel]]:
    """``(train, validation)``: a label is held out when a hash of its structure falls in the
    lowest ``fraction``, so a label keeps its side as the set grows (at least one each)."""
    if len(labels) < 2:
        raise ValueError(f"fitting needs at least 2 labels, got {len(labels)}")

    def bucket(label: ForceLabel) -> float:
        digest = hashlib.sha256(label.structure.to_json().encode()).digest()
        return int.from_bytes(digest[:8], "big") / 2**64

    ranked = sorted(labels, key=bucket)
    held = [label for label in ranked if bucket(label) < fraction] or ranked[:1]
    train = [label for label in labels if label not in held] or list(labels[:1])
    return train, held


def fit_committee(
    labels: Sequence[ForceLabel],
    root: Path,
    settings: PotentialFitConfig,
    *,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
) -> CommitteeFit:
    """Fit ``settings.committee`` matgl potentials on ``labels`` into the next version under
    ``root`` (resuming a partial one made from the same labels and settings).

    Raises:
        ValueError: fewer than 2 labels, or labels of no element.
    """
    started = time.process_time()
    train, validation = split_labels(labels, settings.validation_fraction)
    elements = tuple(sorted({site.specie.symbol for label in labels for site in label.structure}))
    key = fit_key(labels, settings, seed)
    partial = partial_folder(root, key)
    members, resumed_core_s = [], 0.0
    for index in range(settings.committee):
        folder = partial / f"member-{index}"
        if (folder / MEMBER_FILE).is_file():  # trained before a kill: its cost still counts
            resumed_core_s += json.loads((folder / MEMBER_FILE).read_text())["core_s"]
        else:
            if progress:
                progress(f"member {index + 1} of {settings.committee}: {len(train)} labels")
            resample = np.random.default_rng(seed + index).integers(len(train), size=len(train))
            chosen = [train[i] for i in resample]
            fit_member(chosen, validation, elements, settings, seed + index, folder)
        members.append(load_member(folder))
    member_errors = [errors(member, validation) for member in members]
    committee = errors(CommitteeCalculator(members), validation)
    version = root / f"v{len(committee_versions(root)) + 1:03d}"
    summary = {
        "settings": settings.model_dump(mode="json"),
        "seed": seed,
        "elements": list(elements),
        "n_labels": len(labels),
        "n_train": len(train),
        "n_validation": len(validation),
        "label_ids": [label.id for label in labels],
        "members": [asdict(e) for e in member_errors],
        "committee": asdict(committee),
        "core_s": (core_s := time.process_time() - started + resumed_core_s),
        "versions": {"matgl": package_version("matgl"), "torch": package_version("torch")},
    }
    (partial / SUMMARY_FILE).write_text(json.dumps(summary, indent=1))
    partial.rename(version)
    return CommitteeFit(version, len(train), len(validation), member_errors, committee, core_s)


def fit_key(labels: Sequence[ForceLabel], settings: PotentialFitConfig, seed: int) -> str:
    """What a partial version was started from: the labels (ids or energies), the settings
    and the seed."""
    identity = [label.id if label.id is not None else label.energy_eV for label in labels]
    text = json.dumps([identity, settings.model_dump(mode="json"), seed])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def partial_folder(root: Path, key: str) -> Path:
    """``<root>/<key>.partial``; partial folders of other fits are removed."""
    root.mkdir(parents=True, exist_ok=True)
    for stale in root.glob("*.partial"):
        if stale.name != f"{key}.partial":
            shutil.rmtree(stale)
    folder = root / f"{key}.partial"
    folder.mkdir(exist_ok=True)
    return folder


def fit_member(
    train: Sequence[ForceLabel],
    validation: Sequence[ForceLabel],
    elements: tuple[str, ...],
    settings: PotentialFitConfig,
    seed: int,
    folder: Path,
) -> None:
    """Train one matgl potential (element references fitted first) and save it in ``folder``
    (matgl's files, then :data:`MEMBER_FILE` last: a folder without it is unfinished)."""
    from matgl.utils.training import MGLPotentialTrainer, fit_element_refs

    started = time.process_time()
    structures = [label.structure for label in train]
    references = fit_element_refs(structures, [label.energy_eV for label in train], elements)
    with tempfile.TemporaryDirectory() as cache, quiet_lightning():  # a graph cache per dataset
        splits = {
            "train": dataset(train, elements, settings.cutoff_A, Path(cache) / "train"),
            "valid": dataset(validation, elements, settings.cutoff_A, Path(cache) / "valid"),
        }
        splits["test"] = splits["valid"]
        trainer = MGLPotentialTrainer(
            model(elements, settings),
            max_epochs=settings.epochs,
            batch_size=settings.batch_size,
            lr=settings.learning_rate,
            stress_weight=settings.stress_weight if all_stressed(train) else 0.0,
            accelerator="cpu",
            seed=seed,
            trainer_kwargs={
                "logger": False,
                "enable_checkpointing": False,
                "enable_progress_bar": False,
                "enable_model_summary": False,
            },
            loader_kwargs={"num_workers": 0},
        )
        potential = trainer.fit(splits, atomrefs=references)
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    potential.save(tmp)
    record = {"seed": seed, "n_train": len(train), "core_s": time.process_time() - started}
    (tmp / MEMBER_FILE).write_text(json.dumps(record))
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)


@contextmanager
def quiet_lightning() -> Iterator[None]:
    """Lightning's and matgl's banners, progress bars, advice and test tables kept off the
    console while a member trains."""
    names = ("lightning", "lightning.pytorch", "lightning.fabric", "matgl")
    loggers = [logging.getLogger(name) for name in names]
    levels = [logger.level for logger in loggers]
    with (
        warnings.catch_warnings(),
        contextlib.redirect_stdout(io.StringIO()),
        contextlib.redirect_stderr(io.StringIO()),
    ):
        warnings.simplefilter("ignore")
        for logger in loggers:
            logger.setLevel(logging.ERROR)
        try:
            yield
        finally:
            for logger, level in zip(loggers, levels, strict=True):
                logger.setLevel(level)


def model(elements: tuple[str, ...], settings: PotentialFitConfig) -> Any:
    """An untrained matgl model of ``settings.architecture`` for ``elements``."""
    from matgl.models import M3GNet, TensorNet

    if settings.architecture == "tensornet":
        return TensorNet(
            element_types=elements,
            units=settings.units,
            nblocks=settings.blocks,
            cutoff=settings.cutoff_A,
            is_intensive=False,
        )
    return M3GNet(
        element_types=elements,
        units=settings.units,
        nblocks=settings.blocks,
        cutoff=settings.cutoff_A,
        threebody_cutoff=min(4.0, settings.cutoff_A),
        is_intensive=False,
    )


def all_stressed(labels: Sequence[ForceLabel]) -> bool:
    return all(label.stress_GPa is not None for label in labels)


def dataset(
    labels: Sequence[ForceLabel], elements: tuple[str, ...], cutoff_A: float, root: Path
) -> Any:
    """matgl's dataset of ``labels``: energies (eV), forces (eV/Å), stresses (3x3, GPa)."""
    from matgl.ext.pymatgen import Structure2Graph
    from matgl.graph.data import MGLDataset

    values: dict[str, list[Any]] = {
        "energies": [label.energy_eV for label in labels],
        "forces": [label.forces_eV_per_A for label in labels],
    }
    if all_stressed(labels):
        values["stresses"] = [voigt_to_matrix(label.stress_GPa or []).tolist() for label in labels]
    return MGLDataset(
        structures=[label.structure for label in labels],
        converter=Structure2Graph(element_types=elements, cutoff=cutoff_A),
        labels=values,
        save_cache=False,
        root=str(root),
    )


def voigt_to_matrix(voigt: Sequence[float]) -> np.ndarray:
    """Voigt ``xx, yy, zz, yz, xz, xy`` as a symmetric 3x3 matrix."""
    xx, yy, zz, yz, xz, xy = voigt
    return np.array([[xx, xy, xz], [xy, yy, yz], [xz, yz, zz]])


def load_member(folder: Path) -> Calculator:
    """A saved member as an ASE calculator (stress in eV/Å³)."""
    import matgl
    from matgl.ext.ase import PESCalculator

    return PESCalculator(matgl.load_model(folder), stress_unit="eV/A3")


def errors(calculator: Calculator, labels: Sequence[ForceLabel]) -> Errors:
    """Mean absolute errors of ``calculator`` on ``labels``."""
    energy, force, stress = [], [], []
    for label in labels:
        atoms = AseAtomsAdaptor.get_atoms(label.structure)
        atoms.calc = calculator
        energy.append(abs(atoms.get_potential_energy() - label.energy_eV) / len(atoms))
        force.append(np.abs(atoms.get_forces() - np.asarray(label.forces_eV_per_A)).mean())
        if label.stress_GPa is not None:
            predicted = atoms.get_stress(voigt=True) / units.GPa
            stress.append(np.abs(predicted - np.asarray(label.stress_GPa)).mean())
    return Errors(
        energy_eV_per_atom=float(np.mean(energy)),
        force_eV_per_A=float(np.mean(force)),
        stress_GPa=float(np.mean(stress)) if stress else None,
    )
