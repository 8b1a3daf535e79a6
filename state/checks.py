"""``amloop check``: is a campaign store whole? File integrity, foreign keys, and evaluations
left ``running`` by a process that is gone."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import text

from amloop.state.lock import owner_process_is_dead
from amloop.state.store import CampaignStore


@dataclass(frozen=True)
class Finding:
    """One check: what was checked, whether it passed, and what was seen."""

    check: str
    ok: bool
    detail: str


def check_store(store: CampaignStore) -> list[Finding]:
    """Every check of ``store``'s database and of its campaign."""
    findings = []
    with store.engine.connect() as connection:
        if store.engine.dialect.name == "sqlite":
            verdict = [row[0] for row in connection.execute(text("PRAGMA integrity_check"))]
            findings.append(Finding("file integrity", verdict == ["ok"], "; ".join(verdict)[:300]))
            broken = list(connection.execute(text("PRAGMA foreign_key_check")))
            findings.append(
                Finding(
                    "references between rows",
                    not broken,
                    f"{len(broken)} row(s) point at missing rows" if broken else "all resolve",
                )
            )
    info = store.info()
    running = store.evaluations(status="running", structures=False)
    owner = info.lock.owner if info.lock else None
    alive = owner is not None and not owner_process_is_dead(owner)
    stranded = running if not alive else []
    findings.append(
        Finding(
            "evaluations running",
            not stranded,
            f"{len(stranded)} left running by a process that is gone; `amloop resume` re-queues "
            "them"
            if stranded
            else f"{len(running)} running under {owner}"
            if running
            else "none",
        )
    )
    findings.append(
        Finding(
            "lock",
            owner is None or alive,
            "free" if owner is None else f"{owner} ({'alive' if alive else 'crashed'})",
        )
    )
    return findings
