"""Composition parsing on a campaign's chemical space (pymatgen does the formula grammar)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from itertools import combinations

from pymatgen.core import Composition, DummySpecies, Element, Structure


class CompositionError(ValueError):
    """A composition that cannot be parsed or lies outside the campaign's chemical space."""


def parse_composition(text: str | Mapping[str, float]) -> dict[str, float]:
    """Parse a formula (``Ni0.4Fe0.3Cr0.3``, ``Ni40Fe30Cr30``, ``NiFeCr``) or an element->amount
    mapping into atomic fractions that sum to 1, ordered by element symbol.

    Raises:
        CompositionError: unparseable text, unknown element, negative or all-zero amounts.
    """
    if isinstance(text, str) and not text.strip():
        raise CompositionError("empty composition")
    if not isinstance(text, str):
        for symbol, amount in text.items():
            try:
                finite = math.isfinite(float(amount))
            except (TypeError, ValueError):
                finite = False
            if not finite:
                raise CompositionError(
                    f"amount of {symbol} in {dict(text)!r} is not a finite number"
                )
    try:
        comp = Composition(text.strip() if isinstance(text, str) else dict(text))
    except (ValueError, KeyError, TypeError) as exc:
        raise CompositionError(f"cannot parse composition {text!r}: {exc}") from None
    for species in comp.elements:
        # pymatgen reads ``X``, ``Xx``, ``Q`` ... as dummy species, not as an error.
        if isinstance(species, DummySpecies) or not Element.is_valid_symbol(species.symbol):
            raise CompositionError(f"unknown element '{species.symbol}' in composition {text!r}")
    comp = comp.element_composition  # Fe2+ and Fe count as one element
    if any(amount < 0 for amount in comp.values()):
        raise CompositionError(f"negative amount in composition {text!r}")
    if not all(math.isfinite(amount) for amount in comp.values()) or not math.isfinite(
        comp.num_atoms
    ):
        raise CompositionError(f"non-finite amount in composition {text!r}")
    if comp.num_atoms <= 0:
        raise CompositionError(f"composition {text!r} has no atoms")
    fractions = comp.fractional_composition
    return {el.symbol: float(fractions[el]) for el in sorted(comp.elements, key=lambda e: e.symbol)}


def check_elements(symbols: Iterable[str]) -> list[str]:
    """Validate element symbols; returns them unchanged, raises :class:`CompositionError`."""
    symbols = list(symbols)
    for symbol in symbols:
        if not Element.is_valid_symbol(symbol):
            raise CompositionError(f"unknown element '{symbol}'")
    return symbols


def check_in_space(fractions: Mapping[str, float], elements: Iterable[str]) -> None:
    """Raise :class:`CompositionError` if the composition uses an element outside ``elements``."""
    space = set(elements)
    outside = sorted(el for el, x in fractions.items() if x > 0 and el not in space)
    if outside:
        raise CompositionError(
            f"element(s) {', '.join(outside)} not in the campaign's chemical space "
            f"({'-'.join(sorted(space))})"
        )


def formula(fractions: Mapping[str, float], *, decimals: int = 3) -> str:
    """A reduced, human-readable formula for atomic fractions, e.g. ``Cr0.3Fe0.3Ni0.4``."""
    return "".join(f"{el}{round(x, decimals):g}" for el, x in sorted(fractions.items()) if x > 0)


def atom_counts(composition: Mapping[str, float], n_atoms: int) -> dict[str, int]:
    """Whole numbers of atoms closest to ``composition`` (fractions or amounts, normalised here)
    summing to ``n_atoms``; the largest remainders get the leftover atoms (ties: by symbol).

    An element of at least half an atom is kept present (one atom, taken from the element
    whose rounding gave it the most): the acquisition's smallest fraction of a present element
    is ``0.5 / n_atoms``, and a mandatory element (lower bound > 0) must not vanish in a small
    cell (0.05 of 10 atoms).

    Raises:
        CompositionError: negative or all-zero amounts, or fewer than one atom.
    """
    total = sum(composition.values())
    if total <= 0 or n_atoms < 1 or any(x < 0 for x in composition.values()):
        raise CompositionError(
            f"cannot distribute {n_atoms} atoms over {dict(composition)}: need non-negative "
            "amounts with a positive sum and at least one atom"
        )
    exact = {el: n_atoms * x / total for el, x in composition.items()}
    counts = {el: math.floor(x) for el, x in exact.items()}
    leftover = n_atoms - sum(counts.values())
    for el in sorted(exact, key=lambda e: (counts[e] - exact[e], e))[:leftover]:
        counts[el] += 1
    for el in sorted(e for e, x in exact.items() if x >= 0.5 and counts[e] == 0):
        donors = [e for e in counts if counts[e] > 1]
        if not donors:
            break
        counts[max(donors, key=lambda e: (counts[e] - exact[e], e))] -= 1
        counts[el] = 1
    return {el: n for el, n in counts.items() if n > 0}


def structure_fractions(structure: Structure) -> dict[str, float]:
    """Atomic fractions of ``structure`` by element symbol."""
    fractions = structure.composition.fractional_composition
    return {element.symbol: float(x) for element, x in fractions.items()}


def subsystems(
    elements: Iterable[str], bounds: Mapping[str, tuple[float, float]]
) -> list[tuple[str, ...]]:
    """Every set of elements a composition within ``bounds`` (atomic fractions, default
    [0, 1]) can consist of: it holds each element whose lower bound is above 0, and its
    fractions can sum to 1. Smallest first."""
    symbols = list(elements)
    low = {el: bounds.get(el, (0.0, 1.0))[0] for el in symbols}
    high = {el: bounds.get(el, (0.0, 1.0))[1] for el in symbols}
    required = {el for el in symbols if low[el] > 0}
    found = []
    for size in range(1, len(symbols) + 1):
        for subset in combinations(symbols, size):
            if (
                required <= set(subset)
                and sum(high[el] for el in subset) >= 1.0 - 1e-9
                and sum(low[el] for el in subset) <= 1.0 + 1e-9
            ):
                found.append(subset)
    return found
