"""Training loop: epochs, validation, LR schedule, early stopping, resumable checkpoints.

Every random draw of an epoch (shuffling, latent and noise samples) comes from generators seeded
with ``(seed, epoch)``, and the validation loss uses the same draws every epoch, so a run is
reproducible and a run resumed from its checkpoint continues exactly as if never interrupted.
The resume file holds the weights, Adam and scheduler states, the best weights so far and the
history, all tensors and plain Python values (readable with ``torch.load(weights_only=True)``).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from amloop.generator.config import CondCDVAEConfig
from amloop.generator.data import Crystal, CrystalBatch
from amloop.generator.model import CondCDVAEModel
from amloop.state.files import atomic_path

logger = logging.getLogger(__name__)
#: Name of the resume file inside a checkpoint folder.
RESUME_FILE = "training.pt"
#: Seed offset of the validation draws.
_VALIDATION_STREAM = 7919


@dataclass
class EpochRecord:
    """Mean losses of one epoch (weighted totals and training terms) and its learning rate."""

    epoch: int
    train_loss: float
    val_loss: float
    lr: float
    terms: dict[str, float] = field(default_factory=dict)


@dataclass
class TrainingHistory:
    """Epoch records, the best epoch (lowest validation loss) and whether it stopped early."""

    records: list[EpochRecord] = field(default_factory=list)
    best_epoch: int = -1
    best_val_loss: float = math.inf
    stopped_early: bool = False

    def to_dict(self) -> dict[str, Any]:
        """Plain-value form (JSON- and ``weights_only``-safe)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainingHistory:
        """Inverse of :meth:`to_dict`."""
        records = [EpochRecord(**r) for r in values["records"]]
        return cls(**{**values, "records": records})


def split_indices(n: int, val_fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Seeded train/validation split of ``n`` examples (at least one of each when ``n >= 2``)."""
    order = np.random.default_rng(seed).permutation(n).tolist()
    n_val = min(max(round(val_fraction * n), 1 if n >= 2 and val_fraction > 0 else 0), n - 1)
    return sorted(order[n_val:]), sorted(order[:n_val])


def _generators(seed: int, device: torch.device) -> tuple[torch.Generator, torch.Generator]:
    return (
        torch.Generator().manual_seed(seed),
        torch.Generator(device=device).manual_seed(seed),
    )


def _mean_loss(
    model: CondCDVAEModel,
    crystals: Sequence[Crystal],
    config: CondCDVAEConfig,
    device: torch.device,
    seed: int,
    optimiser: torch.optim.Optimizer | None,
) -> tuple[float, dict[str, float]]:
    """Mean loss over ``crystals`` in batches; one optimiser step per batch when given one."""
    shuffle, draws = _generators(seed, device)
    order = (
        torch.randperm(len(crystals), generator=shuffle).tolist()
        if optimiser
        else range(len(crystals))
    )
    ordered = [crystals[k] for k in order]
    totals: dict[str, float] = {}
    weighted, cells = 0.0, 0
    dtype = next(model.parameters()).dtype
    for start in range(0, len(ordered), config.batch_size):
        chunk = ordered[start : start + config.batch_size]
        batch = CrystalBatch.collate(chunk, device, dtype)
        losses = model.loss(batch, draws)
        if optimiser is not None:
            optimiser.zero_grad()
            losses.total.backward()
            torch.nn.utils.clip_grad_value_(model.parameters(), config.grad_clip_value)
            optimiser.step()
        weighted += float(losses.total.detach()) * len(chunk)
        cells += len(chunk)
        for name, value in losses.terms.items():
            totals[name] = totals.get(name, 0.0) + float(value.detach()) * len(chunk)
    return weighted / cells, {name: value / cells for name, value in totals.items()}


def train(
    model: CondCDVAEModel,
    train_set: Sequence[Crystal],
    val_set: Sequence[Crystal],
    *,
    epochs: int,
    device: torch.device,
    seed: int,
    lr: float | None = None,
    checkpoint_dir: Path | None = None,
    resume: bool = False,
    progress: bool = False,
) -> TrainingHistory:
    """Train ``model`` for up to ``epochs`` epochs and leave it at its best validation epoch.

    Args:
        model: The network, on ``device``.
        train_set: Training examples.
        val_set: Validation examples (empty: the training loss selects the best epoch).
        epochs: Total number of epochs of this run (resumed epochs included).
        device: Torch device.
        seed: Seed of all random draws.
        lr: Initial learning rate (default: the configuration's).
        checkpoint_dir: Where the resume file is written after every epoch.
        resume: Continue from ``checkpoint_dir``'s resume file when there is one.
        progress: Show a rich progress bar.

    Returns:
        The history; ``model`` holds the weights of its best epoch.
    """
    config = model.config
    optimiser = torch.optim.Adam(model.parameters(), lr=lr or config.lr)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimiser,
        mode="min",
        factor=config.lr_factor,
        patience=config.lr_patience,
        min_lr=config.lr_min,
    )
    history = TrainingHistory()
    best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    bad_epochs = 0
    resume_path = checkpoint_dir / RESUME_FILE if checkpoint_dir else None
    if resume and resume_path is not None and resume_path.is_file():
        state = torch.load(resume_path, map_location=device, weights_only=True)
        model.load_state_dict(state["model"])
        optimiser.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        best_state, bad_epochs = state["best_model"], int(state["bad_epochs"])
        history = TrainingHistory.from_dict(state["history"])
        logger.info("resumed training at epoch %d from %s", len(history.records), resume_path)
    columns = (
        TextColumn("training"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[status]}"),
    )
    with Progress(*columns, disable=not progress) as bar:
        task = bar.add_task("epochs", total=epochs, completed=len(history.records), status="")
        for epoch in range(len(history.records), epochs):
            if bad_epochs >= config.early_stopping_patience:
                history.stopped_early = True
                break
            model.train()
            train_loss, terms = _mean_loss(
                model, train_set, config, device, seed * 1_000_003 + epoch, optimiser
            )
            model.eval()
            with torch.no_grad():
                val_loss = (
                    _mean_loss(model, val_set, config, device, seed + _VALIDATION_STREAM, None)[0]
                    if val_set
                    else train_loss
                )
            scheduler.step(val_loss)
            lr_now = float(optimiser.param_groups[0]["lr"])
            history.records.append(EpochRecord(epoch, train_loss, val_loss, lr_now, terms))
            if val_loss < history.best_val_loss:
                history.best_epoch, history.best_val_loss, bad_epochs = epoch, val_loss, 0
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            else:
                bad_epochs += 1
            logger.info(
                "epoch %d: train %.4f, val %.4f, lr %.2e", epoch, train_loss, val_loss, lr_now
            )
            bar.update(task, advance=1, status=f"train {train_loss:.3f} val {val_loss:.3f}")
            if resume_path is not None:
                with atomic_path(resume_path) as partial:
                    torch.save(
                        {
                            "model": model.state_dict(),
                            "optimizer": optimiser.state_dict(),
                            "scheduler": scheduler.state_dict(),
                            "best_model": best_state,
                            "bad_epochs": bad_epochs,
                            "history": history.to_dict(),
                        },
                        partial,
                    )
    model.load_state_dict(best_state)
    return history
