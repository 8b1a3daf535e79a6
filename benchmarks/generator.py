"""Sampling throughput of the Cond-CDVAE generator: batched against one-cell-at-a-time.

The model has the papers' default size (:class:`generator.config.CondCDVAEConfig`) with fresh
weights (the cost of sampling does not depend on training). One sample is a full run of
:meth:`generator.cdvae.CondCDVAE.sample` for one cell: cell set-up from the heads, annealed
Langevin dynamics over all noise levels with ``--steps-per-level`` decoder calls each (the
papers use 100; time scales linearly), type assignment and push-apart.

- baseline: ``--cells`` cells sampled one per call (``batch_size=1``), on the CPU;
- batched: the same cells in one call (``batch_size=--cells``), on the CPU and, when torch sees
  one, on CUDA.

Printed: samples/s of each (the best of ``--repeats`` alternating rounds, so that load from
other jobs hits both alike) and the ratios to the baseline, for 64- and 256-atom Ni-Fe-Cr cells.
The CPU runs use ``--threads`` torch threads (default 1: on a small machine shared with other
jobs, more OpenMP threads than free cores make these tensor sizes several times slower).
Usage: ``python benchmarks/generator.py [--cells 8] [--steps-per-level 1] [--sizes 64 256]
[--threads 1] [--repeats 3]``.
"""

from __future__ import annotations

import sys
from pathlib import Path

# run as a file, this script's folder comes first on sys.path: put the repository root first
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import time

import numpy as np
import torch

from generator.cdvae import CondCDVAE
from generator.config import CondCDVAEConfig
from generator.data import DataSpec
from generator.sample import Condition
from generator.solid_solution import random_solid_solution

COMPOSITION = {"Ni": 0.4, "Fe": 0.3, "Cr": 0.3}


def reference_spec() -> DataSpec:
    """A data specification from a few random Ni-Fe-Cr FCC/BCC cells (54 atoms)."""
    rng = np.random.default_rng(0)
    structures = [random_solid_solution(COMPOSITION, kind, 54, rng) for kind in ("fcc", "bcc") * 3]
    return DataSpec.from_data(structures, [{} for _ in structures], property_names=["bulk_modulus"])


def samples_per_second(
    generator: CondCDVAE, n_atoms: int, cells: int, steps: int, batch_size: int
) -> float:
    """Samples/s of ``cells`` cells of ``n_atoms`` atoms drawn ``batch_size`` per call."""
    condition = [Condition(COMPOSITION, n_atoms=n_atoms)]
    if generator.device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for seed in range(cells // batch_size):
        generator.sample(
            condition, batch_size, seed=seed, steps_per_level=steps, batch_size=batch_size
        )
    if generator.device.type == "cuda":
        torch.cuda.synchronize()
    return cells / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=8, help="cells per measurement")
    parser.add_argument("--steps-per-level", type=int, default=1, help="Langevin steps per level")
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 256], help="atoms per cell")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--repeats", type=int, default=3, help="alternating rounds (best kept)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    spec = reference_spec()
    config = CondCDVAEConfig()
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    generators = {}
    for device in devices:
        generators[device] = CondCDVAE(config, device=device)
        generators[device].build(spec)
    calls = config.num_noise_levels * args.steps_per_level
    print(
        f"Cond-CDVAE sampling, paper-size model, {config.num_noise_levels} noise levels x "
        f"{args.steps_per_level} steps = {calls} decoder calls per sample; "
        f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads"
        + (f", {torch.cuda.get_device_name()}" if "cuda" in devices else ", no CUDA")
    )
    for n_atoms in args.sizes:
        for device in devices:  # warm-up: allocator, kernels
            samples_per_second(generators[device], n_atoms, 1, 1, 1)
        runs = [("cpu", 1)] + [(device, args.cells) for device in devices]
        best = dict.fromkeys(runs, 0.0)
        for _ in range(args.repeats):
            for device, batch in runs:
                rate = samples_per_second(
                    generators[device], n_atoms, args.cells, args.steps_per_level, batch
                )
                best[device, batch] = max(best[device, batch], rate)
        baseline = best["cpu", 1]
        for (device, batch), rate in best.items():
            label = f"{'baseline' if batch == 1 else 'batched'} {device}, {batch} per call"
            print(f"{n_atoms:4d} atoms  {label:28s} {rate:9.3f} samples/s  {rate / baseline:6.2f}x")


if __name__ == "__main__":
    main()
