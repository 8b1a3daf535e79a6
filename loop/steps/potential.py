"""The campaign's own potential: refit the committee of matgl potentials on the force labels of
``mlp.train_on`` when they have grown enough (``amloop mlp fit`` and the loop, after each
iteration's calls); the fit is an artifact of the campaign, its cost charged to the iteration."""

from __future__ import annotations

import time
from collections.abc import Callable

from pymatgen.core import Structure
from pymatgen.io.ase import AseAtomsAdaptor

from amloop.loop.steps.calls import EvaluationTask
from amloop.loop.steps.run import CampaignRun
from amloop.oracles.campaign_potential import (
    CAMPAIGN_COMMITTEE_DIR,
    SUMMARY_FILE,
    committee_summary,
    newest_committee,
)
from amloop.oracles.mlp.backends import committee_calculator
from amloop.oracles.mlp.committee import CommitteeCalculator
from amloop.oracles.mlp.training import CommitteeFit, fit_committee
from amloop.state.config import ConfigError
from amloop.state.files import sha256_file
from amloop.state.schema import Artifact, Cost

#: Artifact kind of a fitted committee version.
COMMITTEE_ARTIFACT = "mlp_committee"
#: Iteration-metadata key of the labels chosen by committee disagreement.
LABELLING_KEY = "labelling"


def refit_due(run: CampaignRun) -> tuple[bool, str]:
    """Whether the labels warrant a (re)fit now, and why (or why not)."""
    settings = run.config.mlp
    if settings is None:
        return False, "the campaign has no mlp section"
    labels = run.store.label_count(oracles=settings.train_on)
    newest = newest_committee(run.directory / CAMPAIGN_COMMITTEE_DIR)
    if labels < settings.min_labels:
        return (
            False,
            f"{labels} label(s) of {', '.join(settings.train_on)}, {settings.min_labels} needed",
        )
    if newest is None:
        return True, f"first fit on {labels} labels"
    fitted = int(committee_summary(newest)["n_labels"])
    wanted = fitted * (1 + settings.refit_growth)
    if labels < wanted:
        return False, f"{labels} labels, {newest.name} fitted on {fitted}; refit at {wanted:.0f}"
    return True, f"{labels} labels, {newest.name} fitted on {fitted}"


def refit_potential(
    run: CampaignRun,
    iteration: int | None = None,
    *,
    force: bool = False,
    progress: Callable[[str], None] | None = None,
) -> CommitteeFit | None:
    """Fit a new committee version when :func:`refit_due` (or ``force``), register it as an
    artifact and charge its core-seconds to ``iteration`` (else to the audit log); ``None``
    when no fit was due.

    Raises:
        ConfigError: the campaign has no ``mlp`` section, or (``force``) fewer than 2 labels.
    """
    settings = run.config.mlp
    if settings is None:
        raise ConfigError(
            "the campaign has no mlp section: add mlp: {train_on: [<oracle>]} to fit its own "
            "potential on that oracle's force labels"
        )
    due, reason = refit_due(run)
    if not (due or force):
        return None
    labels = run.store.labels(oracles=settings.train_on)
    if len(labels) < 2:
        raise ConfigError(f"cannot fit a potential on {len(labels)} label(s): {reason}")
    root = run.directory / CAMPAIGN_COMMITTEE_DIR
    fit = fit_committee(labels, root, settings, seed=run.config.seed, progress=progress)
    metadata = {
        "n_train": fit.n_train,
        "n_validation": fit.n_validation,
        "energy_mae_eV_per_atom": fit.committee.energy_eV_per_atom,
        "force_mae_eV_per_A": fit.committee.force_eV_per_A,
        "stress_mae_GPa": fit.committee.stress_GPa,
        "core_s": fit.core_s,
        "reason": reason,
    }
    summary = fit.version / SUMMARY_FILE
    run.store.add_artifact(
        Artifact(
            kind=COMMITTEE_ARTIFACT,
            path=str(fit.version),
            sha256=sha256_file(summary),
            iteration=iteration,
            metadata=metadata,
        )
    )
    if iteration is not None:
        run.store.update_iteration(iteration, training_cost=Cost(core_s=fit.core_s))
    run.store.log_event(
        "mlp_fit",
        f"committee {fit.version.name}: {fit.n_train} train / {fit.n_validation} held-out labels, "
        f"force MAE {fit.committee.force_eV_per_A:.3f} eV/Å, {fit.core_s:.0f} core-s",
        payload=metadata,
        iteration=iteration,
    )
    return fit


def labelling_tasks(run: CampaignRun, index: int) -> list[EvaluationTask]:
    """Calls of the first ``mlp.train_on`` oracle on the ``mlp.label_per_iteration`` candidates
    where the newest committee disagrees most (largest force spread, eV/Å) among the
    ``mlp.label_pool`` newest candidates it has no label of: active learning of the
    potential. The choice is made once and kept in the iteration's metadata with each
    candidate's spread (why it was labelled), so a resumed iteration labels the same cells;
    none before the first fit. The ranking's core-seconds are charged to the iteration."""
    settings = run.config.mlp
    if settings is None or settings.label_per_iteration == 0:
        return []
    oracle = settings.train_on[0]
    record = next(r for r in run.store.iterations() if r.index == index)
    chosen = record.metadata.get(LABELLING_KEY)
    if chosen is None:
        root = run.directory / CAMPAIGN_COMMITTEE_DIR
        version = newest_committee(root)
        if version is None:
            return []
        labelled = {
            e.candidate_hash for e in run.store.evaluations(oracle=oracle, structures=False)
        }
        pool = [c for c in run.store.candidates() if c.content_hash not in labelled]
        pool = pool[-settings.label_pool :]
        started = time.process_time()
        calculator = committee_calculator(str(root))
        assert isinstance(calculator, CommitteeCalculator)
        spreads = [(force_spread(calculator, c.structure), c.content_hash) for c in pool]
        ranking = Cost(core_s=time.process_time() - started)  # charged like training
        top = sorted(spreads, reverse=True)[: settings.label_per_iteration]
        chosen = [
            {"candidate": h, "force_spread_eV_per_A": s, "committee": version.name} for s, h in top
        ]
        run.store.update_iteration(index, metadata={LABELLING_KEY: chosen}, training_cost=ranking)
        for entry in chosen:
            run.store.log_event(
                "label_request",
                f"{oracle} labels {entry['candidate'][:12]}: committee {version.name} force "
                f"spread {entry['force_spread_eV_per_A']:.3f} eV/Å, the largest of {len(pool)}",
                payload=entry,
                iteration=index,
            )
    return [EvaluationTask(oracle, entry["candidate"]) for entry in chosen]


def force_spread(calculator: CommitteeCalculator, structure: Structure) -> float:
    """The committee's largest per-atom force spread on ``structure`` as given (eV/Å)."""
    atoms = AseAtomsAdaptor.get_atoms(structure)
    atoms.calc = calculator
    atoms.get_forces()
    return calculator.spread.force_eV_per_A
