"""amloop: active-learning closed-loop discovery of amorphous and disordered materials.

The Python API, for notebooks and scripts (the ``amloop`` command line does the same)::

    import amloop

    campaign = amloop.init("examples/nifecr.yaml")  # or amloop.open("nifecr")
    campaign.run(iterations=2)                      # Bayesian proposals, generator, oracles
    campaign.inject("measurements.csv")             # experiments: the top fidelity
    campaign.history()                              # pandas DataFrame, one row per evaluation

Campaigns live under ``AMLOOP_HOME`` (default ``./campaigns``). Importing this package is cheap:
the science layers (torch, BoTorch, LAMMPS, Prefect) load when a method needs them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

    from amloop.loop.campaigns import CampaignHandle
    from amloop.state.schema import Measurement
    from amloop.state.store import CampaignStore

__all__ = ["Campaign", "init", "open"]
__version__ = "0.1.0"


@dataclass(frozen=True)
class Campaign:
    """One campaign: its folder, store and validated config (see :func:`open`, :func:`init`)."""

    handle: CampaignHandle

    @property
    def name(self) -> str:
        """The campaign's name."""
        return self.handle.name

    @property
    def directory(self) -> Path:
        """The campaign's folder (config, generator checkpoints, reports)."""
        return self.handle.directory

    def store(self) -> CampaignStore:
        """The campaign store: candidates, evaluations, measurements, iterations."""
        return self.handle.store()

    def history(self) -> pd.DataFrame:
        """Every evaluation and measurement, one row each, one column per property ("name
        [unit]"); see :func:`amloop.loop.history.history_frame` for the columns."""
        from amloop.loop.history import history_frame

        return history_frame(self.store())

    def run(self, *, iterations: int | None = None, core_hours: float | None = None) -> str:
        """Run (or continue) the closed loop until the budget, ``iterations`` (total) or the
        stall rule stops it; returns why it stopped."""
        from amloop.loop.runs import RunLimits, run_loop

        return run_loop(self.handle, RunLimits(iterations, core_hours))

    def resume(self) -> str:
        """Continue with the limits of the last run; returns why it stopped."""
        from amloop.loop.runs import last_limits, run_loop

        return run_loop(self.handle, last_limits(self.handle))

    def inject(self, path: str | Path) -> list[Measurement]:
        """Store the measurements of a CSV file (all or nothing; see ``amloop inject``).

        Raises:
            amloop.loop.inject.InjectError: a bad file or row (every problem listed).
        """
        from amloop.loop.inject import inject_measurements

        return inject_measurements(self.store(), self.handle.config, Path(path))


def open(name: str | Path | None = None) -> Campaign:
    """The campaign named ``name`` under ``AMLOOP_HOME``, a campaign folder, or (``None``) the
    current one.

    Raises:
        amloop.loop.campaigns.CampaignLookupError: no such campaign.
    """
    from amloop.loop.campaigns import resolve_campaign
    from amloop.state.settings import Settings

    return Campaign(resolve_campaign(None if name is None else str(name), Settings()))


def init(config: str | Path) -> Campaign:
    """Create a campaign from its YAML file (validated first) and make it the current one.

    Raises:
        amloop.state.config.ConfigError: the YAML is invalid (every field named).
        amloop.state.store.CampaignExists: a campaign of that name exists.
    """
    from amloop.loop.campaigns import init_campaign
    from amloop.state.settings import Settings

    return Campaign(init_campaign(Path(config), Settings()))
