"""DimeNet++ encoder on periodic graphs, built from PyG's DimeNet++ blocks.

PyG's :class:`~torch_geometric.nn.models.DimeNetPlusPlus` builds its graph with ``radius_graph``
and ``triplets`` (compiled torch-cluster / torch-sparse); here the periodic edges and triplets
come from :mod:`generator.graph` and drive PyG's ``BesselBasisLayer``, ``EmbeddingBlock``,
``InteractionPPBlock`` and ``OutputPPBlock`` unchanged. Only the 2D spherical Fourier-Bessel
basis is computed by :class:`SphericalBasis` instead of PyG's ``SphericalBasisLayer``: the same
functions, evaluated numerically rather than through sympy (whose symbolic set-up takes ~13 s per
model at 7 x 6 functions).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
from scipy import special
from torch import Tensor, nn
from torch_geometric.nn.models.dimenet import (
    BesselBasisLayer,
    EmbeddingBlock,
    Envelope,
    InteractionPPBlock,
    OutputPPBlock,
)
from torch_geometric.nn.models.dimenet_utils import Jn_zeros
from torch_geometric.utils import scatter

from amloop.generator.graph import radius_graph_pbc, triplets


def spherical_bessel(order: int, x: Tensor) -> Tensor:
    """Spherical Bessel functions ``j_0 ... j_order`` at ``x``, stacked on a new last axis.

    Upward recurrence ``j_{l+1} = (2l + 1) / x j_l - j_{l-1}``, the closed forms PyG's sympy
    set-up expands to; call it in float64 (it loses digits at small ``x`` for large ``l``).
    """
    j0 = torch.sin(x) / x
    values = [j0, j0 / x - torch.cos(x) / x]
    for ell in range(1, order):
        values.append((2 * ell + 1) / x * values[-1] - values[-2])
    return torch.stack(values[: order + 1], dim=-1)


def legendre(order: int, c: Tensor) -> Tensor:
    """Legendre polynomials ``P_0 ... P_{order-1}`` at ``c``, stacked on a new last axis."""
    values = [torch.ones_like(c), c]
    for ell in range(1, order - 1):
        values.append(((2 * ell + 1) * c * values[-1] - ell * values[-2]) / (ell + 1))
    return torch.stack(values[:order], dim=-1)


class SphericalBasis(nn.Module):
    """DimeNet's 2D spherical Fourier-Bessel basis ``a_SBF(d_kj, θ_kji)``.

    ``sqrt(2) / |j_{l+1}(z_ln)| · j_l(z_ln d / c) · u(d / c) · Y_l0(θ)`` for ``l < num_spherical``,
    ``n < num_radial`` (``z_ln`` the n-th root of ``j_l``, ``u`` the polynomial envelope), in the
    order and normalisation of PyG's ``SphericalBasisLayer``.
    """

    zeros: Tensor
    normaliser: Tensor
    prefactor: Tensor

    def __init__(
        self, num_spherical: int, num_radial: int, cutoff: float, envelope_exponent: int = 5
    ):
        super().__init__()
        zeros = np.asarray(Jn_zeros(num_spherical, num_radial), dtype=np.float64)
        orders = np.arange(num_spherical)[:, None]
        normaliser = 1.0 / np.sqrt(0.5 * special.spherical_jn(orders + 1, zeros) ** 2)
        prefactor = np.sqrt((2 * np.arange(num_spherical) + 1) / (4 * math.pi))
        self.num_spherical, self.num_radial, self.cutoff = num_spherical, num_radial, cutoff
        self.envelope = Envelope(envelope_exponent)
        self.register_buffer("zeros", torch.tensor(zeros), persistent=False)
        self.register_buffer("normaliser", torch.tensor(normaliser), persistent=False)
        self.register_buffer("prefactor", torch.tensor(prefactor), persistent=False)

    def forward(self, distance: Tensor, angle: Tensor, idx_kj: Tensor) -> Tensor:
        """Basis of each triplet.

        Args:
            distance: Edge lengths (Å), ``(E,)``.
            angle: Triplet angles (rad), ``(T,)``.
            idx_kj: Edge ``k -> j`` of each triplet, ``(T,)``.

        Returns:
            ``(T, num_spherical · num_radial)`` in the dtype of ``distance``.
        """
        x = (distance / self.cutoff).double()
        argument = self.zeros[None] * x[:, None, None]  # (E, L, N)
        bessel = spherical_bessel(self.num_spherical - 1, argument)  # (E, L, N, L)
        index = torch.arange(self.num_spherical, device=x.device)
        radial = bessel[:, index, :, index].permute(1, 0, 2) * self.normaliser
        radial = self.envelope(x)[:, None, None] * radial  # (E, L, N)
        angular = self.prefactor * legendre(self.num_spherical, torch.cos(angle.double()))
        out = radial[idx_kj] * angular[:, :, None]
        return out.reshape(-1, self.num_spherical * self.num_radial).to(distance.dtype)


class DimeNetPPEncoder(nn.Module):
    """DimeNet++ on periodic edges: a structure -> one ``out_channels`` vector (mean readout).

    Args:
        out_channels: Size of the output vector.
        hidden_channels: Edge embedding size.
        num_blocks: Interaction blocks.
        int_emb_size: Triplet interaction embedding size.
        basis_emb_size: Basis embedding size.
        out_emb_channels: Output block embedding size.
        num_spherical: Spherical harmonics of the angular basis.
        num_radial: Radial basis functions.
        cutoff: Neighbour cutoff (Å).
        max_neighbours: Nearest neighbours kept per atom.
        envelope_exponent: Exponent of the smooth cutoff envelope.
        num_before_skip: Residual layers before the skip connection.
        num_after_skip: Residual layers after the skip connection.
        num_output_layers: Dense layers of each output block.
        act: Activation.
    """

    def __init__(
        self,
        *,
        out_channels: int,
        hidden_channels: int,
        num_blocks: int,
        int_emb_size: int,
        basis_emb_size: int,
        out_emb_channels: int,
        num_spherical: int,
        num_radial: int,
        cutoff: float,
        max_neighbours: int,
        envelope_exponent: int = 5,
        num_before_skip: int = 1,
        num_after_skip: int = 2,
        num_output_layers: int = 3,
        act: Callable[[Tensor], Tensor] = nn.functional.silu,
    ):
        super().__init__()
        self.cutoff, self.max_neighbours = cutoff, max_neighbours
        self.rbf = BesselBasisLayer(num_radial, cutoff, envelope_exponent)
        self.sbf = SphericalBasis(num_spherical, num_radial, cutoff, envelope_exponent)
        self.emb = EmbeddingBlock(num_radial, hidden_channels, act)
        self.output_blocks = nn.ModuleList(
            OutputPPBlock(
                num_radial, hidden_channels, out_emb_channels, out_channels, num_output_layers, act
            )
            for _ in range(num_blocks + 1)
        )
        self.interaction_blocks = nn.ModuleList(
            InteractionPPBlock(
                hidden_channels,
                int_emb_size,
                basis_emb_size,
                num_spherical,
                num_radial,
                num_before_skip,
                num_after_skip,
                act,
            )
            for _ in range(num_blocks)
        )

    def forward(
        self, atomic_numbers: Tensor, frac: Tensor, lattice: Tensor, batch: Tensor
    ) -> Tensor:
        """Encode a batch of cells.

        Args:
            atomic_numbers: ``(N,)`` long.
            frac: Fractional coordinates, ``(N, 3)``.
            lattice: Cell vectors as rows (Å), ``(B, 3, 3)``.
            batch: Cell of every atom, ``(N,)`` long.

        Returns:
            ``(B, out_channels)``: the mean over each cell's atoms of the summed output blocks.
        """
        n = atomic_numbers.shape[0]
        graph = radius_graph_pbc(
            frac, lattice, batch, self.cutoff, max_neighbours=self.max_neighbours
        )
        angles = triplets(graph, n)
        i, j = graph.centre, graph.neighbour
        rbf = self.rbf(graph.distance)
        sbf = self.sbf(graph.distance, angles.angle, angles.idx_kj)
        x = self.emb(atomic_numbers, rbf, i, j)
        out = self.output_blocks[0](x, rbf, i, num_nodes=n)
        for interaction, output in zip(
            self.interaction_blocks, self.output_blocks[1:], strict=True
        ):
            x = interaction(x, rbf, sbf, angles.idx_kj, angles.idx_ji)
            out = out + output(x, rbf, i, num_nodes=n)
        return scatter(out, batch, dim=0, dim_size=lattice.shape[0], reduce="mean")
