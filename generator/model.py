"""Cond-CDVAE network: DimeNet++ encoder, condition embedding, MLP_zc, P-CDVAE heads, decoder.

``z`` (from the encoder, or ``N(0, I)`` when sampling) and the condition embedding ``c``
(composition + PDM) are joined by MLP_zc into ``z_c``, from which every head and the decoder
read (seed 000). The heads (seed 001): number of atoms (classes 1..max_atoms), lattice
(standardised ``[a, b, c] / n^(1/3)`` and angles), composition, properties (multi-output) and
phase, whose prediction joins the decoder's atom-type embedding. Training is CDVAE's single-step
denoising: each cell gets a random coordinate noise level ``σ`` from a geometric schedule and,
where type denoising is on, a random type noise level, and the decoder predicts the
minimum-image displacement back to the clean cell in units of ``σ``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.utils import scatter

from amloop.generator.config import CondCDVAEConfig
from amloop.generator.data import CrystalBatch
from amloop.generator.decoder import PaiNNDecoder, mlp
from amloop.generator.encoder import DimeNetPPEncoder
from amloop.generator.graph import cart_to_frac, frac_to_cart, min_image_vector


def geometric_levels(begin: float, end: float, count: int) -> Tensor:
    """``count`` levels from ``begin`` down to ``end`` in geometric progression, ``(count,)``."""
    return torch.exp(torch.linspace(math.log(begin), math.log(end), count))


def denoises_types(config: CondCDVAEConfig, num_atoms: Tensor) -> Tensor:
    """Which cells (``(B,)`` bool) denoise atom types: ``config.type_denoising``, where ``auto``
    means cells of at most ``config.type_denoising_max_atoms`` atoms (seed 002)."""
    if config.type_denoising == "auto":
        return num_atoms <= config.type_denoising_max_atoms
    return torch.full_like(num_atoms, config.type_denoising == "on", dtype=torch.bool)


@dataclass
class Losses:
    """Loss terms of one batch (each a scalar tensor) and their weighted sum."""

    total: Tensor
    terms: dict[str, Tensor]


class CondCDVAEModel(nn.Module):
    """The Cond-CDVAE network.

    Args:
        config: Hyper-parameters.
        num_elements: Number of campaign elements (composition and type classes).
        pdm_length: Length of the PDM condition vector.
        num_properties: Outputs of the property head.
        num_phases: Classes of the phase head.
        atomic_numbers: Atomic number of each campaign element, in order.
    """

    sigmas: Tensor
    type_sigmas: Tensor
    element_numbers: Tensor

    def __init__(
        self,
        config: CondCDVAEConfig,
        *,
        num_elements: int,
        pdm_length: int,
        num_properties: int,
        num_phases: int,
        atomic_numbers: list[int],
    ):
        super().__init__()
        self.config = config
        latent = config.latent_dim
        head = [config.head_hidden] * config.head_layers
        self.encoder = DimeNetPPEncoder(
            out_channels=latent,
            hidden_channels=config.encoder_hidden,
            num_blocks=config.encoder_blocks,
            int_emb_size=config.encoder_int_emb,
            basis_emb_size=config.encoder_basis_emb,
            out_emb_channels=config.encoder_out_emb,
            num_spherical=config.encoder_num_spherical,
            num_radial=config.encoder_num_radial,
            cutoff=config.encoder_cutoff,
            max_neighbours=config.encoder_max_neighbours,
        )
        self.fc_mu = nn.Linear(latent, latent)
        self.fc_logvar = nn.Linear(latent, latent)
        self.element_embedding = nn.Embedding(max(atomic_numbers) + 1, config.element_embedding_dim)
        self.register_buffer("element_numbers", torch.tensor(atomic_numbers), persistent=False)
        self.condition_mlp = mlp(
            [config.element_embedding_dim + pdm_length, config.zc_hidden, config.zc_hidden]
        )
        self.mlp_zc = mlp(
            [latent + config.zc_hidden, *[config.zc_hidden] * (config.zc_layers - 1), latent]
        )
        self.num_atoms_head = mlp([latent, *head, config.max_atoms])
        self.lattice_head = mlp([latent, *head, 6])
        self.composition_head = mlp([latent, *head, num_elements])
        self.property_head = mlp([latent, *head, max(num_properties, 1)])
        self.phase_head = mlp([latent, *head, num_phases])
        self.decoder = PaiNNDecoder(
            latent_dim=latent,
            num_phases=num_phases,
            num_elements=num_elements,
            hidden=config.decoder_hidden,
            num_blocks=config.decoder_blocks,
            num_radial=config.decoder_num_radial,
            cutoff=config.decoder_cutoff,
            max_neighbours=config.decoder_max_neighbours,
        )
        self.num_properties, self.num_phases = num_properties, num_phases
        self.register_buffer(
            "sigmas",
            geometric_levels(config.sigma_begin, config.sigma_end, config.num_noise_levels),
            persistent=False,
        )
        self.register_buffer(
            "type_sigmas",
            geometric_levels(
                config.type_sigma_begin, config.type_sigma_end, config.num_noise_levels
            ),
            persistent=False,
        )

    # -- the parts -------------------------------------------------------------------------

    def encode(self, batch: CrystalBatch) -> tuple[Tensor, Tensor]:
        """Posterior mean and log-variance of ``z``, each ``(B, latent_dim)``."""
        hidden = self.encoder(batch.atomic_numbers, batch.frac, batch.lattice, batch.batch)
        return self.fc_mu(hidden), self.fc_logvar(hidden)

    def condition(self, composition: Tensor, pdm: Tensor) -> Tensor:
        """Condition embedding ``c`` ``(B, zc_hidden)`` of fractions ``(B, n_el)``, PDM ``(B, n_pdm)``.

        The composition embedding is the fraction-weighted mean of the element embeddings.
        """
        embedded = composition @ self.element_embedding(self.element_numbers)
        return self.condition_mlp(torch.cat([embedded, pdm], dim=-1))

    def join(self, z: Tensor, c: Tensor) -> Tensor:
        """MLP_zc: the conditioned latent ``z_c`` ``(B, latent_dim)``."""
        return self.mlp_zc(torch.cat([z, c], dim=-1))

    def predict_properties(self, zc: Tensor) -> Tensor:
        """Standardised properties ``(B, n_properties)``."""
        return self.property_head(zc)[:, : self.num_properties]

    def decode(
        self,
        zc: Tensor,
        phase: Tensor,
        atomic_numbers: Tensor,
        frac: Tensor,
        lattice: Tensor,
        batch: Tensor,
        sigma: Tensor,
    ) -> tuple[Tensor, Tensor]:
        """Scores ``(N, 3)`` and type logits ``(N, n_el)``; ``sigma`` per cell ``(B,)`` (Å)."""
        return self.decoder(zc, phase, atomic_numbers, frac, lattice, batch, torch.log(sigma))

    # -- training objective ----------------------------------------------------------------

    def loss(self, batch: CrystalBatch, generator: torch.Generator) -> Losses:
        """Weighted Cond-CDVAE loss of one batch; all random draws come from ``generator``."""
        cfg = self.config
        cells, device = batch.num_atoms.shape[0], batch.frac.device
        mu, logvar = self.encode(batch)
        eps = torch.randn(mu.shape, generator=generator, device=device, dtype=mu.dtype)
        z = mu + eps * torch.exp(0.5 * logvar)
        zc = self.join(z, self.condition(batch.composition, batch.pdm))

        terms: dict[str, Tensor] = {}
        terms["num_atoms"] = F.cross_entropy(self.num_atoms_head(zc), batch.num_atoms - 1)
        terms["lattice"] = F.mse_loss(self.lattice_head(zc), batch.lattice_target)
        per_atom = F.cross_entropy(
            self.composition_head(zc)[batch.batch], batch.element_index, reduction="none"
        )
        terms["composition"] = scatter(per_atom, batch.batch, dim_size=cells, reduce="mean").mean()
        known = torch.isfinite(batch.properties)
        if known.any():
            error = self.predict_properties(zc) - torch.nan_to_num(batch.properties)
            terms["property"] = (error[known] ** 2).mean()
        terms["phase"] = F.cross_entropy(self.phase_head(zc), batch.phase)
        terms["kl"] = (-0.5 * (1 + logvar - mu**2 - logvar.exp()).sum(dim=1)).mean()

        level = torch.randint(len(self.sigmas), (cells,), generator=generator, device=device)
        sigma = self.sigmas[level]
        noise = torch.randn(batch.frac.shape, generator=generator, device=device, dtype=mu.dtype)
        cart = frac_to_cart(batch.frac, batch.lattice, batch.batch)
        noisy = cart_to_frac(cart + noise * sigma[batch.batch, None], batch.lattice, batch.batch)
        noisy = noisy - torch.floor(noisy)
        types, type_sigma = self._noisy_types(batch, generator)
        phase = F.one_hot(batch.phase, self.num_phases)  # teacher forcing: the true phase
        score, type_logits = self.decode(
            zc, phase.to(zc.dtype), types, noisy, batch.lattice, batch.batch, sigma
        )
        target = (
            min_image_vector(noisy, batch.frac, batch.lattice, batch.batch)
            / sigma[batch.batch, None]
        )
        per_atom = 0.5 * ((score - target) ** 2).sum(dim=-1)
        terms["coord"] = scatter(per_atom, batch.batch, dim_size=cells, reduce="mean").mean()
        denoise = denoises_types(cfg, batch.num_atoms)
        if denoise.any():
            per_atom = F.cross_entropy(type_logits, batch.element_index, reduction="none")
            per_cell = scatter(
                per_atom / type_sigma[batch.batch], batch.batch, dim_size=cells, reduce="mean"
            )
            terms["type"] = per_cell[denoise].mean()

        weights = {
            "num_atoms": cfg.weight_num_atoms,
            "lattice": cfg.weight_lattice,
            "composition": cfg.weight_composition,
            "property": cfg.weight_property,
            "phase": cfg.weight_phase,
            "kl": cfg.beta,
            "coord": cfg.weight_coord,
            "type": cfg.weight_type,
        }
        total = sum((weights[name] * value for name, value in terms.items()), mu.new_zeros(()))
        return Losses(total=total, terms=terms)

    def _noisy_types(
        self, batch: CrystalBatch, generator: torch.Generator
    ) -> tuple[Tensor, Tensor]:
        """Atomic numbers with CDVAE's type noise where type denoising is on, and type σ ``(B,)``.

        Each atom's type is redrawn from ``one_hot + σ_type · composition`` (CDVAE draws from the
        predicted composition; the cell's true composition is used here), so large ``σ_type``
        scrambles the ordering while keeping the composition on average.
        """
        cells, device = batch.num_atoms.shape[0], batch.frac.device
        level = torch.randint(len(self.type_sigmas), (cells,), generator=generator, device=device)
        type_sigma = self.type_sigmas[level]
        denoise = denoises_types(self.config, batch.num_atoms)[batch.batch]
        probabilities = (
            F.one_hot(batch.element_index, batch.composition.shape[1]).to(batch.composition.dtype)
            + type_sigma[batch.batch, None] * batch.composition[batch.batch]
        )
        drawn = torch.multinomial(probabilities, 1, generator=generator).squeeze(1)
        index = torch.where(denoise, drawn, batch.element_index)
        return self.element_numbers[index], type_sigma
