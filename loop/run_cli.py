"""``amloop run`` and ``amloop resume``: drive a campaign's closed loop with a live display.

The display polls the store (the flow's only state) from a side thread, so it shows exactly
what a resumed run would see: iteration and phase, evaluations done/failed, budget left and
the best value per objective.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
import traceback
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated, NoReturn, TextIO

import typer
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from amloop.loop.cli_options import CampaignArgument, CampaignOption, either_campaign
from amloop.loop.interrupt import (
    EXIT_STATUS,
    GRACE_S,
    STOP,
    Interrupted,
    cancel_flow_run,
    end_children,
)

if TYPE_CHECKING:
    from amloop.loop.campaigns import CampaignHandle
    from amloop.loop.progress import RunState
    from amloop.loop.runs import RunLimits
    from amloop.state.settings import Settings

console = Console()


def _campaign_from(target: str | None, settings: Settings) -> CampaignHandle:
    """A campaign from a YAML file (created unless it exists) or a name/folder."""
    from amloop.loop.campaigns import campaign_exists, init_campaign, resolve_campaign
    from amloop.oracles.registry import oracle_types
    from amloop.state.config import load_config

    if target is not None and target.endswith((".yaml", ".yml")) and Path(target).is_file():
        name = load_config(Path(target), oracle_types=oracle_types()).name
        if campaign_exists(settings.database_url_for(name), name):
            console.print(f"campaign [bold]{name}[/] exists; continuing it")
            return resolve_campaign(name, settings)
        return init_campaign(Path(target), settings)
    return resolve_campaign(target, settings)


def _snapshot(state: RunState, handle: CampaignHandle) -> Group:
    """The live display: elapsed time, iteration k of N (or seed progress), oracle calls apart
    from gate checks, an ETA from the measured call times, the budget and the best values."""
    from amloop.loop.budget import Budget
    from amloop.loop.progress import clock

    if state.iteration is None:
        done, size = state.seeds
        phase = f"seeding: {done} of {size} seed calls"
    else:
        index, name = state.iteration
        of = f" ({index + 1} of {state.max_iterations})" if state.max_iterations else ""
        phase = f"iteration {index}{of}: {name}"
    eta = state.eta_s(handle.config)
    head = Table.grid(padding=(0, 2))
    head.add_row(f"[bold]{handle.name}[/]", phase, f"elapsed {clock(state.elapsed_s)}")
    head.add_row(
        "",
        f"oracle calls: {state.calls.get('done', 0)} done, {state.calls.get('failed', 0)} "
        f"failed, {state.calls.get('running', 0)} running",
        f"gate: {state.gate['passed']} passed, {state.gate['rejected']} rejected"
        + (f"    ETA {clock(eta)} (calls left at {state.call_s:.1f} s each)" if eta else ""),
    )
    budget = Table(title="budget", show_edge=False)
    for column in ("item", "spent", "limit", "unit"):
        budget.add_column(column)
    store = handle.store()
    for line in Budget.of(store, handle.config).lines(handle.config.oracles):
        if line.limit is not None:
            budget.add_row(line.item, f"{line.spent:.4g}", f"{line.limit:.4g}", line.unit)
    best = Table(title="best so far", show_edge=False)
    for column in ("objective", "value", "formula", "from"):
        best.add_column(column)
    for b in state.best:
        best.add_row(b.property, f"{b.value:.5g} {b.unit}", b.formula, b.source)
    return Group(head, budget, best)


class _CtrlC:
    """SIGINT while a command runs: the first asks the loop to stop at its next safe point
    (:data:`loop.interrupt.STOP`), the second raises :class:`KeyboardInterrupt` at once."""

    def __init__(self) -> None:
        self.asked_at: float | None = None

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        if self.asked_at is not None:
            raise KeyboardInterrupt
        STOP.set()
        self.asked_at = time.monotonic()
        console.print("[yellow]stopping at the next safe point[/] (Ctrl-C again: at once)")

    def overdue(self) -> bool:
        """Asked more than :data:`loop.interrupt.GRACE_S` ago and still running."""
        return self.asked_at is not None and time.monotonic() - self.asked_at > GRACE_S

    @contextmanager
    def installed(self) -> Iterator[_CtrlC]:
        """This handler for SIGINT inside the block."""
        previous = signal.signal(signal.SIGINT, self)
        try:
            yield self
        finally:
            signal.signal(signal.SIGINT, previous)


@dataclass(frozen=True)
class Verbosity:
    """``-v`` / ``-q`` of ``run`` and ``resume``."""

    verbose: bool = False
    quiet: bool = False


def _drive(
    handle: CampaignHandle,
    limits: RunLimits,
    ctrl_c: _CtrlC,
    verbosity: Verbosity,
    *,
    take_over: bool = False,
) -> None:
    """Run the loop in a worker thread under a live display (a terminal) or event lines (a
    log); library warnings and the workflow engine's messages go to the campaign's
    ``run.log`` unless ``-v``; a failure is one line (its traceback in ``run.log``); Ctrl-C stops
    it (see :mod:`loop.interrupt`)."""
    from amloop.loop.progress import read_state
    from amloop.loop.runs import run_loop
    from amloop.loop.watchdog import start_watchdog

    store = handle.store()
    start_watchdog()  # ends this run's children if it is killed (kill -9 included)
    if STOP.is_set():  # Ctrl-C while the campaign was being opened
        _stop_now(handle, None, "Ctrl-C before the loop started")
    done = threading.Event()
    outcome: dict[str, str] = {}
    failure: list[BaseException] = []

    def work() -> None:
        try:
            outcome["reason"] = run_loop(handle, limits, take_over=take_over)
        except BaseException as exc:  # re-raised below, after the live display closes
            failure.append(exc)
        finally:
            done.set()

    worker = threading.Thread(target=work, name="amloop-flow", daemon=True)
    started = time.monotonic()

    def state() -> RunState:
        return read_state(
            store, handle.config, started, limits.apply(handle.config).execution.max_iterations
        )

    terminal = console.is_terminal and not verbosity.quiet
    live = (
        Live(_snapshot(state(), handle), console=console, refresh_per_second=1)
        if terminal
        else None
    )
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    from prefect import flow  # noqa: F401 - sets Prefect's logging up: sent to the log from here

    warned = RunLog(handle.directory / RUN_LOG_FILE, enabled=not verbosity.verbose)
    try:
        worker.start()
        if live is None:
            _log_lines(handle, state, done, ctrl_c, quiet=verbosity.quiet)
        else:
            with live:
                polled = time.monotonic()
                while not done.wait(0.25):
                    if ctrl_c.overdue():
                        _stop_now(handle, live, f"no safe point within {GRACE_S:g} s")
                    if time.monotonic() - polled >= 2.0:
                        live.update(_snapshot(state(), handle))
                        polled = time.monotonic()
                live.update(_snapshot(state(), handle))
    except KeyboardInterrupt:
        _stop_now(handle, live, "second Ctrl-C")
    finally:
        warned.close()
    if warned.count:
        console.print(
            f"{warned.count} library warning(s) in {warned.path} (-v shows them here)",
            highlight=False,
        )
    if STOP.is_set() and not outcome:  # stopped at a safe point, or broken by the signal
        if not (failure and isinstance(failure[0], Interrupted)):
            store.log_event("interrupted", f"Ctrl-C; the loop ended with {failure[0]!r}")
        store.set_status("interrupted")
        _after_display(_resume_line(handle))
        raise typer.Exit(EXIT_STATUS)
    if failure:
        from amloop.loop.cli import user_errors

        if isinstance(failure[0], user_errors()) or not isinstance(failure[0], Exception):
            raise failure[0]
        warned.failure(failure[0])
        raise RunFailed(
            f"{failure[0]} — the campaign is paused; traceback in {warned.path}; fix the cause,"
            f" then `amloop resume {handle.name}`"
        ) from failure[0]
    _after_display(f"[green]stopped:[/] {outcome['reason']}")
    console.print(
        f"history: amloop history -c {handle.name}    report: amloop report {handle.name}"
    )


def _log_lines(
    handle: CampaignHandle,
    state: Callable[[], RunState],
    done: threading.Event,
    ctrl_c: _CtrlC,
    *,
    quiet: bool,
) -> None:
    """Output that is not a terminal (a batch job's log): one timestamped line per event, as
    it happens (:func:`loop.progress.event_lines`), flushed at once."""
    from amloop.loop.progress import event_lines, stamped

    before: RunState | None = None
    if not quiet:
        print(stamped(f"{handle.name}: running in {handle.directory}"), flush=True)
    while True:
        finished = done.wait(2.0)
        if ctrl_c.overdue():
            _stop_now(handle, None, f"no safe point within {GRACE_S:g} s")
        if quiet:
            if finished:
                return
            continue
        now = state()
        for line in event_lines(before, now):
            print(stamped(line), flush=True)
        before = now
        if finished:
            return


class RunFailed(Exception):
    """The loop stopped on an error: one line for the console, the traceback in the run's log."""


#: The run's own log in the campaign folder: library warnings, the workflow engine's messages
#: and the traceback of a failed run (the console gets one line each).
RUN_LOG_FILE = "run.log"


class RunLog:
    """While the loop runs, Python warnings (GPyTorch's jitter, Lightning's advice, ...) and
    every console log handler's records (Prefect's task and flow messages, its tracebacks) go
    to ``path``, stamped, instead of the console; warnings are counted. ``enabled=False``
    (``-v``) leaves both on the console."""

    def __init__(self, path: Path, *, enabled: bool = True):
        self.path, self.count, self.enabled = path, 0, enabled
        self._previous = warnings.showwarning
        self._swapped: list[tuple[logging.Logger, logging.Handler]] = []
        if not enabled:
            return
        warnings.showwarning = self._show
        self._file = logging.FileHandler(path, encoding="utf-8", delay=True)
        self._file.setFormatter(
            logging.Formatter(
                "%(asctime)s %(levelname)s %(name)s: %(message)s", "%Y-%m-%d %H:%M:%S"
            )
        )
        loggers = [logging.getLogger()] + [
            logger
            for logger in logging.Logger.manager.loggerDict.values()
            if isinstance(logger, logging.Logger)
        ]
        for logger in loggers:
            for handler in list(logger.handlers):
                if _to_console(handler):
                    logger.removeHandler(handler)
                    logger.addHandler(self._file)
                    self._swapped.append((logger, handler))

    def _show(
        self,
        message: Warning | str,
        category: type[Warning],
        filename: str,
        lineno: int,
        file: TextIO | None = None,
        line: str | None = None,
    ) -> None:
        from amloop.loop.progress import stamped

        self.count += 1
        with self.path.open("a") as log:
            log.write(stamped(f"{category.__name__}: {message} ({filename}:{lineno})") + "\n")

    def failure(self, exc: BaseException) -> None:
        """Keep the traceback of the exception that ended the run."""
        from amloop.loop.progress import stamped

        with self.path.open("a") as log:
            log.write(stamped(f"the run failed: {exc!r}") + "\n")
            log.write("".join(traceback.format_exception(exc)))

    def close(self) -> None:
        """Warnings and log records to the console again."""
        warnings.showwarning = self._previous
        for logger, handler in self._swapped:
            logger.removeHandler(self._file)
            logger.addHandler(handler)
        if self.enabled:
            self._file.close()


def _to_console(handler: logging.Handler) -> bool:
    """Whether ``handler`` writes to the terminal (standard error or output)."""
    stream = getattr(handler, "stream", None)
    return isinstance(handler, logging.StreamHandler) and stream in (
        sys.stderr,
        sys.stdout,
        sys.__stderr__,
        sys.__stdout__,
    )


def _resume_line(handle: CampaignHandle) -> str:
    return f"interrupted: `amloop resume {handle.name}` continues where it stopped"


def _after_display(text: str) -> None:
    """Print ``text`` on a line of its own after the live display (timestamped in a log)."""
    from amloop.loop.progress import stamped

    if console.is_terminal:
        console.print(text, highlight=False)
    else:
        print(stamped(Text.from_markup(text).plain), flush=True)


def _stop_now(handle: CampaignHandle, live: Live | None, why: str) -> NoReturn:
    """Stop without waiting for the loop: the campaign is marked interrupted, running
    evaluations stay ``running`` (re-queued by ``resume``), children end, the process exits."""
    if live is not None:
        live.stop()
    store = handle.store()
    store.log_event("interrupted", f"Ctrl-C ({why}); running evaluations are re-queued on resume")
    store.set_status("interrupted")
    cancel_flow_run(f"Ctrl-C ({why})")
    end_children()
    _after_display(_resume_line(handle))
    sys.stdout.flush()
    os._exit(EXIT_STATUS)  # the flow thread may be inside a call that cannot be interrupted


#: ``-v``: library warnings on the console too; ``-q``: no progress, only the outcome.
VerboseOption = Annotated[
    bool, typer.Option("--verbose", "-v", help="library warnings on the console as well")
]
QuietOption = Annotated[
    bool, typer.Option("--quiet", "-q", help="no progress display or event lines, the outcome only")
]
TakeOverOption = Annotated[
    bool,
    typer.Option(
        "--take-over",
        help="take the lock of a run on another host that is known to be gone (a crashed "
        "node) without waiting for its heartbeat to go stale",
    ),
]


def run(
    target: Annotated[
        str | None,
        typer.Argument(help="campaign YAML (created if new) or campaign name/folder"),
    ] = None,
    campaign: CampaignOption = None,
    budget: Annotated[
        float | None, typer.Option("--budget", min=0, help="core-hours for the whole campaign")
    ] = None,
    iterations: Annotated[
        int | None, typer.Option("--iterations", min=1, help="total loop iterations")
    ] = None,
    verbose: VerboseOption = False,
    quiet: QuietOption = False,
    take_over: TakeOverOption = False,
) -> None:
    """Run the closed loop until the budget is spent, the iteration limit is reached or the
    objective stalls; safe to interrupt at any moment (`amloop resume` continues)."""
    from amloop.loop.runs import RunLimits
    from amloop.state.settings import Settings

    with _CtrlC().installed() as ctrl_c:
        handle = _campaign_from(either_campaign(target, campaign), Settings())
        _drive(
            handle,
            RunLimits(iterations, budget),
            ctrl_c,
            Verbosity(verbose, quiet),
            take_over=take_over,
        )


def resume(
    name: CampaignArgument = None,
    campaign: CampaignOption = None,
    verbose: VerboseOption = False,
    quiet: QuietOption = False,
    take_over: TakeOverOption = False,
) -> None:
    """Continue an interrupted campaign from its store, with the limits of its last run."""
    from amloop.loop.campaigns import resolve_campaign
    from amloop.loop.runs import last_limits
    from amloop.state.settings import Settings

    with _CtrlC().installed() as ctrl_c:
        handle = resolve_campaign(either_campaign(name, campaign), Settings(), finish_init=True)
        _drive(handle, last_limits(handle), ctrl_c, Verbosity(verbose, quiet), take_over=take_over)
