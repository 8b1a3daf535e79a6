"""The report as a document: sections of text, tables and plots, rendered as Markdown and as self-contained HTML."""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Table:
    """A table: header cells and rows of already formatted cells."""

    header: list[str]
    rows: list[list[str]]


@dataclass(frozen=True)
class Plot:
    """A PNG in the output folder with its caption."""

    file: Path
    caption: str


Block = str | Table | Plot


@dataclass(frozen=True)
class Section:
    """One report section: a title and its paragraphs, tables and figures in order."""

    title: str
    blocks: list[Block]


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown(title: str, sections: Sequence[Section]) -> str:
    """The report as Markdown; figures are linked by file name (relative to the report)."""
    lines = [f"# {title}", ""]
    for section in sections:
        lines += [f"## {section.title}", ""]
        for block in section.blocks:
            if isinstance(block, Table):
                lines.append("| " + " | ".join(_md_cell(h) for h in block.header) + " |")
                lines.append("|" + "---|" * len(block.header))
                lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in block.rows]
            elif isinstance(block, Plot):
                lines.append(f"![{block.file.stem}]({block.file.name})")
                lines += ["", f"*{block.caption}*"]
            else:
                lines.append(block)
            lines.append("")
    return "\n".join(lines)


_CSS = (
    "body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}"
    "table{border-collapse:collapse;margin:0.5em 0 1em;font-size:0.9em}"
    "th,td{border:1px solid #ccc;padding:3px 7px;text-align:left;vertical-align:top}"
    "th{background:#f0f0f0}figure{margin:1em 0}img{max-width:100%}"
    "figcaption{font-size:0.9em;color:#555}"
)


def render_html(title: str, sections: Sequence[Section]) -> str:
    """The report as one self-contained HTML page (figures embedded as base64 PNG)."""
    out = [
        "<!DOCTYPE html>",
        f'<html><head><meta charset="utf-8"><title>{html.escape(title)}</title>',
        f"<style>{_CSS}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
    ]
    for section in sections:
        out.append(f"<h2>{html.escape(section.title)}</h2>")
        for block in section.blocks:
            if isinstance(block, Table):
                out.append("<table><tr>")
                out += [f"<th>{html.escape(h)}</th>" for h in block.header]
                out.append("</tr>")
                for row in block.rows:
                    out.append(
                        "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>"
                    )
                out.append("</table>")
            elif isinstance(block, Plot):
                data = base64.b64encode(block.file.read_bytes()).decode("ascii")
                caption = html.escape(block.caption)
                out.append(
                    f'<figure><img src="data:image/png;base64,{data}" alt="{caption}">'
                    f"<figcaption>{caption}</figcaption></figure>"
                )
            else:
                out.append(f"<p>{html.escape(block)}</p>")
    out.append("</body></html>")
    return "\n".join(out)
