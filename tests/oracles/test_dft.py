"""The DFT descriptor oracle: real GPAW on tiny cells, and the descriptor math on synthetic DOS.

GPAW comes from Debian (``apt-get install -y gpaw``) and runs under ``/usr/bin/python3``.
Without it the GPAW tests are skipped, except under CI (``CI`` set), where that is an error.

Reference numbers (measured with GPAW 22.8, PBE, 300 eV plane waves, 0.1 eV Fermi-Dirac):

- fcc Ni (a = 3.52 Å, 8x8x8 k): moment 0.70 μB, d-band centre -1.63 eV, width 1.66 eV
  (PBE literature: -1.3 to -1.7 eV depending on the projection). The PAW-sphere projections
  hold 100 % of the Ni 3p semicore states, 94 % of the states of the d band (E_F - 3 eV to
  E_F) and 89 % of all states within E_F - 10 eV to E_F + 5 eV; the rest is interstitial.
- ferromagnetic rock-salt CoO (a = 4.26 Å, 4x4x4 k): Co moment 2.2 μB, N(Co d) = 9.08,
  N(Co d, unocc) = 2.36, N(Co e_g, unocc) = 1.72, N(O p, unocc) = 0.40 (states per atom),
  λ1 = 6.71, λ2 = 39.5 (LCAO dzp: 7.02, 42.0).
"""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from pymatgen.core import Lattice, Structure
from pymatgen.electronic_structure.core import Orbital, OrbitalType, Spin
from pymatgen.electronic_structure.dos import CompleteDos, Dos

from amloop.oracles.base import OracleSetupError
from amloop.oracles.dft import DftOracle, parse_magmoms, probe_gpaw
from amloop.oracles.dos_descriptors import (
    ORBITAL_GROUPS,
    ORBITALS,
    ProjectedDos,
    band_moments,
    describe,
    integrate,
    read_vasprun,
)
from amloop.oracles.registry import create_oracle, oracle_types
from amloop.state.schema import Candidate

SYSTEM_PYTHON = "/usr/bin/python3"


# --------------------------------------------------------------------------- GPAW fixtures
@pytest.fixture(scope="module")
def gpaw() -> None:
    """Skip (fail under CI) when Debian's GPAW is not installed."""
    try:
        probe_gpaw(SYSTEM_PYTHON, "PBE")
    except OracleSetupError as exc:
        message = f"GPAW tests need Debian's gpaw (apt-get install -y gpaw): {exc}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


def ni_fcc() -> Structure:
    """One-atom fcc Ni, a = 3.52 Å."""
    h = 3.52 / 2
    return Structure(Lattice([[0, h, h], [h, 0, h], [h, h, 0]]), ["Ni"], [[0, 0, 0]])


def coo_rocksalt() -> Structure:
    """Two-atom rock-salt CoO, a = 4.26 Å, cubic axes along x, y, z."""
    h = 4.26 / 2
    lattice = Lattice([[0, h, h], [h, 0, h], [h, h, 0]])
    return Structure(lattice, ["Co", "O"], [[0, 0, 0], [0.5, 0.5, 0.5]])


def candidate(structure: Structure) -> Candidate:
    return Candidate(structure=structure, origin="seed")


@pytest.fixture(scope="module")
def ni_run(gpaw: None, tmp_path_factory: pytest.TempPathFactory):
    oracle = DftOracle(ecut=300, kpts="8x8x8", workdir=str(tmp_path_factory.mktemp("ni")))
    return oracle.evaluate(candidate(ni_fcc()))


@pytest.fixture(scope="module")
def coo_run(gpaw: None, tmp_path_factory: pytest.TempPathFactory):
    oracle = DftOracle(ecut=300, kpts="4x4x4", workdir=str(tmp_path_factory.mktemp("coo")))
    return oracle.evaluate(candidate(coo_rocksalt()))


# --------------------------------------------------------------------------- real GPAW
def test_ni_d_band_centre_is_below_the_fermi_level(ni_run) -> None:
    assert ni_run.status == "done", ni_run.error
    props = {name: p.value for name, p in ni_run.properties.items()}
    assert -2.0 < props["d_band_center_Ni"] < -1.2  # PBE Ni: about -1.3 to -1.7 eV
    assert props["d_band_center"] == props["d_band_center_Ni"]
    assert 1.0 < props["d_band_width_Ni"] < 2.5
    assert 1.0 < props["dos_at_fermi"] < 3.0  # E_F sits on the minority d-band edge
    assert "lambda1" not in props  # no Co, no O
    assert 0.5 < ni_run.provenance["magnetic_moment_muB"] < 0.8  # experiment: 0.6 μB
    d_states = ni_run.provenance["descriptors"]["d_bands_eV"]["Ni"]["states"]
    assert 8.5 < d_states < 10.0  # ten d states, less the interstitial part


def test_the_call_keeps_a_force_label_that_respects_cubic_symmetry(ni_run) -> None:
    (label,) = ni_run.labels
    assert label.oracle == "dft" and label.source == "final"
    assert label.energy_eV == pytest.approx(ni_run.provenance["free_energy_eV"])
    assert np.abs(label.forces_eV_per_A).max() < 1e-3  # every atom a centre of inversion
    assert label.stress_GPa is not None
    xx, yy, zz, *shear = label.stress_GPa
    assert yy == pytest.approx(xx, abs=0.05) and zz == pytest.approx(xx, abs=0.05)
    assert np.abs(shear).max() < 0.05  # GPa: a cubic crystal under hydrostatic stress only


def test_orbital_projections_sum_to_the_total_dos(ni_run) -> None:
    """PAW-sphere populations: complete for semicore states, 85-100 % for valence states.

    Each state's populations sum to at most one (nothing is double counted); what is missing
    is the charge outside the PAW sphere, largest for the free-electron-like 4s/4p states
    (measured: 94 % of the d band E_F - 3 eV to E_F, 89 % of E_F - 10 eV to E_F + 5 eV).
    """
    pdos = ProjectedDos.load(ni_run.provenance["pdos_file"])
    projected = pdos.projected.sum(axis=(0, 1, 2))
    total = pdos.total.sum(axis=0)
    assert np.all(projected <= total * (1 + 1e-9) + 1e-9)
    e = pdos.energies
    d_band = integrate(e, projected, -3.0, 0.0) / integrate(e, total, -3.0, 0.0)
    window = integrate(e, projected, -10.0, 5.0) / integrate(e, total, -10.0, 5.0)
    assert 0.92 < d_band <= 1.0
    assert 0.85 < window <= 1.0
    workdir = Path(ni_run.provenance["workdir"])
    with np.load(workdir / "eigenstates.npz") as raw:
        relative = raw["eigenvalues"] - ni_run.provenance["fermi_level_eV"]
        per_state = raw["populations"].sum(axis=(3, 4))
    semicore = per_state[relative < -50.0]  # Ni 3p, inside the sphere
    assert semicore.size > 0
    assert np.allclose(semicore, 1.0, atol=0.01)
    # at most one state per state up to well above the window (far above it, beyond E_F +
    # 25 eV, unconverged bands leave the projectors' range and the expansion is meaningless)
    assert per_state[relative < 10.0].max() < 1.0 + 2e-3


def test_coo_lambdas_follow_eq_s2(coo_run) -> None:
    assert coo_run.status == "done", coo_run.error
    props = {name: p.value for name, p in coo_run.properties.items()}
    lam = coo_run.provenance["descriptors"]["lambdas"]
    ratio = lam["n_eg_unoccupied"] / lam["n_anion_p_unoccupied"]
    assert props["lambda1"] == pytest.approx(lam["n_d_unoccupied"] + ratio, rel=1e-12)
    assert props["lambda2"] == pytest.approx(lam["n_d"] * ratio, rel=1e-12)
    # high-spin Co2+ (d7): minority e_g empty, so e_g dominates the unoccupied d states
    assert 1.4 < lam["n_eg_unoccupied"] < 2.0
    assert lam["n_eg_unoccupied"] > lam["n_d_unoccupied"] - lam["n_eg_unoccupied"]
    assert 8.5 < lam["n_d"] < 10.0
    assert 1.8 < coo_run.provenance["magnetic_moments_muB"][0] < 3.0
    assert 4.0 < props["lambda1"] < 10.0
    assert props["d_band_center_Co"] < 0.0
    assert coo_run.cost.core_s >= coo_run.provenance["gpaw_wall_s"]


def test_coo_m_resolution_follows_the_octahedral_symmetry(coo_run) -> None:
    """Cubic site, cubic axes: d_z² = d_x²−y² (e_g) and d_xy = d_yz = d_xz (t2g)."""
    pdos = ProjectedDos.load(coo_run.provenance["pdos_file"])
    co = pdos.projected[pdos.species.index("Co")].sum(axis=1)  # (9, n_E)
    e = pdos.energies
    n = {orb: integrate(e, co[i], -10.0, 5.0) for i, orb in enumerate(ORBITALS)}
    assert n["dz2"] == pytest.approx(n["dx2-y2"], rel=1e-3)
    assert n["dxy"] == pytest.approx(n["dyz"], rel=1e-3)
    assert n["dxy"] == pytest.approx(n["dxz"], rel=1e-3)
    unocc = {orb: integrate(e, co[i], 0.0, 5.0) for i, orb in enumerate(ORBITALS)}
    assert unocc["dz2"] > 2 * unocc["dxy"]  # the empty minority e_g


def test_non_converging_scf_is_a_failed_evaluation(gpaw: None, tmp_path: Path) -> None:
    oracle = DftOracle(ecut=300, kpts="2x2x2", maxiter=2, workdir=str(tmp_path))
    evaluation = oracle.evaluate(candidate(coo_rocksalt()))
    assert evaluation.status == "failed"
    assert "SCF not converged within maxiter=2" in evaluation.error
    assert evaluation.properties == {}


def test_gpaw_error_is_a_failed_evaluation_with_the_log(gpaw: None, tmp_path: Path) -> None:
    oracle = DftOracle(ecut=300, kpts="2x2x2", nbands=2, workdir=str(tmp_path))
    evaluation = oracle.evaluate(candidate(ni_fcc()))
    assert evaluation.status == "failed"
    assert "exit status 1: ValueError: Too few bands!" in evaluation.error
    assert "runner.log" in evaluation.error


@pytest.fixture
def fake_python(tmp_path: Path):
    """An 'interpreter' that is the system Python, except when it runs the GPAW worker."""

    def make(behaviour: str) -> str:
        script = tmp_path / f"python-{behaviour.split()[0]}"
        script.write_text(
            "#!/bin/sh\n"
            'case "$*" in\n'
            f"  *gpaw_runner.py*) {behaviour} ;;\n"
            f'  *) exec {SYSTEM_PYTHON} "$@" ;;\n'
            "esac\n"
        )
        script.chmod(0o755)
        return str(script)

    return make


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return True
    return state == "Z"


def test_hung_worker_is_killed_with_its_children(gpaw: None, fake_python, tmp_path: Path) -> None:
    python = fake_python("sleep 300 & echo $! > child.pid; wait")
    oracle = DftOracle(python=python, timeout_s=3, kpts="1x1x1", workdir=str(tmp_path / "runs"))
    started = time.perf_counter()
    evaluation = oracle.evaluate(candidate(ni_fcc()))
    assert time.perf_counter() - started < 15
    assert evaluation.status == "failed"
    assert evaluation.error.startswith("OracleFailed: timeout: GPAW still running after 3 s")
    (pid_file,) = (tmp_path / "runs").glob("*/child.pid")
    pid = int(pid_file.read_text())
    deadline = time.perf_counter() + 5
    while not _gone(pid) and time.perf_counter() < deadline:
        time.sleep(0.1)
    assert _gone(pid)


def test_killed_worker_is_a_failed_evaluation(gpaw: None, fake_python, tmp_path: Path) -> None:
    python = fake_python("echo 'segmentation fault in rank 0' >&2; kill -KILL $$")
    oracle = DftOracle(python=python, kpts="1x1x1", workdir=str(tmp_path))
    evaluation = oracle.evaluate(candidate(ni_fcc()))
    assert evaluation.status == "failed"
    assert "exit status -9: segmentation fault in rank 0" in evaluation.error


def _workers_in(folder: Path) -> list[int]:
    """Processes whose working directory lies under ``folder``."""
    pids = []
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            if Path(os.readlink(entry / "cwd")).is_relative_to(folder):
                pids.append(int(entry.name))
        except OSError:
            continue
    return pids


def test_worker_stops_when_the_oracle_process_dies(gpaw: None, tmp_path: Path) -> None:
    """A killed loop leaves no DFT run behind: the worker exits when its stdin pipe closes."""
    code = (
        "from pymatgen.core import Lattice, Structure\n"
        "from oracles.dft import DftOracle\n"
        "from state.schema import Candidate\n"
        "h = 1.76\n"
        "ni = Structure(Lattice([[0, h, h], [h, 0, h], [h, h, 0]]), ['Ni'], [[0, 0, 0]])\n"
        f"oracle = DftOracle(ecut=400, kpts='12x12x12', workdir={str(tmp_path)!r})\n"
        "oracle.evaluate(Candidate(structure=ni, origin='seed'))\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", code])
    try:
        deadline = time.perf_counter() + 60
        while not (workers := _workers_in(tmp_path)) and time.perf_counter() < deadline:
            time.sleep(0.2)
        assert workers, "the worker never started"
    finally:
        parent.kill()
        parent.wait()
    deadline = time.perf_counter() + 10
    while any(not _gone(pid) for pid in workers) and time.perf_counter() < deadline:
        time.sleep(0.1)
    assert all(_gone(pid) for pid in workers)


def test_elements_without_paw_setups_are_refused_before_work(gpaw: None, tmp_path: Path) -> None:
    oracle = DftOracle(workdir=str(tmp_path))
    oracle.check_elements(["Co", "O", "Fe", "Ni", "Mo", "B"])  # seed 000's FeCoNiMoBOx
    with pytest.raises(OracleSetupError, match=r"no GPAW data for La\.PBE.*gpaw-setup"):
        oracle.check_elements(["La", "O"])
    lao = Structure(Lattice.cubic(5.0), ["La", "O"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    with pytest.raises(OracleSetupError):
        oracle.evaluate(candidate(lao))
    assert list(tmp_path.iterdir()) == []


def test_unknown_functional_is_a_setup_error(gpaw: None) -> None:
    with pytest.raises(OracleSetupError, match="GPAW cannot use the functional 'NOPE'"):
        DftOracle(xc="NOPE")


def test_overlapping_atoms_fail_before_gpaw(gpaw: None, tmp_path: Path) -> None:
    structure = Structure(Lattice.cubic(5.0), ["Ni", "Ni"], [[0, 0, 0], [0.02, 0, 0]])
    evaluation = DftOracle(workdir=str(tmp_path)).evaluate(candidate(structure))
    assert evaluation.status == "failed"
    assert "atoms too close" in evaluation.error
    assert list(tmp_path.iterdir()) == []


def test_input_settings(gpaw: None) -> None:
    oracle = DftOracle(magmoms="Co=3", kpoint_density=3.5)
    spec = oracle.input_spec(coo_rocksalt())
    assert spec["magmoms"] == [3.0, 0.0]
    assert spec["spinpol"] is True
    assert spec["kpts"] == [9, 9, 9]  # ceil(2π · 3.5 Å · |b|), |b| = √3 / 4.26 Å
    assert spec["convergence"]["bands"] == "CBM+6"
    assert (
        DftOracle(spinpol="auto").input_spec(Structure(Lattice.cubic(4.0), ["Cu"], [[0] * 3]))[
            "spinpol"
        ]
        is False
    )
    # YAML 1.1 and `--set` read 1e-3 (no dot) as text: taken as the number
    assert DftOracle(density_tolerance="1e-3").convergence["density"] == 1e-3
    assert DftOracle(processes=2).command()[1:3] == ["-np", "2"]
    assert DftOracle().command()[0] == SYSTEM_PYTHON


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="needs two cores for mpirun -np 2")
def test_mpi_run_gives_the_serial_numbers(gpaw: None, coo_run, tmp_path: Path) -> None:
    oracle = DftOracle(ecut=300, kpts="4x4x4", processes=2, workdir=str(tmp_path))
    evaluation = oracle.evaluate(candidate(coo_rocksalt()))
    assert evaluation.status == "done", evaluation.error
    serial = {name: p.value for name, p in coo_run.properties.items()}
    for name, prop in evaluation.properties.items():
        assert prop.value == pytest.approx(serial[name], rel=2e-3, abs=2e-3), name
    assert evaluation.provenance["processes"] == 2


@pytest.mark.slow
def test_lcao_on_a_coarse_grid_agrees_with_plane_waves(gpaw: None, coo_run, tmp_path: Path) -> None:
    oracle = DftOracle(mode="lcao", grid_spacing=0.3, kpts="4x4x4", workdir=str(tmp_path))
    evaluation = oracle.evaluate(candidate(coo_rocksalt()))
    assert evaluation.status == "done", evaluation.error
    log = Path(evaluation.provenance["gpaw_log"]).read_text()
    spacing = re.search(r"Effective grid spacing dv\^\(1/3\) = ([\d.]+)", log)
    assert spacing is not None and 0.25 < float(spacing.group(1)) < 0.4  # GPAW default: 0.2
    pw = {name: p.value for name, p in coo_run.properties.items()}
    lcao = {name: p.value for name, p in evaluation.properties.items()}
    assert lcao["lambda1"] == pytest.approx(pw["lambda1"], rel=0.1)
    assert lcao["lambda2"] == pytest.approx(pw["lambda2"], rel=0.1)
    assert lcao["d_band_center_Co"] == pytest.approx(pw["d_band_center_Co"], abs=0.1)


# --------------------------------------------------------------------------- set-up errors
def test_registered_and_missing_interpreter_is_a_setup_error() -> None:
    assert "dft" in oracle_types()
    with pytest.raises(OracleSetupError, match=r"apt-get install -y gpaw"):
        create_oracle("dft", python="/nonexistent/python3")


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"mode": "fd"}, "mode: Input should be 'pw' or 'lcao'"),
        ({"kpts": "4x4"}, "kpts: must look like '4x4x4'"),
        ({"dos_emin": 1.0}, "dos_emin: Input should be less than 0"),
        ({"magmoms": "Fe4"}, "magmoms must be"),
        ({"metal": "Xx"}, "metal: must be an element symbol"),
        ({"ecut": 0}, "ecut: Input should be greater than 0"),
        ({"grid_spacing": -0.3}, "grid_spacing: Input should be greater than 0"),
        ({"spinpol": "sometimes"}, "spinpol"),
        ({"nbands": "lots"}, "nbands: must be a positive number or a percentage"),
        ({"density_tolerance": "tight"}, "density_tolerance: Input should be a valid number"),
        ({"ecutt": 500}, "ecutt: unknown option"),
    ],
)
def test_bad_options_are_setup_errors(options: dict, match: str) -> None:
    with pytest.raises(OracleSetupError, match=match):
        DftOracle(python="/nonexistent/python3", **options)


def test_parse_magmoms_extends_the_defaults() -> None:
    moments = parse_magmoms("Fe=4; Mo=0.5")
    assert moments["Fe"] == 4.0 and moments["Mo"] == 0.5 and moments["Co"] == 2.0


# --------------------------------------------------------------------------- descriptor math
GRID = np.round(np.arange(-12.0, 8.0 + 1e-9, 0.01), 10)
SITES = ("Co", "Co", "O", "O", "O", "Ni")


def linear_pdos(heights: np.ndarray) -> ProjectedDos:
    """PDOS ``h (1 + E / 20)`` per site, orbital and spin: integrable by hand, exactly."""
    shape = 1.0 + GRID / 20.0
    projected = heights[..., None] * shape
    total = projected.sum(axis=(0, 1)) + 0.5 * shape  # plus some interstitial
    return ProjectedDos(GRID, total, projected, SITES, fermi_level=5.0)


def linear_integral(lo: float, hi: float) -> float:
    """∫ (1 + E / 20) dE over [lo, hi]."""
    return (hi - lo) + (hi**2 - lo**2) / 40.0


@pytest.fixture
def heights() -> np.ndarray:
    return np.random.default_rng(7).uniform(0.05, 1.0, size=(len(SITES), len(ORBITALS), 2))


def test_integrate_is_exact_for_linear_dos_between_grid_points() -> None:
    dos = 0.3 * (1.0 + GRID / 20.0)
    assert integrate(GRID, dos, -9.995, 4.237) == pytest.approx(
        0.3 * linear_integral(-9.995, 4.237), rel=1e-12
    )
    assert integrate(GRID, dos, -30.0, 30.0) == pytest.approx(0.3 * linear_integral(-12, 8))
    assert integrate(GRID, dos, 2.0, 1.0) == 0.0


def test_lambdas_of_a_synthetic_pdos_equal_eq_s2(heights: np.ndarray) -> None:
    emin, emax = -9.995, 4.237  # off the grid: the window ends are interpolated
    co = heights[[0, 1]].mean(axis=0).sum(axis=-1)  # per Co atom, spins summed, (9,)
    o = heights[[2, 3, 4]].mean(axis=0).sum(axis=-1)
    d_sum = co[list(ORBITAL_GROUPS["d"])].sum()
    eg_sum = co[list(ORBITAL_GROUPS["eg"])].sum()
    p_sum = o[list(ORBITAL_GROUPS["p"])].sum()
    n_d = d_sum * linear_integral(emin, emax)
    n_d_un = d_sum * linear_integral(0.0, emax)
    n_eg_un = eg_sum * linear_integral(0.0, emax)
    n_p_un = p_sum * linear_integral(0.0, emax)
    lambda1 = n_d_un + n_eg_un / n_p_un
    lambda2 = n_d * n_eg_un / n_p_un

    result = describe(linear_pdos(heights), metal="Co", anion="O", emin=emin, emax=emax)
    props = result.properties()
    assert props["lambda1"].value == pytest.approx(lambda1, rel=1e-12)
    assert props["lambda2"].value == pytest.approx(lambda2, rel=1e-12)
    assert result.lambdas is not None
    assert result.lambdas.n_d == pytest.approx(n_d, rel=1e-12)
    occupied, unoccupied = result.counts["O"]["p"]
    assert unoccupied == pytest.approx(n_p_un, rel=1e-12)
    assert occupied == pytest.approx(p_sum * linear_integral(emin, 0.0), rel=1e-12)
    assert set(result.d_bands) == {"Co", "Ni"}  # transition metals only
    assert {"d_band_center_Co", "d_band_width_Ni", "d_band_center", "dos_at_fermi"} <= set(props)
    assert props["dos_at_fermi"].value == pytest.approx(
        (heights.sum() + 0.5 * 2) / len(SITES), rel=1e-12
    )


def test_lambdas_need_the_metal_and_unoccupied_anion_p_states(heights: np.ndarray) -> None:
    assert describe(linear_pdos(heights), metal="Fe").lambdas is None
    heights[2:5, 1:4] = 0.0  # no O p states at all
    result = describe(linear_pdos(heights))
    assert result.lambdas is None
    assert any("no unoccupied O p states" in note for note in result.notes)
    assert "lambda1" not in result.properties()


def test_d_band_moments_of_a_gaussian_band() -> None:
    centre, sigma = -2.0, 0.8
    dos = 10.0 / (math.sqrt(math.pi) * sigma) * np.exp(-(((GRID - centre) / sigma) ** 2))
    moments = band_moments(GRID, dos, -10.0, 5.0)
    assert moments.centre == pytest.approx(centre, abs=1e-6)
    assert moments.width == pytest.approx(sigma / math.sqrt(2.0), rel=1e-5)
    assert moments.states == pytest.approx(10.0, rel=1e-6)


def test_broadening_conserves_states_and_spin_degeneracy() -> None:
    fermi = 3.0
    eigenvalues = np.array([[[fermi - 3.0, fermi - 1.0, fermi + 2.0]] * 2])  # 1 spin, 2 k
    k_weights = np.array([0.25, 0.75])
    populations = np.zeros((1, 2, 3, 2, 9))
    populations[0, :, 0, 0, 6] = 0.6  # band 0: 60 % d_z² on site 0
    populations[0, :, 2, 1, 1] = 0.3  # band 2: 30 % p_y on site 1
    pdos = ProjectedDos.from_eigenstates(
        eigenvalues, k_weights, populations, ("Co", "O"), fermi, GRID, width=0.1
    )
    assert integrate(GRID, pdos.total[0], -12, 0) == pytest.approx(4.0, rel=1e-9)  # 2 bands × 2
    assert integrate(GRID, pdos.total[0], 0, 8) == pytest.approx(2.0, rel=1e-9)
    assert integrate(GRID, pdos.element_dos("Co", "eg"), -12, 0) == pytest.approx(1.2, rel=1e-9)
    assert integrate(GRID, pdos.element_dos("O", "p"), 0, 8) == pytest.approx(0.6, rel=1e-9)
    assert pdos.dos_at_fermi() < 1e-20


def test_save_and_load_round_trip(heights: np.ndarray, tmp_path: Path) -> None:
    pdos = linear_pdos(heights)
    loaded = ProjectedDos.load(pdos.save(tmp_path / "pdos.npz"))
    assert loaded.species == SITES and loaded.fermi_level == 5.0
    assert np.array_equal(loaded.projected, pdos.projected)
    assert np.array_equal(loaded.total, pdos.total)


# --------------------------------------------------------------------------- VASP path
def complete_dos(pdos: ProjectedDos, l_resolved: bool = False) -> CompleteDos:
    """The same DOS as pymatgen builds it from a VASP run (absolute energies)."""
    structure = Structure(
        Lattice.cubic(10.0),
        list(pdos.species),
        np.linspace(0, 0.8, len(pdos.species))[:, None] * np.ones(3),
    )
    spins = (Spin.up, Spin.down)
    energies = pdos.energies + pdos.fermi_level
    total = Dos(pdos.fermi_level, energies, {s: pdos.total[i] for i, s in enumerate(spins)})
    pdoss = {}
    for site, per_site in zip(structure, pdos.projected, strict=True):
        if l_resolved:
            pdoss[site] = {
                OrbitalType(ell): {s: per_site[list(group), i].sum(0) for i, s in enumerate(spins)}
                for ell, group in enumerate(ORBITAL_GROUPS[g] for g in ("s", "p", "d"))
            }
        else:
            pdoss[site] = {
                Orbital(c): {s: per_site[c, i] for i, s in enumerate(spins)}
                for c in range(len(ORBITALS))
            }
    return CompleteDos(structure, total, pdoss)


def test_complete_dos_gives_the_same_descriptors(heights: np.ndarray) -> None:
    pdos = linear_pdos(heights)
    converted = ProjectedDos.from_complete_dos(complete_dos(pdos))
    assert converted.species == pdos.species
    assert np.allclose(converted.energies, pdos.energies, atol=1e-12)
    assert np.array_equal(converted.projected, pdos.projected)
    expected = describe(pdos).properties()
    got = describe(converted).properties()
    assert got.keys() == expected.keys()
    for name, prop in expected.items():
        assert got[name].value == pytest.approx(prop.value, rel=1e-9), name


def test_l_resolved_projections_are_refused(heights: np.ndarray) -> None:
    with pytest.raises(ValueError, match="LORBIT = 11"):
        ProjectedDos.from_complete_dos(complete_dos(linear_pdos(heights), l_resolved=True))


def _ase_vasprun() -> Path:
    import ase

    path = Path(ase.__file__).parent / "test" / "testdata" / "vasp" / "vasprun_pstress.xml"
    if not path.is_file():
        pytest.skip(f"ASE's test vasprun.xml is not installed ({path})")
    return path


def test_vasprun_without_projections_is_refused() -> None:
    with pytest.raises(ValueError, match="LORBIT = 11"):
        read_vasprun(_ase_vasprun())


def test_vasprun_with_m_resolved_projections(tmp_path: Path) -> None:
    """A real vasprun.xml (ASE's diamond test run) with a LORBIT = 11 ``<partial>`` block added."""
    text = _ase_vasprun().read_text()
    efermi = float(re.search(r'<i name="efermi">\s*([-\d.]+)', text).group(1))
    total_block = text[text.index("<total>") : text.index("</total>")]
    energies = np.array([float(r.split()[0]) for r in re.findall(r"<r>(.*?)</r>", total_block)])
    columns = ("s", "py", "pz", "px", "dxy", "dyz", "dz2", "dxz", "x2-y2")
    values = np.random.default_rng(3).uniform(0.0, 1.0, (2, len(columns), len(energies)))
    lines = ["<partial><array>", "<field>energy</field>"]
    lines += [f"<field>{c}</field>" for c in columns] + ["<set>"]
    for ion in range(2):
        lines += [f'<set comment="ion {ion + 1}">', '<set comment="spin 1">']
        lines += [
            "<r>" + " ".join(f"{x:.4f}" for x in (e, *values[ion, :, g])) + "</r>"
            for g, e in enumerate(energies)
        ]
        lines += ["</set>", "</set>"]
    lines += ["</set>", "</array></partial>"]
    path = tmp_path / "vasprun.xml"
    path.write_text(text.replace("</dos>", "\n".join(lines) + "\n</dos>"))

    pdos = read_vasprun(path)
    assert pdos.species == ("C", "C")
    assert pdos.fermi_level == efermi
    assert np.allclose(pdos.energies, energies - efermi)
    assert np.allclose(pdos.projected[:, :, 0], np.round(values, 4))
    result = describe(pdos, metal="C", anion="C", emin=-5.0, emax=5.0)
    assert result.lambdas is not None
    eg = integrate(pdos.energies, pdos.projected[:, [6, 8], 0].sum(axis=(0, 1)) / 2, 0.0, 5.0)
    assert result.lambdas.n_eg_unoccupied == pytest.approx(eg, rel=1e-12)
