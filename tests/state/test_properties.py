"""Property-based tests (hypothesis): composition parsing, structure round-trips and content
hashing, unit conversion."""

from __future__ import annotations

import math

import numpy as np
import pytest
from ase import units as ase_units
from hypothesis import given, settings
from hypothesis import strategies as st
from pymatgen.core import Element, Lattice, Structure

from amloop.state.composition import CompositionError, parse_composition, subsystems
from amloop.state.structures import (
    HASH_FRAC_DECIMALS,
    content_hash,
    structure_digest,
    structure_from_json,
    structure_to_json,
)
from amloop.state.units import (
    PROPERTY_DIMENSIONS,
    UNITS,
    UnitError,
    canonical_unit,
    to_canonical,
    uncertainty_to_canonical,
)

ELEMENTS = ["Al", "Co", "Cr", "Cu", "Fe", "Mn", "Ni", "Zr"]
EXAMPLES = settings(max_examples=50, deadline=None)

# ------------------------------------------------------------------ composition parsing
element_sets = st.lists(st.sampled_from(ELEMENTS), min_size=1, max_size=5, unique=True)


@st.composite
def fractional_compositions(draw: st.DrawFn) -> dict[str, float]:
    elements = draw(element_sets)
    amounts = [draw(st.floats(0.01, 1.0)) for _ in elements]
    total = sum(amounts)
    return {el: amount / total for el, amount in zip(elements, amounts, strict=True)}


@EXAMPLES
@given(fractional_compositions(), st.sampled_from(["", " "]))
def test_fractional_formula_parses_back(fractions: dict[str, float], separator: str) -> None:
    text = separator.join(f"{el}{x:.10f}" for el, x in fractions.items())
    parsed = parse_composition(text)
    assert list(parsed) == sorted(fractions)
    assert parsed == pytest.approx(fractions, abs=1e-6)
    assert math.fsum(parsed.values()) == pytest.approx(1.0, abs=1e-12)
    assert parse_composition(fractions) == pytest.approx(fractions, abs=1e-12)


@EXAMPLES
@given(
    element_sets.flatmap(lambda els: st.fixed_dictionaries({el: st.integers(1, 100) for el in els}))
)
def test_integer_formula_parses_to_fractions(amounts: dict[str, int]) -> None:
    text = "".join(f"{el}{n if n > 1 else ''}" for el, n in amounts.items())
    total = sum(amounts.values())
    assert parse_composition(text) == pytest.approx(
        {el: n / total for el, n in amounts.items()}, abs=1e-12
    )


FORBIDDEN = "!#$%&;<=>?^`|~\"',:"
garbage = st.one_of(
    # a formula spoiled by a character no formula contains
    st.tuples(
        st.text(alphabet="NiFeCr0123456789.", max_size=6),
        st.sampled_from(FORBIDDEN),
        st.text(max_size=6),
    ).map("".join),
    # lower-case words and bare numbers
    st.from_regex(r"\A[a-z][a-z0-9]{0,8}\Z"),
    st.from_regex(r"\A[0-9.]{1,6}\Z"),
    # symbol-shaped names that are no element (pymatgen reads X*, Q... as dummy species)
    st.from_regex(r"\A[A-Z][a-z]?\Z").filter(lambda s: not Element.is_valid_symbol(s)),
    # non-finite or negative amounts, unbalanced brackets, nothing at all
    st.sampled_from(["Ni1e999", "Ni-1Fe2", "Ni(Fe2", "NiFe)3", "Ni0", "", "  ", "()", "Ni1.2.3"]),
)


@EXAMPLES
@given(garbage)
def test_garbage_raises_composition_error(text: str) -> None:
    with pytest.raises(CompositionError):
        parse_composition(text)


@EXAMPLES
@given(
    st.one_of(st.text(max_size=12), st.text(alphabet="NiFeCrXQ()[]0123456789.e-+*@ ", max_size=12))
)
def test_any_text_parses_or_raises_composition_error(text: str) -> None:
    try:
        parsed = parse_composition(text)
    except CompositionError:
        return
    assert all(Element.is_valid_symbol(el) for el in parsed)
    assert all(math.isfinite(x) and x >= 0 for x in parsed.values())
    assert math.fsum(parsed.values()) == pytest.approx(1.0)


@pytest.mark.parametrize(
    "mapping", [{"Ni": float("nan")}, {"Ni": float("inf"), "Fe": 1.0}, {"Q": 1.0}, {"Ni": -1.0}, {}]
)
def test_bad_mappings_raise_composition_error(mapping: dict[str, float]) -> None:
    with pytest.raises(CompositionError):
        parse_composition(mapping)


# ------------------------------------------------------------------ structures
def off_boundary(x: float) -> bool:
    """``x`` is not (within float noise) on a rounding boundary of the content hash."""
    scaled = x * 10**HASH_FRAC_DECIMALS
    return abs(scaled - math.floor(scaled) - 0.5) > 1e-6


@st.composite
def structures(draw: st.DrawFn, *, coords: st.SearchStrategy[float] | None = None) -> Structure:
    abc = [draw(st.floats(2.0, 12.0)) for _ in range(3)]
    angles = [draw(st.floats(75.0, 105.0)) for _ in range(3)]
    n = draw(st.integers(1, 8))
    species = [draw(st.sampled_from(ELEMENTS)) for _ in range(n)]
    if coords is None:
        coords = st.floats(0.0, 1.0, exclude_max=True)
    frac = [[draw(coords) for _ in range(3)] for _ in range(n)]
    magmom = [draw(st.floats(-5.0, 5.0, allow_subnormal=False)) for _ in range(n)]
    return Structure(
        Lattice.from_parameters(*abc, *angles),
        species,
        frac,
        site_properties={"magmom": magmom, "tag": list(range(n))},
    )


@EXAMPLES
@given(structures(coords=st.floats(-2.0, 3.0)))
def test_structure_json_round_trip_is_exact(structure: Structure) -> None:
    back = structure_from_json(structure_to_json(structure))
    assert [s.species_string for s in back] == [s.species_string for s in structure]
    assert np.array_equal(back.lattice.matrix, structure.lattice.matrix)
    assert np.array_equal(back.frac_coords, structure.frac_coords)  # not wrapped, not rounded
    assert back.site_properties == structure.site_properties
    assert structure_to_json(back) == structure_to_json(structure)
    assert content_hash(back) == content_hash(structure)
    back.translate_sites([0], [0.25, 0.0, 0.0])  # the remembered parse is not handed out
    again = structure_from_json(structure_to_json(structure))
    assert again is not back
    assert structure_to_json(again) == structure_to_json(structure)


@EXAMPLES
@given(structures(coords=st.floats(0.0, 1.0, exclude_max=True).filter(off_boundary)), st.data())
def test_content_hash_ignores_site_order_and_lattice_translations(
    structure: Structure, data: st.DataObject
) -> None:
    n = len(structure)
    order = data.draw(st.permutations(range(n)))
    shifts = data.draw(
        st.lists(st.lists(st.integers(-2, 2), min_size=3, max_size=3), min_size=n, max_size=n)
    )
    moved = Structure(
        structure.lattice,
        [structure[i].species for i in order],
        [structure.frac_coords[i] + np.array(shifts[i], dtype=float) for i in order],
        site_properties={"magmom": [structure.site_properties["magmom"][i] for i in order]},
    )
    assert content_hash(moved) == content_hash(structure)


@EXAMPLES
@given(structures(), st.data())
def test_content_hash_changes_when_an_atom_moves(structure: Structure, data: st.DataObject) -> None:
    site = data.draw(st.integers(0, len(structure) - 1))
    axis = data.draw(st.integers(0, 2))
    delta = data.draw(st.floats(0.011, 0.989))  # > 0.01 away from its old position, mod 1
    frac = structure.frac_coords.copy()
    frac[site, axis] += delta
    moved = Structure(structure.lattice, structure.species, frac)
    assert content_hash(moved) != content_hash(structure)


def test_content_hash_tolerates_float_noise_and_sees_species() -> None:
    cell = Structure(Lattice.cubic(3.6), ["Ni", "Fe"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    noisy = Structure(
        Lattice.cubic(3.6 + 1e-6), ["Ni", "Fe"], [[1e-7, 1 - 1e-7, 0], [0.5, 0.5, 0.5]]
    )
    swapped = Structure(Lattice.cubic(3.6), ["Fe", "Ni"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    assert content_hash(noisy) == content_hash(cell)
    assert content_hash(swapped) != content_hash(cell)


def test_structure_digest_is_exact_in_site_order_and_context() -> None:
    """The memo key: equal for a copy or a parsed round trip; a different context (element
    order), float noise that content_hash tolerates, or a site order all give a new key."""
    cell = Structure(Lattice.cubic(3.6), ["Ni", "Fe"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    key = structure_digest(cell, "Ni", "Fe")
    assert structure_digest(cell.copy(), "Ni", "Fe") == key
    assert structure_digest(structure_from_json(structure_to_json(cell)), "Ni", "Fe") == key
    assert structure_digest(cell, "Fe", "Ni") != key
    noisy = Structure(Lattice.cubic(3.6), ["Ni", "Fe"], [[1e-7, 0, 0], [0.5, 0.5, 0.5]])
    assert content_hash(noisy) == content_hash(cell)
    assert structure_digest(noisy, "Ni", "Fe") != key
    reordered = Structure(Lattice.cubic(3.6), ["Fe", "Ni"], [[0.5, 0.5, 0.5], [0, 0, 0]])
    assert structure_digest(reordered, "Ni", "Fe") != key


# ------------------------------------------------------------------ units
def units_of(dimension: str) -> list[str]:
    return sorted(u for u, spec in UNITS.items() if spec.dimension == dimension)


properties = st.sampled_from(sorted(PROPERTY_DIMENSIONS))
values = st.floats(-1e6, 1e6, allow_nan=False)


@EXAMPLES
@given(properties, values, st.data())
def test_unit_round_trip(prop: str, value: float, data: st.DataObject) -> None:
    assert to_canonical(prop, value, canonical_unit(prop)) == value
    unit = data.draw(st.sampled_from(units_of(PROPERTY_DIMENSIONS[prop])))
    spec = UNITS[unit]
    in_unit = (value - spec.offset) / spec.scale  # ``value`` (canonical) expressed in ``unit``
    assert to_canonical(prop, in_unit, unit) == pytest.approx(value, rel=1e-12, abs=1e-9)
    assert uncertainty_to_canonical(prop, abs(in_unit), unit) == pytest.approx(
        abs(value - spec.offset), rel=1e-12, abs=1e-9
    )


@pytest.mark.parametrize(
    ("prop", "value", "unit", "expected"),
    [
        ("bulk_modulus", 1500.0, "MPa", 1.5),
        ("bulk_modulus", 1500.0, "mpa", 1.5),
        ("shear_modulus", 2.0, "kbar", 0.2),
        ("bulk_modulus", 1e9, "Pa", 1.0),
        ("bulk_modulus", 1.0, "eV/Å^3", 160.21766208),
        ("bulk_modulus", 1.0, "eV/A3", 160.21766208),
        # one constant set, ASE's (CODATA 2014): 1 eV = 96.4853 kJ/mol
        ("formation_energy_per_atom", ase_units.mol / ase_units.kJ, "kJ/mol", 1.0),
        ("formation_energy_per_atom", -250.0, "meV/atom", -0.25),
        ("diffusivity", 1.0, "m^2/s", 1e4),
        ("diffusivity", 1.0, "m²/s", 1e4),
        ("diffusivity", 3.0, "Å²/ps", 3e-4),
        ("diffusivity", 3.0, "A^2/ps", 3e-4),
        ("diffusivity", 2.0, "cm2/s", 2.0),
        ("glass_transition_temperature", 426.85, "°C", 700.0),
        ("overpotential", 0.35, "V", 350.0),
        ("density", 8900.0, "kg/m^3", 8.9),
        ("lambda1", 12.5, "%", 0.125),
    ],
)
def test_known_conversions(prop: str, value: float, unit: str, expected: float) -> None:
    assert to_canonical(prop, value, unit) == pytest.approx(expected, rel=1e-12)


def test_uncertainty_ignores_offsets() -> None:
    assert uncertainty_to_canonical("glass_transition_temperature", 5.0, "°C") == 5.0
    assert uncertainty_to_canonical("bulk_modulus", 500.0, "MPa") == pytest.approx(0.5)


@pytest.mark.parametrize(
    ("prop", "unit", "message"),
    [
        ("bulk_modulus", "furlong", "unknown unit 'furlong' for bulk_modulus; use one of:"),
        (
            "bulk_modulus",
            "eV",
            "unit 'eV' is a energy unit, but bulk_modulus needs a pressure unit",
        ),
        ("hardness", "GPa", "unknown property 'hardness'; known properties:"),
    ],
)
def test_bad_units_raise_unit_error(prop: str, unit: str, message: str) -> None:
    with pytest.raises(UnitError) as excinfo:
        to_canonical(prop, 1.0, unit)
    assert message in str(excinfo.value)


def test_subsystems_are_the_element_sets_a_composition_within_the_bounds_can_have():
    """Ni-Fe-Cr with Cr at most 0.6: no Cr-only cell; with Cr at least 0.4 every cell holds Cr
    and no Ni-Fe binary remains (what `amloop init` checks a potential map against)."""
    elements = ["Ni", "Fe", "Cr"]
    assert subsystems(elements, {"Cr": (0.0, 0.6)}) == [
        ("Ni",),
        ("Fe",),
        ("Ni", "Fe"),
        ("Ni", "Cr"),
        ("Fe", "Cr"),
        ("Ni", "Fe", "Cr"),
    ]
    assert subsystems(elements, {"Cr": (0.4, 0.6)}) == [
        ("Ni", "Cr"),
        ("Fe", "Cr"),
        ("Ni", "Fe", "Cr"),
    ]
    assert subsystems(["Cu", "Zr"], {"Cu": (0.3, 0.8), "Zr": (0.2, 0.7)}) == [("Cu", "Zr")]
