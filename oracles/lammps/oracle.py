"""The ``lammps`` oracle: relaxation, elastic constants (Voigt moduli) or an equation of state with a classical potential."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pymatgen.core import Structure

from amloop.oracles.base import Oracle, OracleFailed, OracleResult, OracleSetupError
from amloop.oracles.gates import check_min_distance

if TYPE_CHECKING:
    from collections.abc import Iterable
from amloop.oracles.lammps.potentials import (
    MeamEntry,
    file_sha256,
    funcfl_element,
    infer_pair_style,
    manybody_elements,
    meam_hint,
    meam_hint_library,
    meam_library_entries,
    meam_max_index,
    pair_family,
    resolve_potential_file,
    setfl_elements,
)
from amloop.oracles.lammps.session import StructureRun, lammps_version, load_mpi


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
        self.family = pair_family(self.pair_style)
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
            **{
                f"{key}_sha256": file_sha256(path)
                for key, path in files.items()
                if path is not None
            },
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
        library = library or meam_hint_library(path)
        if library is None:
            raise OracleSetupError(
                f"pair style meam needs a library file: give library=... for {path.name}"
            )
        self.library_path = resolve_potential_file(library)
        self._meam_entries = meam_library_entries(self.library_path)
        names = meam_elements.split() if meam_elements else meam_hint(path, self.library_path)
        known = {entry.name for entry in self._meam_entries}
        if names is not None:
            if missing := [n for n in names if n not in known]:
                raise OracleSetupError(f"MEAM entries {missing} are not in {self.library_path}")
            first: dict[str, MeamEntry] = {}
            for entry in self._meam_entries:
                first.setdefault(entry.name, entry)
            self._meam_names = names
            self._meam_entries = [first[n] for n in names]
        elif meam_max_index(path) > 1:
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
        run = StructureRun(self, structure)
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
