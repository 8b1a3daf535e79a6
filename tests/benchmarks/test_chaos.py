"""The chaos benchmark's verdicts: what makes a trial not clean, and the survivor count on real
processes (the kill-and-resume runs themselves are tests/loop/test_flow.py's and the
benchmark's)."""

from __future__ import annotations

import subprocess
import sys

import psutil
import pytest


@pytest.fixture(scope="module")
def chaos(load_benchmark):
    return load_benchmark("chaos")


def _trial(chaos, **changes):
    values = dict(
        configuration="local",
        index=0,
        action="SIGKILL run",
        delay_s=3.0,
        phase="evaluate (0) + oracle call",
        exit_code=-9,
        surviving_children=0,
        resume_s=12.0,
        lost=0,
        duplicated=0,
        stuck=0,
        candidates_equal=True,
        best_equal=True,
    )
    return chaos.Trial(**(values | changes))


@pytest.mark.parametrize(
    "defect",
    [
        {"lost": 1},
        {"duplicated": 1},
        {"stuck": 2},
        {"surviving_children": 1},
        {"candidates_equal": False},
        {"best_equal": False},
    ],
)
def test_any_defect_makes_a_trial_unclean_and_the_target_unmet(chaos, defect):
    good, bad = _trial(chaos), _trial(chaos, index=1, **defect)
    assert good.clean and not bad.clean
    reference = chaos.Reference(wall_s=20.0, evaluations=[], candidates=[], best=None)
    text = chaos.render([good, bad], {"local": reference}, "python -m benchmarks.chaos")
    assert "not met (1/2)" in text
    assert "| local | 20 | 2 | 1/2 |" in text


def test_a_process_that_outlives_the_grace_is_counted_and_ended(chaos):
    lingering = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    processes = [psutil.Process(lingering.pid)]
    assert chaos.surviving(processes) == 1
    assert lingering.wait(timeout=5) != 0  # killed by the benchmark, not finished
