"""Run or resume a campaign's closed loop, without any display: what ``amloop run`` / ``resume``
and the Python API (:class:`amloop.Campaign`) share."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass

from amloop.loop.campaigns import CampaignHandle
from amloop.state.config import CampaignConfig
from amloop.state.database import checkpoint
from amloop.state.lock import default_lock_owner, owner_process_is_dead
from amloop.state.settings import Settings
from amloop.state.store import CampaignStore

#: Event under which a run's limits are stored, so ``resume`` keeps them.
RUN_LIMITS_EVENT = "run_limits"


@dataclass(frozen=True)
class RunLimits:
    """Limits of one run that override the campaign's config (``None``: the config's)."""

    max_iterations: int | None = None
    core_hours: float | None = None

    def apply(self, config: CampaignConfig) -> CampaignConfig:
        """``config`` with these limits in place of its own."""
        execution = config.execution.model_copy(
            update={"max_iterations": self.max_iterations or config.execution.max_iterations}
        )
        budget = config.budget.model_copy(
            update={"core_hours": self.core_hours or config.budget.core_hours}
        )
        return config.model_copy(update={"execution": execution, "budget": budget})


def last_limits(handle: CampaignHandle) -> RunLimits:
    """The limits of the campaign's last run (none recorded: the config's)."""
    previous = handle.store().events(kind=RUN_LIMITS_EVENT)
    payload = previous[-1].payload if previous else {}
    return RunLimits(payload.get("max_iterations"), payload.get("core_hours"))


def record_limits(store: CampaignStore, limits: RunLimits) -> None:
    """Store the limits of the run that now holds the campaign lock (``resume`` reuses them);
    a run refused because another holds the lock records nothing."""
    store.log_event(
        RUN_LIMITS_EVENT,
        f"run limits: {limits.max_iterations or 'config'} iterations, "
        f"{limits.core_hours or 'config'} core-h",
        payload={"max_iterations": limits.max_iterations, "core_hours": limits.core_hours},
    )


def iteration_limit_reason(done: int, max_iterations: int | None) -> str | None:
    """``"N iteration(s) done (limit M)"`` once ``done`` reaches ``max_iterations``."""
    if max_iterations is not None and done >= max_iterations:
        return f"{done} iteration(s) done (limit {max_iterations})"
    return None


def run_loop(handle: CampaignHandle, limits: RunLimits, *, take_over: bool = False) -> str:
    """Run (or resume) the campaign's loop until it should stop; returns why it stopped.

    A finished campaign whose iteration limit still holds returns at once, without starting
    the workflow engine or loading the models. ``take_over``: take a lock whose holder on
    another host is known to be gone (a crashed node) at once, without waiting for its
    heartbeat to go stale; a holder alive on this host is never taken over.

    Raises:
        amloop.state.store.LockHeld: another process runs the campaign.
    """
    store = handle.store()
    limit = limits.apply(handle.config).execution.max_iterations
    done = sum(record.phase == "done" for record in store.iterations())
    if store.info().status == "finished" and (reason := iteration_limit_reason(done, limit)):
        return reason
    stale_after_s = Settings().lock_stale_after_s
    probe = default_lock_owner()  # a held lock refuses at once, before the workflow engine starts
    holder = store.info().lock
    forced = take_over and holder is not None and not _alive_here(holder.owner)
    store.acquire_lock(probe, stale_after_s=0.0 if forced else stale_after_s)
    store.release_lock(probe)
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    from amloop.loop.flows import run_campaign

    try:
        return run_campaign(
            handle.database_url,
            handle.name,
            handle.directory,
            limits,
            stale_after_s=stale_after_s,
        )
    finally:
        checkpoint(handle.database_url)  # the store file alone holds the run's results


def _alive_here(owner: str) -> bool:
    """Whether the lock ``owner`` (``host:pid:...``) is a live process of this host."""
    host = owner.split(":", 1)[0]
    return host == socket.gethostname() and not owner_process_is_dead(owner)
