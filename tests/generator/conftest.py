"""Fixtures of the generator tests: the relaxed Ni-Fe-Cr training set and a tiny trained model.

Torch runs single-threaded here: on a machine shared with other jobs, OpenMP threads that wait
for each other make these small tensor operations up to 100x slower.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from pymatgen.core import Structure

from amloop.generator.cdvae import CondCDVAE
from amloop.generator.config import CondCDVAEConfig
from amloop.generator.data import read_training_data
from amloop.generator.train import TrainingHistory

DATA = Path(__file__).parents[1] / "data" / "nifecr_relaxed.extxyz"
PROPERTIES = ("bulk_modulus", "energy_per_atom")
#: Epochs of the shared tiny model.
EPOCHS = 8

Dataset = list[tuple[Structure, dict[str, float]]]


@pytest.fixture(scope="session", autouse=True)
def single_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def nifecr() -> Dataset:
    """36 relaxed 16-atom Ni-Fe-Cr cells with LAMMPS bulk modulus (GPa) and energy (eV/atom)."""
    return read_training_data(DATA, PROPERTIES)


@pytest.fixture(scope="session")
def trained(nifecr: Dataset) -> tuple[CondCDVAE, TrainingHistory]:
    """The tiny configuration trained for a few epochs on CPU."""
    generator = CondCDVAE(CondCDVAEConfig.tiny(), device="cpu", seed=0)
    history = generator.fit(nifecr, epochs=EPOCHS)
    return generator, history
