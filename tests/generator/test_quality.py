"""Seed 002's structure-quality metrics and the loop's quality gate, on cases with known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest
from pymatgen.core import Lattice, Structure

from amloop.generator.quality import (
    SetDescriptors,
    angle_grid,
    cluster_fingerprint,
    describe,
    fingerprint_labels,
    local_environments,
    pdm_errors,
    quality_table,
    rdf_grid,
    set_distance,
    shell_edges,
    structure_rdfs,
    warren_cowley,
)
from amloop.generator.quality_gate import QualityGate
from amloop.generator.solid_solution import random_solid_solution
from amloop.oracles.md import LammpsEngine, MeltQuench, melt_quench
from amloop.state.config import QualityGateConfig

CU_ZR = {"Cu": 0.5, "Zr": 0.5}


@pytest.fixture(scope="module")
def glasses() -> list[Structure]:
    """Four 32-atom Cu50Zr50 cells melt-quenched (2000 K -> 300 K at 1000 K/ps, Mendelev EAM).

    Seed 1's PACKMOL start blows up at 2 fs in so small a cell, hence the seeds.
    """
    protocol = MeltQuench(
        melt_temperature_K=2000,
        final_temperature_K=300,
        melt_ps=1,
        volume_ps=1,
        pressure_tolerance_GPa=1.0,
        volume_factors=(0.9, 1.0, 1.1),
        quench_rate_K_per_ps=1000,
        anneal_ps=0.5,
    )
    factory = LammpsEngine.factory("CuZr_mm.eam.fs")
    return [melt_quench(CU_ZR, 32, factory, protocol, seed=seed) for seed in (0, 2, 3, 4)]


@pytest.fixture(scope="module")
def crystals() -> list[Structure]:
    """Three 32-atom random FCC Cu-Zr solid solutions, every atom rattled by 0.05 Å."""
    rng = np.random.default_rng(1)
    cells = []
    for _ in range(3):
        cell = random_solid_solution(CU_ZR, "fcc", 32, rng)
        cells.append(cell.perturb(0.05, seed=int(rng.integers(1000))))
    return cells


@pytest.fixture(scope="module")
def glass_set(glasses: list[Structure]) -> SetDescriptors:
    return describe(glasses, ["Cu", "Zr"])


@pytest.fixture(scope="module")
def crystal_set(crystals: list[Structure]) -> SetDescriptors:
    return describe(crystals, ["Cu", "Zr"])


def fcc_copper(a: float = 3.615, repeat: int = 2) -> Structure:
    cell = Structure(
        Lattice.cubic(a), ["Cu"] * 4, [[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]]
    )
    cell.make_supercell(repeat)
    return cell


def b2_nial(repeat: int = 2) -> Structure:
    """CsCl-ordered NiAl (a = 2.887 Å): every first neighbour unlike, every second alike."""
    cell = Structure(Lattice.cubic(2.887), ["Ni", "Al"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    cell.make_supercell(repeat)
    return cell


def as_rows(rows: list) -> dict:
    return {row.metric: row for row in rows}


# ------------------------------------------------------------------------------ RDF and angles


def test_fcc_rdf_peaks_at_the_shell_distances_and_angles_are_the_cuboctahedron_s() -> None:
    a = 3.615
    total, partials = structure_rdfs(fcc_copper(a), ["Cu"])
    r = rdf_grid()
    assert r.size == 500 and r[0] == pytest.approx(0.01)  # 0-10 Å in 0.02 Å bins
    assert r[np.argmax(total)] == pytest.approx(a / math.sqrt(2), abs=0.02)
    assert np.allclose(total, partials[0])  # one element: g = g_CuCu
    # 12 neighbours at a/√2: the integral 4πρ ∫ r² g dr over the first shell is 12
    rho = 4 / a**3
    shell = r < 0.5 * (a / math.sqrt(2) + a)
    assert 4 * math.pi * rho * np.sum(r[shell] ** 2 * total[shell]) * 0.02 == pytest.approx(
        12, rel=1e-3
    )
    env = local_environments(fcc_copper(a))
    assert set(np.round(env.angles).astype(int)) == {60, 90, 120, 180}
    cuboctahedral = fingerprint_labels().index("cuboctahedral CN_12")
    assert np.allclose(env.fingerprints[:, cuboctahedral], 1.0)
    assert np.allclose(env.fingerprints[:, fingerprint_labels().index("wt CN_12")], 1.0)


def test_identical_sets_are_at_zero_distance(glass_set: SetDescriptors) -> None:
    rows = quality_table(glass_set, glass_set, n_bootstrap=200)
    distances = [row for row in rows if row.metric.startswith("d_")]
    assert {"d_rdf", "d_rdf Cu-Zr", "d_angle", "d_motif all", "d_motif Cu", "d_motif Zr"} <= {
        row.metric for row in distances
    }
    for row in distances:  # the interval's top is the sets' sampling noise
        assert row.value == 0.0 and row.low == 0.0 and row.high >= 0.0


def test_fcc_crystals_are_far_from_melt_quenched_glasses(
    glass_set: SetDescriptors, crystal_set: SetDescriptors
) -> None:
    floor = as_rows(quality_table(glass_set.subset([0, 1]), glass_set.subset([2, 3])))
    rows = as_rows(quality_table(glass_set, crystal_set, seed=3))
    for metric in ("d_rdf", "d_angle", "d_motif all", "d_motif Cu", "d_motif Zr"):
        assert rows[metric].value > 3 * floor[metric].value, metric
        # the bootstrap interval brackets the estimate
        assert rows[metric].low <= rows[metric].value <= rows[metric].high, metric
        assert rows[metric].low > floor[metric].value, metric
    # glasses have icosahedral-like 12-fold sites, not cuboctahedra; the rattled FCC mostly has
    cuboctahedral = fingerprint_labels().index("cuboctahedral CN_12")
    assert crystal_set.motifs["all"][:, cuboctahedral].mean() > 0.5
    assert glass_set.motifs["all"][:, cuboctahedral].mean() < 0.2


def test_bootstrap_interval_shrinks_with_more_structures() -> None:
    rng = np.random.default_rng(0)
    small = [set_distance(rng.normal(0, 1, (n, 5)), rng.normal(1, 1, (n, 5))) for n in (20, 2000)]
    for estimate, low, high in small:
        assert low <= estimate <= high
        assert estimate == pytest.approx(math.sqrt(5), rel=0.7)
    assert small[1][2] - small[1][1] < 0.2 * (small[0][2] - small[0][1])
    assert small[1][1] < math.sqrt(5) < small[1][2]  # covers the true distance


def test_bootstrap_interval_brackets_a_distance_within_the_sampling_noise() -> None:
    # 100 cells each, 50 descriptors, true distance 0.35 against a noise of about 1.4: the
    # resampled distances all lie above the estimate, a pivotal interval would lie below it
    rng = np.random.default_rng(1)
    reference, generated = rng.normal(0, 1, (100, 50)), rng.normal(0.05, 1, (100, 50))
    estimate, low, high = set_distance(reference, generated)
    assert low <= estimate <= high
    assert high - low < estimate


# ------------------------------------------------------------------------------ lattice alloys


def test_b2_warren_cowley_parameters_take_their_analytic_values() -> None:
    nial = b2_nial()
    edges = shell_edges(nial, 2)
    assert edges[0] == pytest.approx(0.5 * (2.887 * math.sqrt(3) / 2 + 2.887))
    alpha = warren_cowley(nial, ["Ni", "Al"], edges)
    assert alpha[0] == pytest.approx(np.array([[1.0, -1.0], [-1.0, 1.0]]))  # 8 unlike
    assert alpha[1] == pytest.approx(np.array([[-1.0, 1.0], [1.0, -1.0]]))  # 6 alike
    fingerprint = cluster_fingerprint(nial, ["Ni", "Al"], edges)
    # monomers Ni, Al; shell 1 Ni-Ni, Ni-Al, Al-Al; shell 2 the same
    assert fingerprint == pytest.approx([0.5, 0.5, 0, 1, 0, 0.5, 0, 0.5])


def test_random_solid_solution_has_no_short_range_order() -> None:
    rng = np.random.default_rng(7)
    cells = [random_solid_solution({"Ni": 0.5, "Al": 0.5}, "bcc", 128, rng) for _ in range(10)]
    edges = shell_edges(cells[0], 2)
    random = describe(cells, ["Ni", "Al"], local=False, lattice_edges=edges)
    assert random.sro is not None
    assert np.abs(random.sro.mean(axis=0)).max() < 0.05
    ordered = describe([b2_nial()] * 3, ["Ni", "Al"], local=False, lattice_edges=edges)
    rows = as_rows(quality_table(ordered, random, n_bootstrap=200))
    # B2 shell fractions (0, 1, 0 | .5, 0, .5) vs random (.25, .5, .25 each): √(2 · 6/16)
    assert rows["d_cluster"].value == pytest.approx(math.sqrt(0.75), abs=0.03)
    assert rows["alpha1 Ni-Al"].reference == pytest.approx(-1.0)
    assert rows["alpha1 Ni-Al"].value == pytest.approx(0.0, abs=0.05)
    same = as_rows(quality_table(ordered, ordered, n_bootstrap=0))
    assert same["d_cluster"].value == 0.0


# ------------------------------------------------------------------------------ other metrics


def test_pdm_errors_failures_and_relaxation_steps_in_the_table(glass_set: SetDescriptors) -> None:
    targets = np.array([[6.0, 7.0, 8.0], [6.0, 7.0, 8.0]])
    generated = targets + np.array([[1.0, -1.0, 0.0], [0.0, 0.5, 0.0]])
    assert pdm_errors(generated, targets) == pytest.approx([0.5, 0.75, 0.0])
    rows = as_rows(
        quality_table(
            glass_set,
            glass_set,
            n_bootstrap=50,
            pdm=(generated, targets),
            pdm_labels=["Cu-Cu", "Cu-Zr", "Zr-Zr"],
            n_failed=1,
            n_attempted=4,
            relaxation_steps=[10, 20, 30],
        )
    )
    assert rows["pdm error Cu-Zr"].value == pytest.approx(0.75)
    assert rows["pdm MAE"].value == pytest.approx(1.25 / 3)
    assert rows["% failed"].value == pytest.approx(25.0)
    assert rows["relaxation steps"].value == pytest.approx(20.0)


def test_cation_anion_motifs_of_rock_salt() -> None:
    salt = Structure.from_spacegroup(
        "Fm-3m", Lattice.cubic(5.64), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]]
    )
    env = local_environments(salt, oxidation_states={"Na": 1, "Cl": -1})
    labels = fingerprint_labels(["Cl"])
    assert set(env.elements) == {"Na"}  # only cations are fingerprinted
    assert np.allclose(env.fingerprints[:, labels.index("wt CN_6")], 1.0)
    assert np.allclose(env.fingerprints[:, labels.index("octahedral CN_6")], 1.0, atol=1e-6)
    assert np.allclose(env.fingerprints[:, labels.index("fraction Cl")], 1.0)
    assert set(np.round(env.angles).astype(int)) == {90, 180}
    assert angle_grid().size == 360


# ------------------------------------------------------------------------------ the gate


def test_gate_rejects_atoms_it_cannot_push_apart() -> None:
    crowded = Structure(Lattice.cubic(3.0), ["Cu"] * 16, np.random.default_rng(0).random((16, 3)))
    verdict = QualityGate(QualityGateConfig(), elements=["Cu"]).check(crowded)
    assert not verdict.passed and verdict.structure is None
    assert verdict.reason is not None and verdict.reason.startswith("push-apart failed")
    assert "1.5 Å" in verdict.reason


def test_gate_rejects_high_energy_with_the_numbers(glasses: list[Structure]) -> None:
    gate = QualityGate.from_reference(
        QualityGateConfig(max_energy_above_reference=0.05), glasses, [-5.2, -5.0, -5.1, -5.05]
    )
    verdict = gate.check(glasses[0], energy_per_atom=-4.5)
    assert not verdict.passed
    assert verdict.reason == (
        "energy -4.5000 eV/atom is 0.5000 eV/atom above the reference maximum -5.0000 eV/atom "
        "(allowed 0.05 eV/atom)"
    )
    assert verdict.metrics["energy_above_reference"] == pytest.approx(0.5)
    assert gate.check(glasses[0], energy_per_atom=-4.96).passed  # within the 0.05 margin


def test_gate_passes_a_glass_and_rejects_a_crystal_by_structure(
    glasses: list[Structure], crystals: list[Structure]
) -> None:
    probe = QualityGate.from_reference(
        QualityGateConfig(max_rdf_distance=1e9, max_motif_distance=1e9), glasses[:3]
    )
    # one 32-atom cell is noisy: allow 3x the largest distance of a reference cell to the mean
    config = QualityGateConfig(
        max_rdf_distance=3 * probe.reference_rdf_spread,
        max_motif_distance=3 * probe.reference_motif_spread,
    )
    references = {
        "elements": probe.elements,
        "reference_rdf": probe.reference_rdf,
        "reference_motif": probe.reference_motif,
    }
    gate = QualityGate(config, reference_max_energy=-5.0, **references)
    good = gate.check(glasses[3], energy_per_atom=-5.08)
    assert good.passed and good.reason is None, good.reason
    assert good.metrics["min_distance"] >= 1.5
    assert good.structure is not None and good.structure.composition == glasses[3].composition
    bad = gate.check(crystals[0])
    assert not bad.passed and bad.reason is not None
    assert bad.reason.startswith("RDF distance") and "> max_rdf_distance" in bad.reason
    assert bad.metrics["rdf_distance"] > config.max_rdf_distance  # type: ignore[operator]
    motif_only = QualityGate(config.model_copy(update={"max_rdf_distance": None}), **references)
    verdict = motif_only.check(crystals[0])
    assert verdict.reason is not None and verdict.reason.startswith("motif-fingerprint distance")


def test_gate_needs_its_references() -> None:
    with pytest.raises(ValueError, match="no reference RDF"):
        QualityGate(QualityGateConfig(max_rdf_distance=1.0), elements=["Cu"])
    gate = QualityGate(QualityGateConfig(), elements=["Cu"])
    with pytest.raises(ValueError, match="no reference energies"):
        gate.check(fcc_copper(), energy_per_atom=-3.5)
