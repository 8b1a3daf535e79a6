"""Oracle options: one pydantic model per oracle type, written once.

The model is the YAML's ``options:`` (and ``amloop evaluate --set KEY=VALUE``): it validates
them (unknown names, types, ranges) with one-line errors, holds their defaults, gives the
oracle's provenance its parameters, and renders the option tables of docs/guide.md §4
(:func:`options_table`; ``python -m amloop.oracles.options docs/guide.md`` rewrites them, and a
test fails when the guide and the models disagree).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic_core import PydanticUndefined

from amloop.oracles.base import OracleSetupError

OptionsT = TypeVar("OptionsT", bound="OracleOptions")

#: Marks the generated table of an oracle type in the guide: ``<!-- options: lammps -->``.
TABLE_START = "<!-- options: {type_name} -->"
TABLE_END = "<!-- /options -->"


class OracleOptions(BaseModel):
    """Base of an oracle type's options: unknown names are errors, values are frozen.

    Each field's ``description`` is the guide's "meaning" column (with units); a field whose
    default is not a plain value documents it in ``json_schema_extra={"default": "..."}``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)

    @classmethod
    def parse(cls: type[OptionsT], type_name: str, options: dict[str, Any]) -> OptionsT:
        """The options of oracle type ``type_name``, validated.

        Raises:
            OracleSetupError: ``bad options for oracle 'TYPE': NAME: problem; ...`` (one line).
        """
        try:
            return cls(**options)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(part) for part in error['loc']) or 'options'}: "
                + (
                    "unknown option"
                    if error["type"] == "extra_forbidden"
                    else error["msg"].removeprefix("Value error, ")
                )
                for error in exc.errors()
            )
            raise OracleSetupError(f"bad options for oracle '{type_name}': {problems}") from None

    def parameters(self, *, exclude: set[str] | None = None) -> dict[str, Any]:
        """The options as plain JSON values, for the provenance of every result."""
        return self.model_dump(mode="json", exclude=exclude)


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
