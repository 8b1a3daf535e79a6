"""``amloop quality REFERENCE GENERATED``: the table on the console and the overlay PNG."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import typer
from ase.io import write
from pymatgen.core import Lattice, Structure
from pymatgen.io.ase import AseAtomsAdaptor
from typer.testing import CliRunner

from amloop.generator.push_apart import push_apart
from amloop.generator.solid_solution import random_solid_solution
from amloop.loop import quality_cli
from amloop.loop.quality_cli import quality_command

app = typer.Typer()
app.command()(quality_command)


@pytest.fixture(autouse=True)
def wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    """Rows on one line whatever the terminal the tests run in."""
    monkeypatch.setattr(quality_cli.console, "width", 150)


def crystals(n: int) -> list[Structure]:
    rng = np.random.default_rng(0)
    return [random_solid_solution({"Cu": 0.5, "Ni": 0.5}, "fcc", 16, rng) for _ in range(n)]


def random_cells(n: int) -> list[Structure]:
    """Random placements in the crystals' cells, pushed apart to 2 Å."""
    rng = np.random.default_rng(1)
    cells = []
    for crystal in crystals(n):
        placed = Structure(crystal.lattice, crystal.species, rng.random((len(crystal), 3)))
        cells.append(push_apart(placed, 2.0))
    return cells


def test_quality_prints_the_table_and_writes_the_png(tmp_path: Path) -> None:
    reference = tmp_path / "reference.extxyz"
    write(reference, [AseAtomsAdaptor.get_atoms(s) for s in crystals(3)])
    generated = tmp_path / "generated"
    generated.mkdir()
    for k, structure in enumerate(random_cells(2)):
        structure.to(filename=str(generated / f"cell{k}.cif"))
    png = tmp_path / "plots" / "overlay.png"
    result = CliRunner().invoke(
        app, [str(reference), str(generated), "--out", str(png), "--bootstrap", "50"]
    )
    assert result.exit_code == 0, result.output
    for metric in ("d_rdf", "d_rdf Ni-Cu", "d_angle", "d_motif all", "d_motif Cu", "d_motif Ni"):
        assert metric in result.output
    assert "generated (2) vs reference.extxyz (3)" in result.output
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    # the crystals against themselves: every distance is 0
    same = CliRunner().invoke(
        app, [str(reference), str(reference), "--no-local", "--bootstrap", "0", "-o", str(png)]
    )
    assert same.exit_code == 0, same.output
    rows = [line for line in same.output.splitlines() if "d_rdf" in line]
    assert rows and all(line.split("│")[2].strip() == "0" for line in rows)


def test_quality_of_a_lattice_alloy_reports_short_range_order(tmp_path: Path) -> None:
    b2 = Structure(Lattice.cubic(2.887), ["Ni", "Al"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    b2.make_supercell(2)
    reference = tmp_path / "b2.json"
    reference.write_text(b2.to_json())
    result = CliRunner().invoke(
        app,
        [str(reference), str(reference), "--no-local", "--lattice-shells", "2", "--bootstrap", "0"],
    )
    assert result.exit_code == 0, result.output
    line = next(line for line in result.output.splitlines() if "alpha1 Al-Ni" in line)
    assert line.split("│")[2].strip() == "-1" and line.split("│")[5].strip() == "-1"
    assert (tmp_path / "b2_quality.png").is_file()
