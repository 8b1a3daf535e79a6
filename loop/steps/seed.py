"""The seed set of a campaign: which oracles score it, built (and completed after failures) before the first iteration."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from amloop.generator.cdvae import CondCDVAE
from amloop.loop.seeding import (
    PriorSampler,
    ProgressCallback,
    SeedReport,
    build_seed_set,
    seed_plan,
)
from amloop.loop.steps.refinement import refine_protocol
from amloop.loop.steps.run import (
    CHEAP_CORE_S,
    CampaignRun,
    is_cheap,
    oracle_config,
    oracle_instance,
)
from amloop.oracles.base import Oracle
from amloop.oracles.campaign_potential import committee_missing
from amloop.oracles.md import MDOracle
from amloop.state.config import CampaignConfig, ConfigError, OracleConfig
from amloop.state.store import CampaignStore

#: Seed recipes tried per wanted seed structure before the loop goes on with fewer (:func:`seed`).
SEED_ATTEMPTS = 3


def seed_sources(
    config: CampaignConfig, names: Sequence[str] | None = None
) -> tuple[list[tuple[OracleConfig, Oracle]], MDOracle | None]:
    """The oracles that score seed structures (``names``, default: ``acquisition.seed_oracles``,
    else the cheap ones) and the MD oracle that melt-quenches amorphous seeds (``None`` when
    none is configured).

    Raises:
        ConfigError: an unknown name, or no chosen oracle computes.
    """
    names = names or config.acquisition.seed_oracles
    known = {o.name for o in config.oracles}
    if names and (unknown := set(names) - known):
        raise ConfigError(
            f"unknown oracle(s) {', '.join(sorted(unknown))}; configured: {', '.join(known)}"
        )
    chosen = [
        o
        for o in config.oracles
        if (o.name in names if names else is_cheap(o)) and not committee_missing(o)
    ]
    oracles = [(o, source) for o in chosen if isinstance(source := oracle_instance(o), Oracle)]
    if not oracles:
        raise ConfigError(
            f"no oracle to score seed structures with: none of {', '.join(o.name for o in chosen)}"
            f" computes at <= {CHEAP_CORE_S:g} core-s per call; name one explicitly"
        )
    md_configs = [o for o in config.oracles if o.type == MDOracle.type_name]
    md = oracle_instance(md_configs[0]) if md_configs else None
    return oracles, md if isinstance(md, MDOracle) else None


def seed(run: CampaignRun, progress: ProgressCallback | None = None) -> SeedReport:
    """Build (or finish building) the campaign's seed set of ``acquisition.n_initial``
    structures, spread over compositions, scored by the seed oracles (:func:`seed_sources`).

    Where melt-quenches or oracle calls fail (small amorphous cells often do), the next recipes
    of the same deterministic plan are tried, up to :data:`SEED_ATTEMPTS` × ``n_initial``
    recipes, until ``n_initial`` seed structures have a value. A recipe whose melt-quench
    failed (a ``seed_failed`` event) is not tried again: recipes are seeded, so it would fail
    the same way. Returns the last build's report with the failures of every round."""
    n = run.config.acquisition.n_initial
    oracles, md = seed_sources(run.config)
    prior = prior_sampler(run.config)
    names = {oracle_config.name for oracle_config, _ in oracles}
    failed = [str(e.payload["recipe"]) for e in run.store.events(kind="seed_failed")]
    failures: list[str] = []
    size = n
    while True:
        plan = seed_plan(run.config, size, orderings=max(1, n // 8))
        report = build_seed_set(
            run.store,
            run.config,
            plan,
            oracles,
            md=md,
            prior=prior,
            progress=progress,
            skip=failed,
        )
        failed += report.failed_recipes
        failures += report.failures
        missing = n - scored_seed_count(run.store, names)
        if missing <= 0 or report.stopped_reason is not None or size >= SEED_ATTEMPTS * n:
            break
        size = min(size + missing, SEED_ATTEMPTS * n)
        run.store.log_event(
            "seed_extended", f"{missing} seed structure(s) short: trying {size} recipes"
        )
    report.failures, report.failed_recipes = failures, failed
    return report


def prior_sampler(config: CampaignConfig) -> PriorSampler | None:
    """What samples amorphous seed cells from ``generator.prior`` and refines them with the
    ``generator.refine`` settings (``acquisition.seed_from: prior``), else ``None``."""
    if config.acquisition.seed_from != "prior":
        return None
    assert config.generator.prior is not None  # the config checks it
    model = CondCDVAE.load(Path(config.generator.prior))
    model.config = replace(model.config, min_distance=config.quality.min_distance)
    settings = config.generator.refine
    if settings is None:
        return PriorSampler(model)
    md = oracle_instance(oracle_config(config, settings.oracle))
    assert isinstance(md, MDOracle)  # the config checks the oracle's type
    return PriorSampler(
        model,
        md.make_engine,
        refine_protocol(settings),
        settings.reject_crystallised,
        md.timeout_s,
    )


def scored_seed_count(store: CampaignStore, oracles: set[str]) -> int:
    """Seed structures with at least one successful call of ``oracles``."""
    seeds = [c.content_hash for c in store.candidates(origin="seed")]
    return len(
        {
            e.candidate_hash
            for e in store.evaluations(status="done", candidates=seeds, structures=False)
            if e.oracle in oracles
        }
    )
