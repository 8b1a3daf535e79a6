"""The option tables of docs/guide.md §4, rendered from each oracle type's options model
(:class:`amloop.oracles.base.OracleOptions`): ``python -m amloop.oracles.options
docs/guide.md`` rewrites them, and a test fails when the guide and the models disagree.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from pydantic_core import PydanticUndefined

from amloop.oracles.base import OracleOptions

#: Marks the generated table of an oracle type in the guide: ``<!-- options: lammps -->``.
TABLE_START = "<!-- options: {type_name} -->"
TABLE_END = "<!-- /options -->"


def _default_text(name: str, model: type[OracleOptions]) -> str:
    field = model.model_fields[name]
    extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
    if "default" in extra:
        return str(extra["default"])
    if field.default is PydanticUndefined and field.default_factory is None:
        return "— (required)"
    value = field.get_default(call_default_factory=True)
    if value is None:
        return "—"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, tuple | list):
        return "`" + ",".join(f"{v:g}" if isinstance(v, float) else str(v) for v in value) + "`"
    return f"`{value:g}`" if isinstance(value, float) else f"`{value}`"


def options_table(model: type[OracleOptions]) -> str:
    """The Markdown table of ``model``'s options: option, default, meaning (with units)."""
    rows = [
        f"| `{name}` | {_default_text(name, model)} | {field.description or ''} |"
        for name, field in model.model_fields.items()
    ]
    return "\n".join(["| option | default | meaning |", "| --- | --- | --- |", *rows])


def replace_tables(text: str, tables: dict[str, str]) -> str:
    """``text`` with the block between each oracle type's markers replaced by its table.

    Raises:
        ValueError: a type's markers are missing.
    """
    for type_name, table in tables.items():
        start = TABLE_START.format(type_name=type_name)
        pattern = re.compile(re.escape(start) + r"\n.*?" + re.escape(TABLE_END), re.S)
        if not pattern.search(text):
            raise ValueError(f"no '{start}' ... '{TABLE_END}' block in the guide")
        text = pattern.sub(f"{start}\n{table}\n{TABLE_END}".replace("\\", "\\\\"), text)
    return text


def guide_tables() -> dict[str, str]:
    """The option table of every installed oracle type, by type name."""
    from amloop.oracles.registry import oracle_class, oracle_types

    tables = {}
    for type_name in oracle_types():
        options = getattr(oracle_class(type_name), "Options", None)
        if options is not None:
            tables[type_name] = options_table(options)
    return tables


if __name__ == "__main__":  # python -m amloop.oracles.options docs/guide.md
    guide = Path(sys.argv[1])
    guide.write_text(replace_tables(guide.read_text(), guide_tables()))
