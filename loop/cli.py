"""The ``amloop`` command line: start, inspect, feed and export campaigns."""

from __future__ import annotations

import csv
import functools
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeVar

import typer
import yaml
from rich.console import Console
from rich.table import Table

from amloop.loop import generator_cli, run_cli
from amloop.loop.cli_options import CampaignArgument, CampaignOption, either_campaign
from amloop.loop.quality_cli import quality_command

if TYPE_CHECKING:  # the commands import what they use: `amloop --help` starts in a fraction of a s
    from amloop.loop.campaigns import CampaignHandle
    from amloop.oracles.experiment import ExperimentOracle
    from amloop.state.store import CampaignStore

app = typer.Typer(
    name="amloop",
    help="Active-learning closed-loop discovery of amorphous and disordered materials.",
    no_args_is_help=True,
    add_completion=False,
)
console = Console()
errors = Console(stderr=True)

F = TypeVar("F", bound=Callable[..., Any])


def user_errors() -> tuple[type[Exception], ...]:
    """Exceptions that mean bad input, shown as one line without a traceback."""
    from amloop.loop.campaigns import CampaignLookupError
    from amloop.loop.inject import InjectError
    from amloop.oracles.base import OracleSetupError
    from amloop.state.composition import CompositionError
    from amloop.state.config import ConfigError
    from amloop.state.database import DatabaseError
    from amloop.state.store import CampaignExists, CampaignNotFound, LockHeld
    from amloop.state.structures import StructureFileError

    return (
        ConfigError,
        CampaignExists,
        CampaignNotFound,
        CampaignLookupError,
        InjectError,
        LockHeld,
        DatabaseError,
        OracleSetupError,
        StructureFileError,
        CompositionError,
        run_cli.RunFailed,
        # a checkpoint error can only come from the generator, once loaded: not imported
        # here for it (torch-geometric would add seconds to every error message)
        *((cdvae.CheckpointError,) if (cdvae := sys.modules.get("amloop.generator.cdvae")) else ()),
    )


def _user_errors(command: F) -> F:
    """Turn expected user errors into a red message and exit code 1 (no traceback)."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except Exception as exc:
            message = _unreachable_database(exc) or _file_system_error(exc)
            if message is None and not isinstance(exc, user_errors()):
                raise
            errors.print(f"[bold red]error:[/] {message or exc}", highlight=False, soft_wrap=True)
            raise typer.Exit(1) from None
        finally:
            _checkpoint_stores()

    return wrapper  # type: ignore[return-value]


generator_app = typer.Typer(
    help="Train, sample and optimise the Cond-CDVAE generator.", no_args_is_help=True
)
for _name, _command in (
    ("train", generator_cli.train),
    ("pretrain", generator_cli.pretrain),
    ("sample", generator_cli.sample),
    ("optimize", generator_cli.optimize),
):
    generator_app.command(_name)(_user_errors(_command))
app.add_typer(generator_app, name="generator")


def _unreachable_database(exc: Exception) -> str | None:
    """One line for a database that stayed unreachable through the outage wait, or a store
    file damaged inside (SQLite finds that only when it reads the page), else None."""
    from sqlalchemy.exc import DatabaseError, InterfaceError, OperationalError

    if not isinstance(exc, DatabaseError | InterfaceError):
        return None
    cause = str(exc.orig or exc).strip().splitlines()[0][:200]
    if "malformed" in cause or "not a database" in cause:
        return (
            f"the campaign store is damaged ({cause}); restore it from a backup (`amloop "
            "backup` makes one) or run `amloop check`"
        )
    if not isinstance(exc, OperationalError | InterfaceError):
        return None
    return (
        f"the database cannot be reached ({cause}); check the server and AMLOOP_DATABASE_URL, "
        "then run the command again (nothing was lost: runs pause, resume continues)"
    )


def _file_system_error(exc: Exception) -> str | None:
    """One line for a file or folder the command could not read or write (permissions, a
    missing or read-only folder, a full disk), else None."""
    import errno

    if not isinstance(exc, OSError) or not exc.strerror:
        return None
    if exc.filename is not None:
        return f"{exc.strerror}: {exc.filename}"
    if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS):
        return f"{exc.strerror}; free some space (or make the folder writable) and run it again"
    return None


def _checkpoint_stores() -> None:
    """The SQLite stores this command wrote hold everything in their file when it ends (no
    data only in ``campaign.db-wal``: a copy of ``campaign.db`` alone is complete)."""
    import sys

    if "amloop.state.database" in sys.modules:
        from amloop.state.database import checkpoint_all

        checkpoint_all()


def _campaign(name: str | None, option: str | None = None) -> CampaignHandle:
    """The campaign named positionally (``name``) or by ``-c`` (``option``), else the current."""
    from amloop.loop.campaigns import resolve_campaign
    from amloop.state.settings import Settings

    return resolve_campaign(either_campaign(name, option), Settings())


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        typer.echo(f"amloop {version('amloop')}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="print the version and exit"
        ),
    ] = False,
) -> None:
    """Active-learning closed-loop discovery of amorphous and disordered materials."""


@app.command("list")
@_user_errors
def list_campaigns() -> None:
    """Every campaign under AMLOOP_HOME: status, iterations, best value, budget used, folder."""
    from amloop.loop.campaigns import campaign_folders, current_campaign, resolve_campaign
    from amloop.loop.history import best_per_objective
    from amloop.state.settings import Settings

    settings = Settings()
    names = campaign_folders(settings)
    if not names:
        console.print(f"no campaigns under {settings.home}: `amloop init CONFIG` makes one")
        return
    current = current_campaign(settings)
    table = Table(title=f"campaigns in {settings.home}")
    for column in ("", "name", "status", "iterations", "best", "budget used", "folder"):
        table.add_column(column, no_wrap=column in ("name", "best"))
    for name in names:
        mark = "*" if name == current else ""
        try:
            handle = resolve_campaign(name, settings, make_current=False)
            store = handle.store()
        except user_errors() as exc:
            table.add_row(mark, name, f"[red]unreadable[/]: {exc}", "", "", "", "")
            continue
        info, config = store.info(), handle.config
        found = {b.property: b for b in best_per_objective(store, config)}
        first = config.objectives[0]
        best = found.get(first.property)
        spent_h, limit_h = store.spent().core_s / 3600.0, config.budget.core_hours
        used = f"{spent_h:.3g} core-h" + (
            f" ({100 * spent_h / limit_h:.0f} % of {limit_h:g})" if limit_h else ""
        )
        table.add_row(
            mark,
            name,
            info.status,
            str(len(store.iterations())),
            f"{first.property} {best.value:.4g} {best.unit}" if best else "-",
            used,
            str(handle.directory),
        )
    console.print(table)
    console.print("* the current campaign (the last one used)")


@app.command()
@_user_errors
def init(config: Annotated[Path, typer.Argument(help="campaign YAML file")]) -> None:
    """Validate a campaign YAML and create its folder and store."""
    from amloop.loop.campaigns import init_campaign
    from amloop.state.settings import Settings

    handle = init_campaign(config, Settings())
    console.print(
        f"[green]created campaign[/] [bold]{handle.name}[/] in {handle.directory} "
        f"({len(handle.config.elements)} elements: {'-'.join(handle.config.elements)}; "
        f"{len(handle.config.objectives)} objective(s); {len(handle.config.oracles)} oracle(s))"
    )


@app.command()
@_user_errors
def status(name: CampaignArgument = None, campaign: CampaignOption = None) -> None:
    """Budget spent and left, best value per objective, current phase and lock holder."""
    from amloop.loop.budget import Budget, spent_by_activity
    from amloop.loop.history import best_per_objective
    from amloop.state.lock import owner_process_is_dead

    handle = _campaign(name, campaign)
    store = handle.store()
    info = store.info()
    iterations = store.iterations()
    phase = (
        f"iteration {iterations[-1].index}: {iterations[-1].phase}" if iterations else "not started"
    )
    crashed = info.lock is not None and owner_process_is_dead(info.lock.owner)
    lock = (
        f"{info.lock.owner} ({'crashed: its process is gone' if crashed else 'heartbeat'} "
        f"{info.lock.heartbeat_at:%Y-%m-%d %H:%M:%S} UTC)"
        if info.lock
        else "free"
    )
    state = "crashed; `amloop resume` continues" if crashed else info.status
    console.print(f"[bold]{info.name}[/] ({state}) in {handle.directory}")
    console.print(f"phase: {phase}    lock: {lock}")
    budget = Table(title="budget")
    for column in ("item", "spent", "limit", "left", "unit"):
        budget.add_column(column, justify="left" if column in ("item", "unit") else "right")
    for line in Budget.of(store, handle.config).lines(handle.config.oracles):
        budget.add_row(
            line.item,
            f"{line.spent:.4g}",
            "-" if line.limit is None else f"{line.limit:.4g}",
            "-" if line.left is None else f"{line.left:.4g}",
            line.unit,
        )
    console.print(budget)
    activities = Table(title="compute by activity")
    for column in ("activity", "core-h"):
        activities.add_column(column, justify="left" if column == "activity" else "right")
    for activity, core_s in spent_by_activity(store).items():
        activities.add_row(activity, f"{core_s / 3600.0:.4g}")
    console.print(activities)
    best = Table(title="best so far")
    for column in ("objective", "direction", "value", "unit", "formula", "from", "candidate"):
        best.add_column(column, no_wrap=column in ("objective", "formula", "value"))
    found = {b.property: b for b in best_per_objective(store, handle.config)}
    for objective in handle.config.objectives:
        b = found.get(objective.property)
        if b is None:
            best.add_row(objective.property, objective.direction, "-", objective.unit or "", "", "")
        else:
            best.add_row(
                b.property, b.direction, f"{b.value:.5g}", b.unit, b.formula, b.source, b.candidate
            )
    console.print(best)


@app.command()
@_user_errors
def history(
    name: CampaignArgument = None,
    campaign: CampaignOption = None,
    iteration: Annotated[int | None, typer.Option(help="only this iteration")] = None,
    oracle: Annotated[str | None, typer.Option(help="only this oracle's calls")] = None,
    status: Annotated[
        Literal["done", "failed", "pending", "running"] | None,
        typer.Option(help="only calls with this status"),
    ] = None,
    best: Annotated[
        int | None, typer.Option(min=1, help="the N best records of the first objective")
    ] = None,
    fmt: Annotated[
        Literal["table", "csv", "json"], typer.Option("--format", help="output format")
    ] = "table",
    wide: Annotated[bool, typer.Option("--wide", help="every column, however wide")] = False,
    columns: Annotated[
        str | None, typer.Option(help="these columns, comma-separated (see --wide for names)")
    ] = None,
    long: Annotated[
        bool, typer.Option("--long", help="one row per property value (the long layout)")
    ] = False,
) -> None:
    """One row per oracle call or measurement: stage, candidate, oracle, status, one column per
    property (unit in the header), the quality gate's verdict; CSV/JSON numeric (JSON with
    each call's provenance)."""
    from amloop.loop.history import history_records, history_rows

    handle = _campaign(name, campaign)
    store = handle.store()
    if long:
        _print_long_history(handle.name, history_rows(store, iteration=iteration))
        return
    records = history_records(
        store,
        handle.config,
        iteration=iteration,
        oracle=oracle,
        status=status,
        best=best,
        provenance=fmt == "json",
    )
    if fmt == "json":
        typer.echo(json.dumps(records, indent=2, default=str))
        return
    if fmt == "csv":
        from amloop.loop.export import write_records_csv

        write_records_csv(records, Path("-"))
        return
    if not records:
        console.print(
            "no oracle calls or measurements yet"
            + (
                " (with these filters)"
                if any(x is not None for x in (iteration, oracle, status))
                else ""
            )
        )
        return
    objectives = [o.property for o in handle.config.objectives]
    _print_history_table(handle.name, records, objectives, wide, columns)


def _print_history_table(
    title: str,
    records: list[dict[str, Any]],
    objectives: list[str],
    wide: bool,
    chosen: str | None,
) -> None:
    """The records as a table: the columns that fit the terminal, kept in priority order
    (:func:`loop.history.column_priority`), all with ``wide``, or those ``chosen``; a note
    names what was left out."""
    from rich.text import Text

    from amloop.loop.history import column_priority, record_columns

    available = record_columns(records, objectives)
    cells = {c: [_cell(c, r.get(c)) for r in records] for c in available}
    if chosen is not None:
        aliases = {"iter": "stage", "iteration": "stage"}  # the column's header is "iter"
        shown = [aliases.get(c.strip(), c.strip()) for c in chosen.split(",") if c.strip()]
        unknown = [c for c in shown if c not in available]
        if unknown:
            raise typer.BadParameter(
                f"unknown column(s) {', '.join(unknown)}; available: {', '.join(available)}"
            )
    else:
        shown = [c for c in available if any(cells[c])]  # empty columns say nothing
        if not wide:
            kept = _fitting(column_priority(shown, objectives), cells, console.width)
            shown = [c for c in shown if c in kept]
    table = Table(title=f"history of {title}: {len(records)} record(s)", box=None)
    text = ("stage", "candidate", "formula", "origin", "oracle", "status", "gate")
    for column in shown:
        numeric = column not in (*text, "gate_reason", "failure", "source")
        table.add_column(
            Text("iter" if column == "stage" else column),
            no_wrap=True,
            overflow="ellipsis",
            justify="right" if numeric else "left",
        )
    for i in range(len(records)):
        table.add_row(*(Text(cells[c][i]) for c in shown))
    console.print(table)
    hidden = [c for c in available if c not in shown and any(cells[c])]
    if hidden and chosen is None:
        console.print(Text(f"not shown: {', '.join(hidden)} (--wide, or --columns a,b,c)"))


def _cell(column: str, value: object) -> str:
    """A history value as the table shows it (the stage as ``seed`` or the iteration's index,
    the candidate's hash cut to 8 characters, numbers to 5 significant digits)."""
    if value is None:
        return ""
    if column == "stage" and isinstance(value, str):
        return value.removeprefix("iteration ")
    if column == "candidate" and isinstance(value, str):
        return value[:8]
    if isinstance(value, float):
        return f"{value:.5g}"
    return str(value)


def _fitting(columns: list[str], cells: dict[str, list[str]], width: int) -> list[str]:
    """The columns, in order, that fit ``width`` characters (two between columns); the
    free-text ones (reasons, sources) get the room left, cut to at least 12 characters."""
    free = ("gate_reason", "failure", "source")
    used = 0
    shown: list[str] = []
    for column in columns:
        need = max([len(column), *(len(c) for c in cells[column])])
        if column in free:
            need = min(need, max(12, width - used - 2))
        if used + need + 2 <= width or not shown:
            shown.append(column)
            used += need + 2
    return shown


def _print_long_history(title: str, rows: list[Any]) -> None:
    """``--long``: one row per property value, as the history was printed before."""
    if not rows:
        console.print("no evaluations or measurements yet")
        return
    table = Table(title=f"history of {title}")
    for column in ("iter", "kind", "formula", "source", "status", "property", "value", "details"):
        table.add_column(column, overflow="fold")
    for row in rows:
        value = "" if row.value is None else f"{row.value:.5g}"
        if row.uncertainty is not None:
            value += f" ± {row.uncertainty:.3g}"
        table.add_row(
            "seed" if row.iteration is None else str(row.iteration),
            row.kind,
            row.formula,
            f"{row.source} (fidelity {row.fidelity})" if row.kind == "evaluation" else row.source,
            row.status,
            row.property,
            f"{value} {row.unit}".strip(),
            row.reason,
        )
    console.print(table)


@app.command()
@_user_errors
def inject(
    file: Annotated[
        Path,
        typer.Argument(
            help="CSV: composition, property, value, unit, uncertainty, source[, structure]"
        ),
    ],
    campaign: CampaignOption = None,
    allow_outside: Annotated[
        bool,
        typer.Option("--allow-outside", help="read structure files outside the CSV's folder"),
    ] = False,
) -> None:
    """Add experimental measurements (validated; the whole file or nothing; a file once)."""
    from amloop.loop.inject import inject_measurements

    handle = _campaign(campaign)
    store = handle.store()
    open_before = _open_request_ids(store)
    stored = inject_measurements(store, handle.config, file, allow_outside=allow_outside)
    properties = sorted({m.property for m in stored})
    console.print(
        f"[green]stored {len(stored)} measurement(s)[/] of {', '.join(properties)} from {file}; "
        f"used as the top fidelity from iteration {stored[0].iteration} on"
    )
    closed = sorted(open_before - _open_request_ids(store))
    answered = sum(1 for m in stored if m.request_id is not None)
    console.print(
        f"{answered} answer(s) to lab requests ({len(stored) - answered} unsolicited); "
        f"fulfilled: {', '.join(f'#{i}' for i in closed) or 'none'}"
    )


@app.command()
@_user_errors
def export(
    fmt: Annotated[
        Literal["extxyz", "cif", "csv"],
        typer.Option("--format", help="extxyz, cif (a folder) or csv"),
    ],
    name: CampaignArgument = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="file or folder")] = None,
    campaign: CampaignOption = None,
) -> None:
    """Export structures (extxyz, CIF) or results (CSV)."""
    from amloop.loop.export import export_campaign

    handle = _campaign(name, campaign)
    default = {"extxyz": "structures.extxyz", "cif": "cif", "csv": "history.csv"}[fmt]
    target = output or handle.directory / "export" / default
    count = export_campaign(handle.store(), fmt, target)
    console.print(f"wrote {count} record(s) to {target}")


@app.command()
@_user_errors
def backup(
    output: Annotated[Path, typer.Option("--output", "-o", help="the backup file to write")],
    name: CampaignArgument = None,
    campaign: CampaignOption = None,
) -> None:
    """Copy a campaign's SQLite store while it may run (SQLite's online backup)."""
    from amloop.state.database import backup_sqlite

    handle = _campaign(name, campaign)
    path = backup_sqlite(handle.database_url, output)
    console.print(f"backed up {handle.name} to {path} ({path.stat().st_size / 1e6:.1f} MB)")


@app.command()
@_user_errors
def check(name: CampaignArgument = None, campaign: CampaignOption = None) -> None:
    """Check a campaign store: file integrity, references, stranded evaluations, the lock."""
    from amloop.state.checks import check_store

    handle = _campaign(name, campaign)
    findings = check_store(handle.store())
    table = Table(title=f"check of {handle.name}")
    for column in ("check", "", "detail"):
        table.add_column(column)
    for finding in findings:
        table.add_row(finding.check, "ok" if finding.ok else "[red]problem[/]", finding.detail)
    console.print(table)
    if not all(finding.ok for finding in findings):
        raise typer.Exit(1)


@app.command()
@_user_errors
def report(
    name: CampaignArgument = None,
    campaign: CampaignOption = None,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="output folder (default: <campaign folder>/report)"),
    ] = None,
) -> None:
    """Write the campaign report: report.md and report.html with PNG figures."""
    from amloop.loop.report import write_report

    handle = _campaign(name, campaign)
    path = write_report(handle.store(), output or handle.directory / "report")
    console.print(f"wrote {path} and {path.with_name('report.html')}")


@app.command()
@_user_errors
def evaluate(
    structures: Annotated[list[Path], typer.Argument(help="CIF, POSCAR or extxyz files")],
    oracle: Annotated[str, typer.Option("--oracle", help="registered oracle type, e.g. lammps")],
    settings: Annotated[
        list[str] | None, typer.Option("--set", help="oracle option KEY=VALUE (repeatable)")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON records")] = False,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="write relaxed/quenched structures (extxyz)"),
    ] = None,
) -> None:
    """Run one oracle on structure files outside any campaign; one record per structure."""
    from amloop.loop.export import write_extxyz
    from amloop.oracles.base import Oracle, OracleSetupError
    from amloop.oracles.registry import create_oracle
    from amloop.state.schema import Candidate
    from amloop.state.structures import read_structures

    read = [(path, read_structures(path)) for path in structures]  # bad files fail first, fast
    options = parse_options(settings or [])
    instance = create_oracle(oracle, **options)
    if not isinstance(instance, Oracle):
        raise OracleSetupError(
            f"oracle type '{oracle}' does not compute; experiments are requested with "
            "`amloop experiments request` and answered with `amloop inject`"
        )
    records = []
    for path, frames in read:
        for index, structure in enumerate(frames):
            label = path.name if index == 0 else f"{path.name}[{index}]"
            check = getattr(instance, "check_elements", None)
            if check is not None:
                check(sorted({el.symbol for el in structure.composition.elements}))
            evaluation = instance.evaluate(Candidate(structure=structure, origin="injected"))
            records.append((label, evaluation))
    if output is not None:
        final = [
            Candidate(structure=e.relaxed_structure, origin="injected")
            for _, e in records
            if e.relaxed_structure is not None
        ]
        write_extxyz(final, output)
        console.print(f"wrote {len(final)} relaxed/quenched structure(s) to {output}")
    if as_json:
        payload = [
            {
                "file": label,
                **evaluation.model_dump(mode="json", exclude={"relaxed_structure", "labels"}),
            }
            for label, evaluation in records
        ]
        typer.echo(json.dumps(payload, indent=2))
        return
    for label, evaluation in records:
        colour = "green" if evaluation.status == "done" else "red"
        console.print(
            f"[bold]{label}[/]: [{colour}]{evaluation.status}[/] "
            f"({evaluation.cost.core_s:.2f} core-s)",
            highlight=False,
        )
        for name, value in evaluation.properties.items():
            sigma = "" if value.uncertainty is None else f" ± {value.uncertainty:.3g}"
            console.print(f"  {name} = {value.value:.6g}{sigma} {value.unit}", highlight=False)
        if evaluation.error:
            console.print(f"  reason: {evaluation.error}", markup=False, highlight=False)


def parse_options(pairs: list[str]) -> dict[str, Any]:
    """``["method=eos", "etol=1e-8"]`` -> ``{"method": "eos", "etol": 1e-08}`` (YAML scalars)."""
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise typer.BadParameter(f"'{pair}' is not KEY=VALUE", param_hint="--set")
        options[key.strip()] = yaml.safe_load(value) if value.strip() else ""
    return options


@app.command()
@_user_errors
def seed(
    name: CampaignArgument = None,
    campaign: CampaignOption = None,
    n: Annotated[int, typer.Option("-n", "--n", min=1, help="number of seed structures")] = 200,
    orderings: Annotated[int, typer.Option(min=1, help="random orderings per composition")] = 20,
    step: Annotated[float, typer.Option(help="composition grid step (atomic fraction)")] = 0.1,
    oracle: Annotated[
        list[str] | None,
        typer.Option(
            "--oracle",
            help="oracle to score with (default: acquisition.seed_oracles, else those <= 60 core-s)",
        ),
    ] = None,
) -> None:
    """Fill a campaign's seed set: solid solutions or melt-quenched cells, scored by the seed oracles.

    Resumable: running it again continues where it stopped and never redoes an evaluation.
    """
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    from amloop.loop.seeding import build_seed_set, seed_plan
    from amloop.loop.steps import seed_sources
    from amloop.state.config import ConfigError

    handle = _campaign(name, campaign)
    store = handle.store()
    oracles, md = seed_sources(handle.config, oracle)
    try:
        plan = seed_plan(handle.config, n, orderings=orderings, step=step)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    with Progress(
        TextColumn("[bold]seed[/]"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.description}"),
        console=console,
    ) as bar:
        task = bar.add_task("", total=len(plan))
        report = build_seed_set(
            store,
            handle.config,
            plan,
            oracles,
            md=md,
            progress=lambda done, total, message: bar.update(
                task, completed=done, description=message
            ),
        )
    console.print(
        f"seed set of {handle.name}: {report.planned} planned, {report.evaluated} evaluation(s) "
        f"run ({report.failed} failed), {report.skipped_done} already done"
    )
    for failure in report.failures:
        console.print(f"  failed: {failure}", markup=False, highlight=False)
    if report.stopped_reason:
        console.print(f"[yellow]stopped:[/] {report.stopped_reason}")


def _open_request_ids(store: CampaignStore) -> set[int]:
    return {r.id for r in store.lab_requests(status="open") if r.id is not None}


mlp_app = typer.Typer(help="The campaign's own machine-learned potential.", no_args_is_help=True)
app.add_typer(mlp_app, name="mlp")


@mlp_app.command("fit")
@_user_errors
def mlp_fit(
    name: CampaignArgument = None,
    campaign: CampaignOption = None,
    force: Annotated[
        bool, typer.Option("--force", help="fit even if the labels have not grown enough")
    ] = False,
) -> None:
    """Fit a committee of matgl potentials on the campaign's force labels (mlp.train_on)."""
    from amloop.loop.steps.potential import refit_due, refit_potential
    from amloop.loop.steps.run import CampaignRun
    from amloop.state.lock import owner_process_is_dead

    handle = _campaign(name, campaign)
    store = handle.store()
    lock = store.info().lock
    if lock is not None and not owner_process_is_dead(lock.owner):
        raise typer.BadParameter(
            f"campaign {handle.name} is running ({lock.owner}): its loop refits the potential "
            "after each iteration; stop it first to fit by hand"
        )
    run = CampaignRun(store, handle.config, handle.directory)
    due, reason = refit_due(run)
    if not (due or force):
        console.print(f"no fit due: {reason} (--force fits anyway)")
        return
    iterations = store.iterations()
    with console.status(f"fitting: {reason}") as spinner:
        fit = refit_potential(
            run,
            iterations[-1].index if iterations else None,
            force=True,
            progress=lambda line: spinner.update(f"fitting {line}"),
        )
    assert fit is not None
    stress = fit.committee.stress_GPa
    console.print(
        f"[green]fitted[/] {fit.version} ({fit.n_train} training, {fit.n_validation} held-out "
        f"labels, {fit.core_s:.0f} core-s): held-out MAE energy "
        f"{fit.committee.energy_eV_per_atom * 1000:.1f} meV/atom, forces "
        f"{fit.committee.force_eV_per_A:.3f} eV/Å"
        + (f", stress {stress:.2f} GPa" if stress is not None else ""),
        highlight=False,
    )


experiments = typer.Typer(help="Lab requests: the experiment fidelity.", no_args_is_help=True)
app.add_typer(experiments, name="experiments")


@experiments.command("pending")
@_user_errors
def experiments_pending(
    name: CampaignArgument = None,
    campaign: CampaignOption = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="write CSV here")] = None,
    show_all: Annotated[bool, typer.Option("--all", help="also fulfilled and cancelled")] = False,
) -> None:
    """List open lab requests (composition, properties, why they were chosen)."""
    from amloop.state.composition import formula

    store = _campaign(name, campaign).store()
    requests = store.lab_requests(status=None if show_all else "open")
    rows = [
        {
            "request": request.id,
            "status": request.status,
            "formula": formula(request.composition),
            **{f"x_{el}": round(x, 4) for el, x in sorted(request.composition.items())},
            "properties": " ".join(request.properties),
            "reason": request.reason,
            "requested_at": f"{request.created_at:%Y-%m-%d %H:%M}" if request.created_at else "",
        }
        for request in requests
    ]
    if output is not None:
        columns = list(dict.fromkeys(key for row in rows for key in row))
        with output.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=columns)
            writer.writeheader()
            writer.writerows(rows)
        console.print(f"wrote {len(rows)} lab request(s) to {output}")
        return
    if not rows:
        console.print("no open lab requests")
        return
    table = Table(title="lab requests")
    for column in ("request", "status", "formula", "properties", "reason", "requested_at"):
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(
            *(
                str(row[c])
                for c in ("request", "status", "formula", "properties", "reason", "requested_at")
            )
        )
    console.print(table)


@experiments.command("request")
@_user_errors
def experiments_request(
    composition: Annotated[str, typer.Argument(help="e.g. Fe0.2Co0.2Ni0.2Mo0.1B0.1O0.2")],
    reason: Annotated[str, typer.Option(help="why this composition should be made")],
    campaign: CampaignOption = None,
    oracle: Annotated[str | None, typer.Option(help="experiment oracle name")] = None,
) -> None:
    """File a lab request by hand (the loop files them when acquisition picks the lab)."""
    from amloop.state.composition import check_in_space, formula, parse_composition

    handle = _campaign(campaign)
    lab = _experiment_oracle(handle, oracle)
    fractions = parse_composition(composition)
    check_in_space(fractions, handle.config.elements)
    request = handle.store().add_lab_request(lab.request(fractions, reason=reason))
    console.print(
        f"lab request #{request.id}: {formula(fractions)} for {', '.join(request.properties)}"
    )


@experiments.command("cancel")
@_user_errors
def experiments_cancel(
    request_id: Annotated[int, typer.Argument(help="lab-request id")],
    reason: Annotated[str, typer.Option(help="why it is cancelled")],
    campaign: CampaignOption = None,
) -> None:
    """Cancel an open lab request."""
    from amloop.loop.campaigns import CampaignLookupError

    try:
        _campaign(campaign).store().cancel_lab_request(request_id, reason)
    except LookupError as exc:
        raise CampaignLookupError(str(exc)) from None
    console.print(f"lab request #{request_id} cancelled")


def _experiment_oracle(handle: CampaignHandle, name: str | None) -> ExperimentOracle:
    from amloop.oracles.experiment import ExperimentOracle
    from amloop.oracles.registry import oracle_from_config
    from amloop.state.config import ConfigError

    labs = {o.name: o for o in handle.config.oracles if o.type == ExperimentOracle.type_name}
    if not labs:
        raise ConfigError(f"campaign '{handle.name}' configures no oracle of type experiment")
    if name is None and len(labs) > 1:
        raise ConfigError(f"several experiment oracles ({', '.join(labs)}); pick one with --oracle")
    chosen = labs.get(name) if name else next(iter(labs.values()))
    if chosen is None:
        raise ConfigError(f"no experiment oracle '{name}'; configured: {', '.join(labs)}")
    source = oracle_from_config(chosen)
    assert isinstance(source, ExperimentOracle)
    return source


app.command()(_user_errors(run_cli.run))
app.command("quality")(_user_errors(quality_command))
app.command()(_user_errors(run_cli.resume))
