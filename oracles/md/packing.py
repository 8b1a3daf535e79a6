"""Starting structures for melt-quench: the volume per atom (elemental or ionic) and a PACKMOL random packing of a composition."""

from __future__ import annotations

import math
import subprocess
import tempfile
import warnings
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from ase import units
from pymatgen.core import Composition, Element, Lattice, Species, Structure

from amloop.oracles.base import OracleFailed, OracleSetupError
from amloop.state.composition import CompositionError, atom_counts

#: Fraction of space the ions' spheres (Shannon crystal radii) fill in an ionic melt's starting
#: guess: Li2SiO3 glass 10 Å³/atom from 0.55; open networks (SiO2, 15 Å³/atom) start denser,
#: which the volume search corrects (a too-dilute start cavitates instead, see volume_search).
IONIC_PACKING_FRACTION = 0.55


#: Amounts of the integer formula pymatgen's charge-balance guess is asked about are
#: fractions with denominators below this (exact for cells of up to 32 atoms): its enumeration
#: grows combinatorially with the amounts, and a random-fraction Cu-Zr as Cu3719Zr6281 ran for
#: hours.
GUESS_MAX_DENOMINATOR = 33


def _oxidation_states(composition: Composition) -> dict[str, float]:
    """Oxidation states of a composition: pymatgen's most likely charge-balanced guess (of the
    formula rounded to :data:`GUESS_MAX_DENOMINATOR`), else (off-stoichiometric) the most
    electronegative element's lowest common state and every other element's highest."""
    formula, _ = composition.get_integer_formula_and_factor(max_denominator=GUESS_MAX_DENOMINATOR)
    rounded = Composition(formula)
    keeps_every_element = set(rounded.elements) == set(composition.elements)
    guesses = rounded.oxi_state_guesses() if keeps_every_element else ()
    if guesses:
        return dict(guesses[0])
    anion = max(composition.elements, key=lambda el: el.X)
    return {
        el.symbol: float(
            min(el.common_oxidation_states or (0,))
            if el == anion
            else max(el.common_oxidation_states or (0,))
        )
        for el in composition.elements
    }


def _ion_volume(symbol: str, state: float) -> float:
    """Volume (Å³) of the ion's sphere, Shannon crystal radius (pymatgen)."""
    radius = None
    if state == int(state):
        with warnings.catch_warnings():  # "No ionic radius for Co+!": the fallbacks follow
            warnings.simplefilter("ignore", UserWarning)
            radius = Species(symbol, int(state)).ionic_radius
    radius = radius or Element(symbol).average_ionic_radius or Element(symbol).atomic_radius or 1.0
    return 4.0 / 3.0 * math.pi * float(radius) ** 3


def estimate_volume_per_atom(composition: Mapping[str, float]) -> float:
    """Starting volume per atom (Å³) of a melt of ``composition``.

    Ionic compositions (an element with a negative oxidation state, :func:`_oxidation_states`):
    the ions' sphere volumes over :data:`IONIC_PACKING_FRACTION`. Otherwise (alloys, metallic
    glasses): the mole-fraction average of the elements' molar volumes (Cu50Zr50: 17.6 Å³).
    The elemental average would put an oxide's O at the volume of solid O2 (29 Å³/atom): such
    a start is so dilute that the melt cavitates and the volume search settles in a foam
    (CHGNet Li-Si-O seed cells at 1.3 g/cm³, against 2.5 for Li2SiO3 glass). MPMorph takes the
    guess from Materials Project crystals instead, which needs the network; the volume search
    corrects either guess.

    Raises:
        OracleSetupError: an element with no known molar volume in a metallic composition.
    """
    total = sum(composition.values())
    fractions = {el: x / total for el, x in composition.items() if x > 0}
    states = _oxidation_states(Composition(fractions))
    if any(state < 0 for state in states.values()):
        ions = sum(x * _ion_volume(el, states[el]) for el, x in fractions.items())
        return ions / IONIC_PACKING_FRACTION
    volume = 0.0
    for el, x in fractions.items():
        molar = Element(el).molar_volume  # cm³/mol
        if molar is None:
            raise OracleSetupError(f"no molar volume known for {el}: give volume_per_atom_A3")
        volume += x * float(molar) * 1e24 / units.mol
    return volume


def _packmol_binary() -> Path:
    """The PACKMOL executable of the ``packmol`` wheel."""
    try:
        from packmol.cli import get_binary_path
    except ImportError:
        raise OracleSetupError("random packing needs PACKMOL: pip install packmol") from None
    return get_binary_path()


def random_packing(
    composition: Mapping[str, float],
    n_atoms: int,
    *,
    volume_per_atom_A3: float | None = None,
    tolerance_A: float = 2.0,
    seed: int = 0,
) -> Structure:
    """A random periodic packing of ``composition`` in a cube, made by PACKMOL.

    Args:
        composition: Element -> amount (any normalisation), e.g. ``{"Cu": 64, "Zr": 36}``.
        n_atoms: Number of atoms.
        volume_per_atom_A3: Volume per atom (Å³); :func:`estimate_volume_per_atom` if omitted.
        tolerance_A: Smallest distance between atoms across periodic images (Å), lowered to
            0.8 × the mean interatomic spacing where the density demands it.
        seed: PACKMOL's random seed (non-negative; PACKMOL takes -1 for a clock seed).

    Raises:
        OracleSetupError: PACKMOL is not installed, a bad composition or seed.
        OracleFailed: PACKMOL found no packing.
    """
    if seed < 0:
        raise OracleSetupError(f"the packing seed must be non-negative, not {seed}")
    try:
        counts = atom_counts(composition, n_atoms)
    except CompositionError as exc:
        raise OracleSetupError(str(exc)) from None
    volume = (volume_per_atom_A3 or estimate_volume_per_atom(composition)) * n_atoms
    side = volume ** (1.0 / 3.0)
    tolerance = min(tolerance_A, 0.8 * (volume / n_atoms) ** (1.0 / 3.0))
    blocks = "".join(
        f"structure {el}.xyz\n  number {n}\nend structure\n" for el, n in counts.items()
    )
    script = (
        f"tolerance {tolerance!r}\nfiletype xyz\noutput packed.xyz\nseed {seed}\n"
        f"pbc 0. 0. 0. {side!r} {side!r} {side!r}\n{blocks}"
    )
    with tempfile.TemporaryDirectory(prefix="amloop-packmol-") as folder:
        work = Path(folder)
        for el in counts:
            (work / f"{el}.xyz").write_text(f"1\n{el}\n{el} 0.0 0.0 0.0\n")
        (work / "pack.inp").write_text(script)
        with (work / "pack.inp").open() as stdin:  # a file: PACKMOL rewinds its input
            done = subprocess.run(
                [str(_packmol_binary())],
                stdin=stdin,
                cwd=work,
                capture_output=True,
                text=True,
                timeout=600,
                check=False,
            )
        if done.returncode != 0 or not (work / "packed.xyz").is_file():
            tail = (done.stdout + done.stderr).strip().splitlines()[-5:]
            raise OracleFailed(f"PACKMOL found no packing: {' | '.join(tail)}")
        lines = (work / "packed.xyz").read_text().splitlines()[2 : 2 + n_atoms]
    species = [line.split()[0] for line in lines]
    coords = np.array([[float(x) for x in line.split()[1:4]] for line in lines])
    return Structure(Lattice.cubic(side), species, coords, coords_are_cartesian=True)
