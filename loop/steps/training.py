"""The generator's training policy: train at iteration 0, fine-tune on what was scored (at once or spread over iterations), checkpoints and their cost."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pymatgen.core import Structure

from amloop.generator.cdvae import CondCDVAE
from amloop.generator.config import CondCDVAEConfig
from amloop.generator.train import RESUME_FILE
from amloop.loop.prior import prior_cost_core_s
from amloop.loop.steps.run import CampaignRun, data_cutoff
from amloop.state.files import atomic_path, sha256_file
from amloop.state.schema import Artifact, Cost
from amloop.state.store import CampaignStore

#: Files marking a finished generator training in its checkpoint folder.
MODEL_FILE = "model.pt"


TRAINING_COST_FILE = "training_cost.json"


#: Folder (in the campaign's ``generator`` folder) of a fine-tuning spread over iterations, and
#: the file there that says in which iteration it started.
SPREAD_FINETUNE_DIR = "finetune"


STARTED_FILE = "started.json"


def training_pairs(
    store: CampaignStore, through_iteration: int | None = None
) -> list[tuple[Structure, dict[str, float]]]:
    """``(structure, properties)`` per scored candidate, oldest candidate first (not by when
    its calls finished, which on a cluster varies from run to run):
    the relaxed structure where an oracle relaxed it, with the values of every oracle that
    scored it (canonical units; a higher fidelity's value wins); evaluations of iterations
    after ``through_iteration``, and candidates the quality gate rejected, left out."""
    candidates = {c.content_hash: c for c in store.candidates()}
    rejected = store.gate_rejected()
    scored = [  # in stored order
        e
        for e in store.evaluations(status="done", through_iteration=through_iteration)
        if e.properties and e.candidate_hash not in rejected
    ]
    merged: dict[str, tuple[Structure, dict[str, float]]] = {}
    for evaluation in sorted(scored, key=lambda e: (e.fidelity, e.oracle)):
        structure, values = merged.get(
            evaluation.candidate_hash, (candidates[evaluation.candidate_hash].structure, {})
        )
        if evaluation.relaxed_structure is not None:
            structure = evaluation.relaxed_structure
        values.update({k: v.value for k, v in evaluation.properties.items()})
        merged[evaluation.candidate_hash] = (structure, values)
    return [merged[key] for key in candidates if key in merged]


def scored_count(store: CampaignStore, through_iteration: int | None = None) -> int:
    """Scored candidates: the length of :func:`training_pairs`, without reading structures."""
    rejected = store.gate_rejected()
    return len(
        {
            e.candidate_hash
            for e in store.evaluations(
                status="done", structures=False, through_iteration=through_iteration
            )
            if e.properties and e.candidate_hash not in rejected
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
    iteration 0 from scratch, or fine-tuned from ``generator.prior`` when one is configured;
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
        pretrained = Path(settings.prior) if settings.prior else None
        start = previous if index > 0 and (previous / MODEL_FILE).is_file() else pretrained
        if start is not None:
            model = CondCDVAE.load(start)
            model.finetune(
                finetuning_subset(data, settings.finetune_max_structures, run.config.seed + index),
                epochs=max(settings.finetune_epochs, 1),
                checkpoint_dir=folder,
                resume=(folder / RESUME_FILE).is_file(),
                progress=progress,
            )
        else:
            model = CondCDVAE(CondCDVAEConfig.preset(settings.preset), seed=run.config.seed)
            model.fit(
                data,
                epochs=max(settings.train_epochs, 1),
                checkpoint_dir=folder,
                resume=(folder / RESUME_FILE).is_file(),
                progress=progress,
                elements=run.config.elements,
            )
        described: dict[str, float] = {"n_structures": len(data)}
        if start is not None and start == pretrained:  # the campaign's share of the prior
            described["prior_core_s"] = prior_cost_core_s(start)
            described["prior_share_core_s"] = described["prior_core_s"] / settings.prior_campaigns
        _save_trained(model, folder, wall0, cpu0, described)
    registered = {a.path for a in run.store.artifacts(kind="generator_checkpoint")}
    if str(folder) not in registered:  # cost and checkpoint recorded once (kept weights: free)
        cost = json.loads((folder / TRAINING_COST_FILE).read_text())
        digest = sha256_file(folder / MODEL_FILE)
        metadata: dict[str, Any] = {
            "trained_generator": {"for_iteration": index, "sha256": digest, **cost}
        }
        if "prior_core_s" in cost:  # kept apart: a later training's record replaces the above
            metadata["generator_prior"] = {
                "path": settings.prior,
                "core_s": cost["prior_core_s"],
                "share_core_s": cost["prior_share_core_s"],
                "campaigns": settings.prior_campaigns,
            }
        run.store.update_iteration(
            index if trained_in is None else trained_in,
            metadata=metadata,
            training_cost=Cost(
                core_s=cost["core_s"] + cost.get("prior_share_core_s", 0.0), gpu_s=cost["gpu_s"]
            ),
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
    described: dict[str, float] = {"n_structures": len(data), "started_in": begun}
    _save_trained(model, run.generator_dir(index), wall0, cpu0, described)
    shutil.rmtree(pending)


def _save_trained(
    model: CondCDVAE, folder: Path, wall0: float, cpu0: float, described: dict[str, float]
) -> None:
    """Write a finished training to ``folder``: its cost (core-seconds since ``cpu0``, GPU
    seconds since ``wall0`` on CUDA) with ``described`` (``n_structures``: the scored set it
    counts as trained on; ``prior_core_s`` and the campaign's ``prior_share_core_s`` of a prior
    it started from), then the weights, last, as the mark that it finished."""
    gpu_s = (time.perf_counter() - wall0) if model.device.type == "cuda" else 0.0
    cost = {"core_s": time.process_time() - cpu0, "gpu_s": gpu_s, **described}
    with atomic_path(folder / TRAINING_COST_FILE) as partial:
        partial.write_text(json.dumps(cost))
    model.save(folder)
