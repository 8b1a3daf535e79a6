"""DFT oracle: a GPAW ground state, its projected DOS, and λ1, λ2 and d-band descriptors.

GPAW runs the way DFT codes are run: as a separate process (its own interpreter, optionally
under ``mpirun -np N``) in the evaluation's work directory, with its inputs and outputs as
files there and a wall-clock limit. A crash, an MPI abort or a hang of GPAW is a failed
evaluation with the tail of the log as its reason; it never takes the loop down, and a loop
that dies takes no DFT run with it (the worker stops when its standard-input pipe closes). The
worker
is :mod:`oracles.gpaw_runner`, executed by an interpreter that has GPAW (``python``, Debian's
``/usr/bin/python3`` by default: ``apt-get install -y gpaw`` brings GPAW 22.8, ASE, the PAW
setups and basis sets, OpenMPI, ScaLAPACK and FFTW). amloop's own environment needs no GPAW.

Protocol of :meth:`DftOracle.compute` on one structure (a single point, no relaxation):

1. refuse missing PAW setups (:class:`~oracles.base.OracleSetupError`, before any work) and
   overlapping atoms;
2. write ``input.json`` (structure, initial magnetic moments, settings, k-point mesh from the
   k-point density) into a fresh work directory and run the worker; it writes GPAW's log
   ``gpaw.txt``, ``result.json`` and ``eigenstates.npz`` (eigenvalues, k-point weights and the
   PAW-sphere populations of every state in s, p_y, p_z, p_x, d_xy, d_yz, d_z², d_xz, d_x²−y²
   of every atom; see :mod:`oracles.gpaw_runner` for why these and not ``raw_pdos``);
3. an SCF that does not converge within ``maxiter`` is a failed evaluation with that reason;
4. broaden the states into a projected DOS (:class:`~oracles.dos_descriptors.ProjectedDos`),
   save it as ``pdos.npz`` and compute the descriptors of :mod:`oracles.dos_descriptors`
   (the same code reads VASP's ``vasprun.xml``).

The cost of a call (:meth:`DftOracle.evaluate`) is its wall time times the number of MPI
processes, in core-seconds; the provenance also records GPAW's own wall time, the number of
SCF iterations, k-points and bands, from which a per-structure cost can be predicted.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal

import numpy as np
from ase.calculators.calculator import kptdensity2monkhorstpack
from pydantic import AfterValidator, Field
from pymatgen.core import Element, Structure
from pymatgen.io.ase import AseAtomsAdaptor

from amloop.oracles.base import (
    Oracle,
    OracleFailed,
    OracleOptions,
    OracleResult,
    OracleSetupError,
    element_symbol,
)
from amloop.oracles.dos_descriptors import DOS_UNIT, ProjectedDos, describe
from amloop.oracles.gates import check_min_distance
from amloop.state.schema import Candidate, Cost, Evaluation, ForceLabel
from amloop.state.structures import content_hash

if TYPE_CHECKING:
    from collections.abc import Iterable

#: The worker script, run by the GPAW interpreter.
RUNNER = Path(__file__).with_name("gpaw_runner.py")
#: What to do when GPAW is missing.
INSTALL_HINT = (
    "install Debian's GPAW with `apt-get install -y gpaw` (GPAW, ASE, PAW setups, basis sets, "
    "OpenMPI), or set the oracle's `python` to an interpreter that imports gpaw"
)
#: Initial magnetic moments (μB) of the magnetic elements; every other atom starts at 0.
DEFAULT_MAGMOMS: dict[str, float] = {
    "V": 2.0,
    "Cr": 3.0,
    "Mn": 4.0,
    "Fe": 3.0,
    "Co": 2.0,
    "Ni": 1.0,
}
#: Seconds between SIGTERM and SIGKILL when a run is stopped.
KILL_GRACE_S = 5.0
#: Energy grid of the stored PDOS reaches this far beyond the window (eV).
GRID_MARGIN_EV = 2.0
#: Lines of the worker's log quoted in a failure reason.
LOG_TAIL_LINES = 12

_PROBE = """
import json, ase, gpaw, numpy
from gpaw.xc import XC
try:
    setup_name, xc_error = XC(%r).get_setup_name(), None
except Exception as exc:
    setup_name, xc_error = None, f"{type(exc).__name__}: {exc}"
print(json.dumps({"versions": {"gpaw": gpaw.__version__, "ase": ase.__version__,
    "numpy": numpy.__version__}, "setup_paths": list(gpaw.setup_paths),
    "setup_name": setup_name, "xc_error": xc_error}))
"""


def runner_environment() -> dict[str, str]:
    """Environment of the worker: amloop's minus its Python paths, one thread per MPI rank.

    OpenMPI refuses to run as root unless told; the two ``OMPI_ALLOW_RUN_AS_ROOT`` variables
    tell it (other MPI implementations ignore them).
    """
    env = {
        k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")
    }
    env.update(OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    if os.geteuid() == 0:
        env.update(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    return env


@dataclass(frozen=True)
class GpawInstall:
    """A Python interpreter with GPAW, as found by :func:`probe_gpaw`.

    Attributes:
        python: Absolute path of the interpreter.
        versions: Versions of gpaw, ase and numpy under it.
        setup_paths: Folders GPAW searches for PAW setups and basis sets.
        setup_name: Name of the setups of the exchange-correlation functional (``PBE``).
    """

    python: str
    versions: dict[str, str]
    setup_paths: tuple[str, ...]
    setup_name: str

    def has_file(self, name: str) -> bool:
        """Whether a setup or basis file ``name`` (or ``name.gz``) is in a setup folder."""
        return any(
            (Path(folder) / candidate).is_file()
            for folder in self.setup_paths
            for candidate in (name, name + ".gz")
        )


@functools.cache
def probe_gpaw(python: str, xc: str) -> GpawInstall:
    """Find GPAW under ``python`` (once per interpreter and functional).

    Raises:
        OracleSetupError: no such interpreter, it cannot import gpaw, or GPAW does not know
            the functional ``xc``.
    """
    executable = shutil.which(python)
    if executable is None:
        raise OracleSetupError(f"Python interpreter '{python}' not found; {INSTALL_HINT}")
    try:
        done = subprocess.run(
            [executable, "-s", "-c", _PROBE % xc],
            capture_output=True,
            text=True,
            timeout=120,
            env=runner_environment(),
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        raise OracleSetupError(f"'{executable}' took over 120 s to import gpaw") from None
    if done.returncode != 0:
        reason = _tail(done.stderr, 3)
        raise OracleSetupError(f"'{executable}' cannot run GPAW ({reason}); {INSTALL_HINT}")
    info = json.loads(done.stdout.strip().splitlines()[-1])
    if info["xc_error"]:
        raise OracleSetupError(f"GPAW cannot use the functional {xc!r}: {info['xc_error']}")
    return GpawInstall(
        python=executable,
        versions=info["versions"],
        setup_paths=tuple(info["setup_paths"]),
        setup_name=info["setup_name"],
    )


def _tail(text: str, lines: int = LOG_TAIL_LINES) -> str:
    """The last ``lines`` non-blank lines of ``text``, joined with `` | ``."""
    kept = [line.strip() for line in text.splitlines() if line.strip()]
    return " | ".join(kept[-lines:])


def _session_pids(sid: int) -> list[int]:
    """Processes of session ``sid`` (Linux ``/proc``): the worker, mpirun and its ranks.

    OpenMPI puts every rank in its own process group, so the session, which they all keep, is
    what finds them.
    """
    pids = []
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            if os.getsid(int(entry.name)) == sid:
                pids.append(int(entry.name))
        except (ProcessLookupError, PermissionError):
            continue
    return pids


def _signal_session(sid: int, sig: signal.Signals) -> None:
    """Send ``sig`` to the process group of the session leader ``sid`` and to every process
    of the session that is still there."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(sid, sig)
    for pid in _session_pids(sid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def stop_process_tree(process: subprocess.Popen[bytes]) -> None:
    """Stop a worker started with ``start_new_session=True`` and everything it started.

    SIGTERM to the whole session (mpirun forwards it to its ranks), SIGKILL to whatever is
    left after :data:`KILL_GRACE_S`, then reap the worker.
    """
    _signal_session(process.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=KILL_GRACE_S)
    _signal_session(process.pid, signal.SIGKILL)
    process.wait()


def _nbands(value: int | str) -> int | str:
    """A positive number of bands, or a positive percentage of the occupied ones."""
    try:
        valid = (
            value > 0 if isinstance(value, int) else value.endswith("%") and float(value[:-1]) > 0
        )
    except ValueError:
        valid = False
    if not valid:
        raise ValueError(f"must be a positive number or a percentage like '200%', not {value!r}")
    return value


def _kpts(value: str | None) -> str | None:
    if value is not None:
        try:
            mesh = [int(n) for n in value.lower().split("x")]
        except ValueError:
            mesh = []
        if len(mesh) != 3 or min(mesh) < 1:
            raise ValueError(f"must look like '4x4x4', not {value!r}")
    return value


def parse_magmoms(text: str | None) -> dict[str, float]:
    """``"Fe=4,Co=3"`` -> ``{"Fe": 4.0, "Co": 3.0}`` (μB) on top of :data:`DEFAULT_MAGMOMS`.

    Raises:
        OracleSetupError: not ``Element=number`` pairs.
    """
    moments = dict(DEFAULT_MAGMOMS)
    for item in (text or "").replace(";", ",").split(","):
        if not item.strip():
            continue
        element, sep, value = item.partition("=")
        try:
            if not sep or not Element.is_valid_symbol(element.strip()):
                raise ValueError
            moments[element.strip()] = float(value)
        except ValueError:
            raise OracleSetupError(
                f"magmoms must be 'Element=μB' pairs like 'Fe=4,Co=3', not {text!r}"
            ) from None
    return moments


class DftOptions(OracleOptions):
    """Options of the ``dft`` oracle (numbers may be given as YAML text such as ``1e-3``)."""

    mode: Literal["pw", "lcao"] = Field("pw", description="`pw` (plane waves) or `lcao` (faster)")
    ecut: float = Field(400.0, gt=0, description="plane-wave cutoff (eV)")
    basis: str = Field("dzp", description="LCAO basis")
    grid_spacing: float | None = Field(
        None,
        gt=0,
        description="real-space grid spacing (Å); LCAO cost scales as its inverse cube "
        "(0.3: ~3× cheaper)",
        json_schema_extra={"default": "GPAW's `0.2`"},
    )
    xc: str = Field("PBE", description="functional (a GPAW name with PAW setups)")
    kpoint_density: float = Field(
        3.5, gt=0, description="k-points per Å⁻¹ (Γ-centred Monkhorst-Pack)"
    )
    kpts: Annotated[str | None, AfterValidator(_kpts)] = Field(
        None, description='an explicit mesh such as `"4x4x4"` instead of the density'
    )
    smearing: float = Field(0.1, gt=0, description="Fermi-Dirac width (eV)")
    spinpol: bool | Literal["auto"] = Field(
        "auto", description="`true`, `false`, `auto` (when an atom has an initial moment)"
    )
    magmoms: str | None = Field(
        None,
        description='initial moments (μB), e.g. `"Fe=4,Co=3"`, all parallel',
        json_schema_extra={"default": "built-in defaults"},
    )
    nbands: Annotated[int | str, AfterValidator(_nbands)] = Field(
        "200%",
        description="bands per spin, a number or a percentage of the occupied ones; they must "
        "reach `dos_emax` above E_F",
    )
    maxiter: int = Field(300, gt=0, description="SCF iterations; more: failed")
    energy_tolerance: float = Field(
        5e-4, gt=0, description="SCF convergence of the energy (eV per valence electron)"
    )
    density_tolerance: float = Field(
        1e-4, gt=0, description="SCF convergence of the density (per valence electron)"
    )
    eigenstates_tolerance: float = Field(
        4e-8, gt=0, description="SCF convergence of the states (eV² per valence electron)"
    )
    mixer_beta: float = Field(
        0.05, gt=0, description="Pulay mixing parameter (0.02 for hard magnetic oxides)"
    )
    mixer_history: int = Field(5, gt=0, description="densities the Pulay mixer keeps")
    mixer_weight: float = Field(
        50.0, gt=0, description="damping of long-wavelength density oscillations"
    )
    metal: Annotated[str, AfterValidator(element_symbol)] = Field(
        "Co", description="metal site of λ1/λ2"
    )
    anion: Annotated[str, AfterValidator(element_symbol)] = Field("O", description="anion of λ1/λ2")
    dos_emin: float = Field(-10.0, lt=0, description="lower end of the DOS window (eV from E_F)")
    dos_emax: float = Field(5.0, gt=0, description="upper end of the DOS window (eV from E_F)")
    dos_width: float = Field(0.1, gt=0, description="Gaussian broadening of the DOS (eV)")
    dos_step: float = Field(0.01, gt=0, description="energy step of the stored PDOS (eV)")
    processes: int = Field(1, gt=0, description="MPI processes (`mpirun -np`)")
    python: str = Field("/usr/bin/python3", description="interpreter with GPAW")
    mpirun: str = Field("mpirun", description="MPI launcher (with `processes` > 1)")
    workdir: str | None = Field(
        None,
        description="where each calculation gets its folder (kept: it holds `pdos.npz`)",
        json_schema_extra={"default": "a temporary folder"},
    )
    min_distance: float = Field(0.5, ge=0, description="closest distance accepted (Å)")


class DftOracle(Oracle):
    """GPAW single point: projected DOS, λ1 and λ2 (seed 000, eq. S2), d-band centres and widths.

    Properties: ``lambda1``, ``lambda2`` (dimensionless; when the structure has ``metal`` and
    ``anion``), ``d_band_center`` and ``d_band_width`` (eV, the d states of all transition
    metals together), ``d_band_center_<El>`` and ``d_band_width_<El>`` (eV, per transition
    metal), ``dos_at_fermi`` (states/eV/atom). Energies are relative to the Fermi level; the
    definitions are those of :mod:`oracles.dos_descriptors`. The total energy, Fermi level,
    magnetic moments, state counts and the paths of ``pdos.npz`` (the PDOS arrays) and
    ``gpaw.txt`` are in the provenance.

    Args:
        name: Name of this oracle in the campaign (defaults to ``"dft"``).
        fidelity: Fidelity level in [0, 1].
        timeout_s: Wall-clock limit per structure (s); the worker is killed when it is reached.
        **options: :class:`DftOptions`.
    """

    type_name: ClassVar[str] = "dft"
    properties: ClassVar[dict[str, str]] = {
        "lambda1": "1",
        "lambda2": "1",
        "d_band_center": "eV",
        "d_band_width": "eV",
        "dos_at_fermi": DOS_UNIT,
    }

    Options: ClassVar[type[DftOptions]] = DftOptions

    default_fidelity: ClassVar[float] = 0.9
    default_timeout_s: ClassVar[float] = 3600.0
    options: DftOptions

    def __init__(self, **settings: Any):
        """``name``, ``fidelity``, ``timeout_s`` and the :class:`DftOptions`."""
        super().__init__(**settings)
        o = self.options
        self.mesh = self._parse_kpts(o.kpts)
        self.magmoms = parse_magmoms(o.magmoms)
        self.convergence: dict[str, Any] = {
            "energy": o.energy_tolerance,
            "density": o.density_tolerance,
            "eigenstates": o.eigenstates_tolerance,
            "bands": f"CBM+{o.dos_emax + 1.0:g}",
        }
        self.mixer = {"beta": o.mixer_beta, "history": o.mixer_history, "weight": o.mixer_weight}
        self.workdir = Path(o.workdir).expanduser() if o.workdir else None
        self.install = probe_gpaw(o.python, o.xc)
        self.mpirun: str | None = None
        if o.processes > 1:
            self.mpirun = shutil.which(o.mpirun)
            if self.mpirun is None:
                raise OracleSetupError(
                    f"'{o.mpirun}' not found for processes={o.processes}; install OpenMPI "
                    "(`apt-get install -y openmpi-bin`, a dependency of Debian's gpaw)"
                )

    @staticmethod
    def _parse_kpts(kpts: str | None) -> tuple[int, int, int] | None:
        """``"4x4x4"`` (validated by :class:`DftOptions`) as a mesh, or ``None``."""
        if kpts is None:
            return None
        a, b, c = (int(n) for n in kpts.lower().split("x"))
        return a, b, c

    # -- set-up checks ---------------------------------------------------------------------

    def check_elements(self, elements: Iterable[str]) -> None:
        """Refuse elements without a PAW setup (or, in ``lcao`` mode, a basis set).

        Raises:
            OracleSetupError: the files that are missing, and where GPAW looked.
        """
        names = [f"{el}.{self.install.setup_name}" for el in sorted(set(elements))]
        if self.options.mode == "lcao":
            names += [f"{el}.{self.options.basis}.basis" for el in sorted(set(elements))]
        missing = [name for name in names if not self.install.has_file(name)]
        if missing:
            raise OracleSetupError(
                f"no GPAW data for {', '.join(missing)} in {', '.join(self.install.setup_paths)}; "
                "Debian's gpaw-data (`apt-get install -y gpaw`) covers the common elements, "
                "others can be generated with `gpaw-setup` and added to GPAW_SETUP_PATH"
            )

    def kpoint_mesh(self, structure: Structure) -> tuple[int, int, int]:
        """Γ-centred Monkhorst-Pack mesh: the explicit ``kpts`` or from ``kpoint_density``."""
        if self.mesh is not None:
            return self.mesh
        atoms = AseAtomsAdaptor.get_atoms(structure)
        mesh = kptdensity2monkhorstpack(atoms, kptdensity=self.options.kpoint_density, even=False)
        return (int(mesh[0]), int(mesh[1]), int(mesh[2]))

    def input_spec(self, structure: Structure) -> dict[str, Any]:
        """The worker's ``input.json``: structure (Å), moments (μB) and GPAW settings (eV)."""
        symbols = [site.specie.symbol for site in structure]
        moments = [self.magmoms.get(el, 0.0) for el in symbols]
        spinpol = any(moments) if self.options.spinpol == "auto" else bool(self.options.spinpol)
        return {
            "symbols": symbols,
            "positions": structure.cart_coords.tolist(),
            "cell": structure.lattice.matrix.tolist(),
            "magmoms": moments,
            "spinpol": spinpol,
            "mode": self.options.mode,
            "ecut": self.options.ecut,
            "basis": self.options.basis,
            "grid_spacing": self.options.grid_spacing,
            "xc": self.options.xc,
            "kpts": list(self.kpoint_mesh(structure)),
            "smearing": self.options.smearing,
            "nbands": self.options.nbands,
            "maxiter": self.options.maxiter,
            "convergence": self.convergence,
            "mixer": self.mixer,
        }

    def command(self) -> list[str]:
        """The worker's command line (``input.json`` is relative to its work directory)."""
        worker = [self.install.python, "-s", str(RUNNER), "input.json"]
        if self.mpirun is None:
            return worker
        return [self.mpirun, "-np", str(self.options.processes), *worker]

    def _new_workdir(self, structure: Structure) -> Path:
        base = self.workdir or Path(tempfile.gettempdir()) / "amloop-dft"
        label = f"{structure.composition.reduced_formula}-{content_hash(structure)[:12]}"
        path = base / f"{label}-{uuid.uuid4().hex[:8]}"
        path.mkdir(parents=True)
        return path

    # -- the computation -------------------------------------------------------------------

    def run_worker(self, workdir: Path, limit_s: float) -> int:
        """Run the worker in ``workdir`` for at most ``limit_s`` seconds.

        Returns:
            Its exit status.

        Raises:
            OracleFailed: the time limit was reached (the worker and its MPI ranks are killed).
        """
        with open(workdir / "runner.log", "wb") as log:
            process = subprocess.Popen(  # stdin: a pipe the worker watches for our end
                self.command(),
                cwd=workdir,
                stdin=subprocess.PIPE,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=runner_environment(),
                start_new_session=True,
            )
            try:
                return process.wait(timeout=max(limit_s, 1.0))
            except subprocess.TimeoutExpired:
                raise OracleFailed(
                    f"timeout: GPAW still running after {limit_s:.0f} s, killed; "
                    f"log: {self._log_tail(workdir)}"
                ) from None
            finally:
                if process.poll() is None:
                    stop_process_tree(process)
                if process.stdin is not None:
                    process.stdin.close()

    @staticmethod
    def _log_tail(workdir: Path) -> str:
        """Last line, then tail, of the worker's stdout/stderr (or of GPAW's log if empty)."""
        for name in ("runner.log", "gpaw.txt"):
            path = workdir / name
            if path.is_file() and (text := path.read_text(errors="replace")).strip():
                return f"{_tail(text, 1)} [tail of {path}: {_tail(text)}]"
        return "no output"

    def compute(self, structure: Structure) -> OracleResult:
        """Run GPAW on ``structure`` and compute the DOS descriptors.

        Raises:
            OracleSetupError: an element has no PAW setup.
            OracleFailed: overlapping atoms, a crash or timeout of GPAW, an SCF that did not
                converge, or bands that do not reach the top of the DOS window.
        """
        started = time.perf_counter()
        if not structure.is_ordered:
            raise OracleFailed("structure has partially occupied sites; DFT needs one atom each")
        self.check_elements({site.specie.symbol for site in structure})
        check_min_distance(structure, self.options.min_distance)
        workdir = self._new_workdir(structure)
        spec = self.input_spec(structure)
        (workdir / "input.json").write_text(json.dumps(spec, indent=1))
        status = self.run_worker(workdir, self.timeout_s - (time.perf_counter() - started))
        result_file = workdir / "result.json"
        if status != 0 or not result_file.is_file():
            raise OracleFailed(
                f"GPAW worker failed with exit status {status}: {self._log_tail(workdir)}"
            )
        result = json.loads(result_file.read_text())
        if result["status"] == "scf_not_converged":
            raise OracleFailed(
                f"SCF not converged within maxiter={self.options.maxiter} iterations "
                f"(GPAW: {result['message']}; {workdir / 'gpaw.txt'})"
            )
        pdos = self._projected_dos(workdir, result)
        descriptors = describe(
            pdos,
            metal=self.options.metal,
            anion=self.options.anion,
            emin=self.options.dos_emin,
            emax=self.options.dos_emax,
        )
        wall = time.perf_counter() - started
        provenance = {
            "workdir": str(workdir),
            "pdos_file": str(pdos.save(workdir / "pdos.npz")),
            "gpaw_log": str(workdir / "gpaw.txt"),
            "natoms": len(structure),
            "kpts": spec["kpts"],
            "spinpol": spec["spinpol"],
            **{
                key: result[key]
                for key in (
                    "versions",
                    "energy_eV",
                    "free_energy_eV",
                    "fermi_level_eV",
                    "magnetic_moment_muB",
                    "magnetic_moments_muB",
                    "iterations",
                    "nbands",
                    "nkpts_ibz",
                    "valence_electrons",
                )
            },
            "gpaw_wall_s": result["wall_s"],
            "wall_s": wall,
            "processes": self.options.processes,
            "core_s": wall * self.options.processes,
            "descriptors": descriptors.as_dict(),
        }
        label = ForceLabel(
            structure=structure,
            energy_eV=result["free_energy_eV"],
            forces_eV_per_A=result["forces_eV_per_A"],
            stress_GPa=result["stress_GPa"],
        )
        return OracleResult(
            properties=descriptors.properties(), provenance=provenance, labels=[label]
        )

    def _projected_dos(self, workdir: Path, result: dict[str, Any]) -> ProjectedDos:
        """Broaden the worker's eigenstates into a PDOS on the grid around the window.

        Raises:
            OracleFailed: the highest band lies below the top of the window at some k-point.
        """
        fermi = float(result["fermi_level_eV"])
        with np.load(workdir / "eigenstates.npz", allow_pickle=False) as data:
            eigenvalues, k_weights = data["eigenvalues"], data["k_weights"]
            populations, species = data["populations"], tuple(str(s) for s in data["species"])
        reach = float((eigenvalues[..., -1] - fermi).min())
        if reach < self.options.dos_emax + 3.0 * self.options.dos_width:
            raise OracleFailed(
                f"nbands={result['nbands']} reaches only E_F + {reach:.2f} eV at some k-point, "
                f"below the DOS window's top E_F + {self.options.dos_emax} eV (+3 widths); raise nbands"
            )
        grid = np.arange(
            self.options.dos_emin - GRID_MARGIN_EV,
            self.options.dos_emax + GRID_MARGIN_EV + 0.5 * self.options.dos_step,
            self.options.dos_step,
        )
        return ProjectedDos.from_eigenstates(
            eigenvalues, k_weights, populations, species, fermi, grid, width=self.options.dos_width
        )

    def evaluate(self, candidate: Candidate) -> Evaluation:
        """Score ``candidate``; the cost is wall time × MPI processes (core-seconds)."""
        wall0 = time.perf_counter()
        evaluation = super().evaluate(candidate)
        core_s = (time.perf_counter() - wall0) * self.options.processes
        return evaluation.model_copy(update={"cost": Cost(core_s=core_s)})

    def provenance(self) -> dict[str, Any]:
        """Code, versions, interpreter and every setting of the calculation and the analysis."""
        return {
            **super().provenance(),
            "code": "gpaw",
            "version": self.install.versions["gpaw"],
            "python": self.install.python,
            "parameters": {
                "mode": self.options.mode,
                "ecut_eV": self.options.ecut,
                "basis": self.options.basis,
                "grid_spacing_A": self.options.grid_spacing,
                "xc": self.options.xc,
                "setups": self.install.setup_name,
                "kpoint_density_A": self.options.kpoint_density,
                "kpts": list(self.mesh) if self.mesh else None,
                "smearing_fermi_dirac_eV": self.options.smearing,
                "spinpol": self.options.spinpol,
                "magmoms_muB": self.magmoms,
                "nbands": self.options.nbands,
                "maxiter": self.options.maxiter,
                "convergence": self.convergence,
                "mixer": self.mixer,
                "metal": self.options.metal,
                "anion": self.options.anion,
                "dos_window_eV": [self.options.dos_emin, self.options.dos_emax],
                "dos_width_eV": self.options.dos_width,
                "dos_step_eV": self.options.dos_step,
                "processes": self.options.processes,
                "min_distance_A": self.options.min_distance,
            },
        }
