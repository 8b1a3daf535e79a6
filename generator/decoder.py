"""E(3)-equivariant periodic decoder: per-atom coordinate scores and atom-type logits.

CDVAE decodes with GemNet-dT; this decoder is PaiNN (Schütt, Unke & Gastegger, ICML 2021)
message passing on the periodic edges of :mod:`generator.graph`. Why PaiNN rather than GemNet:

- The score is a per-atom 3-vector that must rotate with the structure and ignore translations
  and the choice of periodic image. PaiNN's vector features are built only from edge direction
  vectors and transformed by channel-wise linear maps and scalar gates, so its vector output is
  rotation-equivariant, and edge vectors make it translation- and image-invariant, exactly as
  GemNet-dT's score head (checked in ``tests/generator/test_networks.py``).
- GemNet-dT reaches angular information through triplet (edge-pair) interactions, whose count
  grows as atoms x neighbours² (≈ 100 k per 256-atom cell at 20 neighbours) at every Langevin
  step; PaiNN carries the same directional information in vector features at a cost linear in
  the number of edges, which is what 50-256-atom amorphous cells and thousands of Langevin steps
  need. GemNet is also not part of PyG and would have to be rewritten from scratch.
- PaiNN's vector features resolve the bond-angle information a distance-only model (SchNet,
  EGNN's invariant messages) lacks, the feature Dismai-Bench (seed 002) found essential for
  amorphous structures.

Inputs per atom: the atom-type embedding plus a projection of the phase probabilities (the
P-CDVAE FC-phase prediction joins the type embedding), the conditioned latent ``z_c`` of its
cell, and ``log σ`` of the current noise level (known at every training and Langevin step, as
in noise-conditional score networks).
"""

from __future__ import annotations

import itertools

import torch
from torch import Tensor, nn
from torch_geometric.nn.models.dimenet import BesselBasisLayer
from torch_geometric.utils import scatter

from amloop.generator.graph import radius_graph_pbc

#: Largest atomic number the type embedding covers.
MAX_ATOMIC_NUMBER = 100
#: Distances are floored here (Å) so that coincident atoms cannot produce NaNs.
MIN_DISTANCE = 1e-4


def mlp(sizes: list[int], *, final_activation: bool = False) -> nn.Sequential:
    """Dense layers ``sizes[0] -> ... -> sizes[-1]`` with SiLU between them."""
    layers: list[nn.Module] = []
    for k, (n_in, n_out) in enumerate(itertools.pairwise(sizes)):
        layers.append(nn.Linear(n_in, n_out))
        if k < len(sizes) - 2 or final_activation:
            layers.append(nn.SiLU())
    return nn.Sequential(*layers)


class PaiNNMessage(nn.Module):
    """PaiNN message block: scalar and vector messages from neighbours, filtered by distance."""

    def __init__(self, hidden: int, num_radial: int):
        super().__init__()
        self.hidden = hidden
        self.scalar = mlp([hidden, hidden, 3 * hidden])
        self.filter = nn.Linear(num_radial, 3 * hidden)

    def forward(
        self, s: Tensor, v: Tensor, rbf: Tensor, unit: Tensor, centre: Tensor, neighbour: Tensor
    ) -> tuple[Tensor, Tensor]:
        """Residual updates of ``s`` ``(N, F)`` and ``v`` ``(N, 3, F)`` from the edges."""
        messages = self.scalar(s)[neighbour] * self.filter(rbf)
        ds, dv_v, dv_s = torch.split(messages, self.hidden, dim=-1)
        dv = v[neighbour] * dv_v[:, None, :] + unit[:, :, None] * dv_s[:, None, :]
        n = s.shape[0]
        return (
            s + scatter(ds, centre, dim=0, dim_size=n, reduce="sum"),
            v + scatter(dv, centre, dim=0, dim_size=n, reduce="sum"),
        )


class PaiNNUpdate(nn.Module):
    """PaiNN update block: mixes scalar and vector channels of each atom."""

    def __init__(self, hidden: int):
        super().__init__()
        self.hidden = hidden
        self.u = nn.Linear(hidden, hidden, bias=False)
        self.v = nn.Linear(hidden, hidden, bias=False)
        self.gates = mlp([2 * hidden, hidden, 3 * hidden])

    def forward(self, s: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """Residual updates of ``s`` ``(N, F)`` and ``v`` ``(N, 3, F)``."""
        uv, vv = self.u(v), self.v(v)
        norm = torch.sqrt((vv**2).sum(dim=1) + 1e-8)
        a_vv, a_sv, a_ss = torch.split(self.gates(torch.cat([s, norm], -1)), self.hidden, -1)
        return s + a_ss + a_sv * (uv * vv).sum(dim=1), v + a_vv[:, None, :] * uv


class GatedEquivariantOutput(nn.Module):
    """Gated equivariant block reducing ``(N, 3, F)`` vector features to one vector per atom."""

    def __init__(self, hidden: int):
        super().__init__()
        self.w1 = nn.Linear(hidden, hidden, bias=False)
        self.w2 = nn.Linear(hidden, hidden, bias=False)
        self.gate = mlp([2 * hidden, hidden, hidden])
        self.out = nn.Linear(hidden, 1, bias=False)

    def forward(self, s: Tensor, v: Tensor) -> Tensor:
        """Per-atom vectors ``(N, 3)``."""
        norm = torch.sqrt((self.w2(v) ** 2).sum(dim=1) + 1e-8)
        gate = self.gate(torch.cat([s, norm], -1))
        return self.out(gate[:, None, :] * self.w1(v)).squeeze(-1)


class PaiNNDecoder(nn.Module):
    """Periodic PaiNN predicting coordinate scores and atom-type logits.

    Args:
        latent_dim: Size of the conditioned latent ``z_c``.
        num_phases: Number of phase classes.
        num_elements: Number of type classes (the campaign's elements).
        hidden: Feature channels.
        num_blocks: Message + update blocks.
        num_radial: Radial (Bessel) basis functions.
        cutoff: Neighbour cutoff (Å).
        max_neighbours: Nearest neighbours kept per atom.
    """

    def __init__(
        self,
        *,
        latent_dim: int,
        num_phases: int,
        num_elements: int,
        hidden: int,
        num_blocks: int,
        num_radial: int,
        cutoff: float,
        max_neighbours: int,
    ):
        super().__init__()
        self.hidden, self.cutoff, self.max_neighbours = hidden, cutoff, max_neighbours
        self.type_embedding = nn.Embedding(MAX_ATOMIC_NUMBER + 1, hidden)
        self.phase_embedding = nn.Linear(num_phases, hidden, bias=False)
        self.embed = mlp([hidden + latent_dim + 1, hidden, hidden])
        self.rbf = BesselBasisLayer(num_radial, cutoff)
        self.messages = nn.ModuleList(PaiNNMessage(hidden, num_radial) for _ in range(num_blocks))
        self.updates = nn.ModuleList(PaiNNUpdate(hidden) for _ in range(num_blocks))
        self.score = GatedEquivariantOutput(hidden)
        self.types = mlp([hidden, hidden, num_elements])

    def forward(
        self,
        zc: Tensor,
        phase: Tensor,
        atomic_numbers: Tensor,
        frac: Tensor,
        lattice: Tensor,
        batch: Tensor,
        log_sigma: Tensor,
    ) -> tuple[Tensor, Tensor]:
        """Scores and type logits of a batch of (noisy) cells.

        Args:
            zc: Conditioned latent per cell, ``(B, latent_dim)``.
            phase: Phase probabilities (or one-hot) per cell, ``(B, num_phases)``.
            atomic_numbers: ``(N,)`` long.
            frac: Fractional coordinates, ``(N, 3)``.
            lattice: Cell vectors as rows (Å), ``(B, 3, 3)``.
            batch: Cell of every atom, ``(N,)`` long.
            log_sigma: ``log`` of the coordinate noise level (Å) per cell, ``(B,)``.

        Returns:
            Scores ``(N, 3)`` (Å, in units of σ: the displacement towards the clean structure
            divided by σ) and type logits ``(N, num_elements)``.
        """
        graph = radius_graph_pbc(
            frac, lattice, batch, self.cutoff, max_neighbours=self.max_neighbours
        )
        distance = graph.distance.clamp_min(MIN_DISTANCE)
        unit = graph.vector / distance[:, None]
        rbf = self.rbf(distance)
        h = self.type_embedding(atomic_numbers) + self.phase_embedding(phase)[batch]
        s = self.embed(torch.cat([h, zc[batch], log_sigma[batch, None]], dim=-1))
        v = s.new_zeros(s.shape[0], 3, self.hidden)
        for message, update in zip(self.messages, self.updates, strict=True):
            s, v = message(s, v, rbf, unit, graph.centre, graph.neighbour)
            s, v = update(s, v)
        return self.score(s, v), self.types(s)
