"""The scale-out benchmark at its smallest: both oracles through the loop's Dask path on
PostgreSQL, no lost or doubled write, sane throughput; its arithmetic; the chunking of
``execution.calls_per_task``."""

from __future__ import annotations

import importlib
import json
import math
import sys
from dataclasses import replace
from pathlib import Path
from types import ModuleType

import pytest

from amloop.loop.flows import chunk_size, chunked
from amloop.state.config import ExecutionConfig


@pytest.fixture(scope="module")
def scale() -> ModuleType:
    """The benchmark as ``benchmarks.scale``: Dask workers unpickle its flow by that name (a
    module loaded from its file under another name would not import there)."""
    repo = str(Path(__file__).parents[2])
    if repo not in sys.path:
        sys.path.insert(0, repo)
    return importlib.import_module("benchmarks.scale")


def test_calls_per_task_defaults_to_one_and_chunks_keep_every_call_once() -> None:
    assert ExecutionConfig().calls_per_task == 1
    assert chunked(list(range(7)), 3) == [[0, 1, 2], [3, 4, 5], [6]]
    assert chunked([1, 2], 1) == [[1], [2]]
    assert chunked([], 4) == []


def test_auto_chunks_give_each_worker_about_four_tasks() -> None:
    assert ExecutionConfig(calls_per_task="auto").calls_per_task == "auto"
    assert chunk_size(3, 100, 16) == 3  # a number is kept
    assert chunk_size("auto", 960, 16) == 15  # 64 tasks: 4 per worker
    assert chunk_size("auto", 10, 4) == 1  # few calls: one per task
    assert chunk_size("auto", 7, 0) == 2  # no worker known yet: as for one
    assert len(chunked(list(range(960)), chunk_size("auto", 960, 16))) == 4 * 16


def test_stage_arithmetic(scale) -> None:
    stage = scale.StageResult(
        oracle="remote",
        workers=4,
        calls_per_task=1,
        calls=40,
        warmup_calls=4,
        wall_s=11.0,
        oracle_s=1.0,
        ideal_calls_per_s=4.0,
        statuses={"done": 44},
        lost=0,
        doubled=0,
        write_ms=[1.0, 2.0, 3.0],
        campaign_evaluations=44,
        acquisition_s=1.0,
        wait_s=1.0,
    )
    assert stage.calls_per_s == pytest.approx(40 / 11)
    assert stage.efficiency == pytest.approx(40 / 11 / 4)
    assert stage.overhead_ms == pytest.approx(100.0)  # 4 x 11 s / 40 calls - 1 s
    assert stage.key == "remote-w04-k1"
    assert "| remote | 4 | 1 | 40 |" in scale.row(stage)
    auto = replace(stage, calls_per_task="auto", chunk=3)
    assert auto.key == "remote-w04-kauto"
    assert "| remote | 4 | auto (3) | 40 |" in scale.row(auto)
    assert sorted([4, "auto", 1], key=scale.chunk_order) == [1, 4, "auto"]


@pytest.mark.postgres
def test_smallest_size_loses_and_doubles_no_write(scale, postgres_url, tmp_path) -> None:
    settings = scale.Settings(
        size="test",
        workers=[2],
        oracles=["remote", "lammps"],
        calls_per_worker=2,
        wait_s=0.3,
        calls_per_task=2,  # the chunked path; the warm-up calls go one per task
        probe_writes=3,
        out=tmp_path / "out",
        work_dir=tmp_path / "work",
        database_url=postgres_url,
    )
    stages = scale.run_benchmark(settings)
    assert [(s.oracle, s.workers) for s in stages] == [("remote", 2), ("lammps", 2)]
    for stage in stages:
        assert stage.lost == 0 and stage.doubled == 0
        assert stage.statuses == {"done": stage.calls + stage.warmup_calls}
        assert stage.calls_per_s > 0
        assert len(stage.write_ms) == 2 * 3 and all(0 < ms < 10_000 for ms in stage.write_ms)
        assert math.isfinite(stage.acquisition_s) and stage.acquisition_s > 0
    remote, lammps = stages
    assert remote.oracle_s == pytest.approx(0.3, abs=0.1)  # the wait, measured in the oracle
    assert remote.calls_per_s <= 1.05 * remote.ideal_calls_per_s  # no call beats its wait
    assert lammps.campaign_evaluations == remote.campaign_evaluations + 6  # one campaign grows
    kept = json.loads((tmp_path / "out" / "stages" / "remote-w02-k2.json").read_text())
    assert kept["lost"] == 0
    again = scale.run_benchmark(scale.Settings(**{**vars(settings), "resume": True}))
    assert [s.started for s in again] == [s.started for s in stages]  # nothing rerun
    assert "| lammps | 2 | 2 | 4 |" in scale.summary(again, settings, "cmd", 1.0, None)
