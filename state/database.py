"""Engines and schema migrations: SQLite (embedded default) and PostgreSQL.

SQLite runs in WAL mode with a busy timeout, and every transaction starts with
``BEGIN IMMEDIATE`` so that concurrent writers queue on the lock instead of failing mid-way.
The schema is created and upgraded by alembic (``state/migrations``) from the first version on.
"""

from __future__ import annotations

import fcntl
import functools
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
#: How long a SQLite writer waits for the lock before giving up (ms).
SQLITE_BUSY_TIMEOUT_MS = 60_000

_engines: dict[str, Engine] = {}
_engines_lock = threading.Lock()


class DatabaseError(RuntimeError):
    """The database cannot be reached or has a schema this version does not know."""


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves (below)
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        _switch_to_wal(cursor)
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def _switch_to_wal(cursor: Any) -> None:
    """``PRAGMA journal_mode=WAL``, retried while another process holds the file: SQLite does
    not apply the busy timeout to a journal-mode change, so concurrent first opens of a new
    file can otherwise fail with "database is locked"."""
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000.0
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def get_engine(url: str) -> Engine:
    """A process-wide engine for ``url`` (SQLite files get their folder created)."""
    with _engines_lock:
        if url in _engines:
            return _engines[url]
        parsed = make_url(url)
        if parsed.get_backend_name() == "sqlite":
            if parsed.database and parsed.database != ":memory:":
                Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
            engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})
            _configure_sqlite(engine)
        elif parsed.get_backend_name() == "postgresql":
            if parsed.drivername == "postgresql":
                parsed = parsed.set(drivername="postgresql+psycopg")
            engine = create_engine(parsed, pool_pre_ping=True)
        else:
            raise DatabaseError(
                f"unsupported database URL '{url}': use sqlite:///PATH or postgresql://..."
            )
        _engines[url] = engine
        return engine


def sqlite_path(url: str) -> Path | None:
    """The file of a SQLite URL (``None`` for other databases and in-memory SQLite)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database:
        return None
    return None if parsed.database == ":memory:" else Path(parsed.database)


def check_existing_store(url: str) -> None:
    """Refuse to open a campaign store whose SQLite file is missing, empty or not SQLite:
    opening would create an empty schema there and lose the campaign (it is never written).

    Raises:
        DatabaseError: one line naming the file and what to do.
    """
    path = sqlite_path(url)
    if path is None:
        return
    restore = "restore it from a backup (`amloop backup` makes one) or run `amloop check`"
    if not path.is_file():
        raise DatabaseError(f"campaign store {path} is missing; {restore}")
    if path.stat().st_size == 0:
        raise DatabaseError(f"campaign store {path} is empty (0 bytes); {restore}")
    # Read through SQLite, never with open()/close(): SQLite's file locks belong to the process,
    # closing any other descriptor of the file drops those of this process's connections, and
    # another process may then delete the write-ahead log they still write to.
    probe = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        probe.execute("PRAGMA schema_version").fetchone()
    except sqlite3.DatabaseError:
        raise DatabaseError(
            f"campaign store {path} is not a SQLite database (damaged); {restore}"
        ) from None
    finally:
        probe.close()


def checkpoint(url: str) -> None:
    """Write a SQLite store's write-ahead log into the database file, so that the file alone
    holds everything (a copy of ``campaign.db`` without ``-wal`` is then complete)."""
    if sqlite_path(url) is None or url not in _engines:
        return
    connection = _engines[url].raw_connection()  # outside a transaction: SQLite refuses within
    try:
        connection.cursor().execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        connection.close()


def checkpoint_all() -> None:
    """:func:`checkpoint` every SQLite store this process opened (at the end of a command)."""
    for url in list(_engines):
        try:
            checkpoint(url)
        except Exception:  # a busy or vanished file: the log stays valid, SQLite replays it
            continue


def backup_sqlite(url: str, target: Path) -> Path:
    """An online copy of a SQLite store (SQLite's backup API: consistent while others write).

    Raises:
        DatabaseError: not a SQLite store, or ``target`` exists.
    """
    path = sqlite_path(url)
    if path is None:
        raise DatabaseError(
            "the store is not a SQLite file: back up PostgreSQL with "
            f"`pg_dump -Fc -f campaign.dump '{make_url(url).render_as_string(hide_password=True)}'`"
        )
    if target.exists():
        raise DatabaseError(f"{target} exists; choose a new file for the backup")
    target.parent.mkdir(parents=True, exist_ok=True)
    source = sqlite3.connect(path, timeout=SQLITE_BUSY_TIMEOUT_MS / 1000)
    try:
        destination = sqlite3.connect(target)
        with destination:
            source.backup(destination)
        destination.close()
    finally:
        source.close()
    return target


def dispose_engines() -> None:
    """Close every pooled connection (after a fork, or at the end of tests)."""
    with _engines_lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()


def _alembic_config(engine: Engine) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["engine"] = engine
    return config


@functools.cache
def head_revision() -> str:
    """The newest schema revision this version of amloop knows (read from the migration scripts
    once per process: every store opened by a worker task asks)."""
    head = ScriptDirectory(str(MIGRATIONS_DIR)).get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    """The schema revision of the database (``None`` for an empty database)."""
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def migrate(engine: Engine) -> None:
    """Bring the schema to :func:`head_revision` (no-op when it is there already).

    Raises:
        DatabaseError: the database is newer than this version of amloop.
    """
    head = head_revision()
    if current_revision(engine) == head:
        return
    with _migration_lock(engine):
        current = current_revision(engine)  # again: another process may have migrated meanwhile
        if current == head:
            return
        known = {rev.revision for rev in ScriptDirectory(str(MIGRATIONS_DIR)).walk_revisions()}
        if current is not None and current not in known:
            raise DatabaseError(
                f"database schema revision {current} is unknown to this amloop version "
                f"(newest known: {head}); upgrade amloop"
            )
        command.upgrade(_alembic_config(engine), "head")


@contextmanager
def _migration_lock(engine: Engine) -> Iterator[None]:
    """Serialise migrations of one SQLite file across processes (SQLite DDL in alembic is not
    one transaction). PostgreSQL migrations take an advisory lock in ``migrations/env.py``."""
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:":
        yield
        return
    with open(f"{database}.migrate.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
