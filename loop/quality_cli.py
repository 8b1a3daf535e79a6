"""``amloop quality REFERENCE GENERATED``: seed 002's metrics of a generated set, table and plot.

Registered in loop/cli.py. Either argument is a structure file (CIF, POSCAR, pymatgen JSON,
extxyz with any number of frames) or a folder of such files.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:  # the metrics (pymatgen's local environments, matplotlib) load when used
    from pymatgen.core import Structure

    from amloop.generator.quality import MetricRow, SetDescriptors

console = Console()


def read_structure_set(path: Path) -> list[Structure]:
    """Every structure in a file, or in every file of a folder (sorted by name).

    Raises:
        StructureFileError: missing path, an unreadable file, or an empty folder.
    """
    from amloop.state.structures import StructureFileError, read_structures

    if not path.is_dir():
        return read_structures(path)
    files = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith("."))
    structures = [s for file in files for s in read_structures(file)]
    if not structures:
        raise StructureFileError(f"no structure files in folder {path}")
    return structures


def _parse_oxidation_states(text: str | None) -> dict[str, float] | None:
    if not text:
        return None
    try:
        pairs = (item.split("=") for item in text.replace(" ", "").split(",") if item)
        return {el: float(state) for el, state in pairs}
    except ValueError:
        raise typer.BadParameter(f"'{text}' is not like Li=1,Co=3,O=-2") from None


def _format(value: float | None) -> str:
    if value is None or math.isnan(value):
        return ""
    return f"{value:.4g}"


def print_table(rows: list[MetricRow], title: str) -> None:
    """The quality rows as a rich table on the console."""
    table = Table(title=title)
    for column in ("metric", "value", "95% CI low", "95% CI high", "reference"):
        table.add_column(column, justify="left" if column == "metric" else "right")
    for row in rows:
        table.add_row(
            row.metric, _format(row.value), _format(row.low), _format(row.high),
            _format(row.reference),
        )  # fmt: skip
    console.print(table)


def plot_overlays(reference: SetDescriptors, generated: SetDescriptors, path: Path) -> None:
    """PNG of the average total ``g(r)`` and bond-angle distributions of both sets."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from amloop.generator.quality import angle_grid, rdf_grid

    panels = 2 if reference.angles is not None and generated.angles is not None else 1
    figure, axes = plt.subplots(1, panels, figsize=(6 * panels, 4), squeeze=False)
    rdf_axis = axes[0, 0]
    for label, data in (("reference", reference), ("generated", generated)):
        rdf_axis.plot(rdf_grid(), data.rdf.mean(0), label=f"{label} ({len(data)})")
    rdf_axis.set(xlabel="r (Å)", ylabel="g(r)", title="average RDF")
    rdf_axis.legend()
    if panels == 2:
        angle_axis = axes[0, 1]
        for label, data in (("reference", reference), ("generated", generated)):
            assert data.angles is not None
            angle_axis.plot(angle_grid(), data.angles.mean(0), label=label)
        angle_axis.set(xlabel="bond angle (°)", ylabel="fraction per 0.5°", title="bond angles")
        angle_axis.legend()
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)


def quality_command(
    reference: Annotated[Path, typer.Argument(help="reference (training) structures")],
    generated: Annotated[Path, typer.Argument(help="generated structures")],
    out: Annotated[
        Path | None,
        typer.Option(
            "--output", "-o", "--out", help="PNG of the overlays (default GENERATED_quality.png)"
        ),
    ] = None,
    bootstrap: Annotated[int, typer.Option(min=0, help="bootstrap resamples per CI")] = 1000,
    local: Annotated[
        bool, typer.Option(help="CrystalNN bond angles and motifs (about 1 s per 64 atoms)")
    ] = True,
    lattice_shells: Annotated[
        int,
        typer.Option(
            min=0, help="lattice alloys: Warren-Cowley and cluster metrics over this many shells"
        ),
    ] = 0,
    oxidation_states: Annotated[
        str | None, typer.Option(help="cation-anion motifs only, e.g. Li=1,Co=3,O=-2")
    ] = None,
    seed: Annotated[int, typer.Option(help="seed of the bootstrap")] = 0,
) -> None:
    """Compare GENERATED to REFERENCE with seed 002's metrics; print the table, plot g(r)/angles."""
    from amloop.generator.quality import describe, element_order, quality_table, shell_edges

    reference_set = read_structure_set(reference)
    generated_set = read_structure_set(generated)
    elements = element_order(reference_set + generated_set)
    states = _parse_oxidation_states(oxidation_states)
    edges = shell_edges(reference_set[0], lattice_shells) if lattice_shells else None
    with console.status(f"describing {len(reference_set) + len(generated_set)} structures"):
        ref, gen = (
            describe(s, elements, local=local, oxidation_states=states, lattice_edges=edges)
            for s in (reference_set, generated_set)
        )
    rows = quality_table(ref, gen, n_bootstrap=bootstrap, seed=seed)
    print_table(rows, f"{generated.name} ({len(gen)}) vs {reference.name} ({len(ref)})")
    png = out or generated.parent / f"{generated.stem}_quality.png"
    plot_overlays(ref, gen, png)
    console.print(f"wrote {png}")
