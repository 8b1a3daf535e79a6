"""The generator interface: fit, fine-tune, sample, optimise latents, save and load.

Like BoTorch's one-method ABCs, :class:`Generator` fixes what the loop calls and nothing else;
:class:`generator.cdvae.CondCDVAE` is the implementation. Structures go in as pymatgen
``Structure`` with a ``{property: value}`` mapping each; generated structures come out as
:class:`state.schema.Candidate` records.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

import numpy as np
from pymatgen.core import Structure

from amloop.generator.latent import DEFAULT_DECODE_AT, Goal
from amloop.generator.sample import ConditionLike
from amloop.generator.train import TrainingHistory
from amloop.state.schema import Candidate

#: Training data: structures with their properties (missing properties may be left out).
TrainingData = Sequence[tuple[Structure, Mapping[str, float]]]


@dataclass
class LatentOptimization:
    """Result of :meth:`Generator.optimize_latent`.

    Attributes:
        property_name: The optimised property.
        predicted: Property-head prediction (property's unit) per step and start,
            ``(steps + 1, n_starts)``.
        candidates: Decoded structures per decode step, one per start, in start order.
    """

    property_name: str
    predicted: np.ndarray
    candidates: dict[int, list[Candidate]] = field(default_factory=dict)


class Generator(ABC):
    """A conditional structure generator that the loop trains, fine-tunes and samples."""

    @abstractmethod
    def fit(
        self,
        data: TrainingData,
        *,
        epochs: int | None = None,
        checkpoint_dir: Path | None = None,
        resume: bool = False,
        progress: bool = False,
    ) -> TrainingHistory:
        """Train from scratch on ``data`` (or resume an interrupted run in ``checkpoint_dir``)."""

    @abstractmethod
    def finetune(
        self,
        data: TrainingData,
        *,
        epochs: int | None = None,
        checkpoint_dir: Path | None = None,
        progress: bool = False,
        resume: bool = False,
    ) -> TrainingHistory:
        """Continue training the current weights on ``data`` (typically a grown dataset)."""

    @abstractmethod
    def sample(
        self, conditions: Sequence[ConditionLike], n: int, *, seed: int = 0
    ) -> list[Candidate]:
        """``n`` structures per condition, grouped by condition, as ``"generated"`` candidates."""

    @abstractmethod
    def optimize_latent(
        self,
        starts: Sequence[Structure],
        *,
        property_name: str,
        goal: Goal = "maximize",
        target: float | None = None,
        decode_at: Sequence[int] = DEFAULT_DECODE_AT,
        seed: int = 0,
    ) -> LatentOptimization:
        """Move the latents of ``starts`` along the property head and decode at ``decode_at``."""

    @abstractmethod
    def save(self, path: Path) -> Path:
        """Write weights and hyper-parameters into folder ``path``; returns the weights file."""

    @classmethod
    @abstractmethod
    def load(cls, path: Path, *, device: str | None = None) -> Self:
        """A generator from a folder written by :meth:`save`."""
