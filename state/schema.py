"""Records that cross module boundaries: what the store takes in and gives back.

These are plain pydantic models; only :mod:`state.store` maps them to SQL rows.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pymatgen.core import Structure

from amloop.state.composition import formula as formula_of
from amloop.state.structures import content_hash

CandidateOrigin = Literal["seed", "generated", "latent_opt", "local_search", "injected"]
EvaluationStatus = Literal["pending", "running", "done", "failed"]
CampaignStatus = Literal["created", "running", "paused", "interrupted", "finished", "failed"]
LabRequestStatus = Literal["open", "fulfilled", "cancelled"]
IterationPhase = Literal[
    "acquire", "generate", "filter", "evaluate", "record", "retrain", "done", "failed"
]


class _Record(BaseModel):
    model_config = ConfigDict(arbitrary_types_allowed=True, extra="forbid")


class Cost(_Record):
    """Compute spent, in core-seconds and GPU-seconds."""

    core_s: float = Field(0.0, ge=0)
    gpu_s: float = Field(0.0, ge=0)

    def __add__(self, other: Cost) -> Cost:
        return Cost(core_s=self.core_s + other.core_s, gpu_s=self.gpu_s + other.gpu_s)


class PropertyValue(_Record):
    """One property value with its unit and (optional) standard uncertainty in the same unit."""

    value: float
    unit: str
    uncertainty: float | None = Field(None, ge=0)


class Candidate(_Record):
    """A structure proposed for evaluation; unique per campaign by :attr:`content_hash`."""

    structure: Structure
    origin: CandidateOrigin
    content_hash: str = ""
    composition: dict[str, float] = Field(default_factory=dict)
    pdm_target: list[float] | None = None
    iteration: int | None = None
    generator_checkpoint: str | None = None  # sha256 of the generator Artifact
    parent_hash: str | None = None
    provenance: dict[str, Any] = Field(default_factory=dict)  # builder, parameters, seed
    id: int | None = None
    created_at: datetime | None = None

    @model_validator(mode="after")
    def _derive(self) -> Candidate:
        if not self.content_hash:
            self.content_hash = content_hash(self.structure)
        if not self.composition:
            fractions = self.structure.composition.fractional_composition
            self.composition = {el.symbol: float(fractions[el]) for el in fractions.elements}
        return self

    @property
    def formula(self) -> str:
        """Atomic-fraction formula, e.g. ``Cr0.333Fe0.333Ni0.333``."""
        return formula_of(self.composition)


class Evaluation(_Record):
    """One oracle call on one candidate; unique per (candidate, oracle, fidelity)."""

    candidate_hash: str
    oracle: str
    fidelity: float = Field(ge=0)
    status: EvaluationStatus = "pending"
    properties: dict[str, PropertyValue] = Field(default_factory=dict)
    cost: Cost = Field(default_factory=Cost)
    error: str | None = None
    traceback: str | None = None
    attempts: int = Field(0, ge=0)
    relaxed_structure: Structure | None = None
    provenance: dict[str, Any] = Field(default_factory=dict)
    iteration: int | None = None
    id: int | None = None
    created_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None


class Measurement(_Record):
    """An experimental value, stored in the property's canonical unit with its provenance."""

    composition: dict[str, float]
    property: str
    value: float
    unit: str
    uncertainty: float | None = Field(None, ge=0)
    source: str
    raw_value: float
    raw_unit: str
    structure: Structure | None = None
    candidate_hash: str | None = None
    method: str | None = None  # how it was measured, e.g. "LSV at 10 mA/cm2"
    request_id: int | None = None  # the lab request it answers, if any
    source_file: str | None = None
    source_file_sha256: str | None = None
    source_row: int | None = None
    iteration: int = 0  # first loop iteration that can use it
    id: int | None = None
    created_at: datetime | None = None


class LabRequest(_Record):
    """A request to the lab to make and measure a composition (the top fidelity).

    Opened when acquisition picks the experiment fidelity (or by hand); fulfilled when
    injected measurements answer all its properties; or cancelled.
    """

    composition: dict[str, float]
    properties: list[str] = Field(min_length=1)
    oracle: str = "experiment"
    reason: str = ""
    decision: dict[str, Any] = Field(default_factory=dict)  # acquisition value, mean, sigma
    iteration: int | None = None
    status: LabRequestStatus = "open"
    close_reason: str | None = None
    measurement_ids: list[int] = Field(default_factory=list)
    id: int | None = None
    created_at: datetime | None = None
    closed_at: datetime | None = None


class Artifact(_Record):
    """A file the campaign produced (a model checkpoint, a plot), identified by its sha256."""

    kind: str
    path: str
    sha256: str
    iteration: int | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    id: int | None = None
    created_at: datetime | None = None


class Event(_Record):
    """One line of the campaign's append-only audit log."""

    kind: str
    message: str
    payload: dict[str, Any] = Field(default_factory=dict)
    iteration: int | None = None
    id: int | None = None
    created_at: datetime | None = None


class IterationRecord(_Record):
    """One loop iteration: its phase, timing, decision metadata and training cost."""

    index: int = Field(ge=0)
    phase: IterationPhase = "acquire"
    metadata: dict[str, Any] = Field(default_factory=dict)
    training_cost: Cost = Field(default_factory=Cost)
    started_at: datetime | None = None
    finished_at: datetime | None = None


class LockInfo(_Record):
    """Who drives a campaign, and their last heartbeat."""

    owner: str
    acquired_at: datetime
    heartbeat_at: datetime


class CampaignRecord(_Record):
    """A campaign as stored: its validated config (JSON) and lifecycle state."""

    id: int
    name: str
    config: dict[str, Any]
    status: CampaignStatus
    created_at: datetime
    lock: LockInfo | None = None
