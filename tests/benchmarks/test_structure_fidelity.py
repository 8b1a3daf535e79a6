"""The structure-fidelity benchmark's arithmetic on known rows (no MD)."""

from __future__ import annotations

import pytest

from amloop.oracles.md import MeltQuench


@pytest.fixture(scope="module")
def fidelity(load_benchmark):
    return load_benchmark("structure_fidelity")


def _method(energy, bulk, core_s, d_rdf=0.0, d_angle=0.0):
    return {
        "n": len(energy),
        "core_s_per_cell": core_s,
        "energy": energy,
        "bulk": bulk,
        "d_rdf": d_rdf,
        "d_angle": d_angle,
    }


def test_deviations_are_in_melt_quench_standard_deviations_and_cost_is_a_ratio(fidelity):
    row = {
        "composition": "Cu0.5Zr0.5",
        "methods": {
            # melt-quench: E mean -4.8, std (ddof 1) 0.1; B mean 100, std 10
            "melt-quench": _method([-4.9, -4.8, -4.7], [90.0, 100.0, 110.0], 20.0),
            "generated+refined": _method([-4.75, -4.75], [105.0, 105.0], 2.0, 3.0, 0.01),
            "fast quench": _method([-4.6, -4.6], [80.0, 80.0], 2.0, 5.0, 0.02),
        },
    }
    table = fidelity.summary([row, row])
    lines = {line.split("|")[1].strip(): line for line in table.splitlines()[2:]}
    generated = [cell.strip() for cell in lines["generated+refined"].split("|")[2:-1]]
    assert generated == ["4", "+0.050", "0.50", "0.50", "3.00", "0.0100", "2.0", "10.0x"]
    fast = [cell.strip() for cell in lines["fast quench"].split("|")[2:-1]]
    assert fast[1:4] == ["+0.200", "2.00", "2.00"]


def test_a_fast_quench_shortens_every_stage_and_cools_faster(fidelity):
    protocol = MeltQuench(melt_ps=5, volume_ps=4, anneal_ps=2, quench_rate_K_per_ps=100)
    fast = fidelity.fast_protocol(protocol, 8.0)
    assert fast.melt_ps == pytest.approx(0.625) and fast.volume_ps == pytest.approx(0.5)
    assert fast.anneal_ps == pytest.approx(0.25) and fast.quench_rate_K_per_ps == 800.0
