"""CampaignStore: the only code that talks SQL (with its parts :mod:`amloop.state.session`,
:mod:`amloop.state.lock`, :mod:`amloop.state.lab_requests` and :mod:`amloop.state.records`).

Every public write is one transaction, so a process killed at any moment leaves either the
whole record or none of it. Uniqueness is enforced by the database, not by Python checks:
one candidate per content hash per campaign, one evaluation per (candidate, oracle, fidelity),
so concurrent writers and resumed loops can never duplicate a result.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Collection, Sequence
from typing import Any

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DatabaseError as SqlDatabaseError
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from amloop.state.composition import formula
from amloop.state.database import (
    DatabaseError,
    check_existing_store,
    get_engine,
    migrate,
    sqlite_path,
)
from amloop.state.lab_requests import LabRequests, matching_request
from amloop.state.lock import CampaignLock, LockHeld, default_lock_owner
from amloop.state.models import (
    ArtifactRow,
    CampaignRow,
    CandidateRow,
    EvaluationRow,
    EventRow,
    IterationRow,
    LabelRow,
    LabRequestRow,
    MeasurementRow,
    utcnow,
)
from amloop.state.records import (
    artifact_record,
    aware,
    candidate_record,
    evaluation_record,
    event_record,
    iteration_record,
    label_record,
    measurement_record,
)
from amloop.state.schema import (
    GATE_ORACLE,
    Artifact,
    CampaignRecord,
    CampaignStatus,
    Candidate,
    CandidateOrigin,
    Cost,
    Evaluation,
    EvaluationStatus,
    Event,
    ForceLabel,
    IterationPhase,
    IterationRecord,
    LockInfo,
    Measurement,
)
from amloop.state.structures import structure_to_json


class CampaignNotFound(LookupError):
    """No campaign of that name in the database."""


class CampaignExists(ValueError):
    """A campaign of that name exists already."""


class CampaignStore(CampaignLock, LabRequests):
    """Durable state of one campaign: candidates, evaluations, measurements, iterations,
    artifacts, events and the campaign lock.

    Use :meth:`create` for a new campaign and :meth:`open` for an existing one.
    """

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
        """Open existing campaign ``name`` (upgrading an old schema first).

        Raises:
            DatabaseError: a SQLite store file that is missing, empty, damaged or unreadable.
            CampaignNotFound: no campaign of that name in the database.
        """
        check_existing_store(url)
        engine = get_engine(url)
        _readable(url, lambda: migrate(engine))
        with Session(engine) as session:
            campaign_id = session.scalar(select(CampaignRow.id).where(CampaignRow.name == name))
        if campaign_id is None:
            raise CampaignNotFound(f"no campaign '{name}' in {_safe(url)}")
        return cls(engine, campaign_id, name)

    @staticmethod
    def campaign_names(url: str) -> list[str]:
        """Names of all campaigns in the database at ``url`` (a new SQLite file is created; an
        existing one must be a readable store, see :meth:`open`)."""
        path = sqlite_path(url)
        if path is not None and path.exists():
            check_existing_store(url)
        engine = get_engine(url)
        _readable(url, lambda: migrate(engine))
        with Session(engine) as session:
            return list(session.scalars(select(CampaignRow.name).order_by(CampaignRow.id)))

    def info(self) -> CampaignRecord:
        """The campaign row: config, status and lock."""
        with self.transaction() as session:
            row = session.get_one(CampaignRow, self.campaign_id)
            lock = None
            acquired, beat = aware(row.lock_acquired_at), aware(row.lock_heartbeat_at)
            if row.lock_owner is not None and acquired is not None and beat is not None:
                lock = LockInfo(owner=row.lock_owner, acquired_at=acquired, heartbeat_at=beat)
            return CampaignRecord(
                id=row.id,
                name=row.name,
                config=row.config,
                status=row.status,  # type: ignore[arg-type]
                created_at=row.created_at,
                lock=lock,
            )

    def set_status(self, status: CampaignStatus) -> None:
        """Change the campaign's lifecycle status (logged)."""
        with self.transaction() as session:
            session.execute(
                update(CampaignRow).where(CampaignRow.id == self.campaign_id).values(status=status)
            )
            self._event(session, "status", f"campaign status -> {status}")

    def set_config(self, config: dict[str, Any]) -> None:
        """Replace the campaign's stored config, which every task and worker process opens the
        campaign with (logged): e.g. a copied seed set run under another strategy's settings."""
        with self.transaction() as session:
            session.execute(
                update(CampaignRow).where(CampaignRow.id == self.campaign_id).values(config=config)
            )
            self._event(session, "config", "campaign config replaced")

    # ----------------------------------------------------------------- candidates
    def add_candidate(self, candidate: Candidate) -> Candidate:
        """Store ``candidate`` unless one with the same content hash exists; return the stored one."""
        with self.transaction() as session:
            return candidate_record(self._upsert_candidate(session, candidate))

    def candidate(self, content_hash: str) -> Candidate | None:
        """The candidate with ``content_hash``, or ``None``."""
        with self.transaction() as session:
            row = self._candidate_row(session, content_hash)
            return None if row is None else candidate_record(row)

    def candidate_compositions(self) -> dict[str, dict[str, float]]:
        """Atomic fractions by element of every candidate, by content hash, oldest first (no
        structure is read)."""
        query = (
            select(CandidateRow.content_hash, CandidateRow.composition)
            .where(CandidateRow.campaign_id == self.campaign_id)
            .order_by(CandidateRow.id)
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
                candidate_record(row) for row in session.scalars(query.order_by(CandidateRow.id))
            ]

    # ----------------------------------------------------------------- evaluations
    def record_evaluation(self, evaluation: Evaluation) -> Evaluation:
        """Insert or update the evaluation keyed by (candidate, oracle, fidelity).

        A finished (``done``) evaluation is never overwritten by an unfinished or failed one,
        so re-running work after a crash cannot lose or duplicate a result. The force labels of
        a ``done`` evaluation, and the snapshots it handed out (as candidates), are written in
        the same transaction (labels replacing any it had).

        Raises:
            LookupError: the candidate is not in this campaign.
        """
        with self.transaction() as session:
            row = self._evaluation_row_for_update(session, evaluation)
            if row.status == "done" and evaluation.status != "done":
                return evaluation_record(row, evaluation.candidate_hash)
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
            if evaluation.status == "done" and evaluation.labels:
                session.flush()  # the row's id, for its labels
                self._replace_labels(session, row, evaluation.labels)
            if evaluation.status == "done":
                for snapshot in evaluation.snapshots:
                    self._upsert_candidate(
                        session,
                        snapshot.model_copy(
                            update={
                                "iteration": row.iteration,
                                "parent_hash": evaluation.candidate_hash,
                            }
                        ),
                    )
            if evaluation.status == "failed":
                self._event(
                    session,
                    "evaluation_failed",
                    f"{evaluation.oracle} on {evaluation.candidate_hash[:12]}: {evaluation.error}",
                    iteration=evaluation.iteration,
                )
            session.flush()
            return evaluation_record(row, evaluation.candidate_hash)

    def claim_evaluation(
        self,
        candidate_hash: str,
        oracle: str,
        fidelity: float,
        *,
        iteration: int | None = None,
        max_attempts: int | None = None,
    ) -> Evaluation | None:
        """Mark an evaluation ``running`` (attempts + 1) before calling the oracle.

        Returns ``None`` when the evaluation is finished already (nothing to do); a ``failed``
        evaluation when it was started ``max_attempts`` times before and its process died each
        time (a call that crashes its process is not retried on every resume).
        """
        with self.transaction() as session:
            key = Evaluation(
                candidate_hash=candidate_hash, oracle=oracle, fidelity=fidelity, iteration=iteration
            )
            row = self._evaluation_row_for_update(session, key)
            if row.status == "done":
                return None
            if max_attempts is not None and row.attempts >= max_attempts:
                row.status, row.finished_at = "failed", utcnow()
                row.error = (
                    f"started {row.attempts} times and its process died each time (a crash or a "
                    f"kill while it ran); not tried again (execution.max_attempts = {max_attempts})"
                )
                self._event(session, "attempts_exhausted", f"{oracle} on {candidate_hash[:12]}")
            else:
                row.status = "running"
                row.attempts += 1
                row.started_at = utcnow()
            session.flush()
            return evaluation_record(row, candidate_hash)

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
            return [evaluation_record(row, content_hash, structures) for row, content_hash in rows]

    def gate_rejected(self) -> set[str]:
        """Content hashes of the candidates the quality gate rejected: their structures are not
        valid members of the campaign, so their oracle values are no best, no start and no
        training value of an objective (the rejection, and any call on them, train the feasibility
        model as failures)."""
        query = (
            select(CandidateRow.content_hash)
            .join(EvaluationRow, CandidateRow.id == EvaluationRow.candidate_id)
            .where(
                EvaluationRow.campaign_id == self.campaign_id,
                EvaluationRow.oracle == GATE_ORACLE,
                EvaluationRow.status == "failed",
            )
        )
        with self.transaction() as session:
            return set(session.scalars(query).all())

    def labels(self, *, oracles: Collection[str] | None = None) -> list[ForceLabel]:
        """Force labels of finished calls (of ``oracles`` if given), oldest first."""
        query = (
            select(LabelRow, CandidateRow.content_hash)
            .join(EvaluationRow, EvaluationRow.id == LabelRow.evaluation_id)
            .join(CandidateRow, CandidateRow.id == EvaluationRow.candidate_id)
            .where(LabelRow.campaign_id == self.campaign_id)
        )
        if oracles is not None:
            query = query.where(LabelRow.oracle.in_(list(oracles)))
        with self.transaction() as session:
            rows = session.execute(query.order_by(LabelRow.id)).all()
            return [label_record(row, content_hash) for row, content_hash in rows]

    def label_count(self, *, oracles: Collection[str] | None = None) -> int:
        """Number of force labels (of ``oracles`` if given)."""
        query = select(func.count()).where(LabelRow.campaign_id == self.campaign_id)
        if oracles is not None:
            query = query.where(LabelRow.oracle.in_(list(oracles)))
        with self.transaction() as session:
            return int(session.execute(query).scalar_one())

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
                request = matching_request(open_requests, measurement, match_tolerance)
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
                stored.append(measurement_record(row))
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
                measurement_record(row)
                for row in session.scalars(query.order_by(MeasurementRow.id))
            ]

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
            return iteration_record(row)

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
            return iteration_record(row)

    def iterations(self) -> list[IterationRecord]:
        """All iterations in order."""
        query = (
            select(IterationRow)
            .where(IterationRow.campaign_id == self.campaign_id)
            .order_by(IterationRow.index)
        )
        with self.transaction() as session:
            return [iteration_record(row) for row in session.scalars(query)]

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
            return artifact_record(row)

    def artifacts(self, *, kind: str | None = None) -> list[Artifact]:
        """Registered artifacts (of one kind if given), oldest first."""
        query = select(ArtifactRow).where(ArtifactRow.campaign_id == self.campaign_id)
        if kind is not None:
            query = query.where(ArtifactRow.kind == kind)
        with self.transaction() as session:
            return [artifact_record(row) for row in session.scalars(query.order_by(ArtifactRow.id))]

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
            return [event_record(row) for row in session.scalars(query.order_by(EventRow.id))]

    # ----------------------------------------------------------------- internals
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

    def _replace_labels(
        self, session: Session, row: EvaluationRow, labels: Sequence[ForceLabel]
    ) -> None:
        session.execute(delete(LabelRow).where(LabelRow.evaluation_id == row.id))
        for position, label in enumerate(labels):
            session.add(
                LabelRow(
                    campaign_id=self.campaign_id,
                    evaluation_id=row.id,
                    position=position,
                    oracle=label.oracle or row.oracle,
                    source=label.source,
                    structure=structure_to_json(label.structure),
                    n_atoms=len(label.structure),
                    energy_eV=label.energy_eV,
                    forces_eV_per_A=label.forces_eV_per_A,
                    stress_GPa=label.stress_GPa,
                )
            )

    def _iteration_row(self, session: Session, index: int) -> IterationRow | None:
        return session.scalars(
            select(IterationRow).where(
                IterationRow.campaign_id == self.campaign_id, IterationRow.index == index
            )
        ).one_or_none()


def _readable(url: str, step: Callable[[], Any]) -> Any:
    """``step()``, with SQLite's errors for a damaged file as one line naming it."""
    try:
        return step()
    except (sqlite3.DatabaseError, SqlDatabaseError) as exc:
        if "malformed" in str(exc) or "not a database" in str(exc):
            raise DatabaseError(
                f"campaign store {_safe(url)} is damaged ({exc.args[0]}); restore it from a "
                "backup (`amloop backup` makes one) or run `amloop check`"
            ) from None
        raise


def _safe(url: str) -> str:
    """The URL with any password hidden, for messages."""
    return make_url(url).render_as_string(hide_password=True)


__all__ = [
    "CampaignExists",
    "CampaignNotFound",
    "CampaignStore",
    "LockHeld",
    "default_lock_owner",
]
