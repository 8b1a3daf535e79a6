"""Latent-space property optimisation (seed 001): Adam on ``z`` through the property head.

The network's weights stay frozen; only the latent vectors move. The conditions (composition
and PDM embedding ``c``) stay fixed, so ``z_c = MLP_zc(z, c)`` changes through ``z`` alone.
Seed 001 uses Adam with learning rate 1e-3 and decodes after 200, 500, 1000, 1500 and 2500
steps.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from torch import Tensor

from amloop.generator.data import DataSpec
from amloop.generator.model import CondCDVAEModel

Goal = Literal["maximize", "minimize", "target"]
#: Decode steps of seed 001.
DEFAULT_DECODE_AT = (200, 500, 1000, 1500, 2500)


@dataclass
class LatentTrajectory:
    """What one latent optimisation produced.

    Attributes:
        predicted: Property-head prediction (physical units) before the first step and after
            every step, ``(steps + 1, B)``.
        latents: ``z`` after each decode step, ``(B, latent_dim)`` each, keyed by step.
    """

    predicted: np.ndarray
    latents: dict[int, Tensor]


@contextmanager
def frozen(model: torch.nn.Module) -> Iterator[None]:
    """Within the block, no parameter of ``model`` collects gradients."""
    flags = [p.requires_grad for p in model.parameters()]
    model.requires_grad_(False)
    try:
        yield
    finally:
        for parameter, flag in zip(model.parameters(), flags, strict=True):
            parameter.requires_grad_(flag)


def optimize_latent(
    model: CondCDVAEModel,
    spec: DataSpec,
    z: Tensor,
    c: Tensor,
    *,
    property_name: str,
    goal: Goal = "maximize",
    target: float | None = None,
    decode_at: Sequence[int] = DEFAULT_DECODE_AT,
    lr: float = 1e-3,
) -> LatentTrajectory:
    """Move latents ``z`` to maximise, minimise or hit ``target`` of one property-head output.

    Args:
        model: The trained network.
        spec: Its data specification (property names and scaling).
        z: Starting latents, ``(B, latent_dim)``.
        c: Condition embeddings, ``(B, zc_hidden)``, held fixed.
        property_name: Which property-head output.
        goal: ``"maximize"``, ``"minimize"`` or ``"target"``.
        target: Goal value in the property's unit (``goal="target"`` only).
        decode_at: Steps after which to keep ``z``; the run lasts until the largest.
        lr: Adam learning rate.

    Raises:
        ValueError: unknown property, goal or missing target, or no decode step.
    """
    if property_name not in spec.properties:
        raise ValueError(f"no property head output '{property_name}'; known: {spec.properties}")
    if goal not in ("maximize", "minimize", "target"):
        raise ValueError(f"goal must be maximize, minimize or target, not '{goal}'")
    if (goal == "target") != (target is not None):
        raise ValueError("give target exactly when goal='target'")
    if not decode_at or min(decode_at) < 0:
        raise ValueError("decode_at needs at least one step >= 0")
    column = spec.properties.index(property_name)
    mean, std = spec.property_scale.mean[column], spec.property_scale.std[column]
    scaled_target = 0.0 if target is None else (target - mean) / std
    z = z.detach().clone().requires_grad_(True)
    optimiser = torch.optim.Adam([z], lr=lr)
    predicted: list[np.ndarray] = []
    latents: dict[int, Tensor] = {}
    wanted = set(decode_at)
    with frozen(model), torch.enable_grad():
        for step in range(max(decode_at) + 1):
            scaled = model.predict_properties(model.join(z, c))[:, column]
            predicted.append((scaled.detach() * std + mean).cpu().numpy())
            if step in wanted:
                latents[step] = z.detach().clone()
            if step == max(decode_at):
                break
            if goal == "maximize":
                loss = -scaled.sum()
            elif goal == "minimize":
                loss = scaled.sum()
            else:
                loss = ((scaled - scaled_target) ** 2).sum()
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
    return LatentTrajectory(predicted=np.stack(predicted), latents=latents)
