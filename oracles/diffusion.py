"""Diffusivity from mean-squared displacements, and Arrhenius fits of D(T).

The self-diffusion coefficient of a species follows from the long-time slope of its
mean-squared displacement (seed 000, eq. S1; Einstein relation in three dimensions):

    ⟨|r(t) − r(0)|²⟩ = 6 D t.

:func:`fit_diffusivities` averages the MSD over every atom of a species and over every time
origin of the trajectory (the FFT algorithm of Kneller et al., Comput. Phys. Commun. 91, 191
(1995), so all origins cost O(F log F)), removes the centre-of-mass drift of the whole cell,
fits a straight line with intercept over a window of lag times that skips the ballistic start,
and takes the statistical uncertainty from block averaging: the trajectory is cut into
contiguous blocks, each block gives its own D over the same lag window, and the standard error
of the block values is the uncertainty of D.

:func:`arrhenius_fit` fits ``ln D = ln D0 − E_a / (k_B T)`` by weighted least squares over
several temperatures (seed 003) and propagates the covariance to E_a and to D(T).

Units: positions in Å, times in ps, D in cm²/s (1 Å²/ps = 1e-4 cm²/s), E_a in eV, T in K.
pymatgen-analysis-diffusion's ``DiffusionAnalyzer`` does a similar fit from pymatgen structures,
but weights lag times by its own observation counts and has no block-averaged uncertainty, so
this module stays on numpy.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from ase.units import kB as BOLTZMANN_EV_PER_K

from amloop.state.units import unit_factor

#: 1 Å²/ps in cm²/s.
A2_PER_PS_TO_CM2_PER_S = unit_factor("Å^2/ps")
#: Atoms transformed together in :func:`mean_squared_displacement`.
_ATOMS_PER_FFT = 64


def mean_squared_displacement(positions: np.ndarray, max_lag: int | None = None) -> np.ndarray:
    """MSD of every atom averaged over all time origins.

    Args:
        positions: ``(n_frames, n_atoms, 3)`` unwrapped positions (Å) at equal time intervals.
        max_lag: Largest lag (frames) returned; defaults to ``n_frames - 1``.

    Returns:
        ``(max_lag + 1, n_atoms)`` MSD (Å²); row ``m`` is ``⟨|r(t + m) − r(t)|²⟩_t``.
    """
    n_frames, n_atoms = positions.shape[:2]
    max_lag = n_frames - 1 if max_lag is None else max_lag
    if not 0 <= max_lag < n_frames:
        raise ValueError(f"max_lag must be in [0, {n_frames - 1}], not {max_lag}")
    msd = np.empty((max_lag + 1, n_atoms))
    for first in range(0, n_atoms, _ATOMS_PER_FFT):  # bounds the memory of the FFTs
        chunk = slice(first, first + _ATOMS_PER_FFT)
        msd[:, chunk] = _msd_all_origins(positions[:, chunk])[: max_lag + 1]
    return msd


def _msd_all_origins(positions: np.ndarray) -> np.ndarray:
    """``MSD(m) = S1(m) − 2 S2(m)``: S2 the positional autocorrelation (by FFT), S1 a running
    sum of ``r²`` (Kneller et al.); ``(n_frames, n_atoms)``."""
    n_frames = positions.shape[0]
    spectrum = np.fft.rfft(positions, n=2 * n_frames, axis=0)
    autocorrelation = np.fft.irfft(spectrum * spectrum.conj(), axis=0)[:n_frames].sum(axis=-1)
    counts = (n_frames - np.arange(n_frames))[:, None]
    squared = (positions**2).sum(axis=-1)
    total = 2.0 * squared.sum(axis=0)
    s1 = np.empty_like(squared)
    for lag in range(n_frames):
        if lag > 0:
            total = total - squared[lag - 1] - squared[n_frames - lag]
        s1[lag] = total / counts[lag]
    return s1 - 2.0 * autocorrelation / counts


def remove_drift(positions: np.ndarray, masses: np.ndarray) -> np.ndarray:
    """Positions relative to the cell's centre of mass (its drift subtracted frame by frame).

    Args:
        positions: ``(n_frames, n_atoms, 3)`` unwrapped positions (Å).
        masses: ``(n_atoms,)`` atomic masses (amu).
    """
    weights = masses / masses.sum()
    centre = np.einsum("fai,a->fi", positions, weights)
    return positions - (centre - centre[0])[:, None, :]


@dataclass(frozen=True)
class DiffusionFit:
    """Diffusivity of one species from one trajectory.

    Attributes:
        species: Element symbol, or ``"all"`` for every atom.
        diffusivity: D (cm²/s) from the MSD over all time origins of the whole trajectory.
        uncertainty: Standard error of D (cm²/s) from the scatter of the block values.
        block_diffusivities: D (cm²/s) of each block.
        fit_start_ps: First lag time of the fitted window (ps).
        fit_end_ps: Last lag time of the fitted window (ps).
        msd_exponent: Slope of log MSD against log t over the window: 1 for diffusion, near 0
            for atoms vibrating in place.
        msd_at_fit_end: MSD (Å²) at the end of the window.
    """

    species: str
    diffusivity: float
    uncertainty: float
    block_diffusivities: tuple[float, ...]
    fit_start_ps: float
    fit_end_ps: float
    msd_exponent: float
    msd_at_fit_end: float


def _slope_and_exponent(lags_ps: np.ndarray, msd: np.ndarray) -> tuple[float, float]:
    """Least-squares slope (Å²/ps) of ``msd`` against ``lags_ps`` and the log-log exponent."""
    slope = float(np.polyfit(lags_ps, msd, 1)[0])
    positive = msd > 0
    exponent = (
        float(np.polyfit(np.log(lags_ps[positive]), np.log(msd[positive]), 1)[0])
        if positive.sum() >= 2
        else 0.0
    )
    return slope, exponent


def fit_lags(n_frames: int, n_blocks: int, fit_window: tuple[float, float]) -> tuple[int, int]:
    """First and last fitted lag (frames) for ``n_frames`` frames cut into ``n_blocks`` blocks.

    Raises:
        ValueError: bad blocks or window, or fewer than three lags in the window.
    """
    lo, hi = fit_window
    if n_blocks < 2 or not 0.0 < lo < hi <= 1.0:
        raise ValueError("need n_blocks >= 2 and 0 < fit_window[0] < fit_window[1] <= 1")
    block = n_frames // n_blocks
    first, last = round(lo * (block - 1)), round(hi * (block - 1))
    if last - first < 2:
        raise ValueError(f"{n_frames} frames are too few for {n_blocks} blocks and {fit_window}")
    return first, last


def fit_diffusivities(
    positions: np.ndarray,
    symbols: Sequence[str],
    masses: np.ndarray,
    interval_ps: float,
    *,
    n_blocks: int = 5,
    fit_window: tuple[float, float] = (0.2, 0.6),
) -> dict[str, DiffusionFit]:
    """Diffusivity of every species, and of all atoms together, with block-averaged errors.

    Args:
        positions: ``(n_frames, n_atoms, 3)`` unwrapped positions (Å), one frame every
            ``interval_ps``.
        symbols: Element of each atom, ``(n_atoms,)``.
        masses: ``(n_atoms,)`` atomic masses (amu), for the centre-of-mass drift.
        interval_ps: Time between frames (ps).
        n_blocks: Number of contiguous blocks for the uncertainty (at least 2).
        fit_window: Fitted lag times as fractions of one block's duration; the lower bound
            skips the ballistic start, the upper one keeps enough time origins per lag.

    Returns:
        ``{element: DiffusionFit}`` for each element, plus ``"all"`` for every atom.

    Raises:
        ValueError: too few frames for the blocks and the window.
    """
    block = positions.shape[0] // n_blocks
    first, last = fit_lags(positions.shape[0], n_blocks, fit_window)
    lags_ps = np.arange(first, last + 1) * interval_ps
    positions = remove_drift(positions, np.asarray(masses, dtype=float))
    labels = np.asarray(symbols)
    groups = {el: labels == el for el in dict.fromkeys(symbols)}
    groups["all"] = np.ones(len(labels), dtype=bool)

    whole = mean_squared_displacement(positions, last)[first:]
    blocks = [
        mean_squared_displacement(positions[b * block : (b + 1) * block], last)[first:]
        for b in range(n_blocks)
    ]
    fits = {}
    for name, mask in groups.items():
        msd = whole[:, mask].mean(axis=1)
        slope, exponent = _slope_and_exponent(lags_ps, msd)
        per_block = [_slope_and_exponent(lags_ps, m[:, mask].mean(axis=1))[0] for m in blocks]
        d_blocks = np.array(per_block) / 6.0 * A2_PER_PS_TO_CM2_PER_S
        fits[name] = DiffusionFit(
            species=name,
            diffusivity=slope / 6.0 * A2_PER_PS_TO_CM2_PER_S,
            uncertainty=float(d_blocks.std(ddof=1) / math.sqrt(n_blocks)),
            block_diffusivities=tuple(float(d) for d in d_blocks),
            fit_start_ps=float(lags_ps[0]),
            fit_end_ps=float(lags_ps[-1]),
            msd_exponent=exponent,
            msd_at_fit_end=float(msd[-1]),
        )
    return fits


@dataclass(frozen=True)
class ArrheniusFit:
    """``D(T) = D0 exp(−E_a / (k_B T))`` fitted to diffusivities at several temperatures.

    Attributes:
        activation_energy: E_a (eV).
        activation_energy_uncertainty: Standard error of E_a (eV); ``None`` when it cannot be
            estimated (two points without uncertainties).
        prefactor: D0 (cm²/s).
        covariance: ``(2, 2)`` covariance of ``(ln D0, E_a)``; ``None`` as above.
        temperatures_K: Temperatures used in the fit (K).
    """

    activation_energy: float
    activation_energy_uncertainty: float | None
    prefactor: float
    covariance: np.ndarray | None
    temperatures_K: tuple[float, ...]

    def diffusivity(self, temperature_K: float) -> float:
        """D (cm²/s) at ``temperature_K`` (K) from the fitted line."""
        return self.prefactor * math.exp(
            -self.activation_energy / (BOLTZMANN_EV_PER_K * temperature_K)
        )

    def diffusivity_uncertainty(self, temperature_K: float) -> float | None:
        """Standard error of :meth:`diffusivity` (cm²/s), from the covariance of the fit."""
        if self.covariance is None:
            return None
        gradient = np.array([1.0, -1.0 / (BOLTZMANN_EV_PER_K * temperature_K)])
        sigma_ln = math.sqrt(max(float(gradient @ self.covariance @ gradient), 0.0))
        return self.diffusivity(temperature_K) * sigma_ln


def arrhenius_fit(
    temperatures_K: Sequence[float],
    diffusivities: Sequence[float],
    uncertainties: Sequence[float] | None = None,
) -> ArrheniusFit:
    """Weighted least-squares fit of ``ln D`` against ``−1 / (k_B T)``.

    With uncertainties, each point is weighted by ``(D / σ_D)²`` (the variance of ``ln D``),
    and the covariance is scaled up by the reduced χ² when that exceeds 1 (scatter beyond the
    stated errors). Without them the points are weighted equally and the covariance comes from
    the residuals, which needs at least three temperatures.

    Args:
        temperatures_K: At least two distinct temperatures (K).
        diffusivities: D at each temperature (cm²/s), all positive.
        uncertainties: Standard errors of D (cm²/s), all positive, or ``None``.

    Raises:
        ValueError: fewer than two distinct temperatures, or a non-positive D or σ.
    """
    temps = np.asarray(temperatures_K, dtype=float)
    values = np.asarray(diffusivities, dtype=float)
    if len(np.unique(temps)) < 2 or len(values) != len(temps):
        raise ValueError("an Arrhenius fit needs D at two or more distinct temperatures")
    if np.any(values <= 0) or np.any(temps <= 0):
        raise ValueError("an Arrhenius fit needs positive temperatures and diffusivities")
    design = np.column_stack([np.ones_like(temps), -1.0 / (BOLTZMANN_EV_PER_K * temps)])
    target = np.log(values)
    if uncertainties is not None:
        sigma = np.asarray(uncertainties, dtype=float)
        if np.any(sigma <= 0):
            raise ValueError("uncertainties must be positive")
        weights = (values / sigma) ** 2
    else:
        weights = np.ones_like(temps)
    normal = design.T @ (weights[:, None] * design)
    params = np.linalg.solve(normal, design.T @ (weights * target))
    dof = len(temps) - 2
    chi2 = float(weights @ (target - design @ params) ** 2)
    covariance: np.ndarray | None
    if uncertainties is not None:
        covariance = np.linalg.inv(normal) * (max(1.0, chi2 / dof) if dof > 0 else 1.0)
    elif dof > 0:
        covariance = np.linalg.inv(normal) * chi2 / dof
    else:
        covariance = None
    return ArrheniusFit(
        activation_energy=float(params[1]),
        activation_energy_uncertainty=(
            math.sqrt(covariance[1, 1]) if covariance is not None else None
        ),
        prefactor=math.exp(params[0]),
        covariance=covariance,
        temperatures_K=tuple(float(t) for t in temps),
    )
