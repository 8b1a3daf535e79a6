"""A database that cannot be reached for a while costs waiting, not the run: the start of every
transaction is retried with backoff for ``AMLOOP_DB_OUTAGE_S`` before the error is raised."""

from __future__ import annotations

import sqlite3
import time

import pytest
from sqlalchemy import event
from sqlalchemy.exc import OperationalError
from store_helpers import done_evaluation, pair_structure

from amloop.state.schema import Candidate
from amloop.state.store import CampaignStore

CONFIG = {"name": "outage"}


def _fail_connects(store: CampaignStore, times: int) -> list[float]:
    """Make the next ``times`` connections fail as an unreachable database does; returns the
    moments of every attempt."""
    attempts: list[float] = []
    store.engine.dispose()  # no pooled connection: every transaction connects

    @event.listens_for(store.engine, "do_connect")
    def refuse(dialect, conn_rec, cargs, cparams):  # type: ignore[no-untyped-def]
        attempts.append(time.monotonic())
        if len(attempts) <= times:
            raise sqlite3.OperationalError("unable to open database file")
        return None

    return attempts


def test_a_short_outage_is_waited_out(sqlite_url: str) -> None:
    store = CampaignStore.create(sqlite_url, "outage", CONFIG)
    attempts = _fail_connects(store, times=3)
    store.log_event("note", "written after the outage")
    assert len(attempts) == 4
    assert attempts[-1] - attempts[0] >= 0.25 + 0.5 + 1.0 - 0.05  # backoff between tries
    assert [e.message for e in store.events(kind="note")] == ["written after the outage"]


def test_a_long_outage_ends_in_the_error(sqlite_url: str, monkeypatch) -> None:
    monkeypatch.setenv("AMLOOP_DB_OUTAGE_S", "1.0")
    store = CampaignStore.create(sqlite_url, "outage", CONFIG)
    _fail_connects(store, times=1000)
    started = time.monotonic()
    with pytest.raises(OperationalError):
        store.log_event("note", "never written")
    assert time.monotonic() - started < 5.0


def test_a_full_disk_fails_the_write_whole_and_the_store_goes_on_after(sqlite_url: str) -> None:
    """SQLite's 'database or disk is full' (the file may not grow: ``max_page_count``) fails
    the transaction as a whole, with the same error class the loop retries and then pauses on;
    once there is room again the store writes as before and nothing half-written is left."""
    store = CampaignStore.create(sqlite_url, "disk", CONFIG)
    first = store.add_candidate(Candidate(structure=pair_structure(0, 0), origin="seed"))
    store.engine.dispose()
    full = {"on": True}

    @event.listens_for(store.engine, "connect")
    def cap(dbapi_connection, connection_record):  # type: ignore[no-untyped-def]
        if full["on"]:
            pages = dbapi_connection.execute("PRAGMA page_count").fetchone()[0]
            dbapi_connection.execute(f"PRAGMA max_page_count = {pages}")

    big = "x" * 200_000  # more than the free pages of the file: it has to grow
    with pytest.raises(OperationalError, match="full"):
        store.record_evaluation(done_evaluation(first.content_hash, 180.0, error=big))
    assert store.evaluations() == []
    full["on"] = False
    store.engine.dispose()
    store.record_evaluation(done_evaluation(first.content_hash, 180.0))
    assert [e.properties["bulk_modulus"].value for e in store.evaluations()] == [180.0]
