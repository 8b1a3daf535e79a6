"""GPAW ground state and orbital populations of one structure: the DFT oracle's worker process.

Run by :class:`oracles.dft.DftOracle` in the evaluation's work directory as
``[mpirun -np N] python3 -s gpaw_runner.py input.json``, under an interpreter that has GPAW
(Debian's ``gpaw`` package: ``/usr/bin/python3``). It imports only GPAW, ASE and NumPy, never
amloop, so it runs whatever environment amloop itself lives in.

Reads ``input.json`` (made by :meth:`oracles.dft.DftOracle.input_spec`), runs the
self-consistent field and writes, on MPI rank 0:

- ``gpaw.txt``: GPAW's own log;
- ``result.json``: ``status`` (``"ok"`` or ``"scf_not_converged"``), energies (eV), Fermi level
  (eV), magnetic moments (μB), SCF iterations, bands, k-points, versions, wall time (s);
- ``eigenstates.npz`` (``"ok"`` only): ``eigenvalues`` ``(n_spins, n_kpts, n_bands)`` (eV,
  GPAW's reference) and ``k_weights`` ``(n_kpts,)`` (sum 1) of the irreducible k-points,
  ``populations`` ``(n_spins, n_kpts, n_bands, n_atoms, 9)``: the weight of each Kohn-Sham
  state in the real spherical harmonics s, p_y, p_z, p_x, d_xy, d_yz, d_z², d_xz, d_x²−y²
  (GPAW's order, the same as VASP's) inside each atom's PAW sphere, symmetrised over the
  point group so that weighted sums over the k-points are Brillouin-zone sums.

Populations are the PAW one-centre expansion of the all-electron state inside the augmentation
sphere (radius ``max(rcut_j)`` of the setup): for atom ``a`` and channel ``(l, m)``,
``Σ_ij P_i* P_j ⟨φ_i|φ_j⟩_sphere`` over the partial waves ``j`` of angular momentum ``l``,
bound and unbound, with ``P_i = ⟨p̃_i|ψ̃⟩`` the projections. Unlike GPAW's ``raw_pdos`` (the sum
of ``|P_i|²`` over bound projectors, which double counts overlapping partial waves and can
exceed one state per state) these are charges inside the spheres: between 0 and 1 per state,
the interstitial outside all spheres being the missing part, as in VASP's ``LORBIT = 11`` PDOS.
This holds while the partial waves describe the state: for the valence and semicore states,
not for unconverged bands tens of eV above the Fermi level (measured on Ni: ≤ 1 + 1e-3 up to
E_F + 20 eV, up to 1.28 beyond E_F + 28 eV, far outside any DOS window).
"""

from __future__ import annotations

import itertools
import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import ase
import gpaw
import numpy as np
from ase import Atoms, units
from gpaw import GPAW, PW, FermiDirac, KohnShamConvergenceError
from gpaw.mpi import world

if TYPE_CHECKING:
    from gpaw.setup import Setup

#: ``(l, m)`` of the nine channels, in the order of the ``populations`` array.
CHANNELS = ((0, 0), (1, 0), (1, 1), (1, 2), (2, 0), (2, 1), (2, 2), (2, 3), (2, 4))


def build_atoms(spec: dict[str, Any]) -> Atoms:
    """The periodic structure of the input, with its initial magnetic moments (μB)."""
    atoms = Atoms(symbols=spec["symbols"], positions=spec["positions"], cell=spec["cell"], pbc=True)
    if spec["spinpol"]:
        atoms.set_initial_magnetic_moments(spec["magmoms"])
    return atoms


def build_calculator(spec: dict[str, Any]) -> GPAW:
    """A GPAW calculator with the input's settings (energies in eV, lengths in Å)."""
    mode = PW(spec["ecut"]) if spec["mode"] == "pw" else "lcao"
    extra = {"basis": spec["basis"]} if spec["mode"] == "lcao" else {}
    if spec.get("grid_spacing") is not None:
        extra["h"] = spec["grid_spacing"]
    return GPAW(
        mode=mode,
        xc=spec["xc"],
        kpts={"size": spec["kpts"], "gamma": True},
        occupations=FermiDirac(spec["smearing"]),
        spinpol=spec["spinpol"],
        nbands=spec["nbands"],
        maxiter=spec["maxiter"],
        convergence=spec["convergence"],
        mixer=spec["mixer"],
        txt="gpaw.txt",
        **extra,
    )


def sphere_overlaps(setup: Setup) -> np.ndarray:
    """``⟨φ_i|φ_j⟩`` of the radial all-electron partial waves inside the PAW sphere ``(nj, nj)``."""
    data = setup.data
    rgd = data.rgd
    gcut = rgd.ceil(max(data.rcut_j))
    r2dr_g = rgd.r_g[:gcut] ** 2 * rgd.dr_g[:gcut]
    phi_jg = np.array([phi_g[:gcut] for phi_g in data.phi_jg])
    return (phi_jg * r2dr_g) @ phi_jg.T


def channel_indices(setup: Setup) -> list[tuple[list[int], list[int]]]:
    """For each of :data:`CHANNELS`: projector indices ``i`` and partial-wave indices ``j``."""
    offsets = np.cumsum([0] + [2 * ell + 1 for ell in setup.l_j])
    channels = []
    for ell, m in CHANNELS:
        js = [j for j, ell_j in enumerate(setup.l_j) if ell_j == ell]
        channels.append(([int(offsets[j]) + m for j in js], js))
    return channels


def populations(calc: GPAW) -> np.ndarray:
    """PAW-sphere populations ``(n_spins, n_kpts, n_bands, n_atoms, 9)`` (rank 0; else empty).

    The k-points are the irreducible ones; m-resolved weights are not invariant under the
    point group, so each state's projector density matrix ``P_i* P_j`` is symmetrised as GPAW
    symmetrises atomic density matrices (``Setup.symmetrize``: the mean of ``R D_b R^T`` over
    the operations, ``b`` the atom each one maps onto ``a``), which makes the k-weighted sum
    the sum over the whole Brillouin zone.
    """
    wfs = calc.wfs
    setups = wfs.setups
    a_sa = np.asarray(wfs.kd.symmetry.a_sa)  # (n_ops, n_atoms)
    starts = np.cumsum([0] + [setup.ni for setup in setups])
    overlaps = [sphere_overlaps(setup) for setup in setups]
    channels = [channel_indices(setup) for setup in setups]
    nk, nb = wfs.kd.nibzkpts, wfs.bd.nbands
    out = np.zeros((wfs.nspins, nk, nb, len(setups), len(CHANNELS)))
    for s in range(wfs.nspins):
        for k in range(nk):
            P_nI = wfs.collect_projections(k, s)  # collective; the full array on rank 0 only
            if world.rank != 0:
                continue
            D_anii = [
                P_nI[:, i1:i2].conj()[:, :, None] * P_nI[:, None, i1:i2]
                for i1, i2 in itertools.pairwise(starts)
            ]
            for a, setup in enumerate(setups):
                D_snii = np.array([D_anii[b] for b in a_sa[:, a]])
                R_s1ii = setup.R_sii[:, None]
                D_nii = (R_s1ii @ D_snii @ R_s1ii.transpose(0, 1, 3, 2)).mean(axis=0)
                for c, (indices, js) in enumerate(channels[a]):
                    O_jj = overlaps[a][np.ix_(js, js)]
                    D_njj = D_nii[:, indices][:, :, indices]
                    out[s, k, :, a, c] = np.einsum("nij,ij->n", D_njj, O_jj).real
    return out


def exit_when_parent_dies() -> None:
    """Exit (status 3) as soon as standard input reaches end-of-file.

    The oracle keeps a pipe to the worker's standard input open and never writes to it; when
    the oracle's process ends, however it ends, the pipe closes and this worker stops instead
    of running on unattended. mpirun forwards standard input to rank 0; when rank 0 exits
    without finalising MPI, mpirun stops the other ranks.
    """
    if world.rank == 0:

        def watch() -> None:
            while os.read(0, 4096):  # the raw descriptor: no buffer lock at shutdown
                pass
            os._exit(3)

        threading.Thread(target=watch, daemon=True).start()


def write_json(path: str, data: dict[str, Any]) -> None:
    """Write ``data`` as JSON on rank 0."""
    if world.rank == 0:
        Path(path).write_text(json.dumps(data, indent=1))


def main(input_file: str) -> None:
    """Run the calculation described by ``input_file`` and write its results next to it."""
    started = time.perf_counter()
    exit_when_parent_dies()
    spec = json.loads(Path(input_file).read_text())
    atoms = build_atoms(spec)
    calc = build_calculator(spec)
    atoms.calc = calc
    info = {
        "versions": {"gpaw": gpaw.__version__, "ase": ase.__version__, "numpy": np.__version__},
        "processes": world.size,
    }
    try:
        energy = atoms.get_potential_energy()
    except KohnShamConvergenceError as exc:
        write_json(
            "result.json",
            {
                **info,
                "status": "scf_not_converged",
                "message": str(exc),
                "iterations": calc.scf.niter if calc.scf is not None else None,
                "wall_s": time.perf_counter() - started,
            },
        )
        return
    wfs = calc.wfs
    nk = wfs.kd.nibzkpts
    eigenvalues = np.array(
        [[calc.get_eigenvalues(kpt=k, spin=s) for k in range(nk)] for s in range(wfs.nspins)]
    )
    pops = populations(calc)
    spinpol = wfs.nspins == 2
    if world.rank == 0:
        np.savez_compressed(
            "eigenstates.npz",
            eigenvalues=eigenvalues,
            k_weights=np.asarray(wfs.kd.weight_k),
            populations=pops,
            species=np.array(atoms.get_chemical_symbols()),
        )
    write_json(
        "result.json",
        {
            **info,
            "status": "ok",
            "energy_eV": float(energy),
            "free_energy_eV": float(atoms.get_potential_energy(force_consistent=True)),
            "fermi_level_eV": float(calc.get_fermi_level()),
            "magnetic_moment_muB": float(calc.get_magnetic_moment()) if spinpol else 0.0,
            "magnetic_moments_muB": (
                calc.get_magnetic_moments().tolist() if spinpol else [0.0] * len(atoms)
            ),
            "iterations": int(calc.get_number_of_iterations()),
            # force labels for the campaign's own potentials (free energy: forces are its gradient)
            "forces_eV_per_A": atoms.get_forces().tolist(),
            "stress_GPa": stress_GPa(atoms) if spec["mode"] == "pw" else None,
            "nbands": int(wfs.bd.nbands),
            "nkpts_ibz": int(nk),
            "nspins": int(wfs.nspins),
            "valence_electrons": float(wfs.nvalence),
            "wall_s": time.perf_counter() - started,
        },
    )


def stress_GPa(atoms: Atoms) -> list[float]:
    """The converged calculation's stress, Voigt ``xx, yy, zz, yz, xz, xy`` (GPa, ASE's sign;
    plane-wave mode only)."""
    return (atoms.get_stress(voigt=True) / units.GPa).tolist()


if __name__ == "__main__":
    main(sys.argv[1])
