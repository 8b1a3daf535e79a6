"""Network pieces: the spherical basis, symmetry of encoder and decoder, the loss terms."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from pymatgen.core import Element
from scipy import special
from scipy.spatial.transform import Rotation
from torch_geometric.nn.models.dimenet import SphericalBasisLayer

from amloop.generator.config import CondCDVAEConfig
from amloop.generator.data import CrystalBatch, DataSpec, featurise
from amloop.generator.encoder import SphericalBasis
from amloop.generator.model import CondCDVAEModel, denoises_types
from amloop.generator.phase import classify_phase


def test_spherical_basis_matches_pyg_layer() -> None:
    generator = torch.Generator().manual_seed(0)
    distance = torch.rand(40, generator=generator, dtype=torch.float64) * 4.0 + 1.0
    angle = torch.rand(90, generator=generator, dtype=torch.float64) * torch.pi
    idx_kj = torch.randint(0, 40, (90,), generator=generator)
    expected = SphericalBasisLayer(3, 2, cutoff=5.0)(distance, angle, idx_kj)
    assert torch.allclose(
        SphericalBasis(3, 2, cutoff=5.0)(distance, angle, idx_kj), expected, atol=1e-5
    )


def test_spherical_basis_matches_scipy_at_paper_size() -> None:
    basis = SphericalBasis(7, 6, cutoff=7.0)
    distance = torch.tensor([1.8, 2.5, 4.0, 6.5], dtype=torch.float64)
    angle = torch.tensor([0.3, 1.2, 2.0, 3.0], dtype=torch.float64)
    got = basis(distance, angle, torch.arange(4)).reshape(4, 7, 6).numpy()
    x = distance.numpy() / 7.0
    envelope = basis.envelope(torch.tensor(x)).numpy()
    zeros = basis.zeros.numpy()
    for ell in range(7):
        norm = 1 / np.sqrt(0.5 * special.spherical_jn(ell + 1, zeros[ell]) ** 2)
        radial = special.spherical_jn(ell, zeros[ell][None] * x[:, None]) * norm * envelope[:, None]
        angular = special.sph_harm_y(ell, 0, angle.numpy(), 0.0).real
        assert np.allclose(got[:, ell], radial * angular[:, None], atol=1e-8)


@pytest.fixture(scope="module")
def model_and_batch(nifecr) -> tuple[CondCDVAEModel, CrystalBatch]:
    structures = [s for s, _ in nifecr[:4]]
    spec = DataSpec.from_data(structures, [p for _, p in nifecr[:4]])
    torch.manual_seed(0)
    model = CondCDVAEModel(
        CondCDVAEConfig.tiny(),
        num_elements=len(spec.elements),
        pdm_length=spec.pdm_length,
        num_properties=len(spec.properties),
        num_phases=len(spec.phases),
        atomic_numbers=[Element(symbol).Z for symbol in spec.elements],
    ).double()
    crystals = [featurise(s, p, classify_phase(s), spec) for s, p in nifecr[:4]]
    return model, CrystalBatch.collate(crystals, torch.device("cpu"), torch.float64)


def _rotated(batch: CrystalBatch, rotation: torch.Tensor) -> CrystalBatch:
    return CrystalBatch(**{**vars(batch), "lattice": batch.lattice @ rotation.T})


def test_decoder_scores_rotate_and_ignore_translations(model_and_batch) -> None:
    model, batch = model_and_batch
    rotation = torch.tensor(Rotation.random(random_state=0).as_matrix())
    cells = batch.num_atoms.shape[0]
    zc = torch.randn(cells, model.config.latent_dim, dtype=torch.float64)
    phase = torch.eye(4, dtype=torch.float64)[:cells]
    sigma = torch.full((cells,), 0.3, dtype=torch.float64)

    def decode(frac: torch.Tensor, lattice: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return model.decode(zc, phase, batch.atomic_numbers, frac, lattice, batch.batch, sigma)

    score, logits = decode(batch.frac, batch.lattice)
    rotated_score, rotated_logits = decode(batch.frac, batch.lattice @ rotation.T)
    assert torch.allclose(rotated_score, score @ rotation.T, atol=1e-8)
    assert torch.allclose(rotated_logits, logits, atol=1e-8)
    shifted_score, _ = decode(
        batch.frac + torch.tensor([0.37, -0.11, 0.52], dtype=torch.float64), batch.lattice
    )
    assert torch.allclose(shifted_score, score, atol=1e-8)


def test_encoder_is_invariant(model_and_batch) -> None:
    model, batch = model_and_batch
    rotation = torch.tensor(Rotation.random(random_state=1).as_matrix())
    with torch.no_grad():
        mu, _ = model.encode(batch)
        mu_rotated, _ = model.encode(_rotated(batch, rotation))
    assert torch.allclose(mu, mu_rotated, atol=1e-8)


def test_loss_has_every_term_and_is_finite(model_and_batch) -> None:
    model, batch = model_and_batch
    losses = model.loss(batch, torch.Generator().manual_seed(0))
    assert set(losses.terms) == {
        "num_atoms",
        "lattice",
        "composition",
        "property",
        "phase",
        "kl",
        "coord",
        "type",
    }
    assert torch.isfinite(losses.total)
    losses.total.backward()
    assert all(p.grad is None or torch.isfinite(p.grad).all() for p in model.parameters())


def test_type_denoising_rule() -> None:
    sizes = torch.tensor([16, 50, 51, 256])
    config = CondCDVAEConfig.tiny()

    def mask(mode: str) -> list[bool]:
        return denoises_types(config.replace(type_denoising=mode), sizes).tolist()

    assert mask("auto") == [True, True, False, False]
    assert mask("on") == [True] * 4
    assert mask("off") == [False] * 4
