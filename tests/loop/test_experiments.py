"""Experiments as the top fidelity: lab requests out, measurements in (seed 000, Table S2)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from amloop.acquisition.features import MEASUREMENT_FIDELITY, build_training_set
from amloop.loop.cli import app
from amloop.oracles.registry import oracle_types
from amloop.state.config import load_config
from amloop.state.database import dispose_engines
from amloop.state.settings import Settings
from amloop.state.store import CampaignStore

DATA = Path(__file__).resolve().parents[1] / "data"
GROUP_1 = "Fe8.74Co8.23Ni8.26Mo6.93B5.87O61.98"


@pytest.fixture
def cli(tmp_path, monkeypatch):
    monkeypatch.setenv("AMLOOP_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("AMLOOP_DATABASE_URL", raising=False)
    monkeypatch.setattr("amloop.loop.cli.console", Console(width=250))
    runner = CliRunner()

    def invoke(*args: str):
        return runner.invoke(app, list(args), catch_exceptions=False)

    assert invoke("init", str(DATA / "feconimobo_lab.yaml")).exit_code == 0
    yield invoke
    dispose_engines()


def _store() -> CampaignStore:
    return CampaignStore.open(Settings().database_url_for("feconimobo-lab"), "feconimobo-lab")


def test_request_then_inject_table_s2_fulfils_it(cli, tmp_path):
    made = cli("experiments", "request", GROUP_1, "--reason", "highest expected improvement")
    assert made.exit_code == 0 and "lab request #1" in made.output
    pending = cli("experiments", "pending")
    assert "B0.059Co0.082Fe0.087Mo0.069Ni0.083O0.62" in pending.output
    assert "overpotential" in pending.output and "highest expected improvement" in pending.output
    exported = tmp_path / "requests.csv"
    assert cli("experiments", "pending", "-o", str(exported)).exit_code == 0
    (row,) = csv.DictReader(exported.open())
    assert (
        float(row["x_O"]) == pytest.approx(61.98 / 100.01, abs=1e-4)
        and row["properties"] == "overpotential"
    )

    injected = cli("inject", str(DATA / "feconimobo_table_s2.csv"))
    assert injected.exit_code == 0, injected.output
    assert "1 answer(s) to lab requests (2 unsolicited); fulfilled: #1" in injected.output
    assert "no open lab requests" in cli("experiments", "pending").output

    store = _store()
    (request,) = store.lab_requests()
    assert request.status == "fulfilled" and len(request.measurement_ids) == 1
    measurements = store.measurements(prop="overpotential")
    assert [m.value for m in measurements] == pytest.approx([290.0, 276.0, 262.0])  # V -> mV
    assert measurements[1].uncertainty == pytest.approx(5.0)
    assert [m.request_id for m in measurements] == [1, None, None]
    assert {m.method for m in measurements} == {"LSV 10 mA/cm2 1 M KOH"}
    assert all(m.iteration == 0 for m in measurements)  # usable from the first loop iteration
    rows = json.loads(cli("history", "--format", "json").output)
    assert {r["oracle"] for r in rows} == {"experiment"} and {r["fidelity"] for r in rows} == {1.0}
    assert "illustrative" in rows[0]["source"]

    # The next proposal's training data: the three catalysts at the top fidelity, in mV, with σ².
    config = load_config(DATA / "feconimobo_lab.yaml", oracle_types=oracle_types())
    training = build_training_set(store, config)
    data = training.objectives["overpotential"]
    assert data.X[:, training.fidelity_index].tolist() == [MEASUREMENT_FIDELITY] * 3
    assert data.Y.tolist() == pytest.approx([290.0, 276.0, 262.0])
    assert data.Yvar.tolist() == pytest.approx([25.0] * 3)
    group_1 = data.X[0, : training.n_elements]
    assert group_1[training.elements.index("O")] == pytest.approx(61.98 / 100.01, abs=1e-4)


def test_cancel_request_and_errors(cli):
    cli("experiments", "request", GROUP_1, "--reason", "test")
    cancelled = cli("experiments", "cancel", "1", "--reason", "furnace broken")
    assert cancelled.exit_code == 0
    again = cli("experiments", "cancel", "1", "--reason", "twice")
    assert again.exit_code == 1 and "lab request #1 is cancelled, not open" in again.output
    missing = cli("experiments", "cancel", "9", "--reason", "x")
    assert missing.exit_code == 1 and "no lab request #9" in missing.output
    outside = cli("experiments", "request", "Fe0.5Cu0.5", "--reason", "x")
    assert outside.exit_code == 1 and "Cu not in the campaign's chemical space" in outside.output
    (request,) = _store().lab_requests(status="cancelled")
    assert request.close_reason == "furnace broken"


def test_answer_to_an_unknown_request_rejects_the_whole_file(cli, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text(
        "composition,property,value,unit,uncertainty,source,request\n"
        f"{GROUP_1},overpotential,290,mV,5,lab A,\n"
        f"{GROUP_1},overpotential,291,mV,5,lab A,#7\n"
    )
    result = cli("inject", str(bad))
    assert result.exit_code == 1
    assert "lab request #7 is not an open request; nothing was stored" in result.output
    assert _store().measurements() == []


def test_experiment_oracle_cannot_evaluate_structures(cli):
    result = cli(
        "evaluate",
        "--oracle",
        "experiment",
        "--set",
        "properties=overpotential",
        str(DATA / "nifecr_relaxed.extxyz"),  # a real structure: the oracle is what fails
    )
    assert result.exit_code == 1 and "does not compute" in result.output
