"""The generation step: sample for every proposal, latent-optimise the best known structures, carry lattice cells onto their parent lattice, refine amorphous ones."""

from __future__ import annotations

import time
from collections.abc import Collection, Sequence
from dataclasses import asdict, replace
from typing import Literal, cast

from pymatgen.core import Structure

from amloop.acquisition.features import candidate_lattice
from amloop.acquisition.propose import Proposal
from amloop.generator.cdvae import CondCDVAE
from amloop.generator.data import DataSpec
from amloop.generator.pdm import site_shell_cutoffs
from amloop.generator.pdm_ordering import match_pdm
from amloop.generator.sample import Condition
from amloop.generator.solid_solution import snap_to_lattice
from amloop.loop.steps.refinement import refine
from amloop.loop.steps.run import CampaignRun, data_cutoff, iteration_seed
from amloop.state.config import CampaignConfig
from amloop.state.schema import Candidate, Cost


def generate(
    run: CampaignRun, index: int, proposals: Sequence[Proposal], model: CondCDVAE
) -> list[Candidate]:
    """Sample structures for every proposal and move the best known structures up the property
    head (latent-space optimisation, decoded after each of ``generator.decode_at``'s Adam
    steps, the step in each candidate's provenance as ``adam_steps``); all are stored as
    candidates of iteration ``index``, a cell made twice once."""
    started, cpu0 = time.perf_counter(), time.process_time()
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
            phase=p.lattice,  # a campaign of several lattices: the phase the decoder is told
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
        on_sites = on_lattice(run.config, candidate, model.spec, target, sweeps, proposal.lattice)
        stored.append(run.store.add_candidate(on_sites))
    stored.extend(
        run.store.add_candidate(on_lattice(run.config, candidate, model.spec, lattice=lattice))
        for candidate, lattice in _latent_candidates(run, index, model, seed)
    )
    stored = list({c.content_hash: c for c in stored}.values())  # a cell decoded twice: once
    spent = {"generate": time.perf_counter() - started}
    sampling = Cost(core_s=time.process_time() - cpu0)  # charged with the generator's training
    if run.config.generator.refine is not None:
        started = time.perf_counter()
        stored = refine(run, index, stored)
        spent["refine"] = time.perf_counter() - started
    run.store.update_iteration(
        index,
        phase="filter",
        metadata={"timings_s": {**timings(run, index), **spent}},
        training_cost=sampling,
    )
    return stored


def timings(run: CampaignRun, index: int) -> dict[str, float]:
    record = next(r for r in run.store.iterations() if r.index == index)
    return dict(record.metadata.get("timings_s", {}))


def _latent_candidates(
    run: CampaignRun, index: int, model: CondCDVAE, seed: int
) -> list[tuple[Candidate, str | None]]:
    """Latent-optimised cells with the lattice of their start (a campaign of several
    lattices; else ``None``)."""
    settings = run.config.generator
    objective = run.config.objectives[0]
    decode_at = settings.decode_at or ([settings.latent_steps] if settings.latent_steps else [])
    if not decode_at or objective.property not in model.spec.properties:
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
        decode_at=sorted(set(decode_at)),
        seed=seed,
        lr=settings.latent_lr,
    )
    lattices = run.config.cell.lattices
    start_lattice: dict[str, str | None] = {h: None for h, _ in starts}
    if len(lattices) > 1:
        for parent_hash, _ in starts:
            parent = run.store.candidate(parent_hash)
            assert parent is not None
            start_lattice[parent_hash] = candidate_lattice(parent, lattices)
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
            stored.append((candidate, start_lattice[parent_hash]))
    return stored


def snap_lattice(
    config: CampaignConfig, lattice: str | None = None
) -> Literal["fcc", "bcc", "hcp"] | None:
    """The parent lattice whose sites generated structures go onto (:func:`on_lattice`):
    ``lattice`` (a proposal's, in a campaign of several) or the campaign's; ``None`` in an
    amorphous campaign or with ``generator.snap_to_lattice`` off."""
    if config.cell.amorphous or not config.generator.snap_to_lattice:
        return None
    return cast(Literal["fcc", "bcc", "hcp"], lattice or config.cell.lattices[0])


def on_lattice(
    config: CampaignConfig,
    candidate: Candidate,
    spec: DataSpec,
    pdm_target: Sequence[float] | None = None,
    sweeps: int = 0,
    lattice: str | None = None,
) -> Candidate:
    """``candidate`` with its atoms on the parent lattice's sites (``lattice``, in a campaign
    of several)
    (:func:`generator.solid_solution.snap_to_lattice`) in a lattice campaign with
    ``generator.snap_to_lattice``; unchanged otherwise. The snap moves atoms, so their
    neighbours change: with a ``pdm_target`` and ``sweeps > 0`` the elements are exchanged
    between the sites towards it (:func:`generator.pdm_ordering.match_pdm` counting the
    lattice's first shell, :func:`generator.pdm.site_shell_cutoffs`: the convention of the
    acquisition's PDM features in such a campaign, :func:`acquisition.features.site_lattices`,
    so a target means the ordering the surrogate learnt it from; the ideal sites need no
    contact limit), the only PDM matching such a candidate gets (:func:`generate` skips the
    decoder-side one). The snap's RMS
    displacement (Å) and the PDM error on the lattice (neighbours) go into the provenance."""
    kind = snap_lattice(config, lattice)
    if kind is None:
        return candidate
    snapped, rms = snap_to_lattice(candidate.structure, kind)
    provenance = {**candidate.provenance, "snapped_to": kind, "snap_rms_A": rms}
    if pdm_target is not None and sweeps > 0:
        ordering = match_pdm(
            snapped,
            pdm_target,
            spec.elements,
            site_shell_cutoffs(snapped, kind, len(spec.elements)),
            sweeps=sweeps,
            seed=int(candidate.provenance.get("seed", 0)),
        )
        snapped = ordering.structure
        provenance["pdm_error_on_lattice"] = ordering.error_after
    return candidate.with_structure(snapped, provenance)


def best_structures(
    run: CampaignRun, n: int, *, before_iteration: int, exclude: Collection[str] = ()
) -> list[tuple[str, Structure]]:
    """``(candidate hash, relaxed structure)`` of the ``n`` best scored candidates for the first
    objective among the seed set and iterations before ``before_iteration``, the quality gate's
    rejections left out: what an iteration starts from must not depend on how far its own
    evaluations got before a crash, nor be a structure the campaign judged invalid.
    ``exclude``: content hashes passed over (e.g. cells searched from already)."""
    objective = run.config.objectives[0]
    sign = objective.sign
    rejected = run.store.gate_rejected()
    scored = [
        (sign * e.properties[objective.property].value, e)
        for e in run.store.evaluations(status="done", structures=False)
        if objective.property in e.properties and e.candidate_hash not in rejected
    ]
    scored.sort(key=lambda pair: pair[0], reverse=True)
    chosen: dict[str, Structure] = {}
    for _, evaluation in scored:
        if evaluation.candidate_hash in chosen or evaluation.candidate_hash in exclude:
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
