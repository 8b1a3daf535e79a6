"""Electronic descriptors from a projected density of states, whatever code computed it.

A :class:`ProjectedDos` holds a total and an orbital- and m-resolved projected DOS on one
energy grid. It is built from eigenvalues and orbital populations
(:meth:`ProjectedDos.from_eigenstates`, the GPAW path of :mod:`oracles.dft`), or from a
pymatgen ``CompleteDos`` (:meth:`ProjectedDos.from_complete_dos`; :func:`read_vasprun` for a
VASP ``vasprun.xml`` written with ``LORBIT = 11``). :func:`describe` then computes the same
descriptors from either:

- occupied and unoccupied states of every element and orbital group (s, p, d, e_g, t2g)
  within a window around the Fermi level;
- the d-band centre and width of every transition metal (and of all of them together);
- the total DOS at the Fermi level;
- λ1 and λ2 of seed 000 (S1 E, eq. S2) for a metal (Co by default) and an anion (O):
  ``λ1 = N(M d, unocc) + N(M e_g, unocc) / N(X p, unocc)`` and
  ``λ2 = N(M d) × N(M e_g, unocc) / N(X p, unocc)``.

Conventions:

- energies in eV relative to the Fermi level E_F; DOS in states/eV. A spin-paired DOS is one
  channel that counts both spins (as VASP writes it with ``ISPIN = 1``), a spin-polarised one
  has two channels (up, down); every number below sums the channels.
- orbitals in the order of VASP's ``LORBIT = 11`` and of GPAW's real spherical harmonics
  (:data:`ORBITALS`): s, p_y, p_z, p_x, d_xy, d_yz, d_z², d_xz, d_x²−y². e_g is
  d_z² + d_x²−y², t2g is d_xy + d_yz + d_xz, both in the Cartesian axes of the cell: they are
  the crystal-field e_g and t2g only where the octahedra are aligned with those axes (rock
  salt in its conventional setting); in a disordered cell they are the same projections, as
  the seed's VASP analysis computes them.
- occupied means below E_F and unoccupied above it (the zero-temperature occupation of the
  broadened DOS), both within the window ``[emin, emax]`` (eV relative to E_F). "N(M d)" in
  λ2 is the whole window. The DOS is taken as zero outside its grid.
- per-element numbers are per atom: the element's DOS summed over its atoms and divided by
  their number. The ratio in λ1 and λ2 is therefore e_g states per metal atom over p states
  per anion atom, independent of the cell size and of the metal-to-anion ratio.
- the d-band centre is the first moment of the d-projected DOS over the window, the width the
  square root of its second central moment.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from pymatgen.core import Element

from amloop.state.schema import PropertyValue

if TYPE_CHECKING:
    from pymatgen.electronic_structure.dos import CompleteDos

#: Orbital channels of the projected DOS, in array order.
ORBITALS: tuple[str, ...] = ("s", "py", "pz", "px", "dxy", "dyz", "dz2", "dxz", "dx2-y2")
#: Orbital groups by name, as indices into :data:`ORBITALS`.
ORBITAL_GROUPS: dict[str, tuple[int, ...]] = {
    "s": (0,),
    "p": (1, 2, 3),
    "d": (4, 5, 6, 7, 8),
    "eg": (6, 8),
    "t2g": (4, 5, 7),
}
#: Unit of the total DOS at the Fermi level.
DOS_UNIT = "states/eV/atom"


def integrate(energies: np.ndarray, dos: np.ndarray, lo: float, hi: float) -> float:
    """Trapezoidal integral of ``dos`` over ``[lo, hi]``, linearly interpolated at the ends.

    Exact for a DOS that is linear between grid points; zero outside the grid.

    Args:
        energies: Increasing grid ``(n_E,)`` (eV).
        dos: Values on the grid ``(n_E,)`` (states/eV, or anything per eV).
        lo: Lower end (eV).
        hi: Upper end (eV).

    Returns:
        The integral (states).
    """
    lo, hi = max(lo, float(energies[0])), min(hi, float(energies[-1]))
    if hi <= lo:
        return 0.0
    inside = (energies > lo) & (energies < hi)
    x = np.concatenate(([lo], energies[inside], [hi]))
    y = np.concatenate(
        ([np.interp(lo, energies, dos)], dos[inside], [np.interp(hi, energies, dos)])
    )
    return float(np.trapezoid(y, x))


@dataclass(frozen=True)
class BandMoments:
    """Moments of a projected band within the window.

    Attributes:
        centre: First moment (eV relative to E_F).
        width: Square root of the second central moment (eV).
        states: States in the window (per atom for an element, per cell for a sum of elements).
    """

    centre: float
    width: float
    states: float


def band_moments(energies: np.ndarray, dos: np.ndarray, lo: float, hi: float) -> BandMoments:
    """Centre, width and number of states of ``dos`` (``(n_E,)``, states/eV) over ``[lo, hi]`` (eV).

    Raises:
        ValueError: no states in the window.
    """
    states = integrate(energies, dos, lo, hi)
    if states <= 0.0:
        raise ValueError(f"no states in [{lo}, {hi}] eV")
    centre = integrate(energies, energies * dos, lo, hi) / states
    second = integrate(energies, (energies - centre) ** 2 * dos, lo, hi) / states
    return BandMoments(centre=centre, width=float(np.sqrt(max(second, 0.0))), states=states)


@dataclass(frozen=True)
class ProjectedDos:
    """Total and projected DOS of one calculation on one grid.

    Attributes:
        energies: Grid ``(n_E,)`` (eV relative to the Fermi level, increasing).
        total: Total DOS ``(n_spins, n_E)`` (states/eV per cell; one channel = both spins).
        projected: Projected DOS ``(n_sites, 9, n_spins, n_E)`` (states/eV), orbitals as
            :data:`ORBITALS`.
        species: Element of every site, ``(n_sites,)``.
        fermi_level: E_F in the code's own energy reference (eV).
    """

    energies: np.ndarray
    total: np.ndarray
    projected: np.ndarray
    species: tuple[str, ...]
    fermi_level: float

    def __post_init__(self) -> None:
        n_spins, n_e = self.total.shape
        expected = (len(self.species), len(ORBITALS), n_spins, n_e)
        if self.energies.shape != (n_e,) or self.projected.shape != expected:
            raise ValueError(
                f"inconsistent shapes: energies {self.energies.shape}, total "
                f"{self.total.shape}, projected {self.projected.shape} (expected {expected})"
            )
        if n_spins not in (1, 2):
            raise ValueError(f"need 1 or 2 spin channels, not {n_spins}")

    @classmethod
    def from_eigenstates(
        cls,
        eigenvalues: np.ndarray,
        k_weights: np.ndarray,
        populations: np.ndarray,
        species: tuple[str, ...],
        fermi_level: float,
        energies: np.ndarray,
        *,
        width: float = 0.1,
    ) -> ProjectedDos:
        """Broaden eigenvalues weighted by orbital populations with Gaussians onto a grid.

        Args:
            eigenvalues: ``(n_spins, n_kpts, n_bands)`` (eV, same reference as ``fermi_level``).
            k_weights: ``(n_kpts,)`` weights of the k-points (sum 1).
            populations: ``(n_spins, n_kpts, n_bands, n_sites, 9)`` weight of every state in
                every site's orbitals (0 to 1).
            species: Element of every site.
            fermi_level: E_F (eV).
            energies: Grid ``(n_E,)`` (eV relative to E_F).
            width: Gaussian ``exp(-(E/width)²)`` width (eV).
        """
        n_spins, n_k, _ = eigenvalues.shape
        n_sites = populations.shape[3]
        degeneracy = 2.0 / n_spins
        total = np.zeros((n_spins, len(energies)))
        projected = np.zeros((n_sites, len(ORBITALS), n_spins, len(energies)))
        relative = eigenvalues - fermi_level
        reach = 8.0 * width  # Gaussians beyond this add < 1e-27 of a state to the grid
        for s in range(n_spins):
            near = (relative[s] > energies[0] - reach) & (relative[s] < energies[-1] + reach)
            e_x = relative[s][near]
            w_x = degeneracy * np.broadcast_to(k_weights[:, None], (n_k, near.shape[1]))[near]
            gauss_xe = np.exp(-(((energies[None, :] - e_x[:, None]) / width) ** 2))
            gauss_xe *= w_x[:, None] / (np.sqrt(np.pi) * width)
            total[s] = gauss_xe.sum(axis=0)
            pop_xc = populations[s][near].reshape(len(e_x), -1)
            projected[:, :, s] = (pop_xc.T @ gauss_xe).reshape(n_sites, len(ORBITALS), -1)
        return cls(energies, total, projected, tuple(species), float(fermi_level))

    @classmethod
    def from_complete_dos(cls, dos: CompleteDos) -> ProjectedDos:
        """The DOS of a pymatgen ``CompleteDos`` with m-resolved projections (``Orbital`` keys).

        Raises:
            ValueError: no projections, only l-resolved ones (VASP ``LORBIT = 10``) or a
                disordered site.
        """
        from pymatgen.electronic_structure.core import Orbital, Spin

        spins = [Spin.up, Spin.down] if Spin.down in dos.densities else [Spin.up]
        energies = np.asarray(dos.energies, dtype=float) - dos.efermi
        total = np.array([dos.densities[spin] for spin in spins], dtype=float)
        projected = np.zeros((len(dos.structure), len(ORBITALS), len(spins), len(energies)))
        if not dos.pdos:
            raise ValueError("the DOS has no projections; run VASP with LORBIT = 11")
        species = []
        for i, site in enumerate(dos.structure):
            if not site.is_ordered:
                raise ValueError(f"site {i} is disordered ({site.species}); need one element")
            species.append(site.specie.symbol)
            for orbital, by_spin in dos.pdos.get(site, {}).items():
                if not isinstance(orbital, Orbital):
                    raise ValueError(
                        f"projections are l-resolved ({orbital}), e_g needs m-resolved ones: "
                        "run VASP with LORBIT = 11"
                    )
                if orbital.value < len(ORBITALS):  # f channels are not used
                    for j, spin in enumerate(spins):
                        projected[i, orbital.value, j] = by_spin[spin]
        return cls(energies, total, projected, tuple(species), float(dos.efermi))

    def save(self, path: str | Path) -> Path:
        """Write the arrays to a compressed ``.npz`` (keys as the attributes, plus ``orbitals``)."""
        path = Path(path)
        np.savez_compressed(
            path,
            energies=self.energies,
            total=self.total,
            projected=self.projected,
            species=np.array(self.species),
            fermi_level=self.fermi_level,
            orbitals=np.array(ORBITALS),
        )
        return path

    @classmethod
    def load(cls, path: str | Path) -> ProjectedDos:
        """Read a file written by :meth:`save`."""
        with np.load(path, allow_pickle=False) as data:
            return cls(
                data["energies"],
                data["total"],
                data["projected"],
                tuple(str(s) for s in data["species"]),
                float(data["fermi_level"]),
            )

    @property
    def elements(self) -> list[str]:
        """Elements present, in order of first appearance."""
        return list(dict.fromkeys(self.species))

    def element_dos(self, element: str, group: str) -> np.ndarray:
        """DOS of an orbital group of ``element`` per atom, spins summed ``(n_E,)`` (states/eV).

        Raises:
            KeyError: ``element`` is not in the structure or ``group`` unknown.
        """
        sites = [i for i, el in enumerate(self.species) if el == element]
        if not sites:
            raise KeyError(f"no {element} in the structure ({', '.join(self.elements)})")
        orbitals = list(ORBITAL_GROUPS[group])
        return self.projected[sites][:, orbitals].sum(axis=(1, 2)).sum(axis=0) / len(sites)

    def dos_at_fermi(self) -> float:
        """Total DOS at E_F per atom (states/eV/atom, spins summed)."""
        return float(np.interp(0.0, self.energies, self.total.sum(axis=0))) / len(self.species)


@dataclass(frozen=True)
class LambdaDescriptors:
    """λ1 and λ2 of seed 000 (eq. S2) and the state counts they are made of.

    Attributes:
        metal: Element of the metal site.
        anion: Element of the anion.
        n_d: N(M d) in the whole window (states per metal atom).
        n_d_unoccupied: N(M d) above E_F (states per metal atom).
        n_eg_unoccupied: N(M d_x²−y² + d_z²) above E_F (states per metal atom).
        n_anion_p_unoccupied: N(X p) above E_F (states per anion atom).
    """

    metal: str
    anion: str
    n_d: float
    n_d_unoccupied: float
    n_eg_unoccupied: float
    n_anion_p_unoccupied: float

    @property
    def lambda1(self) -> float:
        """``N(M d, unocc) + N(M e_g, unocc) / N(X p, unocc)`` (dimensionless)."""
        return self.n_d_unoccupied + self.n_eg_unoccupied / self.n_anion_p_unoccupied

    @property
    def lambda2(self) -> float:
        """``N(M d) × N(M e_g, unocc) / N(X p, unocc)`` (dimensionless)."""
        return self.n_d * self.n_eg_unoccupied / self.n_anion_p_unoccupied


def lambda_descriptors(
    pdos: ProjectedDos, metal: str = "Co", anion: str = "O", *, emin: float, emax: float
) -> LambdaDescriptors:
    """The λ descriptors of ``metal`` against ``anion`` over the window ``[emin, emax]`` (eV).

    Raises:
        KeyError: ``metal`` or ``anion`` is not in the structure.
        ValueError: the anion has no unoccupied p states in the window (λ undefined).
    """
    e = pdos.energies
    d, eg, p = (
        pdos.element_dos(metal, "d"),
        pdos.element_dos(metal, "eg"),
        pdos.element_dos(anion, "p"),
    )
    result = LambdaDescriptors(
        metal=metal,
        anion=anion,
        n_d=integrate(e, d, emin, emax),
        n_d_unoccupied=integrate(e, d, 0.0, emax),
        n_eg_unoccupied=integrate(e, eg, 0.0, emax),
        n_anion_p_unoccupied=integrate(e, p, 0.0, emax),
    )
    if result.n_anion_p_unoccupied <= 0.0:
        raise ValueError(f"no unoccupied {anion} p states in [0, {emax}] eV: λ undefined")
    return result


def is_transition_metal(element: str) -> bool:
    """Whether ``element`` has a partly filled or valence d shell (groups 3-12, La, Ac)."""
    return bool(Element(element).is_transition_metal)


@dataclass(frozen=True)
class DosDescriptors:
    """Everything :func:`describe` computes from one DOS.

    Attributes:
        emin: Lower end of the window (eV relative to E_F).
        emax: Upper end of the window (eV relative to E_F).
        dos_at_fermi: Total DOS at E_F (states/eV/atom).
        counts: Element -> orbital group -> ``(occupied, unoccupied)`` states per atom in the
            window.
        d_bands: Transition metal -> moments of its d band (per atom).
        d_band: Moments of the d bands of all transition metals together (per cell), or
            ``None`` without transition metals.
        lambdas: λ descriptors, or ``None`` when the metal or anion is absent.
        notes: Why something was not computed.
    """

    emin: float
    emax: float
    dos_at_fermi: float
    counts: dict[str, dict[str, tuple[float, float]]]
    d_bands: dict[str, BandMoments]
    d_band: BandMoments | None
    lambdas: LambdaDescriptors | None
    notes: list[str] = field(default_factory=list)

    def properties(self) -> dict[str, PropertyValue]:
        """Stored properties: ``lambda1``, ``lambda2``, ``d_band_center``, ``d_band_width``,
        their per-element forms ``d_band_center_<El>``, ``d_band_width_<El>`` (eV) and
        ``dos_at_fermi`` (states/eV/atom)."""
        props = {"dos_at_fermi": PropertyValue(value=self.dos_at_fermi, unit=DOS_UNIT)}
        if self.d_band is not None:
            props["d_band_center"] = PropertyValue(value=self.d_band.centre, unit="eV")
            props["d_band_width"] = PropertyValue(value=self.d_band.width, unit="eV")
        for element, moments in self.d_bands.items():
            props[f"d_band_center_{element}"] = PropertyValue(value=moments.centre, unit="eV")
            props[f"d_band_width_{element}"] = PropertyValue(value=moments.width, unit="eV")
        if self.lambdas is not None:
            props["lambda1"] = PropertyValue(value=self.lambdas.lambda1, unit="1")
            props["lambda2"] = PropertyValue(value=self.lambdas.lambda2, unit="1")
        return props

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready summary (for provenance): window, counts, moments, λ inputs, notes."""
        lambdas = None
        if self.lambdas is not None:
            lambdas = {
                **asdict(self.lambdas),
                "lambda1": self.lambdas.lambda1,
                "lambda2": self.lambdas.lambda2,
            }
        return {
            "window_eV": [self.emin, self.emax],
            "dos_at_fermi_states_per_eV_atom": self.dos_at_fermi,
            "states_per_atom_occupied_unoccupied": {
                el: {group: list(pair) for group, pair in groups.items()}
                for el, groups in self.counts.items()
            },
            "d_bands_eV": {el: asdict(m) for el, m in self.d_bands.items()},
            "d_band_all_eV": asdict(self.d_band) if self.d_band is not None else None,
            "lambdas": lambdas,
            "notes": self.notes,
        }


def describe(
    pdos: ProjectedDos,
    *,
    metal: str = "Co",
    anion: str = "O",
    emin: float = -10.0,
    emax: float = 5.0,
) -> DosDescriptors:
    """All descriptors of ``pdos`` over the window ``[emin, emax]`` (eV relative to E_F).

    Args:
        pdos: The projected DOS.
        metal: Metal site of λ1 and λ2 (element symbol).
        anion: Anion of λ1 and λ2 (element symbol).
        emin: Lower end of the window (eV, < 0).
        emax: Upper end of the window (eV, > 0).

    Raises:
        ValueError: a window that does not contain E_F.
    """
    if not emin < 0.0 < emax:
        raise ValueError(f"the window [{emin}, {emax}] eV must contain E_F = 0")
    e = pdos.energies
    notes: list[str] = []
    counts = {
        el: {
            group: (
                integrate(e, pdos.element_dos(el, group), emin, 0.0),
                integrate(e, pdos.element_dos(el, group), 0.0, emax),
            )
            for group in ORBITAL_GROUPS
        }
        for el in pdos.elements
    }
    d_bands: dict[str, BandMoments] = {}
    for el in filter(is_transition_metal, pdos.elements):
        try:
            d_bands[el] = band_moments(e, pdos.element_dos(el, "d"), emin, emax)
        except ValueError as exc:
            notes.append(f"{el} d band: {exc}")
    d_band = None
    if d_bands:
        sites = [i for i, el in enumerate(pdos.species) if el in d_bands]
        d_all = pdos.projected[sites][:, list(ORBITAL_GROUPS["d"])].sum(axis=(0, 1, 2))
        d_band = band_moments(e, d_all, emin, emax)
    lambdas = None
    if metal in pdos.species and anion in pdos.species:
        try:
            lambdas = lambda_descriptors(pdos, metal, anion, emin=emin, emax=emax)
        except ValueError as exc:
            notes.append(str(exc))
    else:
        notes.append(f"λ1, λ2 need {metal} and {anion}; the structure has {pdos.elements}")
    return DosDescriptors(
        emin=emin,
        emax=emax,
        dos_at_fermi=pdos.dos_at_fermi(),
        counts=counts,
        d_bands=d_bands,
        d_band=d_band,
        lambdas=lambdas,
        notes=notes,
    )


def read_vasprun(path: str | Path) -> ProjectedDos:
    """The projected DOS of a VASP run from its ``vasprun.xml`` (written with ``LORBIT = 11``).

    Raises:
        ValueError: the electronic SCF did not converge, or no m-resolved projections.
    """
    from pymatgen.io.vasp import Vasprun

    run = Vasprun(str(path), parse_potcar_file=False, parse_eigen=False)
    if not run.converged_electronic:
        raise ValueError(f"{path}: the electronic SCF of the last ionic step did not converge")
    return ProjectedDos.from_complete_dos(run.complete_dos)
