"""The closed loop as a Prefect flow: ``campaign_flow`` drives :mod:`loop.steps` until the budget
is spent, the iteration limit is reached or the objective stalls.

Iterations follow :mod:`loop.schedule` (one after another, or overlapped with
``execution.overlap``: the next one is prepared while the oracle calls of the current one run
as one task in the runner's worker). Every step is a Prefect task; oracle calls are fanned out
with ``.map`` (one task per call, or per chunk of ``execution.calls_per_task`` calls; ``auto``:
about four chunks per worker)
on the task runner the config's ``execution`` section picks: a one-worker thread
pool (``local``; oracles such as LAMMPS run their own threads, and one call at a time keeps the
measured core-seconds honest; with ``execution.overlap`` a one-worker process pool, so that the
calls and the loop's work do not wait for each other's interpreter lock), or a Dask cluster
through prefect-dask (``dask``: a ``LocalCluster`` of ``n_workers`` single-threaded processes,
or the scheduler at ``dask_address``, e.g. one started by dask-jobqueue on SLURM).

Tasks take plain arguments (database URL, campaign name, oracle config as a dict), so a Dask
worker on another host opens the same store (PostgreSQL for multi-host runs). Only transient
database errors are retried; oracle failures are stored as data by the steps.

The flow holds the campaign lock, refreshed by a heartbeat thread; a process that dies leaves a
stale lock that the next ``amloop resume`` takes over.
"""

from __future__ import annotations

import os

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
# Prefect's ephemeral API server gets 20 s to start; on a loaded 2-core machine that is too
# short (measured: "Timed out while attempting to connect to ephemeral Prefect API server").
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")

import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task, unmapped
from prefect.context import FlowRunContext
from prefect.runtime import flow_run
from prefect.states import Cancelled, State
from prefect.task_runners import ProcessPoolTaskRunner, ThreadPoolTaskRunner
from sqlalchemy.exc import OperationalError

from amloop.loop import steps
from amloop.loop.budget import Budget
from amloop.loop.interrupt import Interrupted, check_stop, remember_flow_run
from amloop.loop.runs import RunLimits, record_limits
from amloop.loop.schedule import Halves, run_iterations
from amloop.loop.steps import CampaignRun, EvaluationTask
from amloop.state.config import CampaignConfig, OracleConfig
from amloop.state.store import CampaignStore, LockHeld, default_lock_owner

#: Seconds between lock heartbeats.
HEARTBEAT_S = 10.0


def _transient(task: Any, task_run: Any, state: Any) -> bool:
    """Retry only database hiccups (a locked SQLite file, a dropped connection)."""
    try:
        state.result()
    except OperationalError:
        return True
    except Exception:
        return False
    return False


def open_run(database_url: str, campaign: str, directory: str, limits: RunLimits) -> CampaignRun:
    """The campaign as a task opens it on its worker: its store, folder and config with this
    run's ``limits`` applied (every task of the flow takes these four arguments)."""
    run = CampaignRun.open(database_url, campaign, directory)
    return replace(run, config=limits.apply(run.config))


#: Task options for database hiccups inside a transaction (outages at its start are waited out
#: by the store itself, ``AMLOOP_DB_OUTAGE_S``): three more tries, 5, 30 and 120 s later.
RETRIED: dict[str, Any] = {
    "retries": 3,
    "retry_delay_seconds": [5, 30, 120],
    "retry_condition_fn": _transient,
}


@task(name="seed", **RETRIED)
def seed_task(database_url: str, campaign: str, directory: str, limits: RunLimits) -> str:
    """Build the seed set (resumable)."""
    run = open_run(database_url, campaign, directory, limits)
    report = steps.seed(run, progress=lambda *_: check_stop())  # Ctrl-C: a safe point per seed
    return (
        f"seed set: {report.planned} planned, {report.evaluated} evaluated "
        f"({report.failed} failed), {report.skipped_done} already done"
        + (f"; stopped: {report.stopped_reason}" if report.stopped_reason else "")
    )


@task(name="acquire", **RETRIED)
def acquire_task(
    database_url: str, campaign: str, directory: str, limits: RunLimits, index: int
) -> list[dict[str, Any]]:
    """Propose the iteration's conditions (stored once)."""
    run = open_run(database_url, campaign, directory, limits)
    return [asdict(p) for p in steps.acquire(run, index)]


@task(name="generate", **RETRIED)
def generate_task(
    database_url: str, campaign: str, directory: str, limits: RunLimits, index: int
) -> list[str]:
    """Train/fine-tune the generator if needed, sample and latent-optimise; returns the hashes
    of the iteration's candidates."""
    run = open_run(database_url, campaign, directory, limits)
    proposals = steps.acquire(run, index)
    model = steps.ensure_generator(run, index)
    return [c.content_hash for c in steps.generate(run, index, proposals, model)]


@task(name="evaluate-iteration", **RETRIED)
def evaluate_iteration_task(
    database_url: str,
    campaign: str,
    directory: str,
    limits: RunLimits,
    index: int,
    candidate_hashes: list[str],
) -> str:
    """The whole oracle half of an iteration in this worker, one call after another (gate,
    cheap and dear oracles, record), then the iteration is done: what runs while the flow
    prepares the next iteration with ``execution.overlap``."""
    steps.set_torch_threads()
    line, _ = steps.evaluate_and_finish(
        open_run(database_url, campaign, directory, limits), index, candidate_hashes
    )
    get_run_logger().info(line)
    return line


@task(name="evaluate", **RETRIED)
def evaluate_task(
    database_url: str,
    campaign: str,
    directory: str,
    limits: RunLimits,
    oracle: dict[str, Any],
    candidate_hash: str,
    index: int,
) -> str:
    """One oracle call on one candidate; returns its status (``skipped`` when over budget)."""
    steps.set_torch_threads()
    run = open_run(database_url, campaign, directory, limits)
    evaluation = steps.evaluate(
        run.store, run.config, OracleConfig.model_validate(oracle), candidate_hash, index
    )
    return "skipped" if evaluation is None else evaluation.status


@task(name="evaluate-chunk", **RETRIED)
def evaluate_chunk_task(
    database_url: str,
    campaign: str,
    directory: str,
    limits: RunLimits,
    calls: list[tuple[dict[str, Any], str]],
    index: int,
) -> list[str]:
    """Several oracle calls (oracle config, candidate hash) one after another in this worker,
    ``execution.calls_per_task`` at a time; returns their statuses. A retried chunk redoes
    nothing that finished: :func:`loop.steps.evaluate` returns stored results."""
    steps.set_torch_threads()
    run = open_run(database_url, campaign, directory, limits)
    statuses: list[str] = []
    for oracle, candidate_hash in calls:
        evaluation = steps.evaluate(
            run.store, run.config, OracleConfig.model_validate(oracle), candidate_hash, index
        )
        statuses.append("skipped" if evaluation is None else evaluation.status)
    return statuses


#: ``execution.calls_per_task: auto`` maps about this many chunks to each worker: few enough to
#: spread Prefect's per-task cost over many calls (prefect-dask serialises the run's settings at
#: every submission: 0.1-0.2 s of the flow process's time a task, measured on 2 cores), enough
#: to balance calls of unequal length.
CHUNKS_PER_WORKER = 4


def chunk_size(calls_per_task: int | str, n_calls: int, workers: int) -> int:
    """Calls per Prefect task: ``calls_per_task``, or for ``auto`` ``n_calls`` spread over
    :data:`CHUNKS_PER_WORKER` chunks per worker (at least 1)."""
    if isinstance(calls_per_task, int):
        return calls_per_task
    return max(1, -(-n_calls // (CHUNKS_PER_WORKER * max(1, workers))))


def runner_workers() -> int:
    """Workers of the running flow's task runner: a Dask cluster's, else 1 (the local runners
    have one worker)."""
    context = FlowRunContext.get()
    client = getattr(context.task_runner, "client", None) if context else None
    if client is None:
        return 1
    return max(1, len(client.scheduler_info()["workers"]))


def chunked(items: list[Any], size: int) -> list[list[Any]]:
    """``items`` in consecutive chunks of ``size`` (the last one may be shorter)."""
    return [items[start : start + size] for start in range(0, len(items), size)]


@task(name="retrain", **RETRIED)
def retrain_task(
    database_url: str, campaign: str, directory: str, limits: RunLimits, index: int
) -> str:
    """Fine-tune the generator on everything scored so far, for iteration ``index + 1``."""
    run = open_run(database_url, campaign, directory, limits)
    if (reason := Budget.of(run.store, run.config).training_refused()) is not None:
        return f"retraining skipped: {reason}"
    model = steps.ensure_generator(run, index + 1, trained_in=index)
    return f"generator {model.checkpoint_sha256}"


def fan_out(
    tasks: list[EvaluationTask], run: CampaignRun, args: tuple[str, str, str, RunLimits], index: int
) -> dict[str, int]:
    """Run ``tasks`` on the flow's task runner, one Prefect task per call (or per chunk of
    ``execution.calls_per_task`` calls); each records its evaluation in the store itself.

    ``args`` are :func:`open_run`'s arguments; call inside a flow. Returns the count per
    status (``done``, ``failed``, ...)."""
    if not tasks:
        return {}
    configs = {o.name: o.model_dump(mode="json") for o in run.config.oracles}
    size = chunk_size(run.config.execution.calls_per_task, len(tasks), runner_workers())
    if size > 1:  # one task per chunk of calls: less Prefect bookkeeping per call
        calls = [(configs[t.oracle], t.candidate_hash) for t in tasks]
        chunks = evaluate_chunk_task.map(
            *(unmapped(value) for value in args), chunked(calls, size), unmapped(index)
        )
        return dict(Counter(status for chunk in chunks for status in chunk.result()))
    futures = evaluate_task.map(
        *(unmapped(value) for value in args),
        [configs[t.oracle] for t in tasks],
        [t.candidate_hash for t in tasks],
        unmapped(index),
    )
    return dict(Counter(future.result() for future in futures))


@contextmanager
def _held_lock(store: CampaignStore, stale_after_s: float) -> Iterator[threading.Event]:
    """Hold the campaign lock with a heartbeat thread; the yielded event is set if the lock is
    lost (taken over by another process)."""
    owner = default_lock_owner()
    store.acquire_lock(owner, stale_after_s=stale_after_s)
    lost, stop = threading.Event(), threading.Event()

    def beat() -> None:
        while not stop.wait(HEARTBEAT_S):
            try:
                store.heartbeat(owner)
            except LockHeld:
                lost.set()
                return
            except OperationalError:
                continue

    thread = threading.Thread(target=beat, name="amloop-heartbeat", daemon=True)
    thread.start()
    try:
        yield lost
    finally:
        stop.set()
        thread.join()
        store.release_lock(owner)


@flow(name="amloop-campaign", task_runner=ThreadPoolTaskRunner(max_workers=1))  # type: ignore[arg-type]
def campaign_flow(
    database_url: str,
    campaign: str,
    directory: str,
    limits: RunLimits | None = None,
    stale_after_s: float = 120.0,
) -> str:
    """Run campaign ``campaign`` until it should stop; returns why it stopped.

    Re-running it on the same campaign resumes from the store: nothing finished is redone.
    Ctrl-C (:mod:`loop.interrupt`) ends it at the next safe point as cancelled, the campaign
    ``interrupted``.
    """
    logger = get_run_logger()
    remember_flow_run(flow_run.id)  # a function: Dask pickles this flow's globals by value
    limits = limits or RunLimits()
    args = (database_url, campaign, directory, limits)
    run = open_run(*args)
    with _held_lock(run.store, stale_after_s) as lost:
        record_limits(run.store, limits)
        run.store.set_status("running")
        requeued = run.store.requeue_running()
        if requeued:
            logger.info("re-queued %d evaluation(s) left running by a dead process", requeued)
        try:
            reason = _iterate(run, args, lost)
        except Interrupted as exc:
            run.store.log_event("interrupted", f"{exc}; `amloop resume {campaign}` continues")
            run.store.set_status("interrupted")
            return Cancelled(message=str(exc))  # type: ignore[return-value]
        except BaseException as exc:  # recorded, then raised: `amloop resume` continues
            run.store.log_event("error", f"{type(exc).__name__}: {exc}")
            run.store.requeue_running()  # no call of this run is running any more
            run.store.set_status("paused")
            raise
        run.store.log_event("stopped", reason)
        run.store.set_status("finished")
        logger.info("campaign %s stopped: %s", campaign, reason)
        return reason


def _iterate(run: CampaignRun, args: tuple[str, str, str, RunLimits], lost: threading.Event) -> str:
    """Seed, then run iterations (:func:`loop.schedule.run_iterations`) until one should stop."""
    logger = get_run_logger()
    campaign = run.store.name
    logger.info(seed_task(*args))

    def check() -> None:
        check_stop()
        if lost.is_set():
            raise LockHeld(f"campaign '{campaign}' was taken over by another process")

    def prepare(index: int) -> list[str]:
        logger.info("iteration %d", index)
        acquire_task(*args, index)
        return generate_task(*args, index)

    def evaluate(index: int, candidate_hashes: list[str]) -> None:
        logger.info(
            steps.evaluate_iteration(
                run, index, candidate_hashes, lambda tasks: fan_out(tasks, run, args, index)
            )
        )
        started = time.perf_counter()
        logger.info(retrain_task(*args, index))
        steps.finish_iteration(run, index, {"retrain": time.perf_counter() - started})

    def submit(index: int, candidate_hashes: list[str]) -> Any:
        return evaluate_iteration_task.submit(*args, index, candidate_hashes)

    halves = Halves(prepare=prepare, evaluate=evaluate, submit=submit)
    return run_iterations(run, halves, run.config.execution.max_iterations, check)


def task_runner(config: CampaignConfig) -> Any:
    """The Prefect task runner the config's ``execution`` section asks for."""
    execution = config.execution
    if execution.executor == "local":
        if execution.overlap:  # the oracle calls run beside the loop's work: in a thread of this
            # process, each would wait for the other's interpreter lock
            return ProcessPoolTaskRunner(max_workers=1)
        return ThreadPoolTaskRunner(max_workers=1)
    from prefect_dask import DaskTaskRunner

    if execution.dask_address:
        return DaskTaskRunner(address=execution.dask_address)
    return DaskTaskRunner(
        cluster_kwargs={
            "n_workers": execution.n_workers,
            "threads_per_worker": 1,
            "processes": True,
            "dashboard_address": None,
        }
    )


def run_campaign(
    database_url: str,
    campaign: str,
    directory: Path,
    limits: RunLimits,
    *,
    stale_after_s: float = 120.0,
) -> str:
    """Run (or resume) a campaign with the task runner its config asks for; returns why it
    stopped.

    Raises:
        amloop.loop.interrupt.Interrupted: stopped by Ctrl-C at a safe point.
    """
    config = limits.apply(
        CampaignConfig.model_validate(CampaignStore.open(database_url, campaign).info().config)
    )
    configured = campaign_flow.with_options(task_runner=task_runner(config))
    state: State[str] = configured(
        database_url, campaign, str(directory), limits, stale_after_s, return_state=True
    )
    if state.is_cancelled():
        raise Interrupted(state.message or "stopped by Ctrl-C")
    return state.result()  # type: ignore[return-value]
