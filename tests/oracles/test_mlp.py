"""The machine-learned-potential oracle with the real CHGNet 0.3.0 weights, at small sizes.

Reference values (experiment):

- FCC Ni: a = 3.524 Å at room temperature (CHGNet fits PBE, which gives ~3.52 Å).
- B2 NiAl: formation enthalpy -0.61 to -0.68 eV/atom (calorimetry; e.g. Nash & Kleppa,
  J. Less-Common Met. 1987); any sound potential must at least give it a negative sign.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from ase.calculators.calculator import Calculator, all_changes
from pymatgen.core import Lattice, Structure
from pymatgen.io.ase import AseAtomsAdaptor
from typer.testing import CliRunner

from amloop.loop.cli import app
from amloop.oracles.base import OracleFailed, OracleSetupError
from amloop.oracles.gates import EnergyReference, check_min_distance, energy_gate
from amloop.oracles.md import MDOracle, named_calculator
from amloop.oracles.mlp import (
    MATGL_FILES,
    Backend,
    MLPOracle,
    ReferenceCache,
    reference_candidates,
    resolve_device,
)
from amloop.oracles.registry import create_oracle, oracle_types
from amloop.state.schema import Candidate

pytestmark = [
    pytest.mark.filterwarnings("ignore:Converting a tensor with requires_grad:UserWarning"),
    pytest.mark.filterwarnings("ignore:No tensor product accelerator:UserWarning"),  # sevenn
]

FCC = [[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]]


def fcc(element: str, a: float) -> Structure:
    """Conventional 4-atom FCC cell with lattice parameter ``a`` (Å)."""
    return Structure(Lattice.cubic(a), [element] * 4, FCC)


def nial_b2(a: float = 2.887) -> Structure:
    """B2 (CsCl) NiAl, lattice parameter ``a`` (Å)."""
    return Structure(Lattice.cubic(a), ["Ni", "Al"], [[0, 0, 0], [0.5, 0.5, 0.5]])


def perturbed_nifecr(seed: int = 0, rattle: float = 0.1) -> Structure:
    """16-atom FCC Ni-Fe-Cr cell (2x2x1 conventional cells at a = 3.56 Å), atoms rattled (Å)."""
    cell = fcc("Ni", 3.56)
    cell.make_supercell((2, 2, 1))
    rng = np.random.default_rng(seed)
    species = rng.permutation(["Ni"] * 6 + ["Fe"] * 5 + ["Cr"] * 5)
    cart = cell.cart_coords + rng.normal(0.0, rattle, (len(cell), 3))
    return Structure(cell.lattice, list(species), cart, coords_are_cartesian=True)


def candidate(structure: Structure) -> Candidate:
    return Candidate(structure=structure, origin="injected")


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("mlp-cache")


@pytest.fixture(scope="module")
def oracle(cache_dir) -> MLPOracle:
    """The default oracle (CHGNet) on the CPU, caching references under a temporary folder."""
    return MLPOracle(device="cpu", cache_dir=str(cache_dir))


def values(evaluation) -> dict[str, float]:
    return {name: prop.value for name, prop in evaluation.properties.items()}


# ------------------------------------------------------------------------------- physics


def test_registered_and_created_by_name(cache_dir):
    assert "mlp" in oracle_types()
    created = create_oracle("mlp", device="cpu", cache_dir=str(cache_dir), fmax=0.02)
    assert isinstance(created, MLPOracle)
    assert created.options.fmax == 0.02
    assert created.provenance()["code"] == "chgnet"
    assert len(created.provenance()["weights_sha256"]) == 64


def test_relaxation_lowers_energy_and_keeps_composition(oracle):
    start = perturbed_nifecr()
    evaluation = oracle.evaluate(candidate(start))
    assert evaluation.status == "done", evaluation.error
    prov = evaluation.provenance
    assert values(evaluation)["energy_per_atom"] < prov["raw_energy_per_atom_eV"] - 0.01
    assert evaluation.relaxed_structure.composition == start.composition
    assert (
        prov["max_force_eV_per_A"] <= 1.01 * oracle.options.fmax
    )  # the filter's frame differs a bit
    assert prov["relaxation_steps"] > 0
    assert evaluation.properties["formation_energy_per_atom"].unit == "eV/atom"
    assert abs(values(evaluation)["pressure"]) < 1.0  # relaxed cell, GPa
    assert evaluation.cost.core_s > 0
    # force labels: the input, steps on the way (0, 10, 40 where the relaxation got there),
    # and the relaxed cell, each with its own forces
    *on_the_way, final = evaluation.labels
    assert [label.source for label in on_the_way] == ["relaxation"] * len(on_the_way)
    assert final.source == "final" and len(on_the_way) >= 2
    shift = on_the_way[0].structure.frac_coords - start.frac_coords  # the input, wrapped
    assert np.allclose(shift - np.round(shift), 0.0, atol=1e-8)
    assert on_the_way[0].energy_eV / len(start) == pytest.approx(prov["raw_energy_per_atom_eV"])
    assert final.energy_eV / len(start) == pytest.approx(values(evaluation)["energy_per_atom"])
    largest = [np.linalg.norm(label.forces_eV_per_A, axis=1).max() for label in evaluation.labels]
    assert largest[0] > 5 * largest[-1]  # the rattled input is far from the relaxed minimum


def test_fcc_ni_lattice_constant_within_two_percent_of_experiment(oracle):
    evaluation = oracle.evaluate(candidate(fcc("Ni", 3.60)))
    assert evaluation.status == "done", evaluation.error
    a = evaluation.relaxed_structure.lattice.abc[0]
    assert a == pytest.approx(3.524, rel=0.02)
    assert evaluation.relaxed_structure.lattice.abc == pytest.approx((a, a, a), rel=1e-4)


def test_b2_nial_formation_energy_is_negative(oracle):
    evaluation = oracle.evaluate(candidate(nial_b2()))
    assert evaluation.status == "done", evaluation.error
    formation = values(evaluation)["formation_energy_per_atom"]
    assert -0.9 < formation < -0.4  # experiment -0.61 to -0.68 eV/atom
    refs = evaluation.provenance["elemental_references"]
    assert set(refs) == {"Ni", "Al"}
    assert "fcc" in refs["Ni"]["structure"]


def test_elemental_reference_has_zero_formation_energy(oracle):
    evaluation = oracle.evaluate(candidate(fcc("Cu", 3.62)))  # conventional cell, not the ref's
    assert evaluation.status == "done", evaluation.error
    assert values(evaluation)["formation_energy_per_atom"] == pytest.approx(0.0, abs=2e-3)


def test_references_are_cached_on_disk(oracle, cache_dir, monkeypatch):
    oracle.evaluate(candidate(fcc("Cu", 3.62)))
    stored = json.loads((cache_dir / "mlp_references.json").read_text())
    key = ReferenceCache.key(oracle.backend.identity, "Cu")
    assert stored[key]["structure"].startswith("fcc Cu")
    ReferenceCache.clear_memory()
    monkeypatch.setattr(
        "amloop.oracles.mlp.oracle.reference_candidates", lambda symbol: pytest.fail("relaxed")
    )
    again = MLPOracle(device="cpu", cache_dir=str(cache_dir)).reference_energy("Cu")
    assert again.energy_per_atom == pytest.approx(stored[key]["energy_per_atom"])


def test_reference_table_covers_awkward_elements():
    labels = {el: reference_candidates(el)[0].label for el in ("B", "O", "C", "Mn", "Zr", "Si")}
    assert labels["B"].startswith("alpha-B")
    assert labels["O"].startswith("O2 molecule")
    assert labels["C"].startswith("graphite")
    assert labels["Mn"].startswith("alpha-Mn")
    assert labels["Zr"].startswith("hcp Zr")
    assert labels["Si"].startswith("diamond Si")
    assert len(reference_candidates("Pu")) == 3  # no standard crystal: lowest of fcc/bcc/hcp
    boron = reference_candidates("B")[0].build()
    assert len(boron) == 12
    assert min(boron.get_all_distances(mic=True)[np.triu_indices(12, 1)]) == pytest.approx(
        1.67, abs=0.02
    )


@pytest.mark.slow
def test_oxygen_reference_is_the_molecule(oracle):
    reference = oracle.reference_energy("O")
    assert reference.structure.startswith("O2 molecule")
    assert -6.0 < reference.energy_per_atom < -4.0  # PBE O2: about -4.9 eV/atom


# ------------------------------------------------------------------------------- batches


def test_evaluate_many_equals_one_by_one(oracle):
    ni3al = Structure(Lattice.cubic(3.6), ["Al", "Ni", "Ni", "Ni"], FCC)
    ni3al.perturb(0.05, min_distance=0.05, seed=3)
    structures = [ni3al, nial_b2(2.95), fcc("Cu", 3.5)]
    batched = oracle.evaluate_many([candidate(s) for s in structures])
    single = [oracle.evaluate(candidate(s)) for s in structures]
    for many, one in zip(batched, single, strict=True):
        assert many.status == one.status == "done"
        assert many.candidate_hash == one.candidate_hash
        for name, value in values(one).items():
            assert values(many)[name] == pytest.approx(value, abs=1e-4)
        assert many.provenance["raw_energy_per_atom_eV"] == pytest.approx(
            one.provenance["raw_energy_per_atom_eV"], abs=1e-4
        )
        assert many.provenance["relaxation_steps"] == one.provenance["relaxation_steps"]


def test_evaluate_many_keeps_failures_in_place(oracle):
    overlapping = fcc("Cu", 3.6)
    overlapping.append("Cu", [0.01, 0.0, 0.0])
    results = oracle.evaluate_many([candidate(overlapping), candidate(fcc("Cu", 3.6))])
    assert [r.status for r in results] == ["failed", "done"]
    assert "too close" in results[0].error


def test_raw_energies_batched_match_the_calculator(oracle):
    structures = [nial_b2(2.9), fcc("Ni", 3.5)]
    batched = oracle.raw_energies_per_atom(structures)
    for structure, energy in zip(structures, batched, strict=True):
        single = oracle.evaluate(candidate(structure)).provenance["raw_energy_per_atom_eV"]
        assert energy == pytest.approx(single, abs=1e-5)


# ------------------------------------------------------------------------------- failures


def test_overlapping_atoms_are_refused_before_running(oracle):
    structure = fcc("Ni", 3.52)
    structure.append("Ni", [0.05, 0.0, 0.0])  # 0.18 Å from the corner atom
    evaluation = oracle.evaluate(candidate(structure))
    assert evaluation.status == "failed"
    assert "atoms too close" in evaluation.error
    assert evaluation.properties == {}
    with pytest.raises(OracleFailed, match=r"0\.176 Å"):
        check_min_distance(structure, 0.5)


def test_no_convergence_within_max_steps_fails(cache_dir):
    strict = MLPOracle(device="cpu", cache_dir=str(cache_dir), max_steps=2, fmax=0.001)
    evaluation = strict.evaluate(candidate(perturbed_nifecr(seed=2)))
    assert evaluation.status == "failed"
    assert "no convergence" in evaluation.error and "2 steps" in evaluation.error


def test_exploding_energy_fails(cache_dir):
    touchy = MLPOracle(device="cpu", cache_dir=str(cache_dir), max_abs_energy_per_atom=1.0)
    evaluation = touchy.evaluate(candidate(fcc("Cu", 3.6)))
    assert evaluation.status == "failed"
    assert "exploding energy" in evaluation.error


class NaNCalculator(Calculator):
    """Returns NaN energies: stands in for a potential that broke down."""

    implemented_properties = ("energy", "forces", "stress")

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        n = len(self.atoms)
        self.results = {"energy": math.nan, "forces": np.zeros((n, 3)), "stress": np.zeros(6)}


def test_nan_energy_fails(oracle, monkeypatch):
    broken = Backend(
        calculator=NaNCalculator(),
        elements=oracle.backend.elements,
        identity=oracle.backend.identity,  # references come from the cache of the real one
        provenance={},
    )
    oracle.reference_energy("Cu")
    monkeypatch.setattr(oracle, "backend", broken)
    evaluation = oracle.evaluate(candidate(fcc("Cu", 3.6)))
    assert evaluation.status == "failed"
    assert "non-finite energy (raw)" in evaluation.error


class PairSpring(Calculator):
    """Pulls atoms 0 and 1 together with a spring (eV/Å²): a stand-in for the short-range holes
    of universal potentials (CHGNet fuses two Ni atoms started 0.7 Å apart)."""

    implemented_properties = ("energy", "forces", "stress")

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        vector = self.atoms.get_distance(0, 1, mic=True, vector=True)
        forces = np.zeros((len(self.atoms), 3))
        forces[0], forces[1] = vector, -vector
        energy = -4.0 + 0.5 * float(vector @ vector) / len(self.atoms)
        self.results = {"energy": energy * len(self.atoms), "forces": forces, "stress": np.zeros(6)}


def test_collapse_during_relaxation_fails(oracle, monkeypatch):
    oracle.reference_energy("Cu")
    spring = Backend(
        calculator=PairSpring(),
        elements=oracle.backend.elements,
        identity=oracle.backend.identity,
        provenance={},
    )
    monkeypatch.setattr(oracle, "backend", spring)
    evaluation = oracle.evaluate(candidate(fcc("Cu", 3.6)))
    assert evaluation.status == "failed"
    assert "atoms collapsed during relaxation" in evaluation.error


def test_bad_options_and_unknown_model_are_setup_errors(cache_dir):
    with pytest.raises(OracleSetupError, match="optimizer: Input should be 'FIRE' or 'BFGS'"):
        MLPOracle(device="cpu", optimizer="LBFGS")
    with pytest.raises(OracleSetupError, match=r"unknown model 'mace'.*chgnet"):
        MLPOracle(device="cpu", model="mace")
    with pytest.raises(OracleSetupError, match="no parameters for Am"):
        MLPOracle(device="cpu", cache_dir=str(cache_dir)).check_elements(["Ni", "Am"])


def test_device_resolution(monkeypatch):
    monkeypatch.setenv("AMLOOP_DEVICE", "cpu")
    assert resolve_device() == "cpu"
    monkeypatch.setenv("AMLOOP_DEVICE", "auto")
    assert resolve_device() in ("cpu", "cuda")
    with pytest.raises(OracleSetupError, match="use auto, cpu, cuda or cuda:N"):
        resolve_device("tpu")
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    with pytest.raises(OracleSetupError, match="torch sees no CUDA device"):
        resolve_device("cuda:0")


@pytest.mark.slow
def test_sevennet_backend(cache_dir):
    pytest.importorskip("sevenn")
    seven = MLPOracle(device="cpu", model="7net-0", cache_dir=str(cache_dir))
    assert seven.provenance()["code"] == "sevenn"
    assert seven.backend.identity != MLPOracle(device="cpu").backend.identity
    evaluation = seven.evaluate(candidate(nial_b2()))
    assert evaluation.status == "done", evaluation.error
    assert -0.9 < values(evaluation)["formation_energy_per_atom"] < -0.4
    assert seven.raw_energies_per_atom([nial_b2()])[0] == pytest.approx(
        evaluation.provenance["raw_energy_per_atom_eV"], abs=1e-5
    )


# ------------------------------------------------------------------------------- matgl


def test_missing_matgl_directory_says_what_to_do(tmp_path):
    with pytest.raises(OracleSetupError, match=r"does not exist.*Potential.save\(dir\)"):
        MLPOracle(device="cpu", model=f"matgl:{tmp_path / 'nowhere'}")
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "model.json").write_text("{}")
    with pytest.raises(OracleSetupError, match=r"lacks model\.pt, state\.pt.*never downloads"):
        MLPOracle(device="cpu", model=f"matgl:{tmp_path / 'half'}")


def test_matgl_model_directory_round_trip(tmp_path):
    """An untrained tiny TensorNet saved by matgl loads back through the oracle and runs."""
    import torch
    from matgl.apps.pes import Potential
    from matgl.ext.ase import PESCalculator
    from matgl.models import TensorNet

    torch.manual_seed(0)
    model = TensorNet(
        element_types=("Al", "Ni"), units=8, nblocks=1, cutoff=4.0, is_intensive=False
    )
    Potential(model=model).save(tmp_path / "tiny")
    assert sorted(p.name for p in (tmp_path / "tiny").iterdir()) == sorted(MATGL_FILES)

    tiny = MLPOracle(
        device="cpu", model=f"matgl:{tmp_path / 'tiny'}", disk_cache=False, max_steps=50
    )
    assert tiny.backend.elements == {"Al", "Ni"}
    assert tiny.provenance()["code"] == "matgl"
    assert isinstance(tiny.backend.calculator, PESCalculator)
    structure = nial_b2()
    raw = tiny.raw_energies_per_atom([structure])[0]
    assert math.isfinite(raw)
    evaluation = tiny.evaluate(candidate(structure))
    assert evaluation.provenance["code"] == "matgl"
    if evaluation.status == "done":  # an untrained model need not converge
        assert evaluation.provenance["raw_energy_per_atom_eV"] == pytest.approx(raw, abs=1e-5)
    else:
        assert evaluation.error
    with pytest.raises(OracleSetupError, match="no parameters for Cu"):
        tiny.check_elements(["Cu"])


def test_matgl_directory_without_a_potential_is_refused(tmp_path):
    from matgl.models import TensorNet

    TensorNet(element_types=("Ni",), units=8, nblocks=1).save(tmp_path / "bare")
    with pytest.raises(OracleSetupError, match="not a matgl Potential"):
        MLPOracle(device="cpu", model=f"matgl:{tmp_path / 'bare'}")


# ------------------------------------------------------------------------------- energy gate


def test_energy_gate_keeps_relaxed_decodes_below_the_training_maximum():
    assert energy_gate(-7.9, -7.5, training_max_energy_per_atom=-7.8) == (True, "")


def test_energy_gate_drops_high_relaxed_energy():
    kept, reason = energy_gate(-7.7, -7.6, training_max_energy_per_atom=-7.8)
    assert not kept and "relaxed energy -7.7000 eV/atom > training maximum -7.8000" in reason


def test_energy_gate_drops_raw_decodes_far_from_a_minimum():
    kept, reason = energy_gate(-7.9, 3.0, training_max_energy_per_atom=-7.8)
    assert not kept and "raw (unrelaxed) energy" in reason
    # per atom the margin is 10 eV/atom; over 54 atoms it is 10 eV in total (0.185 eV/atom)
    assert energy_gate(-7.9, -7.5, training_max_energy_per_atom=-7.8)[0]
    kept, reason = energy_gate(-7.9, -7.5, training_max_energy_per_atom=-7.8, natoms=54)
    assert not kept and "10.0 eV / 54 atoms" in reason
    assert energy_gate(-7.9, -7.7, training_max_energy_per_atom=-7.8, natoms=54)[0]


def test_energy_gate_drops_non_finite_energies():
    kept, reason = energy_gate(math.nan, -7.5, training_max_energy_per_atom=-7.8)
    assert not kept and "non-finite" in reason


# ------------------------------------------------------------------------------- command line


def test_cli_evaluates_with_the_mlp_oracle(tmp_path, cache_dir, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache_dir.parent))
    cif = tmp_path / "nial.cif"
    nial_b2().to(filename=str(cif))
    result = CliRunner().invoke(
        app,
        ["evaluate", "--oracle", "mlp", "--set", "model=chgnet", "--set", "device=cpu",
         str(cif), "--json"],
        catch_exceptions=False,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    record = json.loads(result.output)[0]
    assert record["status"] == "done"
    assert record["properties"]["formation_energy_per_atom"]["value"] < 0
    assert record["provenance"]["code"] == "chgnet"


@pytest.mark.slow
def test_md_oracle_runs_with_the_mlp_as_calculator():
    cu = Structure(
        Lattice.cubic(3.61), ["Cu"] * 4, [[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]]
    )
    cu.make_supercell((2, 1, 1))
    md = MDOracle(
        engine="ase",
        calculator="chgnet",
        temperatures=300,
        equilibration_ps=0.02,
        production_ps=0.2,
        sample_interval_fs=2,
        volume_search=False,
    )
    evaluation = md.evaluate(Candidate(structure=cu, origin="seed"))
    assert evaluation.status == "done", evaluation.error
    assert evaluation.properties["diffusivity"].unit == "cm^2/s"
    assert evaluation.properties["diffusivity"].value < 1e-5  # a crystal at 300 K barely moves
    assert "chgnet" in evaluation.provenance["calculator"].lower()


def test_md_calculator_computes_the_stress_only_when_asked(oracle):
    """The MD CHGNet skips the stress pass at steps that need only forces, and agrees with the
    relaxation oracle's calculator on forces (eV/Å) and stress (eV/Å³)."""
    atoms = AseAtomsAdaptor.get_atoms(perturbed_nifecr())
    md_calc = named_calculator("chgnet")
    atoms.calc = md_calc
    forces = atoms.get_forces()
    assert "forces" in md_calc.results and "stress" not in md_calc.results
    stress = atoms.get_stress()
    reference = atoms.copy()
    reference.calc = oracle.backend.calculator
    np.testing.assert_allclose(forces, reference.get_forces(), atol=1e-5)
    np.testing.assert_allclose(stress, reference.get_stress(), atol=1e-6)


def test_energy_reference_fitted_in_composition_follows_the_weakly_bound_element():
    """Seeds of a Cu-Mg family (Cu binds 2 eV/atom more strongly): the highest seed energy
    rejects any cell richer in Mg than the seeds, the composition fit compares like with like
    and every seed lies on or below it."""
    seeds = [{"Cu": 0.8, "Mg": 0.2}, {"Cu": 0.5, "Mg": 0.5}, {"Cu": 0.3, "Mg": 0.7}]
    energies = [-3.1 + 0.01, -2.5 - 0.02, -2.1 + 0.01]  # -3.5 x_Cu - 1.5 x_Mg, +-0.02 eV/atom
    highest = EnergyReference.from_seeds(seeds, energies)
    fitted = EnergyReference.from_seeds(seeds, energies, "composition_fit")
    mg_rich = {"Cu": 0.1, "Mg": 0.9}  # a glass at -1.72 eV/atom, on the family's trend
    assert highest.at(mg_rich) == pytest.approx(-2.09)
    assert fitted.at(mg_rich) == pytest.approx(-3.5 * 0.1 - 1.5 * 0.9, abs=0.06)
    assert highest.at(mg_rich) < -1.72 and fitted.at(mg_rich) >= -1.72
    assert all(e <= fitted.at(c) + 1e-12 for c, e in zip(seeds, energies, strict=True))
    with pytest.raises(ValueError, match="one composition per seed energy"):
        EnergyReference.from_seeds([], [])
