"""Ctrl-C for a running campaign: a stop request that the loop honours at its next safe point.

The first SIGINT sets :data:`STOP`; the flow checks it between steps (:func:`check_stop`) and
ends as *interrupted* (Prefect: cancelled). If no safe point comes within
:data:`GRACE_S` (a long oracle call is running), or on a second SIGINT, :func:`stop_now` marks
the campaign interrupted, cancels the Prefect flow run, ends this process's children and exits:
the running evaluations stay ``running`` and ``amloop resume`` re-queues them, as after kill -9.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field

#: Seconds the loop gets to reach a safe point after the first Ctrl-C.
GRACE_S = 2.5
#: Exit status after an interrupt (128 + SIGINT, as shells report it).
EXIT_STATUS = 130

#: Set by the first Ctrl-C; the loop stops at its next safe point.
STOP = threading.Event()


class Interrupted(Exception):
    """The user stopped the run (Ctrl-C); ``amloop resume`` continues it."""


def check_stop() -> None:
    """Raise :class:`Interrupted` if a stop was requested (call at safe points only)."""
    if STOP.is_set():
        raise Interrupted("stopped by Ctrl-C")


@dataclass
class FlowRunRef:
    """The Prefect flow run of this process's campaign run, once it has started."""

    flow_run_id: str | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)


#: Filled by the flow when it starts, read by :func:`stop_now`.
CURRENT_FLOW_RUN = FlowRunRef()


def remember_flow_run(flow_run_id: str) -> None:
    """Called by the flow when it starts, so that :func:`cancel_flow_run` can end it."""
    with CURRENT_FLOW_RUN.lock:
        CURRENT_FLOW_RUN.flow_run_id = flow_run_id


def end_children(timeout_s: float = 0.5) -> None:
    """Terminate every process this one started (process-pool workers, Dask workers, Prefect's
    temporary server, MD/DFT subprocesses), then kill those still alive after ``timeout_s``."""
    import psutil

    from amloop.loop.watchdog import end_processes

    end_processes(psutil.Process(os.getpid()).children(recursive=True), timeout_s)


def cancel_flow_run(message: str, *, timeout_s: float = 0.5) -> None:
    """Mark this process's Prefect flow run cancelled, waiting at most ``timeout_s`` (best
    effort: the store, not Prefect, is the campaign's record, and the API server may have
    received the same Ctrl-C)."""
    with CURRENT_FLOW_RUN.lock:
        flow_run_id = CURRENT_FLOW_RUN.flow_run_id
    if flow_run_id is None:
        return

    def cancel() -> None:
        try:
            from prefect.client.orchestration import get_client
            from prefect.states import Cancelled

            with get_client(sync_client=True) as client:
                client.set_flow_run_state(flow_run_id, Cancelled(message=message), force=True)
        except Exception:  # the API is gone: nothing is lost in the store
            return

    thread = threading.Thread(target=cancel, name="amloop-cancel", daemon=True)
    thread.start()
    thread.join(timeout_s)
