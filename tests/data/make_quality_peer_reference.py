"""Make the Si sets and seed 002's own distances between them for
``tests/generator/test_quality_vs_peer.py``.

The sets: 64-atom diamond Si cells rattled with Gaussian displacements (two halves of one set at
σ = 0.25 Å, one at σ = 0.10 Å) and cells of randomly placed atoms (no two closer than 2.1 Å),
three cells each, drawn with numpy's PCG64 from fixed seeds. The distances: d_rdf, d_angle and
d_motif between the first set and each other, computed as Dismai-Bench's a-Si scripts compute
them (benchmark/a_Si/{rdf,bond_angle,motif}): vasppy's RDF of the 2x2x2 supercell, CrystalNN
bond angles binned with ``pandas.cut``, matminer's ``CrystalNNFingerprint``; each averaged over
a set's structures, then the Euclidean distance of the averages.

vasppy and matminer are not amloop dependencies; install them beside it, without theirs:

    pip install --no-deps --target /tmp/peer matminer==0.10.1 vasppy
    PYTHONPATH=/tmp/peer python tests/data/make_quality_peer_reference.py
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pandas as pd
from ase.io import write
from pymatgen.core import Lattice, Structure
from pymatgen.io.ase import AseAtomsAdaptor

HERE = Path(__file__).parent
SETS_FILE = HERE / "si_quality_sets.extxyz"
PEER_FILE = HERE / "si_quality_peer.json"
N_CELLS = 3
A_SI = 5.431  # Å


def diamond_si() -> Structure:
    cell = Structure.from_spacegroup("Fd-3m", Lattice.cubic(A_SI), ["Si"], [[0, 0, 0]])
    cell.make_supercell(2)
    return cell


def rattled(sigma: float, seed: int) -> Structure:
    cell = diamond_si()
    rng = np.random.default_rng(seed)
    cart = cell.cart_coords + rng.normal(0.0, sigma, size=cell.cart_coords.shape)
    return Structure(cell.lattice, cell.species, cart, coords_are_cartesian=True)


def random_cell(seed: int, min_distance: float = 2.1) -> Structure:
    lattice = diamond_si().lattice
    rng = np.random.default_rng(seed)
    frac: list[np.ndarray] = []
    while len(frac) < 64:
        trial = rng.random(3)
        if frac:
            delta = np.asarray(frac) - trial
            delta -= np.round(delta)
            if np.linalg.norm(delta @ lattice.matrix, axis=1).min() < min_distance:
                continue
        frac.append(trial)
    return Structure(lattice, ["Si"] * 64, np.asarray(frac))


def make_sets() -> dict[str, list[Structure]]:
    return {
        "rattled_a": [rattled(0.25, seed) for seed in range(N_CELLS)],
        "rattled_b": [rattled(0.25, seed) for seed in range(100, 100 + N_CELLS)],
        "rattled_small": [rattled(0.10, seed) for seed in range(200, 200 + N_CELLS)],
        "random": [random_cell(seed) for seed in range(300, 300 + N_CELLS)],
    }


def peer_rdf(structure: Structure) -> np.ndarray:
    from vasppy.rdf import RadialDistributionFunction

    supercell = structure.copy()
    supercell.make_supercell(2)
    indices = list(range(len(supercell)))
    return np.asarray(RadialDistributionFunction([supercell], indices, indices).rdf)


def peer_angles(structure: Structure) -> np.ndarray:
    from pymatgen.analysis.local_env import CrystalNN

    nn = CrystalNN(distance_cutoffs=None, x_diff_weight=0, porous_adjustment=False)
    angles = []
    for index, site in enumerate(structure):
        vectors = [entry["site"].coords - site.coords for entry in nn.get_nn_info(structure, index)]
        for u, v in itertools.combinations(vectors, 2):
            cosine = np.dot(u, v) / (np.linalg.norm(u) * np.linalg.norm(v))
            angles.append(np.degrees(np.arccos(np.clip(cosine, -1.0, 1.0))))
    edges = np.arange(0.0, 180.5, 0.5)
    binned = pd.cut(pd.Series(angles), edges, include_lowest=True)
    return binned.value_counts(normalize=True, sort=False).to_numpy()


def peer_motifs(structure: Structure) -> np.ndarray:
    from matminer.featurizers.site.fingerprint import CrystalNNFingerprint

    featurizer = CrystalNNFingerprint.from_preset("ops", cation_anion=False)
    return np.mean([featurizer.featurize(structure, i) for i in range(len(structure))], axis=0)


def main() -> None:
    sets = make_sets()
    frames = []
    for name, cells in sets.items():
        for cell in cells:
            atoms = AseAtomsAdaptor.get_atoms(cell)
            atoms.info["set"] = name
            frames.append(atoms)
    write(SETS_FILE, frames, format="extxyz")
    descriptors = {
        name: {
            "rdf": np.mean([peer_rdf(c) for c in cells], axis=0),
            "angle": np.mean([peer_angles(c) for c in cells], axis=0),
            "motif": np.mean([peer_motifs(c) for c in cells], axis=0),
        }
        for name, cells in sets.items()
    }
    reference = descriptors["rattled_a"]
    distances = {
        name: {
            metric: float(np.linalg.norm(reference[metric] - values[metric]))
            for metric, values in [(m, descriptors[name]) for m in ("rdf", "angle", "motif")]
        }
        for name in sets
        if name != "rattled_a"
    }
    PEER_FILE.write_text(json.dumps(distances, indent=2) + "\n")
    print(json.dumps(distances, indent=2))


if __name__ == "__main__":
    main()
