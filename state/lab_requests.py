"""Lab requests: the experiment fidelity's open questions (a composition to make and
measure), answered by injected measurements or cancelled."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from amloop.state.composition import formula
from amloop.state.models import LabRequestRow, MeasurementRow, utcnow
from amloop.state.schema import LabRequest, LabRequestStatus, Measurement
from amloop.state.session import StoreSession


class LabRequests(StoreSession):
    """Opening, listing, answering and cancelling lab requests."""

    def add_lab_request(self, request: LabRequest) -> LabRequest:
        """Open a lab request; an open request for the same formula and oracle is reused."""
        name = formula(request.composition)
        with self.transaction() as session:
            row = session.scalars(
                select(LabRequestRow).where(
                    LabRequestRow.campaign_id == self.campaign_id,
                    LabRequestRow.status == "open",
                    LabRequestRow.formula == name,
                    LabRequestRow.oracle == request.oracle,
                )
            ).first()
            if row is None:
                row = LabRequestRow(
                    campaign_id=self.campaign_id,
                    oracle=request.oracle,
                    formula=name,
                    composition=request.composition,
                    properties=request.properties,
                    reason=request.reason,
                    decision=request.decision,
                    iteration=request.iteration,
                    status="open",
                )
                session.add(row)
                session.flush()
                self._event(
                    session,
                    "lab_request",
                    f"lab request #{row.id}: {name} for {', '.join(request.properties)}",
                    iteration=request.iteration,
                )
            return self._lab_request_record(session, row)

    def lab_requests(self, *, status: LabRequestStatus | None = None) -> list[LabRequest]:
        """Lab requests (with one status if given), oldest first."""
        query = select(LabRequestRow).where(LabRequestRow.campaign_id == self.campaign_id)
        if status is not None:
            query = query.where(LabRequestRow.status == status)
        with self.transaction() as session:
            rows = list(session.scalars(query.order_by(LabRequestRow.id)))
            return [self._lab_request_record(session, row) for row in rows]

    def cancel_lab_request(self, request_id: int, reason: str) -> LabRequest:
        """Cancel an open lab request.

        Raises:
            LookupError: no such request in this campaign, or it is not open any more.
        """
        with self.transaction() as session:
            row = session.get(LabRequestRow, request_id)
            if row is None or row.campaign_id != self.campaign_id:
                raise LookupError(f"no lab request #{request_id} in campaign '{self.name}'")
            if row.status != "open":
                raise LookupError(f"lab request #{request_id} is {row.status}, not open")
            row.status, row.close_reason, row.closed_at = "cancelled", reason, utcnow()
            self._event(session, "lab_request_cancelled", f"#{request_id}: {reason}")
            session.flush()
            return self._lab_request_record(session, row)

    def _close_answered_requests(self, session: Session, requests: list[LabRequestRow]) -> None:
        session.flush()
        for row in requests:
            answered = set(
                session.scalars(
                    select(MeasurementRow.property).where(MeasurementRow.request_id == row.id)
                )
            )
            if row.status == "open" and set(row.properties) <= answered:
                row.status, row.close_reason, row.closed_at = "fulfilled", "measured", utcnow()
                self._event(session, "lab_request_fulfilled", f"lab request #{row.id} measured")

    def _lab_request_record(self, session: Session, row: LabRequestRow) -> LabRequest:
        ids = session.scalars(
            select(MeasurementRow.id)
            .where(MeasurementRow.request_id == row.id)
            .order_by(MeasurementRow.id)
        )
        return LabRequest(
            id=row.id,
            composition=row.composition,
            properties=row.properties,
            oracle=row.oracle,
            reason=row.reason,
            decision=row.decision,
            iteration=row.iteration,
            status=row.status,  # type: ignore[arg-type]
            close_reason=row.close_reason,
            measurement_ids=list(ids),
            created_at=row.created_at,
            closed_at=row.closed_at,
        )


def matching_request(
    requests: list[LabRequestRow], measurement: Measurement, tolerance: float
) -> LabRequestRow | None:
    """The lab request ``measurement`` answers: given by id, else the first open one for its
    property whose composition is within ``tolerance``."""
    if measurement.request_id is not None:
        for row in requests:
            if row.id == measurement.request_id:
                return row
        raise LookupError(f"lab request #{measurement.request_id} is not an open request")
    for row in requests:
        if measurement.property not in row.properties:
            continue
        elements = set(row.composition) | set(measurement.composition)
        difference = max(
            abs(row.composition.get(el, 0.0) - measurement.composition.get(el, 0.0))
            for el in elements
        )
        if difference <= tolerance:
            return row
    return None
