"""The base of the campaign store: one campaign's engine, its transactions and its audit-log
rows; the store's parts (:mod:`amloop.state.lock`, :mod:`amloop.state.lab_requests`,
:mod:`amloop.state.store`) build on it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from amloop.state.models import EventRow


class StoreSession:
    """One campaign in one database: the engine, the campaign's id and name."""

    def __init__(self, engine: Engine, campaign_id: int, name: str):
        self.engine = engine
        self.campaign_id = campaign_id
        self.name = name

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """One transaction: committed on success, rolled back on any exception."""
        with Session(self.engine, expire_on_commit=False) as session, session.begin():
            yield session

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
