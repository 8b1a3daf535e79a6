"""The whole report: every section in order, written as report.md and report.html."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from amloop.loop.report.data import (
    REPORT_HTML,
    REPORT_MD,
    CampaignData,
    best_candidates,
    seed_structures,
)
from amloop.loop.report.document import Section, render_html, render_markdown
from amloop.loop.report.figures import (
    best_so_far_section,
    composition_section,
    cost_section,
    failure_section,
    pareto_section,
    pdm_section,
    pdos_section,
    rdf_section,
)
from amloop.loop.report.tables import iteration_section, summary_section
from amloop.state.store import CampaignStore


def build_sections(store: CampaignStore, out_dir: Path) -> list[Section]:
    """Compute every section of the report, writing its figures into ``out_dir``."""
    campaign = CampaignData.load(store)
    best = best_candidates(campaign)
    seeds = seed_structures(campaign)
    sections: list[Section | None] = [
        summary_section(campaign, store),
        best_so_far_section(campaign, out_dir),
        pareto_section(campaign, out_dir),
        composition_section(campaign, out_dir),
        pdm_section(campaign, best, seeds, out_dir),
        rdf_section(campaign, best, seeds, out_dir),
        cost_section(campaign, out_dir),
        failure_section(campaign, out_dir),
        pdos_section(campaign, out_dir),
        iteration_section(campaign),
    ]
    return [section for section in sections if section is not None]


def write_report(store: CampaignStore, out_dir: Path) -> Path:
    """Write ``report.md``, ``report.html`` and their PNG figures into ``out_dir``.

    Returns:
        The path of ``report.md``.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    sections = build_sections(store, out_dir)
    title = f"amloop campaign report: {store.name} ({datetime.now(UTC):%Y-%m-%d %H:%M} UTC)"
    markdown = out_dir / REPORT_MD
    markdown.write_text(render_markdown(title, sections), encoding="utf-8")
    (out_dir / REPORT_HTML).write_text(render_html(title, sections), encoding="utf-8")
    return markdown
