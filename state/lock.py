"""The campaign lock: one process drives a campaign; a heartbeat keeps the lock, a stale lock
(no heartbeat, or its holder's process gone) is taken over."""

from __future__ import annotations

import os
import socket
import uuid
from datetime import timedelta

import psutil
from sqlalchemy import or_, update

from amloop.state.models import CampaignRow, utcnow
from amloop.state.records import aware
from amloop.state.schema import LockInfo
from amloop.state.session import StoreSession


class LockHeld(RuntimeError):
    """Another live process drives the campaign."""


def default_lock_owner() -> str:
    """A lock-owner id unique to this process: ``host:pid:start-time:random`` (the start time
    tells a reused PID from the process that took the lock)."""
    started = psutil.Process().create_time()
    return f"{socket.gethostname()}:{os.getpid()}:{started:.2f}:{uuid.uuid4().hex[:8]}"


def owner_process_is_dead(owner: str) -> bool:
    """Whether a ``host:pid[:start-time]:...`` lock owner is a process of this host that has
    exited, or whose PID now belongs to a process started at another time."""
    host, pid, *rest = [*owner.split(":"), ""]
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        started = psutil.Process(int(pid)).create_time()
    except psutil.NoSuchProcess:
        return True
    except psutil.AccessDenied:
        return False
    try:
        recorded = float(rest[0]) if len(rest) > 2 else None
    except ValueError:
        recorded = None
    return recorded is not None and abs(started - recorded) > 0.5


class CampaignLock(StoreSession):
    """Taking, refreshing and giving back the campaign lock."""

    def acquire_lock(self, owner: str, *, stale_after_s: float) -> LockInfo:
        """Take the campaign lock: free, ours already, or stale (no heartbeat for
        ``stale_after_s`` seconds, or held by a process of this host that no longer exists), so
        its holder is presumed dead and is taken over.

        Raises:
            LockHeld: a live process holds it.
        """
        now = utcnow()
        cutoff = now - timedelta(seconds=stale_after_s)
        with self.transaction() as session:
            previous = session.get_one(CampaignRow, self.campaign_id)
            previous_owner = previous.lock_owner
            previous_beat = aware(previous.lock_heartbeat_at)
            takeable = [
                CampaignRow.lock_owner.is_(None),
                CampaignRow.lock_owner == owner,
                CampaignRow.lock_heartbeat_at < cutoff,
            ]
            if previous_owner is not None and owner_process_is_dead(previous_owner):
                takeable.append(CampaignRow.lock_owner == previous_owner)
            result = session.execute(
                update(CampaignRow)
                .where(CampaignRow.id == self.campaign_id, or_(*takeable))
                .values(lock_owner=owner, lock_acquired_at=now, lock_heartbeat_at=now)
                .execution_options(synchronize_session=False)
            )
            if not result.rowcount:  # type: ignore[attr-defined]
                age = (now - previous_beat).total_seconds() if previous_beat else float("nan")
                acquired = aware(previous.lock_acquired_at)
                since = f"{acquired:%Y-%m-%d %H:%M} UTC" if acquired else "an unknown time"
                host, pid, *_ = [*(previous_owner or "").split(":"), "?", "?"]
                raise LockHeld(
                    f"campaign '{self.name}' is being run by PID {pid} on {host} since "
                    f"{since} (last heartbeat {age:.0f} s ago): wait for it "
                    f"to finish (`amloop status {self.name}` shows it), or stop it (`kill -INT "
                    f"{pid}` on {host}: it stops at a safe point) and run `amloop resume "
                    f"{self.name}`; a lock whose process is gone is taken over by itself "
                    f"after {stale_after_s:.0f} s without a heartbeat (at once with `amloop "
                    f"resume {self.name} --take-over` when {host} is known to be down)"
                )
            if previous_owner not in (None, owner):
                self._event(
                    session,
                    "lock_taken_over",
                    f"stale lock of {previous_owner} taken over by {owner}",
                )
        return LockInfo(owner=owner, acquired_at=now, heartbeat_at=now)

    def heartbeat(self, owner: str) -> None:
        """Refresh the lock's heartbeat.

        Raises:
            LockHeld: the lock was taken over (this process must stop driving the campaign).
        """
        with self.transaction() as session:
            result = session.execute(
                update(CampaignRow)
                .where(CampaignRow.id == self.campaign_id, CampaignRow.lock_owner == owner)
                .values(lock_heartbeat_at=utcnow())
                .execution_options(synchronize_session=False)
            )
            if not result.rowcount:  # type: ignore[attr-defined]
                raise LockHeld(f"campaign '{self.name}' lock is no longer held by {owner}")

    def release_lock(self, owner: str) -> None:
        """Give the lock back (no-op if ``owner`` does not hold it)."""
        with self.transaction() as session:
            session.execute(
                update(CampaignRow)
                .where(CampaignRow.id == self.campaign_id, CampaignRow.lock_owner == owner)
                .values(lock_owner=None, lock_acquired_at=None, lock_heartbeat_at=None)
                .execution_options(synchronize_session=False)
            )
