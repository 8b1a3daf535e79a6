"""The campaign configuration: the science of a campaign, read from YAML and validated.

Validation errors name the offending field and say how to fix it. Oracle ``type`` names are
checked against the list the caller passes (the oracle registry), so this module stays free of
any oracle code.
"""

from __future__ import annotations

import difflib
import typing
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

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

from amloop.state.composition import CompositionError, check_elements
from amloop.state.units import PROPERTY_DIMENSIONS, UnitError, canonical_unit

_STRICT = ConfigDict(extra="forbid")


class ConfigError(ValueError):
    """A campaign configuration that cannot be used; the message lists every problem."""


#: A crystal lattice of a lattice campaign.
CrystalLattice = Literal["fcc", "bcc", "hcp"]


class CellConfig(BaseModel):
    """Size and starting lattice of the simulation cells."""

    model_config = _STRICT
    n_atoms: int = Field(54, ge=2, le=2000, description="atoms per cell")
    lattice: Literal["fcc", "bcc", "hcp", "amorphous"] | list[CrystalLattice] = Field(
        "amorphous",
        description="`amorphous`, one crystal lattice, or several (`[fcc, bcc]`, seed 001): "
        "then the lattice is a dimension of the acquisition and the generator's phase",
    )

    @field_validator("lattice")
    @classmethod
    def _distinct(cls, value: str | list[str]) -> str | list[str]:
        if isinstance(value, list):
            if not value or len(set(value)) != len(value):
                raise ValueError("give distinct lattices, e.g. [fcc, bcc]")
            return value[0] if len(value) == 1 else value
        return value

    @property
    def lattices(self) -> tuple[str, ...]:
        """The campaign's lattices (``("amorphous",)``, ``("fcc",)``, ``("fcc", "bcc")``)."""
        return tuple(self.lattice) if isinstance(self.lattice, list) else (self.lattice,)

    @property
    def amorphous(self) -> bool:
        """Whether the cells are amorphous (no parent lattice)."""
        return self.lattices == ("amorphous",)


class _PropertyConfig(BaseModel):
    """A property the surrogates model: its name, unit and the oracle that measures it."""

    model_config = _STRICT
    property: str
    unit: str | None = Field(None, description="defaults to the property's canonical unit")
    oracle: str | None = Field(None, description="name of the oracle that measures it")

    @model_validator(mode="after")
    def _known_property(self) -> _PropertyConfig:
        if self.unit is None:
            try:
                self.unit = canonical_unit(self.property)
            except UnitError:
                raise ValueError(
                    f"unknown property '{self.property}': give its `unit`, or use one of "
                    f"{', '.join(sorted(PROPERTY_DIMENSIONS))}"
                ) from None
        return self


class ObjectiveConfig(_PropertyConfig):
    """A property to optimise, e.g. ``{property: bulk_modulus, direction: maximize}``."""

    direction: Literal["maximize", "minimize"]
    target: float | None = None
    threshold: float | None = Field(None, description="reference point for hypervolume")

    @property
    def sign(self) -> float:
        """+1 to maximise, -1 to minimise: ``sign * value`` is always to be maximised."""
        return 1.0 if self.direction == "maximize" else -1.0


class ConstraintConfig(_PropertyConfig):
    """An outcome constraint of the acquisition, e.g. ``{property: formation_energy, upper: 0}``:
    proposals must be likely to satisfy ``lower <= value <= upper`` (in ``unit``)."""

    lower: float | None = None
    upper: float | None = None

    @model_validator(mode="after")
    def _some_bound(self) -> ConstraintConfig:
        if self.lower is None and self.upper is None:
            raise ValueError(
                f"constraint on '{self.property}' has no bound: set lower and/or upper"
            )
        if self.lower is not None and self.upper is not None and self.lower > self.upper:
            raise ValueError(
                f"constraint on '{self.property}': lower {self.lower:g} > upper {self.upper:g}"
            )
        return self

    def describe(self) -> str:
        """The constraint in words, e.g. ``formation_energy <= 0 eV/atom``."""
        unit = f" {self.unit}" if self.unit else ""
        if self.lower is not None and self.upper is not None:
            return f"{self.lower:g} <= {self.property} <= {self.upper:g}{unit}"
        if self.upper is not None:
            return f"{self.property} <= {self.upper:g}{unit}"
        return f"{self.property} >= {self.lower:g}{unit}"


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


class LocalSearchConfig(BaseModel):
    """Seed 001's crafting step: after each iteration's calls, atom-swap searches from the best
    cells for the first objective, each child scored by that objective's oracle (its budget),
    stored as a ``local_search`` candidate for the generator's next training."""

    model_config = _STRICT
    starts: int = Field(1, ge=1, description="best cells searched from per iteration")
    steps: int = Field(2, ge=1, description="steps per search (the best of each step goes on)")
    swaps_per_step: int = Field(
        10, ge=1, description="children per step: random swaps of two unlike atoms"
    )
    patience: int = Field(
        1,
        ge=1,
        description="searches from one cell that find no better child before it is passed over "
        "for the next best (1: every search from a new cell, wide; more: deeper from the best)",
    )


class RefineConfig(BaseModel):
    """Refinement of generated amorphous cells before the gate: relax, anneal, relax again with
    the engine (potential or calculator) of one of the campaign's ``md`` oracles."""

    model_config = _STRICT
    oracle: str = Field(description="name of the md oracle whose engine refines")
    fmax_eV_A: float = Field(0.05, gt=0, description="relaxations stop below this force (eV/Å)")
    max_relax_steps: int = Field(500, ge=1, description="FIRE steps per relaxation at most")
    anneal_ps: float = Field(2.0, ge=0, description="NVT between the relaxations (ps); 0: none")
    anneal_temperature_K: float = Field(300.0, gt=0, description="anneal temperature (K)")
    cooling_rate_K_per_ps: float | None = Field(
        None,
        gt=0,
        description="after the anneal, cool to final_temperature_K at this rate (K/ps; a "
        "melt-quench's is 100): an anneal near the glass transition then this cooling lowers "
        "a generated glass's energy to a melt-quenched one's; null relaxes from the anneal",
    )
    final_temperature_K: float = Field(300.0, gt=0, description="where the cooling ends (K)")
    pressure_tolerance_GPa: float | None = Field(
        0.5,
        gt=0,
        description="each relaxation rescales the cell until |P| is below this (GPa): decoded "
        "volumes are pulled towards the family's mean; null keeps the decoded cell",
    )
    reject_crystallised: bool = Field(
        True, description="the gate rejects a cell that crystallised (FCC/BCC/HCP) on the way"
    )


class GeneratorConfig(BaseModel):
    """Settings of the conditional generator (Cond-CDVAE) and its latent optimisation."""

    model_config = _STRICT
    type: str = "cond_cdvae"
    preset: Literal["paper", "tiny"] = Field(
        "paper", description="network size: paper = Table S1 sizes, tiny = CPU smoke runs"
    )
    samples_per_proposal: int = Field(4, ge=1)
    langevin_steps: int | None = Field(
        None, ge=1, description="Langevin steps per noise level; default the preset's (100 / 2)"
    )
    pdm_swap_sweeps: int | None = Field(
        None,
        ge=0,
        description="element exchanges proposed per atom towards each proposal's PDM target "
        "while sampling; default the preset's (20), 0 keeps the decoder's ordering",
    )
    latent_steps: int = Field(200, ge=0, description="Adam steps on the property head")
    decode_at: list[Annotated[int, Field(gt=0)]] | None = Field(
        None,
        min_length=1,
        description="Adam steps after which each latent trajectory is decoded, one candidate "
        "per start and step, identical cells kept once (seed 001: [200, 500, 1000, 1500, "
        "2500]); default [latent_steps]",
    )
    latent_lr: float = Field(1e-3, gt=0)
    train_epochs: int = Field(50, ge=0)
    finetune_epochs: int = Field(5, ge=0)
    finetune_max_structures: int | None = Field(
        256,
        ge=2,
        description="fine-tuning data cap: the newest half plus a random half of the older "
        "structures; None fine-tunes on everything scored (cost grows with the campaign)",
    )
    finetune_growth: float = Field(
        0.25,
        ge=0,
        description="fine-tune once the scored set has grown by this fraction since the last "
        "training (the previous weights are kept until then); 0 fine-tunes every iteration",
    )
    finetune_epochs_per_iteration: int | None = Field(
        None,
        ge=1,
        description="spread a due fine-tuning over iterations, this many epochs each, the "
        "previous weights used until its last epoch (the same weights as all at once, later): "
        "no iteration waits for a whole fine-tuning, which the oracle calls would otherwise "
        "wait for with execution.overlap; None: all epochs at once",
    )
    prior: str | None = Field(
        None,
        description="folder of a pretrained generator (`amloop generator pretrain`) that the "
        "campaign fine-tunes instead of training from scratch; relative to the YAML's folder",
    )
    prior_campaigns: int = Field(
        10,
        ge=1,
        description="campaigns that share the prior's cost: each charges this share of it",
    )
    snap_to_lattice: bool = Field(
        True,
        description="lattice campaigns (cell.lattice fcc/bcc/hcp): generated atoms are put on "
        "the parent lattice's sites, keeping their chemical arrangement",
    )
    refine: RefineConfig | None = Field(
        None,
        description="amorphous campaigns: relax and anneal each generated cell with an md "
        "oracle's engine before the gate (cost charged); none gates the cells as decoded",
    )
    local_search: LocalSearchConfig | None = Field(
        None,
        description="craft training cells by atom-swap searches from the best cells after "
        "each iteration (seed 001: 10 % of its training set); none: no crafting",
    )


class PotentialFitConfig(BaseModel):
    """The campaign's own machine-learned potential (``amloop mlp fit``, seed 003): a committee
    of matgl potentials fitted on the force labels of ``train_on``'s calls; its spread is the
    uncertainty of the ``mlp`` oracle with ``model: campaign``."""

    model_config = _STRICT
    train_on: list[str] = Field(
        min_length=1, description="oracles whose force labels (energy, forces, stress) train it"
    )
    architecture: Literal["m3gnet", "tensornet"] = Field(
        "m3gnet", description="matgl model: `m3gnet` or `tensornet`"
    )
    committee: int = Field(4, ge=2, description="members (seeds and bootstrap resamples)")
    units: int = Field(32, ge=4, description="feature width of each member")
    blocks: int = Field(2, ge=1, description="interaction blocks of each member")
    cutoff_A: float = Field(5.0, gt=1.0, description="graph cutoff radius (Å)")
    epochs: int = Field(100, ge=1, description="training epochs of each member")
    batch_size: int = Field(16, ge=1, description="structures per training batch")
    learning_rate: float = Field(1e-3, gt=0, description="Adam learning rate")
    stress_weight: float = Field(0.1, ge=0, description="stress term of the loss (GPa scale)")
    validation_fraction: float = Field(
        0.1, gt=0, lt=0.5, description="held-out labels (the same for every member)"
    )
    min_labels: int = Field(10, ge=4, description="labels needed before the first fit")
    refit_growth: float = Field(
        0.2, gt=0, description="refit once the labels grew by this fraction since the last fit"
    )
    label_per_iteration: int = Field(
        0,
        ge=0,
        description="candidates per iteration where the committee disagrees most, labelled by "
        "the first train_on oracle (within its budget); 0: only the acquisition's calls label",
    )
    label_pool: int = Field(
        64,
        ge=1,
        description="newest unlabelled candidates (MD snapshots included) the committee ranks "
        "each iteration",
    )


class AcquisitionConfig(BaseModel):
    """Settings of the Bayesian acquisition that proposes the next conditions."""

    model_config = _STRICT
    batch_size: int = Field(4, ge=1, description="proposals (q) per iteration")
    n_initial: int = Field(8, ge=1, description="seed structures when the campaign has none")
    strategy: Literal["qLogNEI", "qLogNEHVI", "qUCB", "random"] = "qLogNEI"
    patience: int = Field(3, ge=1, description="iterations without improvement before stopping")
    features: Literal["composition+pdm", "composition"] = Field(
        "composition+pdm", description="surrogate inputs; 'composition' is the no-PDM baseline"
    )
    max_elements: int | None = Field(
        None, ge=1, description="most elements with a fraction > 0 per proposal (cardinality)"
    )
    pdm_margin: float = Field(
        0.1, ge=0, description="widening of the observed C_ab / x_b range, fraction of the range"
    )
    max_points: int = Field(
        500, ge=50, description="exact-GP limit per objective; above, a documented subsample"
    )
    refit_growth: float = Field(
        0.25,
        ge=0,
        description="re-optimise a GP's hyper-parameters once its data has grown by this "
        "fraction since they were fitted (the previous iteration's are reused until then, "
        "conditioned on all current data); 0 refits every iteration",
    )
    lab_request_core_s: float = Field(
        1e6, gt=0, description="core-s equivalent of a lab request without a configured cost"
    )
    seed_oracles: list[str] | None = Field(
        None,
        description="oracles that score the seed set (default: every oracle <= 60 core-s); name "
        "the dear ones whose objectives would otherwise start without values",
    )
    seed_from: Literal["melt_quench", "prior"] = Field(
        "melt_quench",
        description="how amorphous seed cells are made: `melt_quench` with the md oracle, or "
        "`prior`: sampled from `generator.prior` and refined (`generator.refine`), a structure "
        "for a fraction of a melt-quench's cost",
    )


class QualityGateConfig(BaseModel):
    """Checks a generated structure must pass before any oracle budget is spent on it.

    Seed 001 keeps a structure only if its MLP energy is not above the seed set's maximum;
    seed 002 (Dismai-Bench) judges disordered structures by their distance to the training set.
    """

    model_config = _STRICT
    min_distance: float = Field(1.5, gt=0, description="closest pair after push-apart, Å")
    energy_oracle: str | None = Field(
        None, description="name of an mlp oracle whose unrelaxed energy is gated (eV/atom)"
    )
    max_energy_above_reference: float | None = Field(
        0.0, description="eV/atom allowed above the reference energy (`energy_reference`)"
    )
    energy_reference: Literal["seed_max", "composition_fit"] = Field(
        "seed_max",
        description="`seed_max`: the seed set's highest energy (seed 001); `composition_fit`: "
        "the seed energies fitted linearly in composition plus their largest residual, for "
        "families whose elements bind very differently",
    )
    max_rdf_distance: float | None = Field(
        None, ge=0, description="largest RDF distance to the training set's average RDF"
    )
    max_motif_distance: float | None = Field(
        None, ge=0, description="largest CrystalNN motif-fingerprint distance to the training set"
    )


class ExecutionConfig(BaseModel):
    """Where the loop's work runs: this process, or a Dask cluster through prefect-dask."""

    model_config = _STRICT
    executor: Literal["local", "dask"] = "local"
    dask_address: str | None = Field(
        None, description="scheduler address (tcp://host:8786); none starts a LocalCluster"
    )
    n_workers: int = Field(2, ge=1, description="LocalCluster workers (one thread each)")
    max_iterations: int | None = Field(None, ge=1, description="stop after this many iterations")
    overlap: bool = Field(
        False,
        description="prepare the next iteration (acquisition on the data up to the one before, "
        "the running iteration's proposals pending; generation) while an iteration's oracle "
        "calls run, so that cheap oracles do not wait for the loop; needs a core to spare",
    )
    max_attempts: int = Field(
        3,
        ge=1,
        description="times one oracle call may be started; a call whose process died that often "
        "(a crash or a kill while it ran) is stored as failed instead of tried again",
    )
    calls_per_task: Annotated[int, Field(ge=1)] | Literal["auto"] = Field(
        1,
        description="oracle calls per Prefect task: above 1 the calls of an iteration are "
        "mapped in chunks of this many, each chunk run one call after another in one worker; "
        "fewer tasks means less of Prefect's per-task bookkeeping for many cheap or short calls, "
        "at the price of coarser load balancing (keep it well below calls per worker); `auto`: "
        "about four chunks per worker of the task runner",
    )


#: A campaign name: a folder name under AMLOOP_HOME and a key in a shared database.
CAMPAIGN_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
CAMPAIGN_NAME_MAX = 100


class CampaignConfig(BaseModel):
    """Everything that defines a campaign's science; stored with the campaign."""

    model_config = _STRICT
    name: str = Field(..., pattern=CAMPAIGN_NAME_PATTERN, max_length=CAMPAIGN_NAME_MAX)
    description: str = ""
    elements: list[str] = Field(..., min_length=1)
    bounds: dict[str, tuple[float, float]] = Field(
        default_factory=dict, description="atomic-fraction bounds per element, default [0, 1]"
    )
    cell: CellConfig = Field(default_factory=CellConfig)
    objectives: list[ObjectiveConfig] = Field(..., min_length=1)
    constraints: list[ConstraintConfig] = Field(
        default_factory=list, description="outcome constraints of the acquisition"
    )
    oracles: list[OracleConfig] = Field(..., min_length=1)
    budget: BudgetConfig
    generator: GeneratorConfig = Field(default_factory=GeneratorConfig)
    acquisition: AcquisitionConfig = Field(default_factory=AcquisitionConfig)
    quality: QualityGateConfig = Field(default_factory=QualityGateConfig)
    mlp: PotentialFitConfig | None = Field(
        None, description="the campaign's own potential, fitted on its force labels"
    )
    execution: ExecutionConfig = Field(default_factory=ExecutionConfig)
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
                f"bounds: infeasible, the lower bounds sum to {sum(lows):g} and the upper bounds "
                f"to {sum(highs):g}, but fractions must sum to 1; loosen the bounds"
            )
        names = [oracle.name for oracle in self.oracles]
        if len(set(names)) != len(names):
            raise ValueError(f"oracles: names must be unique, got {names}; rename the duplicates")
        sections: list[tuple[str, Sequence[_PropertyConfig]]] = [
            ("objectives", self.objectives),
            ("constraints", self.constraints),
        ]
        for section, entries in sections:
            for i, entry in enumerate(entries):
                if entry.oracle is not None and entry.oracle not in names:
                    raise ValueError(
                        f"{section}.{i}.oracle: {section[:-1]} '{entry.property}' names oracle "
                        f"'{entry.oracle}', which is not configured; use one of the configured "
                        f"oracles ({', '.join(names)}) or add it under oracles"
                    )
        for i, constraint in enumerate(self.constraints):
            if constraint.property in self.objective_properties:
                raise ValueError(
                    f"constraints.{i}: '{constraint.property}' is an objective; constrain "
                    "another property, or give the objective a threshold"
                )
        named = [
            ("quality.energy_oracle", self.quality.energy_oracle),
            *((f"budget.evaluations.{name}", name) for name in self.budget.evaluations),
            *(
                (f"acquisition.seed_oracles.{i}", n)
                for i, n in enumerate(self.acquisition.seed_oracles or [])
            ),
            *(
                (f"mlp.train_on.{i}", n)
                for i, n in enumerate(self.mlp.train_on if self.mlp else [])
            ),
        ]
        for field, name in named:
            if name is not None and name not in names:
                raise ValueError(
                    f"{field}: names oracle '{name}', which is not configured; "
                    f"use one of the configured oracles ({', '.join(names)}) or remove it"
                )
        if self.acquisition.seed_from == "prior" and (
            self.generator.prior is None or not self.cell.amorphous
        ):
            raise ValueError(
                "acquisition.seed_from: prior draws amorphous seed cells from the generator "
                "prior: set generator.prior and cell.lattice: amorphous, or seed by melt_quench"
            )
        if (refine := self.generator.refine) is not None:
            md = [o.name for o in self.oracles if o.type == "md"]
            if refine.oracle not in md:
                raise ValueError(
                    f"generator.refine.oracle: '{refine.oracle}' is not an md oracle of the "
                    f"campaign; name one of type md ({', '.join(md) or 'none configured'})"
                )
            if not self.cell.amorphous:
                raise ValueError(
                    "generator.refine: refinement is for amorphous cells (cell.lattice: "
                    f"amorphous); this campaign's cells go onto the {'/'.join(self.cell.lattices)} lattice"
                )
        return self

    def element_bounds(self, element: str) -> tuple[float, float]:
        """Atomic-fraction bounds of ``element`` (``(0, 1)`` when none are given)."""
        return self.bounds.get(element, (0.0, 1.0))

    @property
    def objective_properties(self) -> list[str]:
        """Names of the properties being optimised."""
        return [objective.property for objective in self.objectives]

    @property
    def modelled_units(self) -> dict[str, str]:
        """Unit of every property the surrogates model: objectives, then constraints."""
        return {entry.property: entry.unit or "" for entry in [*self.objectives, *self.constraints]}


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model inside a field's annotation (``X``, ``list[X]``, ``X | None``)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        model = _model_in(arg)
        if model is not None:
            return model
    return None


def _fields_at(loc: tuple[Any, ...]) -> list[str]:
    """Names of the fields the config section at ``loc`` accepts (empty if unknown)."""
    model: type[BaseModel] | None = CampaignConfig
    for part in loc:
        if isinstance(part, int):  # an item of a list of sections
            continue
        field = model.model_fields.get(part) if model is not None else None
        model = _model_in(field.annotation) if field is not None else None
        if model is None:
            return []
    return list(model.model_fields) if model is not None else []


_BOUND_WORDS = {
    "greater_than_equal": (">=", "ge"),
    "greater_than": (">", "gt"),
    "less_than_equal": ("<=", "le"),
    "less_than": ("<", "lt"),
}


def _describe(error: dict[str, Any]) -> str:
    loc = tuple(part for part in error["loc"] if part != "function-after")
    location = ".".join(str(part) for part in loc)
    message = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        known = _fields_at(loc[:-1])
        close = difflib.get_close_matches(str(loc[-1]), known, n=1) if loc else []
        if close:
            message = f"unknown field; did you mean '{close[0]}'?"
        elif known:
            message = f"unknown field; valid fields here: {', '.join(known)}"
        else:
            message = "unknown field; check its spelling against the documented fields"
    elif error["type"] == "missing":
        message = "required field is missing"
    elif error["type"] in _BOUND_WORDS:
        op, key = _BOUND_WORDS[error["type"]]
        limit = (error.get("ctx") or {}).get(key)
        shown = f"{limit:g}" if isinstance(limit, int | float) else str(limit)
        message = f"got {error.get('input')!r}, but it must be {op} {shown}"
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
        problems = [_describe(err) for err in exc.errors()]  # type: ignore[arg-type]
        if len(problems) == 1:
            raise ConfigError(f"{source}: invalid campaign config: {problems[0]}") from None
        lines = "\n".join(f"  - {problem}" for problem in problems)
        raise ConfigError(f"{source}: invalid campaign config\n{lines}") from None


#: Largest campaign YAML read (bytes); a 12 MB list took minutes to validate.
MAX_CONFIG_BYTES = 1_000_000


def yaml_error(path: Path, exc: yaml.YAMLError) -> str:
    """One line for a YAML syntax error: ``file:line:column: what`` (1-based, as editors count)."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    context = getattr(exc, "context", None)
    where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(path)
    return f"{where}: not valid YAML: {problem}" + (f" ({context})" if context else "")


def load_config(path: str | Path, *, oracle_types: Iterable[str] | None = None) -> CampaignConfig:
    """Read and validate a campaign YAML file (see :func:`parse_config`)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    if path.stat().st_size > MAX_CONFIG_BYTES:
        raise ConfigError(
            f"{path}: {path.stat().st_size / 1e3:.0f} kB is far more than a campaign YAML holds "
            f"({MAX_CONFIG_BYTES / 1e3:.0f} kB at most)"
        )
    try:
        data = yaml.safe_load(path.read_text())
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not a text file ({exc.reason} at byte {exc.start})") from None
    except yaml.YAMLError as exc:
        raise ConfigError(yaml_error(path, exc)) from None
    generator = data.get("generator") if isinstance(data, dict) else None
    if isinstance(generator, dict) and isinstance(generator.get("prior"), str):
        prior = Path(generator["prior"]).expanduser()  # relative to the YAML, as written
        generator["prior"] = str(prior if prior.is_absolute() else path.parent.resolve() / prior)
    return parse_config(data, oracle_types=oracle_types, source=str(path))
