"""CampaignStore: the only code that talks SQL.

Every public write is one transaction, so a process killed at any moment leaves either the
whole record or none of it. Uniqueness is enforced by the database, not by Python checks:
one candidate per content hash per campaign, one evaluation per (candidate, oracle, fidelity),
so concurrent writers and resumed loops can never duplicate a result.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from amloop.state.composition import formula
from amloop.state.database import get_engine, migrate
from amloop.state.models import (
    ArtifactRow,
    CampaignRow,
    CandidateRow,
    EvaluationRow,
    EventRow,
    IterationRow,
    LabRequestRow,
    MeasurementRow,
    utcnow,
)
from amloop.state.schema import (
    Artifact,
    CampaignRecord,
    CampaignStatus,
    Candidate,
    CandidateOrigin,
    Cost,
    Evaluation,
    EvaluationStatus,
    Event,
    IterationPhase,
    IterationRecord,
    LabRequest,
    LabRequestStatus,
    LockInfo,
    Measurement,
    PropertyValue,
)
from amloop.state.structures import structure_from_json, structure_to_json


class CampaignNotFound(LookupError):
    """No campaign of that name in the database."""


class CampaignExists(ValueError):
    """A campaign of that name exists already."""


class LockHeld(RuntimeError):
    """Another live process drives the campaign."""


def default_lock_owner() -> str:
    """A lock-owner id unique to this process: ``host:pid:random``."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _owner_process_is_dead(owner: str) -> bool:
    """Whether a ``host:pid:...`` lock owner is a process of this host that has exited."""
    host, _, rest = owner.partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _aware(moment: datetime | None) -> datetime | None:
    """SQLite returns naive datetimes; everything amloop stores is UTC."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


class CampaignStore:
    """Durable state of one campaign: candidates, evaluations, measurements, iterations,
    artifacts, events and the campaign lock.

    Use :meth:`create` for a new campaign and :meth:`open` for an existing one.
    """

    def __init__(self, engine: Engine, campaign_id: int, name: str):
        self.engine = engine
        self.campaign_id = campaign_id
        self.name = name

    # ----------------------------------------------------------------- lifecycle
    @classmethod
    def create(cls, url: str, name: str, config: dict[str, Any]) -> CampaignStore:
        """Create campaign ``name`` (schema migrated first) and log its creation.

        Raises:
            CampaignExists: a campaign of that name is already in the database.
        """
        engine = get_engine(url)
        migrate(engine)
        try:
            with Session(engine) as session, session.begin():
                row = CampaignRow(name=name, config=config, status="created")
                session.add(row)
                session.flush()
                session.add(
                    EventRow(campaign_id=row.id, kind="created", message=f"campaign {name}")
                )
                campaign_id = row.id
        except IntegrityError:
            raise CampaignExists(f"campaign '{name}' already exists in {_safe(url)}") from None
        return cls(engine, campaign_id, name)

    @classmethod
    def open(cls, url: str, name: str) -> CampaignStore:
        """Open existing campaign ``name`` (upgrading an old schema first)."""
        engine = get_engine(url)
        migrate(engine)
        with Session(engine) as session:
            campaign_id = session.scalar(select(CampaignRow.id).where(CampaignRow.name == name))
        if campaign_id is None:
            raise CampaignNotFound(f"no campaign '{name}' in {_safe(url)}")
        return cls(engine, campaign_id, name)

    @staticmethod
    def campaign_names(url: str) -> list[str]:
        """Names of all campaigns in the database at ``url``."""
        engine = get_engine(url)
        migrate(engine)
        with Session(engine) as session:
            return list(session.scalars(select(CampaignRow.name).order_by(CampaignRow.id)))

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """One transaction: committed on success, rolled back on any exception."""
        with Session(self.engine, expire_on_commit=False) as session, session.begin():
            yield session

    def info(self) -> CampaignRecord:
        """The campaign row: config, status and lock."""
        with self.transaction() as session:
            row = session.get_one(CampaignRow, self.campaign_id)
            lock = None
            acquired, beat = _aware(row.lock_acquired_at), _aware(row.lock_heartbeat_at)
            if row.lock_owner is not None and acquired is not None and beat is not None:
                lock = LockInfo(owner=row.lock_owner, acquired_at=acquired, heartbeat_at=beat)
            return CampaignRecord(
                id=row.id,
                name=row.name,
                config=row.config,
                status=row.status,  # type: ignore[arg-type]
                created_at=_aware(row.created_at),  # type: ignore[arg-type]
                lock=lock,
            )

    def set_status(self, status: CampaignStatus) -> None:
        """Change the campaign's lifecycle status (logged)."""
        with self.transaction() as session:
            session.execute(
                update(CampaignRow).where(CampaignRow.id == self.campaign_id).values(status=status)
            )
            self._event(session, "status", f"campaign status -> {status}")

    # ----------------------------------------------------------------- candidates
    def add_candidate(self, candidate: Candidate) -> Candidate:
        """Store ``candidate`` unless one with the same content hash exists; return the stored one."""
        with self.transaction() as session:
            return _candidate_record(self._upsert_candidate(session, candidate))

    def candidate(self, content_hash: str) -> Candidate | None:
        """The candidate with ``content_hash``, or ``None``."""
        with self.transaction() as session:
            row = self._candidate_row(session, content_hash)
            return None if row is None else _candidate_record(row)

    def candidate_compositions(self) -> dict[str, dict[str, float]]:
        """Atomic fractions by element of every candidate, by content hash (no structure is
        read)."""
        query = select(CandidateRow.content_hash, CandidateRow.composition).where(
            CandidateRow.campaign_id == self.campaign_id
        )
        with self.transaction() as session:
            return {
                content_hash: composition for content_hash, composition in session.execute(query)
            }

    def candidates(
        self,
        *,
        iteration: int | None = None,
        origin: CandidateOrigin | None = None,
        hashes: Collection[str] | None = None,
    ) -> list[Candidate]:
        """All candidates (of one iteration, of one origin, with these content hashes if
        given), oldest first."""
        query = select(CandidateRow).where(CandidateRow.campaign_id == self.campaign_id)
        if hashes is not None:
            query = query.where(CandidateRow.content_hash.in_(list(hashes)))
        if iteration is not None:
            query = query.where(CandidateRow.iteration == iteration)
        if origin is not None:
            query = query.where(CandidateRow.origin == origin)
        with self.transaction() as session:
            return [
                _candidate_record(row) for row in session.scalars(query.order_by(CandidateRow.id))
            ]

    # ----------------------------------------------------------------- evaluations
    def record_evaluation(self, evaluation: Evaluation) -> Evaluation:
        """Insert or update the evaluation keyed by (candidate, oracle, fidelity).

        A finished (``done``) evaluation is never overwritten by an unfinished or failed one,
        so re-running work after a crash cannot lose or duplicate a result.

        Raises:
            LookupError: the candidate is not in this campaign.
        """
        with self.transaction() as session:
            row = self._evaluation_row_for_update(session, evaluation)
            if row.status == "done" and evaluation.status != "done":
                return _evaluation_record(row, evaluation.candidate_hash)
            row.status = evaluation.status
            row.properties = {k: v.model_dump() for k, v in evaluation.properties.items()}
            row.cost_core_s = evaluation.cost.core_s
            row.cost_gpu_s = evaluation.cost.gpu_s
            row.error = evaluation.error
            row.traceback = evaluation.traceback
            row.attempts = max(row.attempts, evaluation.attempts)
            row.relaxed_structure = (
                structure_to_json(evaluation.relaxed_structure)
                if evaluation.relaxed_structure is not None
                else None
            )
            row.provenance = evaluation.provenance
            row.iteration = (
                evaluation.iteration if evaluation.iteration is not None else row.iteration
            )
            row.started_at = evaluation.started_at or row.started_at
            row.finished_at = evaluation.finished_at
            if evaluation.status == "failed":
                self._event(
                    session,
                    "evaluation_failed",
                    f"{evaluation.oracle} on {evaluation.candidate_hash[:12]}: {evaluation.error}",
                    iteration=evaluation.iteration,
                )
            session.flush()
            return _evaluation_record(row, evaluation.candidate_hash)

    def claim_evaluation(
        self, candidate_hash: str, oracle: str, fidelity: float, *, iteration: int | None = None
    ) -> Evaluation | None:
        """Mark an evaluation ``running`` (attempts + 1) before calling the oracle.

        Returns ``None`` when the evaluation is finished already (nothing to do).
        """
        with self.transaction() as session:
            key = Evaluation(
                candidate_hash=candidate_hash, oracle=oracle, fidelity=fidelity, iteration=iteration
            )
            row = self._evaluation_row_for_update(session, key)
            if row.status == "done":
                return None
            row.status = "running"
            row.attempts += 1
            row.started_at = utcnow()
            session.flush()
            return _evaluation_record(row, candidate_hash)

    def requeue_running(self) -> int:
        """Put evaluations left ``running`` by a dead process back to ``pending``; returns how many."""
        with self.transaction() as session:
            result = session.execute(
                update(EvaluationRow)
                .where(
                    EvaluationRow.campaign_id == self.campaign_id, EvaluationRow.status == "running"
                )
                .values(status="pending")
            )
            count = int(result.rowcount or 0)  # type: ignore[attr-defined]
            if count:
                self._event(session, "requeued", f"{count} interrupted evaluation(s) re-queued")
            return count

    def evaluations(
        self,
        *,
        iteration: int | None = None,
        status: EvaluationStatus | None = None,
        oracle: str | None = None,
        candidates: Collection[str] | None = None,
        structures: bool = True,
        through_iteration: int | None = None,
    ) -> list[Evaluation]:
        """Evaluations, optionally filtered (``candidates``: content hashes; ``through_iteration``:
        those of no iteration, such as the seed set's, and of iterations up to that index),
        oldest first.

        With ``structures=False`` the relaxed structures are not read (``relaxed_structure`` is
        ``None``): parsing them is most of the cost of listing a large campaign's evaluations,
        and most callers want only values, statuses and costs."""
        query = (
            select(EvaluationRow, CandidateRow.content_hash)
            .join(CandidateRow, CandidateRow.id == EvaluationRow.candidate_id)
            .where(EvaluationRow.campaign_id == self.campaign_id)
        )
        if iteration is not None:
            query = query.where(EvaluationRow.iteration == iteration)
        if status is not None:
            query = query.where(EvaluationRow.status == status)
        if oracle is not None:
            query = query.where(EvaluationRow.oracle == oracle)
        if candidates is not None:
            query = query.where(CandidateRow.content_hash.in_(list(candidates)))
        if through_iteration is not None:
            query = query.where(
                or_(EvaluationRow.iteration.is_(None), EvaluationRow.iteration <= through_iteration)
            )
        with self.transaction() as session:
            rows = session.execute(query.order_by(EvaluationRow.id)).all()
            return [_evaluation_record(row, content_hash, structures) for row, content_hash in rows]

    def evaluation_counts(self) -> dict[str, int]:
        """Finished or failed calls per oracle name (what per-oracle budgets count)."""
        query = (
            select(EvaluationRow.oracle, func.count())
            .where(
                EvaluationRow.campaign_id == self.campaign_id,
                EvaluationRow.status.in_(("done", "failed")),
            )
            .group_by(EvaluationRow.oracle)
        )
        with self.transaction() as session:
            return {oracle: int(count) for oracle, count in session.execute(query)}

    def spent(self) -> Cost:
        """Compute spent so far: oracle calls plus training, in core- and GPU-seconds."""
        with self.transaction() as session:
            eval_core, eval_gpu = session.execute(
                select(
                    func.coalesce(func.sum(EvaluationRow.cost_core_s), 0.0),
                    func.coalesce(func.sum(EvaluationRow.cost_gpu_s), 0.0),
                ).where(EvaluationRow.campaign_id == self.campaign_id)
            ).one()
            train_core, train_gpu = session.execute(
                select(
                    func.coalesce(func.sum(IterationRow.training_core_s), 0.0),
                    func.coalesce(func.sum(IterationRow.training_gpu_s), 0.0),
                ).where(IterationRow.campaign_id == self.campaign_id)
            ).one()
        return Cost(core_s=float(eval_core + train_core), gpu_s=float(eval_gpu + train_gpu))

    # ----------------------------------------------------------------- measurements
    def add_measurements(
        self, measurements: Sequence[Measurement], *, match_tolerance: float = 0.02
    ) -> list[Measurement]:
        """Store a batch of measurements in one transaction (all or nothing).

        A measurement with a structure also stores that structure as an ``injected`` candidate.
        A measurement without ``request_id`` answers the open lab request for its property whose
        composition is within ``match_tolerance`` (largest atomic-fraction difference); a
        request is fulfilled once every one of its properties has an answer.

        Raises:
            LookupError: a ``request_id`` that is not an open request of this campaign.
        """
        stored: list[Measurement] = []
        with self.transaction() as session:
            open_requests = list(
                session.scalars(
                    select(LabRequestRow).where(
                        LabRequestRow.campaign_id == self.campaign_id,
                        LabRequestRow.status == "open",
                    )
                )
            )
            for measurement in measurements:
                request = _matching_request(open_requests, measurement, match_tolerance)
                candidate_hash = measurement.candidate_hash
                if measurement.structure is not None:
                    candidate = Candidate(
                        structure=measurement.structure,
                        origin="injected",
                        iteration=measurement.iteration,
                    )
                    candidate_hash = self._upsert_candidate(session, candidate).content_hash
                row = MeasurementRow(
                    campaign_id=self.campaign_id,
                    formula=formula(measurement.composition),
                    composition=measurement.composition,
                    property=measurement.property,
                    value=measurement.value,
                    unit=measurement.unit,
                    uncertainty=measurement.uncertainty,
                    raw_value=measurement.raw_value,
                    raw_unit=measurement.raw_unit,
                    source=measurement.source,
                    structure=(
                        structure_to_json(measurement.structure) if measurement.structure else None
                    ),
                    candidate_hash=candidate_hash,
                    method=measurement.method,
                    request_id=request.id if request is not None else None,
                    source_file=measurement.source_file,
                    source_file_sha256=measurement.source_file_sha256,
                    source_row=measurement.source_row,
                    iteration=measurement.iteration,
                )
                session.add(row)
                session.flush()
                stored.append(_measurement_record(row))
            self._close_answered_requests(session, open_requests)
            files = sorted({m.source_file or "?" for m in measurements})
            self._event(
                session,
                "measurements_injected",
                f"{len(measurements)} measurement(s) from {', '.join(files)}",
                payload={"ids": [m.id for m in stored]},
            )
        return stored

    def measurements(self, *, prop: str | None = None) -> list[Measurement]:
        """Experimental measurements (of one property if given), oldest first."""
        query = select(MeasurementRow).where(MeasurementRow.campaign_id == self.campaign_id)
        if prop is not None:
            query = query.where(MeasurementRow.property == prop)
        with self.transaction() as session:
            return [
                _measurement_record(row)
                for row in session.scalars(query.order_by(MeasurementRow.id))
            ]

    # ----------------------------------------------------------------- lab requests
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
            created_at=_aware(row.created_at),
            closed_at=_aware(row.closed_at),
        )

    # ----------------------------------------------------------------- iterations
    def start_iteration(
        self, index: int, metadata: dict[str, Any] | None = None
    ) -> IterationRecord:
        """Create iteration ``index`` in phase ``acquire``, or return it if it exists (resume)."""
        with self.transaction() as session:
            row = self._iteration_row(session, index)
            if row is None:
                row = IterationRow(
                    campaign_id=self.campaign_id, index=index, phase="acquire", meta=metadata or {}
                )
                session.add(row)
                session.flush()
                self._event(session, "iteration_started", f"iteration {index}", iteration=index)
            return _iteration_record(row)

    def update_iteration(
        self,
        index: int,
        *,
        phase: IterationPhase | None = None,
        metadata: dict[str, Any] | None = None,
        training_cost: Cost | None = None,
    ) -> IterationRecord:
        """Advance an iteration's phase, merge decision metadata, add training cost."""
        with self.transaction() as session:
            row = self._iteration_row(session, index)
            if row is None:
                raise LookupError(f"iteration {index} was never started")
            if phase is not None:
                row.phase = phase
                if phase in ("done", "failed"):
                    row.finished_at = utcnow()
                self._event(session, "phase", f"iteration {index} -> {phase}", iteration=index)
            if metadata:
                row.meta = {**row.meta, **metadata}
            if training_cost is not None:
                row.training_core_s += training_cost.core_s
                row.training_gpu_s += training_cost.gpu_s
            session.flush()
            return _iteration_record(row)

    def iterations(self) -> list[IterationRecord]:
        """All iterations in order."""
        query = (
            select(IterationRow)
            .where(IterationRow.campaign_id == self.campaign_id)
            .order_by(IterationRow.index)
        )
        with self.transaction() as session:
            return [_iteration_record(row) for row in session.scalars(query)]

    def next_iteration_index(self) -> int:
        """Index the next iteration gets (0 before the loop has started)."""
        with self.transaction() as session:
            last = session.scalar(
                select(func.max(IterationRow.index)).where(
                    IterationRow.campaign_id == self.campaign_id
                )
            )
        return 0 if last is None else int(last) + 1

    # ----------------------------------------------------------------- artifacts and events
    def add_artifact(self, artifact: Artifact) -> Artifact:
        """Register a file by sha256 (idempotent: the same file is stored once)."""
        with self.transaction() as session:
            session.execute(
                self._insert(ArtifactRow)
                .values(
                    campaign_id=self.campaign_id,
                    kind=artifact.kind,
                    path=artifact.path,
                    sha256=artifact.sha256,
                    iteration=artifact.iteration,
                    meta=artifact.metadata,
                    created_at=utcnow(),
                )
                .on_conflict_do_nothing(index_elements=["campaign_id", "sha256"])
            )
            row = session.scalars(
                select(ArtifactRow).where(
                    ArtifactRow.campaign_id == self.campaign_id,
                    ArtifactRow.sha256 == artifact.sha256,
                )
            ).one()
            return _artifact_record(row)

    def artifacts(self, *, kind: str | None = None) -> list[Artifact]:
        """Registered artifacts (of one kind if given), oldest first."""
        query = select(ArtifactRow).where(ArtifactRow.campaign_id == self.campaign_id)
        if kind is not None:
            query = query.where(ArtifactRow.kind == kind)
        with self.transaction() as session:
            return [
                _artifact_record(row) for row in session.scalars(query.order_by(ArtifactRow.id))
            ]

    def log_event(
        self,
        kind: str,
        message: str,
        *,
        payload: dict[str, Any] | None = None,
        iteration: int | None = None,
    ) -> None:
        """Append one line to the audit log."""
        with self.transaction() as session:
            self._event(session, kind, message, payload=payload, iteration=iteration)

    def events(self, *, kind: str | None = None) -> list[Event]:
        """The audit log, oldest first."""
        query = select(EventRow).where(EventRow.campaign_id == self.campaign_id)
        if kind is not None:
            query = query.where(EventRow.kind == kind)
        with self.transaction() as session:
            return [
                Event(
                    id=row.id,
                    kind=row.kind,
                    message=row.message,
                    payload=row.payload,
                    iteration=row.iteration,
                    created_at=_aware(row.created_at),
                )
                for row in session.scalars(query.order_by(EventRow.id))
            ]

    # ----------------------------------------------------------------- lock
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
            previous_beat = _aware(previous.lock_heartbeat_at)
            takeable = [
                CampaignRow.lock_owner.is_(None),
                CampaignRow.lock_owner == owner,
                CampaignRow.lock_heartbeat_at < cutoff,
            ]
            if previous_owner is not None and _owner_process_is_dead(previous_owner):
                takeable.append(CampaignRow.lock_owner == previous_owner)
            result = session.execute(
                update(CampaignRow)
                .where(CampaignRow.id == self.campaign_id, or_(*takeable))
                .values(lock_owner=owner, lock_acquired_at=now, lock_heartbeat_at=now)
                .execution_options(synchronize_session=False)
            )
            if not result.rowcount:  # type: ignore[attr-defined]
                age = (now - previous_beat).total_seconds() if previous_beat else float("nan")
                raise LockHeld(
                    f"campaign '{self.name}' is driven by {previous_owner} (last heartbeat "
                    f"{age:.0f} s ago); it can be taken over after {stale_after_s:.0f} s "
                    "without a heartbeat"
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

    # ----------------------------------------------------------------- internals
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

    def _candidate_row(self, session: Session, content_hash: str) -> CandidateRow | None:
        return session.scalars(
            select(CandidateRow).where(
                CandidateRow.campaign_id == self.campaign_id,
                CandidateRow.content_hash == content_hash,
            )
        ).one_or_none()

    def _upsert_candidate(self, session: Session, candidate: Candidate) -> CandidateRow:
        session.execute(
            self._insert(CandidateRow)
            .values(
                campaign_id=self.campaign_id,
                content_hash=candidate.content_hash,
                formula=candidate.formula,
                composition=candidate.composition,
                pdm_target=candidate.pdm_target,
                structure=structure_to_json(candidate.structure),
                n_atoms=len(candidate.structure),
                origin=candidate.origin,
                iteration=candidate.iteration,
                generator_checkpoint=candidate.generator_checkpoint,
                parent_hash=candidate.parent_hash,
                provenance=candidate.provenance,
                created_at=utcnow(),
            )
            .on_conflict_do_nothing(index_elements=["campaign_id", "content_hash"])
        )
        row = self._candidate_row(session, candidate.content_hash)
        assert row is not None
        return row

    def _evaluation_row_for_update(self, session: Session, evaluation: Evaluation) -> EvaluationRow:
        candidate = self._candidate_row(session, evaluation.candidate_hash)
        if candidate is None:
            raise LookupError(
                f"candidate {evaluation.candidate_hash[:12]} is not in campaign '{self.name}'; "
                "add it with add_candidate() first"
            )
        session.execute(
            self._insert(EvaluationRow)
            .values(
                campaign_id=self.campaign_id,
                candidate_id=candidate.id,
                oracle=evaluation.oracle,
                fidelity=evaluation.fidelity,
                status="pending",
                properties={},
                provenance={},
                attempts=0,
                iteration=evaluation.iteration,
                cost_core_s=0.0,
                cost_gpu_s=0.0,
                created_at=utcnow(),
            )
            .on_conflict_do_nothing(index_elements=["candidate_id", "oracle", "fidelity"])
        )
        query = select(EvaluationRow).where(
            EvaluationRow.candidate_id == candidate.id,
            EvaluationRow.oracle == evaluation.oracle,
            EvaluationRow.fidelity == evaluation.fidelity,
        )
        if self.engine.dialect.name == "postgresql":
            query = query.with_for_update()
        return session.scalars(query).one()

    def _iteration_row(self, session: Session, index: int) -> IterationRow | None:
        return session.scalars(
            select(IterationRow).where(
                IterationRow.campaign_id == self.campaign_id, IterationRow.index == index
            )
        ).one_or_none()


def _safe(url: str) -> str:
    """The URL with any password hidden, for messages."""
    return make_url(url).render_as_string(hide_password=True)


def _matching_request(
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


def _candidate_record(row: CandidateRow) -> Candidate:
    return Candidate(
        id=row.id,
        content_hash=row.content_hash,
        structure=structure_from_json(row.structure),
        composition=row.composition,
        pdm_target=row.pdm_target,
        origin=row.origin,  # type: ignore[arg-type]
        iteration=row.iteration,
        generator_checkpoint=row.generator_checkpoint,
        parent_hash=row.parent_hash,
        provenance=row.provenance or {},
        created_at=_aware(row.created_at),
    )


def _evaluation_record(
    row: EvaluationRow, candidate_hash: str, structures: bool = True
) -> Evaluation:
    return Evaluation(
        id=row.id,
        candidate_hash=candidate_hash,
        oracle=row.oracle,
        fidelity=row.fidelity,
        status=row.status,  # type: ignore[arg-type]
        properties={k: PropertyValue(**v) for k, v in row.properties.items()},
        cost=Cost(core_s=row.cost_core_s, gpu_s=row.cost_gpu_s),
        error=row.error,
        traceback=row.traceback,
        attempts=row.attempts,
        relaxed_structure=(
            structure_from_json(row.relaxed_structure)
            if structures and row.relaxed_structure
            else None
        ),
        provenance=row.provenance,
        iteration=row.iteration,
        created_at=_aware(row.created_at),
        started_at=_aware(row.started_at),
        finished_at=_aware(row.finished_at),
    )


def _measurement_record(row: MeasurementRow) -> Measurement:
    return Measurement(
        id=row.id,
        composition=row.composition,
        property=row.property,
        value=row.value,
        unit=row.unit,
        uncertainty=row.uncertainty,
        raw_value=row.raw_value,
        raw_unit=row.raw_unit,
        source=row.source,
        structure=structure_from_json(row.structure) if row.structure else None,
        candidate_hash=row.candidate_hash,
        method=row.method,
        request_id=row.request_id,
        source_file=row.source_file,
        source_file_sha256=row.source_file_sha256,
        source_row=row.source_row,
        iteration=row.iteration,
        created_at=_aware(row.created_at),
    )


def _iteration_record(row: IterationRow) -> IterationRecord:
    return IterationRecord(
        index=row.index,
        phase=row.phase,  # type: ignore[arg-type]
        metadata=row.meta,
        training_cost=Cost(core_s=row.training_core_s, gpu_s=row.training_gpu_s),
        started_at=_aware(row.started_at),
        finished_at=_aware(row.finished_at),
    )


def _artifact_record(row: ArtifactRow) -> Artifact:
    return Artifact(
        id=row.id,
        kind=row.kind,
        path=row.path,
        sha256=row.sha256,
        iteration=row.iteration,
        metadata=row.meta,
        created_at=_aware(row.created_at),
    )
