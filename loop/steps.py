"""The steps of a campaign, free of any workflow engine (``loop.flows`` wraps them in Prefect).

One iteration runs the phases ``acquire -> generate -> filter -> evaluate -> record -> retrain
-> done``. The store is the only state: every step reads what it needs from the store and writes
its results there before it returns, and every step is idempotent, so a process killed at any
moment is resumed by running the same steps again:

- proposals are stored in the iteration's metadata the first time and re-read afterwards;
- generator checkpoints live in ``<campaign>/generator/iter-NNN`` (``model.pt`` marks a finished
  training; an interrupted one continues from its resume file);
- sampling is seeded by the campaign seed and the iteration, so regenerating after a crash gives
  the same structures, and candidates are keyed by content hash (stored once);
- an evaluation is keyed by (candidate, oracle, fidelity); finished and failed ones are never
  redone, ``running`` ones left by a dead process are re-queued (:meth:`requeue_running`).

Oracle failures are data (a ``failed`` evaluation with its reason), never exceptions.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import socket
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from pymatgen.core import Structure

from amloop.acquisition.propose import MIN_POINTS, Proposal, propose
from amloop.generator.cdvae import CondCDVAE
from amloop.generator.config import CondCDVAEConfig
from amloop.generator.data import DataSpec
from amloop.generator.pdm_ordering import match_pdm
from amloop.generator.quality_gate import QualityGate
from amloop.generator.sample import Condition
from amloop.generator.solid_solution import snap_to_lattice
from amloop.loop.budget import Budget
from amloop.loop.history import best_per_objective
from amloop.loop.seeding import ProgressCallback, SeedReport, build_seed_set, seed_plan
from amloop.oracles.base import FidelitySource, Oracle
from amloop.oracles.experiment import ExperimentOracle
from amloop.oracles.gates import energy_gate
from amloop.oracles.md import MDOracle
from amloop.oracles.registry import oracle_from_config
from amloop.state.config import CampaignConfig, ConfigError, OracleConfig
from amloop.state.files import atomic_path, sha256_file
from amloop.state.schema import Artifact, Candidate, Cost, Evaluation, IterationRecord
from amloop.state.store import CampaignStore

#: Oracles at most this expensive per call (core-s) score every seed and generated structure;
#: dearer ones run only where a proposal asks for them.
CHEAP_CORE_S = 60.0
#: Oracle name under which quality-gate verdicts are stored (fidelity 0, ``failed`` = rejected).
GATE_ORACLE = "quality_gate"
#: Seed recipes tried per wanted seed structure before the loop goes on with fewer (:func:`seed`).
SEED_ATTEMPTS = 3
#: Files marking a finished generator training in its checkpoint folder.
MODEL_FILE = "model.pt"
TRAINING_COST_FILE = "training_cost.json"
#: Folder (in the campaign's ``generator`` folder) of a fine-tuning spread over iterations, and
#: the file there that says in which iteration it started.
SPREAD_FINETUNE_DIR = "finetune"
STARTED_FILE = "started.json"
#: Iteration-metadata key of the acquisition's GP hyper-parameters (:func:`acquire`).
GP_KEY = "gp_hyperparameters"


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

    def generator_dir(self, index: int) -> Path:
        """Checkpoint folder of the generator used in iteration ``index``."""
        return self.directory / "generator" / f"iter-{index:03d}"


# ----------------------------------------------------------------------------- oracles

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


def evaluate(
    store: CampaignStore,
    config: CampaignConfig,
    oracle_cfg: OracleConfig,
    candidate_hash: str,
    iteration: int | None,
) -> Evaluation | None:
    """Run one oracle on one stored candidate and store the result (done or failed).

    Returns the stored evaluation; the finished one when it was finished before (nothing is
    redone); ``None`` when the call does not fit in the budget (nothing is stored).
    """
    existing = [
        e
        for e in store.evaluations(oracle=oracle_cfg.name, candidates=[candidate_hash])
        if e.status in ("done", "failed")
    ]
    if existing:
        return existing[0]
    reason = Budget.of(store, config).call_refused(oracle_cfg)
    if reason is not None:
        store.log_event("budget_skip", reason, iteration=iteration)
        return None
    oracle = oracle_instance(oracle_cfg)
    if not isinstance(oracle, Oracle):
        raise TypeError(f"oracle '{oracle_cfg.name}' ({oracle_cfg.type}) does not compute")
    candidate = store.candidate(candidate_hash)
    if candidate is None:
        raise LookupError(f"candidate {candidate_hash[:12]} is not in the store")
    if (
        store.claim_evaluation(candidate_hash, oracle.name, oracle.fidelity, iteration=iteration)
        is None
    ):
        return evaluate(store, config, oracle_cfg, candidate_hash, iteration)  # finished meanwhile
    result = oracle.evaluate(candidate)
    result.iteration = iteration
    result.provenance["worker"] = f"{socket.gethostname()}:{os.getpid()}"
    stored = store.record_evaluation(result)
    pdos_file = stored.provenance.get("pdos_file")
    if stored.status == "done" and pdos_file and Path(pdos_file).is_file():
        store.add_artifact(
            Artifact(
                kind="pdos",
                path=str(pdos_file),
                sha256=sha256_file(Path(pdos_file)),
                iteration=iteration,
                metadata={"candidate_hash": candidate_hash, "oracle": oracle.name},
            )
        )
    return stored


# ----------------------------------------------------------------------------- seeding


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
    chosen = [o for o in config.oracles if (o.name in names if names else is_cheap(o))]
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
    names = {oracle_config.name for oracle_config, _ in oracles}
    failed = [str(e.payload["recipe"]) for e in run.store.events(kind="seed_failed")]
    failures: list[str] = []
    size = n
    while True:
        plan = seed_plan(run.config, size, orderings=max(1, n // 8))
        report = build_seed_set(
            run.store, run.config, plan, oracles, md=md, progress=progress, skip=failed
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


# ----------------------------------------------------------------------------- iterations


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


def acquire(run: CampaignRun, index: int) -> list[Proposal]:
    """The iteration's proposals: stored ones when acquisition already ran, else new ones, from
    the evaluations up to :func:`data_cutoff` (with ``execution.overlap``, the previous
    iteration's proposals are pending).

    The GP hyper-parameters go into the iteration's metadata (``gp_hyperparameters``); the
    next iteration's acquisition starts from them (``acquisition.refit_growth``)."""
    iterations = {r.index: r for r in run.store.iterations()}
    record = iterations[index]
    if "proposals" in record.metadata:
        return [Proposal(**p) for p in record.metadata["proposals"]]
    started = time.perf_counter()
    previous = iterations.get(index - 1)
    hyperparameters = dict(previous.metadata.get(GP_KEY, {})) if previous else {}
    pending = (
        [p["composition"] for p in previous.metadata.get("proposals", [])]
        if previous is not None and run.config.execution.overlap
        else None
    )
    proposals = propose(
        run.store,
        run.config,
        q=run.config.acquisition.batch_size,
        seed=iteration_seed(run.config, index),
        pending=pending,
        hyperparameters=hyperparameters,
        through_iteration=data_cutoff(run.config, index),
    )
    run.store.update_iteration(
        index,
        phase="generate",
        metadata={
            "proposals": [asdict(p) for p in proposals],
            GP_KEY: hyperparameters,
            "timings_s": {"acquire": time.perf_counter() - started},
        },
    )
    return proposals


def training_pairs(
    store: CampaignStore, through_iteration: int | None = None
) -> list[tuple[Structure, dict[str, float]]]:
    """``(structure, properties)`` per scored candidate, oldest first (by its first scoring):
    the relaxed structure where an oracle relaxed it, with the values of every oracle that
    scored it (canonical units; a higher fidelity's value wins); evaluations of iterations
    after ``through_iteration`` left out."""
    candidates = {c.content_hash: c for c in store.candidates()}
    scored = [  # in stored order
        e
        for e in store.evaluations(status="done", through_iteration=through_iteration)
        if e.properties
    ]
    merged: dict[str, tuple[Structure, dict[str, float]]] = {}
    for evaluation in sorted(scored, key=lambda e: e.fidelity):
        structure, values = merged.get(
            evaluation.candidate_hash, (candidates[evaluation.candidate_hash].structure, {})
        )
        if evaluation.relaxed_structure is not None:
            structure = evaluation.relaxed_structure
        values.update({k: v.value for k, v in evaluation.properties.items()})
        merged[evaluation.candidate_hash] = (structure, values)
    return [merged[key] for key in dict.fromkeys(e.candidate_hash for e in scored)]


def scored_count(store: CampaignStore, through_iteration: int | None = None) -> int:
    """Scored candidates: the length of :func:`training_pairs`, without reading structures."""
    return len(
        {
            e.candidate_hash
            for e in store.evaluations(
                status="done", structures=False, through_iteration=through_iteration
            )
            if e.properties
        }
    )


def finetuning_subset(
    data: Sequence[tuple[Structure, dict[str, float]]], cap: int | None, seed: int
) -> list[tuple[Structure, dict[str, float]]]:
    """At most ``cap`` of the scored ``data`` (oldest first) for a fine-tuning: the newest
    ``cap // 2`` and a random (``seed``) choice of the older ones, so that a fine-tuning costs
    the same late in a campaign as early and still sees what the last iterations found.
    Everything when ``cap`` is ``None`` or not exceeded."""
    if cap is None or len(data) <= cap:
        return list(data)
    newest = cap // 2
    older = len(data) - newest
    chosen = np.random.default_rng(seed).choice(older, size=cap - newest, replace=False)
    return [data[int(k)] for k in sorted(chosen)] + list(data[older:])


def ensure_generator(
    run: CampaignRun, index: int, *, trained_in: int | None = None, progress: bool = False
) -> CondCDVAE:
    """The generator of iteration ``index``: loaded when trained already, else trained (for
    iteration 0 from scratch, or fine-tuned from ``generator.checkpoint`` when one is configured;
    later, fine-tuned from iteration ``index - 1``'s) on everything
    scored so far, resuming an interrupted training. The training cost is added to iteration
    ``trained_in`` (default ``index``), once.

    Later iterations keep iteration ``index - 1``'s weights (a copy, at no training cost) while
    the scored set has grown by less than ``generator.finetune_growth`` since the weights were
    last trained: fine-tuning then costs O(log n) trainings over a campaign, not one per
    iteration. With ``generator.finetune_epochs_per_iteration`` a due fine-tuning is spread over
    the following iterations (:func:`_spread_finetune`)."""
    folder = run.generator_dir(index)
    settings = run.config.generator
    previous = run.generator_dir(index - 1)
    cutoff = data_cutoff(run.config, index)
    if not (folder / MODEL_FILE).is_file() and index > 0 and (previous / MODEL_FILE).is_file():
        if settings.finetune_epochs_per_iteration is not None:
            _spread_finetune(run, index, progress)
        elif not _finetune_due(run, index):
            _keep_previous(run, index, core_s=0.0)
    if not (folder / MODEL_FILE).is_file():
        data = training_pairs(run.store, cutoff)
        if len(data) < 2:
            raise RuntimeError(
                f"the generator needs at least 2 scored structures to train on, the campaign "
                f"has {len(data)}; seed it first (amloop seed) or inject structures"
            )
        wall0, cpu0 = time.perf_counter(), time.process_time()
        pretrained = Path(settings.checkpoint) if settings.checkpoint else None
        start = previous if index > 0 and (previous / MODEL_FILE).is_file() else pretrained
        if start is not None:
            model = CondCDVAE.load(start)
            model.finetune(
                finetuning_subset(data, settings.finetune_max_structures, run.config.seed + index),
                epochs=max(settings.finetune_epochs, 1),
                checkpoint_dir=folder,
                resume=(folder / "training.pt").is_file(),
                progress=progress,
            )
        else:
            preset = CondCDVAEConfig.tiny() if settings.preset == "tiny" else CondCDVAEConfig()
            model = CondCDVAE(preset, seed=run.config.seed)
            model.fit(
                data,
                epochs=max(settings.train_epochs, 1),
                checkpoint_dir=folder,
                resume=(folder / "training.pt").is_file(),
                progress=progress,
                elements=run.config.elements,
            )
        _save_trained(model, folder, wall0, cpu0, {"n_structures": len(data)})
    registered = {a.path for a in run.store.artifacts(kind="generator_checkpoint")}
    if str(folder) not in registered:  # cost and checkpoint recorded once (kept weights: free)
        cost = json.loads((folder / TRAINING_COST_FILE).read_text())
        digest = sha256_file(folder / MODEL_FILE)
        run.store.update_iteration(
            index if trained_in is None else trained_in,
            metadata={"trained_generator": {"for_iteration": index, "sha256": digest, **cost}},
            training_cost=Cost(core_s=cost["core_s"], gpu_s=cost["gpu_s"]),
        )
        if "kept_from" not in cost:  # kept weights stay registered under the folder that trained
            run.store.add_artifact(
                Artifact(
                    kind="generator_checkpoint",
                    path=str(folder),
                    sha256=digest,
                    iteration=index,
                    metadata={"trained_on": cost["n_structures"], "preset": settings.preset},
                )
            )
    return CondCDVAE.load(folder)


def _finetune_due(run: CampaignRun, index: int) -> bool:
    """Whether the scored set (up to iteration ``index``'s data cutoff) has grown by
    ``generator.finetune_growth`` since iteration ``index - 1``'s weights were trained."""
    last = json.loads((run.generator_dir(index - 1) / TRAINING_COST_FILE).read_text())
    scored = scored_count(run.store, data_cutoff(run.config, index))
    return scored >= (1.0 + run.config.generator.finetune_growth) * last["n_structures"]


def _keep_previous(run: CampaignRun, index: int, *, core_s: float) -> None:
    """Iteration ``index`` uses iteration ``index - 1``'s weights (a copy); ``core_s`` is the
    training this iteration did meanwhile (a spread fine-tuning's epochs)."""
    previous = run.generator_dir(index - 1)
    last = json.loads((previous / TRAINING_COST_FILE).read_text())
    kept = {
        "n_structures": last["n_structures"],
        "core_s": core_s,
        "gpu_s": 0.0,
        "kept_from": index - 1,
    }
    folder = run.generator_dir(index)
    with atomic_path(folder / TRAINING_COST_FILE) as partial:
        partial.write_text(json.dumps(kept))
    CondCDVAE.load(previous).save(folder)


def _spread_finetune(run: CampaignRun, index: int, progress: bool) -> None:
    """``generator.finetune_epochs_per_iteration`` epochs of the fine-tuning in progress (one is
    started when :func:`_finetune_due`) for iteration ``index``: its weights once the last epoch
    is done, else the previous iteration's. The fine-tuning started at iteration ``k`` trains on
    ``k``'s data (seed ``seed + k``) in the resumable folder :data:`SPREAD_FINETUNE_DIR`, so its
    weights are those of the same fine-tuning done at once, only later."""
    settings = run.config.generator
    assert settings.finetune_epochs_per_iteration is not None
    pending = run.directory / "generator" / SPREAD_FINETUNE_DIR
    started = pending / STARTED_FILE
    if not started.is_file():
        if not _finetune_due(run, index):
            _keep_previous(run, index, core_s=0.0)
            return
        pending.mkdir(parents=True, exist_ok=True)
        with atomic_path(started) as partial:
            partial.write_text(json.dumps({"iteration": index}))
    begun = int(json.loads(started.read_text())["iteration"])
    data = training_pairs(run.store, data_cutoff(run.config, begun))
    epochs = max(settings.finetune_epochs, 1)
    target = min(epochs, (index - begun + 1) * settings.finetune_epochs_per_iteration)
    wall0, cpu0 = time.perf_counter(), time.process_time()
    model = CondCDVAE.load(run.generator_dir(index - 1))  # the weights it started from
    history = model.finetune(
        finetuning_subset(data, settings.finetune_max_structures, run.config.seed + begun),
        epochs=target,
        checkpoint_dir=pending,
        resume=True,
        progress=progress,
    )
    if target < epochs and not history.stopped_early:
        _keep_previous(run, index, core_s=time.process_time() - cpu0)
        return
    described = {"n_structures": len(data), "started_in": begun}
    _save_trained(model, run.generator_dir(index), wall0, cpu0, described)
    shutil.rmtree(pending)


def _save_trained(
    model: CondCDVAE, folder: Path, wall0: float, cpu0: float, described: dict[str, int]
) -> None:
    """Write a finished training to ``folder``: its cost (core-seconds since ``cpu0``, GPU
    seconds since ``wall0`` on CUDA) with ``described`` (``n_structures``: the scored set it
    counts as trained on), then the weights, last, as the mark that it finished."""
    gpu_s = (time.perf_counter() - wall0) if model.device.type == "cuda" else 0.0
    cost = {"core_s": time.process_time() - cpu0, "gpu_s": gpu_s, **described}
    with atomic_path(folder / TRAINING_COST_FILE) as partial:
        partial.write_text(json.dumps(cost))
    model.save(folder)


def generate(
    run: CampaignRun, index: int, proposals: Sequence[Proposal], model: CondCDVAE
) -> list[Candidate]:
    """Sample structures for every proposal and move the best known structures up the property
    head (latent-space optimisation); all are stored as candidates of iteration ``index``."""
    started = time.perf_counter()
    settings = run.config.generator
    seed = iteration_seed(run.config, index)
    pdm_length = len(model.pdm_labels)
    conditions = [
        Condition(
            composition=p.composition,
            pdm_target=p.pdm_target
            if p.pdm_target is not None and len(p.pdm_target) == pdm_length
            else None,
            n_atoms=run.config.cell.n_atoms,
        )
        for p in proposals
    ]
    # push apart to the gate's closest distance, so that passing structures need no change
    model.config = replace(model.config, min_distance=run.config.quality.min_distance)
    sweeps = (
        model.config.pdm_swap_sweeps
        if settings.pdm_swap_sweeps is None
        else settings.pdm_swap_sweeps
    )
    # on a lattice the snap changes every atom's neighbours: the PDM is matched once, on the sites
    model.config = replace(model.config, pdm_swap_sweeps=0 if snap_lattice(run.config) else sweeps)
    sampled = model.sample(
        conditions,
        settings.samples_per_proposal,
        seed=seed,
        steps_per_level=settings.langevin_steps,
    )
    stored = []
    for k, candidate in enumerate(sampled):
        proposal = proposals[k // settings.samples_per_proposal]
        candidate.iteration = index
        candidate.provenance = {
            "builder": "generator.sample",
            "proposal_index": k // settings.samples_per_proposal,
            "proposal": asdict(proposal),
            "seed": seed,
        }
        target = conditions[k // settings.samples_per_proposal].pdm_target
        on_sites = on_lattice(run.config, candidate, model.spec, target, sweeps)
        stored.append(run.store.add_candidate(on_sites))
    stored.extend(
        run.store.add_candidate(on_lattice(run.config, candidate, model.spec))
        for candidate in _latent_candidates(run, index, model, seed)
    )
    run.store.update_iteration(
        index,
        phase="filter",
        metadata={"timings_s": {**timings(run, index), "generate": time.perf_counter() - started}},
    )
    return stored


def timings(run: CampaignRun, index: int) -> dict[str, float]:
    record = next(r for r in run.store.iterations() if r.index == index)
    return dict(record.metadata.get("timings_s", {}))


def _latent_candidates(
    run: CampaignRun, index: int, model: CondCDVAE, seed: int
) -> list[Candidate]:
    settings = run.config.generator
    objective = run.config.objectives[0]
    if settings.latent_steps == 0 or objective.property not in model.spec.properties:
        return []
    starts = best_structures(
        run, run.config.acquisition.batch_size, before_iteration=data_cutoff(run.config, index) + 1
    )
    if not starts:
        return []
    result = model.optimize_latent(
        [structure for _, structure in starts],
        property_name=objective.property,
        goal=objective.direction,
        decode_at=[settings.latent_steps],
        seed=seed,
        lr=settings.latent_lr,
    )
    stored = []
    for step, candidates in result.candidates.items():
        for candidate, (parent_hash, _) in zip(candidates, starts, strict=True):
            candidate.iteration = index
            candidate.parent_hash = parent_hash
            candidate.provenance = {
                "builder": "generator.optimize_latent",
                "property": objective.property,
                "goal": objective.direction,
                "adam_steps": step,
                "seed": seed,
            }
            stored.append(candidate)
    return stored


def snap_lattice(config: CampaignConfig) -> Literal["fcc", "bcc", "hcp"] | None:
    """The parent lattice whose sites generated structures go onto (:func:`on_lattice`), or
    ``None`` (an amorphous campaign, or ``generator.snap_to_lattice`` off)."""
    kind = config.cell.lattice
    return None if kind == "amorphous" or not config.generator.snap_to_lattice else kind


def on_lattice(
    config: CampaignConfig,
    candidate: Candidate,
    spec: DataSpec,
    pdm_target: Sequence[float] | None = None,
    sweeps: int = 0,
) -> Candidate:
    """``candidate`` with its atoms on the parent lattice's sites
    (:func:`generator.solid_solution.snap_to_lattice`) in a lattice campaign with
    ``generator.snap_to_lattice``; unchanged otherwise. The snap moves atoms, so their
    neighbours change: with a ``pdm_target`` and ``sweeps > 0`` the elements are exchanged
    between the sites towards it (:func:`generator.pdm_ordering.match_pdm` with the generator's
    cutoffs ``spec.pdm_cutoffs``; the ideal sites need no contact limit), the only PDM matching
    such a candidate gets (:func:`generate` skips the decoder-side one). The snap's RMS
    displacement (Å) and the PDM error on the lattice (neighbours) go into the provenance."""
    kind = snap_lattice(config)
    if kind is None:
        return candidate
    snapped, rms = snap_to_lattice(candidate.structure, kind)
    provenance = {**candidate.provenance, "snapped_to": kind, "snap_rms_A": rms}
    if pdm_target is not None and sweeps > 0:
        ordering = match_pdm(
            snapped,
            pdm_target,
            spec.elements,
            np.array(spec.pdm_cutoffs),
            sweeps=sweeps,
            seed=int(candidate.provenance.get("seed", 0)),
        )
        snapped = ordering.structure
        provenance["pdm_error_on_lattice"] = ordering.error_after
    fields = candidate.model_dump(exclude={"structure", "content_hash", "composition"})
    fields["provenance"] = provenance
    return Candidate(structure=snapped, **fields)


def best_structures(
    run: CampaignRun, n: int, *, before_iteration: int
) -> list[tuple[str, Structure]]:
    """``(candidate hash, relaxed structure)`` of the ``n`` best scored candidates for the first
    objective among the seed set and iterations before ``before_iteration``: what an iteration
    starts from must not depend on how far its own evaluations got before a crash."""
    objective = run.config.objectives[0]
    sign = objective.sign
    scored = [
        (sign * e.properties[objective.property].value, e)
        for e in run.store.evaluations(status="done", structures=False)
        if objective.property in e.properties
    ]
    scored.sort(key=lambda pair: pair[0], reverse=True)
    chosen: dict[str, Structure] = {}
    for _, evaluation in scored:
        if evaluation.candidate_hash in chosen:
            continue
        candidate = run.store.candidate(evaluation.candidate_hash)
        assert candidate is not None
        if candidate.iteration is not None and candidate.iteration >= before_iteration:
            continue
        stored = run.store.evaluations(
            oracle=evaluation.oracle, status="done", candidates=[evaluation.candidate_hash]
        )[0]
        chosen[evaluation.candidate_hash] = stored.relaxed_structure or candidate.structure
        if len(chosen) == n:
            break
    return list(chosen.items())


# ----------------------------------------------------------------------------- gates


def gate(run: CampaignRun, index: int, candidates: Sequence[Candidate]) -> list[Candidate]:
    """Apply the quality gate to the iteration's candidates; returns the survivors.

    Each verdict is stored once as a ``quality_gate`` evaluation (``failed`` with the reason when
    rejected). The structural checks of :class:`generator.quality_gate.QualityGate` (push-apart,
    closest pair, RDF and motif distances to the seed set) come first; then, with
    ``quality.energy_oracle`` set, that oracle scores the structure and
    seed 001's energy rule applies: relaxed energy per atom at most the seed set's highest plus
    ``max_energy_above_reference`` (and the unrelaxed energy at most 10 eV above it, per cell).
    """
    verdicts: dict[str, str] = {
        e.candidate_hash: e.status
        for e in run.store.evaluations(
            oracle=GATE_ORACLE, candidates=[c.content_hash for c in candidates], structures=False
        )
    }
    pending = [c for c in candidates if c.content_hash not in verdicts]
    if pending:
        structural = QualityGate.from_reference(
            run.config.quality, [s for _, s in seed_structures(run)], elements=run.config.elements
        )
        reference = seed_energy_max(run)
        for candidate in pending:
            verdicts[candidate.content_hash] = _gate_one(
                run, index, candidate, structural, reference
            )
    survivors = [c for c in candidates if verdicts.get(c.content_hash) == "done"]
    run.store.update_iteration(
        index,
        phase="evaluate",
        metadata={"gate": {"candidates": len(candidates), "passed": len(survivors)}},
    )
    return survivors


def seed_energy_max(run: CampaignRun) -> float | None:
    """Highest relaxed energy per atom (eV/atom) of the seed structures under the gate's energy
    oracle, or ``None`` when there is no energy gate or no such value yet."""
    name = run.config.quality.energy_oracle
    if name is None or run.config.quality.max_energy_above_reference is None:
        return None
    seeds = [c.content_hash for c in run.store.candidates(origin="seed")]
    energies = [
        e.properties["energy_per_atom"].value
        for e in run.store.evaluations(
            oracle=name, status="done", candidates=seeds, structures=False
        )
        if "energy_per_atom" in e.properties
    ]
    return max(energies) if energies else None


def seed_structures(run: CampaignRun) -> list[tuple[str, Structure]]:
    """``(candidate hash, structure)`` of the seed set, relaxed where an oracle relaxed it."""
    seeds = run.store.candidates(origin="seed")
    relaxed = {
        e.candidate_hash: e.relaxed_structure
        for e in run.store.evaluations(status="done", candidates=[c.content_hash for c in seeds])
        if e.relaxed_structure is not None
    }
    return [(c.content_hash, relaxed.get(c.content_hash) or c.structure) for c in seeds]


def _gate_one(
    run: CampaignRun,
    index: int,
    candidate: Candidate,
    structural: QualityGate,
    reference: float | None,
) -> str:
    quality = run.config.quality
    cpu0 = time.process_time()
    verdict = structural.check(candidate.structure)
    reason = verdict.reason
    metrics: dict[str, Any] = dict(verdict.metrics)
    gate_cost = Cost(core_s=time.process_time() - cpu0)  # the energy oracle's call is its own
    if reason is None and reference is not None and quality.energy_oracle is not None:
        evaluation = evaluate(
            run.store,
            run.config,
            oracle_config(run.config, quality.energy_oracle),
            candidate.content_hash,
            index,
        )
        if evaluation is None:
            return "skipped"  # out of budget: decided on a later run
        if evaluation.status != "done" or "energy_per_atom" not in evaluation.properties:
            reason = f"energy oracle {quality.energy_oracle} failed: {evaluation.error}"
        else:
            relaxed = evaluation.properties["energy_per_atom"].value
            raw = float(evaluation.provenance.get("raw_energy_per_atom_eV", relaxed))
            threshold = reference + (quality.max_energy_above_reference or 0.0)
            kept, why = energy_gate(
                relaxed,
                raw,
                training_max_energy_per_atom=threshold,
                natoms=len(candidate.structure),
            )
            metrics |= {"energy_per_atom_eV": relaxed, "threshold_eV_per_atom": threshold}
            reason = None if kept else why
    run.store.record_evaluation(
        Evaluation(
            candidate_hash=candidate.content_hash,
            oracle=GATE_ORACLE,
            fidelity=0.0,
            status="failed" if reason else "done",
            error=reason,
            cost=gate_cost,
            provenance=metrics,
            iteration=index,
            attempts=1,
        )
    )
    return "failed" if reason else "done"


# ----------------------------------------------------------------------------- evaluation plan


@dataclass(frozen=True)
class EvaluationTask:
    """One oracle call the iteration wants: which oracle on which candidate."""

    oracle: str
    candidate_hash: str


def cheap_tasks(run: CampaignRun, survivors: Sequence[Candidate]) -> list[EvaluationTask]:
    """Every cheap oracle (except the gate's energy oracle, which ran already) on every
    survivor."""
    return [
        EvaluationTask(o.name, c.content_hash)
        for c in survivors
        for o in run.config.oracles
        if is_cheap(o) and o.name != run.config.quality.energy_oracle
    ]


def expensive_tasks(
    run: CampaignRun, index: int, proposals: Sequence[Proposal], survivors: Sequence[Candidate]
) -> list[EvaluationTask]:
    """The dear oracles the proposals chose, each on its proposal's best survivor (by the
    first objective among the cheap results); experiment choices become lab requests. A dear
    oracle that alone measures an objective still short of data runs for every proposal."""
    objective = run.config.objectives[0]
    sign = objective.sign
    values: dict[str, float] = {}
    for evaluation in run.store.evaluations(iteration=index, status="done"):
        if objective.property in evaluation.properties:
            values[evaluation.candidate_hash] = (
                sign * evaluation.properties[objective.property].value
            )
    tasks = []
    starving = _starving_oracles(run)
    for k, proposal in enumerate(proposals):
        for name in [*starving, proposal.oracle]:
            if name is not None:
                tasks.extend(_proposal_task(run, index, k, proposal, name, survivors, values))
    return list(dict.fromkeys(tasks))


def _starving_oracles(run: CampaignRun) -> list[str]:
    """Dear oracles that alone measure an objective with fewer values than the surrogate needs;
    without this, the acquisition (which chooses by value per cost among fitted models) would
    never call them."""
    names = []
    for objective in run.config.objectives:
        if objective.oracle is None or is_cheap(oracle_config(run.config, objective.oracle)):
            continue
        if oracle_config(run.config, objective.oracle).type == ExperimentOracle.type_name:
            continue
        count = sum(
            objective.property in e.properties
            for e in run.store.evaluations(oracle=objective.oracle, status="done", structures=False)
        )
        if count < MIN_POINTS:
            names.append(objective.oracle)
    return names


def _proposal_task(
    run: CampaignRun,
    index: int,
    k: int,
    proposal: Proposal,
    name: str,
    survivors: Sequence[Candidate],
    values: dict[str, float],
) -> list[EvaluationTask]:
    chosen = oracle_config(run.config, name)
    if is_cheap(chosen):
        return []
    if chosen.type == ExperimentOracle.type_name:
        request_lab(run, index, proposal)
        return []
    own = [c for c in survivors if c.provenance.get("proposal_index") == k]
    if not own:
        return []
    best = max(own, key=lambda c: values.get(c.content_hash, -math.inf))
    return [EvaluationTask(chosen.name, best.content_hash)]


def request_lab(run: CampaignRun, index: int, proposal: Proposal) -> None:
    """File a lab request for a proposal (once per iteration and composition)."""
    lab = oracle_instance(oracle_config(run.config, proposal.oracle or ""))
    assert isinstance(lab, ExperimentOracle)
    for request in run.store.lab_requests():
        if request.iteration == index and _same(request.composition, proposal.composition):
            return
    run.store.add_lab_request(
        lab.request(
            proposal.composition,
            reason=proposal.reason,
            decision={"score": proposal.score, "mean": proposal.mean, "sigma": proposal.sigma},
            iteration=index,
        )
    )


def _same(a: dict[str, float], b: dict[str, float], tolerance: float = 1e-6) -> bool:
    return all(abs(a.get(el, 0.0) - b.get(el, 0.0)) <= tolerance for el in {*a, *b})


# ----------------------------------------------------------------------------- an iteration's oracle calls

#: Runs evaluation tasks (here, or fanned out by the flow); returns the count per status.
TaskRunner = Callable[[list[EvaluationTask]], dict[str, int]]


def evaluate_here(run: CampaignRun, index: int) -> TaskRunner:
    """A :data:`TaskRunner` that calls the oracles one after another in this process."""

    def run_tasks(tasks: list[EvaluationTask]) -> dict[str, int]:
        evaluations = (
            evaluate(
                run.store, run.config, oracle_config(run.config, t.oracle), t.candidate_hash, index
            )
            for t in tasks
        )
        return dict(Counter("skipped" if e is None else e.status for e in evaluations))

    return run_tasks


def evaluate_iteration(
    run: CampaignRun, index: int, candidate_hashes: Sequence[str], run_tasks: TaskRunner
) -> str:
    """The oracle half of iteration ``index``: gate its candidates (the energy gate's oracle call
    scores a structure), run the cheap oracles on the survivors and the dear ones its proposals
    chose (through ``run_tasks``), and record the best values; returns a log line. Every step
    is idempotent, so a resumed iteration redoes nothing finished."""
    started = time.perf_counter()
    candidates = [c for h in candidate_hashes if (c := run.store.candidate(h)) is not None]
    survivors = gate(run, index, candidates)
    cheap = run_tasks(cheap_tasks(run, survivors))
    dear = run_tasks(expensive_tasks(run, index, acquire(run, index), candidates))
    best = record(run, index, {"evaluate": time.perf_counter() - started})
    return (
        f"iteration {index}: {len(survivors)} of {len(candidates)} candidates passed the gate; "
        f"cheap {cheap}, expensive {dear}; best {best}"
    )


def evaluate_and_finish(
    run: CampaignRun, index: int, candidate_hashes: Sequence[str]
) -> tuple[str, float]:
    """The oracle half of iteration ``index`` in this process, one call after another
    (:func:`evaluate_iteration`), then the iteration is done: what a worker runs beside the
    loop with ``execution.overlap``. Returns the log line and the half's wall time (s)."""
    started = time.perf_counter()
    line = evaluate_iteration(run, index, candidate_hashes, evaluate_here(run, index))
    elapsed = time.perf_counter() - started
    finish_iteration(run, index, {})
    return line, elapsed


def finish_iteration(run: CampaignRun, index: int, timings_s: dict[str, float]) -> None:
    """Mark iteration ``index`` done, adding ``timings_s`` to its phase timings."""
    run.store.update_iteration(
        index, phase="done", metadata={"timings_s": {**timings(run, index), **timings_s}}
    )


# ----------------------------------------------------------------------------- record and stop


def record(run: CampaignRun, index: int, phase_seconds: dict[str, float]) -> dict[str, float]:
    """Store the best value per objective after iteration ``index``; returns it."""
    best = {b.property: b.value for b in best_per_objective(run.store, run.config)}
    counts: dict[str, int] = {}
    for evaluation in run.store.evaluations(iteration=index):
        counts[evaluation.status] = counts.get(evaluation.status, 0) + 1
    run.store.update_iteration(
        index,
        phase="retrain",
        metadata={
            "best": best,
            "evaluations": counts,
            "timings_s": {**timings(run, index), **phase_seconds},
        },
    )
    return best


def stop_reason(run: CampaignRun, max_iterations: int | None) -> str | None:
    """Why the campaign should not start another iteration, or ``None``."""
    computing = [o for o in run.config.oracles if o.type != ExperimentOracle.type_name]
    cheap = [o for o in computing if is_cheap(o)] or computing
    budget = Budget.of(run.store, run.config)
    reasons = [budget.call_refused(o) for o in cheap]
    if cheap and all(reasons):
        return f"budget spent: {reasons[0]}"
    done = [r for r in run.store.iterations() if r.phase == "done"]
    if max_iterations is not None and len(done) >= max_iterations:
        return f"{len(done)} iteration(s) done (limit {max_iterations})"
    patience = run.config.acquisition.patience
    if len(done) > patience:
        history = [r.metadata.get("best", {}) for r in done]
        if not any(
            _improved(run.config, history[-patience - 1], later) for later in history[-patience:]
        ):
            return f"no improvement in the last {patience} iteration(s) (acquisition.patience)"
    return None


def _improved(config: CampaignConfig, before: dict[str, float], after: dict[str, float]) -> bool:
    for objective in config.objectives:
        old, new = before.get(objective.property), after.get(objective.property)
        if new is None:
            continue
        if old is None:
            return True
        sign = objective.sign
        if sign * (new - old) > 1e-9 * max(abs(old), 1.0):
            return True
    return False


def set_torch_threads(n: int | None = None) -> None:
    """Use ``n`` torch threads (default: 1 per process; oracles run their own threads)."""
    torch.set_num_threads(n or 1)


__all__ = [
    "CHEAP_CORE_S",
    "GATE_ORACLE",
    "CampaignRun",
    "EvaluationTask",
    "TaskRunner",
    "acquire",
    "best_structures",
    "cheap_tasks",
    "current_iteration",
    "data_cutoff",
    "ensure_generator",
    "evaluate",
    "evaluate_and_finish",
    "evaluate_here",
    "evaluate_iteration",
    "expensive_tasks",
    "finish_iteration",
    "gate",
    "generate",
    "is_cheap",
    "oracle_config",
    "oracle_instance",
    "record",
    "seed",
    "seed_sources",
    "stop_reason",
    "timings",
    "training_pairs",
]
