"""SQLAlchemy 2.0 table definitions of the campaign store (used only by :mod:`state.store`)."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def utcnow() -> datetime:
    """Timezone-aware current time (UTC)."""
    return datetime.now(UTC)


class Base(DeclarativeBase):
    """Declarative base of all tables."""


class CampaignRow(Base):
    __tablename__ = "campaigns"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    config: Mapped[dict] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(20), default="created")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    lock_owner: Mapped[str | None] = mapped_column(String(300), nullable=True)
    lock_acquired_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    lock_heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class IterationRow(Base):
    __tablename__ = "iterations"
    __table_args__ = (UniqueConstraint("campaign_id", "index", name="uq_iteration_index"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    index: Mapped[int] = mapped_column(Integer)
    phase: Mapped[str] = mapped_column(String(20))
    meta: Mapped[dict] = mapped_column(JSON, default=dict)
    training_core_s: Mapped[float] = mapped_column(Float, default=0.0)
    training_gpu_s: Mapped[float] = mapped_column(Float, default=0.0)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class CandidateRow(Base):
    __tablename__ = "candidates"
    __table_args__ = (UniqueConstraint("campaign_id", "content_hash", name="uq_candidate_hash"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    content_hash: Mapped[str] = mapped_column(String(64))
    formula: Mapped[str] = mapped_column(String(200))
    composition: Mapped[dict] = mapped_column(JSON)
    pdm_target: Mapped[list | None] = mapped_column(JSON, nullable=True)
    structure: Mapped[str] = mapped_column(Text)  # pymatgen JSON
    n_atoms: Mapped[int] = mapped_column(Integer)
    origin: Mapped[str] = mapped_column(String(20))
    iteration: Mapped[int | None] = mapped_column(Integer, nullable=True)
    generator_checkpoint: Mapped[str | None] = mapped_column(String(64), nullable=True)
    parent_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    provenance: Mapped[dict | None] = mapped_column(JSON, nullable=True)  # how it was made
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class EvaluationRow(Base):
    __tablename__ = "evaluations"
    __table_args__ = (
        UniqueConstraint("candidate_id", "oracle", "fidelity", name="uq_evaluation_key"),
        Index("ix_evaluations_campaign_status", "campaign_id", "status"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    candidate_id: Mapped[int] = mapped_column(ForeignKey("candidates.id", ondelete="CASCADE"))
    oracle: Mapped[str] = mapped_column(String(100))
    fidelity: Mapped[float] = mapped_column(Float)
    status: Mapped[str] = mapped_column(String(20))
    properties: Mapped[dict] = mapped_column(JSON, default=dict)  # name -> {value, unit, sigma}
    cost_core_s: Mapped[float] = mapped_column(Float, default=0.0)
    cost_gpu_s: Mapped[float] = mapped_column(Float, default=0.0)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    traceback: Mapped[str | None] = mapped_column(Text, nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    relaxed_structure: Mapped[str | None] = mapped_column(Text, nullable=True)
    provenance: Mapped[dict] = mapped_column(JSON, default=dict)
    iteration: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class MeasurementRow(Base):
    __tablename__ = "measurements"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    formula: Mapped[str] = mapped_column(String(200))
    composition: Mapped[dict] = mapped_column(JSON)
    property: Mapped[str] = mapped_column(String(100))
    value: Mapped[float] = mapped_column(Float)
    unit: Mapped[str] = mapped_column(String(40))
    uncertainty: Mapped[float | None] = mapped_column(Float, nullable=True)
    raw_value: Mapped[float] = mapped_column(Float)
    raw_unit: Mapped[str] = mapped_column(String(40))
    source: Mapped[str] = mapped_column(Text)
    structure: Mapped[str | None] = mapped_column(Text, nullable=True)
    candidate_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    method: Mapped[str | None] = mapped_column(Text, nullable=True)
    request_id: Mapped[int | None] = mapped_column(
        ForeignKey("lab_requests.id", ondelete="SET NULL", name="fk_measurements_request"),
        nullable=True,
    )
    source_file: Mapped[str | None] = mapped_column(Text, nullable=True)
    source_file_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    source_row: Mapped[int | None] = mapped_column(Integer, nullable=True)
    iteration: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class LabRequestRow(Base):
    __tablename__ = "lab_requests"
    __table_args__ = (Index("ix_lab_requests_campaign_status", "campaign_id", "status"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    oracle: Mapped[str] = mapped_column(String(100))
    formula: Mapped[str] = mapped_column(String(200))
    composition: Mapped[dict] = mapped_column(JSON)
    properties: Mapped[list] = mapped_column(JSON)
    reason: Mapped[str] = mapped_column(Text, default="")
    decision: Mapped[dict] = mapped_column(JSON, default=dict)
    iteration: Mapped[int | None] = mapped_column(Integer, nullable=True)
    status: Mapped[str] = mapped_column(String(20), default="open")
    close_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class ArtifactRow(Base):
    __tablename__ = "artifacts"
    __table_args__ = (UniqueConstraint("campaign_id", "sha256", name="uq_artifact_sha"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(50))
    path: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64))
    iteration: Mapped[int | None] = mapped_column(Integer, nullable=True)
    meta: Mapped[dict] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class EventRow(Base):
    __tablename__ = "events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(50))
    message: Mapped[str] = mapped_column(Text)
    payload: Mapped[dict] = mapped_column(JSON, default=dict)
    iteration: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class LabelRow(Base):
    __tablename__ = "labels"
    __table_args__ = (
        UniqueConstraint("evaluation_id", "position", name="uq_label_position"),
        Index("ix_labels_campaign_oracle", "campaign_id", "oracle"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    evaluation_id: Mapped[int] = mapped_column(ForeignKey("evaluations.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)  # order within the evaluation's labels
    oracle: Mapped[str] = mapped_column(String(100))
    source: Mapped[str] = mapped_column(String(20))
    structure: Mapped[str] = mapped_column(Text)  # pymatgen JSON
    n_atoms: Mapped[int] = mapped_column(Integer)
    energy_eV: Mapped[float] = mapped_column(Float)
    forces_eV_per_A: Mapped[list] = mapped_column(JSON)
    stress_GPa: Mapped[list | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
