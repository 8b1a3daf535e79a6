"""``amloop run`` and ``amloop resume``: drive a campaign's closed loop with a live display.

The display polls the store (the flow's only state) from a side thread, so it shows exactly
what a resumed run would see: iteration and phase, evaluations done/failed, budget left and
the best value per objective.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table

from loop.campaigns import CampaignHandle, init_campaign, resolve_campaign
from loop.history import best_per_objective, budget_lines
from oracles.registry import oracle_types
from state.config import load_config
from state.settings import Settings
from state.store import CampaignStore

console = Console()

#: Event under which a run's command-line limits are stored, so ``resume`` keeps them.
RUN_LIMITS_EVENT = "run_limits"


def _campaign_from(target: str | None, settings: Settings) -> CampaignHandle:
    """A campaign from a YAML file (created unless it exists) or a name/folder."""
    if target is not None and target.endswith((".yaml", ".yml")) and Path(target).is_file():
        name = load_config(Path(target), oracle_types=oracle_types()).name
        if name in CampaignStore.campaign_names(settings.database_url_for(name)):
            console.print(f"campaign [bold]{name}[/] exists; continuing it")
            return resolve_campaign(name, settings)
        return init_campaign(Path(target), settings)
    return resolve_campaign(target, settings)


def _snapshot(store: CampaignStore, handle: CampaignHandle) -> Group:
    iterations = store.iterations()
    phase = f"iteration {iterations[-1].index}: {iterations[-1].phase}" if iterations else "seeding"
    counts: dict[str, int] = {}
    for evaluation in store.evaluations():
        counts[evaluation.status] = counts.get(evaluation.status, 0) + 1
    head = Table.grid(padding=(0, 2))
    head.add_row(
        f"[bold]{handle.name}[/]",
        phase,
        f"evaluations: {counts.get('done', 0)} done, {counts.get('failed', 0)} failed, "
        f"{counts.get('running', 0)} running",
    )
    budget = Table(title="budget", show_edge=False)
    for column in ("item", "spent", "limit", "unit"):
        budget.add_column(column)
    for line in budget_lines(store, handle.config):
        if line.limit is not None:
            budget.add_row(line.item, f"{line.spent:.4g}", f"{line.limit:.4g}", line.unit)
    best = Table(title="best so far", show_edge=False)
    for column in ("objective", "value", "formula", "from"):
        best.add_column(column)
    for b in best_per_objective(store, handle.config):
        best.add_row(b.property, f"{b.value:.5g} {b.unit}", b.formula, b.source)
    return Group(head, budget, best)


def _drive(handle: CampaignHandle, max_iterations: int | None, core_hours: float | None) -> None:
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    from loop.flows import RunLimits, run_campaign

    store = handle.store()
    limits = RunLimits(max_iterations=max_iterations, core_hours=core_hours)
    store.log_event(
        RUN_LIMITS_EVENT,
        f"run limits: {max_iterations or 'config'} iterations, {core_hours or 'config'} core-h",
        payload={"max_iterations": max_iterations, "core_hours": core_hours},
    )
    done = threading.Event()
    outcome: dict[str, str] = {}
    failure: list[BaseException] = []

    def work() -> None:
        try:
            outcome["reason"] = run_campaign(
                handle.database_url,
                handle.name,
                handle.directory,
                limits,
                stale_after_s=Settings().lock_stale_after_s,
            )
        except BaseException as exc:  # re-raised below, after the live display closes
            failure.append(exc)
        finally:
            done.set()

    worker = threading.Thread(target=work, name="amloop-flow")
    worker.start()
    with Live(_snapshot(store, handle), console=console, refresh_per_second=1) as live:
        while not done.wait(2.0):
            live.update(_snapshot(store, handle))
        live.update(_snapshot(store, handle))
    worker.join()
    if failure:
        raise failure[0]
    console.print(f"[green]stopped:[/] {outcome['reason']}")
    console.print(
        f"history: amloop history -c {handle.name}    report: amloop report {handle.name}"
    )


def run(
    target: Annotated[
        str | None,
        typer.Argument(help="campaign YAML (created if new) or campaign name/folder"),
    ] = None,
    budget: Annotated[
        float | None, typer.Option("--budget", min=0, help="core-hours for the whole campaign")
    ] = None,
    iterations: Annotated[
        int | None, typer.Option("--iterations", min=1, help="total loop iterations")
    ] = None,
) -> None:
    """Run the closed loop until the budget is spent, the iteration limit is reached or the
    objective stalls; safe to interrupt at any moment (`amloop resume` continues)."""
    _drive(_campaign_from(target, Settings()), iterations, budget)


def resume(
    campaign: Annotated[str | None, typer.Argument(help="campaign name or folder")] = None,
) -> None:
    """Continue an interrupted campaign from its store, with the limits of its last run."""
    handle = resolve_campaign(campaign, Settings())
    previous = handle.store().events(kind=RUN_LIMITS_EVENT)
    payload = previous[-1].payload if previous else {}
    _drive(handle, payload.get("max_iterations"), payload.get("core_hours"))
