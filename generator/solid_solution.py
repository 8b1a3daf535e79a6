"""Random solid solutions on FCC/BCC/HCP lattices, the crystalline seed set of seed paper 001.

Seed 001 ("NiFeCr-Random") builds every structure from a 2-atom cell repeated 3×3×3 (54 atoms)
and draws 20 random orderings per composition on a grid. The lattice parameter is a first guess
from metallic radii (Vegard-like mixing); the oracle's box relaxation sets the real one.
"""

from __future__ import annotations

import itertools
import math
import warnings
from collections.abc import Mapping, Sequence
from typing import Literal

import numpy as np
from pymatgen.core import Element, Lattice, Structure
from scipy.optimize import linear_sum_assignment

from amloop.state.composition import atom_counts

LatticeKind = Literal["fcc", "bcc", "hcp"]
#: Atoms in the 2-atom cell each lattice is built from.
ATOMS_PER_CELL = 2


def two_atom_cell(kind: LatticeKind, radius: float) -> Structure:
    """The 2-atom cell of ``kind`` for atoms of metallic radius ``radius`` (Å).

    FCC is its body-centred tetragonal setting (a/√2, a/√2, a), BCC the cubic cell, HCP the
    ideal (c/a = √(8/3)) hexagonal cell. Both sites hold H as a placeholder, to be decorated.
    """
    coords: list[list[float]]
    if kind == "fcc":
        a = 2.0 * math.sqrt(2.0) * radius
        lattice = Lattice.tetragonal(a / math.sqrt(2.0), a)
        coords = [[0.0, 0.0, 0.0], [0.5, 0.5, 0.5]]
    elif kind == "bcc":
        lattice = Lattice.cubic(4.0 * radius / math.sqrt(3.0))
        coords = [[0.0, 0.0, 0.0], [0.5, 0.5, 0.5]]
    elif kind == "hcp":
        a = 2.0 * radius
        lattice = Lattice.hexagonal(a, a * math.sqrt(8.0 / 3.0))
        coords = [[1 / 3, 2 / 3, 0.25], [2 / 3, 1 / 3, 0.75]]
    else:
        raise ValueError(f"unknown lattice '{kind}'; use fcc, bcc or hcp")
    return Structure(lattice, ["H", "H"], coords)


def supercell_shape(n_atoms: int) -> tuple[int, int, int]:
    """Most cubic (n1, n2, n3) with ``2·n1·n2·n3 == n_atoms`` (54 -> (3, 3, 3)).

    Raises:
        ValueError: ``n_atoms`` is not twice a product of three positive integers (i.e. odd).
    """
    if n_atoms < ATOMS_PER_CELL or n_atoms % ATOMS_PER_CELL:
        raise ValueError(
            f"a solid-solution cell of {n_atoms} atoms cannot be built from 2-atom cells; "
            "use an even number such as 16, 54 or 128"
        )
    cells = n_atoms // ATOMS_PER_CELL
    shapes = [
        (a, b, cells // (a * b))
        for a in range(1, cells + 1)
        for b in range(a, cells + 1)
        if cells % (a * b) == 0 and cells // (a * b) >= b
    ]
    return min(shapes, key=lambda s: (max(s) - min(s), s))


def element_radius(symbol: str) -> float:
    """Metallic radius of ``symbol`` (Å); its atomic radius where no metallic one is tabulated.

    Raises:
        ValueError: pymatgen knows neither radius.
    """
    element = Element(symbol)
    with warnings.catch_warnings():  # pymatgen warns where a radius is not tabulated
        warnings.simplefilter("ignore", UserWarning)
        radius = element.metallic_radius or element.atomic_radius
    if not radius:
        raise ValueError(f"no metallic or atomic radius known for {symbol}")
    return float(radius)


def mean_metallic_radius(fractions: Mapping[str, float]) -> float:
    """Composition-weighted metallic radius (Å); atomic radius where none is tabulated."""
    return sum(x * element_radius(symbol) for symbol, x in fractions.items())


def random_solid_solution(
    fractions: Mapping[str, float],
    kind: LatticeKind,
    n_atoms: int,
    rng: np.random.Generator,
) -> Structure:
    """One random ordering of ``fractions`` on an ``n_atoms`` ``kind`` supercell."""
    cell = two_atom_cell(kind, mean_metallic_radius(fractions))
    cell.make_supercell(supercell_shape(n_atoms))
    counts = atom_counts(fractions, n_atoms)
    species = [el for el, count in sorted(counts.items()) for _ in range(count)]
    rng.shuffle(species)
    return Structure(cell.lattice, species, cell.frac_coords)


def snap_to_lattice(structure: Structure, kind: LatticeKind) -> tuple[Structure, float]:
    """Carry the chemical arrangement of ``structure`` onto an ideal ``kind`` supercell.

    For lattice-based alloys the configuration is the site occupation: a generated cell's atoms
    are put on the sites of the :func:`random_solid_solution` supercell of the same size by a
    minimum total squared distance assignment (periodic fractional offsets measured in the
    ideal cell's metric, ``scipy.optimize.linear_sum_assignment``), so that who neighbours whom
    (the short-range order the generator was conditioned on) is kept while positions and cell
    become the parent lattice's.

    Args:
        structure: A generated cell with an even number of atoms.
        kind: The parent lattice.

    Returns:
        ``(on_lattice, rms_A)``: the ordered supercell (same composition, lattice parameter from
        metallic radii as in :func:`random_solid_solution`) and the root-mean-square
        displacement of the assignment (Å).

    Raises:
        ValueError: the atom count cannot form a 2-atom-cell supercell.
    """
    fractions = {
        el.symbol: float(x) for el, x in structure.composition.fractional_composition.items()
    }
    cell = two_atom_cell(kind, mean_metallic_radius(fractions))
    cell.make_supercell(supercell_shape(len(structure)))
    offsets = structure.frac_coords[:, None, :] - cell.frac_coords[None, :, :]
    offsets -= np.round(offsets)
    cost = np.sum((offsets @ cell.lattice.matrix) ** 2, axis=-1)  # (atoms, sites), Å²
    atoms, sites = linear_sum_assignment(cost)
    species = [""] * len(cell)
    for atom, site in zip(atoms, sites, strict=True):
        species[site] = structure[int(atom)].specie.symbol
    rms = float(np.sqrt(cost[atoms, sites].mean()))
    return Structure(cell.lattice, species, cell.frac_coords), rms


def composition_grid(
    elements: Sequence[str],
    bounds: Mapping[str, tuple[float, float]],
    *,
    step: float = 0.1,
) -> list[dict[str, float]]:
    """All compositions with fractions on multiples of ``step`` that respect ``bounds``.

    Elements may be absent (fraction 0) where their lower bound allows it, so binaries and
    unaries of the space are included, as in seed 001's dataset.
    """
    if not 0.0 < step <= 1.0:
        raise ValueError(f"step {step} is not an atomic fraction in (0, 1]")
    divisions = round(1.0 / step)
    if not math.isclose(divisions * step, 1.0):
        raise ValueError(f"step {step} does not divide 1 evenly")
    grid: list[dict[str, float]] = []
    for parts in itertools.product(range(divisions + 1), repeat=len(elements) - 1):
        last = divisions - sum(parts)
        if last < 0:
            continue
        fractions = dict(zip(elements, [p / divisions for p in (*parts, last)], strict=True))
        if all(
            bounds.get(el, (0.0, 1.0))[0] - 1e-9 <= x <= bounds.get(el, (0.0, 1.0))[1] + 1e-9
            for el, x in fractions.items()
        ):
            grid.append({el: x for el, x in fractions.items() if x > 0})
    return grid
