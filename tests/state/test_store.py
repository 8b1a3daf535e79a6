"""Round-trips and invariants of the campaign store, on SQLite and on a real PostgreSQL server."""

from __future__ import annotations

import time

import numpy as np
import pytest
from pymatgen.core import Lattice, Structure
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError
from store_helpers import FIDELITY, ORACLE, done_evaluation, pair_structure

from amloop.state.database import current_revision, head_revision
from amloop.state.models import MeasurementRow
from amloop.state.schema import (
    Artifact,
    Candidate,
    Cost,
    Evaluation,
    ForceLabel,
    Measurement,
)
from amloop.state.store import CampaignExists, CampaignNotFound, CampaignStore, LockHeld

CONFIG = {"name": "test", "elements": ["Cr", "Fe", "Ni"]}


@pytest.fixture
def store(db_url: str) -> CampaignStore:
    return CampaignStore.create(db_url, "test", CONFIG)


def nifecr_cell() -> Structure:
    """A 4-atom FCC cell with magnetic moments and a per-site tag."""
    return Structure(
        Lattice.from_parameters(3.57, 3.59, 3.61, 90.0, 90.5, 89.7),
        ["Ni", "Fe", "Cr", "Ni"],
        [[0.0, 0.0, 0.0], [0.5, 0.5, 0.0], [0.5, 0.0, 0.5], [0.0, 0.5, 0.5 + 1e-9]],
        site_properties={"magmom": [0.6, 2.2, -1.1, 0.61], "tag": [1, 2, 3, 4]},
    )


def assert_same_structure(a: Structure, b: Structure) -> None:
    assert [site.species_string for site in a] == [site.species_string for site in b]
    assert np.array_equal(a.lattice.matrix, b.lattice.matrix)
    assert np.array_equal(a.frac_coords, b.frac_coords)
    assert a.site_properties == b.site_properties


def count(store: CampaignStore, table: str) -> int:
    with store.transaction() as session:
        return int(session.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())


# ------------------------------------------------------------------ campaigns and schema
def test_schema_is_at_alembic_head_after_create(store: CampaignStore) -> None:
    assert current_revision(store.engine) == head_revision()


def test_campaign_exists_and_not_found(db_url: str, store: CampaignStore) -> None:
    with pytest.raises(CampaignExists, match="campaign 'test' already exists"):
        CampaignStore.create(db_url, "test", CONFIG)
    with pytest.raises(CampaignNotFound, match="no campaign 'other'"):
        CampaignStore.open(db_url, "other")
    CampaignStore.create(db_url, "other", {})
    assert CampaignStore.campaign_names(db_url) == ["test", "other"]
    reopened = CampaignStore.open(db_url, "test")
    assert reopened.campaign_id == store.campaign_id
    info = reopened.info()
    assert (info.name, info.config, info.status, info.lock) == ("test", CONFIG, "created", None)
    store.set_status("running")
    assert reopened.info().status == "running"
    store.set_config(CONFIG | {"seed": 7})
    assert reopened.info().config == CONFIG | {"seed": 7}
    assert [e.kind for e in store.events()] == ["created", "status", "config"]


# ------------------------------------------------------------------ candidates
def test_candidate_round_trips_exactly(store: CampaignStore) -> None:
    structure = nifecr_cell()
    candidate = Candidate(
        structure=structure,
        origin="latent_opt",
        pdm_target=[0.1, 0.25, 0.5],
        iteration=3,
        generator_checkpoint="a" * 64,
        parent_hash="b" * 64,
    )
    stored = store.add_candidate(candidate)
    assert stored.id is not None and stored.created_at is not None
    assert stored.created_at.tzinfo is not None
    loaded = store.candidate(candidate.content_hash)
    assert loaded is not None
    assert_same_structure(loaded.structure, structure)
    assert loaded.content_hash == candidate.content_hash
    assert loaded.composition == pytest.approx({"Cr": 0.25, "Fe": 0.25, "Ni": 0.5})
    assert loaded.formula == "Cr0.25Fe0.25Ni0.5"
    assert (loaded.origin, loaded.pdm_target, loaded.iteration) == (
        "latent_opt",
        [0.1, 0.25, 0.5],
        3,
    )
    assert (loaded.generator_checkpoint, loaded.parent_hash) == ("a" * 64, "b" * 64)
    assert store.candidate("0" * 64) is None
    assert [c.content_hash for c in store.candidates(iteration=3)] == [candidate.content_hash]
    assert store.candidates(iteration=4) == []


def test_add_candidate_is_idempotent_by_content_hash(store: CampaignStore) -> None:
    structure = nifecr_cell()
    first = store.add_candidate(Candidate(structure=structure, origin="generated", iteration=0))
    # The same structure with its sites in another order and one atom shifted by a lattice
    # vector: the same content, so the same row (the first one stored wins).
    shuffled = Structure.from_sites([structure[3], structure[1], structure[0], structure[2]])
    shuffled.translate_sites([0], [1.0, 0.0, -1.0], frac_coords=True, to_unit_cell=False)
    again = store.add_candidate(Candidate(structure=shuffled, origin="local_search", iteration=5))
    assert again.content_hash == first.content_hash
    assert again.id == first.id
    assert (again.origin, again.iteration) == ("generated", 0)
    assert_same_structure(again.structure, structure)
    assert count(store, "candidates") == 1
    assert len(store.candidates()) == 1


# ------------------------------------------------------------------ evaluations
def test_evaluation_lifecycle(store: CampaignStore) -> None:
    candidate = store.add_candidate(Candidate(structure=pair_structure(0, 0), origin="seed"))
    key = (candidate.content_hash, ORACLE, FIDELITY)

    claimed = store.claim_evaluation(*key, iteration=1)
    assert claimed is not None
    assert (claimed.status, claimed.attempts, claimed.iteration) == ("running", 1, 1)
    assert claimed.started_at is not None
    claimed = store.claim_evaluation(*key)
    assert claimed is not None and claimed.attempts == 2

    relaxed = pair_structure(0, 1)
    done = store.record_evaluation(
        done_evaluation(
            candidate.content_hash,
            160.5,
            relaxed_structure=relaxed,
            provenance={"code": "toy", "version": 1},
            iteration=1,
        )
    )
    assert done.status == "done"
    assert done.attempts == 2  # max(stored, given): the claims counted
    stored = store.evaluations()
    assert len(stored) == 1
    (evaluation,) = stored
    assert evaluation.properties["bulk_modulus"].value == 160.5
    assert evaluation.properties["bulk_modulus"].unit == "GPa"
    assert evaluation.properties["bulk_modulus"].uncertainty == 0.5
    assert evaluation.cost == Cost(core_s=2.0, gpu_s=0.0)
    assert evaluation.provenance == {"code": "toy", "version": 1}
    assert evaluation.relaxed_structure is not None
    assert_same_structure(evaluation.relaxed_structure, relaxed)

    # A finished result is never overwritten by a failed, pending or running one ...
    for status in ("failed", "pending", "running"):
        kept = store.record_evaluation(
            Evaluation(
                candidate_hash=candidate.content_hash,
                oracle=ORACLE,
                fidelity=FIDELITY,
                status=status,
                error="late duplicate",
            )
        )
        assert kept.status == "done"
        assert kept.properties["bulk_modulus"].value == 160.5
    # ... and claiming it again says there is nothing to do.
    assert store.claim_evaluation(*key) is None
    (evaluation,) = store.evaluations()
    assert (evaluation.status, evaluation.attempts, evaluation.error) == ("done", 2, None)
    assert store.events(kind="evaluation_failed") == []
    # Another oracle or fidelity is another evaluation.
    store.record_evaluation(
        done_evaluation(candidate.content_hash, 150.0).model_copy(update={"fidelity": 0.9})
    )
    assert len(store.evaluations()) == 2
    assert count(store, "evaluations") == 2


def test_failed_evaluation_is_stored_and_logged(store: CampaignStore) -> None:
    candidate = store.add_candidate(Candidate(structure=pair_structure(0, 0), origin="seed"))
    store.claim_evaluation(candidate.content_hash, ORACLE, FIDELITY)
    failed = store.record_evaluation(
        Evaluation(
            candidate_hash=candidate.content_hash,
            oracle=ORACLE,
            fidelity=FIDELITY,
            status="failed",
            error="LAMMPS: lost atoms",
            traceback="Traceback (most recent call last): ...",
            cost=Cost(core_s=30.0),
            iteration=2,
        )
    )
    assert (failed.status, failed.error, failed.attempts) == ("failed", "LAMMPS: lost atoms", 1)
    (stored,) = store.evaluations(status="failed")
    assert stored.traceback == "Traceback (most recent call last): ..."
    (event,) = store.events(kind="evaluation_failed")
    assert "LAMMPS: lost atoms" in event.message
    assert candidate.content_hash[:12] in event.message
    assert event.iteration == 2
    assert store.evaluation_counts() == {ORACLE: 1}
    # A failed evaluation may be retried and then succeed.
    assert store.claim_evaluation(candidate.content_hash, ORACLE, FIDELITY) is not None
    store.record_evaluation(done_evaluation(candidate.content_hash, 1.0))
    (stored,) = store.evaluations()
    assert (stored.status, stored.attempts) == ("done", 2)


def test_evaluation_of_unknown_candidate_is_refused(store: CampaignStore) -> None:
    with pytest.raises(LookupError, match="add it with add_candidate"):
        store.record_evaluation(done_evaluation("f" * 64, 1.0))
    with pytest.raises(LookupError):
        store.claim_evaluation("f" * 64, ORACLE, FIDELITY)
    assert count(store, "evaluations") == 0


def test_requeue_running_and_filters(store: CampaignStore) -> None:
    hashes = [
        store.add_candidate(Candidate(structure=pair_structure(0, k), origin="seed")).content_hash
        for k in range(3)
    ]
    for h in hashes:
        store.claim_evaluation(h, ORACLE, FIDELITY, iteration=0)
    store.record_evaluation(done_evaluation(hashes[0], 1.0, iteration=0))
    assert len(store.evaluations(status="running")) == 2
    assert store.requeue_running() == 2
    assert store.requeue_running() == 0
    assert [e.status for e in store.evaluations()] == ["done", "pending", "pending"]
    assert [e.candidate_hash for e in store.evaluations(status="pending")] == hashes[1:]
    assert len(store.evaluations(iteration=0, oracle=ORACLE)) == 3
    assert store.evaluations(oracle="other") == []
    (event,) = store.events(kind="requeued")
    assert "2 interrupted" in event.message
    assert store.evaluation_counts() == {ORACLE: 1}


def test_filters_by_candidate_and_origin_and_listing_without_structures(
    store: CampaignStore,
) -> None:
    origins = ["seed", "generated", "seed"]
    hashes = [
        store.add_candidate(Candidate(structure=pair_structure(1, k), origin=o)).content_hash
        for k, o in enumerate(origins)
    ]
    relaxed = pair_structure(2, 0)
    for k, h in enumerate(hashes):
        store.record_evaluation(done_evaluation(h, 100.0 + k, relaxed_structure=relaxed))
    assert [c.content_hash for c in store.candidates(origin="seed")] == [hashes[0], hashes[2]]
    assert store.candidates(origin="injected") == []
    chosen = store.evaluations(candidates=[hashes[2], hashes[1]])
    assert [e.candidate_hash for e in chosen] == hashes[1:]  # oldest first, not in the asked order
    assert store.evaluations(candidates=[]) == []
    assert_same_structure(chosen[0].relaxed_structure, relaxed)
    bare = store.evaluations(structures=False)
    assert [e.relaxed_structure for e in bare] == [None] * 3
    assert [e.properties["bulk_modulus"].value for e in bare] == [100.0, 101.0, 102.0]


# ------------------------------------------------------------------ measurements
def measurement(value: float, **extra: object) -> Measurement:
    return Measurement(
        composition={"Fe": 0.3, "Ni": 0.7},
        property="bulk_modulus",
        value=value,
        unit="GPa",
        uncertainty=2.0,
        raw_value=value * 1000,
        raw_unit="MPa",
        source="doi:10.0/test",
        source_file="measurements.csv",
        source_file_sha256="c" * 64,
        **extra,  # type: ignore[arg-type]
    )


def test_measurements_round_trip(store: CampaignStore) -> None:
    structure = nifecr_cell()
    stored = store.add_measurements(
        [measurement(180.0, source_row=2), measurement(181.0, source_row=3, structure=structure)]
    )
    assert [m.id is not None for m in stored] == [True, True]
    first, second = store.measurements(prop="bulk_modulus")
    assert (first.value, first.unit, first.raw_value, first.raw_unit) == (
        180.0,
        "GPa",
        180000.0,
        "MPa",
    )
    assert (first.source, first.source_row, first.uncertainty) == ("doi:10.0/test", 2, 2.0)
    assert first.composition == {"Fe": 0.3, "Ni": 0.7}
    assert first.structure is None and first.candidate_hash is None
    assert second.structure is not None
    assert_same_structure(second.structure, structure)
    # A measured structure is also stored as an injected candidate.
    injected = store.candidate(second.candidate_hash or "")
    assert injected is not None and injected.origin == "injected"
    assert store.measurements(prop="shear_modulus") == []
    (event,) = store.events(kind="measurements_injected")
    assert "2 measurement(s) from measurements.csv" in event.message


def test_measurement_batch_is_all_or_nothing(store: CampaignStore) -> None:
    store.add_measurements([measurement(1.0, source_row=1)])
    # The first row of the batch carries a structure (so an injected candidate is written too);
    # the database itself rejects the last row (an integer column cannot hold 2**70).
    batch = [
        measurement(2.0, source_row=2, structure=nifecr_cell()),
        measurement(3.0, source_row=3),
        measurement(4.0, source_row=2**70),
    ]
    with pytest.raises((DBAPIError, OverflowError)):
        store.add_measurements(batch)
    assert [m.value for m in store.measurements()] == [1.0]
    assert store.candidates() == []
    assert len(store.events(kind="measurements_injected")) == 1
    # The store is usable afterwards.
    store.add_measurements(batch[:2])
    assert [m.value for m in store.measurements()] == [1.0, 2.0, 3.0]


def test_transaction_rolls_back_everything_on_exception(store: CampaignStore) -> None:
    store.add_candidate(Candidate(structure=pair_structure(0, 0), origin="seed"))
    with pytest.raises(RuntimeError, match="boom"), store.transaction() as session:
        session.add(
            MeasurementRow(
                campaign_id=store.campaign_id,
                formula="Ni1",
                composition={"Ni": 1.0},
                property="bulk_modulus",
                value=1.0,
                unit="GPa",
                raw_value=1.0,
                raw_unit="GPa",
                source="x",
            )
        )
        session.flush()
        session.execute(text("DELETE FROM candidates"))
        assert session.scalar(select(func.count()).select_from(MeasurementRow)) == 1
        raise RuntimeError("boom")
    assert store.measurements() == []
    assert len(store.candidates()) == 1


# ------------------------------------------------------------------ iterations and budget
def test_iterations_and_spent(store: CampaignStore) -> None:
    assert store.next_iteration_index() == 0
    started = store.start_iteration(0, {"proposals": 4})
    assert (started.index, started.phase, started.metadata) == (0, "acquire", {"proposals": 4})
    again = store.start_iteration(0, {"ignored": True})  # resume: the stored one comes back
    assert again.metadata == {"proposals": 4}
    assert again.started_at == started.started_at
    assert len(store.events(kind="iteration_started")) == 1
    assert store.next_iteration_index() == 1

    store.update_iteration(0, phase="evaluate", metadata={"acq_value": 0.25})
    store.update_iteration(0, training_cost=Cost(core_s=100.0, gpu_s=10.0))
    updated = store.update_iteration(0, training_cost=Cost(core_s=50.0, gpu_s=5.0), phase="done")
    assert updated.phase == "done"
    assert updated.metadata == {"proposals": 4, "acq_value": 0.25}
    assert updated.training_cost == Cost(core_s=150.0, gpu_s=15.0)
    assert updated.finished_at is not None
    with pytest.raises(LookupError, match="never started"):
        store.update_iteration(7, phase="done")

    store.start_iteration(1)
    store.update_iteration(1, training_cost=Cost(core_s=1.0, gpu_s=0.5))
    assert [it.index for it in store.iterations()] == [0, 1]
    assert [it.phase for it in store.iterations()] == ["done", "acquire"]

    for k in range(3):
        h = store.add_candidate(
            Candidate(structure=pair_structure(0, k), origin="seed")
        ).content_hash
        store.record_evaluation(
            done_evaluation(h, 1.0).model_copy(update={"cost": Cost(core_s=10.0, gpu_s=2.0)})
        )
    assert store.spent() == Cost(core_s=151.0 + 30.0, gpu_s=15.5 + 6.0)


def test_spent_is_zero_for_a_new_campaign(store: CampaignStore) -> None:
    assert store.spent() == Cost()


# ------------------------------------------------------------------ artifacts
def test_artifacts_are_idempotent_by_sha256(store: CampaignStore) -> None:
    first = store.add_artifact(
        Artifact(
            kind="generator",
            path="models/gen-0",
            sha256="d" * 64,
            iteration=0,
            metadata={"epochs": 5},
        )
    )
    again = store.add_artifact(Artifact(kind="generator", path="elsewhere/gen-0", sha256="d" * 64))
    assert again.id == first.id
    assert (again.path, again.iteration, again.metadata) == ("models/gen-0", 0, {"epochs": 5})
    store.add_artifact(Artifact(kind="plot", path="pareto.png", sha256="e" * 64))
    assert [a.sha256 for a in store.artifacts(kind="generator")] == ["d" * 64]
    assert len(store.artifacts()) == 2
    assert count(store, "artifacts") == 2


# ------------------------------------------------------------------ lock
def test_campaign_lock(db_url: str, store: CampaignStore) -> None:
    other = CampaignStore.open(db_url, "test")
    lock = store.acquire_lock("loop-a", stale_after_s=60)
    assert lock.owner == "loop-a"
    info = other.info().lock
    assert info is not None and info.owner == "loop-a"
    assert store.acquire_lock("loop-a", stale_after_s=60).owner == "loop-a"  # re-entrant

    with pytest.raises(LockHeld, match=r"being run by PID .* on loop-a"):
        other.acquire_lock("loop-b", stale_after_s=60)
    store.heartbeat("loop-a")

    time.sleep(0.3)  # no heartbeat for 0.3 s: stale for a 0.2 s limit
    taken = other.acquire_lock("loop-b", stale_after_s=0.2)
    assert taken.owner == "loop-b"
    (event,) = store.events(kind="lock_taken_over")
    assert "loop-a" in event.message and "loop-b" in event.message
    with pytest.raises(LockHeld, match="no longer held by loop-a"):
        store.heartbeat("loop-a")

    store.release_lock("loop-a")  # not the holder: no-op
    assert other.info().lock is not None
    other.heartbeat("loop-b")
    other.release_lock("loop-b")
    assert store.info().lock is None
    assert store.acquire_lock("loop-a", stale_after_s=60).owner == "loop-a"


def test_a_call_whose_process_dies_every_time_is_failed_after_max_attempts(
    store: CampaignStore,
) -> None:
    candidate = store.add_candidate(Candidate(structure=nifecr_cell(), origin="seed"))
    for attempt in range(3):  # started, then its process was killed: re-queued on resume
        claimed = store.claim_evaluation(candidate.content_hash, ORACLE, FIDELITY, max_attempts=3)
        assert (
            claimed is not None and claimed.status == "running" and claimed.attempts == attempt + 1
        )
        assert store.requeue_running() == 1
    final = store.claim_evaluation(candidate.content_hash, ORACLE, FIDELITY, max_attempts=3)
    assert final is not None and final.status == "failed"
    assert "started 3 times and its process died each time" in (final.error or "")
    assert store.requeue_running() == 0
    assert store.events(kind="attempts_exhausted")


def test_a_reused_pid_does_not_keep_a_dead_holders_lock(store: CampaignStore) -> None:
    """The owner id carries the process's start time: the same PID started at another time is
    another process, so the lock is taken over at once (not after the stale timeout)."""
    import os
    import socket

    impostor = f"{socket.gethostname()}:{os.getpid()}:12345.00:deadbeef"
    store.acquire_lock(impostor, stale_after_s=3600)
    taken = store.acquire_lock("host-b:1:1.0:cafe", stale_after_s=3600)
    assert taken.owner == "host-b:1:1.0:cafe"
    assert store.events(kind="lock_taken_over")


def force_label(structure: Structure, energy: float) -> ForceLabel:
    n_atoms = len(structure)
    return ForceLabel(
        structure=structure,
        energy_eV=energy,
        forces_eV_per_A=[[0.1 * i, -0.2, 0.3] for i in range(n_atoms)],
        stress_GPa=[1.0, 2.0, 3.0, 0.1, 0.2, 0.3],
    )


def test_force_labels_are_kept_with_their_evaluation_once(store: CampaignStore) -> None:
    candidate = store.add_candidate(Candidate(structure=pair_structure(0, 0), origin="seed"))
    labels = [force_label(candidate.structure, -10.0), force_label(pair_structure(0, 1), -9.5)]
    finished = done_evaluation(candidate.content_hash, 160.5).model_copy(update={"labels": labels})
    store.record_evaluation(finished)
    store.record_evaluation(finished)  # a retried write replaces, never doubles
    stored = store.labels()
    assert [label.energy_eV for label in stored] == [-10.0, -9.5]
    assert stored[0].oracle == ORACLE and stored[0].candidate_hash == candidate.content_hash
    assert stored[0].forces_eV_per_A[1] == [0.1, -0.2, 0.3]
    assert stored[0].stress_GPa == [1.0, 2.0, 3.0, 0.1, 0.2, 0.3]
    assert_same_structure(stored[1].structure, pair_structure(0, 1))
    assert store.label_count(oracles=[ORACLE]) == 2 and store.label_count(oracles=["dft"]) == 0
    assert count(store, "labels") == 2


def test_force_label_shapes_are_checked() -> None:
    structure = pair_structure(0, 0)
    with pytest.raises(ValueError, match="one row per atom"):
        ForceLabel(structure=structure, energy_eV=0.0, forces_eV_per_A=[[0.0, 0.0, 0.0]])
    with pytest.raises(ValueError, match="Voigt"):
        ForceLabel(
            structure=structure, energy_eV=0.0, forces_eV_per_A=[[0.0] * 3] * 2, stress_GPa=[1.0]
        )


def test_snapshots_of_a_call_become_candidates_of_its_iteration_once(store: CampaignStore) -> None:
    """An MD call's frames, handed out for labelling, are stored with the call as
    ``md_snapshot`` candidates (parent: the simulated cell; the call's iteration); recording
    the call again adds nothing; a failed call hands out nothing."""
    parent = store.add_candidate(Candidate(structure=pair_structure(1, 1), origin="generated"))
    frames = [
        Candidate(structure=pair_structure(2, j), origin="md_snapshot", provenance={"frame": j})
        for j in range(3)
    ]
    evaluation = done_evaluation(parent.content_hash, 1.0, iteration=4, snapshots=frames)
    store.record_evaluation(evaluation)
    store.record_evaluation(evaluation)
    stored = store.candidates(origin="md_snapshot")
    assert [c.content_hash for c in stored] == [f.content_hash for f in frames]
    assert {(c.parent_hash, c.iteration) for c in stored} == {(parent.content_hash, 4)}
    other = store.add_candidate(Candidate(structure=pair_structure(1, 2), origin="generated"))
    failed = Evaluation(
        candidate_hash=other.content_hash,
        oracle=ORACLE,
        fidelity=FIDELITY,
        status="failed",
        error="blew up",
        snapshots=[Candidate(structure=pair_structure(3, 0), origin="md_snapshot")],
    )
    store.record_evaluation(failed)
    assert len(store.candidates(origin="md_snapshot")) == 3
