"""The campaign report: every section from a small stored campaign, and a measurements-only one."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import yaml
from matplotlib.image import imread

from amloop.generator.solid_solution import random_solid_solution
from amloop.loop.report import best_so_far, failure_reason, pareto_front, write_report
from amloop.oracles.dos_descriptors import ORBITALS, ProjectedDos
from amloop.state.config import parse_config
from amloop.state.schema import (
    Artifact,
    Candidate,
    Cost,
    Evaluation,
    Measurement,
    PropertyValue,
)
from amloop.state.store import CampaignStore

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data"


def _nifecr_config() -> dict:
    """examples/nifecr.yaml with an MLP formation energy as a second objective and a DFT oracle."""
    data = yaml.safe_load((ROOT / "examples" / "nifecr.yaml").read_text())
    data["cell"]["n_atoms"] = 16
    data["objectives"].append(
        {"property": "formation_energy_per_atom", "direction": "minimize", "oracle": "mlp"}
    )
    data["oracles"] += [
        {"name": "mlp", "type": "mlp", "fidelity": 0.4, "cost": {"core_s": 0.5}},
        {"name": "dft", "type": "dft", "fidelity": 0.9, "cost": {"core_s": 600.0}},
    ]
    return parse_config(data).model_dump(mode="json")


def _synthetic_pdos(path: Path) -> Path:
    """A tiny spin-paired PDOS: one Gaussian band per orbital group and site."""
    energies = np.linspace(-8.0, 4.0, 241)
    species = ("Ni", "Fe", "Cr")
    projected = np.zeros((len(species), len(ORBITALS), 1, energies.size))
    for site, centre in enumerate((-1.5, -1.0, -0.5)):
        for orbital in range(len(ORBITALS)):
            shift = centre if orbital >= 4 else centre - 4.0
            projected[site, orbital, 0] = np.exp(-(((energies - shift) / 0.8) ** 2))
    total = projected.sum(axis=(0, 1))
    return ProjectedDos(energies, total, projected, species, fermi_level=5.2).save(path)


def _evaluation(
    candidate: Candidate,
    oracle: str,
    fidelity: float,
    values: dict[str, tuple[float, str]],
    core_s: float,
    iteration: int | None,
    **extra,
) -> Evaluation:
    return Evaluation(
        candidate_hash=candidate.content_hash,
        oracle=oracle,
        fidelity=fidelity,
        status="done",
        properties={k: PropertyValue(value=v, unit=u) for k, (v, u) in values.items()},
        cost=Cost(core_s=core_s),
        iteration=iteration,
        **extra,
    )


@pytest.fixture
def campaign(sqlite_url: str, tmp_path: Path) -> CampaignStore:
    store = CampaignStore.create(sqlite_url, "nifecr", _nifecr_config())
    rng = np.random.default_rng(7)
    compositions = [
        {"Ni": 0.5, "Fe": 0.25, "Cr": 0.25},
        {"Ni": 0.75, "Fe": 0.25},
        {"Ni": 0.25, "Fe": 0.5, "Cr": 0.25},
        {"Ni": 0.5, "Cr": 0.5},
    ]
    seeds = [
        store.add_candidate(
            Candidate(structure=random_solid_solution(x, "fcc", 16, rng), origin="seed")
        )
        for x in compositions
    ]
    for k, seed in enumerate(seeds):
        store.record_evaluation(
            _evaluation(
                seed,
                "lammps_meam",
                0.6,
                {"bulk_modulus": (160.0 + 8.0 * k, "GPa")},
                core_s=30.0,
                iteration=None,
            )
        )
        store.record_evaluation(
            _evaluation(
                seed,
                "mlp",
                0.4,
                {"formation_energy_per_atom": (0.02 - 0.01 * k, "eV/atom")},
                core_s=5.0,
                iteration=None,
            )
        )
    store.record_evaluation(
        Evaluation(
            candidate_hash=seeds[3].content_hash,
            oracle="dft",
            fidelity=0.9,
            status="failed",
            error="SCF did not converge in 40 iterations\nTraceback (most recent call last): ...",
            cost=Cost(core_s=400.0),
        )
    )

    proposal = {
        "composition": {"Ni": 0.375, "Fe": 0.375, "Cr": 0.25},
        "pdm_target": [4.0] * 6,
        "oracle": "lammps_meam",
        "fidelity": 0.6,
        "score": -1.25,
        "mean": {"bulk_modulus": 190.0},
        "sigma": {"bulk_modulus": 12.0},
        "reason": "qLogNEI: highest expected improvement",
    }
    store.start_iteration(0)
    generated = [
        store.add_candidate(
            Candidate(
                structure=random_solid_solution(proposal["composition"], "fcc", 16, rng),
                origin="generated",
                iteration=0,
                pdm_target=proposal["pdm_target"],
                provenance={"proposal": proposal},
            )
        )
        for _ in range(3)
    ]
    best, other, rejected = generated
    store.record_evaluation(
        _evaluation(best, "lammps_meam", 0.6, {"bulk_modulus": (215.3, "GPa")}, 32.0, 0)
    )
    store.record_evaluation(
        _evaluation(other, "lammps_meam", 0.6, {"bulk_modulus": (171.0, "GPa")}, 31.0, 0)
    )
    store.record_evaluation(
        _evaluation(other, "mlp", 0.4, {"formation_energy_per_atom": (-0.0444, "eV/atom")}, 5.0, 0)
    )
    store.record_evaluation(
        Evaluation(
            candidate_hash=rejected.content_hash,
            oracle="quality_gate",
            fidelity=0.0,
            status="failed",
            error="closest pair 1.12 Å < min_distance 1.5 Å",
            iteration=0,
        )
    )
    pdos_file = _synthetic_pdos(tmp_path / "pdos.npz")
    store.record_evaluation(
        _evaluation(
            best,
            "dft",
            0.9,
            {"d_band_center": (-1.4, "eV")},
            900.0,
            0,
            provenance={"pdos_file": str(pdos_file)},
        )
    )
    store.add_artifact(
        Artifact(
            kind="pdos",
            path=str(pdos_file),
            sha256=hashlib.sha256(pdos_file.read_bytes()).hexdigest(),
            iteration=0,
            metadata={"candidate_hash": best.content_hash, "oracle": "dft"},
        )
    )
    store.update_iteration(
        0,
        phase="done",
        metadata={
            "proposals": [proposal],
            "best": {"bulk_modulus": 215.3},
            "timings_s": {"acquire": 1.5, "generate": 12.0, "evaluate": 96.0, "train": 30.0},
        },
        training_cost=Cost(core_s=60.0),
    )
    store.add_measurements(
        [
            Measurement(
                composition={"Ni": 0.5, "Fe": 0.3, "Cr": 0.2},
                property="bulk_modulus",
                value=178.0,
                unit="GPa",
                uncertainty=4.0,
                source="resonant ultrasound, lab A",
                raw_value=178.0,
                raw_unit="GPa",
            )
        ]
    )
    return store


def _assert_png(path: Path) -> None:
    assert path.is_file() and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", path
    image = imread(path)
    assert image.shape[0] > 100 and image.shape[1] > 100 and float(image.std()) > 0.0, path


def test_report_of_a_small_campaign_has_every_section(campaign: CampaignStore, tmp_path: Path):
    out = tmp_path / "report"
    markdown_path = write_report(campaign, out)

    assert markdown_path == out / "report.md"
    markdown = markdown_path.read_text()
    page = (out / "report.html").read_text()
    for name in (
        "best_so_far.png",
        "pareto.png",
        "composition_map.png",
        "pdm_best.png",
        "rdf_best_vs_seed.png",
        "oracle_costs.png",
        "failures.png",
    ):
        _assert_png(out / name)
        assert f"]({name})" in markdown
    (pdos_png,) = out.glob("pdos_*.png")
    _assert_png(pdos_png)
    assert page.count("data:image/png;base64,") == 8

    assert "215.3 GPa" in markdown and "-0.0444 eV/atom" in markdown  # best of each objective
    assert "qLogNEI: highest expected improvement" in markdown and "190 ± 12" in markdown
    assert "SCF did not converge in N iterations" in markdown  # the kind; its numbers apart
    assert "Traceback" not in markdown  # grouped on the first line
    assert "closest pair N Å < min_distance N Å" in markdown and "quality gate" in markdown
    assert "| 1.12 |" in markdown  # the numbers of a kind as their spread
    assert "2 failure(s), of which 1 quality-gate rejection(s)" in markdown
    for title in ("Summary", "Pareto front", "Projected densities of states", "Iterations"):
        assert f"## {title}" in markdown and f"<h2>{title}</h2>" in page
    assert "seed set mean (4 structures)" not in markdown  # labels live in the figure


def test_best_so_far_is_monotone_and_ends_at_the_best(campaign: CampaignStore):
    curves = {curve.objective.property: curve for curve in best_so_far(campaign)}
    bulk, energy = curves["bulk_modulus"], curves["formation_energy_per_atom"]
    assert np.all(np.diff(bulk.best) >= 0) and bulk.best[-1] == pytest.approx(215.3)
    assert np.all(np.diff(energy.best) <= 0) and energy.best[-1] == pytest.approx(-0.0444)
    for curve in (bulk, energy):
        assert np.all(np.diff(curve.cost_core_h) >= 0)
    assert bulk.source.count("experiment") == 1 and len(bulk.value) == 7
    total_core_s = 4 * 35 + 400 + 32 + 31 + 5 + 900 + 60
    assert bulk.total_core_h == pytest.approx(total_core_s / 3600)


def test_measurements_only_campaign_still_gets_a_report(sqlite_url: str, tmp_path: Path):
    config = parse_config(yaml.safe_load((DATA / "feconimobo_lab.yaml").read_text()))
    store = CampaignStore.create(sqlite_url, config.name, config.model_dump(mode="json"))
    store.add_measurements(
        [
            Measurement(
                composition=x,
                property="overpotential",
                value=value,
                unit="mV",
                source="illustrative",
                raw_value=value / 1000.0,
                raw_unit="V",
            )
            for x, value in (
                ({"Fe": 0.1, "Co": 0.1, "Ni": 0.1, "Mo": 0.1, "B": 0.1, "O": 0.5}, 290.0),
                ({"Fe": 0.2, "Co": 0.1, "Ni": 0.1, "Mo": 0.05, "B": 0.05, "O": 0.5}, 262.0),
                ({"Fe": 0.1, "Co": 0.2, "Ni": 0.05, "Mo": 0.1, "B": 0.05, "O": 0.5}, 276.0),
            )
        ]
    )
    markdown = write_report(store, tmp_path / "report").read_text()
    assert "262 mV" in markdown
    assert "every value so far comes from measurements" in markdown
    assert "No failed evaluation" in markdown and "has not run an iteration" in markdown
    _assert_png(tmp_path / "report" / "composition_map.png")  # PCA of six elements
    assert "## Pareto front" not in markdown and "## Projected" not in markdown


def test_pareto_front_handles_directions():
    values = np.array([[1.0, 1.0], [2.0, 2.0], [3.0, 5.0], [2.0, 0.5]])
    assert pareto_front(values, ["maximize", "minimize"]).tolist() == [False, False, True, True]
    assert pareto_front(values, ["maximize", "maximize"]).tolist() == [False, False, True, False]
    assert pareto_front(values[:1], ["minimize", "minimize"]).tolist() == [True]


def test_failure_reason_takes_the_first_line():
    assert failure_reason("\n  lost atoms: 3\nTraceback ...") == "lost atoms: 3"
    assert failure_reason(None) == "(no reason recorded)"
    assert len(failure_reason("x" * 500)) == 160


def test_failure_kinds_take_the_numbers_out():
    from amloop.loop.report.figures import failure_kind, number_spread

    kind, numbers = failure_kind("energy 0.081 eV/atom above the reference -4.2 eV/atom (iter 3)")
    assert kind == "energy N eV/atom above the reference N eV/atom (iter N)"
    assert numbers == [0.081, -4.2, 3.0]
    assert failure_kind("OracleFailed: 7net-0 has no Zr")[0] == "OracleFailed: 7net-0 has no Zr"
    assert number_spread([[0.05], [0.12], [0.08], []]) == "0.05 – 0.12 (0.08)"


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def test_the_html_report_renders_in_a_browser(campaign: CampaignStore, tmp_path: Path):
    """Headless Chromium opens report.html: a non-empty screenshot and no broken image."""
    if CHROMIUM is None:
        message = "the browser check needs Debian's chromium (apt-get install -y chromium)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    out = tmp_path / "report"
    write_report(campaign, out)
    page = (out / "report.html").read_text()
    probe = (  # the page's title becomes the count of images the browser could not decode
        "<script>window.addEventListener('load', () => { document.title = 'broken:' + "
        "[...document.images].filter(i => !i.complete || i.naturalWidth === 0).length + "
        "' of ' + document.images.length; });</script>"
    )
    probed = out / "probed.html"
    probed.write_text(page.replace("</body>", probe + "</body>"))
    flags = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"]
    dom = subprocess.run(
        [*flags, "--virtual-time-budget=5000", "--dump-dom", probed.as_uri()],
        capture_output=True, text=True, timeout=120, check=True,
    ).stdout  # fmt: skip
    assert "<title>broken:0 of 8</title>" in dom
    shot = tmp_path / "page.png"
    subprocess.run(
        [*flags, f"--screenshot={shot}", "--window-size=1200,3000", probed.as_uri()],
        capture_output=True, timeout=120, check=True,
    )  # fmt: skip
    pixels = imread(shot)
    assert pixels.shape[0] == 3000 and pixels[..., :3].std() > 0.05  # drawn, not blank
