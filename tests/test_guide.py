"""Every error message the code raises to a user has its entry in the user guide's
troubleshooting section (docs/guide.md, section 10)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("acquisition", "generator", "loop", "oracles", "state")
#: Errors that reach a user (CLI messages, failed-evaluation reasons); ValueError & co. are
#: programming errors of callers of the Python API.
USER_ERRORS = {
    "CampaignExists",
    "CheckpointError",
    "CampaignLookupError",
    "CampaignNotFound",
    "CompositionError",
    "ConfigError",
    "DatabaseError",
    "InjectError",
    "LammpsFailed",
    "LockHeld",
    "OracleFailed",
    "OracleSetupError",
    "PushApartError",
    "StructureFileError",
    "UnitError",
}


def _normalised(text: str) -> str:
    return " ".join(re.sub(r"[`*]", " ", text).split())


def _fragments(message: ast.expr) -> list[str]:
    """The literal pieces of a message (an f-string's text between its fields)."""
    if isinstance(message, ast.Constant) and isinstance(message.value, str):
        pieces = [message.value]
    elif isinstance(message, ast.JoinedStr):
        pieces = [v.value for v in message.values if isinstance(v, ast.Constant)]
    else:
        pieces = []
    return [_normalised(p).strip(" :;,.'\"(") for p in pieces]


def user_messages() -> list[tuple[str, list[str]]]:
    """``(file:line, literal fragments)`` of every ``raise UserError("...")`` in the code."""
    found = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                if not (isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call)):
                    continue
                func = node.exc.func
                name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
                if name in USER_ERRORS and node.exc.args:
                    fragments = [f for f in _fragments(node.exc.args[0]) if len(f) >= 8]
                    if fragments:
                        found.append((f"{path.relative_to(ROOT)}:{node.lineno}", fragments))
    return found


def covered(fragments: list[str], guide: str) -> bool:
    """A message is covered when the first three words of one of its literal pieces (a whole
    piece of fewer words) appear in the guide."""
    return any(" ".join(f.split()[:3]).rstrip(",;:.(") in guide for f in fragments)


def test_every_user_facing_error_message_is_in_the_troubleshooting_guide() -> None:
    text = (ROOT / "docs" / "guide.md").read_text()
    troubleshooting = _normalised(text[text.index("## 10 Troubleshooting") :])
    messages = user_messages()
    assert len(messages) > 100  # the scan finds the raises
    missing = [where for where, fragments in messages if not covered(fragments, troubleshooting)]
    assert not missing, f"error messages without a guide entry: {missing}"


def test_the_option_tables_are_those_of_the_option_models() -> None:
    """docs/guide.md §4 shows each oracle type's options as its pydantic model defines them
    (regenerate with ``python -m amloop.oracles.options docs/guide.md``)."""
    from amloop.oracles.options import guide_tables, replace_tables

    text = (ROOT / "docs" / "guide.md").read_text()
    shipped = {"lammps", "md", "mlp", "dft", "experiment"}
    tables = guide_tables()
    assert shipped <= set(tables)
    # plugin types another test installed in this process (benchmarks.scale's remote_job) are
    # not the guide's
    tables = {name: table for name, table in tables.items() if name in shipped}
    assert replace_tables(text, tables) == text, (
        "the guide's option tables differ from the option models: run "
        "`python -m amloop.oracles.options docs/guide.md`"
    )
