"""Cond-CDVAE: the conditional crystal-diffusion VAE behind :class:`generator.base.Generator`.

A checkpoint is a folder holding ``hparams.json`` (format version, the
:class:`~generator.config.CondCDVAEConfig`, the campaign's :class:`~generator.data.DataSpec` and
the seed) and ``model.pt`` (the ``state_dict``, loaded with ``weights_only=True``); a training
run also keeps its resume file ``training.pt`` there.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Self

import numpy as np
import torch
from pymatgen.core import Element, Structure

from amloop.generator.base import Generator, LatentOptimization, TrainingData
from amloop.generator.config import CondCDVAEConfig
from amloop.generator.data import Crystal, CrystalBatch, DataSpec, featurise
from amloop.generator.latent import DEFAULT_DECODE_AT, Goal, optimize_latent
from amloop.generator.model import CondCDVAEModel
from amloop.generator.pdm import pdm_labels
from amloop.generator.phase import classify_phase
from amloop.generator.sample import (
    Condition,
    ConditionLike,
    LangevinSettings,
    decode_latents,
    seeded_generator,
)
from amloop.generator.train import TrainingHistory, split_indices, train
from amloop.state.composition import structure_fractions
from amloop.state.device import resolve_device
from amloop.state.files import atomic_path, sha256_file
from amloop.state.schema import Candidate, CandidateOrigin
from amloop.state.structures import content_hash

HPARAMS_FILE = "hparams.json"
WEIGHTS_FILE = "model.pt"
FORMAT_VERSION = 1


class CondCDVAE(Generator):
    """Cond-CDVAE conditioned on composition + PDM, with P-CDVAE property and phase heads.

    Args:
        config: Hyper-parameters (default: the papers', :class:`CondCDVAEConfig`).
        device: ``"auto"``, ``"cpu"``, ``"cuda[:N]"``; ``None`` reads ``AMLOOP_DEVICE``.
        seed: Seed of weight initialisation, data split and training draws.
    """

    def __init__(
        self,
        config: CondCDVAEConfig | None = None,
        *,
        device: str | torch.device | None = None,
        seed: int = 0,
    ):
        self.config = config or CondCDVAEConfig()
        self.device = resolve_device(device)
        self.seed = seed
        self._spec: DataSpec | None = None
        self._model: CondCDVAEModel | None = None
        #: sha256 of the weights file last saved or loaded (stamped on generated candidates).
        self.checkpoint_sha256: str | None = None

    # -- state -----------------------------------------------------------------------------

    @property
    def spec(self) -> DataSpec:
        """The campaign's data specification.

        Raises:
            RuntimeError: the generator is neither trained nor loaded.
        """
        if self._spec is None:
            raise RuntimeError("the generator is not trained: call fit() or load() first")
        return self._spec

    @property
    def model(self) -> CondCDVAEModel:
        """The network.

        Raises:
            RuntimeError: the generator is neither trained nor loaded.
        """
        if self._model is None:
            raise RuntimeError("the generator is not trained: call fit() or load() first")
        return self._model

    @property
    def pdm_labels(self) -> list[str]:
        """Names of the PDM entries, in the order conditions and :meth:`pdm` use."""
        return pdm_labels(self.spec.elements, self.spec.pdm_rdf_bins)

    def pdm(self, structure: Structure) -> np.ndarray:
        """PDM of ``structure`` with this generator's elements and first-shell cutoffs."""
        return self.spec.pdm_of(structure)

    def build(self, spec: DataSpec) -> CondCDVAEModel:
        """A network with fresh (seeded) weights for ``spec``, as :meth:`fit` starts from."""
        torch.manual_seed(self.seed)
        self._spec = spec
        self._model = CondCDVAEModel(
            self.config,
            num_elements=len(spec.elements),
            pdm_length=spec.pdm_length,
            num_properties=len(spec.properties),
            num_phases=len(spec.phases),
            atomic_numbers=[Element(symbol).Z for symbol in spec.elements],
        ).to(self.device)
        return self._model

    def _crystals(self, data: TrainingData, phases: Sequence[str] | None) -> list[Crystal]:
        if phases is not None and len(phases) != len(data):
            raise ValueError(f"{len(phases)} phases given for {len(data)} structures")
        too_large = [len(s) for s, _ in data if len(s) > self.config.max_atoms]
        if too_large:
            raise ValueError(
                f"structures of {max(too_large)} atoms exceed max_atoms={self.config.max_atoms}"
            )
        labels = phases or [classify_phase(structure) for structure, _ in data]
        return [
            featurise(structure, properties, phase, self.spec)
            for (structure, properties), phase in zip(data, labels, strict=True)
        ]

    def _train(
        self,
        data: TrainingData,
        phases: Sequence[str] | None,
        *,
        epochs: int | None,
        lr: float | None,
        checkpoint_dir: Path | None,
        resume: bool,
        progress: bool,
    ) -> TrainingHistory:
        crystals = self._crystals(data, phases)
        train_ids, val_ids = split_indices(len(crystals), self.config.val_fraction, self.seed)
        history = train(
            self.model,
            [crystals[k] for k in train_ids],
            [crystals[k] for k in val_ids],
            epochs=epochs or self.config.max_epochs,
            device=self.device,
            seed=self.seed,
            lr=lr,
            checkpoint_dir=checkpoint_dir,
            resume=resume,
            progress=progress,
        )
        self.model.eval()
        if checkpoint_dir is not None:
            self.save(checkpoint_dir)
        return history

    # -- Generator interface ---------------------------------------------------------------

    def fit(
        self,
        data: TrainingData,
        *,
        epochs: int | None = None,
        checkpoint_dir: Path | None = None,
        resume: bool = False,
        progress: bool = False,
        phases: Sequence[str] | None = None,
        elements: Sequence[str] | None = None,
        property_names: Sequence[str] | None = None,
    ) -> TrainingHistory:
        """Train from scratch: derive the :class:`DataSpec`, build the network, train.

        Args:
            data: ``(structure, {property: value})`` pairs (at least 2).
            epochs: Most epochs (default ``config.max_epochs``); early stopping may end sooner.
            checkpoint_dir: Folder for ``hparams.json``, the resume file and, at the end, the
                best weights ``model.pt``.
            resume: Continue the interrupted run in ``checkpoint_dir`` (its hyper-parameters
                and data specification are used; ``data`` must be the same examples).
            progress: Show a progress bar.
            phases: Phase label per structure (default: :func:`generator.phase.classify_phase`).
            elements: The campaign's elements in order (default: those present, by Z).
            property_names: Property-head outputs (default: all names in ``data``, sorted).

        Raises:
            ValueError: fewer than 2 structures, or an inconsistent argument.
        """
        if len(data) < 2:
            raise ValueError(f"need at least 2 structures to train, got {len(data)}")
        hparams = checkpoint_dir / HPARAMS_FILE if checkpoint_dir else None
        if resume and hparams is not None and hparams.is_file():
            stored = json.loads(hparams.read_text())
            self.config = CondCDVAEConfig.from_dict(stored["config"])
            self.seed = int(stored["seed"])
            self.build(DataSpec.from_dict(stored["spec"]))
        else:
            structures = [structure for structure, _ in data]
            spec = DataSpec.from_data(
                structures,
                [properties for _, properties in data],
                elements=elements,
                property_names=property_names,
                pdm_rdf_bins=self.config.pdm_rdf_bins,
            )
            self.build(spec)
            if checkpoint_dir is not None:
                self._write_hparams(checkpoint_dir)
        return self._train(
            data,
            phases,
            epochs=epochs,
            lr=None,
            checkpoint_dir=checkpoint_dir,
            resume=resume,
            progress=progress,
        )

    def finetune(
        self,
        data: TrainingData,
        *,
        epochs: int | None = None,
        checkpoint_dir: Path | None = None,
        progress: bool = False,
        resume: bool = False,
        lr: float | None = None,
        phases: Sequence[str] | None = None,
    ) -> TrainingHistory:
        """Continue training the current weights on ``data`` with a fresh optimiser.

        The data specification (elements, property names, PDM cutoffs, scalings) stays the one
        of the first fit, so that conditions and PDM targets keep their meaning across the
        campaign; ``data`` may hold new structures of the same elements.

        Args:
            data: ``(structure, {property: value})`` pairs, typically the grown dataset.
            epochs: Most epochs of this fine-tune (default ``config.max_epochs``).
            checkpoint_dir: Folder for the resume file and the resulting checkpoint.
            progress: Show a progress bar.
            resume: Continue an interrupted fine-tune from ``checkpoint_dir``'s resume file.
            lr: Initial learning rate (default ``config.lr``).
            phases: Phase label per structure (default: classified).

        Raises:
            RuntimeError: nothing to fine-tune (neither trained nor loaded).
            ValueError: a structure holds an element the generator was not trained on.
        """
        self._spec = self.spec.adopt_unseen_properties([properties for _, properties in data])
        self.model.train()
        return self._train(
            data,
            phases,
            epochs=epochs,
            lr=lr,
            checkpoint_dir=checkpoint_dir,
            resume=resume,
            progress=progress,
        )

    def _settings(self, steps_per_level: int | None, batch_size: int) -> LangevinSettings:
        return LangevinSettings(
            steps_per_level=steps_per_level or self.config.langevin_steps_per_level,
            step_lr=self.config.langevin_step_lr,
            min_distance=self.config.min_distance,
            batch_size=batch_size,
            pdm_swap_sweeps=self.config.pdm_swap_sweeps,
            pdm_swap_sigma=self.config.pdm_swap_sigma,
        )

    def _candidates(
        self,
        structures: Sequence[Structure],
        origin: CandidateOrigin,
        pdm_targets: Sequence[Sequence[float] | None],
        parents: Sequence[str | None],
    ) -> list[Candidate]:
        return [
            Candidate(
                structure=structure,
                origin=origin,
                pdm_target=None if target is None else [float(x) for x in target],
                generator_checkpoint=self.checkpoint_sha256,
                parent_hash=parent,
            )
            for structure, target, parent in zip(structures, pdm_targets, parents, strict=True)
        ]

    def sample(
        self,
        conditions: Sequence[ConditionLike],
        n: int,
        *,
        seed: int = 0,
        n_atoms: int | None = None,
        steps_per_level: int | None = None,
        batch_size: int = 32,
    ) -> list[Candidate]:
        """``n`` structures per condition by annealed Langevin dynamics from ``z ~ N(0, I)``.

        Args:
            conditions: Compositions with optional PDM targets (and, on :class:`Condition`,
                atom counts and phases).
            n: Structures per condition.
            seed: Seed of every random draw; the same seed gives the same structures.
            n_atoms: Atoms per cell for every condition (overrides the conditions' own).
            steps_per_level: Langevin steps per noise level (default from the configuration).
            batch_size: Cells decoded together.

        Returns:
            ``len(conditions) * n`` ``"generated"`` candidates, grouped by condition, each with
            the exact integer composition closest to its condition's fractions and no two atoms
            closer than ``config.min_distance`` (except cells push-apart could not separate,
            returned as decoded).
        """
        model, spec = self.model, self.spec
        model.eval()
        expanded = [condition for condition in conditions for _ in range(n)]
        generator = seeded_generator(seed, self.device)
        dtype = next(model.parameters()).dtype
        z = torch.randn(
            (len(expanded), self.config.latent_dim),
            generator=generator,
            device=self.device,
            dtype=dtype,
        )
        structures = decode_latents(
            model,
            spec,
            z,
            expanded,
            self._settings(steps_per_level, batch_size),
            generator,
            n_atoms=[n_atoms] * len(expanded) if n_atoms else None,
        )
        targets = [condition.pdm_target for condition in expanded]
        return self._candidates(structures, "generated", targets, [None] * len(structures))

    def optimize_latent(
        self,
        starts: Sequence[Structure],
        *,
        property_name: str,
        goal: Goal = "maximize",
        target: float | None = None,
        decode_at: Sequence[int] = DEFAULT_DECODE_AT,
        seed: int = 0,
        lr: float = 1e-3,
        steps_per_level: int | None = None,
        batch_size: int = 32,
    ) -> LatentOptimization:
        """Encode ``starts``, move their latents along the property head, decode at steps.

        Each start keeps its own composition, PDM (as the condition and as the candidates'
        ``pdm_target``) and atom count.

        Args:
            starts: Structures to start from (elements within the generator's).
            property_name: Property-head output to optimise.
            goal: ``"maximize"``, ``"minimize"`` or ``"target"``.
            target: Goal value in the property's unit (``goal="target"`` only).
            decode_at: Adam steps after which to decode (seed 001: 200, 500, 1000, 1500, 2500).
            seed: Seed of the decoding draws.
            lr: Adam learning rate on ``z``.
            steps_per_level: Langevin steps per noise level (default from the configuration).
            batch_size: Cells decoded together.

        Returns:
            The prediction trajectory and ``"latent_opt"`` candidates per decode step, whose
            ``parent_hash`` is the content hash of their start.
        """
        model, spec = self.model, self.spec
        model.eval()
        crystals = [featurise(s, {}, classify_phase(s), spec) for s in starts]
        batch = CrystalBatch.collate(crystals, self.device, next(model.parameters()).dtype)
        with torch.no_grad():
            mu, _ = model.encode(batch)
            c = model.condition(batch.composition, batch.pdm)
        trajectory = optimize_latent(
            model, spec, mu, c, property_name=property_name, goal=goal, target=target,
            decode_at=decode_at, lr=lr,
        )  # fmt: skip
        pdms = [spec.pdm_of(s).tolist() for s in starts]
        conditions = [
            Condition(composition=structure_fractions(s), pdm_target=p, n_atoms=len(s))
            for s, p in zip(starts, pdms, strict=True)
        ]
        generator = seeded_generator(seed, self.device)
        parents = [content_hash(s) for s in starts]
        result = LatentOptimization(property_name=property_name, predicted=trajectory.predicted)
        for step in sorted(trajectory.latents):
            structures = decode_latents(
                model, spec, trajectory.latents[step], conditions,
                self._settings(steps_per_level, batch_size), generator,
            )  # fmt: skip
            result.candidates[step] = self._candidates(structures, "latent_opt", pdms, parents)
        return result

    # -- persistence -----------------------------------------------------------------------

    def _write_hparams(self, path: Path) -> None:
        path.mkdir(parents=True, exist_ok=True)
        payload = {
            "format": FORMAT_VERSION,
            "generator": type(self).__name__,
            "seed": self.seed,
            "config": self.config.to_dict(),
            "spec": self.spec.to_dict(),
        }
        with atomic_path(path / HPARAMS_FILE) as partial:
            partial.write_text(json.dumps(payload, indent=2))

    def save(self, path: Path) -> Path:
        """Write ``hparams.json`` and ``model.pt`` into folder ``path``; returns ``model.pt``.

        Raises:
            RuntimeError: the generator is neither trained nor loaded.
        """
        self._write_hparams(path)
        weights = path / WEIGHTS_FILE
        with atomic_path(weights) as partial:
            torch.save(self.model.state_dict(), partial)
        self.checkpoint_sha256 = sha256_file(weights)
        return weights

    @classmethod
    def load(cls, path: Path, *, device: str | torch.device | None = None) -> Self:
        """A generator from a folder written by :meth:`save` (weights read ``weights_only``).

        Raises:
            CheckpointError: ``hparams.json`` or ``model.pt`` is missing, unreadable, of another
                generator or format, or the weights do not fit the hyper-parameters.
        """
        hparams, weights = path / HPARAMS_FILE, path / WEIGHTS_FILE
        for required in (hparams, weights):
            if not required.is_file():
                raise CheckpointError(f"not a generator checkpoint: {required} is missing")
        try:
            stored = json.loads(hparams.read_text())
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise CheckpointError(f"{hparams} is not a generator's JSON: {exc}") from None
        if (
            not isinstance(stored, dict)
            or stored.get("generator") != cls.__name__
            or stored.get("format") != FORMAT_VERSION
        ):
            found = stored.get("generator") if isinstance(stored, dict) else type(stored).__name__
            raise CheckpointError(
                f"{hparams} holds a {found} checkpoint, not {cls.__name__} format {FORMAT_VERSION}"
            )
        try:
            generator = cls(
                CondCDVAEConfig.from_dict(stored["config"]), device=device, seed=int(stored["seed"])
            )
            model = generator.build(DataSpec.from_dict(stored["spec"]))
            with warnings.catch_warnings():  # a foreign pickle's protocol: it fails below
                warnings.filterwarnings("ignore", message="Detected pickle protocol")
                state = torch.load(weights, map_location=generator.device, weights_only=True)
            model.load_state_dict(state)
        except CheckpointError:
            raise
        except Exception as exc:  # torch and the config raise many types for a broken folder
            summary = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
            raise CheckpointError(
                f"cannot load the generator in {path}: {type(exc).__name__}: {summary}"
            ) from None
        model.eval()
        generator.checkpoint_sha256 = sha256_file(weights)
        return generator


class CheckpointError(ValueError):
    """A generator checkpoint folder that cannot be loaded; the message says why."""
