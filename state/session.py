"""The base of the campaign store: one campaign's engine, its transactions and its audit-log
rows; the store's parts (:mod:`amloop.state.lock`, :mod:`amloop.state.lab_requests`,
:mod:`amloop.state.store`) build on it."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.orm import Session

from amloop.state.models import EventRow
from amloop.state.settings import Settings

#: First and longest wait (s) between attempts to reach the database during an outage.
FIRST_RETRY_S, LONGEST_RETRY_S = 0.25, 15.0


class StoreSession:
    """One campaign in one database: the engine, the campaign's id and name."""

    def __init__(self, engine: Engine, campaign_id: int, name: str):
        self.engine = engine
        self.campaign_id = campaign_id
        self.name = name
        #: How long (s) an unreachable database is waited for before a transaction fails.
        self.outage_s = Settings().db_outage_s

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """One transaction: committed on success, rolled back on any exception.

        While the database cannot be reached (PostgreSQL down or restarting, a SQLite file
        that cannot be opened), the start of the transaction is retried with backoff for
        :attr:`outage_s` seconds (``AMLOOP_DB_OUTAGE_S``) before the error is raised.
        """
        with self._begin() as session:
            transaction = session.get_transaction()
            assert transaction is not None
            try:
                yield session
            except BaseException:
                transaction.rollback()
                raise
            transaction.commit()

    def _begin(self) -> Session:
        """A session with its connection made and its transaction begun (retried, see
        :meth:`transaction`)."""
        deadline = time.monotonic() + self.outage_s
        wait = FIRST_RETRY_S
        while True:
            session = Session(self.engine, expire_on_commit=False)
            try:
                session.begin()
                session.connection()  # connects and issues BEGIN: where an outage shows
                return session
            except (OperationalError, InterfaceError):
                session.close()
                if time.monotonic() + wait > deadline:
                    raise
                time.sleep(wait)
                wait = min(2 * wait, LONGEST_RETRY_S)

    def _insert(self, table: type) -> Any:
        dialect = postgresql if self.engine.dialect.name == "postgresql" else sqlite
        return dialect.insert(table)

    def _event(
        self,
        session: Session,
        kind: str,
        message: str,
        *,
        payload: dict[str, Any] | None = None,
        iteration: int | None = None,
    ) -> None:
        session.add(
            EventRow(
                campaign_id=self.campaign_id,
                kind=kind,
                message=message,
                payload=payload or {},
                iteration=iteration,
            )
        )
