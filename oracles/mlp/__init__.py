"""Machine-learned interatomic potential oracle: energies, relaxation and formation energies.

Everything goes through an ASE calculator: single points (energy, forces, stress), relaxation
of positions and cell with an ASE optimiser on :class:`ase.filters.FrechetCellFilter`, and
formation energies against elemental references relaxed with the same potential.

The potential is chosen with one option, ``model``:

- ``"chgnet"`` (default): CHGNet 0.3.0 (Deng et al., Nat. Mach. Intell. 5, 1031 (2023)),
  a universal potential trained on the Materials Project trajectories (PBE/PBE+U). Its weights
  ship inside the ``chgnet`` wheel, so it runs offline; it batches single points natively.
- ``"7net-0"``: SevenNet-0 (Park et al., J. Chem. Theory Comput. 20, 4857 (2024)), trained on
  the same data; weights in the ``sevenn`` wheel. As fast as CHGNet on CPU and somewhat closer
  to experiment on formation energies and elastic moduli in our checks, but without a batched
  path, and it collapses without bound when two atoms start closer than ~0.7 Å (caught as an
  exploding energy).
- ``"matgl:/path/to/model_dir"``: a matgl potential (M3GNet, TensorNet, ...; pretrained or
  fine-tuned for the campaign) saved with ``Potential.save(dir)``: a folder holding
  ``model.json``, ``model.pt`` and ``state.pt``. matgl ships no weights and this oracle never
  downloads any: pretrained matgl models must be copied into such a folder by hand.

Elemental references (for ``formation_energy_per_atom``) are relaxed once per (model, element)
and cached in-process and in a JSON file (``<cache_dir>/mlp_references.json``). The reference
structure of an element is, in this order: an entry of :data:`ELEMENT_REFERENCES` (molecules
for the gaseous elements, the ground-state allotropes of B, C, P, S, Se, Te, Ga and Mn), else
ASE's standard crystal of the element (``ase.build.bulk(symbol)``, e.g. fcc Ni, bcc Fe, hcp
Zr, diamond Si, A7 Sb), else the lowest in energy of fcc, bcc and hcp (recorded as such).
Formation energies against gas molecules (H, N, O, F, Cl, Br, I) use the isolated molecule
without the fitted corrections of the Materials Project (they are not comparable to its
corrected formation energies of oxides, nitrides, ...).

The device is ``AMLOOP_DEVICE`` (``auto``: cuda if available, else cpu) unless the ``device``
option says otherwise.

Modules:

- :mod:`amloop.oracles.mlp.backends`: The machine-learned potentials as ASE calculators: CHGNet (weights in its wheel), SevenNet 7net-0, a local matgl model folder; loaded once per process and device.
- :mod:`amloop.oracles.mlp.references`: Elemental reference energies for formation energies: the candidate states of each element (molecules, crystals), relaxed once per model and cached on disk.
- :mod:`amloop.oracles.mlp.relaxation`: Relaxation on a potential (FIRE or BFGS, positions and cell), watched for exploding energies, collapsing cells and fused atoms.
- :mod:`amloop.oracles.mlp.committee`: A committee of matgl potentials as one ASE calculator (mean and spread).
- :mod:`amloop.oracles.mlp.training`: Fitting the campaign's own potential: a committee of matgl potentials on force labels, resumable.
- :mod:`amloop.oracles.mlp.oracle`: The ``mlp`` oracle: energy, relaxation and formation energy with a machine-learned potential, batched where the model allows.
"""

from amloop.oracles.mlp.backends import (
    DEFAULT_MODEL,
    MATGL_FILES,
    Backend,
    chgnet_calculator,
    load_backend,
    resolve_device,
    sevennet_calculator,
)
from amloop.oracles.mlp.oracle import MLPOracle
from amloop.oracles.mlp.references import (
    ELEMENT_REFERENCES,
    MOLECULE_BOX,
    REFERENCE_FMAX,
    REFERENCE_MAX_STEPS,
    REFERENCE_PROTOCOL,
    ElementReference,
    ReferenceCache,
    ReferenceEnergy,
    default_cache_dir,
    reference_candidates,
)
from amloop.oracles.mlp.relaxation import Optimizer, Relaxation, energy_per_atom, relax

__all__ = [
    "DEFAULT_MODEL",
    "ELEMENT_REFERENCES",
    "MATGL_FILES",
    "MOLECULE_BOX",
    "REFERENCE_FMAX",
    "REFERENCE_MAX_STEPS",
    "REFERENCE_PROTOCOL",
    "Backend",
    "ElementReference",
    "MLPOracle",
    "Optimizer",
    "ReferenceCache",
    "ReferenceEnergy",
    "Relaxation",
    "chgnet_calculator",
    "default_cache_dir",
    "energy_per_atom",
    "load_backend",
    "reference_candidates",
    "relax",
    "resolve_device",
    "sevennet_calculator",
]
