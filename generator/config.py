"""Hyper-parameters of the Cond-CDVAE generator, with the papers' defaults and a tiny preset.

Defaults follow Table S1 of seed 000 (Cond-CDVAE) where it gives a value, CDVAE (Xie et al.,
ICLR 2022, the configuration seeds 000 and 001 build on) elsewhere:

- Table S1: element embedding 50; MLP_zc 3 layers x 64; MLP_L (the heads) 1 layer x 256;
  encoder 4 blocks, 128 hidden, interaction embedding 128; decoder 4 blocks, 128 hidden;
  λ_L = 10, λ_X = 10, β = 0.01; Adam 1e-4, ReduceLROnPlateau (patience 30 epochs, factor 0.6,
  min 1e-5); batch size 128.
- CDVAE's training set-up: gradient clipping at 0.5 (by value).
- CDVAE: latent 256; DimeNet++ basis 8, output embedding 256, 7 spherical x 6 radial, cutoffs
  7 Å with 20 nearest neighbours; 50 geometric coordinate-noise levels 10 -> 0.01 Å, type noise
  5 -> 0.01; Langevin step 1e-4 with 100 steps per level; other loss weights 1.
- Seed 002: type denoising off above ~50 atoms (``type_denoising="auto"``).

Table S1's "vectorized PDM dimension 197" is the length of its PDM + RDF vector; here the PDM
length follows from the campaign's elements (``n (n + 1) / 2``, plus ``pdm_rdf_bins`` per pair).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

TypeDenoising = Literal["auto", "on", "off"]


@dataclass(frozen=True)
class CondCDVAEConfig:
    """Every hyper-parameter of model, training and sampling (units in the field comments)."""

    # latent and conditions
    latent_dim: int = 256
    element_embedding_dim: int = 50
    zc_layers: int = 3
    zc_hidden: int = 64
    # property/lattice/composition/n-atoms/phase heads
    head_layers: int = 1
    head_hidden: int = 256
    max_atoms: int = 256
    # DimeNet++ encoder
    encoder_blocks: int = 4
    encoder_hidden: int = 128
    encoder_int_emb: int = 128
    encoder_basis_emb: int = 8
    encoder_out_emb: int = 256
    encoder_num_spherical: int = 7
    encoder_num_radial: int = 6
    encoder_cutoff: float = 7.0  # Å
    encoder_max_neighbours: int = 20
    # PaiNN decoder
    decoder_blocks: int = 4
    decoder_hidden: int = 128
    decoder_num_radial: int = 6
    decoder_cutoff: float = 7.0  # Å
    decoder_max_neighbours: int = 20
    # noise schedules (geometric)
    sigma_begin: float = 10.0  # Å
    sigma_end: float = 0.01  # Å
    num_noise_levels: int = 50
    type_sigma_begin: float = 5.0
    type_sigma_end: float = 0.01
    type_denoising: TypeDenoising = "auto"
    type_denoising_max_atoms: int = 50
    # loss weights
    weight_num_atoms: float = 1.0
    weight_lattice: float = 10.0  # λ_L
    weight_coord: float = 10.0  # λ_X
    weight_type: float = 1.0
    weight_composition: float = 1.0
    weight_property: float = 1.0
    weight_phase: float = 1.0
    beta: float = 0.01  # KL weight
    # optimisation
    lr: float = 1e-4
    lr_patience: int = 30  # epochs
    lr_factor: float = 0.6
    lr_min: float = 1e-5
    batch_size: int = 128
    grad_clip_value: float = 0.5  # CDVAE's gradient clipping (by value)
    max_epochs: int = 1000
    early_stopping_patience: int = 100  # epochs without a better validation loss
    val_fraction: float = 0.1
    # sampling
    langevin_steps_per_level: int = 100
    langevin_step_lr: float = 1e-4
    min_distance: float = 1.5  # Å, after push-apart
    #: Element exchanges proposed per atom towards a PDM target (0: none).
    pdm_swap_sweeps: int = 20
    #: Noise level (Å) at which the elements are exchanged towards the PDM target, on that
    #: level's denoised positions, so that the remaining levels fit the geometry to the new
    #: order (``generator/sample.py``); None: after push-apart, positions fixed.
    pdm_swap_sigma: float | None = 0.3
    #: Predicted cells below this fraction of the smallest training volume per atom are scaled up.
    min_volume_fraction: float = 0.75
    # PDM
    pdm_rdf_bins: int = 0

    @classmethod
    def tiny(cls) -> CondCDVAEConfig:
        """A model of a few thousand parameters for tests and smoke runs (CPU, seconds).

        Latent 16; every hidden size 8-32; one encoder block with 3 x 4 basis functions and
        4 Å cutoffs with 12 neighbours; two decoder blocks; 10 noise levels 3 -> 0.05 Å with
        2 Langevin steps each; learning rate 1e-3 so that a few epochs visibly lower the loss.
        """
        return cls(
            latent_dim=16,
            element_embedding_dim=8,
            zc_hidden=16,
            head_hidden=32,
            encoder_blocks=1,
            encoder_hidden=16,
            encoder_int_emb=8,
            encoder_basis_emb=4,
            encoder_out_emb=16,
            encoder_num_spherical=3,
            encoder_num_radial=4,
            encoder_cutoff=4.0,
            encoder_max_neighbours=12,
            decoder_blocks=2,
            decoder_hidden=16,
            decoder_num_radial=6,
            decoder_cutoff=4.0,
            decoder_max_neighbours=12,
            sigma_begin=3.0,
            sigma_end=0.05,
            num_noise_levels=10,
            type_sigma_begin=2.0,
            type_sigma_end=0.05,
            lr=1e-3,
            lr_patience=30,
            batch_size=8,
            max_epochs=20,
            # the loss is stochastic (a random noise level per example) and tiny validation
            # sets are 2-4 cells: patiences of 5 (learning rate) and 10 (stopping) epochs ended
            # training at ~15 epochs with 2.5x the loss reached by epoch 70 with 30 and 100
            # (measured on 10 Cu-Zr glass cells)
            early_stopping_patience=100,
            val_fraction=0.2,
            langevin_steps_per_level=2,
            langevin_step_lr=1e-3,
        )

    @classmethod
    def preset(cls, name: str) -> CondCDVAEConfig:
        """The configuration of a preset: ``"paper"`` (seed 000's Table S1 sizes, the defaults)
        or ``"tiny"`` (:meth:`tiny`)."""
        return cls.tiny() if name == "tiny" else cls()

    def replace(self, **changes: Any) -> CondCDVAEConfig:
        """A copy with ``changes`` applied."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> CondCDVAEConfig:
        """Inverse of :meth:`to_dict`.

        Raises:
            ValueError: a key is not a field of this class.
        """
        unknown = set(values) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"unknown generator hyper-parameters: {', '.join(sorted(unknown))}")
        return cls(**values)
