"""Machine-learned interatomic potential oracle: energies, relaxation and formation energies.

Everything goes through an ASE calculator: single points (energy, forces, stress), relaxation
of positions and cell with an ASE optimiser on :class:`ase.filters.FrechetCellFilter`, and
formation energies against elemental references relaxed with the same potential.

The potential is chosen with one option, ``model``:

- ``"chgnet"`` (default): CHGNet 0.3.0 (Deng et al., Nat. Mach. Intell. 5, 1031 (2023)),
  a universal potential trained on the Materials Project trajectories (PBE/PBE+U). Its weights
  ship inside the ``chgnet`` wheel, so it runs offline; it batches single points natively.
- ``"7net-0"``: SevenNet-0 (Park et al., J. Chem. Theory Comput. 20, 4857 (2024)), trained on
  the same data; weights in the ``sevenn`` wheel. As fast as CHGNet on CPU and somewhat closer
  to experiment on formation energies and elastic moduli in our checks, but without a batched
  path, and it collapses without bound when two atoms start closer than ~0.7 Å (caught as an
  exploding energy).
- ``"matgl:/path/to/model_dir"``: a matgl potential (M3GNet, TensorNet, ...; pretrained or
  fine-tuned for the campaign) saved with ``Potential.save(dir)``: a folder holding
  ``model.json``, ``model.pt`` and ``state.pt``. matgl ships no weights and this oracle never
  downloads any: pretrained matgl models must be copied into such a folder by hand.

Elemental references (for ``formation_energy_per_atom``) are relaxed once per (model, element)
and cached in-process and in a JSON file (``<cache_dir>/mlp_references.json``). The reference
structure of an element is, in this order: an entry of :data:`ELEMENT_REFERENCES` (molecules
for the gaseous elements, the ground-state allotropes of B, C, P, S, Se, Te, Ga and Mn), else
ASE's standard crystal of the element (``ase.build.bulk(symbol)``, e.g. fcc Ni, bcc Fe, hcp
Zr, diamond Si, A7 Sb), else the lowest in energy of fcc, bcc and hcp (recorded as such).
Formation energies against gas molecules (H, N, O, F, Cl, Br, I) use the isolated molecule
without the fitted corrections of the Materials Project (they are not comparable to its
corrected formation energies of oxides, nitrides, ...).

The device is ``AMLOOP_DEVICE`` (``auto``: cuda if available, else cpu) unless the ``device``
option says otherwise.
"""

from __future__ import annotations

import contextlib
import functools
import io
import json
import math
import os
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import torch
from ase import Atoms, units
from ase.build import bulk, molecule
from ase.calculators.calculator import Calculator
from ase.data import atomic_numbers, reference_states
from ase.filters import FrechetCellFilter
from ase.neighborlist import neighbor_list
from ase.optimize import BFGS, FIRE
from ase.spacegroup import crystal
from ase.units import GPa as EV_PER_A3_PER_GPA
from pymatgen.core import Element, Lattice, Structure

from amloop.oracles.base import Oracle, OracleFailed, OracleResult, OracleSetupError
from amloop.oracles.gates import check_min_distance
from amloop.state.device import resolve_device as resolve_torch_device
from amloop.state.files import sha256_file
from amloop.state.schema import Candidate, Cost, Evaluation, PropertyValue

#: The universal potential used when no ``model`` is given.
DEFAULT_MODEL = "chgnet"
#: Files of a model directory saved by matgl (``Potential.save(dir)``).
MATGL_FILES = ("model.json", "model.pt", "state.pt")
#: Force tolerance (eV/Å) and step limit of the elemental reference relaxations (BFGS).
REFERENCE_FMAX = 0.01
REFERENCE_MAX_STEPS = 1000
#: Bumped whenever the reference structures or protocol change (invalidates the disk cache).
REFERENCE_PROTOCOL = 1
#: Edge of the cubic box (Å) holding a reference molecule.
MOLECULE_BOX = 12.0

Optimizer = Literal["FIRE", "BFGS"]
_OPTIMIZERS = {"FIRE": FIRE, "BFGS": BFGS}


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


def _package_version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "unknown"


# --------------------------------------------------------------------------------- backends


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


def _load_chgnet(device: str, *, stress_on_request: bool = False) -> Backend:
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
            "version": _package_version("chgnet"),
            "weights": "0.3.0",
            "weights_file": str(weights[0]),
            "weights_sha256": sha,
        },
        batch_energies=batch_energies,
    )


def _load_sevennet(device: str) -> Backend:
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
            "version": _package_version("sevenn"),
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
            "version": _package_version("matgl"),
            "weights": type(potential.model).__name__,
            "weights_file": str(path / "state.pt"),
            "weights_sha256": sha,
        },
        # matgl builds its graphs on torch's default device
        device_context=functools.partial(torch.device, device),
    )


@functools.cache
def _cached_backend(model: str, device: str, stamp: float) -> Backend:
    if model == "chgnet":
        return _load_chgnet(device)
    if model == "7net-0":
        return _load_sevennet(device)
    if model.startswith("matgl:"):
        return _load_matgl(model.removeprefix("matgl:"), device)
    raise OracleSetupError(
        f"unknown model '{model}'; use 'chgnet' or '7net-0' (universal potentials whose weights "
        "ship in their wheels) or 'matgl:/path/to/model_dir' (a saved matgl potential)"
    )


def load_backend(model: str, device: str) -> Backend:
    """The potential named by ``model`` on ``device``, loaded once per process.

    A matgl directory is reloaded when its ``state.pt`` changes (a new fine-tune).

    Raises:
        OracleSetupError: unknown model, missing package or weights (the message says what to
            install or where to put the weights).
    """
    stamp = 0.0
    if model.startswith("matgl:"):
        state = Path(model.removeprefix("matgl:")).expanduser() / "state.pt"
        stamp = state.stat().st_mtime if state.is_file() else 0.0
    return _cached_backend(model, device, stamp)


# ----------------------------------------------------------------------------- relaxation


@dataclass(frozen=True)
class Relaxation:
    """Outcome of one relaxation.

    Attributes:
        steps: Optimiser steps taken.
        converged: Whether the largest force (and cell force) fell below ``fmax``.
    """

    steps: int
    converged: bool


def energy_per_atom(atoms: Atoms, *, max_abs: float, stage: str) -> float:
    """Potential energy per atom (eV/atom) of ``atoms`` with its calculator, checked.

    Raises:
        OracleFailed: NaN or infinite energy, or ``|E| > max_abs`` eV/atom (exploding).
    """
    energy = float(atoms.get_potential_energy()) / len(atoms)
    if not math.isfinite(energy):
        raise OracleFailed(f"non-finite energy ({stage}): {energy} eV/atom")
    if abs(energy) > max_abs:
        raise OracleFailed(f"exploding energy ({stage}): {energy:.4g} eV/atom, |E| > {max_abs}")
    return energy


def relax(
    atoms: Atoms,
    *,
    fmax: float,
    max_steps: int,
    relax_cell: bool = True,
    optimizer: Optimizer = "FIRE",
    max_abs_energy: float = 20.0,
    min_distance: float = 0.0,
    deadline: float = math.inf,
) -> Relaxation:
    """Relax ``atoms`` (with its calculator attached) in place, watching every step.

    Args:
        atoms: Structure with an ASE calculator.
        fmax: Force tolerance (eV/Å; with ``relax_cell`` also on the cell degrees of freedom).
        max_steps: Most optimiser steps.
        relax_cell: Relax the cell too (:class:`~ase.filters.FrechetCellFilter`, to zero stress).
        optimizer: ASE optimiser, ``"FIRE"`` or ``"BFGS"``.
        max_abs_energy: Energies beyond ± this (eV/atom) count as exploded.
        min_distance: Two atoms closer than this (Å) count as collapsed.
        deadline: ``time.perf_counter()`` value after which the relaxation is abandoned.

    Raises:
        OracleFailed: at the first step where the energy is non-finite or exploded, two atoms
            fused (the short-range holes of universal potentials), the volume left
            ``(V0 / 2, 2 V0)``, or the deadline passed.
    """
    volume0 = atoms.get_volume()

    def watch() -> None:
        energy_per_atom(atoms, max_abs=max_abs_energy, stage="during relaxation")
        ratio = atoms.get_volume() / volume0
        if not 0.5 < ratio < 2.0:
            raise OracleFailed(f"cell collapsed or exploded: V/V_input = {ratio:.3f}")
        distances = neighbor_list("d", atoms, min_distance) if min_distance > 0 else []
        if len(distances):
            raise OracleFailed(
                f"atoms collapsed during relaxation: {min(distances):.3f} Å < "
                f"min_distance {min_distance} Å"
            )
        if time.perf_counter() > deadline:
            raise OracleFailed("timeout during relaxation")

    target = FrechetCellFilter(atoms) if relax_cell else atoms
    opt = _OPTIMIZERS[optimizer](target, logfile=None)
    opt.attach(watch, interval=1)
    converged = bool(opt.run(fmax=fmax, steps=max_steps))
    return Relaxation(steps=int(opt.nsteps), converged=converged)


# ---------------------------------------------------------------------- elemental references


@dataclass(frozen=True)
class ElementReference:
    """How to build the reference structure of an element.

    Attributes:
        label: Short description stored in the provenance (``"alpha-B (R-3m, B12)"``).
        build: Builds the unrelaxed structure.
        relax_cell: Relax the cell too (crystals) or only the positions (a molecule in a box).
    """

    label: str
    build: Callable[[], Atoms]
    relax_cell: bool = True


def _molecule(symbol: str, name: str, bond: float | None = None) -> ElementReference:
    """A diatomic molecule (ASE's g2 geometry, or ``bond`` Å) centred in a periodic box."""

    def build() -> Atoms:
        atoms = (
            Atoms(2 * symbol, positions=[(0, 0, 0), (0, 0, bond)])
            if bond is not None
            else molecule(name)
        )
        atoms.set_cell([MOLECULE_BOX] * 3)
        atoms.center()
        atoms.pbc = True
        return atoms

    return ElementReference(f"{name} molecule in a {MOLECULE_BOX:g} Å box", build, relax_cell=False)


def _crystal(
    label: str, symbol: str, sites: list[tuple[float, float, float]], **kwargs: Any
) -> ElementReference:
    """A crystal from its space group, Wyckoff sites and cell parameters (primitive cell)."""

    def build() -> Atoms:
        return crystal([symbol] * len(sites), basis=sites, primitive_cell=True, **kwargs)

    return ElementReference(label, build)


def _s8_ring() -> Atoms:
    """Crown-shaped S8 ring (S-S 2.05 Å, S-S-S 108°) in a periodic box."""
    radius, height = 2.345, 0.495  # from the bond length and angle
    angles = np.arange(8) * np.pi / 4
    positions = np.column_stack(
        [radius * np.cos(angles), radius * np.sin(angles), height * (-1.0) ** np.arange(8)]
    )
    atoms = Atoms("S8", positions=positions, cell=[MOLECULE_BOX] * 3, pbc=True)
    atoms.center()
    return atoms


#: Reference structures that ``ase.build.bulk(symbol)`` cannot build or builds wrongly.
#: Crystal data: alpha-B Decker & Kasper, Acta Cryst. 12, 503 (1959); graphite (PBE ground
#: state of C; diamond is ~0.1 eV/atom higher); trigonal Se/Te Cherin & Unger (1967, 1972);
#: black P Brown & Rundqvist (1965); alpha-Ga Bradley (1935); alpha-Mn Bradley & Thewlis (1927).
ELEMENT_REFERENCES: dict[str, ElementReference] = {
    "H": _molecule("H", "H2"),
    "N": _molecule("N", "N2"),
    "O": _molecule("O", "O2"),
    "F": _molecule("F", "F2"),
    "Cl": _molecule("Cl", "Cl2"),
    "Br": _molecule("Br", "Br2", bond=2.28),
    "I": _molecule("I", "I2", bond=2.67),
    "S": ElementReference("S8 ring in a 12 Å box", _s8_ring, relax_cell=False),
    "B": _crystal(
        "alpha-B (R-3m, B12)",
        "B",
        [(0.11886, 0.88114, 0.89133), (0.19686, 0.80314, 0.02432)],
        spacegroup=166,
        cellpar=[4.908, 4.908, 12.567, 90, 90, 120],
    ),
    "C": _crystal(
        "graphite (P6_3/mmc)",
        "C",
        [(0, 0, 0.25), (1 / 3, 2 / 3, 0.25)],
        spacegroup=194,
        cellpar=[2.464, 2.464, 6.711, 90, 90, 120],
    ),
    "P": _crystal(
        "black P (Cmce)",
        "P",
        [(0, 0.10168, 0.08056)],
        spacegroup=64,
        cellpar=[3.314, 10.478, 4.376, 90, 90, 90],
    ),
    "Se": _crystal(
        "trigonal Se (P3_121)",
        "Se",
        [(0.2254, 0, 1 / 3)],
        spacegroup=152,
        cellpar=[4.366, 4.366, 4.954, 90, 90, 120],
    ),
    "Te": _crystal(
        "trigonal Te (P3_121)",
        "Te",
        [(0.2636, 0, 1 / 3)],
        spacegroup=152,
        cellpar=[4.457, 4.457, 5.929, 90, 90, 120],
    ),
    "Ga": _crystal(
        "alpha-Ga (Cmce)",
        "Ga",
        [(0, 0.1549, 0.0810)],
        spacegroup=64,
        cellpar=[4.5197, 7.6633, 4.5260, 90, 90, 90],
    ),
    "Mn": _crystal(
        "alpha-Mn (I-43m, 29 atoms)",
        "Mn",
        [(0, 0, 0), (0.3179, 0.3179, 0.3179), (0.3571, 0.3571, 0.0347), (0.0896, 0.0896, 0.2819)],
        spacegroup=217,
        cellpar=[8.911, 8.911, 8.911, 90, 90, 90],
    ),
}


def reference_candidates(symbol: str) -> list[ElementReference]:
    """Reference structures to relax for ``symbol``; the lowest relaxed energy is the reference.

    The entry of :data:`ELEMENT_REFERENCES`, else ASE's standard crystal of the element, else
    fcc, bcc and hcp built from the element's atomic radius (to take the lowest of).
    """
    if symbol in ELEMENT_REFERENCES:
        return [ELEMENT_REFERENCES[symbol]]
    try:
        standard = bulk(symbol)
    except (ValueError, RuntimeError):  # no standard crystal that ASE can build
        radius = float(Element(symbol).atomic_radius or 1.5)
        return [
            ElementReference(
                f"fallback fcc {symbol}", lambda: bulk(symbol, "fcc", a=2 * math.sqrt(2) * radius)
            ),
            ElementReference(
                f"fallback bcc {symbol}", lambda: bulk(symbol, "bcc", a=4 * radius / math.sqrt(3))
            ),
            ElementReference(
                f"fallback hcp {symbol}",
                lambda: bulk(symbol, "hcp", a=2 * radius, c=2 * radius * math.sqrt(8 / 3)),
            ),
        ]
    reference_state = reference_states[atomic_numbers[symbol]]
    state = reference_state["symmetry"] if reference_state is not None else "unknown"
    return [ElementReference(f"{state} {symbol} (ASE standard crystal)", standard.copy)]


@dataclass(frozen=True)
class ReferenceEnergy:
    """Relaxed energy of an element's reference structure.

    Attributes:
        energy_per_atom: eV/atom.
        structure: Label of the reference structure (:attr:`ElementReference.label`).
    """

    energy_per_atom: float
    structure: str


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/amloop`` (``~/.cache/amloop`` when unset)."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "amloop"


class ReferenceCache:
    """Elemental reference energies per (model, element): in-process, and in a JSON file.

    The file maps ``"<model identity>|<element>|p<protocol>"`` to ``{"energy_per_atom",
    "structure"}``; writers merge what is on disk before replacing it atomically, so processes
    sharing the file lose nothing worse than an entry to recompute.
    """

    _memory: ClassVar[dict[str, ReferenceEnergy]] = {}
    _lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, path: Path | None):
        self.path = path

    @staticmethod
    def key(identity: str, symbol: str) -> str:
        """Cache key of ``symbol``'s reference under the model ``identity``."""
        return f"{identity}|{symbol}|p{REFERENCE_PROTOCOL}"

    def _read(self) -> dict[str, Any]:
        if self.path is None or not self.path.is_file():
            return {}
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):  # a corrupt cache is only a cache
            return {}
        return data if isinstance(data, dict) else {}

    def get(self, key: str) -> ReferenceEnergy | None:
        """The cached reference, from memory or else from the file."""
        with self._lock:
            if key in self._memory:
                return self._memory[key]
            entry = self._read().get(key)
            if isinstance(entry, dict):
                try:
                    found = ReferenceEnergy(
                        float(entry["energy_per_atom"]), str(entry["structure"])
                    )
                except (KeyError, TypeError, ValueError):
                    return None
                self._memory[key] = found
                return found
        return None

    def put(self, key: str, reference: ReferenceEnergy) -> None:
        """Remember ``reference`` in memory and, where there is a file, on disk."""
        with self._lock:
            self._memory[key] = reference
            if self.path is None:
                return
            data = self._read()
            data[key] = {
                "energy_per_atom": reference.energy_per_atom,
                "structure": reference.structure,
            }
            self.path.parent.mkdir(parents=True, exist_ok=True)
            handle, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".mlp_references.")
            with os.fdopen(handle, "w") as out:
                json.dump(data, out, indent=1, sort_keys=True)
            os.replace(tmp, self.path)

    @classmethod
    def clear_memory(cls) -> None:
        """Forget the in-process entries (the file stays)."""
        with cls._lock:
            cls._memory.clear()


# ---------------------------------------------------------------------------------- oracle


class MLPOracle(Oracle):
    """Relaxed energy and formation energy with a machine-learned interatomic potential.

    Properties: ``energy_per_atom`` (eV/atom, relaxed), ``formation_energy_per_atom``
    (eV/atom, relaxed, against the elemental references relaxed with the same potential) and
    ``pressure`` (GPa, of the relaxed cell). The per-structure provenance adds
    ``raw_energy_per_atom_eV`` (the structure as given, before relaxation),
    ``max_force_eV_per_A`` (after relaxation), ``relaxation_steps``, ``volume_ratio``
    (relaxed/input), the references used and their energies.

    Args:
        name: Name of this oracle in the campaign (defaults to ``"mlp"``).
        fidelity: Fidelity level in [0, 1].
        timeout_s: Wall-clock limit per structure (s).
        model: ``"chgnet"`` (default), ``"7net-0"`` or ``"matgl:/path/to/model_dir"``.
        device: ``"auto"``, ``"cpu"`` or ``"cuda[:N]"``; default ``AMLOOP_DEVICE``.
        optimizer: ASE optimiser, ``"FIRE"`` or ``"BFGS"``.
        relax_cell: Relax the cell to zero stress as well as the positions.
        fmax: Force tolerance of the relaxation (eV/Å). The cell converges with it to a stress
            of about ``fmax * N / V`` (FrechetCellFilter's scaling): ~0.7 GPa at 0.05 eV/Å for
            a metal, enough for lattice constants to ~0.1 %.
        max_steps: Most relaxation steps; a relaxation still above ``fmax`` then fails.
        min_distance: Closest allowed interatomic distance (Å), before and after relaxation.
        max_abs_energy_per_atom: Energies beyond ± this (eV/atom) count as exploded.
        batch_size: Structures per batched model call in :meth:`evaluate_many`.
        cache_dir: Folder of the elemental reference cache file (default
            :func:`default_cache_dir`).
        disk_cache: Keep elemental references on disk across processes (else in-process only).
    """

    type_name: ClassVar[str] = "mlp"
    properties: ClassVar[dict[str, str]] = {
        "energy_per_atom": "eV/atom",
        "formation_energy_per_atom": "eV/atom",
        "pressure": "GPa",
    }

    def __init__(
        self,
        *,
        name: str | None = None,
        fidelity: float = 0.5,
        timeout_s: float = 600.0,
        model: str = DEFAULT_MODEL,
        device: str | None = None,
        optimizer: Optimizer = "FIRE",
        relax_cell: bool = True,
        fmax: float = 0.05,
        max_steps: int = 500,
        min_distance: float = 0.8,
        max_abs_energy_per_atom: float = 20.0,
        batch_size: int = 16,
        cache_dir: str | None = None,
        disk_cache: bool = True,
    ):
        super().__init__(name=name, fidelity=fidelity, timeout_s=timeout_s)
        if optimizer not in _OPTIMIZERS:
            raise OracleSetupError(f"optimizer must be FIRE or BFGS, not '{optimizer}'")
        if fmax <= 0 or max_steps < 1 or batch_size < 1 or min_distance < 0:
            raise OracleSetupError(
                "need fmax > 0, max_steps >= 1, batch_size >= 1, min_distance >= 0"
            )
        self.model = str(model)
        self.device = resolve_device(device)
        self.backend = load_backend(self.model, self.device)
        self.optimizer: Optimizer = optimizer
        self.relax_cell = relax_cell
        self.fmax, self.max_steps = fmax, max_steps
        self.min_distance = min_distance
        self.max_abs_energy_per_atom = max_abs_energy_per_atom
        self.batch_size = batch_size
        folder = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
        self.references = ReferenceCache(folder / "mlp_references.json" if disk_cache else None)
        self._raw_energies: dict[int, float] = {}  # id(structure) -> eV/atom, see evaluate_many

    # -- elements and references -----------------------------------------------------------

    def check_elements(self, elements: Sequence[str]) -> None:
        """Fail fast when the potential lacks an element; relax the references of the others.

        Raises:
            OracleSetupError: an element is not covered by the model, or its reference fails.
        """
        missing = sorted(set(elements) - self.backend.elements)
        if missing:
            raise OracleSetupError(
                f"model '{self.model}' has no parameters for {', '.join(missing)} (it covers "
                f"{len(self.backend.elements)} elements)"
            )
        for symbol in elements:
            self.reference_energy(symbol)

    def reference_energy(self, symbol: str) -> ReferenceEnergy:
        """Relaxed energy (eV/atom) of ``symbol``'s reference structure, cached.

        Raises:
            OracleSetupError: no reference structure relaxes with this potential.
        """
        key = ReferenceCache.key(self.backend.identity, symbol)
        cached = self.references.get(key)
        if cached is not None:
            return cached
        found: list[ReferenceEnergy] = []
        problems: list[str] = []
        for reference in reference_candidates(symbol):
            atoms = reference.build()
            try:
                with self._calculator_on(atoms):
                    outcome = relax(
                        atoms,
                        fmax=REFERENCE_FMAX,
                        max_steps=REFERENCE_MAX_STEPS,
                        relax_cell=reference.relax_cell,
                        optimizer="BFGS",  # small cells near a minimum: fewer steps than FIRE
                        max_abs_energy=self.max_abs_energy_per_atom,
                        min_distance=self.min_distance,
                    )
                    energy = energy_per_atom(
                        atoms, max_abs=self.max_abs_energy_per_atom, stage="reference"
                    )
            except OracleFailed as exc:
                problems.append(f"{reference.label}: {exc}")
                continue
            if not outcome.converged:
                problems.append(f"{reference.label}: not converged in {outcome.steps} steps")
                continue
            found.append(ReferenceEnergy(energy, reference.label))
        if not found:
            raise OracleSetupError(
                f"no elemental reference of {symbol} relaxes with model '{self.model}': "
                + "; ".join(problems)
            )
        best = min(found, key=lambda r: r.energy_per_atom)
        self.references.put(key, best)
        return best

    # -- the computation -------------------------------------------------------------------

    @contextlib.contextmanager
    def _calculator_on(self, atoms: Atoms) -> Iterator[None]:
        """Attach the potential to ``atoms`` for the duration, holding the backend's lock."""
        with self.backend.lock, self.backend.device_context():
            atoms.calc = self.backend.calculator
            try:
                yield
            finally:
                atoms.calc = None

    def _prepare(self, structure: Structure) -> Atoms:
        """Checks before any model call, and the ASE atoms of ``structure``.

        Raises:
            OracleSetupError: an element the model does not cover.
            OracleFailed: partial occupancy or overlapping atoms.
        """
        if not structure.is_ordered:
            raise OracleFailed(
                "structure has partially occupied sites; the potential needs one atom each"
            )
        self.check_elements(sorted({site.specie.symbol for site in structure}))
        check_min_distance(structure, self.min_distance)
        return Atoms(
            symbols=[site.specie.symbol for site in structure],
            scaled_positions=structure.frac_coords,
            cell=structure.lattice.matrix,
            pbc=True,
        )

    def compute(self, structure: Structure) -> OracleResult:
        """Relax ``structure`` and compute its energy and formation energy per atom.

        Raises:
            OracleSetupError: an element the model does not cover, or whose reference fails.
            OracleFailed: partial occupancy, overlapping atoms, NaN or exploding energy, no
                convergence within ``max_steps``, a collapsed or exploded cell, lost
                composition, or the timeout.
        """
        started = time.perf_counter()
        atoms = self._prepare(structure)
        natoms = len(atoms)
        references = {el.symbol: self.reference_energy(el.symbol) for el in structure.composition}
        with self._calculator_on(atoms):
            raw = self._raw_energies.pop(id(structure), None)
            if raw is None:
                raw = energy_per_atom(atoms, max_abs=self.max_abs_energy_per_atom, stage="raw")
            elif not (math.isfinite(raw) and abs(raw) <= self.max_abs_energy_per_atom):
                raise OracleFailed(f"non-finite or exploding energy (raw): {raw:.4g} eV/atom")
            outcome = relax(
                atoms,
                fmax=self.fmax,
                max_steps=self.max_steps,
                relax_cell=self.relax_cell,
                optimizer=self.optimizer,
                max_abs_energy=self.max_abs_energy_per_atom,
                min_distance=self.min_distance,
                deadline=started + self.timeout_s,
            )
            energy = energy_per_atom(atoms, max_abs=self.max_abs_energy_per_atom, stage="relaxed")
            max_force = float(np.linalg.norm(atoms.get_forces(), axis=1).max())
            stress = atoms.get_stress(voigt=False)
        if not outcome.converged:
            stress_GPa = float(np.abs(stress).max()) / units.GPa
            raise OracleFailed(
                f"no convergence: max force {max_force:.3g} eV/Å, max |stress| "
                f"{stress_GPa:.3g} GPa after {outcome.steps} steps (fmax {self.fmax} eV/Å"
                + (" on atoms and the cell" if self.relax_cell else "")
                + f", max_steps {self.max_steps})"
            )
        relaxed = Structure(
            Lattice(np.array(atoms.cell)),
            atoms.get_chemical_symbols(),
            atoms.get_scaled_positions(),
        )
        if relaxed.composition != structure.composition.element_composition:
            raise OracleFailed(
                f"composition lost: {structure.composition.formula} -> {relaxed.composition.formula}"
            )
        formation = energy - sum(
            amount * references[el.symbol].energy_per_atom
            for el, amount in structure.composition.fractional_composition.items()
        )
        pressure = -float(np.trace(stress)) / 3.0 / EV_PER_A3_PER_GPA
        wall = time.perf_counter() - started
        return OracleResult(
            properties={
                "energy_per_atom": PropertyValue(value=energy, unit="eV/atom"),
                "formation_energy_per_atom": PropertyValue(value=float(formation), unit="eV/atom"),
                "pressure": PropertyValue(value=pressure, unit="GPa"),
            },
            relaxed_structure=relaxed,
            provenance={
                "natoms": natoms,
                "raw_energy_per_atom_eV": raw,
                "max_force_eV_per_A": max_force,
                "relaxation_steps": outcome.steps,
                "volume_ratio": relaxed.volume / structure.volume,
                "elemental_references": {
                    symbol: {"energy_per_atom_eV": ref.energy_per_atom, "structure": ref.structure}
                    for symbol, ref in references.items()
                },
                "wall_s": wall,
            },
            gpu_s=wall if self.device.startswith("cuda") else 0.0,
        )

    # -- batches ---------------------------------------------------------------------------

    def raw_energies_per_atom(self, structures: Sequence[Structure]) -> list[float]:
        """Single-point energies (eV/atom) of ``structures`` as given, batched where possible.

        With a backend that batches (CHGNet) this is one model call per ``batch_size``
        structures; otherwise one calculator call each. Unchecked: may hold NaN.
        """
        if self.backend.batch_energies is not None:
            with self.backend.lock, self.backend.device_context():
                return self.backend.batch_energies(structures, self.batch_size)
        energies = []
        for structure in structures:
            atoms = Atoms(
                symbols=[site.specie.symbol for site in structure],
                scaled_positions=structure.frac_coords,
                cell=structure.lattice.matrix,
                pbc=True,
            )
            with self._calculator_on(atoms):
                energies.append(float(atoms.get_potential_energy()) / len(atoms))
        return energies

    def evaluate_many(self, candidates: Sequence[Candidate]) -> list[Evaluation]:
        """Evaluate ``candidates``, with their raw single points in batched model calls.

        The results are those of :meth:`~oracles.base.Oracle.evaluate` on each candidate (the
        relaxations run one by one); the batched call's CPU time is shared out over the
        candidates in proportion to their atoms.

        Raises:
            OracleSetupError: as :meth:`evaluate`.
        """
        runnable: list[Structure] = []
        for candidate in candidates:
            try:
                self._prepare(candidate.structure)
            except OracleFailed:  # evaluate() records the failure
                continue
            runnable.append(candidate.structure)
        shares: dict[int, float] = {}
        if runnable:
            cpu0 = time.process_time()
            energies = self.raw_energies_per_atom(runnable)
            spent = time.process_time() - cpu0
            total_atoms = sum(len(s) for s in runnable)
            for structure, energy in zip(runnable, energies, strict=True):
                self._raw_energies[id(structure)] = energy
                shares[id(structure)] = spent * len(structure) / total_atoms
        try:
            evaluations = []
            for candidate in candidates:
                evaluation = self.evaluate(candidate)
                share = shares.get(id(candidate.structure), 0.0)
                evaluations.append(
                    evaluation.model_copy(update={"cost": evaluation.cost + Cost(core_s=share)})
                )
            return evaluations
        finally:
            self._raw_energies.clear()

    def provenance(self) -> dict[str, Any]:
        """Code, version, weights file with its sha256, device and relaxation parameters."""
        return {
            **super().provenance(),
            **self.backend.provenance,
            "model": self.model,
            "device": self.device,
            "parameters": {
                "optimizer": self.optimizer,
                "relax_cell": self.relax_cell,
                "fmax_eV_per_A": self.fmax,
                "max_steps": self.max_steps,
                "min_distance_A": self.min_distance,
                "max_abs_energy_per_atom_eV": self.max_abs_energy_per_atom,
                "reference_fmax_eV_per_A": REFERENCE_FMAX,
                "reference_optimizer": "BFGS",
                "reference_protocol": REFERENCE_PROTOCOL,
            },
        }


def chgnet_calculator() -> Calculator:
    """CHGNet 0.3.0 as an MD calculator (``md`` oracle: ``engine: ase, calculator: chgnet``,
    an ``amloop.calculators`` entry point); each MD run gets a fresh one, not the relaxation
    oracle's shared one."""
    return _load_chgnet(resolve_device(), stress_on_request=True).calculator


def sevennet_calculator() -> Calculator:
    """SevenNet 7net-0 as an MD calculator (``calculator: 7net-0``; the ``sevennet`` extra)."""
    return _load_sevennet(resolve_device()).calculator
