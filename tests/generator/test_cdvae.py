"""Cond-CDVAE end to end on real relaxed Ni-Fe-Cr cells: train, sample, optimise, persist."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from pymatgen.core import Structure

from amloop.generator.cdvae import HPARAMS_FILE, WEIGHTS_FILE, CondCDVAE
from amloop.generator.config import CondCDVAEConfig
from amloop.generator.sample import Condition
from amloop.generator.solid_solution import random_solid_solution
from amloop.state.composition import atom_counts
from amloop.state.device import resolve_device
from amloop.state.structures import closest_distance, content_hash

NIFECR = {"Ni": 0.5, "Fe": 0.3, "Cr": 0.2}


def same_structures(first: list[Structure], second: list[Structure]) -> bool:
    return all(
        a.species == b.species
        and np.array_equal(a.frac_coords, b.frac_coords)
        and np.array_equal(a.lattice.matrix, b.lattice.matrix)
        for a, b in zip(first, second, strict=True)
    ) and len(first) == len(second)


def test_training_lowers_the_loss(trained) -> None:
    _, history = trained
    train = [r.train_loss for r in history.records]
    val = [r.val_loss for r in history.records]
    assert [r.epoch for r in history.records] == list(range(len(train)))
    assert val[-1] < 0.95 * val[0]
    assert np.mean(train[-3:]) < np.mean(train[:3])
    assert history.best_epoch == int(np.argmin(val))


def test_samples_have_exact_composition_and_no_close_atoms(trained) -> None:
    generator, _ = trained
    reference = random_solid_solution(NIFECR, "fcc", 54, np.random.default_rng(0))
    target = list(generator.pdm(reference))
    conditions = [
        Condition(NIFECR, pdm_target=target, n_atoms=50),  # type denoising on (<= 50 atoms)
        Condition({"Ni": 1 / 3, "Fe": 1 / 3, "Cr": 1 / 3}, n_atoms=256, phase="amorphous"),
    ]
    candidates = generator.sample(conditions, 2, seed=3)
    assert len(candidates) == 4
    for candidate, condition in zip(
        candidates, [c for c in conditions for _ in range(2)], strict=True
    ):
        structure = candidate.structure
        expected = atom_counts(dict(condition.composition), condition.n_atoms or 0)
        assert {el.symbol: int(n) for el, n in structure.composition.items()} == expected
        assert closest_distance(structure) >= generator.config.min_distance
        assert candidate.origin == "generated"
        assert candidate.pdm_target == (
            None if condition.pdm_target is None else pytest.approx(target)
        )


@pytest.mark.parametrize(
    ("swap_sigma", "n_atoms"),
    [(0.3, 54), (None, 54), (0.3, 48)],
    ids=["while-annealing", "after-push-apart", "while-annealing-with-type-denoising"],
)
def test_pdm_target_is_met_closer_with_element_exchanges(
    trained, monkeypatch, swap_sigma: float | None, n_atoms: int
) -> None:
    """The same decoded cells, with and without the swaps towards a clustered Ni-Fe-Cr target
    (at 48 atoms the type head also orders the elements, until the exchanges)."""
    generator, _ = trained
    monkeypatch.setattr(generator, "config", generator.config.replace(pdm_swap_sigma=swap_sigma))
    reference = random_solid_solution(NIFECR, "fcc", 54, np.random.default_rng(0))
    random_pdm = generator.pdm(reference)
    labels = generator.pdm_labels
    target = random_pdm.copy()  # more like neighbours, fewer unlike (same totals)
    for k, label in enumerate(labels):
        a, b = label.split("-")
        target[k] = random_pdm[k] * (1.6 if a == b else 0.6)
    condition = [Condition(NIFECR, pdm_target=list(target), n_atoms=n_atoms, phase="fcc")]
    errors = {}
    for sweeps in (0, 20):
        monkeypatch.setattr(generator, "config", generator.config.replace(pdm_swap_sweeps=sweeps))
        cells = [c.structure for c in generator.sample(condition, 4, seed=5)]
        errors[sweeps] = np.mean([np.abs(generator.pdm(s) - target).mean() for s in cells])
        for cell in cells:
            assert {el.symbol: int(n) for el, n in cell.composition.items()} == atom_counts(
                NIFECR, n_atoms
            )
    assert errors[20] < 0.5 * errors[0]


def test_latent_optimisation_raises_the_property_head_at_every_decode_step(trained, nifecr) -> None:
    generator, _ = trained
    starts = [structure for structure, _ in nifecr[:3]]
    steps = (0, 20, 50, 100)
    result = generator.optimize_latent(starts, property_name="bulk_modulus", decode_at=steps)
    predicted = result.predicted
    assert predicted.shape == (101, 3)
    for earlier, later in itertools.pairwise(steps):
        assert np.all(predicted[later] > predicted[earlier])
    assert sorted(result.candidates) == list(steps)
    for candidates in result.candidates.values():
        for candidate, start in zip(candidates, starts, strict=True):
            assert candidate.origin == "latent_opt"
            assert candidate.parent_hash == content_hash(start)
            assert candidate.structure.composition == start.composition
            assert candidate.pdm_target == pytest.approx(list(generator.pdm(start)))


def test_latent_optimisation_minimises_and_hits_targets(trained, nifecr) -> None:
    generator, _ = trained
    starts = [structure for structure, _ in nifecr[:2]]
    down = generator.optimize_latent(
        starts, property_name="energy_per_atom", goal="minimize", decode_at=(30,)
    )
    assert np.all(down.predicted[-1] < down.predicted[0])
    goal = float(down.predicted[0].mean()) + 0.01
    hit = generator.optimize_latent(
        starts, property_name="energy_per_atom", goal="target", target=goal, decode_at=(30,)
    )
    assert np.all(np.abs(hit.predicted[-1] - goal) < np.abs(hit.predicted[0] - goal))
    with pytest.raises(ValueError, match="no property head output"):
        generator.optimize_latent(starts, property_name="hardness", decode_at=(1,))


def test_save_load_sample_gives_identical_structures(trained, tmp_path: Path) -> None:
    generator, _ = trained
    weights = generator.save(tmp_path / "ckpt")
    assert weights.name == WEIGHTS_FILE
    stored = json.loads((tmp_path / "ckpt" / HPARAMS_FILE).read_text())
    assert stored["config"] == CondCDVAEConfig.tiny().to_dict()
    assert stored["spec"]["elements"] == ["Cr", "Fe", "Ni"]
    loaded = CondCDVAE.load(tmp_path / "ckpt", device="cpu")
    conditions = [Condition(NIFECR, n_atoms=64)]
    before = generator.sample(conditions, 2, seed=11)
    after = loaded.sample(conditions, 2, seed=11)
    assert same_structures([c.structure for c in before], [c.structure for c in after])
    assert after[0].generator_checkpoint == loaded.checkpoint_sha256 == generator.checkpoint_sha256
    other = loaded.sample(conditions, 2, seed=12)
    assert not same_structures([c.structure for c in before], [c.structure for c in other])


def test_interrupted_training_resumes_exactly(nifecr, tmp_path: Path) -> None:
    config = CondCDVAEConfig.tiny()
    straight = CondCDVAE(config, device="cpu", seed=5)
    full = straight.fit(nifecr, epochs=4)
    CondCDVAE(config, device="cpu", seed=5).fit(nifecr, epochs=2, checkpoint_dir=tmp_path)
    resumed = CondCDVAE(device="cpu")  # hyper-parameters and seed come from the checkpoint
    history = resumed.fit(nifecr, epochs=4, checkpoint_dir=tmp_path, resume=True)
    assert [r.val_loss for r in history.records] == [r.val_loss for r in full.records]
    for name, value in straight.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[name]), name
    assert (tmp_path / WEIGHTS_FILE).is_file()


def test_finetune_on_a_grown_dataset(trained, nifecr, tmp_path: Path) -> None:
    generator, _ = trained
    generator.save(tmp_path / "base")
    tuned = CondCDVAE.load(tmp_path / "base", device="cpu")
    rng = np.random.default_rng(9)
    grown = nifecr + [(random_solid_solution(NIFECR, "bcc", 16, rng), {}) for _ in range(4)]
    history = tuned.finetune(grown, epochs=2, checkpoint_dir=tmp_path / "tuned")
    assert len(history.records) == 2
    assert tuned.spec == generator.spec
    changed = [
        not torch.equal(value, generator.model.state_dict()[name])
        for name, value in tuned.model.state_dict().items()
    ]
    assert any(changed)
    assert CondCDVAE.load(tmp_path / "tuned").checkpoint_sha256 == tuned.checkpoint_sha256
    cobalt = random_solid_solution({"Co": 0.5, "Ni": 0.5}, "fcc", 16, rng)
    with pytest.raises(ValueError, match="Co"):
        tuned.finetune([*grown, (cobalt, {})], epochs=1)


def test_requests_the_generator_cannot_serve(trained) -> None:
    generator, _ = trained
    with pytest.raises(ValueError, match="PDM target has 2 entries"):
        generator.sample([Condition(NIFECR, pdm_target=[1.0, 2.0])], 1)
    with pytest.raises(ValueError, match="Co"):
        generator.sample([Condition({"Co": 1.0}, n_atoms=16)], 1)
    with pytest.raises(ValueError, match="unknown phase"):
        generator.sample([Condition(NIFECR, n_atoms=16, phase="liquid")], 1)
    with pytest.raises(RuntimeError, match="not trained"):
        CondCDVAE(device="cpu").sample([Condition(NIFECR)], 1)


def test_config_round_trip_and_device_resolution(monkeypatch: pytest.MonkeyPatch) -> None:
    config = CondCDVAEConfig.tiny()
    assert CondCDVAEConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    with pytest.raises(ValueError, match="unknown generator hyper-parameters"):
        CondCDVAEConfig.from_dict({"latent": 3})
    assert resolve_device("cpu") == torch.device("cpu")
    monkeypatch.setenv("AMLOOP_DEVICE", "cpu")
    assert resolve_device() == torch.device("cpu")
    with pytest.raises(ValueError, match=r"unknown device|unsupported device"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        assert resolve_device("auto") == torch.device("cpu")
        with pytest.raises(ValueError, match="no CUDA"):
            resolve_device("cuda:0")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_train_and_sample_on_cuda(nifecr, tmp_path: Path) -> None:
    generator = CondCDVAE(CondCDVAEConfig.tiny(), device="cuda", seed=0)
    history = generator.fit(nifecr, epochs=4, checkpoint_dir=tmp_path)
    assert history.records[-1].val_loss < history.records[0].val_loss
    candidates = generator.sample(
        [Condition(NIFECR, n_atoms=64), Condition(NIFECR, n_atoms=256)], 2, seed=1
    )
    for candidate in candidates:
        assert closest_distance(candidate.structure) >= generator.config.min_distance
    reloaded = CondCDVAE.load(tmp_path, device="cuda")
    again = reloaded.sample(
        [Condition(NIFECR, n_atoms=64), Condition(NIFECR, n_atoms=256)], 2, seed=1
    )
    assert same_structures([c.structure for c in candidates], [c.structure for c in again])
