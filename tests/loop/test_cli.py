"""End-to-end CLI: init -> inject -> history -> status -> export on a real SQLite store."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from ase.io import read as ase_read
from pymatgen.core import Lattice, Structure
from rich.console import Console
from typer.testing import CliRunner

from amloop.loop.cli import app
from amloop.state.database import dispose_engines
from amloop.state.schema import Candidate, Cost, Evaluation, PropertyValue
from amloop.state.settings import Settings
from amloop.state.store import CampaignStore

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "nifecr.yaml"
MEASUREMENTS = ROOT / "tests" / "data" / "measurements.csv"


@pytest.fixture
def cli(tmp_path, monkeypatch):
    monkeypatch.setenv("AMLOOP_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("AMLOOP_DATABASE_URL", raising=False)
    monkeypatch.delenv("AMLOOP_CAMPAIGN", raising=False)
    monkeypatch.setattr("amloop.loop.cli.console", Console(width=250))
    runner = CliRunner()

    def invoke(*args: str):
        return runner.invoke(app, list(args), catch_exceptions=False)

    yield invoke
    dispose_engines()


def _init(cli):
    result = cli("init", str(EXAMPLE))
    assert result.exit_code == 0, result.output
    return result


def test_init_creates_campaign_folder_store_and_current_pointer(cli, tmp_path):
    result = _init(cli)
    assert "created campaign nifecr" in result.output
    folder = tmp_path / "home" / "nifecr"
    assert (folder / "campaign.db").is_file()
    assert (folder / "config.yaml").is_file()
    assert (tmp_path / "home" / "CURRENT").read_text().strip() == "nifecr"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"potential": "NoSuch.meam"}, "NoSuch.meam"),
        ({"elements": ["Ni", "Fe", "Cr", "Zr"]}, "has no parameters for Zr"),
        (
            {
                "potentials": {
                    "Ni": {"potential": "Ni_u3.eam"},
                    "Cr-Fe-Ni": {"potential": "MoCoNiVFeAlCr_2nn.meam"},
                    "Fe": {"potential": "Fe_mm.eam.fs"},
                },
                "bounds": {"Ni": [0.0, 1.0], "Fe": [0.0, 1.0], "Cr": [0.4, 0.6]},
            },
            None,
        ),
        (
            {"potentials": {"Ni": {"potential": "Ni_u3.eam"}, "Fe": {"potential": "Fe_mm.eam.fs"}}},
            "no potential covers Cr; subsystems: Fe, Ni",
        ),
    ],
    ids=[
        "missing-potential-file",
        "element-not-covered",
        "subsystems-covered",
        "subsystem-missing",
    ],
)
def test_init_refuses_an_oracle_that_cannot_work_before_writing_anything(
    cli, tmp_path, change, message
):
    import yaml

    data = yaml.safe_load(EXAMPLE.read_text())
    options = data["oracles"][0]["options"]
    if "potential" in change:
        options["potential"] = change["potential"]
    elif "potentials" in change:  # per subsystem: the map replaces the single MEAM file
        for key in ("potential", "pair_style", "library"):
            options.pop(key, None)
        options["potentials"] = change["potentials"]
        data["bounds"] = change.get("bounds", {})
    else:
        data["elements"] = change["elements"]
    config = tmp_path / "bad.yaml"
    config.write_text(yaml.safe_dump(data))
    result = cli("init", str(config))
    if message is None:  # Cr >= 0.4: no Ni-only, Fe-only or Fe-Ni cell, the ternary file does
        assert result.exit_code == 0, result.output
        return
    assert result.exit_code == 1
    assert message in result.output and "oracles.0" in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "home" / data["name"]).exists()


def test_second_init_of_same_name_is_refused(cli):
    _init(cli)
    result = cli("init", str(EXAMPLE))
    assert result.exit_code == 1
    assert "campaign 'nifecr' already exists" in result.output


def test_init_bad_config_names_field_and_fix(cli, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(EXAMPLE.read_text().replace("[Ni, Fe, Cr]", "[Ni, Fe, Xx]"))
    result = cli("init", str(bad))
    assert result.exit_code == 1
    assert (
        "elements: unknown element 'Xx'; use chemical symbols such as Fe, Ni, Cr" in result.output
    )
    assert not (tmp_path / "home" / "nifecr").exists()


def test_inject_then_history_shows_rows_with_units_and_provenance(cli):
    _init(cli)
    result = cli("inject", str(MEASUREMENTS))
    assert result.exit_code == 0, result.output
    assert "stored 3 measurement(s) of bulk_modulus" in result.output

    rows = json.loads(cli("history", "--format", "json").output)
    assert [row["stage"] for row in rows] == ["measurement"] * 3
    values = [row["bulk_modulus [GPa]"] for row in rows]
    assert values == pytest.approx([178.0, 183.0, 176.5])  # GPa, Mbar and MPa -> GPa
    assert all(isinstance(row["fidelity"], float) for row in rows)  # a number, not text
    assert rows[1]["bulk_modulus σ"] == pytest.approx(5.0)  # 0.05 Mbar
    assert rows[1]["provenance"]["file"].endswith("measurements.csv:2")
    assert rows[1]["provenance"]["given_as"] == "1.83 Mbar"
    assert rows[0]["source"].startswith("resonant ultrasound")

    table = cli("history").output
    assert "3 record(s)" in table
    assert "Cr0.2Fe0.3Ni0.5" in table and "bulk_modulus [GPa]" in table and "183" in table

    csv_text = cli("history", "--format", "csv").output
    header = csv_text.splitlines()[0].split(",")
    assert header[:4] == ["iteration", "stage", "candidate", "formula"]
    assert "bulk_modulus [GPa]" in header and "provenance" not in header
    assert len(csv_text.strip().splitlines()) == 4
    long = cli("history", "--long").output
    assert "183 ± 5 GPa" in long


def test_status_reports_budget_best_and_lock(cli):
    _init(cli)
    cli("inject", str(MEASUREMENTS))
    output = cli("status").output
    assert "nifecr" in output and "not started" in output and "lock: free" in output
    assert "183" in output  # best bulk modulus so far comes from the 1.83 Mbar measurement
    assert "core-h" in output and "lammps_meam calls" in output


def test_bad_csv_is_rejected_whole_with_row_numbers(cli, tmp_path):
    _init(cli)
    bad = tmp_path / "bad.csv"
    bad.write_text(
        "composition,property,value,unit,uncertainty,source\n"
        "Ni0.5Fe0.5,bulk_modulus,180,GPa,2,lab A\n"
        "Ni0.5Co0.5,bulk_modulus,180,GPa,2,lab A\n"
        "Ni0.5Fe0.5,bulk_modulus,abc,GPa,2,lab A\n"
        "Ni0.5Fe0.5,bulk_modulus,180,kg,2,lab A\n"
        "Ni0.5Fe0.5,bulk_modulus,180,GPa,2,\n"
    )
    result = cli("inject", str(bad))
    assert result.exit_code == 1
    out = " ".join(result.output.split())
    assert "4 bad rows; nothing was stored" in out
    assert "row 2: element(s) Co not in the campaign's chemical space (Cr-Fe-Ni)" in out
    assert "row 3: value 'abc' is not a number" in out
    assert "row 4: unknown unit 'kg' for bulk_modulus" in out
    assert "row 5: source is empty" in out
    settings = Settings()
    store = CampaignStore.open(settings.database_url_for("nifecr"), "nifecr")
    assert store.measurements() == []
    assert [e.kind for e in store.events(kind="inject_rejected")] == ["inject_rejected"]


def test_export_formats(cli, tmp_path):
    _init(cli)
    settings = Settings()
    store = CampaignStore.open(settings.database_url_for("nifecr"), "nifecr")
    fcc = Structure(
        Lattice.cubic(3.52),
        ["Ni", "Ni", "Fe", "Cr"],
        [[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]],
    )
    candidate = store.add_candidate(Candidate(structure=fcc, origin="seed", iteration=0))
    store.record_evaluation(
        Evaluation(
            candidate_hash=candidate.content_hash,
            oracle="lammps_meam",
            fidelity=0.6,
            status="done",
            properties={"bulk_modulus": PropertyValue(value=190.5, unit="GPa")},
            cost=Cost(core_s=1.5),
            iteration=0,
        )
    )
    xyz = tmp_path / "out.extxyz"
    assert cli("export", "--format", "extxyz", "-o", str(xyz)).exit_code == 0
    frames = ase_read(xyz, index=":")
    assert len(frames) == 1
    assert frames[0].info["lammps_meam.bulk_modulus"] == pytest.approx(190.5)
    assert sorted(frames[0].get_chemical_symbols()) == ["Cr", "Fe", "Ni", "Ni"]
    cifs = tmp_path / "cifs"
    assert cli("export", "--format", "cif", "-o", str(cifs)).exit_code == 0
    (cif,) = cifs.glob("*.cif")
    assert Structure.from_file(cif).composition.reduced_formula == fcc.composition.reduced_formula
    table = tmp_path / "h.csv"
    assert cli("export", "--format", "csv", "-o", str(table)).exit_code == 0
    assert "190.5" in table.read_text()


def test_campaign_option_and_missing_campaign(cli):
    result = cli("status")
    assert result.exit_code == 1
    assert "run `amloop init CONFIG` first" in result.output
    _init(cli)
    assert cli("status", "--campaign", "nifecr").exit_code == 0
    missing = cli("status", "--campaign", "other")
    assert missing.exit_code == 1 and "no campaign 'other'" in missing.output


def test_evaluate_runs_an_oracle_on_structure_files(cli, tmp_path):
    ni = Structure(
        Lattice.cubic(3.52), ["Ni"] * 4, [[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]]
    )
    cif = tmp_path / "ni.cif"
    ni.to(filename=str(cif))
    result = cli(
        "evaluate",
        "--oracle",
        "lammps",
        "--set",
        "potential=Ni_u3.eam",
        "--set",
        "method=eos",
        "--json",
        str(cif),
    )
    assert result.exit_code == 0, result.output
    (record,) = json.loads(result.output)
    assert record["file"] == "ni.cif" and record["status"] == "done"
    bulk = record["properties"]["bulk_modulus"]
    assert bulk["unit"] == "GPa" and 170 < bulk["value"] < 190  # Foiles-Baskes-Daw Ni: ~180 GPa
    assert record["provenance"]["oracle_type"] == "lammps"

    relaxed = tmp_path / "relaxed.extxyz"
    written = cli(
        "evaluate",
        "--oracle",
        "lammps",
        "--set",
        "potential=Ni_u3.eam",
        "-o",
        str(relaxed),
        str(cif),
    )
    assert written.exit_code == 0 and "wrote 1 relaxed" in written.output
    (atoms,) = ase_read(relaxed, index=":")
    assert atoms.get_volume() / len(atoms) == pytest.approx(
        3.52**3 / 4, rel=0.01
    )  # Ni_u3: a = 3.52 Å

    uncovered = cli("evaluate", "--oracle", "lammps", "--set", "potential=Fe_mm.eam.fs", str(cif))
    assert uncovered.exit_code == 1
    assert "has no parameters for Ni" in uncovered.output
    unknown = cli("evaluate", "--oracle", "vasp-magic", str(cif))
    assert (
        unknown.exit_code == 1
        and "unknown oracle type 'vasp-magic'; registered types:" in unknown.output
    )


@pytest.mark.postgres
def test_cli_on_a_shared_postgresql_database(cli, postgres_url, monkeypatch, tmp_path):
    monkeypatch.setenv("AMLOOP_DATABASE_URL", postgres_url)
    _init(cli)
    assert not (tmp_path / "home" / "nifecr" / "campaign.db").exists()  # rows live in PostgreSQL
    assert cli("inject", str(MEASUREMENTS)).exit_code == 0
    rows = json.loads(cli("history", "--format", "json").output)
    assert [row["bulk_modulus [GPa]"] for row in rows] == pytest.approx([178.0, 183.0, 176.5])
    assert CampaignStore.campaign_names(postgres_url) == ["nifecr"]
    assert "183" in cli("status").output


def test_a_file_is_injected_once(cli):
    _init(cli)
    assert cli("inject", str(MEASUREMENTS)).exit_code == 0
    again = cli("inject", str(MEASUREMENTS))
    assert again.exit_code == 1 and "was injected already" in again.output
    assert "Traceback" not in again.output
    store = CampaignStore.open(Settings().database_url_for("nifecr"), "nifecr")
    assert len(store.measurements()) == 3  # not 6
    assert store.events(kind="inject_rejected")


def test_a_structure_path_outside_the_csvs_folder_is_refused(cli, tmp_path):
    _init(cli)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    cell = Structure(Lattice.cubic(3.6), ["Ni", "Fe"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    cell.to(filename=str(outside / "cell.cif"))
    folder = tmp_path / "lab"
    folder.mkdir()
    csv_file = folder / "m.csv"
    csv_file.write_text(
        "composition,property,value,unit,uncertainty,source,structure\n"
        "Ni0.5Fe0.5,bulk_modulus,180,GPa,4,lab A,../elsewhere/cell.cif\n"
    )
    refused = cli("inject", str(csv_file))
    assert refused.exit_code == 1 and "outside the CSV's folder" in refused.output
    assert cli("inject", str(csv_file), "--allow-outside").exit_code == 0


def test_exported_text_cells_cannot_run_as_spreadsheet_formulas(cli, tmp_path):
    _init(cli)
    csv_file = tmp_path / "m.csv"
    csv_file.write_text(
        "composition,property,value,unit,uncertainty,source\n"
        'Ni0.5Fe0.5,bulk_modulus,180,GPa,4,"=HYPERLINK(""http://x"",""y"")"\n'
    )
    assert cli("inject", str(csv_file)).exit_code == 0
    out = tmp_path / "history.csv"
    assert cli("export", "--format", "csv", "-o", str(out)).exit_code == 0
    text = out.read_text()
    assert "'=HYPERLINK" in text and ",=HYPERLINK" not in text and '"=HYPERLINK' not in text


def test_a_run_refused_by_the_lock_leaves_resume_limits_alone(cli, prefect_api_url, monkeypatch):
    """Limits are recorded only by the run that holds the lock: a refused `run --iterations 2`
    must not change what `resume` continues with."""
    from amloop.loop.campaigns import resolve_campaign
    from amloop.loop.runs import last_limits

    _init(cli)
    handle = resolve_campaign("nifecr", Settings())
    store = handle.store()
    store.acquire_lock("another-host:4242:abcd", stale_after_s=3600)
    import amloop.loop.flows

    def engine_started(*args, **kwargs):
        raise AssertionError("the workflow engine started although the lock is held")

    monkeypatch.setattr(amloop.loop.flows, "run_campaign", engine_started)
    result = cli("run", "nifecr", "--iterations", "2")  # refused before the engine starts
    assert "Traceback" not in result.output and "prefect" not in result.output.lower()
    assert result.exit_code == 1 and "being run by PID 4242 on another-host" in result.output
    assert "kill -INT 4242" in result.output and "amloop resume nifecr" in result.output
    assert last_limits(handle).max_iterations is None
    assert not store.events(kind="run_limits")


def test_take_over_takes_a_crashed_nodes_lock_but_never_a_live_local_run(
    cli, prefect_api_url, monkeypatch
):
    """`resume --take-over`: a lock held from another host (fresh heartbeat: the node just
    crashed) is taken at once and the run starts; a lock of a live process of this host is
    refused all the same."""
    import os
    import socket

    from amloop.loop.campaigns import resolve_campaign

    _init(cli)
    store = resolve_campaign("nifecr", Settings()).store()
    store.acquire_lock("crashed-node:4242:abcd", stale_after_s=3600)
    import amloop.loop.flows

    started: list[str] = []
    monkeypatch.setattr(
        amloop.loop.flows, "run_campaign", lambda *a, **k: started.append("flow") or "stub"
    )
    refused = cli("resume", "nifecr")
    assert refused.exit_code == 1 and "--take-over" in refused.output and not started
    assert "Traceback" not in refused.output
    taken = cli("resume", "nifecr", "--take-over")
    assert taken.exit_code == 0, taken.output
    assert started == ["flow"] and store.events(kind="lock_taken_over")
    assert store.info().lock is None  # the probe gave it back; the (stubbed) flow takes it
    store.acquire_lock(f"{socket.gethostname()}:{os.getppid()}", stale_after_s=3600)
    alive = cli("resume", "nifecr", "--take-over")  # our parent process: alive, this host
    assert alive.exit_code == 1 and f"PID {os.getppid()}" in alive.output
    assert started == ["flow"]


def test_running_a_finished_campaign_again_returns_at_once(cli):
    """A finished campaign whose iteration limit holds: `amloop run` says so without starting
    the workflow engine or building a seed set (which would take minutes here)."""
    import time

    from amloop.loop.campaigns import resolve_campaign

    _init(cli)
    store = resolve_campaign("nifecr", Settings()).store()
    store.start_iteration(0)
    store.update_iteration(0, phase="done")
    store.set_status("finished")
    started = time.perf_counter()
    result = cli("run", "nifecr", "--iterations", "1")
    assert result.exit_code == 0, result.output
    assert "stopped: 1 iteration(s) done (limit 1)" in result.output
    assert time.perf_counter() - started < 10.0
    assert not store.evaluations()  # no seed set was built


def test_a_copy_of_the_store_file_alone_is_complete(cli, tmp_path):
    """Commands end with the write-ahead log written into campaign.db."""
    import shutil
    import sqlite3

    _init(cli)
    assert cli("inject", str(MEASUREMENTS)).exit_code == 0
    copy = tmp_path / "copy.db"
    shutil.copy(tmp_path / "home" / "nifecr" / "campaign.db", copy)  # without -wal / -shm
    with sqlite3.connect(copy) as connection:
        assert connection.execute("SELECT COUNT(*) FROM measurements").fetchone() == (3,)


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"", "is empty (0 bytes)"), (b"garbage" * 100, "is not a SQLite database")],
    ids=["zero-length", "garbage"],
)
def test_a_damaged_store_gives_one_line_and_is_never_written(cli, tmp_path, content, message):
    _init(cli)
    dispose_engines()
    store_file = tmp_path / "home" / "nifecr" / "campaign.db"
    for suffix in ("-wal", "-shm"):
        store_file.with_name(store_file.name + suffix).unlink(missing_ok=True)
    store_file.write_bytes(content)
    for command in (["status"], ["history"], ["run", "nifecr"], ["init", str(EXAMPLE)]):
        result = cli(*command)
        assert result.exit_code == 1, (command, result.output)
        assert message in result.output and str(store_file) in result.output
        assert "Traceback" not in result.output
    assert store_file.read_bytes() == content


def test_backup_and_check(cli, tmp_path):
    import sqlite3

    _init(cli)
    assert cli("inject", str(MEASUREMENTS)).exit_code == 0
    backup = tmp_path / "backup.db"
    result = cli("backup", "-o", str(backup))
    assert result.exit_code == 0, result.output
    with sqlite3.connect(backup) as connection:
        assert connection.execute("SELECT COUNT(*) FROM measurements").fetchone() == (3,)
    assert cli("backup", "-o", str(backup)).exit_code == 1  # never overwrites
    healthy = cli("check")
    assert healthy.exit_code == 0 and "problem" not in healthy.output
    # an evaluation left running by a process that is gone
    store = CampaignStore.open(Settings().database_url_for("nifecr"), "nifecr")
    cell = Structure(Lattice.cubic(3.6), ["Ni", "Fe"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    stored = store.add_candidate(Candidate(structure=cell, origin="injected"))
    store.claim_evaluation(stored.content_hash, "lammps_meam", 0.6)
    stranded = cli("check")
    assert stranded.exit_code == 1 and "left running" in stranded.output


def test_status_says_crashed_when_the_lock_holder_is_gone(cli):
    import socket

    _init(cli)
    store = CampaignStore.open(Settings().database_url_for("nifecr"), "nifecr")
    store.acquire_lock(f"{socket.gethostname()}:999999:1.00:ab", stale_after_s=3600)
    store.set_status("running")
    result = cli("status")
    assert result.exit_code == 0 and "crashed" in result.output


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (bytes(range(256)) * 40, "not UTF-8 text"),
        (
            b"composition,property,value,unit,uncertainty,source\n"
            + b'NiFe,bulk_modulus,1,GPa,1,"'
            + b"x" * 200_000
            + b'"\n',
            "not a readable CSV file",
        ),
    ],
    ids=["binary", "huge-field"],
)
def test_unreadable_measurement_files_give_one_line_and_are_logged(cli, tmp_path, content, message):
    _init(cli)
    bad = tmp_path / "bad.csv"
    bad.write_bytes(content)
    result = cli("inject", str(bad))
    assert result.exit_code == 1 and message in result.output
    assert "Traceback" not in result.output
    store = CampaignStore.open(Settings().database_url_for("nifecr"), "nifecr")
    assert store.events(kind="inject_rejected") and not store.measurements()


def test_an_oversized_campaign_yaml_is_refused_before_parsing(cli, tmp_path):
    big = tmp_path / "big.yaml"
    big.write_text("name: big\nelements: [" + ", ".join(["Fe"] * 400_000) + "]\n")
    result = cli("init", str(big))
    assert result.exit_code == 1 and "far more than a campaign YAML holds" in result.output
    assert not (tmp_path / "home" / "big").exists()


def test_campaigns_are_named_or_found_in_amloop_home_only(cli, tmp_path):
    """`-c` takes a name or a campaign folder in AMLOOP_HOME; a path elsewhere is refused
    before any store there is opened (or migrated)."""
    import shutil

    _init(cli)
    assert cli("status", "-c", str(tmp_path / "home" / "nifecr")).exit_code == 0
    elsewhere = tmp_path / "elsewhere" / "campaigns" / "nifecr"
    shutil.copytree(tmp_path / "home" / "nifecr", elsewhere)
    stamp = (elsewhere / "campaign.db").stat().st_mtime_ns
    for target in (str(elsewhere), "../elsewhere/campaigns/nifecr", "a/b"):
        result = cli("status", "-c", target)
        assert result.exit_code == 1 and "neither a campaign name" in result.output, target
    assert (elsewhere / "campaign.db").stat().st_mtime_ns == stamp


def test_an_unreachable_database_is_one_line_and_leaves_nothing(cli, tmp_path, monkeypatch):
    import socket

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("AMLOOP_DATABASE_URL", f"postgresql+psycopg://postgres@127.0.0.1:{port}/x")
    monkeypatch.setenv("AMLOOP_DB_OUTAGE_S", "0.5")
    result = cli("init", str(EXAMPLE))
    assert result.exit_code == 1 and "the database cannot be reached" in result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) <= 3
    assert not (tmp_path / "home" / "nifecr").exists()


@pytest.mark.parametrize(
    ("hparams", "weights"),
    [(b"\x00\xff" * 50, b"x"), (None, b"random bytes, not torch weights")],
    ids=["garbage-hparams", "random-weights"],
)
def test_a_broken_generator_checkpoint_is_one_line(cli, tmp_path, hparams, weights):
    import shutil

    from amloop.generator.cdvae import CondCDVAE
    from amloop.generator.config import CondCDVAEConfig

    folder = tmp_path / "ckpt"
    if hparams is None:  # a real checkpoint whose weights are replaced
        from amloop.generator.data import read_training_data

        pairs = read_training_data(ROOT / "tests" / "data" / "nifecr_relaxed.extxyz", None)[:4]
        model = CondCDVAE(CondCDVAEConfig.tiny(), device="cpu")
        model.fit(pairs, epochs=1)
        model.save(folder)
    else:
        folder.mkdir()
        (folder / "hparams.json").write_bytes(hparams)
    (folder / "model.pt").write_bytes(weights)
    result = cli(
        "generator", "sample", "--checkpoint", str(folder), "--composition", "Ni0.5Fe0.5",
        "-o", str(tmp_path / "out.extxyz"),
    )  # fmt: skip
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output and str(folder) in result.output
    shutil.rmtree(folder)


def test_a_store_damaged_inside_is_one_line(cli, tmp_path):
    """Pages overwritten in the middle of campaign.db (its header intact): one line, no
    traceback, whichever command first reads a damaged page."""
    _init(cli)
    assert cli("inject", str(MEASUREMENTS)).exit_code == 0
    dispose_engines()
    store_file = tmp_path / "home" / "nifecr" / "campaign.db"
    data = bytearray(store_file.read_bytes())
    page = 4096
    for start in range(page, len(data), page):  # every page after the first: garbage
        data[start : start + page] = bytes([0xA5]) * min(page, len(data) - start)
    store_file.write_bytes(bytes(data))
    for command in (["status"], ["history"], ["check"]):
        result = cli(*command)
        assert result.exit_code == 1, (command, result.output)
        assert "Traceback" not in result.output
        assert "damaged" in result.output or "malformed" in result.output, result.output


def test_an_init_killed_before_its_store_row_is_finished_by_resume(tmp_path, monkeypatch):
    """`amloop init` writes config.yaml before the store (and no store file before it): killed
    in between, the folder holds config.yaml and a store without the campaign, which
    `amloop resume` (finish_init) completes instead of answering "no campaign"."""
    from amloop.loop.campaigns import init_campaign, resolve_campaign
    from amloop.state.store import CampaignNotFound

    settings = Settings(home=tmp_path / "home")

    def killed(*args, **kwargs):
        raise KeyboardInterrupt  # as a kill between config.yaml and the store row

    monkeypatch.setattr(CampaignStore, "create", killed)
    with pytest.raises(KeyboardInterrupt):
        init_campaign(EXAMPLE, settings)
    folder = tmp_path / "home" / "nifecr"
    assert (folder / "config.yaml").is_file() and not (folder / "campaign.db").exists()
    monkeypatch.undo()
    CampaignStore.campaign_names(settings.database_url_for("nifecr"))  # the schema, no row
    with pytest.raises(CampaignNotFound):
        resolve_campaign("nifecr", settings)
    handle = resolve_campaign("nifecr", settings, finish_init=True)
    assert handle.config.name == "nifecr" and handle.store().info().status == "created"
    dispose_engines()


def test_every_command_names_its_campaign_positionally_or_with_c(cli, tmp_path):
    """Issue 30: `amloop status nifecr` and `amloop status -c nifecr` alike, the campaign last
    used becomes the current one, `amloop list` shows them all, `--version`."""
    import yaml

    _init(cli)
    other = yaml.safe_load(EXAMPLE.read_text()) | {"name": "other"}
    (tmp_path / "other.yaml").write_text(yaml.safe_dump(other))
    assert cli("init", str(tmp_path / "other.yaml")).exit_code == 0  # now current
    current = tmp_path / "home" / "CURRENT"
    for command in ("status", "history", "check", "experiments pending", "mlp fit"):
        words = command.split()
        positional, option = cli(*words, "nifecr"), cli(*words, "-c", "nifecr")
        assert positional.exit_code == option.exit_code, (command, positional.output)
        assert "no such option" not in positional.output.lower()
    assert current.read_text().strip() == "nifecr"  # the last one used
    assert "nifecr" in cli("status").output.splitlines()[0]
    report = cli("report", "-c", "other", "-o", str(tmp_path / "report"))
    assert report.exit_code == 0 and (tmp_path / "report" / "report.html").is_file()
    assert current.read_text().strip() == "other"
    clash = cli("status", "nifecr", "-c", "other")
    assert clash.exit_code == 2 and "two campaigns given" in clash.output
    listed = cli("list").output
    assert "nifecr" in listed and "other" in listed and "0 core-h" in listed
    assert "* │ other" in listed  # the current one is marked
    assert cli("--version").output.startswith("amloop ")


def test_an_unknown_structure_format_is_named_before_any_oracle_loads(cli, tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("a lab note, not a structure\n")
    result = cli("evaluate", str(notes), "--oracle", "lammps")
    assert result.exit_code == 1
    assert "not a structure format amloop reads (tried: pymatgen JSON" in result.output
    assert "ASE knows no format '.txt'" in result.output


def test_history_is_one_row_per_call_that_fits_80_columns(cli, monkeypatch):
    """Issue 30: one row per oracle call (not per property), seeds as a stage, the gate's
    verdict as columns, numbers in CSV/JSON, the columns that fit an 80-column terminal, and
    the filters --oracle, --status, --best."""
    from amloop.loop.campaigns import resolve_campaign

    _init(cli)
    store = resolve_campaign("nifecr", Settings()).store()
    for i, (bulk, shear) in enumerate([(181.0, 80.0), (190.5, 85.0), (176.0, 70.0)]):
        sites = [[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]]
        structure = Structure(Lattice.cubic(3.52 + 0.01 * i), ["Ni"] * 4, sites)
        candidate = store.add_candidate(Candidate(structure=structure, origin="seed"))
        properties = {
            "bulk_modulus": PropertyValue(value=bulk, unit="GPa"),
            "shear_modulus": PropertyValue(value=shear, unit="GPa"),
            "energy_per_atom": PropertyValue(value=-4.45 - 0.01 * i, unit="eV/atom"),
        }
        store.record_evaluation(
            Evaluation(
                candidate_hash=candidate.content_hash,
                oracle="lammps_meam",
                fidelity=0.6,
                status="done" if i < 2 else "failed",
                properties=properties if i < 2 else {},
                error=None if i < 2 else "OracleFailed: no convergence",
                iteration=None if i == 0 else 1,
            )
        )
        store.record_evaluation(
            Evaluation(
                candidate_hash=candidate.content_hash,
                oracle="quality_gate",
                fidelity=0.0,
                status="failed" if i == 1 else "done",
                error="energy 0.08 eV/atom above the reference" if i == 1 else None,
            )
        )
    monkeypatch.setattr("amloop.loop.cli.console", Console(width=80))
    table = cli("history").output
    lines = table.splitlines()
    assert max(len(line) for line in lines) <= 80
    assert "3 record(s)" in table and "bulk_modulus [GPa]" in table
    rows = [line for line in lines if "Ni" in line and "not shown" not in line]
    assert len(rows) == 3 and rows[0].split()[0] == "seed"
    assert "reject" in rows[1] and "190.5" in rows[1]
    assert "not shown:" in table  # what did not fit is named

    records = json.loads(cli("history", "--format", "json").output)
    assert records[1]["gate"] == "reject" and "0.08 eV/atom" in records[1]["gate_reason"]
    assert records[1]["shear_modulus [GPa]"] == 85.0 and records[1]["iteration"] == 1
    assert records[2]["failure"] == "OracleFailed: no convergence"
    assert len(json.loads(cli("history", "--status", "failed", "--format", "json").output)) == 1
    best = json.loads(cli("history", "--best", "1", "--format", "json").output)
    assert [r["bulk_modulus [GPa]"] for r in best] == [190.5]
    assert cli("history", "--oracle", "nope").output.startswith("no oracle calls")
    picked = cli("history", "--columns", "candidate,bulk_modulus [GPa]").output
    assert "formula" not in picked and "190.5" in picked
    by_header = cli("history", "--columns", "iter,bulk_modulus [GPa]").output  # as shown
    assert ["iter", "bulk_modulus", "[GPa]"] in [line.split() for line in by_header.splitlines()]
