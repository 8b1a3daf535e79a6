"""The MLP benchmark's NVE measurement on the EAM truth, and its MD target lines."""

from __future__ import annotations

import pytest

from amloop.oracles.lammps import LammpsOracle
from amloop.oracles.md import LammpsEngine
from amloop.oracles.md.packing import random_packing


@pytest.fixture(scope="module")
def mlp(load_benchmark):
    return load_benchmark("mlp")


def test_nve_run_of_a_relaxed_glass_conserves_energy(mlp) -> None:
    cell = random_packing({"Cu": 0.5, "Zr": 0.5}, 32, seed=0)
    with LammpsEngine(cell, LammpsOracle(potential=mlp.POTENTIAL), timestep_fs=1.0) as engine:
        engine.minimize(0.05, 500)
        run = mlp.nve_run(engine, 400, force_mae=None)
        assert engine.steps_run == 402  # the warm-up's two steps included
        assert 100 < engine.get_temperature() < 300  # 300 K shared with the potential energy
    assert abs(run.drift_meV_per_atom_per_ps) < 1.0
    assert run.fluctuation_meV_per_atom < 1.0
    assert run.ms_per_step > 0


def test_md_target_lines_compare_each_campaign_engine_with_chgnet(mlp) -> None:
    size = mlp.CI
    runs = {
        f"committee of {size.committee}": mlp.MdRun(40.0, 0.1, 0.01, 0.09),
        "one member": mlp.MdRun(20.0, -0.1, 0.01, 0.095),
        "CHGNet 0.3.0": mlp.MdRun(120.0, 0.0, 0.01, None),
        "EAM (LAMMPS, the truth)": mlp.MdRun(1.0, 0.0, 0.0, None),
    }
    lines = mlp.md_lines(size, runs, 64)
    assert "| one member | 20.00 | 6.0x | -0.100 | 0.010 | 0.095 |" in lines
    assert lines[-2].endswith("3.0x, not met") and lines[-1].endswith("6.0x, met")
