"""Registry of oracle classes by their YAML ``type:`` name."""

from __future__ import annotations

import importlib
from typing import Any, TypeVar

from oracles.base import FidelitySource, OracleSetupError
from state.config import OracleConfig

#: Modules that define the built-in oracles; imported on first use of the registry.
BUILTIN_MODULES: tuple[str, ...] = (
    "oracles.lammps",
    "oracles.md",
    "oracles.experiment",
    "oracles.mlp",
    "oracles.dft",
)

S = TypeVar("S", bound=FidelitySource)

_REGISTRY: dict[str, type[FidelitySource]] = {}


def register(cls: type[S]) -> type[S]:
    """Class decorator: make ``cls`` available under ``cls.type_name``."""
    existing = _REGISTRY.get(cls.type_name)
    if existing is not None and existing is not cls:
        raise ValueError(f"oracle type '{cls.type_name}' is already registered by {existing}")
    _REGISTRY[cls.type_name] = cls
    return cls


def _load_builtins() -> None:
    for module in BUILTIN_MODULES:
        importlib.import_module(module)


def oracle_types() -> list[str]:
    """Names of all registered oracle types."""
    _load_builtins()
    return sorted(_REGISTRY)


def create_oracle(type_name: str, **options: Any) -> FidelitySource:
    """Instantiate the oracle registered as ``type_name`` with ``options``.

    Raises:
        OracleSetupError: unknown type (the message lists the valid ones) or bad options.
    """
    _load_builtins()
    try:
        cls = _REGISTRY[type_name]
    except KeyError:
        raise OracleSetupError(
            f"unknown oracle type '{type_name}'; registered types: {', '.join(oracle_types())}"
        ) from None
    try:
        return cls(**options)
    except TypeError as exc:
        raise OracleSetupError(f"bad options for oracle '{type_name}': {exc}") from None


def oracle_from_config(config: OracleConfig) -> FidelitySource:
    """Instantiate the oracle a campaign config describes (name, fidelity, timeout, options)."""
    return create_oracle(
        config.type,
        name=config.name,
        fidelity=config.fidelity,
        timeout_s=config.timeout_s,
        **config.options,
    )
