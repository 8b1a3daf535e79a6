"""The iteration schedule (:mod:`loop.schedule`) on a real store: order, overlap, stops, resume.

The halves here record what ran and store one evaluation per iteration (a fixed bulk modulus:
the schedule only counts calls and reads the best value); the real halves are exercised by the
flow tests and the discovery benchmark."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import yaml

from amloop.generator.solid_solution import random_solid_solution
from amloop.loop.campaigns import init_campaign
from amloop.loop.schedule import Halves, run_iterations
from amloop.loop.steps import CampaignRun, data_cutoff, finish_iteration
from amloop.state.schema import Candidate, Evaluation, PropertyValue
from amloop.state.settings import Settings

CONFIG = Path(__file__).parents[1] / "data" / "loop_nifecr.yaml"
#: Seconds the overlap test waits for the next iteration to be prepared.
WAIT_S = 30.0


def _run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **execution: object) -> CampaignRun:
    data = yaml.safe_load(CONFIG.read_text())
    data["execution"] = execution
    path = tmp_path / "campaign.yaml"
    path.write_text(yaml.safe_dump(data))
    monkeypatch.setenv("AMLOOP_HOME", str(tmp_path / "home"))
    handle = init_campaign(path, Settings())
    return CampaignRun(handle.store(), handle.config, handle.directory)


class Recorder:
    """Halves that log ``prepare k`` / ``evaluate k`` and store one call per iteration."""

    def __init__(self, run: CampaignRun, modulus: float = 180.0, limit: int = 3) -> None:
        self.run, self.modulus, self.limit = run, modulus, limit
        self.log: list[str] = []
        self.prepared = threading.Condition()
        self.worker = ThreadPoolExecutor(1)

    def prepare(self, index: int) -> list[str]:
        rng = np.random.default_rng(index)
        structure = random_solid_solution({"Ni": 0.5, "Fe": 0.5}, "fcc", 32, rng)
        candidate = self.run.store.add_candidate(
            Candidate(structure=structure, origin="generated", iteration=index)
        )
        with self.prepared:
            self.log.append(f"prepare {index}")
            self.prepared.notify_all()
        return [candidate.content_hash]

    def evaluate(self, index: int, hashes: list[str]) -> None:
        self.run.store.record_evaluation(
            Evaluation(
                candidate_hash=hashes[0],
                oracle="lammps_meam",
                fidelity=0.6,
                status="done",
                properties={"bulk_modulus": PropertyValue(value=self.modulus, unit="GPa")},
                iteration=index,
            )
        )
        self.run.store.update_iteration(index, metadata={"best": {"bulk_modulus": self.modulus}})
        finish_iteration(self.run, index, {})
        self.log.append(f"evaluate {index}")

    def evaluate_after_next_prepared(self, index: int, hashes: list[str]) -> None:
        """The evaluation half that finishes only once iteration ``index + 1`` (below the
        limit) is prepared, or after :data:`WAIT_S`: the log shows whether the two overlapped."""
        with self.prepared:
            self.prepared.wait_for(
                lambda: index + 1 >= self.limit or f"prepare {index + 1}" in self.log,
                timeout=WAIT_S,
            )
        self.evaluate(index, hashes)

    def halves(self, *, overlapped: bool = False) -> Halves:
        background = self.evaluate_after_next_prepared if overlapped else self.evaluate
        return Halves(
            prepare=self.prepare,
            evaluate=self.evaluate,
            submit=lambda index, hashes: self.worker.submit(background, index, hashes),
        )


def test_one_after_another_by_default(tmp_path, monkeypatch):
    run = _run(tmp_path, monkeypatch)
    recorder = Recorder(run)
    reason = run_iterations(run, recorder.halves(), max_iterations=3)
    assert reason == "3 iteration(s) done (limit 3)"
    assert recorder.log == [f"{half} {k}" for k in range(3) for half in ("prepare", "evaluate")]
    assert data_cutoff(run.config, 5) == 4


def test_overlapped_the_next_iteration_is_prepared_while_the_oracles_run(tmp_path, monkeypatch):
    run = _run(tmp_path, monkeypatch, overlap=True)
    recorder = Recorder(run)
    reason = run_iterations(run, recorder.halves(overlapped=True), max_iterations=3)
    assert reason == "3 iteration(s) done (limit 3)"
    # iteration k + 1 was prepared before iteration k's evaluation finished; none beyond the limit
    assert recorder.log == [
        "prepare 0",
        "prepare 1",
        "evaluate 0",
        "prepare 2",
        "evaluate 1",
        "evaluate 2",
    ]
    assert [(r.index, r.phase) for r in run.store.iterations()] == [(k, "done") for k in range(3)]
    assert data_cutoff(run.config, 5) == 3  # iteration 4's calls are running as 5 is prepared


def test_overlapped_a_stop_abandons_the_prepared_iteration_with_the_reason(tmp_path, monkeypatch):
    run = _run(tmp_path, monkeypatch, overlap=True)  # patience 3: no improvement after 0
    recorder = Recorder(run)
    reason = run_iterations(run, recorder.halves(), max_iterations=None)
    assert reason.startswith("no improvement in the last 3 iteration(s)")
    iterations = run.store.iterations()
    assert [r.phase for r in iterations] == ["done"] * 4 + ["failed"]
    assert iterations[-1].metadata["abandoned"] == reason
    assert "evaluate 4" not in recorder.log and "prepare 4" in recorder.log
    assert len(run.store.candidates(origin="generated")) == 5  # its candidates stay stored


def test_a_crash_left_two_unfinished_iterations_they_are_finished_in_order(tmp_path, monkeypatch):
    run = _run(tmp_path, monkeypatch, overlap=True)
    run.store.start_iteration(0)
    run.store.start_iteration(1)  # prepared while iteration 0's calls ran, then the crash
    recorder = Recorder(run)
    reason = run_iterations(run, recorder.halves(), max_iterations=3)
    assert reason == "3 iteration(s) done (limit 3)"
    assert recorder.log[:2] == ["prepare 0", "evaluate 0"]
    assert recorder.log[2] == "prepare 1"
    assert [(r.index, r.phase) for r in run.store.iterations()] == [(k, "done") for k in range(3)]


def test_an_error_while_preparing_waits_for_the_running_oracle_calls(tmp_path, monkeypatch):
    run = _run(tmp_path, monkeypatch, overlap=True)
    recorder = Recorder(run)
    prepare = recorder.prepare

    def failing(index: int) -> list[str]:
        if index == 1:
            raise RuntimeError("generator out of memory")
        return prepare(index)

    halves = Halves(prepare=failing, evaluate=recorder.evaluate, submit=recorder.halves().submit)
    with pytest.raises(RuntimeError, match="out of memory"):
        run_iterations(run, halves, max_iterations=3)
    assert recorder.log == ["prepare 0", "evaluate 0"]  # iteration 0's calls were not cut off
    assert run.store.iterations()[0].phase == "done"
