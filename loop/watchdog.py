"""Children never outlive ``amloop run``: a watchdog process ends them when it dies, kill -9 too.

``amloop run`` starts processes it does not fully control: Prefect's temporary API server (a
uvicorn process in a session of its own), process-pool and Dask workers, MD and DFT
subprocesses. A process killed with SIGKILL cannot clean up, and its children live on (seen: one
~234 MB Prefect server per crash). The watchdog, started in a session of its own so that the
signal that kills the run's process group does not reach it, notes the run's descendants every
:data:`POLL_S` seconds while the run lives and, once it is gone, ends every one of them still
running (psutil compares start times, so a reused PID is never hit).

Usage (by :func:`start_watchdog`): ``python -m amloop.loop.watchdog PID``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import psutil

#: Seconds between looks at the watched process and its descendants.
POLL_S = 0.5
#: Seconds a descendant gets to exit after SIGTERM before SIGKILL.
TERM_GRACE_S = 2.0


def start_watchdog(pid: int | None = None) -> subprocess.Popen[bytes]:
    """Start the watchdog of process ``pid`` (default: this one)."""
    return subprocess.Popen(
        [sys.executable, "-m", "amloop.loop.watchdog", str(pid or os.getpid())],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def watch(pid: int) -> int:
    """Watch ``pid``; when it is gone, end its descendants; returns how many were ended."""
    import psutil

    try:
        watched = psutil.Process(pid)
    except psutil.NoSuchProcess:
        return 0
    me = os.getpid()
    seen: dict[int, psutil.Process] = {}
    while watched.is_running() and watched.status() != psutil.STATUS_ZOMBIE:
        try:
            for child in watched.children(recursive=True):
                if child.pid != me:
                    seen.setdefault(child.pid, child)
        except psutil.NoSuchProcess:
            break
        time.sleep(POLL_S)
    alive = [process for process in seen.values() if process.is_running()]
    end_processes(alive, TERM_GRACE_S)
    return len(alive)


def end_processes(processes: list[psutil.Process], grace_s: float) -> None:
    """SIGTERM to ``processes``, then SIGKILL to those still running after ``grace_s`` s."""
    import psutil

    for process in processes:
        try:
            process.terminate()
        except psutil.NoSuchProcess:
            continue
    _, stubborn = psutil.wait_procs(processes, timeout=grace_s)
    for process in stubborn:
        try:
            process.kill()
        except psutil.NoSuchProcess:
            continue


if __name__ == "__main__":
    watch(int(sys.argv[1]))
