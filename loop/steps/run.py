"""A campaign being run (store, config, folder) and what every step shares: the oracle instances of this process, the iteration counter and seeds, the data cut-off of an overlapped schedule."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from amloop.oracles.base import FidelitySource
from amloop.oracles.campaign_potential import with_campaign_committee
from amloop.oracles.experiment import ExperimentOracle
from amloop.oracles.registry import oracle_from_config
from amloop.state.config import CampaignConfig, OracleConfig
from amloop.state.schema import IterationRecord
from amloop.state.store import CampaignStore

#: Oracles at most this expensive per call (core-s) score every seed and generated structure;
#: dearer ones run only where a proposal asks for them.
CHEAP_CORE_S = 60.0


@dataclass
class CampaignRun:
    """A campaign being driven: its store, its (possibly overridden) config and its folder."""

    store: CampaignStore
    config: CampaignConfig
    directory: Path

    @classmethod
    def open(cls, database_url: str, campaign: str, directory: str | Path) -> CampaignRun:
        """Campaign ``campaign`` of the store at ``database_url`` with its stored config, as a
        task or worker process opens it."""
        store = CampaignStore.open(database_url, campaign)
        config = CampaignConfig.model_validate(store.info().config)
        return cls(store, config, Path(directory))

    def __post_init__(self) -> None:
        self.config = with_campaign_committee(self.config, self.directory)

    def generator_dir(self, index: int) -> Path:
        """Checkpoint folder of the generator used in iteration ``index``."""
        return self.directory / "generator" / f"iter-{index:03d}"


_ORACLES: dict[str, FidelitySource] = {}


def oracle_instance(oracle_config: OracleConfig) -> FidelitySource:
    """The oracle an :class:`OracleConfig` describes, built once per process (potentials and
    ML models are loaded once)."""
    key = oracle_config.model_dump_json()
    if key not in _ORACLES:
        _ORACLES[key] = oracle_from_config(oracle_config)
    return _ORACLES[key]


def is_cheap(oracle_config: OracleConfig) -> bool:
    """Whether an oracle scores every structure (computes, and costs <= ``CHEAP_CORE_S``)."""
    return oracle_config.type != ExperimentOracle.type_name and (
        oracle_config.cost.core_s <= CHEAP_CORE_S
    )


def oracle_config(config: CampaignConfig, name: str) -> OracleConfig:
    """The configured oracle called ``name``.

    Raises:
        KeyError: no such oracle.
    """
    for candidate in config.oracles:
        if candidate.name == name:
            return candidate
    raise KeyError(
        f"no oracle '{name}' in the campaign; configured: {[o.name for o in config.oracles]}"
    )


def current_iteration(store: CampaignStore) -> IterationRecord:
    """The unfinished iteration to continue, or a new one."""
    iterations = store.iterations()
    if iterations and iterations[-1].phase not in ("done", "failed"):
        return iterations[-1]
    return store.start_iteration(store.next_iteration_index())


def iteration_seed(config: CampaignConfig, index: int) -> int:
    """Seed of every random choice of iteration ``index``."""
    return config.seed * 100_003 + index


def data_cutoff(config: CampaignConfig, index: int) -> int:
    """The last iteration whose evaluations iteration ``index``'s acquisition and generator see:
    ``index - 1``, or ``index - 2`` with ``execution.overlap`` (iteration ``index - 1``'s oracle
    calls are still running then). Fixed by the index, so that what an iteration proposes never
    depends on how far other evaluations got (nor on a crash and resume)."""
    return index - (2 if config.execution.overlap else 1)


def set_torch_threads(n: int | None = None) -> None:
    """Use ``n`` torch threads (default: 1 per process; oracles run their own threads)."""
    torch.set_num_threads(n or 1)
