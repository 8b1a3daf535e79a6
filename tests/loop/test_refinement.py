"""The refinement step of an amorphous campaign (Cu-Zr, Mendelev EAM through the md oracle's
LAMMPS engine): generated cells are refined once, charged, and the refined cells are what the
gate judges; a cell that crystallised is rejected with the reason."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml
from pymatgen.core import Lattice, Structure

from amloop.loop.budget import spent_by_activity
from amloop.loop.campaigns import init_campaign
from amloop.loop.steps import (
    REFINE_ORACLE,
    CampaignRun,
    gate,
    oracle_config,
    oracle_instance,
    refine,
)
from amloop.oracles.md import random_packing
from amloop.oracles.md.refine import refine_cell
from amloop.state.config import ConfigError, parse_config
from amloop.state.schema import Candidate
from amloop.state.settings import Settings

EXAMPLE = Path(__file__).parents[2] / "examples" / "cuzr-glass.yaml"


def _config(**refine: object) -> dict:
    data = yaml.safe_load(EXAMPLE.read_text())
    data["cell"]["n_atoms"] = 32
    data["generator"].pop("prior", None)  # the example's 54-atom prior: not for 32 atoms
    data["generator"]["refine"] = {"oracle": "md", "anneal_ps": 1.0, **refine}
    data["quality"] = {"min_distance": 1.8}
    return data


@pytest.fixture
def run(tmp_path, monkeypatch):
    path = tmp_path / "cuzr.yaml"
    path.write_text(yaml.safe_dump(_config()))
    monkeypatch.setenv("AMLOOP_HOME", str(tmp_path / "home"))
    handle = init_campaign(path, Settings())
    run = CampaignRun(handle.store(), handle.config, handle.directory)
    run.store.start_iteration(0)
    md = oracle_instance(oracle_config(run.config, "md"))
    for seed in (11, 12):  # the gate's reference set: two refined packings
        packing = random_packing({"Cu": 0.5, "Zr": 0.5}, 32, seed=seed)
        cell = refine_cell(packing, md.make_engine).structure  # type: ignore[attr-defined]
        run.store.add_candidate(Candidate(structure=cell, origin="seed"))
    return run


def _stored(run: CampaignRun, structure: Structure) -> Candidate:
    return run.store.add_candidate(
        Candidate(structure=structure, origin="generated", iteration=0, provenance={"seed": 0})
    )


def _rattled_fcc_copper() -> Structure:
    cell = Structure(
        Lattice.cubic(3.615), ["Cu"] * 4, [[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]]
    )
    cell.make_supercell(2)
    moved = cell.cart_coords + np.random.default_rng(0).normal(0.0, 0.15, (len(cell), 3))
    return Structure(cell.lattice, cell.species, moved, coords_are_cartesian=True)


def test_generated_cells_are_refined_once_charged_and_gated_as_refined(run):
    raws = [_stored(run, random_packing({"Cu": 0.4, "Zr": 0.6}, 32, seed=s)) for s in (1, 2)]
    raws.append(_stored(run, _rattled_fcc_copper()))
    spent_before = run.store.spent().core_s
    refined = refine(run, 0, raws)
    assert len(refined) == 3
    records = run.store.evaluations(oracle=REFINE_ORACLE, candidates=[r.content_hash for r in raws])
    assert {e.status for e in records} == {"done"} and len(records) == 3
    assert run.store.spent().core_s == pytest.approx(
        spent_before + sum(e.cost.core_s for e in records)
    )
    activities = spent_by_activity(run.store)
    assert activities["refinement of generated cells"] == pytest.approx(
        sum(e.cost.core_s for e in records)
    )
    for raw, cell in zip(raws, refined, strict=True):
        summary = cell.provenance["refinement"]
        assert cell.provenance["refined_from"] == raw.content_hash
        assert cell.origin == "generated" and cell.iteration == 0
        assert summary["energy_after_eV_per_atom"] < summary["energy_before_eV_per_atom"]
        assert cell.structure.composition == raw.structure.composition
    assert [c.provenance["refinement"]["phase"] for c in refined] == ["amorphous"] * 2 + ["fcc"]
    # a re-run (after a crash) reuses the stored refinements: same cells, nothing recomputed
    again = refine(run, 0, raws)
    assert [c.content_hash for c in again] == [c.content_hash for c in refined]
    assert len(run.store.evaluations(oracle=REFINE_ORACLE)) == 3
    survivors = gate(run, 0, refined)
    assert [c.content_hash for c in survivors] == [c.content_hash for c in refined[:2]]
    (rejected,) = run.store.evaluations(oracle="quality_gate", status="failed")
    assert rejected.candidate_hash == refined[2].content_hash
    assert rejected.error.startswith("crystallised (fcc) during refinement")


def test_refinement_needs_an_md_oracle_and_an_amorphous_cell():
    with pytest.raises(ConfigError, match="is not an md oracle"):
        parse_config(_config(oracle="lammps_eam"))
    lattice = _config()
    lattice["cell"]["lattice"] = "fcc"
    with pytest.raises(ConfigError, match="refinement is for amorphous cells"):
        parse_config(lattice)
