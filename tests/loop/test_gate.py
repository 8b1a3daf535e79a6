"""The quality gate's energy rule in a real Cu-Zr campaign (Mendelev EAM): the reference is the
highest seed energy or the seed energies fitted in composition (``quality.energy_reference``)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from amloop.loop.campaigns import init_campaign
from amloop.loop.steps import CampaignRun, evaluate, gate, oracle_config, oracle_instance
from amloop.oracles.md import random_packing
from amloop.oracles.md.refine import refine_cell
from amloop.state.schema import Candidate
from amloop.state.settings import Settings

EXAMPLE = Path(__file__).parents[2] / "examples" / "cuzr-glass.yaml"


def _campaign(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, reference: str) -> CampaignRun:
    data = yaml.safe_load(EXAMPLE.read_text())
    data["name"] = f"gate-{reference}".replace("_", "-")
    data["cell"]["n_atoms"] = 32
    data["generator"].pop("prior", None)
    data["bounds"] = {"Cu": [0.3, 0.95], "Zr": [0.05, 0.7]}
    data["quality"] = {
        "min_distance": 1.8,
        "energy_oracle": "lammps_eam",
        "max_energy_above_reference": 0.1,
        "energy_reference": reference,
    }
    path = tmp_path / f"{reference}.yaml"
    path.write_text(yaml.safe_dump(data))
    monkeypatch.setenv("AMLOOP_HOME", str(tmp_path / "home"))
    handle = init_campaign(path, Settings())
    run = CampaignRun(handle.store(), handle.config, handle.directory)
    run.store.start_iteration(0)
    return run


def _glass(run: CampaignRun, cu: float, seed: int) -> Candidate:
    md = oracle_instance(oracle_config(run.config, "md"))
    packing = random_packing({"Cu": cu, "Zr": 1 - cu}, 32, seed=seed)
    return Candidate(structure=refine_cell(packing, md.make_engine).structure, origin="seed")  # type: ignore[attr-defined]


@pytest.mark.parametrize(("reference", "kept"), [("seed_max", False), ("composition_fit", True)])
def test_a_cu_rich_glass_is_judged_against_seeds_of_its_own_composition(
    tmp_path, monkeypatch, reference, kept
):
    """Zr binds ~2.7 eV/atom more strongly than Cu, so a Cu70 glass lies 0.3 eV/atom above the
    highest seed energy (Cu60's) although it is as relaxed as the seeds: rejected against
    ``seed_max``, kept against the seeds' fit in composition (0.1 eV/atom margin), its
    threshold stored."""
    run = _campaign(tmp_path, monkeypatch, reference)
    lammps = oracle_config(run.config, "lammps_eam")
    for cu, seed in ((0.6, 5), (0.5, 2), (0.4, 3)):
        seed_cell = run.store.add_candidate(_glass(run, cu, seed))
        evaluate(run.store, run.config, lammps, seed_cell.content_hash, None)
    generated = _glass(run, 0.7, 4).model_copy(update={"origin": "generated", "iteration": 0})
    candidate = run.store.add_candidate(generated)
    survivors = gate(run, 0, [candidate])
    (verdict,) = run.store.evaluations(oracle="quality_gate")
    energy = verdict.provenance["energy_per_atom_eV"]
    seeds = [
        e.properties["energy_per_atom"].value
        for e in run.store.evaluations(oracle="lammps_eam", status="done")
        if e.candidate_hash != candidate.content_hash
    ]
    assert energy > max(seeds) + 0.2  # eV/atom: the Cu-rich glass binds less
    assert (len(survivors) == 1) is kept
    if kept:
        assert energy <= verdict.provenance["threshold_eV_per_atom"] < energy + 0.5
    else:
        assert verdict.provenance["threshold_eV_per_atom"] == pytest.approx(max(seeds) + 0.1)
        assert "relaxed energy" in verdict.error
