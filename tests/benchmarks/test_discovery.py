"""The discovery benchmark's curve arithmetic on known traces (no oracle calls)."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest

from amloop.oracles.gates import energy_gate
from amloop.state.schema import Evaluation, PropertyValue


@pytest.fixture(scope="module")
def discovery(load_benchmark):
    return load_benchmark("discovery")


def test_best_so_far_waits_for_a_value_and_stays_flat_after_the_trace(discovery):
    curve = discovery.best_so_far([None, 3.0, 2.0, 5.0], budget=6)
    assert np.isnan(curve[0])
    assert curve[1:].tolist() == [3.0, 3.0, 5.0, 5.0, 5.0]


def test_calls_to_reach_is_one_based_and_none_when_missed(discovery):
    curve = discovery.best_so_far([1.0, 2.0, 4.0], budget=3)
    assert discovery.calls_to_reach(curve, 2.0) == 2
    assert discovery.calls_to_reach(curve, 0.99 * 4.0) == 3
    assert discovery.calls_to_reach(curve, 4.0 + 1e-6) is None


def test_quartiles_count_misses_as_infinite_without_interpolating(discovery):
    assert discovery.quartiles([4, 2, 8]) == (2.0, 4.0, 8.0)
    q1, median, q3 = discovery.quartiles([4, None, 2])
    assert (q1, median) == (2.0, 4.0) and math.isinf(q3)
    assert discovery.format_calls([4, None, 2]) == "4 [2-n.r.]"
    assert discovery.format_calls([None, None, 2]) == "not reached (1/3)"


def test_speedup_uses_medians_and_a_lower_bound_for_misses(discovery):
    assert discovery.speedup([20, 30, 40], [5, 6, 7], budget=40) == (5.0, False)
    assert discovery.speedup([None, None, 40], [5, 10, 20], budget=40) == (4.0, True)
    assert discovery.speedup([1, 2, 3], [None, None, 1], budget=40) == (None, False)
    assert discovery.format_speedup(4.0, True) == ">= 4.00x"
    assert discovery.format_speedup(None, False).startswith("n/a")


def test_overhead_is_the_wall_time_without_a_running_oracle_call(discovery):
    overlapped = discovery.RunResult(
        "amloop",
        0,
        [1.0],
        100.0,
        {"acquisition": 50.0, "generator": 20.0, "seed": 10.0, "oracle": 85.0},
    )
    assert discovery.oracle_idle_s(overlapped) == pytest.approx(5.0)  # 70 s of loop, 65 s hidden
    kept = discovery.RunResult("amloop", 1, [1.0], 100.0, {"acquisition": 30.0, "generator": 10.0})
    assert discovery.oracle_idle_s(kept) == pytest.approx(40.0)  # timed before oracle calls were
    assert discovery.overhead_share([overlapped, kept]) == pytest.approx(45.0 / 200.0)


def test_a_strategy_stalls_after_rounds_without_a_new_call(discovery):
    rounds = discovery.STALL_ROUNDS
    assert not discovery.stalled([8] * rounds)  # the start and one round short
    assert discovery.stalled([8] * (rounds + 1))
    assert not discovery.stalled([8, *([9] * rounds)])


def test_gated_value_applies_the_seed_energy_rule(discovery):
    def call(bulk: float, energy: float) -> Evaluation:
        return Evaluation(
            candidate_hash="x",
            oracle="lammps_meam",
            fidelity=0.6,
            status="done",
            properties={
                "bulk_modulus": PropertyValue(value=bulk, unit="GPa"),
                "energy_per_atom": PropertyValue(value=energy, unit="eV/atom"),
            },
        )

    assert discovery.gated_value(call(180.0, -4.2), -4.1, 32) == 180.0
    assert discovery.gated_value(call(190.0, -4.0), -4.1, 32) is None
    failed = Evaluation(candidate_hash="x", oracle="lammps_meam", fidelity=0.6, status="failed")
    assert discovery.gated_value(failed, -4.1, 32) is None


def test_hypervolume_so_far_of_a_known_front(load_benchmark):
    """Task B's progress: (1, 1) alone covers 1 above the origin; (2, 0.5) adds 0.5; a dominated
    point adds nothing; failures keep the curve flat and the trace's end holds it."""
    module = load_benchmark("discovery_amorphous")
    values = [None, [1.0, 1.0], [2.0, 0.5], [0.5, 0.5], None]
    curve = module.hypervolume_so_far(values, budget=7, ref=[0.0, 0.0])
    assert curve.tolist() == pytest.approx([0.0, 1.0, 1.5, 1.5, 1.5, 1.5, 1.5])


def test_task_b_progress_against_core_hours(load_benchmark):
    """Task B's cost axis: the share after h core-hours holds the points of the calls finished
    by then; core-hours to a share is the first call's that reaches it, within the budget."""
    module = load_benchmark("discovery_amorphous")
    run = module.RunResult(
        "x", 0, [[1.0, 1.0], None, [2.0, 0.5]], 1.0, core_s=[360.0, 720.0, 1080.0]
    )
    ref = module.ReferenceB(1.5, [0.0, 0.0], [], 3, 1.0, {})
    shares = module.share_at_hours(run, [0.05, 0.1, 0.25, 0.3, 1.0], ref)
    assert shares.tolist() == pytest.approx([0.0, 1 / 1.5, 1 / 1.5, 1.0, 1.0])
    assert module.hours_to_reach(run, 0.5, ref, 1.0) == pytest.approx(0.1)
    assert module.hours_to_reach(run, 0.95, ref, 1.0) == pytest.approx(0.3)
    assert module.hours_to_reach(run, 0.95, ref, 0.25) is None
    full = module.with_full_prior(run, module.PriorCost(whole_s=3600.0, campaigns=10))
    assert module.hours_to_reach(full, 0.95, ref, 2.0) == pytest.approx(0.3 + 0.9)


def test_task_b_point_is_bulk_modulus_and_negative_density_of_a_finished_call(load_benchmark):
    module = load_benchmark("discovery_amorphous")
    props = {
        "bulk_modulus": PropertyValue(value=80.0, unit="GPa"),
        "density": PropertyValue(value=3.0, unit="g/cm^3"),
    }
    done = Evaluation(
        candidate_hash="x", oracle="lammps_meam", fidelity=0.5, status="done", properties=props
    )
    assert module.point(done) == [80.0, -3.0]
    assert module.point(done.model_copy(update={"status": "failed"})) is None


def test_table_3_groups_the_loops_calls_by_where_their_cells_came_from(discovery):
    """Seed 001's Table 3 beside the loop's: per origin the mean and best gated value and the
    call of that best; failed or gated calls (None) count in no group."""
    runs = [
        discovery.RunResult(
            "amloop",
            0,
            [180.0, 182.0, None, 190.0, 196.0, 191.0],
            1.0,
            origins=["seed", "seed", "generated", "generated", "latent_opt", "local_search"],
        )
    ]
    rows = discovery.table_3_rows(runs)
    assert rows["seed 001 (Table 3)"]["best (GPa)"] == "197.26"
    loop = rows["amloop (median of 1 seeds)"]
    assert loop["initial set mean / best (GPa)"] == "181.0 / 182.00 (call 2)"
    assert loop["generated mean / best (GPa)"] == "190.0 / 190.00 (call 4)"
    assert loop["latent-optimised mean / best (GPa)"] == "196.0 / 196.00 (call 5)"
    assert loop["crafted (local search) mean / best (GPa)"] == "191.0 / 191.00 (call 6)"
    assert (loop["best (GPa)"], loop["calls to the best"]) == ("196.00", "5")


def test_task_a_cells_are_fcc_and_bcc_and_task_b_cells_stay_amorphous(discovery, load_benchmark):
    """Task A puts its cells on both of seed 001's lattices; task B (an amorphous example
    seeded by melt-quench or, amloop_prior, from its prior) must not inherit them."""
    task_a = discovery.campaign_config(discovery.CI, 0)
    assert list(task_a.cell.lattices) == ["fcc", "bcc"]
    module = load_benchmark("discovery_amorphous")
    task_b = module.campaign_config(module.CI, 0)
    assert task_b.cell.amorphous and task_b.generator.refine is not None
    task_b.generator.prior, task_b.acquisition.seed_from = "prior", "prior"
    type(task_b).model_validate(task_b.model_dump())  # as a worker re-reads it from the store


def test_task_b_counts_gate_rejections_by_the_gates_own_reasons(load_benchmark):
    task_b = load_benchmark("discovery_amorphous")
    _, relaxed = energy_gate(-3.0, -3.0, training_max_energy_per_atom=-3.1, natoms=64)
    _, raw = energy_gate(-3.2, 0.0, training_max_energy_per_atom=-3.1, natoms=64)
    reasons = [
        None,
        None,
        relaxed,
        raw,
        "energy oracle lammps_meam failed: timeout after 600 s",
        "crystallised (fcc) during refinement: 80% of the atoms in a crystal environment",
        "push-apart failed: no room",
        "something new",
    ]
    verdicts = [
        Evaluation(
            candidate_hash=str(k),
            oracle="quality_gate",
            fidelity=0.0,
            status="failed" if reason else "done",
            error=reason,
            iteration=1 + k // 3,  # three in the first iteration (two passed), five later
        )
        for k, reason in enumerate(reasons)
    ]
    store = SimpleNamespace(evaluations=lambda **_: verdicts)
    counts = task_b.gate_counts(SimpleNamespace(store=store))
    assert counts == {
        "gate_judged": 8,
        "gate_passed": 2,
        "gate_judged_first_iteration": 3,
        "gate_passed_first_iteration": 2,
        "push_apart_failed": 1,
        "rejected_energy": 1,
        "rejected_raw_energy": 1,
        "rejected_energy_call_failed": 1,
        "rejected_crystallised": 1,
        "rejected_other": 1,
    }
