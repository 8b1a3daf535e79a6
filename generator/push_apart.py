"""Push-apart post-processing: separate atoms that are closer than a minimum distance.

Generated structures can hold a few pairs far closer than any physical bond (two atoms that the
sampler left on nearly the same spot), which classical potentials turn into explosions. Each
round finds every periodic pair closer than ``min_distance`` with pymatgen's neighbour list and
moves both atoms apart along their (minimum-image) separation by half the deficit; rounds repeat
until no pair is too close. Atoms that sit at one spot are separated along a random direction.
"""

from __future__ import annotations

import numpy as np
from pymatgen.core import Structure

from amloop.state.structures import closest_distance

#: Each round aims this fraction beyond the minimum so that rounding does not stop convergence.
OVERSHOOT = 1e-3


class PushApartError(ValueError):
    """The atoms could not be separated (cell too small or too dense for the minimum)."""


def push_apart(
    structure: Structure,
    min_distance: float,
    *,
    max_rounds: int = 500,
    seed: int = 0,
) -> Structure:
    """A copy of ``structure`` in which no two atoms are closer than ``min_distance`` (Å).

    Args:
        structure: Ordered periodic structure.
        min_distance: Smallest allowed distance between any two atoms, images included (Å).
        max_rounds: Most separation rounds before giving up.
        seed: Seed of the random directions used for atoms at one spot.

    Raises:
        PushApartError: a cell vector is shorter than ``min_distance`` (an atom would overlap its
            own image), or pairs are still too close after ``max_rounds`` rounds.
    """
    lattice = structure.lattice
    if min(lattice.abc) < min_distance:
        raise PushApartError(
            f"cell vector {min(lattice.abc):.3f} Å is shorter than the minimum distance "
            f"{min_distance} Å: atoms would overlap their own images"
        )
    rng = np.random.default_rng(seed)
    species = [site.species for site in structure]
    frac = structure.frac_coords.copy()
    target = min_distance * (1.0 + OVERSHOOT)
    for _ in range(max_rounds):
        current = Structure(lattice, species, frac)
        centres, neighbours, images, distances = current.get_neighbor_list(
            min_distance, exclude_self=True
        )
        close = distances < min_distance
        if not close.any():
            return Structure(lattice, species, frac, to_unit_cell=True)
        centres, neighbours, images = centres[close], neighbours[close], images[close]
        vectors = lattice.get_cartesian_coords(frac[neighbours] + images - frac[centres])
        lengths = np.linalg.norm(vectors, axis=1, keepdims=True)
        coincident = lengths[:, 0] < 1e-8
        vectors[coincident] = rng.normal(size=(int(coincident.sum()), 3))
        lengths[coincident] = np.linalg.norm(vectors[coincident], axis=1, keepdims=True)
        deficit = np.where(coincident[:, None], target, target - lengths)
        moves = np.zeros_like(frac)
        np.add.at(moves, centres, -0.5 * deficit * vectors / lengths)
        frac = frac + lattice.get_fractional_coords(moves)
    closest = closest_distance(Structure(lattice, species, frac))
    raise PushApartError(
        f"atoms still {closest:.3f} Å apart (< {min_distance} Å) after {max_rounds} rounds; "
        "the cell is too dense for this minimum distance"
    )
