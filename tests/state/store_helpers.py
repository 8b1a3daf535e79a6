"""Helpers for the store tests: tiny real structures and writer processes.

Importable by name (``import store_helpers``) from the tests in this folder, so that
``multiprocessing`` with the ``spawn`` context can find the worker functions, and runnable as a
script (``python store_helpers.py crash|loop ...``) for the writers the crash tests SIGKILL.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from pymatgen.core import Lattice, Structure

from amloop.state.schema import Candidate, Cost, Evaluation, PropertyValue
from amloop.state.store import CampaignStore

ORACLE = "toy"
FIDELITY = 0.5


def pair_structure(i: int, j: int) -> Structure:
    """A 2-atom cubic NiFe cell whose Fe position encodes ``(i, j)`` (distinct content hashes
    for ``0 <= i < 100``, ``0 <= j < 1000``)."""
    fe = [0.1 + 0.008 * i, 0.1 + 0.0008 * j, 0.5]
    return Structure(Lattice.cubic(2.87), ["Ni", "Fe"], [[0.0, 0.0, 0.0], fe])


def done_evaluation(candidate_hash: str, value: float, **extra: Any) -> Evaluation:
    """A finished evaluation of the toy oracle with one property and a cost."""
    return Evaluation(
        candidate_hash=candidate_hash,
        oracle=ORACLE,
        fidelity=FIDELITY,
        status="done",
        properties={"bulk_modulus": PropertyValue(value=value, unit="GPa", uncertainty=0.5)},
        cost=Cost(core_s=2.0, gpu_s=0.0),
        attempts=1,
        **extra,
    )


def record(store: CampaignStore, structure: Structure, value: float) -> str:
    """Add a candidate and record its finished evaluation: two transactions."""
    candidate = store.add_candidate(Candidate(structure=structure, origin="generated"))
    store.record_evaluation(done_evaluation(candidate.content_hash, value))
    return candidate.content_hash


# ------------------------------------------------------------------ concurrency (spawned)
SHARED_TAG = 99  # ``i`` of the shared structures; workers use 0..n_workers-1


def concurrent_writer(url: str, name: str, worker: int, n_own: int, n_shared: int, barrier: Any):
    """Record ``n_own`` own evaluations and, interleaved, the ``n_shared`` ones every worker
    records (racing on the unique constraints)."""
    store = CampaignStore.open(url, name)
    barrier.wait(timeout=120)
    every = max(1, n_own // max(1, n_shared))
    shared = iter(range(n_shared))
    for k in range(n_own):
        record(store, pair_structure(worker, k), value=1000.0 * worker + k)
        if k % every == 0:
            j = next(shared, None)
            if j is not None:
                record(store, pair_structure(SHARED_TAG, j), value=float(j))
    for j in shared:
        record(store, pair_structure(SHARED_TAG, j), value=float(j))


def create_campaign(url: str, name: str, barrier: Any) -> None:
    """Create campaign ``name``: the first open of a fresh database migrates its schema."""
    barrier.wait(timeout=120)
    CampaignStore.create(url, name, {})


# ------------------------------------------------------------------ crash writers (scripts)
def _marker(path: str, **payload: Any) -> None:
    tmp = Path(path + ".tmp")
    tmp.write_text(json.dumps({"pid": os.getpid(), **payload}))
    tmp.replace(path)


def crash_writer(url: str, name: str, marker: str, n_committed: int, n_uncommitted: int) -> None:
    """Commit ``n_committed`` evaluations, then hold one big open transaction (until killed)
    that inserts ``n_uncommitted`` measurements and candidates and clobbers every evaluation."""
    from sqlalchemy import text, update

    from amloop.state.models import CandidateRow, EvaluationRow, MeasurementRow, utcnow
    from amloop.state.structures import structure_to_json

    store = CampaignStore.open(url, name)
    for k in range(n_committed):
        record(store, pair_structure(0, k), value=float(k))
    big = structure_to_json(pair_structure(1, 0) * (4, 4, 4))  # ~40 kB: spills SQLite's cache
    with store.transaction() as session:
        backend_pid = None
        if store.engine.dialect.name == "postgresql":
            backend_pid = session.execute(text("SELECT pg_backend_pid()")).scalar_one()
        session.execute(update(EvaluationRow).values(status="failed", properties={}))
        for k in range(n_uncommitted):
            session.add(
                MeasurementRow(
                    campaign_id=store.campaign_id,
                    formula="Fe0.5Ni0.5",
                    composition={"Fe": 0.5, "Ni": 0.5},
                    property="bulk_modulus",
                    value=float(k),
                    unit="GPa",
                    raw_value=float(k),
                    raw_unit="GPa",
                    source="uncommitted",
                    structure=big,
                )
            )
            session.add(
                CandidateRow(
                    campaign_id=store.campaign_id,
                    content_hash=f"uncommitted-{k}",
                    formula="Fe0.5Ni0.5",
                    composition={"Fe": 0.5, "Ni": 0.5},
                    structure=big,
                    n_atoms=128,
                    origin="generated",
                    created_at=utcnow(),
                )
            )
        session.flush()
        _marker(marker, backend_pid=backend_pid)
        time.sleep(600)


def loop_writer(url: str, name: str, marker: str) -> None:
    """Claim, evaluate and record candidates forever (every 7th fails); marker after the first."""
    store = CampaignStore.open(url, name)
    k = 0
    while True:
        structure = pair_structure(k // 1000, k % 1000)
        candidate = store.add_candidate(Candidate(structure=structure, origin="generated"))
        store.claim_evaluation(candidate.content_hash, ORACLE, FIDELITY)
        if k % 7 == 6:
            evaluation = Evaluation(
                candidate_hash=candidate.content_hash,
                oracle=ORACLE,
                fidelity=FIDELITY,
                status="failed",
                error="toy oracle failed",
                traceback="Traceback: toy",
                cost=Cost(core_s=1.0),
            )
        else:
            evaluation = done_evaluation(candidate.content_hash, float(k))
        store.record_evaluation(evaluation)
        if k == 0:
            _marker(marker)
        k += 1


if __name__ == "__main__":
    mode, *args = sys.argv[1:]
    if mode == "crash":
        crash_writer(args[0], args[1], args[2], int(args[3]), int(args[4]))
    elif mode == "loop":
        loop_writer(args[0], args[1], args[2])
    else:
        raise SystemExit(f"unknown mode {mode!r}: use crash or loop")
