"""Helpers of ``benchmarks/generator.py``."""

from __future__ import annotations


def test_quality_verdict_marks_targets_below_the_floor_as_unattainable(load_benchmark):
    module = load_benchmark("generator")
    # as generated in the full run: random 30x the floor, the generator 3.2x: reachable, not met
    assert module.quality_verdict(2.69, floor=0.83, random=25.07) == "not met"
    assert module.quality_verdict(1.60, floor=0.83, random=25.07) == "met"
    # relaxed: random only 1.45x the floor, so random/5 is below it
    assert module.quality_verdict(0.89, floor=0.83, random=1.21).endswith("random/5 < floor)")
