"""Periodic radius graphs, angle triplets and cell geometry for batches of crystals, in torch.

PyG's ``radius_graph`` and DimeNet's ``triplets`` need compiled extensions (torch-cluster,
torch-sparse) that do not exist for every torch; everything here is plain torch, so it runs on
any CPU or CUDA build.

Conventions: a batch of ``B`` cells with ``N`` atoms in all; ``lattice`` has shape ``(B, 3, 3)``
with the cell vectors as rows (Å), so Cartesian = fractional @ lattice; ``batch`` (``(N,)``)
maps atoms to cells. An edge ``e`` joins a ``centre`` atom ``i`` (in its home cell) to a
``neighbour`` atom ``j`` shifted by the integer lattice translation ``image``;
``vector[e] = (frac_j + image - frac_i) @ lattice`` points from ``i`` to that image of ``j``.
This is the ``(centre, point, image, distance)`` form of pymatgen's
``Structure.get_neighbor_list``, and DimeNet's ``j -> i`` message direction.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

#: Most pair-image candidates (atoms² x images) examined at once; bounds the memory per chunk.
MAX_CANDIDATES_PER_CHUNK = 1 << 23


@dataclass
class PeriodicGraph:
    """Edges of a periodic radius graph, sorted by centre and, per centre, by distance.

    Attributes:
        centre: Atom ``i`` of each edge, ``(E,)`` long.
        neighbour: Atom ``j`` of each edge, ``(E,)`` long.
        image: Lattice translation of ``j``, ``(E, 3)`` long.
        vector: From ``i`` to the image of ``j`` (Å), ``(E, 3)``.
        distance: Length of ``vector`` (Å), ``(E,)``.
    """

    centre: Tensor
    neighbour: Tensor
    image: Tensor
    vector: Tensor
    distance: Tensor

    @property
    def num_edges(self) -> int:
        """Number of edges ``E``."""
        return int(self.centre.numel())


@dataclass
class Triplets:
    """Angle triplets ``k -> j -> i`` of a :class:`PeriodicGraph` (DimeNet's ``idx_kj``/``idx_ji``).

    Attributes:
        idx_ji: Edge with centre ``i`` and neighbour ``j``, ``(T,)`` long.
        idx_kj: Edge with centre ``j`` and neighbour ``k``, ``(T,)`` long; never the reverse of
            ``idx_ji`` (``k`` at the position of ``i``).
        angle: Angle between ``vector[idx_ji]`` and ``vector[idx_kj]`` (rad), ``(T,)``.
    """

    idx_ji: Tensor
    idx_kj: Tensor
    angle: Tensor


def lattice_from_parameters(lengths: Tensor, angles: Tensor) -> Tensor:
    """Cell matrices (rows = vectors, Å) from lengths (Å) and angles (degrees), pymatgen's setting.

    Args:
        lengths: ``(B, 3)`` cell lengths a, b, c (Å).
        angles: ``(B, 3)`` angles α, β, γ (degrees).

    Returns:
        ``(B, 3, 3)``, as ``pymatgen.core.Lattice.from_parameters`` builds them.
    """
    alpha, beta, gamma = torch.deg2rad(angles).unbind(-1)
    cos_star = (torch.cos(alpha) * torch.cos(beta) - torch.cos(gamma)) / (
        torch.sin(alpha) * torch.sin(beta)
    )
    gamma_star = torch.arccos(cos_star.clamp(-1.0, 1.0))
    a, b, c = lengths.unbind(-1)
    zero = torch.zeros_like(a)
    vector_a = torch.stack([a * torch.sin(beta), zero, a * torch.cos(beta)], dim=-1)
    vector_b = torch.stack(
        [
            -b * torch.sin(alpha) * torch.cos(gamma_star),
            b * torch.sin(alpha) * torch.sin(gamma_star),
            b * torch.cos(alpha),
        ],
        dim=-1,
    )
    vector_c = torch.stack([zero, zero, c], dim=-1)
    return torch.stack([vector_a, vector_b, vector_c], dim=1)


def lattice_parameters(lattice: Tensor) -> tuple[Tensor, Tensor]:
    """Lengths (Å) and angles α, β, γ (degrees) of ``(B, 3, 3)`` cells, each ``(B, 3)``."""
    lengths = lattice.norm(dim=-1)
    pairs = ((1, 2), (0, 2), (0, 1))
    cosines = torch.stack(
        [
            (lattice[:, p] * lattice[:, q]).sum(-1) / (lengths[:, p] * lengths[:, q])
            for p, q in pairs
        ],
        dim=-1,
    )
    return lengths, torch.rad2deg(torch.arccos(cosines.clamp(-1.0, 1.0)))


def frac_to_cart(frac: Tensor, lattice: Tensor, batch: Tensor) -> Tensor:
    """Cartesian coordinates (Å), ``(N, 3)``, of fractional ``frac`` ``(N, 3)``."""
    return torch.einsum("ni,nij->nj", frac, lattice[batch])


def cart_to_frac(cart: Tensor, lattice: Tensor, batch: Tensor) -> Tensor:
    """Fractional coordinates, ``(N, 3)``, of Cartesian ``cart`` (Å) ``(N, 3)`` (not wrapped)."""
    return torch.einsum("ni,nij->nj", cart, torch.linalg.inv(lattice)[batch])


def _unit_images(device: torch.device) -> Tensor:
    r = torch.arange(-1, 2, device=device)
    return torch.cartesian_prod(r, r, r)


def min_image_vector(frac_from: Tensor, frac_to: Tensor, lattice: Tensor, batch: Tensor) -> Tensor:
    """Shortest periodic vector (Å) from each atom of ``frac_from`` to its copy in ``frac_to``.

    Exact for cells whose shortest translations are within one cell vector of the wrapped
    difference (every reasonably shaped cell). Shapes: ``(N, 3)`` in, ``(N, 3)`` out.
    """
    delta = frac_to - frac_from
    delta = delta - torch.round(delta)
    candidates = delta[:, None, :] + _unit_images(delta.device).to(delta.dtype)[None]
    cart = torch.einsum("nki,nij->nkj", candidates, lattice[batch])
    best = cart.norm(dim=-1).argmin(dim=1)
    return cart[torch.arange(cart.shape[0], device=cart.device), best]


def _image_ranges(lattice: Tensor, cutoff: float) -> Tensor:
    """Per cell, the largest |image| along each vector that can hold a neighbour, ``(B, 3)``.

    A pair within ``cutoff`` is at most ``cutoff / d_k`` apart in fractional coordinate ``k``
    (``d_k`` the spacing of the lattice planes spanned by the other two vectors); with the
    pair's fractional separation wrapped into ``[-0.5, 0.5]``, images up to
    ``floor(cutoff / d_k + 0.5)`` are needed: none but the nearest once cells are wider than
    twice the cutoff.
    """
    inverse = torch.linalg.inv(lattice)  # columns are the reciprocal vectors (no 2π)
    spacing = 1.0 / inverse.norm(dim=1)
    return torch.floor(cutoff / spacing + 0.5).long()


def _chunk_edges(
    frac: Tensor,
    lattice: Tensor,
    sizes: Tensor,
    starts: Tensor,
    reach: Tensor,
    cells: list[int],
    cutoff: float,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """All (centre, neighbour, image, vector) within ``cutoff`` in the cells ``cells``.

    The cells' atoms are laid out as ``(C, n, 3)``, padded to the largest cell's ``n``, so that
    every pair is one entry of a ``(C, n, n)`` array. Squared distances of all pair-image
    candidates come from the cells' metric tensors ``G = L Lᵀ``:
    ``|d + t|² = d G dᵀ + 2 (d G) tᵀ + t G tᵀ`` for fractional separation ``d`` and image
    ``t``, batched matrix products; Cartesian vectors are built only for the pairs kept.
    """
    device, dtype = frac.device, frac.dtype
    index = torch.tensor(cells, device=device)
    ranges = [
        torch.arange(-int(m), int(m) + 1, device=device) for m in reach[index].max(dim=0).values
    ]
    images = torch.cartesian_prod(*ranges)  # (M, 3)
    image_frac = images.to(dtype)
    size, lattice = sizes[index], lattice[index]
    slot = torch.arange(int(size.max()), device=device)
    real = slot[None, :] < size[:, None]  # (C, n): slots holding an atom
    atom = (starts[index][:, None] + slot[None, :]).clamp(max=frac.shape[0] - 1)  # (C, n)
    positions = frac[atom]  # (C, n, 3)
    delta = positions[:, None, :, :] - positions[:, :, None, :]  # (C, centre, neighbour, 3)
    shift = -torch.round(delta)
    delta = delta + shift  # wrapped into [-0.5, 0.5]
    metric = lattice @ lattice.transpose(1, 2)  # (C, 3, 3)
    delta_metric = delta @ metric[:, None]  # (C, n, n, 3)
    image_norms = torch.einsum("mi,cij,mj->cm", image_frac, metric, image_frac)  # (C, M)
    squared = (
        (delta_metric * delta).sum(dim=-1, keepdim=True)
        + 2.0 * delta_metric @ image_frac.T
        + image_norms[:, None, None, :]
    )  # (C, n, n, M)
    squared.masked_fill_(~(real[:, :, None] & real[:, None, :])[..., None], torch.inf)
    zero_image = int(torch.nonzero((images == 0).all(dim=1))[0, 0])
    squared[:, slot, slot, zero_image] = torch.inf  # an atom is not its own neighbour
    cell, centre, neighbour, which = (squared <= (cutoff * (1 + 1e-5)) ** 2).nonzero(as_tuple=True)
    shifted = delta[cell, centre, neighbour] + image_frac[which]
    vectors = (shifted[:, :, None] * lattice[cell]).sum(dim=1)
    exact = vectors.norm(dim=-1) <= cutoff
    cell, centre, neighbour, which = (t[exact] for t in (cell, centre, neighbour, which))
    return (
        atom[cell, centre],
        atom[cell, neighbour],
        images[which] + shift[cell, centre, neighbour].long(),
        vectors[exact],
    )


def radius_graph_pbc(
    frac: Tensor,
    lattice: Tensor,
    batch: Tensor,
    cutoff: float,
    *,
    max_neighbours: int | None = None,
) -> PeriodicGraph:
    """All periodic neighbours within ``cutoff`` of every atom of a batch of cells.

    Args:
        frac: Fractional coordinates, ``(N, 3)``; wrapped into ``[0, 1)`` here, so images refer
            to the wrapped positions.
        lattice: Cell vectors as rows (Å), ``(B, 3, 3)``.
        batch: Cell index of every atom, ``(N,)`` long, sorted.
        cutoff: Neighbour distance (Å); pairs at exactly ``cutoff`` are included.
        max_neighbours: When given, keep only this many nearest neighbours per centre.

    Returns:
        The graph, edges sorted by centre then distance.
    """
    frac = frac - torch.floor(frac)
    sizes = torch.bincount(batch, minlength=lattice.shape[0])
    starts = torch.cumsum(sizes, 0) - sizes
    reach = _image_ranges(lattice, cutoff)
    size_of, reach_of = sizes.tolist(), reach.tolist()

    def candidates(cells: list[int]) -> int:  # entries of _chunk_edges' padded (C, n, n, M)
        n = max(size_of[c] for c in cells)
        images = math.prod(2 * max(reach_of[c][k] for c in cells) + 1 for k in range(3))
        return len(cells) * n * n * images

    parts: list[tuple[Tensor, Tensor, Tensor, Tensor]] = []
    chunk: list[int] = []
    for b in range(lattice.shape[0]):
        if chunk and candidates([*chunk, b]) > MAX_CANDIDATES_PER_CHUNK:
            parts.append(_chunk_edges(frac, lattice, sizes, starts, reach, chunk, cutoff))
            chunk = []
        chunk.append(b)
    if chunk:
        parts.append(_chunk_edges(frac, lattice, sizes, starts, reach, chunk, cutoff))
    centre, neighbour, image, vector = (torch.cat(items) for items in zip(*parts, strict=True))
    distance = vector.norm(dim=-1)
    # by centre, then distance (ties in the order found): one sort on a combined key
    key = centre.double() * (2.0 * cutoff + 1.0) + distance.double()
    order = torch.argsort(key, stable=True)
    centre, neighbour, image, vector, distance = (
        t[order] for t in (centre, neighbour, image, vector, distance)
    )
    if max_neighbours is not None:
        counts = torch.bincount(centre, minlength=frac.shape[0])
        first = torch.cumsum(counts, 0) - counts
        rank = torch.arange(centre.numel(), device=centre.device) - first[centre]
        keep = rank < max_neighbours
        centre, neighbour, image, vector, distance = (
            t[keep] for t in (centre, neighbour, image, vector, distance)
        )
    return PeriodicGraph(centre, neighbour, image, vector, distance)


def triplets(graph: PeriodicGraph, num_nodes: int) -> Triplets:
    """Angle triplets ``k -> j -> i``: for every edge ``(i, j)`` each edge ``(j, k)`` but its reverse.

    Periodic images count as distinct atoms: ``k`` may be atom ``i`` in another image; only the
    edge leading back to the very position of ``i`` (``k == i`` and opposite image) is left out.
    ``graph`` must be sorted by centre, as :func:`radius_graph_pbc` returns it.
    """
    device = graph.centre.device
    counts = torch.bincount(graph.centre, minlength=num_nodes)
    first = torch.cumsum(counts, 0) - counts
    per_edge = counts[graph.neighbour]  # edges (j, k) available to each edge (i, j)
    idx_ji = torch.repeat_interleave(torch.arange(graph.num_edges, device=device), per_edge)
    start = torch.repeat_interleave(torch.cumsum(per_edge, 0) - per_edge, per_edge)
    idx_kj = first[graph.neighbour[idx_ji]] + torch.arange(idx_ji.numel(), device=device) - start
    back = (graph.neighbour[idx_kj] == graph.centre[idx_ji]) & (
        graph.image[idx_kj] + graph.image[idx_ji] == 0
    ).all(dim=1)
    idx_ji, idx_kj = idx_ji[~back], idx_kj[~back]
    v_ji, v_kj = graph.vector[idx_ji], graph.vector[idx_kj]
    angle = torch.atan2(torch.cross(v_ji, v_kj, dim=1).norm(dim=-1), (v_ji * v_kj).sum(dim=-1))
    return Triplets(idx_ji=idx_ji, idx_kj=idx_kj, angle=angle)
