"""The LAMMPS oracle on real shipped potentials, at small sizes.

Reference values are the ones the potentials are published with:

- ``Ni_u3.eam``: Foiles, Baskes & Daw, PRB 33, 7983 (1986), fitted to experiment:
  a = 3.52 Å, E_c = 4.45 eV, B = 1.804 Mbar; the EAM gives C11 = 2.33, C12 = 1.54,
  C44 = 1.28 Mbar (their Table).
- ``Fe_mm.eam.fs``: Mendelev et al., Phil. Mag. 83, 3977 (2003), potential 2:
  a = 2.855 Å, C11 = 243, C12 = 145, C44 = 116 GPa, so B = (C11 + 2 C12) / 3 = 177.7 GPa.
- ``Si.sw``: Stillinger & Weber, PRB 31, 5262 (1985): C11 = 151.4, C12 = 76.4 GPa, so
  B = 101.4 GPa.
"""

from __future__ import annotations

import hashlib
import math
import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from pymatgen.core import Lattice, Structure

from amloop.oracles.base import OracleFailed, OracleSetupError
from amloop.oracles.lammps import (
    LammpsOracle,
    lammps_cell,
    meam_library_entries,
    potentials_dir,
    resolve_potential_file,
    setfl_elements,
)
from amloop.oracles.registry import create_oracle, oracle_types
from amloop.state.schema import Candidate

FCC = [[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]]


def fcc(element: str, a: float) -> Structure:
    """Conventional 4-atom FCC cell with lattice parameter ``a`` (Å)."""
    return Structure(Lattice.cubic(a), [element] * 4, FCC)


def bcc(element: str, a: float) -> Structure:
    """Conventional 2-atom BCC cell with lattice parameter ``a`` (Å)."""
    return Structure(Lattice.cubic(a), [element] * 2, [[0, 0, 0], [0.5, 0.5, 0.5]])


def random_nifecr(seed: int = 0) -> Structure:
    """Random equiatomic 54-atom Ni-Fe-Cr FCC cell (3x3x3 two-atom tetragonal cells, seed 001)."""
    a = 3.56
    cell = Structure(Lattice.tetragonal(a / math.sqrt(2), a), ["Ni", "Ni"], [[0, 0, 0], [0.5] * 3])
    cell.make_supercell((3, 3, 3))
    species = np.random.default_rng(seed).permutation(["Ni"] * 18 + ["Fe"] * 18 + ["Cr"] * 18)
    return Structure(cell.lattice, list(species), cell.frac_coords)


def values(result) -> dict[str, float]:
    return {name: prop.value for name, prop in result.properties.items()}


def stiffness(result) -> np.ndarray:
    return np.array(result.provenance["elastic_tensor_GPa"])


def test_ni_u3_reproduces_its_published_elastic_constants() -> None:
    result = LammpsOracle(potential="Ni_u3.eam", method="elastic").compute(fcc("Ni", 3.60))
    got, c = values(result), stiffness(result)
    assert got["bulk_modulus"] == pytest.approx(180.4, rel=0.03)
    assert c[0, 0] == pytest.approx(233.0, rel=0.03)
    assert c[0, 1] == pytest.approx(154.0, rel=0.03)
    assert c[3, 3] == pytest.approx(128.0, rel=0.03)
    assert got["energy_per_atom"] == pytest.approx(-4.45, abs=1e-3)
    assert abs(got["pressure"]) < 0.01
    assert result.relaxed_structure.lattice.a == pytest.approx(3.52, abs=1e-3)
    assert got["density"] == pytest.approx(4 * 58.69 / 0.6022 / 3.52**3, rel=1e-3)  # g/cm³


def test_fe_mendelev_reproduces_its_published_elastic_constants() -> None:
    result = LammpsOracle(potential="Fe_mm.eam.fs").compute(bcc("Fe", 2.80))
    got, c = values(result), stiffness(result)
    assert got["bulk_modulus"] == pytest.approx(177.7, rel=0.03)
    assert (c[0, 0], c[0, 1], c[3, 3]) == pytest.approx((243.0, 145.0, 116.0), rel=0.03)
    assert got["shear_modulus"] == pytest.approx((243 - 145 + 3 * 116) / 5, rel=0.03)
    assert result.relaxed_structure.lattice.a == pytest.approx(2.855, abs=2e-3)


def test_stillinger_weber_silicon() -> None:
    diamond = Structure.from_spacegroup("Fd-3m", Lattice.cubic(5.43), ["Si"], [[0, 0, 0]])
    result = LammpsOracle(potential="Si.sw").compute(diamond)
    assert values(result)["bulk_modulus"] == pytest.approx(101.4, rel=0.03)


@pytest.mark.parametrize(
    ("potential", "structure"), [("Ni_u3.eam", fcc("Ni", 3.52)), ("Fe_mm.eam.fs", bcc("Fe", 2.86))]
)
def test_elastic_and_eos_agree(potential: str, structure: Structure) -> None:
    elastic = LammpsOracle(potential=potential, method="elastic").compute(structure)
    eos = LammpsOracle(potential=potential, method="eos").compute(structure)
    b_elastic, b_eos = values(elastic)["bulk_modulus"], values(eos)["bulk_modulus"]
    assert b_eos == pytest.approx(b_elastic, rel=0.02)
    assert "shear_modulus" not in eos.properties


def test_relaxed_structure_keeps_orientation_and_order() -> None:
    # a rotated, stretched, reordered input: the relaxed cell comes back in the input's frame
    rotation = np.array([[0.6, -0.8, 0.0], [0.8, 0.6, 0.0], [0.0, 0.0, 1.0]])
    structure = Structure(
        Lattice(np.diag([2.95, 2.95, 2.95]) @ rotation.T),
        ["Fe", "Fe"],
        [[0.5, 0.5, 0.5], [0, 0, 0]],
    )
    relaxed = LammpsOracle(potential="Fe_mm.eam.fs").compute(structure).relaxed_structure
    scale = relaxed.lattice.a / structure.lattice.a
    assert np.allclose(relaxed.lattice.matrix, structure.lattice.matrix * scale, atol=1e-6)
    assert np.allclose(relaxed.frac_coords, structure.frac_coords, atol=1e-6)
    assert relaxed.lattice.a == pytest.approx(2.855, abs=2e-3)


@pytest.mark.parametrize("relax_box", ["iso", "aniso", "tri", "none"])
def test_relax_box_modes(relax_box: str) -> None:
    # BCC Fe strained orthorhombically: aniso/tri recover the cubic cell, iso keeps the shape
    structure = Structure(
        Lattice.orthorhombic(2.80, 2.86, 2.92), ["Fe", "Fe"], [[0, 0, 0], [0.5, 0.5, 0.5]]
    )
    result = LammpsOracle(potential="Fe_mm.eam.fs", relax_box=relax_box).compute(structure)
    abc = np.array(result.relaxed_structure.lattice.abc)
    pressure = result.properties["pressure"].value
    if relax_box in ("aniso", "tri"):
        assert abc == pytest.approx([2.8553] * 3, abs=1e-3)
    elif relax_box == "iso":
        assert abc / abc[0] == pytest.approx([1.0, 2.86 / 2.80, 2.92 / 2.80])
    else:
        assert abc == pytest.approx([2.80, 2.86, 2.92])
    assert (abs(pressure) < 1e-2) == (relax_box != "none")


def test_lammps_cell_keeps_lengths_and_angles() -> None:
    lattice = Lattice.from_parameters(4.0, 5.0, 6.0, 80.0, 95.0, 110.0)
    cell = Lattice(lammps_cell(lattice))
    assert cell.abc == pytest.approx(lattice.abc)
    assert cell.angles == pytest.approx(lattice.angles)


def test_random_nifecr_with_2nn_meam() -> None:
    oracle = LammpsOracle(potential="MoCoNiVFeAlCr_2nn.meam")  # library from the file's comment
    evaluation = oracle.evaluate(Candidate(structure=random_nifecr(), origin="seed"))
    assert evaluation.status == "done", evaluation.error
    assert 150.0 < evaluation.properties["bulk_modulus"].value < 250.0
    c = np.array(evaluation.provenance["elastic_tensor_GPa"])
    assert np.allclose(c, c.T)
    assert np.linalg.eigvalsh(c).min() > 0
    assert evaluation.relaxed_structure.composition == random_nifecr().composition
    assert evaluation.cost.core_s > 0
    assert evaluation.provenance["library"].endswith("library_2nn.meam")


def test_overlapping_atoms_are_a_failed_evaluation() -> None:
    structure = fcc("Ni", 3.52)
    structure.append("Ni", [0.05, 0.0, 0.0])  # 0.18 Å from the atom at the origin
    evaluation = LammpsOracle(potential="Ni_u3.eam").evaluate(
        Candidate(structure=structure, origin="seed")
    )
    assert evaluation.status == "failed"
    assert "too close" in evaluation.error
    assert evaluation.properties == {}


def test_timeout_is_a_failed_evaluation() -> None:
    oracle = LammpsOracle(potential="MoCoNiVFeAlCr_2nn.meam", timeout_s=0.05)
    evaluation = oracle.evaluate(Candidate(structure=random_nifecr(), origin="seed"))
    assert evaluation.status == "failed"
    assert "timeout" in evaluation.error


def test_a_clock_step_during_a_call_does_not_change_its_recorded_length(monkeypatch) -> None:
    """Timestamps of an evaluation: its start, plus the monotonic duration of the call (the
    scale benchmark once saw 2-s calls recorded as 15 s when the system clock stepped)."""
    import amloop.oracles.base as base

    start = datetime(2026, 1, 1, tzinfo=UTC)
    readings = iter([start, start + timedelta(hours=1)])  # the clock steps an hour mid-call

    class SteppingClock:
        @staticmethod
        def now(tz: object = None) -> datetime:
            return next(readings)

    monkeypatch.setattr(base, "datetime", SteppingClock)
    oracle = LammpsOracle(potential="Ni_u3.eam")
    evaluation = oracle.evaluate(Candidate(structure=fcc("Ni", 3.52), origin="seed"))
    assert evaluation.status == "done" and evaluation.started_at == start
    assert evaluation.finished_at is not None
    assert timedelta(0) < evaluation.finished_at - start < timedelta(seconds=60)


def test_unstable_phase_is_a_failed_evaluation() -> None:
    # BCC Ni is mechanically unstable (C11 < C12) with the 2NN-MEAM potential
    evaluation = LammpsOracle(potential="MoCoNiVFeAlCr_2nn.meam").evaluate(
        Candidate(structure=bcc("Ni", 2.80), origin="seed")
    )
    assert evaluation.status == "failed"
    assert "positive definite" in evaluation.error


def test_element_not_covered_is_a_setup_error() -> None:
    oracle = LammpsOracle(potential="Ni_u3.eam")
    with pytest.raises(OracleSetupError, match="Fe"):
        oracle.check_elements(["Ni", "Fe"])
    with pytest.raises(OracleSetupError, match="no parameters for Fe"):
        oracle.evaluate(Candidate(structure=bcc("Fe", 2.86), origin="seed"))
    oracle.check_elements(["Ni"])
    LammpsOracle(potential="MoCoNiVFeAlCr_2nn.meam").check_elements(["Ni", "Fe", "Cr"])


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"potential": "Ni_u4.eam"}, "Ni_u3.eam"),  # suggests close names
        ({"potential": "Si.tersoff.mod"}, "give pair_style"),
        ({"potential": "Si.tersoff.mod", "pair_style": "lj/cut"}, "not supported"),
        ({"potential": "Ni.meam"}, "library"),
        ({"potential": "Ni_u3.eam", "method": "md"}, "method"),
    ],
)
def test_bad_configuration_is_a_setup_error(options: dict[str, str], message: str) -> None:
    with pytest.raises(OracleSetupError, match=message):
        LammpsOracle(**options)


def test_potential_element_lists() -> None:
    assert setfl_elements(resolve_potential_file("CuZr_mm.eam.fs")) == ["Cu", "Zr"]
    assert LammpsOracle(potential="Ni_u3.eam").potential_elements == ["Ni"]
    assert LammpsOracle(potential="Si.tersoff").potential_elements == ["Si"]
    meam = LammpsOracle(potential="MoCoNiVFeAlCr_2nn.meam")
    assert meam.potential_elements == ["Mo", "Co", "Ni", "V", "Fe", "Al", "Cr"]
    library = meam_library_entries(resolve_potential_file("library.meam"))
    assert ("AlS", "Al") in [(entry.name, entry.symbol) for entry in library]


def test_user_file_works_like_a_shipped_name(tmp_path: Path) -> None:
    own = tmp_path / "my_nickel.eam"
    shutil.copy(potentials_dir() / "Ni_u3.eam", own)
    shipped = LammpsOracle(potential="Ni_u3.eam").compute(fcc("Ni", 3.52))
    user = LammpsOracle(potential=str(own)).compute(fcc("Ni", 3.52))
    assert values(user) == pytest.approx(values(shipped))
    assert np.allclose(stiffness(user), stiffness(shipped))


def test_registry_and_provenance() -> None:
    assert "lammps" in oracle_types()
    oracle = create_oracle("lammps", potential="Fe_mm.eam.fs", name="lammps-fe", fidelity=0.3)
    evaluation = oracle.evaluate(Candidate(structure=bcc("Fe", 2.86), origin="seed"))
    provenance = evaluation.provenance
    assert evaluation.oracle == "lammps-fe"
    assert evaluation.fidelity == 0.3
    assert provenance["code"] == "lammps"
    assert provenance["version"] >= 20240829
    assert provenance["pair_style"] == "eam/fs"
    digest = hashlib.sha256((potentials_dir() / "Fe_mm.eam.fs").read_bytes()).hexdigest()
    assert provenance["potential_sha256"] == digest
    assert provenance["parameters"]["method"] == "elastic"
    with pytest.raises(OracleSetupError, match="bad options"):
        create_oracle("lammps", potential="Fe_mm.eam.fs", temperature=300)


def test_failure_surfaces_from_compute() -> None:
    structure = fcc("Ni", 3.52)
    structure.append("Ni", [0.0, 0.0, 0.01])
    with pytest.raises(OracleFailed, match="too close"):
        LammpsOracle(potential="Ni_u3.eam").compute(structure)


def test_lammps_listens_on_no_external_interface() -> None:
    """MPICH's UCX transport opens a TCP listener when LAMMPS starts; amloop binds it to the
    loopback interface (checked in a fresh process, where MPI starts for the first time)."""
    probe = (
        "import psutil\n"
        "from amloop.oracles.lammps import LammpsOracle\n"
        "from amloop.oracles.lammps.session import new_lammps\n"
        "LammpsOracle(potential='Ni_u3.eam')\n"
        "lmp = new_lammps()\n"
        "listening = [c.laddr.ip for c in psutil.Process().net_connections('inet')"
        " if c.status == psutil.CONN_LISTEN]\n"
        "print(' '.join(listening) or 'none')\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("UCX_")}
    result = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True
    )
    addresses = result.stdout.split()
    assert all(ip in ("none", "127.0.0.1", "::1") for ip in addresses), addresses


def test_each_subsystem_is_scored_with_its_own_potential():
    """Seed 001 scores binaries with binary files and ternaries with the ternary one: with a
    map, a pure Cu cell gets Cu_u3.eam's numbers exactly (not the Cu-Zr file's), a Cu-Zr cell
    the Cu-Zr file's, each named in the provenance; a cell no entry covers is refused."""
    by_subsystem = LammpsOracle(
        potentials={"Cu": {"potential": "Cu_u3.eam"}, "Cu-Zr": {"potential": "CuZr_mm.eam.fs"}}
    )
    copper = fcc("Cu", 3.615)
    mixed = copper * (2, 2, 2)
    mixed.replace(0, "Zr")  # Cu31Zr
    for cell, subsystem, alone in (
        (copper, "Cu", LammpsOracle(potential="Cu_u3.eam")),
        (mixed, "Cu-Zr", LammpsOracle(potential="CuZr_mm.eam.fs")),
    ):
        result = by_subsystem.compute(cell)
        assert values(result) == pytest.approx(values(alone.compute(cell)), rel=1e-9)
        assert result.provenance["potential_subsystem"] == subsystem
        (potential,) = alone.potentials.values()
        assert result.provenance["potential"] == str(potential.path)
    # the Cu-Zr file on pure Cu is another potential: a different bulk modulus
    on_copper = values(LammpsOracle(potential="CuZr_mm.eam.fs").compute(copper))["bulk_modulus"]
    assert abs(on_copper - values(by_subsystem.compute(copper))["bulk_modulus"]) > 1.0
    assert set(by_subsystem.provenance()["potentials"]) == {"Cu", "Cu-Zr"}
    no_zr = LammpsOracle(
        potentials={"Cu": {"potential": "Cu_u3.eam"}, "Cu-Ni": {"potential": "CuNi.eam.alloy"}}
    )
    with pytest.raises(OracleSetupError, match="no potential covers Cu-Zr; subsystems: Cu, Cu-Ni"):
        no_zr.compute(mixed)


def test_a_subsystem_map_is_checked_when_built():
    with pytest.raises(OracleSetupError, match=r"potentials\.Cu-Zr: potential Cu_u3\.eam"):
        LammpsOracle(potentials={"Cu-Zr": {"potential": "Cu_u3.eam"}})
    with pytest.raises(OracleSetupError, match=r"either potential \(one file\) or potentials"):
        LammpsOracle(potential="Cu_u3.eam", potentials={"Cu": {"potential": "Cu_u3.eam"}})
    with pytest.raises(OracleSetupError, match="potentials: unknown element 'Xx'"):
        LammpsOracle(potentials={"Cu-Xx": {"potential": "Cu_u3.eam"}})


def test_force_labels_of_the_input_and_the_relaxed_cell_in_the_input_frame() -> None:
    # a rattled Fe cell, and the same cell rigidly rotated: labels turn with the structure
    rattled = Structure(Lattice.cubic(2.9), ["Fe"] * 2, [[0.02, 0.0, -0.01], [0.5, 0.53, 0.47]])
    rattled.make_supercell((2, 1, 1))
    rotation = np.array([[0.6, -0.8, 0.0], [0.8, 0.6, 0.0], [0.0, 0.0, 1.0]])
    turned = Structure(
        Lattice(rattled.lattice.matrix @ rotation.T), rattled.species, rattled.frac_coords
    )
    oracle = LammpsOracle(potential="Fe_mm.eam.fs", method="eos")
    start, final = oracle.compute(rattled).labels
    turned_start, _ = oracle.compute(turned).labels
    assert (start.source, final.source) == ("relaxation", "final")
    forces = np.array(start.forces_eV_per_A)
    assert np.abs(forces).max() > 0.1  # displaced atoms feel forces ...
    assert np.allclose(forces.sum(axis=0), 0.0, atol=1e-8)  # ... that sum to zero (Newton III)
    assert np.allclose(turned_start.forces_eV_per_A, forces @ rotation.T, atol=1e-6)
    assert turned_start.energy_eV == pytest.approx(start.energy_eV, abs=1e-8)
    assert np.abs(final.forces_eV_per_A).max() < 1e-3  # relaxed
    result = oracle.compute(rattled)
    assert final.energy_eV / 4 == pytest.approx(result.properties["energy_per_atom"].value)
    pressure = -np.mean(final.stress_GPa[:3])  # ASE's stress sign: minus the pressure
    assert pressure == pytest.approx(result.properties["pressure"].value, abs=1e-6)
    snapshot = oracle.label(turned)  # a single point: the structure as given
    assert snapshot.source == "snapshot" and snapshot.structure == turned
    assert np.allclose(snapshot.forces_eV_per_A, turned_start.forces_eV_per_A, atol=1e-9)
