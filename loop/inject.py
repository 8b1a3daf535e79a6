"""Experimental measurements from CSV: validated row by row, stored all-or-nothing.

Columns: ``composition`` (or ``formula``), ``property``, ``value``, ``unit``, ``uncertainty``,
``source``, and optionally ``method`` (how it was measured), ``request`` (the lab-request id it
answers; otherwise it is matched by composition) and ``structure`` (a CIF/POSCAR/extxyz path,
relative to the CSV file). Lines starting with ``#`` are comments.
If any row is bad the whole file is rejected with one message per bad row.
"""

from __future__ import annotations

import csv
import hashlib
import math
from pathlib import Path

from pymatgen.core import Structure

from amloop.state.composition import CompositionError, check_in_space, parse_composition
from amloop.state.config import CampaignConfig
from amloop.state.schema import Measurement
from amloop.state.store import CampaignStore
from amloop.state.structures import read_structures
from amloop.state.units import (
    UnitError,
    canonical_unit,
    is_known_property,
    property_dimension,
    to_canonical,
    uncertainty_to_canonical,
)

REQUIRED_COLUMNS = ("property", "value", "unit", "uncertainty", "source")
#: Largest measurements file read (bytes): a lab's results, not a data dump.
MAX_FILE_BYTES = 20_000_000
#: Largest difference (atomic fraction) tolerated between a row's composition and its structure.
STRUCTURE_COMPOSITION_TOLERANCE = 0.02


class InjectError(ValueError):
    """The measurement file was rejected; the message lists every bad row."""


def read_measurements(
    path: Path, config: CampaignConfig, *, iteration: int, allow_outside: bool = False
) -> list[Measurement]:
    """Parse and validate a measurement CSV against the campaign ``config``.

    Args:
        path: the CSV file.
        config: the campaign's config (chemical space, objectives).
        iteration: first loop iteration that will use these measurements.
        allow_outside: read ``structure`` files outside the CSV's folder too.

    Raises:
        InjectError: missing columns or any bad row (all problems listed, row-numbered).
    """
    if not path.is_file():
        raise InjectError(f"measurement file not found: {path}")
    if path.stat().st_size > MAX_FILE_BYTES:
        raise InjectError(
            f"{path}: {path.stat().st_size / 1e6:.1f} MB is more than a measurements file holds "
            f"({MAX_FILE_BYTES / 1e6:.0f} MB at most); split it"
        )
    raw = path.read_bytes()
    sha = hashlib.sha256(raw).hexdigest()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InjectError(
            f"{path}: not UTF-8 text (byte {exc.start}): save it as CSV (UTF-8)"
        ) from None
    lines = [line for line in text.splitlines() if not line.startswith("#")]
    reader = csv.DictReader(lines)
    try:
        rows = list(reader)
    except csv.Error as exc:  # e.g. a field over the csv module's 128 kB limit
        raise InjectError(f"{path}: not a readable CSV file: {exc}") from None
    columns = {c.strip().lower() for c in reader.fieldnames or []}
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if "composition" not in columns and "formula" not in columns:
        missing.insert(0, "composition (or formula)")
    if missing:
        raise InjectError(
            f"{path}: missing column(s) {', '.join(missing)}; expected columns: composition, "
            "property, value, unit, uncertainty, source[, method, request, structure]"
        )
    measurements: list[Measurement] = []
    errors: list[str] = []
    for number, row in enumerate(rows, start=1):
        cells = {k.strip().lower(): (v or "").strip() for k, v in row.items() if k is not None}
        try:
            measurements.append(
                _parse_row(cells, path, config, iteration, sha, number, allow_outside)
            )
        except (CompositionError, UnitError, ValueError) as exc:
            errors.append(f"row {number}: {exc}")
    if len(errors) == 1:
        raise InjectError(f"{path}: {errors[0]}; nothing was stored")
    if errors:
        raise InjectError(
            f"{path}: {len(errors)} bad rows; nothing was stored:\n"
            + "\n".join(f"  {error}" for error in errors)
        )
    if not measurements:
        raise InjectError(f"{path}: no data rows")
    return measurements


def inject_measurements(
    store: CampaignStore, config: CampaignConfig, path: Path, *, allow_outside: bool = False
) -> list[Measurement]:
    """Validate ``path`` and store its measurements (all or nothing) for the next iteration.

    A rejected file is recorded as an ``inject_rejected`` event in the campaign log.

    Raises:
        InjectError: the file or one of its rows is bad, a row answers an unknown request, or
            the same file (by sha256) was injected before.
    """
    try:
        measurements = read_measurements(
            path, config, iteration=store.next_iteration_index(), allow_outside=allow_outside
        )
        digest = measurements[0].source_file_sha256
        earlier = [m for m in store.measurements() if m.source_file_sha256 == digest]
        if earlier:
            raise InjectError(
                f"{path}: this file (sha256 {str(digest)[:12]}) was injected already "
                f"({len(earlier)} measurement(s) from {earlier[0].source_file}); nothing was stored"
            )
        try:
            return store.add_measurements(measurements)
        except LookupError as exc:
            raise InjectError(f"{path}: {exc}; nothing was stored") from None
    except InjectError as exc:
        store.log_event("inject_rejected", str(exc), payload={"file": str(path)})
        raise


def _parse_row(
    cells: dict[str, str],
    path: Path,
    config: CampaignConfig,
    iteration: int,
    sha: str,
    number: int,
    allow_outside: bool,
) -> Measurement:
    text = cells.get("composition") or cells.get("formula") or ""
    fractions = parse_composition(text)
    check_in_space(fractions, config.elements)
    prop = cells["property"]
    custom = {o.property: o for o in config.objectives if not is_known_property(o.property)}
    if prop not in custom:
        property_dimension(prop)  # UnitError naming the known properties
    raw_value = _number(cells["value"], "value")
    raw_sigma = _number(cells["uncertainty"], "uncertainty") if cells["uncertainty"] else None
    if raw_sigma is not None and raw_sigma < 0:
        raise ValueError(f"uncertainty {raw_sigma} is negative")
    unit = cells["unit"]
    if prop not in custom:
        value = to_canonical(prop, raw_value, unit)
        sigma = uncertainty_to_canonical(prop, raw_sigma, unit) if raw_sigma is not None else None
        canonical = canonical_unit(prop)
    else:  # a campaign-specific property: its objective's unit, taken as written
        objective = custom[prop]
        if unit != objective.unit:
            raise ValueError(f"{prop} must be given in {objective.unit}, got '{unit}'")
        value, sigma, canonical = raw_value, raw_sigma, unit
    source = cells["source"]
    if not source:
        raise ValueError("source is empty: say where the value comes from (lab, paper, DOI)")
    structure = _structure(cells.get("structure", ""), path, fractions, allow_outside)
    request = cells.get("request", "").lstrip("#")
    if request and not request.isdigit():
        raise ValueError(f"request '{cells['request']}' is not a lab-request id such as 3")
    return Measurement(
        composition=fractions,
        property=prop,
        value=value,
        unit=canonical,
        uncertainty=sigma,
        source=source,
        raw_value=raw_value,
        raw_unit=unit,
        structure=structure,
        method=cells.get("method") or None,
        request_id=int(request) if request else None,
        source_file=str(path.resolve()),
        source_file_sha256=sha,
        source_row=number,
        iteration=iteration,
    )


def _number(text: str, column: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{column} '{text}' is not a number") from None
    if not math.isfinite(value):
        raise ValueError(f"{column} '{text}' is not finite")
    return value


def _structure(
    reference: str, csv_path: Path, fractions: dict[str, float], allow_outside: bool
) -> Structure | None:
    if not reference:
        return None
    folder = csv_path.parent.resolve()
    file = (folder / reference).resolve()  # an absolute reference replaces the folder
    if not allow_outside and not file.is_relative_to(folder):
        raise ValueError(
            f"structure path {reference!r} is outside the CSV's folder {folder}; "
            "give --allow-outside to read it"
        )
    if not file.is_file():
        raise ValueError(f"structure file not found: {file}")
    structures = read_structures(file)
    if len(structures) != 1:
        raise ValueError(f"structure file {file.name} holds {len(structures)} structures, not one")
    structure = structures[0]
    actual = structure.composition.fractional_composition
    worst = max(
        abs(actual[el] - fractions.get(el, 0.0))
        for el in {*fractions, *(e.symbol for e in actual.elements)}
    )
    if worst > STRUCTURE_COMPOSITION_TOLERANCE:
        raise ValueError(
            f"structure {file.name} has composition {actual.formula}, which differs from the "
            f"row's composition by {worst:.3f} in atomic fraction"
        )
    return structure
