"""The campaign configuration: the science of a campaign, read from YAML and validated.

Validation errors name the offending field and say how to fix it. Oracle ``type`` names are
checked against the list the caller passes (the oracle registry), so this module stays free of
any oracle code.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from state.composition import CompositionError, check_elements
from state.units import PROPERTY_DIMENSIONS, UnitError, canonical_unit

_STRICT = ConfigDict(extra="forbid")


class ConfigError(ValueError):
    """A campaign configuration that cannot be used; the message lists every problem."""


class CellConfig(BaseModel):
    """Size and starting lattice of the simulation cells."""

    model_config = _STRICT
    n_atoms: int = Field(54, ge=2, le=2000, description="atoms per cell")
    lattice: Literal["fcc", "bcc", "hcp", "amorphous"] = "amorphous"


class ObjectiveConfig(BaseModel):
    """A property to optimise, e.g. ``{property: bulk_modulus, direction: maximize}``."""

    model_config = _STRICT
    property: str
    direction: Literal["maximize", "minimize"]
    unit: str | None = Field(None, description="defaults to the property's canonical unit")
    target: float | None = None
    threshold: float | None = Field(None, description="reference point for hypervolume")
    oracle: str | None = Field(None, description="name of the oracle that measures it")

    @model_validator(mode="after")
    def _known_property(self) -> ObjectiveConfig:
        if self.unit is None:
            try:
                self.unit = canonical_unit(self.property)
            except UnitError:
                raise ValueError(
                    f"unknown property '{self.property}': give its `unit`, or use one of "
                    f"{', '.join(sorted(PROPERTY_DIMENSIONS))}"
                ) from None
        return self


class OracleCost(BaseModel):
    """Expected cost of one call, used before a call to check the budget."""

    model_config = _STRICT
    core_s: float = Field(1.0, ge=0)
    gpu_s: float = Field(0.0, ge=0)


class OracleConfig(BaseModel):
    """One oracle of the campaign: a registered ``type`` with its fidelity, cost and options."""

    model_config = _STRICT
    name: str = Field(..., min_length=1)
    type: str
    fidelity: float = Field(0.5, ge=0, le=1, description="1 = most trusted (experiment)")
    cost: OracleCost = Field(default_factory=OracleCost)
    timeout_s: float = Field(600.0, gt=0)
    options: dict[str, Any] = Field(default_factory=dict)

    @field_validator("type")
    @classmethod
    def _registered(cls, value: str, info: ValidationInfo) -> str:
        known = (info.context or {}).get("oracle_types")
        if known is not None and value not in known:
            raise ValueError(
                f"unknown oracle type '{value}'; registered types: {', '.join(sorted(known))}"
            )
        return value


class BudgetConfig(BaseModel):
    """Compute the campaign may spend; the loop stops when any limit is reached."""

    model_config = _STRICT
    core_hours: float | None = Field(None, ge=0)
    gpu_hours: float | None = Field(None, ge=0)
    evaluations: dict[str, int] = Field(
        default_factory=dict, description="maximum calls per oracle name"
    )

    @field_validator("evaluations")
    @classmethod
    def _non_negative(cls, value: dict[str, int]) -> dict[str, int]:
        for name, count in value.items():
            if count < 0:
                raise ValueError(f"evaluations for '{name}' is {count}; it must be >= 0")
        return value

    @model_validator(mode="after")
    def _some_limit(self) -> BudgetConfig:
        if self.core_hours is None and self.gpu_hours is None and not self.evaluations:
            raise ValueError("no limit given: set core_hours, gpu_hours and/or evaluations")
        return self


class GeneratorConfig(BaseModel):
    """Settings of the conditional generator (Cond-CDVAE) and its latent optimisation."""

    model_config = _STRICT
    type: str = "cond_cdvae"
    samples_per_proposal: int = Field(4, ge=1)
    latent_steps: int = Field(200, ge=0, description="Adam steps on the property head")
    latent_lr: float = Field(1e-3, gt=0)
    train_epochs: int = Field(50, ge=0)
    finetune_epochs: int = Field(5, ge=0)
    checkpoint: str | None = Field(None, description="path of a pretrained model folder")


class AcquisitionConfig(BaseModel):
    """Settings of the Bayesian acquisition that proposes the next conditions."""

    model_config = _STRICT
    batch_size: int = Field(4, ge=1, description="proposals (q) per iteration")
    n_initial: int = Field(8, ge=1, description="seed structures when the campaign has none")
    strategy: Literal["qLogNEI", "qLogNEHVI", "qUCB", "random"] = "qLogNEI"
    patience: int = Field(3, ge=1, description="iterations without improvement before stopping")


class CampaignConfig(BaseModel):
    """Everything that defines a campaign's science; stored with the campaign."""

    model_config = _STRICT
    name: str = Field(..., pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    description: str = ""
    elements: list[str] = Field(..., min_length=1)
    bounds: dict[str, tuple[float, float]] = Field(
        default_factory=dict, description="atomic-fraction bounds per element, default [0, 1]"
    )
    cell: CellConfig = Field(default_factory=CellConfig)
    objectives: list[ObjectiveConfig] = Field(..., min_length=1)
    oracles: list[OracleConfig] = Field(..., min_length=1)
    budget: BudgetConfig
    generator: GeneratorConfig = Field(default_factory=GeneratorConfig)
    acquisition: AcquisitionConfig = Field(default_factory=AcquisitionConfig)
    seed: int = 0

    @field_validator("elements")
    @classmethod
    def _valid_elements(cls, value: list[str]) -> list[str]:
        try:
            check_elements(value)
        except CompositionError as exc:
            raise ValueError(f"{exc}; use chemical symbols such as Fe, Ni, Cr") from None
        if len(set(value)) != len(value):
            raise ValueError("an element is listed twice")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> CampaignConfig:
        for element, (low, high) in self.bounds.items():
            if element not in self.elements:
                raise ValueError(
                    f"bounds.{element}: '{element}' is not in elements {self.elements}; "
                    "add it to elements or remove its bounds"
                )
            if not (0.0 <= low <= high <= 1.0):
                raise ValueError(
                    f"bounds.{element}: [{low}, {high}] must satisfy 0 <= lower <= upper <= 1"
                )
        lows = [self.element_bounds(el)[0] for el in self.elements]
        highs = [self.element_bounds(el)[1] for el in self.elements]
        if sum(lows) > 1.0 + 1e-9 or sum(highs) < 1.0 - 1e-9:
            raise ValueError(
                f"bounds are infeasible: lower bounds sum to {sum(lows):g} and upper bounds to "
                f"{sum(highs):g}, but fractions must sum to 1; loosen the bounds"
            )
        names = [oracle.name for oracle in self.oracles]
        if len(set(names)) != len(names):
            raise ValueError(f"oracle names must be unique, got {names}")
        for objective in self.objectives:
            if objective.oracle is not None and objective.oracle not in names:
                raise ValueError(
                    f"objective '{objective.property}' names oracle '{objective.oracle}', "
                    f"which is not configured; configured oracles: {', '.join(names)}"
                )
        for name in self.budget.evaluations:
            if name not in names:
                raise ValueError(
                    f"budget.evaluations names oracle '{name}', which is not configured; "
                    f"configured oracles: {', '.join(names)}"
                )
        return self

    def element_bounds(self, element: str) -> tuple[float, float]:
        """Atomic-fraction bounds of ``element`` (``(0, 1)`` when none are given)."""
        return self.bounds.get(element, (0.0, 1.0))

    @property
    def objective_properties(self) -> list[str]:
        """Names of the properties being optimised."""
        return [objective.property for objective in self.objectives]


def _describe(error: dict[str, Any]) -> str:
    location = ".".join(str(part) for part in error["loc"] if part != "function-after")
    message = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        message = "unknown field; check its spelling against the documented fields"
    elif error["type"] == "missing":
        message = "required field is missing"
    return f"{location}: {message}" if location else message


def parse_config(
    data: dict[str, Any], *, oracle_types: Iterable[str] | None = None, source: str = "config"
) -> CampaignConfig:
    """Validate a config mapping; ``oracle_types`` are the registered oracle type names.

    Raises:
        ConfigError: listing each problem as ``field: what is wrong and how to fix it``.
    """
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping of fields, got {type(data).__name__}")
    context = {"oracle_types": list(oracle_types)} if oracle_types is not None else None
    try:
        return CampaignConfig.model_validate(data, context=context)
    except ValidationError as exc:
        lines = "\n".join(f"  - {_describe(err)}" for err in exc.errors())  # type: ignore[arg-type]
        raise ConfigError(f"{source}: invalid campaign config\n{lines}") from None


def load_config(path: str | Path, *, oracle_types: Iterable[str] | None = None) -> CampaignConfig:
    """Read and validate a campaign YAML file (see :func:`parse_config`)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    return parse_config(data, oracle_types=oracle_types, source=str(path))
