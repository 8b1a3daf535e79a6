"""Training data of the generator: the campaign's data specification and batched tensors.

:class:`DataSpec` fixes, once per campaign (at the first fit), what every later fine-tune,
sample and PDM comparison must share: the elements and their order, the property names, the
phase classes, the PDM cutoffs and the standardisation of PDM, lattice and properties. It is
stored as JSON next to the weights.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from ase.io import read as ase_read
from pymatgen.core import Element, Structure
from pymatgen.io.ase import AseAtomsAdaptor
from torch import Tensor

from amloop.generator.pdm import closest_pair_distances, shell_cutoffs
from amloop.generator.pdm import pdm as pdm_vector
from amloop.generator.phase import PHASES


@dataclass
class Standardiser:
    """Per-column mean and standard deviation; columns without spread get a scale of 1."""

    mean: list[float]
    std: list[float]

    @classmethod
    def fit(cls, values: np.ndarray) -> Standardiser:
        """From ``(n, d)`` values; NaNs (missing values) are ignored."""
        if values.shape[1] == 0:
            return cls([], [])
        finite = np.isfinite(values)
        mean = [
            float(values[finite[:, k], k].mean()) if finite[:, k].any() else 0.0
            for k in range(values.shape[1])
        ]
        std = [
            float(values[finite[:, k], k].std()) if finite[:, k].sum() > 1 else 0.0
            for k in range(values.shape[1])
        ]
        return cls(mean, [s if s > 1e-8 else 1.0 for s in std])

    def standardise(self, values: np.ndarray) -> np.ndarray:
        """Standardised ``values`` ``(..., d)``."""
        return (values - np.array(self.mean)) / np.array(self.std)

    def inverse(self, values: Tensor) -> Tensor:
        """Physical units from standardised ``values`` ``(..., d)``."""
        mean, std = values.new_tensor(self.mean), values.new_tensor(self.std)
        return values * std + mean


def lattice_features(structure: Structure) -> np.ndarray:
    """``[a, b, c] / n^(1/3)`` (Å) and ``α, β, γ`` (degrees) of a structure, shape ``(6,)``."""
    scale = len(structure) ** (1.0 / 3.0)
    return np.array([*(x / scale for x in structure.lattice.abc), *structure.lattice.angles])


@dataclass
class DataSpec:
    """What a trained generator shares with every later use: elements, properties, scalings.

    Attributes:
        elements: The campaign's elements in their fixed order (composition and type classes).
        properties: Names of the property-head outputs, in order.
        phases: Phase classes of the phase head, in order.
        pdm_cutoffs: First-shell cutoffs (Å), ``n x n`` (see :mod:`generator.pdm`).
        pdm_rdf_bins: Partial-RDF bins appended per pair to the PDM (0: none).
        pdm_scale: Standardisation of the PDM vector.
        lattice_scale: Standardisation of :func:`lattice_features`.
        property_scale: Standardisation of the properties.
        min_volume_per_atom: Smallest volume per atom in the training data (Å³).
        pair_min_distances: Shortest distance of each element pair in the training data (Å),
            ``n x n`` (0: pair not seen); ``None`` in checkpoints made before it existed.
        property_counts: Values of each property the first fit saw; a property it never saw
            (a prior trained without a campaign's labels) takes its scale from the first
            fine-tuning that has values (:meth:`adopt_unseen_properties`). ``None`` in
            checkpoints made before it existed (all seen).
    """

    elements: list[str]
    properties: list[str]
    phases: list[str]
    pdm_cutoffs: list[list[float]]
    pdm_rdf_bins: int
    pdm_scale: Standardiser
    lattice_scale: Standardiser
    property_scale: Standardiser
    min_volume_per_atom: float
    pair_min_distances: list[list[float]] | None = None
    property_counts: list[int] | None = None

    @classmethod
    def from_data(
        cls,
        structures: Sequence[Structure],
        properties: Sequence[Mapping[str, float]],
        *,
        elements: Sequence[str] | None = None,
        property_names: Sequence[str] | None = None,
        pdm_rdf_bins: int = 0,
    ) -> DataSpec:
        """Derive the specification from training data.

        Args:
            structures: Training structures.
            properties: Their properties (missing ones may be left out).
            elements: The campaign's elements; default: those in ``structures`` by atomic number.
            property_names: Property-head outputs; default: every name in ``properties``, sorted.
            pdm_rdf_bins: Partial-RDF bins appended per pair to the PDM.
        """
        if elements is None:
            present = {site.specie.symbol for s in structures for site in s}
            elements = sorted(present, key=lambda symbol: Element(symbol).Z)
        if property_names is None:
            property_names = sorted({name for props in properties for name in props})
        cutoffs = shell_cutoffs(structures, elements)
        pdms = np.stack(
            [pdm_vector(s, elements, cutoffs=cutoffs, rdf_bins=pdm_rdf_bins) for s in structures]
        )
        values = property_matrix(properties, property_names)
        return cls(
            elements=list(elements),
            properties=list(property_names),
            phases=list(PHASES),
            pdm_cutoffs=cutoffs.tolist(),
            pdm_rdf_bins=pdm_rdf_bins,
            pdm_scale=Standardiser.fit(pdms),
            lattice_scale=Standardiser.fit(np.stack([lattice_features(s) for s in structures])),
            property_scale=Standardiser.fit(values),
            min_volume_per_atom=min(s.volume / len(s) for s in structures),
            pair_min_distances=closest_pair_distances(structures, elements).tolist(),
            property_counts=[int(n) for n in np.isfinite(values).sum(axis=0)],
        )

    def adopt_unseen_properties(self, properties: Sequence[Mapping[str, float]]) -> DataSpec:
        """This specification with the scale of every property its first fit never saw taken
        from ``properties`` (where they hold values of it); the others unchanged."""
        if self.property_counts is None or all(self.property_counts):
            return self
        values = property_matrix(properties, self.properties)
        fresh = Standardiser.fit(values)
        mean, std = list(self.property_scale.mean), list(self.property_scale.std)
        counts = list(self.property_counts)
        for k, seen in enumerate(np.isfinite(values).sum(axis=0)):
            if counts[k] == 0 and seen > 0:
                mean[k], std[k], counts[k] = fresh.mean[k], fresh.std[k], int(seen)
        return replace(self, property_scale=Standardiser(mean, std), property_counts=counts)

    def pdm_of(self, structure: Structure) -> np.ndarray:
        """PDM vector of ``structure`` with the campaign's cutoffs (unstandardised)."""
        return pdm_vector(
            structure, self.elements, cutoffs=np.array(self.pdm_cutoffs), rdf_bins=self.pdm_rdf_bins
        )

    @property
    def pdm_length(self) -> int:
        """Length of the PDM vector."""
        return len(self.pdm_scale.mean)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary."""
        return {
            **{k: v for k, v in vars(self).items() if not isinstance(v, Standardiser)},
            **{k: vars(v) for k, v in vars(self).items() if isinstance(v, Standardiser)},
        }

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> DataSpec:
        """Inverse of :meth:`to_dict`."""
        scalers = {
            k: Standardiser(**values[k]) for k in ("pdm_scale", "lattice_scale", "property_scale")
        }
        return cls(**{**values, **scalers})


def read_training_data(
    path: Path, properties: Sequence[str] | None = None
) -> list[tuple[Structure, dict[str, float]]]:
    """``(structure, {property: value})`` pairs from an extxyz file (or any multi-frame file ASE
    reads), the properties taken from each frame's numeric ``info`` entries.

    Args:
        path: The file.
        properties: Names to keep (a frame without one simply lacks it); default: every numeric
            ``info`` entry.
    """
    pairs = []
    for atoms in ase_read(path, index=":"):
        values = {
            name: float(value)
            for name, value in atoms.info.items()
            if isinstance(value, int | float)
            and not isinstance(value, bool)
            and (properties is None or name in properties)
        }
        pairs.append((AseAtomsAdaptor.get_structure(atoms), values))
    return pairs


def property_matrix(properties: Sequence[Mapping[str, float]], names: Sequence[str]) -> np.ndarray:
    """``(n, len(names))`` array of property values, NaN where a value is missing."""
    return np.array(
        [[float(props.get(name, math.nan)) for name in names] for props in properties]
    ).reshape(len(properties), len(names))


@dataclass
class Crystal:
    """One featurised training structure (NumPy arrays, standardised targets)."""

    atomic_numbers: np.ndarray
    element_index: np.ndarray
    frac: np.ndarray
    lattice: np.ndarray
    composition: np.ndarray
    pdm: np.ndarray
    lattice_target: np.ndarray
    properties: np.ndarray
    phase: int


def composition_vector(fractions: Mapping[str, float], elements: Sequence[str]) -> np.ndarray:
    """Atomic fractions over ``elements``, shape ``(n,)``, normalised to sum 1.

    Raises:
        ValueError: an element with a positive fraction is not among ``elements``.
    """
    unknown = [el for el, x in fractions.items() if x > 0 and el not in elements]
    if unknown:
        raise ValueError(f"elements {unknown} are not among the generator's {list(elements)}")
    vector = np.array([float(fractions.get(el, 0.0)) for el in elements])
    return vector / vector.sum()


def featurise(
    structure: Structure, properties: Mapping[str, float], phase: str, spec: DataSpec
) -> Crystal:
    """Tensors-to-be of one structure under ``spec``.

    Raises:
        ValueError: an element or the phase is unknown to ``spec``.
    """
    if phase not in spec.phases:
        raise ValueError(f"unknown phase '{phase}'; use one of {spec.phases}")
    fractions = structure.composition.fractional_composition
    composition = composition_vector(
        {el.symbol: float(x) for el, x in fractions.items()}, spec.elements
    )
    symbols = [site.specie.symbol for site in structure]
    return Crystal(
        atomic_numbers=np.array([Element(s).Z for s in symbols]),
        element_index=np.array([spec.elements.index(s) for s in symbols]),
        frac=np.mod(structure.frac_coords, 1.0),
        lattice=structure.lattice.matrix.copy(),
        composition=composition,
        pdm=spec.pdm_scale.standardise(spec.pdm_of(structure)),
        lattice_target=spec.lattice_scale.standardise(lattice_features(structure)),
        properties=spec.property_scale.standardise(
            property_matrix([properties], spec.properties)[0]
        ),
        phase=spec.phases.index(phase),
    )


@dataclass
class CrystalBatch:
    """A batch of ``B`` cells with ``N`` atoms in all, as tensors on one device.

    Attributes:
        atomic_numbers: ``(N,)`` long.
        element_index: Index into the campaign's elements, ``(N,)`` long.
        frac: Fractional coordinates in ``[0, 1)``, ``(N, 3)``.
        lattice: Cell vectors as rows (Å), ``(B, 3, 3)``.
        batch: Cell of every atom, ``(N,)`` long.
        num_atoms: ``(B,)`` long.
        composition: Atomic fractions over the elements, ``(B, n_elements)``.
        pdm: Standardised PDM, ``(B, n_pdm)``.
        lattice_target: Standardised lattice features, ``(B, 6)``.
        properties: Standardised properties, NaN where missing, ``(B, n_properties)``.
        phase: Phase class, ``(B,)`` long.
    """

    atomic_numbers: Tensor
    element_index: Tensor
    frac: Tensor
    lattice: Tensor
    batch: Tensor
    num_atoms: Tensor
    composition: Tensor
    pdm: Tensor
    lattice_target: Tensor
    properties: Tensor
    phase: Tensor

    @classmethod
    def collate(
        cls, crystals: Sequence[Crystal], device: torch.device, dtype: torch.dtype = torch.float32
    ) -> CrystalBatch:
        """Stack ``crystals`` into one batch on ``device``."""
        sizes = torch.tensor([len(c.atomic_numbers) for c in crystals])

        def cat(name: str) -> np.ndarray:
            return np.concatenate([getattr(c, name) for c in crystals])

        def stack(name: str) -> np.ndarray:
            return np.stack([getattr(c, name) for c in crystals])

        def real(array: np.ndarray) -> Tensor:
            return torch.as_tensor(array, dtype=dtype, device=device)

        def long(array: np.ndarray) -> Tensor:
            return torch.as_tensor(array, dtype=torch.long, device=device)

        return cls(
            atomic_numbers=long(cat("atomic_numbers")),
            element_index=long(cat("element_index")),
            frac=real(cat("frac")),
            lattice=real(stack("lattice")),
            batch=torch.repeat_interleave(torch.arange(len(crystals)), sizes).to(device),
            num_atoms=sizes.to(device),
            composition=real(stack("composition")),
            pdm=real(stack("pdm")),
            lattice_target=real(stack("lattice_target")),
            properties=real(stack("properties")),
            phase=long(np.array([c.phase for c in crystals])),
        )
