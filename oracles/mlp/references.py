"""Elemental reference energies for formation energies: the candidate states of each element (molecules, crystals), relaxed once per model and cached on disk."""

from __future__ import annotations

import json
import math
import os
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from ase import Atoms
from ase.build import bulk, molecule
from ase.data import atomic_numbers, reference_states
from ase.spacegroup import crystal
from pymatgen.core import Element

#: Force tolerance (eV/Å) and step limit of the elemental reference relaxations (BFGS).
REFERENCE_FMAX = 0.01


REFERENCE_MAX_STEPS = 1000


#: Bumped whenever the reference structures or protocol change (invalidates the disk cache).
REFERENCE_PROTOCOL = 1


#: Edge of the cubic box (Å) holding a reference molecule.
MOLECULE_BOX = 12.0


@dataclass(frozen=True)
class ElementReference:
    """How to build the reference structure of an element.

    Attributes:
        label: Short description stored in the provenance (``"alpha-B (R-3m, B12)"``).
        build: Builds the unrelaxed structure.
        relax_cell: Relax the cell too (crystals) or only the positions (a molecule in a box).
    """

    label: str
    build: Callable[[], Atoms]
    relax_cell: bool = True


def _molecule(symbol: str, name: str, bond: float | None = None) -> ElementReference:
    """A diatomic molecule (ASE's g2 geometry, or ``bond`` Å) centred in a periodic box."""

    def build() -> Atoms:
        atoms = (
            Atoms(2 * symbol, positions=[(0, 0, 0), (0, 0, bond)])
            if bond is not None
            else molecule(name)
        )
        atoms.set_cell([MOLECULE_BOX] * 3)
        atoms.center()
        atoms.pbc = True
        return atoms

    return ElementReference(f"{name} molecule in a {MOLECULE_BOX:g} Å box", build, relax_cell=False)


def _crystal(
    label: str, symbol: str, sites: list[tuple[float, float, float]], **kwargs: Any
) -> ElementReference:
    """A crystal from its space group, Wyckoff sites and cell parameters (primitive cell)."""

    def build() -> Atoms:
        return crystal([symbol] * len(sites), basis=sites, primitive_cell=True, **kwargs)

    return ElementReference(label, build)


def _s8_ring() -> Atoms:
    """Crown-shaped S8 ring (S-S 2.05 Å, S-S-S 108°) in a periodic box."""
    radius, height = 2.345, 0.495  # from the bond length and angle
    angles = np.arange(8) * np.pi / 4
    positions = np.column_stack(
        [radius * np.cos(angles), radius * np.sin(angles), height * (-1.0) ** np.arange(8)]
    )
    atoms = Atoms("S8", positions=positions, cell=[MOLECULE_BOX] * 3, pbc=True)
    atoms.center()
    return atoms


#: Reference structures that ``ase.build.bulk(symbol)`` cannot build or builds wrongly.
#: Crystal data: alpha-B Decker & Kasper, Acta Cryst. 12, 503 (1959); graphite (PBE ground
#: state of C; diamond is ~0.1 eV/atom higher); trigonal Se/Te Cherin & Unger (1967, 1972);
#: black P Brown & Rundqvist (1965); alpha-Ga Bradley (1935); alpha-Mn Bradley & Thewlis (1927).
ELEMENT_REFERENCES: dict[str, ElementReference] = {
    "H": _molecule("H", "H2"),
    "N": _molecule("N", "N2"),
    "O": _molecule("O", "O2"),
    "F": _molecule("F", "F2"),
    "Cl": _molecule("Cl", "Cl2"),
    "Br": _molecule("Br", "Br2", bond=2.28),
    "I": _molecule("I", "I2", bond=2.67),
    "S": ElementReference("S8 ring in a 12 Å box", _s8_ring, relax_cell=False),
    "B": _crystal(
        "alpha-B (R-3m, B12)",
        "B",
        [(0.11886, 0.88114, 0.89133), (0.19686, 0.80314, 0.02432)],
        spacegroup=166,
        cellpar=[4.908, 4.908, 12.567, 90, 90, 120],
    ),
    "C": _crystal(
        "graphite (P6_3/mmc)",
        "C",
        [(0, 0, 0.25), (1 / 3, 2 / 3, 0.25)],
        spacegroup=194,
        cellpar=[2.464, 2.464, 6.711, 90, 90, 120],
    ),
    "P": _crystal(
        "black P (Cmce)",
        "P",
        [(0, 0.10168, 0.08056)],
        spacegroup=64,
        cellpar=[3.314, 10.478, 4.376, 90, 90, 90],
    ),
    "Se": _crystal(
        "trigonal Se (P3_121)",
        "Se",
        [(0.2254, 0, 1 / 3)],
        spacegroup=152,
        cellpar=[4.366, 4.366, 4.954, 90, 90, 120],
    ),
    "Te": _crystal(
        "trigonal Te (P3_121)",
        "Te",
        [(0.2636, 0, 1 / 3)],
        spacegroup=152,
        cellpar=[4.457, 4.457, 5.929, 90, 90, 120],
    ),
    "Ga": _crystal(
        "alpha-Ga (Cmce)",
        "Ga",
        [(0, 0.1549, 0.0810)],
        spacegroup=64,
        cellpar=[4.5197, 7.6633, 4.5260, 90, 90, 90],
    ),
    "Mn": _crystal(
        "alpha-Mn (I-43m, 29 atoms)",
        "Mn",
        [(0, 0, 0), (0.3179, 0.3179, 0.3179), (0.3571, 0.3571, 0.0347), (0.0896, 0.0896, 0.2819)],
        spacegroup=217,
        cellpar=[8.911, 8.911, 8.911, 90, 90, 90],
    ),
}


def reference_candidates(symbol: str) -> list[ElementReference]:
    """Reference structures to relax for ``symbol``; the lowest relaxed energy is the reference.

    The entry of :data:`ELEMENT_REFERENCES`, else ASE's standard crystal of the element, else
    fcc, bcc and hcp built from the element's atomic radius (to take the lowest of).
    """
    if symbol in ELEMENT_REFERENCES:
        return [ELEMENT_REFERENCES[symbol]]
    try:
        standard = bulk(symbol)
    except (ValueError, RuntimeError):  # no standard crystal that ASE can build
        radius = float(Element(symbol).atomic_radius or 1.5)
        return [
            ElementReference(
                f"fallback fcc {symbol}", lambda: bulk(symbol, "fcc", a=2 * math.sqrt(2) * radius)
            ),
            ElementReference(
                f"fallback bcc {symbol}", lambda: bulk(symbol, "bcc", a=4 * radius / math.sqrt(3))
            ),
            ElementReference(
                f"fallback hcp {symbol}",
                lambda: bulk(symbol, "hcp", a=2 * radius, c=2 * radius * math.sqrt(8 / 3)),
            ),
        ]
    reference_state = reference_states[atomic_numbers[symbol]]
    state = reference_state["symmetry"] if reference_state is not None else "unknown"
    return [ElementReference(f"{state} {symbol} (ASE standard crystal)", standard.copy)]


@dataclass(frozen=True)
class ReferenceEnergy:
    """Relaxed energy of an element's reference structure.

    Attributes:
        energy_per_atom: eV/atom.
        structure: Label of the reference structure (:attr:`ElementReference.label`).
    """

    energy_per_atom: float
    structure: str


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/amloop`` (``~/.cache/amloop`` when unset)."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "amloop"


class ReferenceCache:
    """Elemental reference energies per (model, element): in-process, and in a JSON file.

    The file maps ``"<model identity>|<element>|p<protocol>"`` to ``{"energy_per_atom",
    "structure"}``; writers merge what is on disk before replacing it atomically, so processes
    sharing the file lose nothing worse than an entry to recompute.
    """

    _memory: ClassVar[dict[str, ReferenceEnergy]] = {}
    _lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, path: Path | None):
        self.path = path

    @staticmethod
    def key(identity: str, symbol: str) -> str:
        """Cache key of ``symbol``'s reference under the model ``identity``."""
        return f"{identity}|{symbol}|p{REFERENCE_PROTOCOL}"

    def _read(self) -> dict[str, Any]:
        if self.path is None or not self.path.is_file():
            return {}
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):  # a corrupt cache is only a cache
            return {}
        return data if isinstance(data, dict) else {}

    def get(self, key: str) -> ReferenceEnergy | None:
        """The cached reference, from memory or else from the file."""
        with self._lock:
            if key in self._memory:
                return self._memory[key]
            entry = self._read().get(key)
            if isinstance(entry, dict):
                try:
                    found = ReferenceEnergy(
                        float(entry["energy_per_atom"]), str(entry["structure"])
                    )
                except (KeyError, TypeError, ValueError):
                    return None
                self._memory[key] = found
                return found
        return None

    def put(self, key: str, reference: ReferenceEnergy) -> None:
        """Remember ``reference`` in memory and, where there is a file, on disk."""
        with self._lock:
            self._memory[key] = reference
            if self.path is None:
                return
            data = self._read()
            data[key] = {
                "energy_per_atom": reference.energy_per_atom,
                "structure": reference.structure,
            }
            self.path.parent.mkdir(parents=True, exist_ok=True)
            handle, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".mlp_references.")
            with os.fdopen(handle, "w") as out:
                json.dump(data, out, indent=1, sort_keys=True)
            os.replace(tmp, self.path)

    @classmethod
    def clear_memory(cls) -> None:
        """Forget the in-process entries (the file stays)."""
        with cls._lock:
            cls._memory.clear()
