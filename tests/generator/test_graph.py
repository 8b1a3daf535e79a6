"""Periodic radius graph and triplets in torch against pymatgen's neighbour list."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from pymatgen.core import Lattice, Structure

import amloop.generator.graph as graph_module
from amloop.generator.graph import (
    lattice_from_parameters,
    lattice_parameters,
    min_image_vector,
    radius_graph_pbc,
    triplets,
)


def random_cells(seed: int) -> list[Structure]:
    """Skewed random cells of 1-12 atoms, some smaller than the cutoff (several images)."""
    rng = np.random.default_rng(seed)
    cells = []
    for n in (1, 5, 12, 3):
        lattice = Lattice.from_parameters(*rng.uniform(2.5, 8.0, 3), *rng.uniform(60, 120, 3))
        cells.append(Structure(lattice, ["Ni"] * n, rng.random((n, 3))))
    return cells


def batched(cells: list[Structure]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    frac = torch.tensor(np.concatenate([c.frac_coords for c in cells]), dtype=torch.float64)
    lattice = torch.tensor(np.stack([c.lattice.matrix for c in cells]), dtype=torch.float64)
    batch = torch.repeat_interleave(torch.arange(len(cells)), torch.tensor([len(c) for c in cells]))
    return frac, lattice, batch


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_radius_graph_equals_pymatgen_neighbor_list(seed: int) -> None:
    cells, cutoff = random_cells(seed), 5.5
    graph = radius_graph_pbc(*batched(cells), cutoff)
    offset = 0
    for cell in cells:
        centres, points, images, distances = cell.get_neighbor_list(cutoff)
        expected = {
            (int(c) + offset, int(p) + offset, *map(int, im)): d
            for c, p, im, d in zip(centres, points, images, distances, strict=True)
        }
        mine = (graph.centre >= offset) & (graph.centre < offset + len(cell))
        got = {
            (int(c), int(p), *map(int, im)): float(d)
            for c, p, im, d in zip(
                graph.centre[mine],
                graph.neighbour[mine],
                graph.image[mine],
                graph.distance[mine],
                strict=True,
            )
        }
        assert got.keys() == expected.keys()
        assert [got[k] for k in expected] == pytest.approx(list(expected.values()), abs=1e-9)
        offset += len(cell)


def test_chunking_does_not_change_the_graph(monkeypatch: pytest.MonkeyPatch) -> None:
    inputs = batched(random_cells(8) + random_cells(9))
    whole = radius_graph_pbc(*inputs, 5.0)
    monkeypatch.setattr(graph_module, "MAX_CANDIDATES_PER_CHUNK", 600)  # a few cells per chunk
    chunked = radius_graph_pbc(*inputs, 5.0)
    for name in ("centre", "neighbour", "image", "distance"):
        assert torch.equal(getattr(whole, name), getattr(chunked, name)), name


def test_vectors_point_to_the_neighbour_image() -> None:
    cells = random_cells(3)
    frac, lattice, batch = batched(cells)
    graph = radius_graph_pbc(frac, lattice, batch, 4.0)
    expected = torch.einsum(
        "ei,eij->ej",
        frac[graph.neighbour] + graph.image - frac[graph.centre],
        lattice[batch[graph.centre]],
    )
    assert torch.allclose(graph.vector, expected)
    assert torch.allclose(graph.distance, graph.vector.norm(dim=-1))


def test_max_neighbours_keeps_the_nearest_sorted() -> None:
    frac, lattice, batch = batched(random_cells(4))
    full = radius_graph_pbc(frac, lattice, batch, 6.0)
    capped = radius_graph_pbc(frac, lattice, batch, 6.0, max_neighbours=5)
    for atom in range(frac.shape[0]):
        nearest = full.distance[full.centre == atom][:5]
        assert torch.allclose(capped.distance[capped.centre == atom], nearest)
        assert torch.all(nearest[1:] >= nearest[:-1])


def test_triplets_are_all_edge_pairs_but_the_reverse() -> None:
    frac, lattice, batch = batched(random_cells(5)[:2])
    graph = radius_graph_pbc(frac, lattice, batch, 4.0)
    found = triplets(graph, frac.shape[0])
    expected = set()
    for e1, e2 in itertools.product(range(graph.num_edges), repeat=2):
        if graph.centre[e2] != graph.neighbour[e1]:
            continue
        reverse = graph.neighbour[e2] == graph.centre[e1] and bool(
            torch.all(graph.image[e2] == -graph.image[e1])
        )
        if not reverse:
            expected.add((e1, e2))
    assert set(zip(found.idx_ji.tolist(), found.idx_kj.tolist(), strict=True)) == expected
    v1, v2 = graph.vector[found.idx_ji], graph.vector[found.idx_kj]
    cosines = (v1 * v2).sum(-1) / (v1.norm(dim=-1) * v2.norm(dim=-1))
    assert torch.allclose(torch.cos(found.angle), cosines, atol=1e-9)


def test_lattice_parameters_round_trip_like_pymatgen() -> None:
    cells = random_cells(6)
    _, lattice, _ = batched(cells)
    lengths, angles = lattice_parameters(lattice)
    rebuilt = lattice_from_parameters(lengths, angles)
    for cell, matrix in zip(cells, rebuilt, strict=True):
        assert np.allclose(cell.lattice.abc, lengths.numpy()[cells.index(cell)])
        reference = Lattice.from_parameters(*cell.lattice.abc, *cell.lattice.angles).matrix
        assert np.allclose(matrix.numpy(), reference, atol=1e-9)


def test_min_image_vector_is_the_shortest_translation() -> None:
    cells = random_cells(7)
    frac, lattice, batch = batched(cells)
    shifted = frac + torch.randn(
        frac.shape, generator=torch.Generator().manual_seed(0), dtype=frac.dtype
    )
    vector = min_image_vector(frac, shifted, lattice, batch)
    for atom in range(frac.shape[0]):
        cell = cells[int(batch[atom])]
        brute = min(
            np.linalg.norm(
                cell.lattice.get_cartesian_coords(
                    (shifted[atom] - frac[atom]).numpy() + np.array(image)
                )
            )
            for image in itertools.product(range(-4, 5), repeat=3)
        )
        assert float(vector[atom].norm()) == pytest.approx(brute, abs=1e-9)
