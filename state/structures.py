"""Structure serialisation and content hashing.

Structures cross module boundaries as pymatgen ``Structure``; in the store they are kept as
pymatgen's JSON dictionary (lossless: species, lattice, fractional coordinates, site properties).
"""

from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from pymatgen.core import Structure

from amloop.state.memo import BoundedMemo

#: Fractional coordinates are rounded to this many decimals for hashing (1e-4 of a cell vector).
HASH_FRAC_DECIMALS = 4
#: Lattice parameters (Å, degrees) are rounded to this many decimals for hashing.
HASH_LATTICE_DECIMALS = 3
#: Parsed structures remembered by :func:`structure_from_json` (least recently used dropped).
PARSED_CACHE_SIZE = 4096
_parsed: BoundedMemo[Structure] = BoundedMemo(PARSED_CACHE_SIZE)


#: The only object references a structure JSON may hold: its own root (pymatgen's marker).
STRUCTURE_CLASSES = {
    ("pymatgen.core.structure", "Structure"),
    ("pymatgen.core.structure", "IStructure"),
}


def _plain(value: Any, where: str) -> None:
    """Refuse any ``@module``/``@class`` reference below the root: pymatgen's decoder would
    import and build whatever it names (code from data)."""
    if isinstance(value, dict):
        if "@module" in value or "@class" in value:
            raise StructureFileError(
                f"structure JSON holds an object of class {value.get('@class')!r} from module "
                f"{value.get('@module')!r} at {where}: only lattice, species, coordinates and "
                "plain (number, text, list) properties are read"
            )
        for key, item in value.items():
            _plain(item, f"{where}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _plain(item, f"{where}[{index}]")


def structure_from_dict(data: Any) -> Structure:
    """A structure from pymatgen's dict form, read safely: the root may name pymatgen's
    ``Structure``, nothing below it may name any class (see :func:`_plain`).

    Raises:
        StructureFileError: not a structure dict, or an object reference anywhere in it.
    """
    if not isinstance(data, dict) or "lattice" not in data or "sites" not in data:
        raise StructureFileError("not a pymatgen structure (no lattice and sites)")
    root = {
        key: value for key, value in data.items() if key not in ("@module", "@class", "@version")
    }
    marker = (data.get("@module", "pymatgen.core.structure"), data.get("@class", "Structure"))
    if marker not in STRUCTURE_CLASSES:
        _plain({"@module": marker[0], "@class": marker[1]}, "$")
    _plain(root, "$")
    return Structure.from_dict(root)


def structure_to_json(structure: Structure) -> str:
    """Serialise a structure to pymatgen's JSON form (lossless, site properties included)."""
    return json.dumps(structure.as_dict(), separators=(",", ":"))


def structure_from_json(text: str) -> Structure:
    """Inverse of :func:`structure_to_json`, read safely (:func:`structure_from_dict`: a stored
    payload that names a class is refused, never built); returns a new object each call.

    Parsed structures are remembered by the text's digest (:data:`PARSED_CACHE_SIZE` of them):
    every acquisition reads all stored structures again, and copying one is about 10x cheaper
    than parsing it (0.2 against 2.4 ms at 54 atoms)."""
    key = hashlib.sha1(text.encode()).hexdigest()
    parsed = _parsed.get(key, lambda: structure_from_dict(json.loads(text)))
    copy = parsed.copy()
    for site, original in zip(copy, parsed, strict=True):
        # pymatgen's copy collects the property names in a set: their order, and with it the
        # JSON, would change with the process's hash seed
        site.properties = {name: site.properties[name] for name in original.properties}
    return copy


def structure_digest(structure: Structure, *context: str) -> str:
    """Exact sha1 of a structure (lattice matrix, fractional coordinates, species in site order)
    and ``context`` (e.g. the element order a derived value depends on): the key of memos of
    values computed from a structure. Unlike :func:`content_hash`, nothing is rounded or
    sorted."""
    digest = hashlib.sha1(structure.lattice.matrix.tobytes())
    digest.update(np.ascontiguousarray(structure.frac_coords).tobytes())
    symbols = [site.species_string for site in structure]
    digest.update(" ".join([*context, "|", *symbols]).encode())
    return digest.hexdigest()


def content_hash(structure: Structure) -> str:
    """Order-invariant sha256 of composition, lattice and rounded fractional coordinates.

    Two structures with the same species on the same (rounded, wrapped) positions in the same
    lattice hash equally, whatever the order of their sites; this is what makes candidates
    unique per campaign and oracle calls idempotent.
    """
    lattice = structure.lattice
    params = np.round(np.array(lattice.abc + lattice.angles, dtype=float), HASH_LATTICE_DECIMALS)
    frac = np.mod(structure.frac_coords, 1.0)
    frac = np.round(frac, HASH_FRAC_DECIMALS) % 1.0  # 0.99999 rounds to 1.0 -> wrap to 0.0
    sites = sorted(
        (site.species_string, *(f"{x:.{HASH_FRAC_DECIMALS}f}" for x in coords))
        for site, coords in zip(structure, frac, strict=True)
    )
    payload: dict[str, Any] = {
        "formula": structure.composition.formula,
        "lattice": [f"{p:.{HASH_LATTICE_DECIMALS}f}" for p in params],
        "sites": sites,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


class StructureFileError(ValueError):
    """A structure file that is missing or that no reader understands."""


def closest_distance(structure: Structure, search_radius: float = 4.0) -> float:
    """Shortest interatomic distance (Å), periodic images (an atom's own included) counted;
    ``inf`` when no pair lies within ``search_radius`` (Å)."""
    _, _, _, distances = structure.get_neighbor_list(search_radius, exclude_self=True)
    return float(distances.min()) if distances.size else float("inf")


#: Atoms closer than this (Å) overlap: no bond is this short (H-H is 0.74 Å).
OVERLAP_DISTANCE = 0.5


def read_structures(path: Path) -> list[Structure]:
    """Read every structure in a CIF, POSCAR, extxyz (all frames) or other ASE-readable file.

    Raises:
        StructureFileError: the file is missing, no reader understands it, or a structure has
            atoms closer than :data:`OVERLAP_DISTANCE`.
    """
    if not path.is_file():
        raise StructureFileError(f"structure file not found: {path}")
    # the readers' warnings are held back: for a file that fails, the first one says why
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            structures = _read_structure_file(path)
        except StructureFileError as exc:
            raise StructureFileError(f"structure file {path}: {exc}") from None
        except Exception as exc:  # pymatgen and ASE raise many types for unreadable files
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            if isinstance(exc, KeyError):  # pymatgen's CIF parser: a required field is absent
                reason = f"the field {reason} is missing"
            if "no structures" in reason:  # pymatgen's CIF parser says no more than that
                reason += (
                    " (pymatgen dropped every block: atoms that overlap, a cell of zero volume, "
                    "or no atom sites)"
                )
            notes = [str(w.message).strip().splitlines()[0] for w in caught if str(w.message)]
            if notes:
                reason += f"; the reader noted: {notes[0]}"
            raise StructureFileError(f"cannot read structure file {path}: {reason}") from None
    for frame, structure in enumerate(structures):
        if (shortest := closest_distance(structure, OVERLAP_DISTANCE)) < OVERLAP_DISTANCE:
            where = f" (frame {frame})" if len(structures) > 1 else ""
            raise StructureFileError(
                f"structure file {path}{where}: two atoms are {shortest:.2f} Å apart, closer than "
                f"{OVERLAP_DISTANCE} Å: overlapping atoms (a site listed twice?)"
            )
    for held in caught:  # a file that was read: its readers' remarks still reach the user
        if "Issues encountered while parsing CIF" not in str(held.message):  # coordinates snapped
            warnings.warn_explicit(held.message, held.category, held.filename, held.lineno)
    return structures


#: The structure formats, as a user names them.
READABLE = "pymatgen JSON (.json), CIF (.cif), POSCAR/CONTCAR (.vasp), extxyz/xyz and the other formats ASE reads by extension"


def _read_structure_file(path: Path) -> list[Structure]:
    if path.suffix.lower() == ".json":
        return [structure_from_dict(json.loads(path.read_text()))]
    if path.suffix.lower() in {".cif", ".vasp"} or path.name.upper().startswith(
        ("POSCAR", "CONTCAR")
    ):
        return [Structure.from_file(path)]
    from ase.io import read as ase_read  # ASE's readers: imported by the command that reads
    from ase.io.formats import UnknownFileTypeError
    from pymatgen.io.ase import AseAtomsAdaptor

    try:
        frames = ase_read(path, index=":")
    except UnknownFileTypeError:
        raise StructureFileError(
            f"not a structure format amloop reads (tried: {READABLE}; ASE knows no format "
            f"'{path.suffix or path.name}')"
        ) from None
    return [AseAtomsAdaptor.get_structure(atoms) for atoms in frames]
