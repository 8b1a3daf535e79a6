"""The loop's structure gate: cheap checks a generated structure must pass before any oracle runs.

Checks, in order, each rejecting with a reason that names the numbers and units:

1. push-apart to ``min_distance`` (:func:`generator.push_apart.push_apart`); failure rejects;
2. the closest pair of the pushed-apart structure is at least ``min_distance`` (Å);
3. the MLP energy (computed by the loop, passed in, eV/atom) is at most the highest energy of the
   seed structures plus ``max_energy_above_reference`` (seed 001's filter);
4. the Euclidean distance of the structure's total ``g(r)`` to the reference average is at most
   ``max_rdf_distance`` (seed 002, :mod:`generator.quality`);
5. the distance of its mean CrystalNN motif fingerprint to the reference average is at most
   ``max_motif_distance``.

One structure's ``g(r)`` is noisier than a set average, so sensible thresholds lie above the
distances of the reference structures themselves: :meth:`QualityGate.from_reference` records
the largest of those (``reference_rdf_spread``, ``reference_motif_spread``) for choosing them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from pymatgen.core import Structure

from amloop.generator.push_apart import PushApartError, push_apart
from amloop.generator.quality import element_order, local_environments, structure_rdfs
from amloop.state.config import QualityGateConfig
from amloop.state.structures import closest_distance


@dataclass
class GateVerdict:
    """The outcome of :meth:`QualityGate.check`.

    Attributes:
        passed: Whether every check passed.
        reason: Why it was rejected (numbers with units); ``None`` when passed.
        metrics: What was measured: ``min_distance`` (Å), ``energy_above_reference``
            (eV/atom), ``rdf_distance``, ``motif_distance`` (those computed before a rejection).
        structure: The pushed-apart structure (``None`` when push-apart failed).
    """

    passed: bool
    reason: str | None
    metrics: dict[str, float] = field(default_factory=dict)
    structure: Structure | None = None


class QualityGate:
    """Seed 001's energy filter and seed 002's distances as an acceptance gate.

    Args:
        config: Thresholds (:class:`state.config.QualityGateConfig`).
        elements: Element order of the reference RDF (all elements a candidate may hold).
        reference_rdf: Average total ``g(r)`` of the reference set on the
            :func:`generator.quality.rdf_grid`, shape ``(bins,)``; needed for the RDF check.
        reference_motif: Average all-site motif fingerprint, shape ``(features,)``; needed for
            the motif check.
        reference_max_energy: Highest energy among the seed structures (eV/atom); needed to
            gate energies.

    Raises:
        ValueError: a threshold is set but the reference it needs is missing.
    """

    def __init__(
        self,
        config: QualityGateConfig,
        *,
        elements: Sequence[str],
        reference_rdf: np.ndarray | None = None,
        reference_motif: np.ndarray | None = None,
        reference_max_energy: float | None = None,
    ):
        if config.max_rdf_distance is not None and reference_rdf is None:
            raise ValueError("max_rdf_distance is set but no reference RDF was given")
        if config.max_motif_distance is not None and reference_motif is None:
            raise ValueError("max_motif_distance is set but no reference motif was given")
        self.config = config
        self.elements = list(elements)
        self.reference_rdf = reference_rdf
        self.reference_motif = reference_motif
        self.reference_max_energy = reference_max_energy
        #: Largest distance of a reference structure's own g(r) / motif to the average.
        self.reference_rdf_spread = math.nan
        self.reference_motif_spread = math.nan

    @classmethod
    def from_reference(
        cls,
        config: QualityGateConfig,
        structures: Sequence[Structure],
        energies_per_atom: Sequence[float] | None = None,
        *,
        elements: Sequence[str] | None = None,
    ) -> QualityGate:
        """A gate whose references are the averages over ``structures`` (the seed set).

        Args:
            config: Thresholds.
            structures: Reference structures (relaxed seed set).
            energies_per_atom: Their MLP energies (eV/atom), for the energy check.
            elements: Element order (default: those present, by atomic number).
        """
        order = list(elements) if elements is not None else element_order(structures)
        rdfs = np.stack([structure_rdfs(s, order)[0] for s in structures])
        motifs = None
        if config.max_motif_distance is not None:
            motifs = np.stack(
                [local_environments(s, angles=False).fingerprints.mean(0) for s in structures]
            )
        gate = cls(
            config,
            elements=order,
            reference_rdf=rdfs.mean(0),
            reference_motif=None if motifs is None else motifs.mean(0),
            reference_max_energy=max(energies_per_atom) if energies_per_atom else None,
        )
        gate.reference_rdf_spread = float(np.linalg.norm(rdfs - rdfs.mean(0), axis=1).max())
        if motifs is not None:
            spread = np.linalg.norm(motifs - motifs.mean(0), axis=1).max()
            gate.reference_motif_spread = float(spread)
        return gate

    def check(self, structure: Structure, energy_per_atom: float | None = None) -> GateVerdict:
        """Push ``structure`` apart and run the checks in order; the first failure rejects.

        Args:
            structure: A generated structure.
            energy_per_atom: Its MLP energy before relaxation (eV/atom), computed by the loop;
                checked when given and ``max_energy_above_reference`` is set.

        Raises:
            ValueError: an energy is given to be gated but the gate has no reference maximum.
        """
        config = self.config
        try:
            pushed = push_apart(structure, config.min_distance)
        except PushApartError as exc:
            return GateVerdict(False, f"push-apart failed: {exc}")
        metrics: dict[str, float] = {"min_distance": closest_distance(pushed)}

        def reject(reason: str) -> GateVerdict:
            return GateVerdict(False, reason, metrics, pushed)

        if metrics["min_distance"] < config.min_distance:
            return reject(
                f"closest pair {metrics['min_distance']:.3f} Å < min_distance "
                f"{config.min_distance} Å after push-apart"
            )
        if energy_per_atom is not None and config.max_energy_above_reference is not None:
            if self.reference_max_energy is None:
                raise ValueError("an energy was given but the gate has no reference energies")
            above = energy_per_atom - self.reference_max_energy
            metrics["energy_above_reference"] = above
            if not math.isfinite(above) or above > config.max_energy_above_reference:
                return reject(
                    f"energy {energy_per_atom:.4f} eV/atom is {above:.4f} eV/atom above the "
                    f"reference maximum {self.reference_max_energy:.4f} eV/atom "
                    f"(allowed {config.max_energy_above_reference} eV/atom)"
                )
        if config.max_rdf_distance is not None and self.reference_rdf is not None:
            rdf = structure_rdfs(pushed, self.elements)[0]
            metrics["rdf_distance"] = float(np.linalg.norm(rdf - self.reference_rdf))
            if metrics["rdf_distance"] > config.max_rdf_distance:
                return reject(
                    f"RDF distance {metrics['rdf_distance']:.3f} to the reference average "
                    f"> max_rdf_distance {config.max_rdf_distance}"
                )
        if config.max_motif_distance is not None and self.reference_motif is not None:
            motif = local_environments(pushed, angles=False).fingerprints.mean(0)
            metrics["motif_distance"] = float(np.linalg.norm(motif - self.reference_motif))
            if metrics["motif_distance"] > config.max_motif_distance:
                return reject(
                    f"motif-fingerprint distance {metrics['motif_distance']:.3f} to the "
                    f"reference average > max_motif_distance {config.max_motif_distance}"
                )
        return GateVerdict(True, None, metrics, pushed)
