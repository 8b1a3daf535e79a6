"""The closed loop end to end: a 2-iteration Ni-Fe-Cr campaign with the tiny generator and the
real LAMMPS 2NN-MEAM oracle, run by the Prefect flow; then killed at random moments and resumed.
"""

from __future__ import annotations

import os
import random
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from amloop.loop.campaigns import CampaignHandle, init_campaign
from amloop.loop.flows import RunLimits, run_campaign
from amloop.loop.report import write_report
from amloop.loop.steps import GATE_ORACLE
from amloop.state.database import dispose_engines
from amloop.state.settings import Settings
from amloop.state.store import CampaignStore

CONFIG = Path(__file__).parents[1] / "data" / "loop_nifecr.yaml"
REPO = Path(__file__).parents[2]
#: Kill-and-resume trials in the default suite; the issue's 20 run with AMLOOP_CRASH_TRIALS=20.
CRASH_TRIALS = int(os.environ.get("AMLOOP_CRASH_TRIALS", "2"))


def _fingerprint(store: CampaignStore) -> dict[str, object]:
    """What must be identical between an uninterrupted and a killed-and-resumed campaign."""
    evaluations = store.evaluations()
    return {
        "evaluations": sorted((e.candidate_hash, e.oracle, e.status) for e in evaluations),
        "candidates": sorted(c.content_hash for c in store.candidates()),
        "iterations": [(r.index, r.phase) for r in store.iterations()],
        "lab_and_measurements": len(store.measurements()),
    }


@pytest.fixture(scope="module")
def finished_campaign(tmp_path_factory, prefect_api_url):
    """The reference campaign, run once without interruption."""
    torch.set_num_threads(1)
    home = tmp_path_factory.mktemp("reference")
    os.environ["AMLOOP_HOME"] = str(home)
    try:
        handle = init_campaign(CONFIG, Settings())
        started = time.perf_counter()
        reason = run_campaign(handle.database_url, handle.name, handle.directory, RunLimits())
        elapsed = time.perf_counter() - started
    finally:
        del os.environ["AMLOOP_HOME"]
    yield handle, reason, elapsed
    dispose_engines()


def test_two_iterations_end_to_end(finished_campaign):
    handle, reason, _ = finished_campaign
    store = handle.store()
    assert reason == "2 iteration(s) done (limit 2)"
    iterations = store.iterations()
    assert [(r.index, r.phase) for r in iterations] == [(0, "done"), (1, "done")]
    for record in iterations:
        assert len(record.metadata["proposals"]) == 2
        assert record.metadata["best"]["bulk_modulus"] > 0
        assert record.training_cost.core_s > 0  # the generator was (re)trained and charged
        assert record.metadata["gp_hyperparameters"]["bulk_modulus"]["n_points"] >= 6
    evaluations = store.evaluations()
    assert not [e for e in evaluations if e.status in ("running", "pending")]
    seeds = [c for c in store.candidates() if c.origin == "seed"]
    generated = [c for c in store.candidates() if c.origin in ("generated", "latent_opt")]
    assert len(seeds) == 6
    assert {c.iteration for c in generated} == {0, 1}
    assert all("proposal" in c.provenance for c in generated if c.origin == "generated")
    # seed 001's decode schedule: latent trajectories decoded after 10 and 20 Adam steps
    decoded = [c.provenance["adam_steps"] for c in generated if c.origin == "latent_opt"]
    assert set(decoded) == {10, 20}
    # seed 001's crafting: after each iteration, 2 swaps from the best cell, each scored
    crafted = [c for c in store.candidates() if c.origin == "local_search"]
    assert {c.iteration for c in crafted} == {0, 1} and len(crafted) == 4
    scored = {e.candidate_hash: e for e in evaluations if e.oracle == "lammps_meam"}
    for child in crafted:
        parent = store.candidate(child.parent_hash)
        assert parent is not None and parent.structure.composition == child.structure.composition
        assert scored[child.content_hash].status in ("done", "failed")
        assert scored[child.content_hash].iteration == child.iteration
    for record in iterations:
        (search,) = record.metadata["local_search"]["searches"]
        assert (
            search["calls"] == 2 and search["start"] == record.metadata["local_search"]["starts"][0]
        )
    # a lattice campaign: generated atoms are put on FCC sites (every atom has 12 neighbours)
    assert all(c.provenance["snapped_to"] == "fcc" for c in generated)
    assert all(
        min(len(c.structure.get_neighbors(site, 2.7)) for site in c.structure) == 12
        for c in generated
    )
    # ... and their elements are exchanged on those sites towards the proposal's PDM target
    targeted = [
        c
        for c in generated
        if c.origin == "generated" and c.provenance["proposal"]["pdm_target"] is not None
    ]
    assert targeted and all("pdm_error_on_lattice" in c.provenance for c in targeted)
    verdicts = {e.candidate_hash: e for e in evaluations if e.oracle == GATE_ORACLE}
    assert {c.content_hash for c in generated} <= set(verdicts)  # every one was gated
    # ... and every scored crafted child got the energy rule's verdict; no rejected cell is a
    # crafting start or the campaign's best
    assert {c.content_hash for c in crafted if scored[c.content_hash].status == "done"} <= set(
        verdicts
    )
    rejected = store.gate_rejected()
    assert not rejected & {s for r in iterations for s in r.metadata["local_search"]["starts"]}
    for verdict in verdicts.values():
        assert (verdict.status == "failed") == bool(verdict.error)
    # physics: FCC Ni-Fe-Cr with the 2NN-MEAM has B in the 150-220 GPa range
    moduli = [
        e.properties["bulk_modulus"].value
        for e in evaluations
        if e.status == "done" and "bulk_modulus" in e.properties
    ]
    assert len(moduli) >= 6 + 2
    assert all(120.0 < b < 240.0 for b in moduli), moduli
    # the budget is the sum of the oracle calls and the trainings
    spent = store.spent().core_s
    oracle_s = sum(e.cost.core_s for e in evaluations)
    training_s = sum(r.training_cost.core_s for r in iterations)
    assert spent == pytest.approx(oracle_s + training_s)
    checkpoints = store.artifacts(kind="generator_checkpoint")
    assert len(checkpoints) == 3  # iterations 0, 1 and the one fine-tuned for iteration 2


def test_rerunning_a_finished_campaign_redoes_nothing(finished_campaign):
    handle, _, _ = finished_campaign
    before = _fingerprint(handle.store())
    reason = run_campaign(handle.database_url, handle.name, handle.directory, RunLimits())
    assert reason == "2 iteration(s) done (limit 2)"
    assert _fingerprint(handle.store()) == before


def test_report_of_the_campaign(finished_campaign, tmp_path):
    handle, _, _ = finished_campaign
    markdown = write_report(handle.store(), tmp_path / "report")
    text = markdown.read_text()
    assert "bulk_modulus" in text and "GPa" in text
    assert len(list((tmp_path / "report").glob("*.png"))) >= 4


def _amloop(*args: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "amloop", *args],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )


def _start_and_signal(
    trial: int, signum: signal.Signals, finished_campaign, tmp_path: Path, prefect_api_url: str
) -> tuple[subprocess.Popen[bytes], dict[str, str], float]:
    """Start ``amloop run`` and, once its store exists, send ``signum`` to its process group
    (as a terminal's Ctrl-C does) somewhere in seeding, generation, training, an oracle call
    or a database write; returns the process, its environment and when the signal went."""
    handle, _, elapsed = finished_campaign
    env = {
        **os.environ,
        "AMLOOP_HOME": str(tmp_path / "home"),
        "PREFECT_API_URL": prefect_api_url,
        "OMP_NUM_THREADS": "1",
    }
    run = _amloop("run", str(CONFIG), env=env)
    # the subprocess needs seconds to import (more on a loaded machine)
    store_file = tmp_path / "home" / handle.name / "campaign.db"
    deadline = time.monotonic() + 300
    while not store_file.is_file() and run.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert store_file.is_file(), "amloop run did not create the campaign"
    time.sleep(random.Random(trial).uniform(0.0, elapsed))
    os.killpg(run.pid, signum)
    return run, env, time.monotonic()


def _resume_gives_the_uninterrupted_records(finished_campaign, env, tmp_path) -> None:
    handle = finished_campaign[0]
    resume = _amloop("resume", handle.name, env=env)
    _, stderr = resume.communicate(timeout=600)
    assert resume.returncode == 0, stderr.decode()[-3000:]
    resumed = CampaignStore.open(
        Settings(home=tmp_path / "home").database_url_for(handle.name), handle.name
    )
    got, want = _fingerprint(resumed), _fingerprint(handle.store())
    for key in want:
        assert got[key] == want[key], (
            key,
            sorted(set(map(str, got[key])) ^ set(map(str, want[key]))),
        )


@pytest.mark.parametrize("trial", range(CRASH_TRIALS))
def test_kill_9_at_a_random_moment_then_resume(trial, finished_campaign, tmp_path, prefect_api_url):
    run, env, _ = _start_and_signal(
        trial, signal.SIGKILL, finished_campaign, tmp_path, prefect_api_url
    )
    run.wait()
    _resume_gives_the_uninterrupted_records(finished_campaign, env, tmp_path)


def _count_done_calls(url: str) -> int:
    import psycopg
    from sqlalchemy.engine import make_url

    libpq = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    try:
        with psycopg.connect(libpq, connect_timeout=5) as connection:
            row = connection.execute(
                "SELECT count(*) FROM evaluations WHERE status = 'done'"
            ).fetchone()
    except psycopg.Error:  # not created yet
        return 0
    return int(row[0]) if row else 0


@pytest.mark.postgres
def test_a_postgresql_outage_mid_run_costs_waiting_not_the_run(
    finished_campaign, tmp_path, prefect_api_url, private_postgres
):
    """PostgreSQL stopped for 8 s while `amloop run` is scoring its seeds (transactions break
    mid-way, new ones cannot connect): the run waits the outage out and ends with exactly the
    records of the uninterrupted run, nothing left running, the lock free."""
    handle = finished_campaign[0]
    url = private_postgres.url.render_as_string(hide_password=False)
    env = {
        **os.environ,
        "AMLOOP_HOME": str(tmp_path / "home"),
        "AMLOOP_DATABASE_URL": url,
        "PREFECT_API_URL": prefect_api_url,
        "OMP_NUM_THREADS": "1",
    }
    run = _amloop("run", str(CONFIG), env=env)
    deadline = time.monotonic() + 300
    while _count_done_calls(url) < 2 and run.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert run.poll() is None, "the run ended before the outage"
    private_postgres.halt()
    time.sleep(8.0)
    private_postgres.start()
    _, stderr = run.communicate(timeout=600)
    assert run.returncode == 0, stderr.decode()[-3000:]
    store = CampaignStore.open(url, handle.name)
    got, want = _fingerprint(store), _fingerprint(handle.store())
    assert got == want
    info = store.info()
    assert info.status == "finished" and info.lock is None


#: Seconds from Ctrl-C to exit: the loop's grace (4 s) plus ending children, on a loaded machine.
CTRL_C_EXIT_S = 10.0


@pytest.mark.parametrize("trial", range(CRASH_TRIALS))
def test_ctrl_c_at_a_random_moment_then_resume(trial, finished_campaign, tmp_path, prefect_api_url):
    """SIGINT to the whole process group: `amloop run` exits 130 within seconds with one line
    saying how to resume, marks the campaign interrupted, leaves no process behind; `amloop
    resume` then ends with exactly the records of the uninterrupted run."""
    run, env, sent_at = _start_and_signal(
        trial + 100, signal.SIGINT, finished_campaign, tmp_path, prefect_api_url
    )
    stdout, stderr = (b"", b"")
    try:
        stdout, stderr = run.communicate(timeout=60)
    finally:
        took = time.monotonic() - sent_at
        run.kill()
    handle = finished_campaign[0]
    store = CampaignStore.open(
        Settings(home=tmp_path / "home").database_url_for(handle.name), handle.name
    )
    if run.returncode == 0:  # the signal came after the run had finished
        assert store.info().status == "finished"
    else:
        assert run.returncode == 130, stderr.decode()[-3000:]
        assert took < CTRL_C_EXIT_S, took
        assert f"amloop resume {handle.name}" in stdout.decode()
        assert "Traceback" not in stderr.decode()
        assert store.info().status == "interrupted"
        assert store.events(kind="interrupted")
    time.sleep(0.5)
    with pytest.raises(ProcessLookupError):  # no child of `amloop run` outlived it
        os.killpg(run.pid, 0)
    _resume_gives_the_uninterrupted_records(finished_campaign, env, tmp_path)


@pytest.mark.postgres
def test_multi_host_set_up_dask_workers_and_postgresql(
    tmp_path, monkeypatch, prefect_api_url, postgres_url
):
    """The cluster configuration on one host: the store in PostgreSQL, oracle tasks in the
    worker processes of a Dask LocalCluster (each opens the store itself) — every call of the
    iteration, the energy gate's and the crafting's included."""
    import yaml

    data = yaml.safe_load(CONFIG.read_text())
    data["name"] = "loop-dask"
    data["execution"] = {
        "executor": "dask",
        "n_workers": 2,
        "max_iterations": 1,
        "calls_per_task": "auto",  # chunks sized from the cluster's workers
    }
    config = tmp_path / "dask.yaml"
    config.write_text(yaml.safe_dump(data))
    monkeypatch.setenv("AMLOOP_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("AMLOOP_DATABASE_URL", postgres_url)
    handle = init_campaign(config, Settings())
    assert handle.database_url.startswith("postgresql")
    reason = run_campaign(handle.database_url, handle.name, handle.directory, RunLimits())
    assert reason == "1 iteration(s) done (limit 1)"
    mapped = [e for e in handle.store().evaluations(iteration=0) if e.oracle == "lammps_meam"]
    assert mapped
    workers = {e.provenance["worker"] for e in mapped}
    assert f":{os.getpid()}" not in " ".join(workers)  # not this process: the Dask workers
    assert all(e.status in ("done", "failed") for e in mapped)


def test_prefect_yaml_deployments_point_at_the_campaign_flow():
    import yaml
    from prefect.flows import load_flow_from_entrypoint

    spec = yaml.safe_load((REPO / "prefect.yaml").read_text())
    pools = {d["work_pool"]["name"] for d in spec["deployments"]}
    assert pools == {"amloop-cpu", "amloop-gpu"}
    for deployment in spec["deployments"]:
        flow = load_flow_from_entrypoint(str(REPO / deployment["entrypoint"]))
        assert flow.name == "amloop-campaign"
        assert set(deployment["parameters"]) <= set(flow.parameters.properties)


def test_an_error_pauses_the_campaign_with_the_reason(tmp_path, monkeypatch, prefect_api_url):
    """One seed structure is too few to train the generator: the flow raises, the campaign is
    left `paused` with the error in its log and its lock free, ready for `amloop resume`."""
    import yaml

    data = yaml.safe_load(CONFIG.read_text())
    data["name"] = "loop-error"
    data["acquisition"]["n_initial"] = 1
    config = tmp_path / "error.yaml"
    config.write_text(yaml.safe_dump(data))
    monkeypatch.setenv("AMLOOP_HOME", str(tmp_path / "home"))
    handle = init_campaign(config, Settings())
    with pytest.raises(RuntimeError, match="at least 2 scored structures"):
        run_campaign(handle.database_url, handle.name, handle.directory, RunLimits())
    info = handle.store().info()
    assert info.status == "paused" and info.lock is None
    (event,) = handle.store().events(kind="error")
    assert "at least 2 scored structures" in event.message


def test_a_failed_run_is_one_line_on_the_console_and_its_traceback_in_the_run_log(
    tmp_path, prefect_api_url
):
    """The same error through `amloop run`: exit 1, one `error:` line saying the campaign is
    paused and how to go on, no traceback and no Prefect log line on the console; Prefect's
    messages and the traceback are in `<campaign>/run.log`."""
    import yaml

    data = yaml.safe_load(CONFIG.read_text())
    data["name"] = "loop-error-cli"
    data["acquisition"]["n_initial"] = 1
    config = tmp_path / "error.yaml"
    config.write_text(yaml.safe_dump(data))
    env = {
        **os.environ,
        "AMLOOP_HOME": str(tmp_path / "home"),
        "PREFECT_API_URL": prefect_api_url,
        "OMP_NUM_THREADS": "1",
    }
    run = _amloop("run", str(config), env=env)
    stdout, stderr = (text.decode() for text in run.communicate(timeout=600))
    assert run.returncode == 1, stderr[-3000:]
    console = stdout + stderr
    assert "Traceback" not in console and "| ERROR" not in console and "| INFO" not in console
    (line,) = [line for line in stderr.splitlines() if line.strip()]
    assert line.startswith("error: the generator needs at least 2 scored structures")
    log = tmp_path / "home" / "loop-error-cli" / "run.log"
    assert str(log) in line and "amloop resume loop-error-cli" in line
    text = log.read_text()
    assert "Traceback (most recent call last)" in text and "prefect.flow_runs" in text


def test_overlapped_campaign_prepares_an_iteration_while_the_last_ones_calls_run(
    tmp_path, monkeypatch, prefect_api_url
):
    """execution.overlap: iteration 1 is proposed and generated while iteration 0's oracle calls
    run (one task in the runner's worker process), so it sees the seed set only, with iteration
    0's proposals pending; both finish, every candidate gated, every call finished."""
    import yaml

    data = yaml.safe_load(CONFIG.read_text())
    data["name"] = "loop-overlap"
    data["execution"] = {"max_iterations": 2, "overlap": True}
    config = tmp_path / "overlap.yaml"
    config.write_text(yaml.safe_dump(data))
    monkeypatch.setenv("AMLOOP_HOME", str(tmp_path / "home"))
    handle = init_campaign(config, Settings())
    reason = run_campaign(handle.database_url, handle.name, handle.directory, RunLimits())
    assert reason == "2 iteration(s) done (limit 2)"
    store = handle.store()
    first, second = store.iterations()
    assert (first.phase, second.phase) == ("done", "done")
    seeds = {e.candidate_hash for e in store.evaluations(status="done") if e.iteration is None}
    fitted = second.metadata["gp_hyperparameters"]["bulk_modulus"]["n_points"]
    assert fitted == len(seeds)  # iteration 0's results were not used: they were running
    assert all("2 pending" in p["reason"] for p in second.metadata["proposals"])
    generated = [c for c in store.candidates() if c.origin in ("generated", "latent_opt")]
    verdicts = {e.candidate_hash for e in store.evaluations(oracle=GATE_ORACLE)}
    assert {c.content_hash for c in generated} <= verdicts  # crafted cells are judged too
    assert not [e for e in store.evaluations() if e.status in ("running", "pending")]
    assert {e.iteration for e in store.evaluations(oracle="lammps_meam")} == {None, 0, 1}
    calls = [e for e in store.evaluations(oracle="lammps_meam") if e.iteration is not None]
    workers = {e.provenance["worker"] for e in calls}
    here = f"{socket.gethostname()}:{os.getpid()}"
    assert here not in workers  # the calls ran in the process pool's worker, beside the loop


def test_no_child_outlives_a_killed_run(tmp_path):
    """kill -9 of `amloop run` alone (not its group), with Prefect's temporary API server as a
    child: within 5 s no process the run started is left (the watchdog ends them)."""
    import psutil

    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env.update(
        AMLOOP_HOME=str(tmp_path / "home"),
        PREFECT_HOME=str(tmp_path / "prefect"),
        OMP_NUM_THREADS="1",
    )
    run = _amloop("run", str(CONFIG), env=env)
    deadline = time.monotonic() + 300
    descendants: list[psutil.Process] = []
    while time.monotonic() < deadline and run.poll() is None:
        children = psutil.Process(run.pid).children(recursive=True)
        servers = [c for c in children if "uvicorn" in " ".join(c.cmdline())]
        if servers:
            time.sleep(1.0)  # let the rest of what the run starts appear too
            descendants = psutil.Process(run.pid).children(recursive=True)
            break
        time.sleep(0.2)
    assert descendants, "amloop run started no Prefect server"
    run.kill()  # SIGKILL to the run only, as `kill -9 PID` does
    run.wait()
    _, alive = psutil.wait_procs(descendants, timeout=5.0)
    assert not alive, [" ".join(p.cmdline())[:80] for p in alive]


def _two_iterations(data: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CampaignHandle:
    """The campaign ``data`` (a variant of :data:`CONFIG`) initialised and run for its two
    iterations in this process."""
    import yaml

    config = tmp_path / f"{data['name']}.yaml"
    config.write_text(yaml.safe_dump(data))
    monkeypatch.setenv("AMLOOP_HOME", str(tmp_path / "home"))
    torch.set_num_threads(1)
    handle = init_campaign(config, Settings())
    reason = run_campaign(handle.database_url, handle.name, handle.directory, RunLimits())
    assert reason == "2 iteration(s) done (limit 2)"
    return handle


def test_fcc_and_bcc_in_one_campaign(tmp_path, monkeypatch, prefect_api_url):
    """Seed 001's training set is half FCC, half BCC: with `cell.lattice: [fcc, bcc]` the seed
    cells alternate lattices, the lattice is a feature of the surrogates and a dimension of
    the acquisition (each proposal names one), the decoder is told it as the phase, and each
    generated cell goes onto its proposal's lattice (12 or 8 nearest neighbours per atom)."""
    import yaml

    from amloop.acquisition.features import build_training_set

    data = yaml.safe_load(CONFIG.read_text())
    data["name"] = "loop-fcc-bcc"
    data["cell"]["lattice"] = ["fcc", "bcc"]
    data["generator"].pop("local_search")
    handle = _two_iterations(data, tmp_path, monkeypatch)
    store = handle.store()
    seeds = [c for c in store.candidates() if c.origin == "seed"]
    assert sorted(c.provenance["lattice"] for c in seeds) == ["bcc"] * 3 + ["fcc"] * 3
    proposals = [p for r in store.iterations() for p in r.metadata["proposals"]]
    assert {p["lattice"] for p in proposals} <= {"fcc", "bcc"} and len(proposals) == 4
    first_shell = {"fcc": (12, 2.7), "bcc": (8, 2.55)}  # neighbours within Å (a ~ 3.5 / 2.85)
    generated = [c for c in store.candidates() if c.origin == "generated"]
    assert generated
    for candidate in generated:
        lattice = candidate.provenance["proposal"]["lattice"]
        assert candidate.provenance["snapped_to"] == lattice
        count, radius = first_shell[lattice]
        shells = {
            len(candidate.structure.get_neighbors(site, radius)) for site in candidate.structure
        }
        assert shells == {count}, (lattice, shells)
    training = build_training_set(store, handle.config)
    assert training.feature_names[training.lattice_slice] == ["lattice:fcc", "lattice:bcc"]
    one_hot = training.objectives["bulk_modulus"].X[:, training.lattice_slice]
    assert set(map(tuple, one_hot)) == {(1.0, 0.0), (0.0, 1.0)}  # both lattices were scored


def test_campaign_fits_its_own_potential_and_labels_where_it_disagrees(
    tmp_path, monkeypatch, prefect_api_url
):
    """Issue 29 in the loop: the LAMMPS calls keep force labels; after each iteration the
    committee is (re)fitted on them once they grew enough; from the first fit on, the
    campaign-potential oracle scores survivors (before it, it is skipped, not failed) and
    the cell where the committee disagrees most is labelled, with the reason kept."""
    import yaml

    data = yaml.safe_load(CONFIG.read_text())
    data["name"] = "loop-own-potential"
    data["generator"].pop("local_search")
    dear = dict(data["oracles"][0], name="lammps_dear", fidelity=0.7, cost={"core_s": 61.0})
    data["oracles"].append(dear)  # stands in for DFT: scores seeds, then where asked
    data["acquisition"]["seed_oracles"] = ["lammps_meam", "lammps_dear"]
    data["oracles"].append(
        {
            "name": "own",
            "type": "mlp",
            "fidelity": 0.3,
            "cost": {"core_s": 1.0},
            "options": {"model": "campaign", "fmax": 2.0, "max_steps": 10, "relax_cell": False},
        }
    )
    data["mlp"] = {
        "train_on": ["lammps_dear"],
        "committee": 2,
        "units": 8,
        "blocks": 1,
        "epochs": 2,
        "min_labels": 4,
        "refit_growth": 0.1,
        "label_per_iteration": 1,
    }
    store = _two_iterations(data, tmp_path, monkeypatch).store()
    assert store.label_count(oracles=["lammps_dear"]) >= 2 * 6  # input + relaxed per seed call
    fits = store.artifacts(kind="mlp_committee")
    assert [a.iteration for a in fits] == [0, 1]  # refitted after each iteration: labels grew
    assert not store.evaluations(oracle="own", iteration=0)  # no committee while it ran
    own = store.evaluations(oracle="own", iteration=1)
    assert own and all(e.provenance["committee"].endswith("v001") for e in own)
    (labelling,) = [
        r.metadata["labelling"] for r in store.iterations() if "labelling" in r.metadata
    ]
    assert labelling[0]["committee"] == "v001" and labelling[0]["force_spread_eV_per_A"] > 0
    assert store.events(kind="label_request")
    chosen = labelling[0]["candidate"]
    assert store.evaluations(oracle="lammps_dear", candidates=[chosen])[0].iteration == 1


def test_a_redirected_run_logs_each_event_as_it_happens(tmp_path, prefect_api_url):
    """Issue 30: `amloop run … > run.log` (a batch job) writes one timestamped line per event
    while it runs, not a table at the end."""
    log = tmp_path / "run.log"
    env = {
        **os.environ,
        "AMLOOP_HOME": str(tmp_path / "home"),
        "PREFECT_API_URL": prefect_api_url,
        "OMP_NUM_THREADS": "1",
    }
    with log.open("w") as out:
        run = subprocess.Popen(
            [sys.executable, "-m", "amloop", "run", str(CONFIG), "--iterations", "1"],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        seen_while_running: list[str] = []
        deadline = time.monotonic() + 600
        while run.poll() is None and time.monotonic() < deadline:
            lines = [line for line in log.read_text().splitlines() if "best bulk_modulus" in line]
            if lines and not seen_while_running:
                seen_while_running = lines
            time.sleep(0.5)
        assert run.wait(timeout=60) == 0, log.read_text()[-3000:]
    assert seen_while_running, "no event line reached the log before the run ended"
    text = log.read_text()
    stamp = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d "
    assert re.search(stamp + r"iteration 0 started \(1 of 1\)", text)
    assert re.search(stamp + r"oracle calls: \d+ done, \d+ failed; gate: \d+ passed", text)
    assert re.search(stamp + r"stopped: 1 iteration\(s\) done \(limit 1\)", text)
    assert "NumericalWarning" not in text and "┃" not in text  # no library noise, no tables
