"""Sampler pieces with analytic answers."""

from __future__ import annotations

import torch
from torch import Tensor

from amloop.generator.graph import cart_to_frac, frac_to_cart
from amloop.generator.sample import _denoised, _reorder_level


class ExactScore:
    """The ideal noise-conditional score of one known clean batch: ``(x0 - x) / σ`` (Å / σ)."""

    def __init__(self, clean: Tensor, lattice: Tensor, batch: Tensor):
        self.clean, self.lattice, self.batch = clean, lattice, batch
        self.element_numbers = torch.tensor([29, 40])

    def decode(self, zc, phase, numbers, frac, lattice, batch, sigma) -> tuple[Tensor, Tensor]:
        shift = self.clean - frac
        shift = shift - torch.round(shift)  # nearest image
        return frac_to_cart(shift, lattice, batch) / sigma[batch, None], torch.zeros(len(frac), 2)


def test_tweedie_step_with_the_exact_score_recovers_the_clean_cells() -> None:
    generator = torch.Generator().manual_seed(0)
    lattice = torch.stack([torch.eye(3) * 10.0, torch.diag(torch.tensor([8.0, 9.0, 11.0]))])
    batch = torch.repeat_interleave(torch.arange(2), torch.tensor([5, 7]))
    clean = torch.rand((12, 3), generator=generator)
    sigma = torch.tensor(0.3)
    noise = torch.randn((12, 3), generator=generator) * sigma
    noisy = cart_to_frac(frac_to_cart(clean, lattice, batch) + noise, lattice, batch)
    noisy = noisy - torch.floor(noisy)  # some atoms wrap across the cell faces
    model = ExactScore(clean, lattice, batch)
    element = torch.zeros(12, dtype=torch.long)
    estimate = _denoised(model, None, None, element, noisy, lattice, batch, sigma)  # type: ignore[arg-type]
    wrapped = (estimate - clean) - torch.round(estimate - clean)
    assert torch.allclose(wrapped, torch.zeros_like(wrapped), atol=1e-5)
    assert (estimate >= 0).all() and (estimate < 1).all()


def test_exchange_level_is_the_first_at_or_below_the_requested_sigma() -> None:
    sigmas = torch.tensor([3.0, 1.2, 0.5, 0.3, 0.12, 0.05])
    assert _reorder_level(sigmas, 0.3) == 3
    assert _reorder_level(sigmas, 0.4) == 3
    assert _reorder_level(sigmas, 10.0) == 0
    assert _reorder_level(sigmas, 0.01) == 5  # below the schedule: after the last level
