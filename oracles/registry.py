"""Oracle classes by their YAML ``type:`` name, found through entry points.

Every oracle type, built-in or from another distribution, is an entry point of the group
``amloop.oracles`` (``name = "module:Class"``; amloop's own are in its pyproject.toml). The
classes load lazily, on first use, in whichever process needs them: the ``amloop`` command, a
process-pool worker or a Dask worker. Nothing has to be imported beforehand: installing the
plugin distribution (``pip install``, or its ``*.dist-info`` on ``sys.path``) is enough.
:func:`register` adds a class for this process only (a notebook, a test).
"""

from __future__ import annotations

from importlib.metadata import EntryPoint, entry_points
from typing import Any, TypeVar

from amloop.oracles.base import FidelitySource, OracleSetupError
from amloop.state.config import OracleConfig

#: Entry-point group of oracle classes.
ORACLE_GROUP = "amloop.oracles"

S = TypeVar("S", bound=FidelitySource)

_REGISTRY: dict[str, type[FidelitySource]] = {}


def register(cls: type[S]) -> type[S]:
    """Class decorator: make ``cls`` available under ``cls.type_name`` in this process."""
    existing = _REGISTRY.get(cls.type_name)
    if existing is not None and existing is not cls:
        raise ValueError(f"oracle type '{cls.type_name}' is already registered by {existing}")
    _REGISTRY[cls.type_name] = cls
    return cls


def plugin_entry_points(group: str) -> dict[str, EntryPoint]:
    """The entry points of ``group`` by name (the first one wins where two share a name)."""
    found: dict[str, EntryPoint] = {}
    for point in entry_points(group=group):
        found.setdefault(point.name, point)
    return found


def load_entry_point(point: EntryPoint, what: str) -> Any:
    """``point.load()``, with a setup error that names the distribution if it fails."""
    try:
        return point.load()
    except Exception as exc:  # a broken plugin must not look like a broken campaign
        where = point.dist.name if point.dist is not None else "?"
        raise OracleSetupError(
            f"{what} '{point.name}' ({point.value}, from {where}) cannot be loaded: "
            f"{type(exc).__name__}: {exc}"
        ) from None


def oracle_types() -> list[str]:
    """Names of every oracle type: installed entry points and classes registered here."""
    return sorted(set(plugin_entry_points(ORACLE_GROUP)) | set(_REGISTRY))


def oracle_class(type_name: str) -> type[FidelitySource]:
    """The class of oracle type ``type_name`` (loaded from its entry point on first use).

    Raises:
        OracleSetupError: unknown type (the message lists the valid ones), or its entry point
            does not load or is not a :class:`FidelitySource` of that ``type_name``.
    """
    if type_name in _REGISTRY:
        return _REGISTRY[type_name]
    point = plugin_entry_points(ORACLE_GROUP).get(type_name)
    if point is None:
        raise OracleSetupError(
            f"unknown oracle type '{type_name}'; registered types: {', '.join(oracle_types())}"
        )
    cls = load_entry_point(point, "oracle type")
    if not (isinstance(cls, type) and issubclass(cls, FidelitySource)):
        raise OracleSetupError(f"oracle type '{type_name}' ({point.value}) is not an oracle class")
    if getattr(cls, "type_name", None) != type_name:
        raise OracleSetupError(
            f"entry point '{type_name}' loads {cls.__name__}, whose type_name is "
            f"'{getattr(cls, 'type_name', None)}'"
        )
    return register(cls)


def create_oracle(type_name: str, **options: Any) -> FidelitySource:
    """Instantiate the oracle type ``type_name`` with ``options``.

    Raises:
        OracleSetupError: unknown type (the message lists the valid ones) or bad options.
    """
    cls = oracle_class(type_name)
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
