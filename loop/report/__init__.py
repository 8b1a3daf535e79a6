"""The campaign report behind ``amloop report``: ``report.md`` and ``report.html`` with PNG figures.

Everything comes from the store: the summary (budget, evaluations per oracle, best value per
objective), the best value so far against the compute spent, the Pareto front (two or more
objectives), a composition map, the PDM and partial RDFs of the best structures against the seed
set, the compute per oracle, failures grouped by reason (quality-gate rejections included), the
PDOS of every DFT calculation and what each iteration proposed and why.

A section without data says so in one line (a campaign that only holds injected measurements
still gets a report). Figures are drawn with matplotlib's object API on the Agg canvas (no
pyplot state); the HTML embeds them, the Markdown links them.

Modules:

- :mod:`amloop.loop.report.data`: What the report shows, read once from the store: every scored point with its values by fidelity, best-so-far curves, the Pareto front, failures, proposals.
- :mod:`amloop.loop.report.document`: The report as a document: sections of text, tables and plots, rendered as Markdown and as self-contained HTML.
- :mod:`amloop.loop.report.figures`: The report's figures (matplotlib, PNG): best so far against compute, Pareto front, composition map, PDM heatmap, RDFs, cost per oracle, PDOS.
- :mod:`amloop.loop.report.tables`: The report's tables: summary, failures by reason, iterations and their proposals.
- :mod:`amloop.loop.report.build`: The whole report: every section in order, written as report.md and report.html.
"""

from amloop.loop.report.build import build_sections, write_report
from amloop.loop.report.data import (
    EXPERIMENT_RANK,
    MAX_PDOS_PLOTS,
    MAX_REASON_CHARS,
    MAX_REFERENCE_STRUCTURES,
    RDF_BIN_WIDTH,
    RDF_R_MAX,
    REPORT_HTML,
    REPORT_MD,
    TOP_STRUCTURES,
    BestCurve,
    best_so_far,
    failure_reason,
    pareto_front,
)
from amloop.loop.report.document import Block, Plot, Section, Table, render_html, render_markdown

__all__ = [
    "EXPERIMENT_RANK",
    "MAX_PDOS_PLOTS",
    "MAX_REASON_CHARS",
    "MAX_REFERENCE_STRUCTURES",
    "RDF_BIN_WIDTH",
    "RDF_R_MAX",
    "REPORT_HTML",
    "REPORT_MD",
    "TOP_STRUCTURES",
    "BestCurve",
    "Block",
    "Plot",
    "Section",
    "Table",
    "best_so_far",
    "build_sections",
    "failure_reason",
    "pareto_front",
    "render_html",
    "render_markdown",
    "write_report",
]
