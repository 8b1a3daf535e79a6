"""The machine-learned potentials as ASE calculators: CHGNet (weights in its wheel), SevenNet 7net-0, a local matgl model folder; loaded once per process and device."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import threading
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import torch
from ase.calculators.calculator import Calculator
from pymatgen.core import Element, Structure

from amloop.oracles.base import OracleSetupError
from amloop.oracles.campaign_potential import COMMITTEE_PREFIX
from amloop.state.device import resolve_device as resolve_torch_device
from amloop.state.files import sha256_file

#: The universal potential used when no ``model`` is given.
DEFAULT_MODEL = "chgnet"


#: Files of a model directory saved by matgl (``Potential.save(dir)``).
MATGL_FILES = ("model.json", "model.pt", "state.pt")


def resolve_device(device: str | None = None) -> str:
    """Torch device for the potential: ``device`` if given, else ``AMLOOP_DEVICE``
    (see :func:`state.device.resolve_device`).

    Raises:
        OracleSetupError: an unknown device, or cuda asked for where there is none.
    """
    try:
        return str(resolve_torch_device(device))
    except ValueError as exc:
        raise OracleSetupError(f"{exc} (AMLOOP_DEVICE or device=...)") from None


def package_version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "unknown"


@dataclass(eq=False)
class Backend:
    """A loaded potential: its ASE calculator, the elements it covers and its provenance.

    Attributes:
        calculator: ASE calculator giving energy (eV), forces (eV/Å) and stress (eV/Å^3).
        elements: Element symbols the potential has parameters for.
        identity: Stable identifier of the weights (code and sha256), keying the caches.
        provenance: Code, version, weights file and its sha256.
        batch_energies: Energies per atom (eV/atom) of many structures in batched model
            calls (``structures, batch_size -> energies``), where the backend supports it.
        device_context: Context in which the calculator runs (default torch device).
        lock: Serialises use of the calculator, which is not thread-safe.
    """

    calculator: Calculator
    elements: frozenset[str]
    identity: str
    provenance: dict[str, Any]
    batch_energies: Callable[[Sequence[Structure], int], list[float]] | None = None
    device_context: Callable[[], contextlib.AbstractContextManager[Any]] = contextlib.nullcontext
    lock: threading.RLock = field(default_factory=threading.RLock)


def _stress_on_request(base: type[Calculator]) -> type[Calculator]:
    """CHGNet's calculator ``base`` computing the stress only when it is asked for.

    CHGNet's calculator always computes energy, forces, stress and moments; the stress is a
    second backward pass, ~40 % of the cost of a step. MD asks for forces at every step and for
    the stress (the pressure) only at its samples.
    """

    class StressOnRequest(base):  # type: ignore[misc,valid-type]
        def calculate(
            self,
            atoms: Any = None,
            properties: list[str] | None = None,
            system_changes: list[str] | None = None,
        ) -> None:
            task = "efs" if properties is None or "stress" in properties else "ef"
            super().calculate(atoms, properties, system_changes, task=task)

    StressOnRequest.__qualname__ = f"{base.__qualname__}[stress on request]"
    return StressOnRequest


def load_chgnet(device: str, *, stress_on_request: bool = False) -> Backend:
    """CHGNet with the 0.3.0 weights shipped in the ``chgnet`` wheel; with
    ``stress_on_request`` its calculator computes the stress only when asked (for MD)."""
    try:
        import chgnet
        from chgnet.model import CHGNet
        from chgnet.model.dynamics import CHGNetCalculator
    except ImportError as exc:
        raise OracleSetupError(
            f"model 'chgnet' needs the chgnet package ({exc}); install it with "
            "`pip install 'chgnet>=0.4.2'` (its wheel ships the 0.3.0 weights)"
        ) from None
    weights = sorted((Path(chgnet.__file__).parent / "pretrained" / "0.3.0").glob("*.pth.tar"))
    if not weights:
        raise OracleSetupError(
            f"the chgnet package at {Path(chgnet.__file__).parent} lacks its 0.3.0 weights "
            "(pretrained/0.3.0/*.pth.tar); reinstall it with `pip install --force-reinstall chgnet`"
        )
    # chgnet's stress path warns about a tensor it converts; harmless and once per process
    warnings.filterwarnings(
        "ignore", "Converting a tensor with requires_grad", UserWarning, "chgnet"
    )
    with contextlib.redirect_stdout(io.StringIO()):  # CHGNet prints its device
        model = CHGNet.load(model_name="0.3.0", use_device=device, verbose=False)
        calculator_class = (
            _stress_on_request(CHGNetCalculator) if stress_on_request else CHGNetCalculator
        )
        calculator = calculator_class(model, use_device=device)
    sha = sha256_file(weights[0])

    def batch_energies(structures: Sequence[Structure], batch_size: int) -> list[float]:
        predictions = model.predict_structure(list(structures), task="e", batch_size=batch_size)
        if isinstance(predictions, dict):
            predictions = [predictions]
        return [float(p["e"]) for p in predictions]  # CHGNet predicts eV/atom

    return Backend(
        calculator=calculator,
        elements=frozenset(Element.from_Z(z).symbol for z in range(1, 95)),
        identity=f"chgnet-0.3.0:{sha[:16]}",
        provenance={
            "code": "chgnet",
            "version": package_version("chgnet"),
            "weights": "0.3.0",
            "weights_file": str(weights[0]),
            "weights_sha256": sha,
        },
        batch_energies=batch_energies,
    )


def load_sevennet(device: str) -> Backend:
    """SevenNet-0 (11 Jul 2024) with the weights shipped in the ``sevenn`` wheel."""
    try:
        from sevenn.calculator import SevenNetCalculator
        from sevenn.util import pretrained_name_to_path
    except ImportError as exc:
        raise OracleSetupError(
            f"model '7net-0' needs the sevenn package ({exc}); install it with "
            "`pip install 'sevenn>=0.13'` (its wheel ships the 7net-0 weights)"
        ) from None
    weights = Path(pretrained_name_to_path("7net-0"))
    if not weights.is_file():
        raise OracleSetupError(
            f"the sevenn package lacks its 7net-0 weights ({weights}); reinstall it with "
            "`pip install --force-reinstall sevenn`"
        )
    with contextlib.redirect_stdout(io.StringIO()):
        calculator = SevenNetCalculator(str(weights), device=device)
    sha = sha256_file(weights)
    return Backend(
        calculator=calculator,
        elements=frozenset(Element.from_Z(z).symbol for z in calculator.type_map),
        identity=f"sevennet-0:{sha[:16]}",
        provenance={
            "code": "sevenn",
            "version": package_version("sevenn"),
            "weights": "7net-0 (11Jul2024)",
            "weights_file": str(weights),
            "weights_sha256": sha,
        },
    )


def _load_matgl(directory: str, device: str) -> Backend:
    """A matgl potential saved in ``directory`` (``model.json``, ``model.pt``, ``state.pt``)."""
    path = Path(directory).expanduser().resolve()
    missing = [name for name in MATGL_FILES if not (path / name).is_file()]
    if missing:
        where = "does not exist" if not path.is_dir() else f"lacks {', '.join(missing)}"
        raise OracleSetupError(
            f"matgl model directory {path} {where}: save a trained or fine-tuned matgl "
            "potential there with `Potential.save(dir)` (it writes model.json, model.pt and "
            "state.pt), or copy a pretrained model folder there by hand; amloop never "
            "downloads weights"
        )
    import matgl
    from matgl.apps.pes import Potential
    from matgl.ext.ase import PESCalculator

    try:
        potential = matgl.load_model(path)
    except Exception as exc:  # matgl wraps every load error in ValueError/RuntimeError
        cause = exc.__cause__ or exc
        raise OracleSetupError(f"matgl cannot load the model in {path}: {cause}") from None
    if not isinstance(potential, Potential):
        raise OracleSetupError(
            f"{path} holds a {type(potential).__name__}, not a matgl Potential: only potentials "
            "(energy, forces, stress) can relax structures"
        )
    potential = potential.to(device)
    sha = sha256_file(path / "state.pt")
    return Backend(
        calculator=PESCalculator(potential, stress_unit="eV/A3"),
        elements=frozenset(getattr(potential.model, "element_types", ())),
        identity=f"matgl:{sha[:16]}",
        provenance={
            "code": "matgl",
            "version": package_version("matgl"),
            "weights": type(potential.model).__name__,
            "weights_file": str(path / "state.pt"),
            "weights_sha256": sha,
        },
        # matgl builds its graphs on torch's default device
        device_context=functools.partial(torch.device, device),
    )


def _load_committee(directory: str, device: str) -> Backend:
    """The newest committee fitted under ``directory`` (``amloop mlp fit``): the members' mean,
    their spread in :attr:`CommitteeCalculator.spread`."""
    from amloop.oracles.campaign_potential import (
        committee_summary,
        member_folders,
        newest_committee,
    )
    from amloop.oracles.mlp.committee import CommitteeCalculator

    version = newest_committee(Path(directory).expanduser())
    if version is None:
        raise OracleSetupError(
            f"no committee potential fitted in {directory} yet: run `amloop mlp fit` once the "
            "campaign has force labels from the oracles named in mlp.train_on"
        )
    members = [_load_matgl(str(folder), device) for folder in member_folders(version)]
    summary = committee_summary(version)
    identity = hashlib.sha256("".join(m.identity for m in members).encode()).hexdigest()
    return Backend(
        calculator=CommitteeCalculator([m.calculator for m in members]),
        elements=frozenset(summary["elements"]),
        identity=f"committee:{identity[:16]}",
        provenance={
            "code": "matgl",
            "version": package_version("matgl"),
            "weights": f"committee of {len(members)} {summary['settings']['architecture']}",
            "committee": str(version),
            "n_labels": summary["n_labels"],
            "validation": summary["committee"],
        },
        device_context=members[0].device_context,
    )


@functools.cache
def _cached_backend(model: str, device: str, stamp: float) -> Backend:
    if model == "chgnet":
        return load_chgnet(device)
    if model == "7net-0":
        return load_sevennet(device)
    if model.startswith("matgl:"):
        return _load_matgl(model.removeprefix("matgl:"), device)
    if model.startswith(COMMITTEE_PREFIX):
        return _load_committee(model.removeprefix(COMMITTEE_PREFIX), device)
    raise OracleSetupError(
        f"unknown model '{model}'; use 'chgnet' or '7net-0' (universal potentials whose weights "
        "ship in their wheels), 'matgl:/path/to/model_dir' (a saved matgl potential), "
        "'committee:/path' (committees fitted by `amloop mlp fit`) or, in a campaign, 'campaign'"
    )


def load_backend(model: str, device: str) -> Backend:
    """The potential named by ``model`` on ``device``, loaded once per process.

    A matgl directory is reloaded when its ``state.pt`` changes (a new fine-tune), a committee
    folder when a newer version is fitted.

    Raises:
        OracleSetupError: unknown model, missing package or weights (the message says what to
            install or where to put the weights).
    """
    stamp = 0.0
    if model.startswith("matgl:"):
        state = Path(model.removeprefix("matgl:")).expanduser() / "state.pt"
        stamp = state.stat().st_mtime if state.is_file() else 0.0
    if model.startswith(COMMITTEE_PREFIX):
        from amloop.oracles.campaign_potential import committee_versions

        folder = Path(model.removeprefix(COMMITTEE_PREFIX)).expanduser()
        stamp = float(len(committee_versions(folder)))
    return _cached_backend(model, device, stamp)


def chgnet_calculator() -> Calculator:
    """CHGNet 0.3.0 as an MD calculator (``md`` oracle: ``engine: ase, calculator: chgnet``,
    an ``amloop.calculators`` entry point); each MD run gets a fresh one, not the relaxation
    oracle's shared one."""
    return load_chgnet(resolve_device(), stress_on_request=True).calculator


def committee_calculator(directory: str) -> Calculator:
    """The newest committee fitted under ``directory`` as an MD calculator (``md`` oracle:
    ``engine: ase, calculator: campaign`` or ``committee:/path``); each MD run gets its own."""
    return _load_committee(directory, resolve_device()).calculator


def sevennet_calculator() -> Calculator:
    """SevenNet 7net-0 as an MD calculator (``calculator: 7net-0``; the ``sevennet`` extra)."""
    return load_sevennet(resolve_device()).calculator
