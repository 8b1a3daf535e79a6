"""The oracle interface: real physics that scores one candidate structure.

Errors follow ASE's split: :class:`OracleSetupError` is a configuration problem (missing
potential, unknown option) raised before any work is spent; :class:`OracleFailed` means this
structure failed (lost atoms, no convergence, NaN, timeout) and becomes a stored
``status="failed"`` evaluation with its reason, and the campaign carries on.
"""

from __future__ import annotations

import os
import time
import traceback
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError
from pymatgen.core import Structure

from amloop.state.schema import Candidate, Cost, Evaluation, ForceLabel, PropertyValue


class OracleSetupError(RuntimeError):
    """The oracle cannot run at all with this configuration (raised before spending budget)."""


class OracleFailed(RuntimeError):
    """The oracle ran but this structure failed; the reason is stored with the evaluation."""


OptionsT = TypeVar("OptionsT", bound="OracleOptions")


class OracleOptions(BaseModel):
    """An oracle type's options (the YAML's ``options:``, ``amloop evaluate --set``), written
    once: validation with one-line errors, defaults, the provenance's parameters and the guide's
    option table (:mod:`amloop.oracles.options`) come from the model. Unknown names are errors,
    values are frozen.

    Each field's ``description`` is the guide's "meaning" column (with units); a field whose
    default is not a plain value documents it in ``json_schema_extra={"default": "..."}``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)

    @classmethod
    def parse(cls: type[OptionsT], type_name: str, options: dict[str, Any]) -> OptionsT:
        """The options of oracle type ``type_name``, validated.

        Raises:
            OracleSetupError: ``bad options for oracle 'TYPE': NAME: problem; ...`` (one line).
        """
        try:
            return cls(**options)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(part) for part in error['loc']) or 'options'}: "
                + (
                    "unknown option"
                    if error["type"] == "extra_forbidden"
                    else error["msg"].removeprefix("Value error, ")
                )
                for error in exc.errors()
            )
            raise OracleSetupError(f"bad options for oracle '{type_name}': {problems}") from None

    def parameters(self, *, exclude: set[str] | None = None) -> dict[str, Any]:
        """The options as plain JSON values, for the provenance of every result."""
        return self.model_dump(mode="json", exclude=exclude)


def element_symbol(value: str | None) -> str | None:
    """An options validator: ``value`` must be a chemical element's symbol (or unset)."""
    from pymatgen.core import Element

    if value is not None and not Element.is_valid_symbol(value):
        raise ValueError(f"must be an element symbol, not {value!r}")
    return value


@dataclass
class OracleResult:
    """What one oracle computation returns (before it is wrapped into an Evaluation)."""

    properties: dict[str, PropertyValue]
    relaxed_structure: Structure | None = None
    provenance: dict[str, Any] = field(default_factory=dict)
    gpu_s: float = 0.0
    #: Energy, forces and stress of the structures the call computed (training labels).
    labels: list[ForceLabel] = field(default_factory=list)
    #: Configurations the call visited, handed out unlabelled (e.g. MD frames) for the
    #: campaign potential's active learning.
    snapshots: list[Structure] = field(default_factory=list)


class FidelitySource:
    """Anything a campaign configures under ``oracles:``: a source of property values at a
    fidelity. Computing oracles (:class:`Oracle`) score structures; the lab
    (:class:`oracles.experiment.ExperimentOracle`) is asked for measurements instead.
    """

    type_name: ClassVar[str]
    #: The options model of this type; a type without options takes none.
    Options: ClassVar[type[OracleOptions]] = OracleOptions
    #: Fidelity and time limit per call (s) when the campaign does not set them.
    default_fidelity: ClassVar[float] = 0.5
    default_timeout_s: ClassVar[float] = 600.0

    def __init__(
        self,
        *,
        name: str | None = None,
        fidelity: float | None = None,
        timeout_s: float | None = None,
        **options: Any,
    ):
        """Args: ``name`` in the campaign (default: the type name), ``fidelity`` in [0, 1],
        ``timeout_s`` per call, and the options of :attr:`Options`.

        Raises:
            OracleSetupError: bad options (one line naming each).
        """
        self.name = name or self.type_name
        self.fidelity = self.default_fidelity if fidelity is None else fidelity
        self.timeout_s = self.default_timeout_s if timeout_s is None else timeout_s
        self.options = self.Options.parse(self.type_name, options)

    def provenance(self) -> dict[str, Any]:
        """Code, version and parameters of this source (extended by subclasses)."""
        return {"oracle_type": self.type_name, "host": os.uname().nodename}


class Oracle(FidelitySource, ABC):
    """Base class of computing oracles.

    Subclasses set :attr:`type_name` (the YAML ``type:``) and :attr:`properties` (property name
    -> unit), and implement :meth:`compute`. :meth:`evaluate` turns the result, or a failure,
    into an :class:`~state.schema.Evaluation` with the measured cost.
    """

    properties: ClassVar[dict[str, str]]

    @abstractmethod
    def compute(self, structure: Structure) -> OracleResult:
        """Run the physics on one structure.

        Raises:
            OracleFailed: this structure failed; the message is the stored reason.
        """

    def evaluate(self, candidate: Candidate) -> Evaluation:
        """Score ``candidate``; failures come back as ``status="failed"`` with their reason.

        Cost is the process CPU time of the call in core-seconds (all threads of this process);
        ``finished_at`` is ``started_at`` plus the call's monotonic duration, so a step of the
        system clock during the call does not change its recorded length.
        """
        wall0, cpu0 = time.perf_counter(), time.process_time()
        started = datetime.now(UTC)
        status, result, error, tb = "done", None, None, None
        try:
            result = self.compute(candidate.structure)
            elapsed = time.perf_counter() - wall0
            if elapsed > self.timeout_s:
                raise OracleFailed(f"timeout: took {elapsed:.1f} s > {self.timeout_s:.1f} s")
        except OracleSetupError:
            raise
        except Exception as exc:  # every per-structure failure is data, not a crash
            status, error = "failed", f"{type(exc).__name__}: {exc}"
            tb = "".join(traceback.format_exception(exc, limit=-8))[-4000:]
        cost = Cost(core_s=time.process_time() - cpu0, gpu_s=result.gpu_s if result else 0.0)
        return Evaluation(
            candidate_hash=candidate.content_hash,
            oracle=self.name,
            fidelity=self.fidelity,
            status=status,  # type: ignore[arg-type]
            properties=result.properties if result else {},
            relaxed_structure=result.relaxed_structure if result else None,
            provenance={**self.provenance(), **(result.provenance if result else {})},
            labels=[label.model_copy(update={"oracle": self.name}) for label in result.labels]
            if result
            else [],
            snapshots=[
                Candidate(
                    structure=snapshot,
                    origin="md_snapshot",
                    parent_hash=candidate.content_hash,
                    provenance={"builder": self.name, "frame": k},
                )
                for k, snapshot in enumerate(result.snapshots if result else [])
            ],
            cost=cost,
            error=error,
            traceback=tb,
            attempts=1,
            started_at=started,
            finished_at=started + timedelta(seconds=time.perf_counter() - wall0),
        )
