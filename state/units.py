"""Units of the properties amloop stores, and conversion of user-given units to them.

Every property is stored in one canonical unit (eV, Å, GPa, K, cm²/s, ...). Values that arrive
in another unit (experimental measurements, user files, an engine's output such as LAMMPS's bar)
are converted with the table below, the one place for conversion factors; physical constants
come from one set, ASE's (:mod:`ase.units`). An unknown unit, or one of the wrong dimension, is
an error rather than a silent guess.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ase import units as ase_units
from pymatgen.core import Element


@dataclass(frozen=True)
class UnitSpec:
    """A unit: its physical dimension and how to reach the dimension's canonical unit."""

    dimension: str
    scale: float  # canonical = value * scale + offset
    offset: float = 0.0


#: Canonical unit per dimension.
CANONICAL_UNITS: dict[str, str] = {
    "pressure": "GPa",
    "energy_per_atom": "eV/atom",
    "energy": "eV",
    "diffusivity": "cm^2/s",
    "temperature": "K",
    "potential": "mV",
    "length": "Å",
    "density": "g/cm^3",
    "current_density": "mA/cm^2",
    "density_of_states": "states/eV/atom",
    "dimensionless": "1",
}

#: Accepted spellings of units (after :func:`normalise_unit`), with their conversion.
UNITS: dict[str, UnitSpec] = {
    # pressure / elastic moduli
    "gpa": UnitSpec("pressure", 1.0),
    "mpa": UnitSpec("pressure", 1e-3),
    "kpa": UnitSpec("pressure", 1e-6),
    "pa": UnitSpec("pressure", 1e-9),
    "bar": UnitSpec("pressure", 1e-4),
    "kbar": UnitSpec("pressure", 0.1),
    "ev/å^3": UnitSpec("pressure", 1.0 / ase_units.GPa),
    # energies per atom
    "ev/atom": UnitSpec("energy_per_atom", 1.0),
    "mev/atom": UnitSpec("energy_per_atom", 1e-3),
    "kj/mol": UnitSpec("energy_per_atom", ase_units.kJ / ase_units.mol),
    "kcal/mol": UnitSpec("energy_per_atom", ase_units.kcal / ase_units.mol),
    # energies
    "ev": UnitSpec("energy", 1.0),
    "mev": UnitSpec("energy", 1e-3),
    "j": UnitSpec("energy", ase_units.J),
    # diffusivity
    "cm^2/s": UnitSpec("diffusivity", 1.0),
    "m^2/s": UnitSpec("diffusivity", 1e4),
    "mm^2/s": UnitSpec("diffusivity", 1e-2),
    "å^2/ps": UnitSpec("diffusivity", 1e-4),
    "å^2/fs": UnitSpec("diffusivity", 1e-1),
    # temperature
    "k": UnitSpec("temperature", 1.0),
    "°c": UnitSpec("temperature", 1.0, 273.15),
    "c": UnitSpec("temperature", 1.0, 273.15),
    # electrochemical potential / overpotential
    "mv": UnitSpec("potential", 1.0),
    "v": UnitSpec("potential", 1e3),
    # length
    "å": UnitSpec("length", 1.0),
    "nm": UnitSpec("length", 10.0),
    "pm": UnitSpec("length", 1e-2),
    # density
    "g/cm^3": UnitSpec("density", 1.0),
    "kg/m^3": UnitSpec("density", 1e-3),
    # current density
    "ma/cm^2": UnitSpec("current_density", 1.0),
    "a/cm^2": UnitSpec("current_density", 1e3),
    "a/m^2": UnitSpec("current_density", 0.1),
    # density of states
    "states/ev/atom": UnitSpec("density_of_states", 1.0),
    # dimensionless
    "1": UnitSpec("dimensionless", 1.0),
    "": UnitSpec("dimensionless", 1.0),
    "%": UnitSpec("dimensionless", 1e-2),
}

#: Spellings whose meaning depends on case (megabar vs millibar, MeV vs meV): matched exactly,
#: before the case-folded table above.
CASED_UNITS: dict[str, UnitSpec] = {
    "Mbar": UnitSpec("pressure", 100.0),
    "mbar": UnitSpec("pressure", 1e-7),
    "MeV": UnitSpec("energy", 1e6),
    "meV": UnitSpec("energy", 1e-3),
    "MeV/atom": UnitSpec("energy_per_atom", 1e6),
    "meV/atom": UnitSpec("energy_per_atom", 1e-3),
}

#: Properties amloop knows, with the dimension they are stored in.
PROPERTY_DIMENSIONS: dict[str, str] = {
    "bulk_modulus": "pressure",
    "shear_modulus": "pressure",
    "pressure": "pressure",
    "energy_per_atom": "energy_per_atom",
    "formation_energy_per_atom": "energy_per_atom",
    "energy_above_hull": "energy_per_atom",
    "activation_energy": "energy",
    "d_band_center": "energy",
    "d_band_width": "energy",
    "dos_at_fermi": "density_of_states",
    "diffusivity": "diffusivity",
    "glass_transition_temperature": "temperature",
    "overpotential": "potential",
    "density": "density",
    "current_density": "current_density",
    "lambda1": "dimensionless",
    "lambda2": "dimensionless",
}


class UnitError(ValueError):
    """A unit that is unknown, or of the wrong dimension for its property."""


def normalise_unit(unit: str) -> str:
    """Lower-case spelling with common variants folded (``cm2/s`` -> ``cm^2/s``, ``A`` -> ``å``)."""
    text = unit.strip().lower().replace(" ", "").replace("²", "^2").replace("³", "^3")
    text = text.replace("**", "^").replace("angstrom", "å").replace("ang", "å")
    text = re.sub(r"(?<=[a-zå])([23])", r"^\1", text)  # cm2 -> cm^2, a3 -> a^3
    if text == "a" or text.startswith("a^2/"):
        text = "å" + text[1:]
    return text.replace("/a^3", "/å^3")


def lookup_unit(unit: str) -> UnitSpec | None:
    """The spec of ``unit``: case-sensitive spellings first, then the case-folded table."""
    return CASED_UNITS.get(unit.strip()) or UNITS.get(normalise_unit(unit))


def unit_factor(unit: str) -> float:
    """Multiplier from ``unit`` to its dimension's canonical unit (``"bar"`` -> 1e-4 GPa,
    ``"Å^2/ps"`` -> 1e-4 cm²/s); for units with an offset (°C) use :func:`to_canonical`.

    Raises:
        UnitError: ``unit`` is not in the table, or has an offset.
    """
    spec = lookup_unit(unit)
    if spec is None or spec.offset:
        raise UnitError(f"'{unit}' is not a unit with a plain conversion factor")
    return spec.scale


def _accepted_units(dimension: str) -> str:
    table = {**UNITS, **CASED_UNITS}
    return ", ".join(sorted({u for u, spec in table.items() if spec.dimension == dimension and u}))


#: Properties that also exist per element, as ``<name>_<element>`` (``diffusivity_Li``).
PER_ELEMENT_PROPERTIES = ("diffusivity", "activation_energy", "d_band_center", "d_band_width")


def property_dimension(prop: str) -> str:
    """Dimension a property is stored in (``diffusivity_Li`` is a per-element diffusivity).

    Raises:
        UnitError: unknown property.
    """
    if prop in PROPERTY_DIMENSIONS:
        return PROPERTY_DIMENSIONS[prop]
    base, _, element = prop.rpartition("_")
    if base in PER_ELEMENT_PROPERTIES and Element.is_valid_symbol(element):
        return PROPERTY_DIMENSIONS[base]
    raise UnitError(
        f"unknown property '{prop}'; known properties: {', '.join(sorted(PROPERTY_DIMENSIONS))} "
        f"(and per element: {', '.join(f'{p}_<El>' for p in PER_ELEMENT_PROPERTIES)})"
    )


def is_known_property(prop: str) -> bool:
    """Whether ``prop`` has a stored unit (listed, or a per-element form of a listed one)."""
    try:
        property_dimension(prop)
    except UnitError:
        return False
    return True


def canonical_unit(prop: str) -> str:
    """The unit a property is stored in, e.g. ``bulk_modulus`` -> ``GPa``."""
    return CANONICAL_UNITS[property_dimension(prop)]


def to_canonical(prop: str, value: float, unit: str) -> float:
    """Convert ``value`` given in ``unit`` to ``prop``'s canonical unit.

    Raises:
        UnitError: unknown unit, or a unit of another dimension than the property's.
    """
    dimension = property_dimension(prop)
    spec = lookup_unit(unit)
    accepted = _accepted_units(dimension)
    if spec is None:
        raise UnitError(f"unknown unit '{unit}' for {prop}; use one of: {accepted}")
    if spec.dimension != dimension:
        raise UnitError(
            f"unit '{unit}' is a {spec.dimension.replace('_', ' ')} unit, but {prop} needs a "
            f"{dimension.replace('_', ' ')} unit: one of {accepted}"
        )
    return value * spec.scale + spec.offset


def uncertainty_to_canonical(prop: str, sigma: float, unit: str) -> float:
    """Convert a standard uncertainty (a difference, so offsets such as °C→K do not apply)."""
    to_canonical(prop, 0.0, unit)  # validates unit and dimension
    spec = lookup_unit(unit)
    assert spec is not None
    return abs(sigma) * spec.scale
