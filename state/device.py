"""Which torch device amloop runs models on (generator, MLP oracles): ``AMLOOP_DEVICE`` / :class:`state.settings.Settings`.

``auto`` picks the first CUDA device when torch sees one, else the CPU; ``cpu`` and ``cuda[:N]``
are taken as given (a CUDA request without CUDA is an error, not a silent fallback).
"""

from __future__ import annotations

import torch

from amloop.state.settings import Settings


def resolve_device(spec: str | torch.device | None = None) -> torch.device:
    """The torch device for ``spec``.

    Args:
        spec: ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"cuda:N"`` (or a ``torch.device``); ``None``
            reads :attr:`Settings.device` (environment variable ``AMLOOP_DEVICE``, default auto).

    Raises:
        ValueError: the name is not a device, or CUDA was asked for and torch sees none.
    """
    if isinstance(spec, torch.device):
        name = str(spec)
    else:
        name = (spec if spec is not None else Settings().device).strip().lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ValueError(f"unknown device '{name}'; use auto, cpu, cuda or cuda:N") from None
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"unsupported device '{name}'; use auto, cpu, cuda or cuda:N")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device '{name}' requested but torch sees no CUDA device")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(
                f"device '{name}' requested but only {torch.cuda.device_count()} CUDA device(s)"
            )
    return device
