"""Records that cross module boundaries: what the store takes in and gives back.

These are plain pydantic models; :mod:`amloop.state.records` reads them from the SQL rows
(``from_attributes``): datetimes come back in UTC, stored structures as pymatgen ``Structure``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AliasChoices,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    model_validator,
)
from pymatgen.core import Structure

from amloop.state.composition import formula as formula_of
from amloop.state.structures import content_hash, structure_from_json


def _as_utc(moment: datetime) -> datetime:
    """SQLite gives naive datetimes back; everything amloop stores is UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _stored_structure(value: Any) -> Any:
    return structure_from_json(value) if isinstance(value, str) else value


#: A datetime in UTC (a naive one, as SQLite returns it, is taken as UTC).
UtcDatetime = Annotated[datetime, AfterValidator(_as_utc)]
#: A structure, also given as its stored JSON text (written as pymatgen's dict in JSON mode).
StoredStructure = Annotated[
    Structure,
    BeforeValidator(_stored_structure),
    PlainSerializer(lambda structure: structure.as_dict(), when_used="json"),
]
#: A JSON object that may be stored as NULL.
JsonObject = Annotated[dict[str, Any], BeforeValidator(lambda value: value or {})]
#: Where a record's ``metadata`` is read from: the row's ``meta`` column (SQLAlchemy reserves
#: ``metadata`` on its rows), else the keyword.
METADATA_ALIASES = AliasChoices("meta", "metadata")

#: Oracle name under which quality-gate verdicts are stored (fidelity 0, ``failed`` = rejected).
GATE_ORACLE = "quality_gate"

CandidateOrigin = Literal[
    "seed", "generated", "latent_opt", "local_search", "injected", "md_snapshot"
]
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

    structure: StoredStructure
    origin: CandidateOrigin
    content_hash: str = ""
    composition: dict[str, float] = Field(default_factory=dict)
    pdm_target: list[float] | None = None
    iteration: int | None = None
    generator_checkpoint: str | None = None  # sha256 of the generator Artifact
    parent_hash: str | None = None
    provenance: JsonObject = Field(default_factory=dict)  # builder, parameters, seed
    id: int | None = None
    created_at: UtcDatetime | None = None

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

    def with_structure(self, structure: Structure, provenance: dict[str, Any]) -> Candidate:
        """This candidate (origin, iteration, parent) with another structure and provenance;
        its content hash and composition are those of ``structure``."""
        fields = self.model_dump(exclude={"structure", "content_hash", "composition"})
        return Candidate(**{**fields, "structure": structure, "provenance": provenance})


class ForceLabel(_Record):
    """Energy, forces and stress of one structure as an oracle computed them: a training
    label for the campaign's own potentials (``amloop mlp fit``).

    Attributes:
        structure: The labelled structure (positions as computed, not relaxed further).
        energy_eV: Total energy (eV).
        forces_eV_per_A: Forces, shape ``(n_atoms, 3)`` (eV/Å).
        stress_GPa: Stress in Voigt order ``xx, yy, zz, yz, xz, xy`` (GPa, ASE's sign: positive
            is tensile), ``None`` where the oracle gives none.
        source: Which structure of the call: ``final`` (the structure the properties belong
            to), ``relaxation`` (a step on the way), ``snapshot`` (an MD frame).
        oracle: Name of the oracle that computed it (set by the oracle).
        candidate_hash: The candidate whose call produced it (set by the store).
        evaluation_id: The evaluation it belongs to (set by the store).
    """

    structure: StoredStructure
    energy_eV: float
    forces_eV_per_A: list[list[float]]
    stress_GPa: list[float] | None = None
    source: Literal["final", "relaxation", "snapshot"] = "final"
    oracle: str = ""
    candidate_hash: str = ""
    evaluation_id: int | None = None
    id: int | None = None
    created_at: UtcDatetime | None = None

    @model_validator(mode="after")
    def _check_shapes(self) -> ForceLabel:
        n_atoms = len(self.structure)
        if len(self.forces_eV_per_A) != n_atoms or any(len(f) != 3 for f in self.forces_eV_per_A):
            raise ValueError(f"forces must have shape ({n_atoms}, 3), one row per atom")
        if self.stress_GPa is not None and len(self.stress_GPa) != 6:
            raise ValueError("stress must have the 6 Voigt components xx, yy, zz, yz, xz, xy")
        return self


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
    relaxed_structure: StoredStructure | None = None
    provenance: dict[str, Any] = Field(default_factory=dict)
    iteration: int | None = None
    #: Force labels the call produced; the store keeps them in their own table (read them
    #: back with ``CampaignStore.labels``), so a stored evaluation reads back without them.
    labels: list[ForceLabel] = Field(default_factory=list)
    #: Structures the call handed out for labelling (MD frames, ``md_snapshot``): the store
    #: adds each as a candidate of the evaluated one's iteration, its parent that candidate.
    snapshots: list[Candidate] = Field(default_factory=list)
    id: int | None = None
    created_at: UtcDatetime | None = None
    started_at: UtcDatetime | None = None
    finished_at: UtcDatetime | None = None


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
    structure: StoredStructure | None = None
    candidate_hash: str | None = None
    method: str | None = None  # how it was measured, e.g. "LSV at 10 mA/cm2"
    request_id: int | None = None  # the lab request it answers, if any
    source_file: str | None = None
    source_file_sha256: str | None = None
    source_row: int | None = None
    iteration: int = 0  # first loop iteration that can use it
    id: int | None = None
    created_at: UtcDatetime | None = None


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
    created_at: UtcDatetime | None = None
    closed_at: UtcDatetime | None = None


class Artifact(_Record):
    """A file the campaign produced (a model checkpoint, a plot), identified by its sha256."""

    kind: str
    path: str
    sha256: str
    iteration: int | None = None
    metadata: dict[str, Any] = Field(default_factory=dict, validation_alias=METADATA_ALIASES)
    id: int | None = None
    created_at: UtcDatetime | None = None


class Event(_Record):
    """One line of the campaign's append-only audit log."""

    kind: str
    message: str
    payload: dict[str, Any] = Field(default_factory=dict)
    iteration: int | None = None
    id: int | None = None
    created_at: UtcDatetime | None = None


class IterationRecord(_Record):
    """One loop iteration: its phase, timing, decision metadata and training cost."""

    index: int = Field(ge=0)
    phase: IterationPhase = "acquire"
    metadata: dict[str, Any] = Field(default_factory=dict, validation_alias=METADATA_ALIASES)
    training_cost: Cost = Field(default_factory=Cost)
    started_at: UtcDatetime | None = None
    finished_at: UtcDatetime | None = None


class LockInfo(_Record):
    """Who drives a campaign, and their last heartbeat."""

    owner: str
    acquired_at: UtcDatetime
    heartbeat_at: UtcDatetime


class CampaignRecord(_Record):
    """A campaign as stored: its validated config (JSON) and lifecycle state."""

    id: int
    name: str
    config: dict[str, Any]
    status: CampaignStatus
    created_at: datetime
    lock: LockInfo | None = None
