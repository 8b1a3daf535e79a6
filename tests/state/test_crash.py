"""A writer killed with SIGKILL, mid-transaction or at a random moment, leaves a consistent
database that can still be written to."""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import store_helpers
from sqlalchemy import text
from sqlalchemy.engine import make_url
from store_helpers import ORACLE, done_evaluation, pair_structure

from amloop.state.database import dispose_engines
from amloop.state.schema import Candidate
from amloop.state.store import CampaignStore

HELPER = Path(store_helpers.__file__)
N_COMMITTED = 25
N_UNCOMMITTED = 300


def start_writer(mode: str, *args: object) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, str(HELPER), mode, *map(str, args)],
        cwd=HELPER.parent,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def wait_for(marker: Path, writer: subprocess.Popen[bytes], timeout: float = 120.0) -> dict:
    deadline = time.monotonic() + timeout
    while not marker.exists():
        if writer.poll() is not None:
            output = writer.stdout.read().decode() if writer.stdout else ""
            pytest.fail(f"writer exited with {writer.returncode} before its marker:\n{output}")
        if time.monotonic() > deadline:
            writer.kill()
            pytest.fail(f"writer wrote no marker within {timeout} s")
        time.sleep(0.02)
    return json.loads(marker.read_text())


def kill(writer: subprocess.Popen[bytes]) -> None:
    os.kill(writer.pid, signal.SIGKILL)
    assert writer.wait(timeout=30) == -signal.SIGKILL
    if writer.stdout:
        writer.stdout.close()


def scalar(store: CampaignStore, sql: str) -> object:
    with store.transaction() as session:
        return session.execute(text(sql)).scalar_one()


def sqlite_path(url: str) -> str:
    database = make_url(url).database
    assert database
    return database


def assert_write_lock_free(url: str) -> None:
    """SQLite: a new connection gets the write lock at once (the dead writer's lock is gone)."""
    connection = sqlite3.connect(sqlite_path(url), timeout=0, isolation_level=None)
    try:
        connection.execute("PRAGMA busy_timeout=0")
        connection.execute("BEGIN IMMEDIATE")
        connection.execute("ROLLBACK")
    finally:
        connection.close()


def assert_backend_gone(store: CampaignStore, backend_pid: int) -> None:
    """PostgreSQL: the killed client's backend (and its open transaction and locks) ends."""
    deadline = time.monotonic() + 30
    while True:
        with store.transaction() as session:
            alive = session.execute(
                text("SELECT count(*) FROM pg_stat_activity WHERE pid = :pid"), {"pid": backend_pid}
            ).scalar_one()
            locks = session.execute(
                text("SELECT count(*) FROM pg_locks WHERE pid = :pid"), {"pid": backend_pid}
            ).scalar_one()
        if alive == 0 and locks == 0:
            return
        assert time.monotonic() < deadline, f"backend {backend_pid} still alive after 30 s"
        time.sleep(0.1)


def assert_consistent(store: CampaignStore, url: str) -> None:
    if store.engine.dialect.name == "sqlite":
        connection = sqlite3.connect(sqlite_path(url))
        try:
            assert connection.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
            assert connection.execute("PRAGMA foreign_key_check").fetchall() == []
        finally:
            connection.close()
    orphans = scalar(
        store,
        "SELECT count(*) FROM evaluations e LEFT JOIN candidates c ON c.id = e.candidate_id "
        "WHERE c.id IS NULL",
    )
    assert orphans == 0


@pytest.mark.timeout(180)
def test_sigkill_mid_transaction_leaves_consistent_database(db_url: str, tmp_path: Path) -> None:
    store = CampaignStore.create(db_url, "crash", {})
    dispose_engines()
    marker = tmp_path / "in-transaction.json"
    writer = start_writer("crash", db_url, "crash", marker, N_COMMITTED, N_UNCOMMITTED)
    try:
        info = wait_for(marker, writer)
        if store.engine.dialect.name == "sqlite":
            # The open transaction spilled to the WAL file: recovery must ignore those frames.
            assert Path(sqlite_path(db_url) + "-wal").stat().st_size > 1_000_000
    finally:
        kill(writer)

    if store.engine.dialect.name == "sqlite":
        assert_write_lock_free(db_url)
    else:
        assert_backend_gone(store, info["backend_pid"])
    reopened = CampaignStore.open(db_url, "crash")
    assert_consistent(reopened, db_url)

    # Everything committed is there, unchanged; nothing of the open transaction is.
    evaluations = reopened.evaluations()
    assert len(evaluations) == N_COMMITTED
    assert {e.status for e in evaluations} == {"done"}
    assert sorted(e.properties["bulk_modulus"].value for e in evaluations) == [
        float(k) for k in range(N_COMMITTED)
    ]
    assert len(reopened.candidates()) == N_COMMITTED
    assert (
        scalar(reopened, "SELECT count(*) FROM candidates WHERE content_hash LIKE 'uncommitted%'")
        == 0
    )
    assert reopened.measurements() == []
    assert scalar(reopened, "SELECT count(*) FROM measurements") == 0

    # The store can still write.
    candidate = reopened.add_candidate(Candidate(structure=pair_structure(5, 0), origin="seed"))
    reopened.record_evaluation(done_evaluation(candidate.content_hash, 42.0))
    assert len(reopened.evaluations(status="done")) == N_COMMITTED + 1
    assert_consistent(reopened, db_url)


@pytest.mark.timeout(180)
def test_sigkill_at_random_moment_in_record_loop(db_url: str, tmp_path: Path) -> None:
    CampaignStore.create(db_url, "loop", {})
    dispose_engines()
    marker = tmp_path / "first-result.json"
    delay = random.uniform(0.2, 1.5)
    writer = start_writer("loop", db_url, "loop", marker)
    try:
        wait_for(marker, writer)
        time.sleep(delay)
    finally:
        kill(writer)

    reopened = CampaignStore.open(db_url, "loop")
    assert_consistent(reopened, db_url)
    evaluations = reopened.evaluations()
    assert len(evaluations) >= 1, f"killed after {delay:.2f} s"
    # Every evaluation references a stored candidate, and every result is whole.
    hashes = {c.content_hash for c in reopened.candidates()}
    assert {e.candidate_hash for e in evaluations} <= hashes
    for evaluation in evaluations:
        assert evaluation.oracle == ORACLE
        if evaluation.status == "done":
            assert evaluation.properties["bulk_modulus"].unit == "GPa"
            assert evaluation.cost.core_s == 2.0
        elif evaluation.status == "failed":
            assert evaluation.error == "toy oracle failed"
            assert evaluation.traceback == "Traceback: toy"
        else:  # claimed, killed before the result was recorded
            assert evaluation.status == "running"
            assert evaluation.properties == {}
    # Candidates are added one by one, so at most the last one lacks its evaluation, and at
    # most the last evaluation was interrupted; a failure and its audit event commit together.
    assert len(hashes) - len(evaluations) in (0, 1)
    assert len(reopened.evaluations(status="running")) <= 1
    assert len(reopened.events(kind="evaluation_failed")) == len(
        reopened.evaluations(status="failed")
    )

    if reopened.engine.dialect.name == "sqlite":
        assert_write_lock_free(db_url)
    assert reopened.requeue_running() <= 1
    candidate = reopened.add_candidate(Candidate(structure=pair_structure(99, 999), origin="seed"))
    reopened.record_evaluation(done_evaluation(candidate.content_hash, 42.0))
    assert reopened.candidate(candidate.content_hash) is not None


def test_opening_the_store_again_keeps_the_log_of_a_process_that_writes(tmp_path: Path) -> None:
    """SQLite's file locks belong to the process: a plain ``open()``/``close()`` of
    ``campaign.db`` in a process whose connections use it drops them, and the next process to
    close its last connection takes itself for the last user and deletes the write-ahead log
    that the first one still writes to (seen: `amloop status` beside `amloop run` lost every
    write after it). Opening the store again must not touch the file that way."""
    url = f"sqlite:///{tmp_path / 'campaign.db'}"
    store = CampaignStore.create(url, "locks", {"name": "locks"})
    store.log_event("note", "first")
    CampaignStore.open(url, "locks")  # again, in this process: the header check
    other = subprocess.run(
        [sys.executable, "-c", f"import sqlite3; c = sqlite3.connect({str(tmp_path / 'campaign.db')!r});"
         "c.execute('select count(*) from events').fetchone(); c.close()"],
        check=True,
    )  # fmt: skip
    assert other.returncode == 0
    store.log_event("note", "second")  # written after the other process closed
    assert (tmp_path / "campaign.db-wal").exists()
    reader = sqlite3.connect(tmp_path / "campaign.db")
    try:
        notes = reader.execute("SELECT message FROM events WHERE kind = 'note'").fetchall()
    finally:
        reader.close()
    assert [m for (m,) in notes] == ["first", "second"]
