"""Four processes write into one campaign at once: nothing lost, nothing duplicated."""

from __future__ import annotations

import multiprocessing

import pytest
from sqlalchemy import text
from store_helpers import ORACLE, SHARED_TAG, concurrent_writer, create_campaign, pair_structure

from amloop.state.database import current_revision, dispose_engines, get_engine, head_revision
from amloop.state.store import CampaignStore
from amloop.state.structures import content_hash

N_WORKERS = 4
N_OWN = 200
N_SHARED = 20


def run_all(processes: list[multiprocessing.process.BaseProcess], timeout: float) -> None:
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=timeout)
    for process in processes:
        if process.is_alive():
            process.kill()
    assert [process.exitcode for process in processes] == [0] * len(processes)


def scalar(store: CampaignStore, sql: str) -> int:
    with store.transaction() as session:
        return int(session.execute(text(sql)).scalar_one())


@pytest.mark.timeout(180)
def test_four_processes_record_evaluations(db_url: str) -> None:
    store = CampaignStore.create(db_url, "race", {})
    dispose_engines()  # no pooled connection may cross into the children
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(N_WORKERS)
    workers = [
        context.Process(
            target=concurrent_writer, args=(db_url, "race", w, N_OWN, N_SHARED, barrier)
        )
        for w in range(N_WORKERS)
    ]
    run_all(workers, timeout=150)

    by_hash = {e.candidate_hash: e for e in store.evaluations()}
    own = {content_hash(pair_structure(w, k)) for w in range(N_WORKERS) for k in range(N_OWN)}
    shared = {content_hash(pair_structure(SHARED_TAG, j)) for j in range(N_SHARED)}
    assert len(own) == N_WORKERS * N_OWN and not own & shared
    assert own <= set(by_hash)
    assert shared <= set(by_hash)
    assert set(by_hash) == own | shared
    assert all(e.status == "done" and e.oracle == ORACLE for e in by_hash.values())
    assert by_hash[content_hash(pair_structure(3, 199))].properties["bulk_modulus"].value == 3199.0

    n_total = N_WORKERS * N_OWN + N_SHARED
    assert scalar(store, "SELECT count(*) FROM evaluations") == n_total
    assert (
        scalar(
            store,
            "SELECT count(*) FROM (SELECT DISTINCT candidate_id, oracle, fidelity FROM evaluations) k",
        )
        == n_total
    )
    assert scalar(store, "SELECT count(*) FROM candidates") == n_total
    assert scalar(store, "SELECT count(DISTINCT content_hash) FROM candidates") == n_total
    assert len(store.candidates()) == n_total


@pytest.mark.timeout(120)
def test_concurrent_first_opens_migrate_once(db_url: str) -> None:
    """Four processes create campaigns in one fresh database at once: the schema is created
    once and every campaign is there."""
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(N_WORKERS)
    run_all(
        [
            context.Process(target=create_campaign, args=(db_url, f"c{w}", barrier))
            for w in range(N_WORKERS)
        ],
        timeout=90,
    )
    assert current_revision(get_engine(db_url)) == head_revision()
    assert sorted(CampaignStore.campaign_names(db_url)) == [f"c{w}" for w in range(N_WORKERS)]
