"""Export a campaign's structures and results: extxyz (ASE), CIF (pymatgen) or CSV."""

from __future__ import annotations

import csv
import sys
from pathlib import Path
from typing import Any, Literal, TextIO

import numpy as np

from amloop.loop.history import history_records, record_columns
from amloop.state.schema import Candidate
from amloop.state.store import CampaignStore

ExportFormat = Literal["extxyz", "cif", "csv"]


def export_campaign(store: CampaignStore, fmt: ExportFormat, output: Path) -> int:
    """Write the campaign to ``output``; returns how many records were written.

    ``extxyz``: one frame per candidate with its finished oracle results in ``atoms.info``
    (``<oracle>.<property>`` in the property's unit); ``cif``: a folder with one CIF per
    candidate; ``csv``: the history, one row per oracle call or measurement with a column per
    property (:func:`loop.history.history_records`; no provenance: ``amloop history --format
    json`` has it).
    """
    from pymatgen.io.cif import CifWriter  # writers load with the command that writes

    if fmt == "csv":
        records = history_records(store)
        write_records_csv(records, output)
        return len(records)
    candidates = store.candidates()
    results: dict[str, dict[str, float | str]] = {c.content_hash: {} for c in candidates}
    for evaluation in store.evaluations(status="done"):
        info = results[evaluation.candidate_hash]
        for name, value in evaluation.properties.items():
            info[f"{evaluation.oracle}.{name}"] = value.value
            info[f"{evaluation.oracle}.{name}.unit"] = value.unit
    if fmt == "extxyz":
        write_extxyz(candidates, output, results)
        return len(candidates)
    output.mkdir(parents=True, exist_ok=True)
    for candidate in candidates:
        name = (
            f"{candidate.content_hash[:12]}_{candidate.structure.composition.reduced_formula}.cif"
        )
        CifWriter(candidate.structure).write_file(output / name)
    return len(candidates)


def write_extxyz(
    candidates: list[Candidate],
    output: Path,
    info: dict[str, dict[str, float | str]] | None = None,
) -> None:
    """Write candidates as extxyz frames with hash, origin, iteration, PDM target and any extra
    ``info`` (per content hash) in ``atoms.info``."""
    from ase.io import write as ase_write
    from pymatgen.io.ase import AseAtomsAdaptor

    frames = []
    for candidate in candidates:
        atoms = AseAtomsAdaptor.get_atoms(candidate.structure)
        atoms.info.update(
            content_hash=candidate.content_hash,
            origin=candidate.origin,
            iteration=-1 if candidate.iteration is None else candidate.iteration,
            **(info or {}).get(candidate.content_hash, {}),
        )
        if candidate.pdm_target is not None:
            atoms.info["pdm_target"] = np.asarray(candidate.pdm_target)
        frames.append(atoms)
    output.parent.mkdir(parents=True, exist_ok=True)
    ase_write(output, frames, format="extxyz")


def write_records_csv(records: list[dict[str, Any]], output: Path) -> None:
    """Write history records as CSV, a column per key (:func:`loop.history.record_columns`
    order, ``iteration`` first; empty where a record has no value), to ``output`` (a path or
    ``-`` for stdout)."""
    fields = ["iteration", *record_columns(records)]
    if str(output) == "-":
        _write(records, fields, sys.stdout)
        return
    output.parent.mkdir(parents=True, exist_ok=True)
    with output.open("w", newline="") as handle:
        _write(records, fields, handle)


#: A text cell starting with one of these is a formula to a spreadsheet (OWASP: CSV injection).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(value: object) -> object:
    """``value``, with a text cell that a spreadsheet would run as a formula quoted by a leading
    apostrophe; numbers are left alone."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def _write(records: list[dict[str, Any]], fields: list[str], handle: TextIO) -> None:
    writer = csv.DictWriter(handle, fieldnames=fields, extrasaction="ignore")
    writer.writeheader()
    for record in records:
        writer.writerow({key: spreadsheet_safe(value) for key, value in record.items()})
