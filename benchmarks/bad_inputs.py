"""The bad-input matrix: every input a user gives ``amloop`` (campaign YAML, measurements CSV,
structure files, generator checkpoints, command-line arguments, campaign names), each with its
malformed and hostile cases, tried on the real command line in a fresh process.

Every case must be *rejected cleanly*: a non-zero exit, one message line (or typer's usage
box for a malformed argument), no traceback, nothing executed from the input, no campaign
created, and every table of the existing campaign's store with its row count unchanged (the
audit log may gain only ``*_rejected`` events: a rejection is recorded). Prints the table
"inputs tried / rejected cleanly / tracebacks / unsafe" and one row per case.

Usage: ``python -m benchmarks.bad_inputs [--only SUBSTRING]``; results in
``benchmarks/results/bad-inputs.md`` (``tests/test_bad_inputs.py`` runs the same matrix).
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import re
import sqlite3
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results" / "bad-inputs.md"
AMLOOP = [sys.executable, "-m", "amloop"]
CAMPAIGN = "nifecr"  # examples/nifecr.yaml, with tests/data/measurements.csv injected
#: Seconds a case may take: more means the input made the command hang (a defect).
CASE_TIMEOUT_S = 120
#: What a hostile input would leave behind if anything in it ran.
PWNED = "pwned"
ZEN = "Beautiful is better than ugly"  # printed by `import this`

CSV_HEADER = "composition,property,value,unit,uncertainty,source"
GOOD_ROW = "Ni0.5Fe0.3Cr0.2,bulk_modulus,178.0,GPa,4.0,lab A"


@dataclass(frozen=True)
class Case:
    """One bad input: the files written into the case's folder, then ``amloop ARGS`` run
    there; ``{dir}`` in arguments and text files is replaced by that folder."""

    input: str
    name: str
    args: tuple[str, ...]
    files: dict[str, str | bytes | Callable[[Path], bytes]] = field(default_factory=dict)
    links: dict[str, str] = field(default_factory=dict)  # name -> target


@dataclass(frozen=True)
class Outcome:
    """How ``amloop`` answered one case."""

    case: Case
    returncode: int
    message: str  # the first message line
    lines: int  # message lines (typer's usage framing not counted)
    traceback: bool
    unsafe: str  # what went wrong with the data or the machine, "" when nothing

    @property
    def verdict(self) -> str:
        if self.unsafe:
            return "unsafe"
        if self.traceback:
            return "traceback"
        if self.returncode == 0:
            return "accepted"
        if self.lines > 1:
            return "wordy"
        return "rejected cleanly"


# ------------------------------------------------------------------ the inputs and their cases
def _csv(*rows: str, structure: bool = False) -> str:
    header = CSV_HEADER + (",structure" if structure else "")
    return "\n".join((header, *rows)) + "\n"


def _structure_row(path: str, composition: str = "Ni0.5Fe0.3Cr0.2") -> str:
    row = GOOD_ROW.replace("Ni0.5Fe0.3Cr0.2", composition)
    return _csv(f"{row},{path}", structure=True)


def _hostile_structure_json() -> str:
    """A real Ni-Fe cell whose site property asks monty to import a module (``this`` prints
    the Zen of Python when imported)."""
    from pymatgen.core import Lattice, Structure

    cell = Structure(Lattice.cubic(3.6), ["Ni", "Fe"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    data = cell.as_dict()
    for site in data["sites"]:
        site["properties"] = {"payload": {"@module": "this", "@class": "x"}}
    return json.dumps(data)


class _Pwn:
    """Unpickling this runs a shell command that leaves the marker file."""

    def __init__(self, folder: Path):
        self.folder = folder

    def __reduce__(self) -> tuple[Callable[..., int], tuple[str]]:
        return (os.system, (f"touch {self.folder}/{PWNED}",))


def _hostile_weights(folder: Path) -> bytes:
    return pickle.dumps(_Pwn(folder))


def _real_hparams(folder: Path) -> bytes:
    """``hparams.json`` of a real tiny generator (trained 1 epoch on 4 Ni-Fe-Cr cells), so that
    loading goes on to read ``model.pt``."""
    from amloop.generator.cdvae import HPARAMS_FILE, CondCDVAE
    from amloop.generator.config import CondCDVAEConfig
    from amloop.generator.data import read_training_data

    pairs = read_training_data(REPO / "tests" / "data" / "nifecr_relaxed.extxyz", None)[:4]
    model = CondCDVAE(CondCDVAEConfig.tiny(), device="cpu")
    model.fit(pairs, epochs=1)
    model.save(folder / "real")
    return (folder / "real" / HPARAMS_FILE).read_bytes()


def _checkpoint_cases() -> list[Case]:
    sample = ("generator", "sample", "--composition", "Ni0.5Fe0.5", "-o", "{dir}/out.extxyz")
    hparams = json.dumps({"preset": "tiny"})
    return [
        Case("checkpoint", "missing folder", (*sample, "--checkpoint", "{dir}/none")),
        Case(
            "checkpoint",
            "garbage hparams.json",
            (*sample, "--checkpoint", "{dir}/ckpt"),
            {"ckpt/hparams.json": b"\x00\xff" * 50, "ckpt/model.pt": b"x"},
        ),
        Case(
            "checkpoint",
            "hparams.json of another kind",
            (*sample, "--checkpoint", "{dir}/ckpt"),
            {"ckpt/hparams.json": hparams, "ckpt/model.pt": b"random bytes"},
        ),
        Case(
            "checkpoint",
            "model.pt is a pickle that runs a command (hostile)",
            (*sample, "--checkpoint", "{dir}/ckpt"),
            {"ckpt/hparams.json": _real_hparams, "ckpt/model.pt": _hostile_weights},
        ),
    ]


def cases() -> list[Case]:
    """Every case of the matrix, in the order the table lists them."""
    init = ("init", "{dir}/campaign.yaml")
    good_yaml = (REPO / "examples" / "nifecr.yaml").read_text()

    def yaml_case(name: str, text: str | bytes) -> Case:
        return Case("campaign YAML", name, init, {"campaign.yaml": text})

    def renamed(name: str) -> str:
        return good_yaml.replace("name: nifecr", f"name: {name}")

    billion_laughs = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 10)}]\n" for i in range(8)
    )
    yamls = [
        yaml_case("empty file", ""),
        yaml_case("binary bytes", bytes(range(256)) * 8),
        yaml_case("Latin-1, not UTF-8", good_yaml.replace("#", "# caf\xe9 ").encode("latin-1")),
        yaml_case("syntax error", "name: [unclosed\nelements: {\n"),
        yaml_case("a list, not a mapping", "- Ni\n- Fe\n"),
        yaml_case("unknown element", good_yaml.replace("[Ni, Fe, Cr]", "[Ni, Fe, Xx]")),
        yaml_case("bounds above 1", renamed("bounds").replace("[0.0, 0.6]", "[0.0, 2.0]")),
        yaml_case("unknown oracle type", good_yaml.replace("type: lammps", "type: nosuch")),
        yaml_case("name with ../", renamed("../../evil")),
        yaml_case("name of 300 characters", renamed("x" * 300)),
        yaml_case("12 MB list", "name: big\nelements: [" + ", ".join(["Fe"] * 3_000_000) + "]\n"),
        yaml_case(
            "python object tag (hostile)",
            f'!!python/object/apply:os.system ["touch {{dir}}/{PWNED}"]\n',
        ),
        yaml_case(
            "alias bomb, 10^9 elements (hostile)", billion_laughs + "name: bomb\nelements: *i\n"
        ),
        Case("campaign YAML", "a folder, not a file", ("init", "{dir}")),
        Case("campaign YAML", "missing file", ("init", "{dir}/none.yaml")),
    ]

    def csv_case(name: str, text: str | bytes) -> Case:
        return Case("measurements CSV", name, ("inject", "{dir}/m.csv"), {"m.csv": text})

    def structure_case(name: str, path: str, composition: str = "NiFe", **files: str) -> Case:
        """A Ni-Fe measurement whose ``structure`` column names ``path`` (files: the case's
        own)."""
        return Case(
            "structure file",
            name,
            ("inject", "{dir}/m.csv"),
            {"m.csv": _structure_row(path, composition), **files},
        )

    csvs = [
        csv_case("empty file", ""),
        csv_case("header only", _csv()),
        csv_case("binary bytes", b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4),
        csv_case("a field of 200 kB", _csv(f"{GOOD_ROW} {'x' * 200_000}")),
        csv_case("unit column missing", "composition,property,value\nNiFe,bulk_modulus,170\n"),
        csv_case("value not a number", _csv(GOOD_ROW.replace("178.0", "abc"))),
        csv_case("value NaN", _csv(GOOD_ROW.replace("178.0", "nan"))),
        csv_case("value infinite", _csv(GOOD_ROW.replace("178.0", "inf"))),
        csv_case("negative uncertainty", _csv(GOOD_ROW.replace(",4.0,", ",-4.0,"))),
        csv_case("unknown property", _csv(GOOD_ROW.replace("bulk_modulus", "coolness"))),
        csv_case("wrong unit", _csv(GOOD_ROW.replace("GPa", "eV"))),
        csv_case("unknown element", _csv(GOOD_ROW.replace("Cr0.2", "Xx0.2"))),
        csv_case("element outside the campaign", _csv(GOOD_ROW.replace("Cr0.2", "Cu0.2"))),
        csv_case(
            "formula as composition", _csv('"=HYPERLINK(""http://x"")",bulk_modulus,1,GPa,1,a')
        ),
        Case("measurements CSV", "missing file", ("inject", "{dir}/none.csv")),
        Case("measurements CSV", "a folder", ("inject", "{dir}")),
    ]
    structures = [
        structure_case("absolute path /etc/passwd", "/etc/passwd"),
        structure_case("../ outside the CSV's folder", "../outside.cif"),
        Case(
            "structure file",
            "a link in the CSV's folder pointing outside",
            ("inject", "{dir}/m.csv"),
            {"m.csv": _structure_row("cell.cif")},
            links={"cell.cif": "/etc/hostname"},
        ),
        structure_case("missing file", "none.cif"),
        structure_case(
            "JSON whose site property imports a module (hostile)",
            "cell.json",
            **{"cell.json": _hostile_structure_json()},
        ),
        structure_case("JSON: not JSON", "cell.json", **{"cell.json": "{not json"}),
        structure_case(
            "CIF: zero-volume cell",
            "cell.cif",
            "Ni",
            **{
                "cell.cif": "data_x\n_cell_length_a 0\n_cell_length_b 0\n_cell_length_c 0\n"
                "_cell_angle_alpha 90\n_cell_angle_beta 90\n_cell_angle_gamma 90\n"
                "loop_\n_atom_site_label\n_atom_site_type_symbol\n_atom_site_fract_x\n"
                "_atom_site_fract_y\n_atom_site_fract_z\nNi1 Ni 0 0 0\n"
            },
        ),
        structure_case("CIF: garbage", "cell.cif", **{"cell.cif": "data_\n%%%\n"}),
        structure_case(
            "CIF: atom-site labels missing",
            "cell.cif",
            "Ni",
            **{
                "cell.cif": "data_x\n_cell_length_a 3.5\n_cell_length_b 3.5\n"
                "_cell_length_c 3.5\n_cell_angle_alpha 90\n_cell_angle_beta 90\n"
                "_cell_angle_gamma 90\nloop_\n_atom_site_type_symbol\n_atom_site_fract_x\n"
                "_atom_site_fract_y\n_atom_site_fract_z\nNi 0 0 0\n"
            },
        ),
        structure_case(
            "POSCAR: truncated",
            "POSCAR",
            **{"POSCAR": "NiFe\n1.0\n3.6 0 0\n0 3.6\n"},
        ),
        structure_case(
            "extxyz: atom lines missing",
            "cell.extxyz",
            **{
                "cell.extxyz": '4\nLattice="3.6 0 0 0 3.6 0 0 0 3.6" Properties=species:S:1:pos:R:3\nNi 0 0 0\n'
            },
        ),
        structure_case(
            "extxyz: overlapping atoms",
            "cell.extxyz",
            **{
                "cell.extxyz": '2\nLattice="3.6 0 0 0 3.6 0 0 0 3.6" '
                'Properties=species:S:1:pos:R:3 pbc="T T T"\nNi 0 0 0\nFe 0 0 0\n'
            },
        ),
    ]
    cli = [
        Case("CLI argument", "run --iterations abc", ("run", CAMPAIGN, "--iterations", "abc")),
        Case("CLI argument", "run --iterations 0", ("run", CAMPAIGN, "--iterations", "0")),
        Case("CLI argument", "run --budget -1", ("run", CAMPAIGN, "--budget", "-1")),
        Case("CLI argument", "history --iteration x", ("history", "--iteration", "x")),
        Case("CLI argument", "export --format xls", ("export", "--format", "xls")),
        Case(
            "CLI argument",
            "backup -o onto the campaign's own store",
            ("backup", "-o", "{home}/nifecr/campaign.db"),
        ),
        Case(
            "CLI argument",
            "backup -o where nothing may be written",
            ("backup", "-o", "/proc/x/b.db"),
        ),
        Case(
            "CLI argument",
            "export -o where nothing may be written",
            ("export", "--format", "csv", "-o", "/proc/x.csv"),
        ),
        Case("CLI argument", "seed --step 0", ("seed", "--step", "0")),
        Case(
            "CLI argument",
            "evaluate --set without =",
            ("evaluate", "x.cif", "--oracle", "lammps", "--set", "oops"),
        ),
        Case(
            "CLI argument", "evaluate --oracle unknown", ("evaluate", "x.cif", "--oracle", "nosuch")
        ),
        Case("CLI argument", "unknown command", ("frobnicate",)),
    ]
    names = [
        Case("campaign name", f"-c {name!r}", ("status", "-c", value))
        for name, value in (
            ("../x", "../x"),
            ("/etc", "/etc"),
            ("a/b", "a/b"),
            ("300 characters", "x" * 300),
            ("empty", ""),
            ("no such campaign", "nosuch"),
            ("with spaces", "my campaign"),
            ("starts with a dash", "-rf"),
        )
    ]
    return [*yamls, *csvs, *structures, *_checkpoint_cases(), *cli, *names]


# ------------------------------------------------------------------ running a case
def _table_counts(database: Path) -> dict[str, int]:
    """Rows per table of a SQLite store, read without writing to it."""
    connection = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    try:
        tables = [
            row[0]
            for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        ]
        return {t: connection.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in tables}
    finally:
        connection.close()


def _new_event_kinds(database: Path, after: int) -> list[str]:
    connection = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    try:
        rows = connection.execute("SELECT kind FROM events ORDER BY id").fetchall()
        return [kind for (kind,) in rows[after:]]
    finally:
        connection.close()


def _write_files(case: Case, folder: Path) -> None:
    for name, content in case.files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if callable(content):
            content = content(folder)
        if isinstance(content, str):
            path.write_text(content.replace("{dir}", str(folder)), encoding="utf-8")
        else:
            path.write_bytes(content)
    for name, target in case.links.items():
        (folder / name).symlink_to(target)


def _message_lines(output: str) -> list[str]:
    """The message's own lines: an indented line (one per problem where there are several) is
    a detail of the line above, and typer's usage framing (``Usage:``, ``Try``, the box's
    borders, its text wrapped inside) makes one message."""
    if output.lstrip().startswith("Usage:"):
        inside = [
            line.strip().strip("│").strip() for line in output.splitlines() if line.startswith("│")
        ]
        return [" ".join(text for text in inside if text)]
    return [line for line in output.splitlines() if line.strip() and not line[0].isspace()]


#: Runs ``amloop ARGS`` with environment changes (None: unset) in a folder; returns the exit
#: code and everything printed.
Invoke = Callable[[list[str], dict[str, str | None], Path], tuple[int, str]]


def invoke_process(args: list[str], env: dict[str, str | None], cwd: Path) -> tuple[int, str]:
    """``amloop`` as a fresh process, as a user runs it (a hang is exit code -1)."""
    environment = {**os.environ, **env}
    environment = {k: v for k, v in environment.items() if v is not None}
    try:
        done = subprocess.run(
            [*AMLOOP, *args],
            cwd=cwd,
            env=environment,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=CASE_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired:
        return -1, f"hung for more than {CASE_TIMEOUT_S} s"
    return done.returncode, done.stdout + done.stderr


def invoke_in_process(args: list[str], env: dict[str, str | None], cwd: Path) -> tuple[int, str]:
    """``amloop`` called in this process (typer's test runner): the same code paths in a
    fraction of the time; an exception that escapes the command is printed as a traceback."""
    import contextlib
    import traceback

    from typer.testing import CliRunner

    from amloop.loop.cli import app

    with contextlib.chdir(cwd):
        result = CliRunner().invoke(app, args, env=env, catch_exceptions=True)
    output = result.output
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        output += "".join(traceback.format_exception(result.exception))
    return result.exit_code, output


def run_case(case: Case, home: Path, folder: Path, invoke: Invoke = invoke_process) -> Outcome:
    """Run one case against the campaign in ``home``; ``folder`` is the case's own."""
    folder.mkdir(parents=True)
    _write_files(case, folder)
    database = home / CAMPAIGN / "campaign.db"
    before = _table_counts(database)
    campaigns_before = sorted(p.name for p in home.iterdir())
    env: dict[str, str | None] = {
        "AMLOOP_HOME": str(home),
        "COLUMNS": "100",
        "AMLOOP_DB_OUTAGE_S": "2",
        "AMLOOP_DATABASE_URL": None,
        "AMLOOP_CAMPAIGN": None,
    }
    args = [a.replace("{dir}", str(folder)).replace("{home}", str(home)) for a in case.args]
    returncode, output = invoke(args, env, folder)
    problems = []
    after = _table_counts(database)
    changed = {
        t: (before[t], after.get(t)) for t in before if t != "events" and before[t] != after.get(t)
    }
    if changed:
        problems.append(f"rows changed: {changed}")
    foreign = [
        kind
        for kind in _new_event_kinds(database, before["events"])
        if not kind.endswith("_rejected")
    ]
    if foreign:
        problems.append(f"events written: {foreign}")
    campaigns_after = sorted(p.name for p in home.iterdir())
    if campaigns_after != campaigns_before:
        added = sorted(set(campaigns_after) ^ set(campaigns_before))
        problems.append(f"AMLOOP_HOME changed: {added}")
    if (folder / PWNED).exists() or ZEN in output:
        problems.append("code from the input ran")
    if returncode == -1:
        problems.append(output)
    lines = _message_lines(output)
    return Outcome(
        case=case,
        returncode=returncode,
        message=(lines[0] if lines else "")[:160],
        lines=len(lines),
        traceback="Traceback (most recent call last)" in output,
        unsafe="; ".join(problems),
    )


def prepare_home(home: Path) -> None:
    """The campaign every case runs against: the Ni-Fe-Cr example with measurements."""
    env = {**os.environ, "AMLOOP_HOME": str(home)}
    env.pop("AMLOOP_DATABASE_URL", None)
    for args in (
        ["init", str(REPO / "examples" / "nifecr.yaml")],
        ["inject", str(REPO / "tests" / "data" / "measurements.csv")],
    ):
        subprocess.run([*AMLOOP, *args], env=env, cwd=REPO, check=True, capture_output=True)


def run_matrix(
    only: str = "",
    progress: Callable[[Outcome], None] | None = None,
    invoke: Invoke = invoke_process,
) -> list[Outcome]:
    """Run every case (those whose input or name contains ``only``) in a temporary home."""
    outcomes = []
    with tempfile.TemporaryDirectory(prefix="amloop-bad-") as root:
        home = Path(root) / "home"
        prepare_home(home)
        selected = [c for c in cases() if only in f"{c.input}: {c.name}"]
        for index, case in enumerate(selected):
            outcome = run_case(case, home, Path(root) / f"case{index}", invoke)
            outcomes.append(outcome)
            if progress is not None:
                progress(outcome)
    return outcomes


def render(outcomes: list[Outcome]) -> str:
    """The summary per input and one row per case, as Markdown."""
    lines = [
        "| input | tried | rejected cleanly | tracebacks | unsafe | other |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    inputs = [*dict.fromkeys(o.case.input for o in outcomes), "all"]
    for name in inputs:
        group = [o for o in outcomes if name in ("all", o.case.input)]
        verdicts = Counter(o.verdict for o in group)
        other = len(group) - sum(verdicts[v] for v in ("rejected cleanly", "traceback", "unsafe"))
        lines.append(
            f"| {name} | {len(group)} | {verdicts['rejected cleanly']} | "
            f"{verdicts['traceback']} | {verdicts['unsafe']} | {other} |"
        )
    lines += ["", "| input | case | exit | verdict | message |", "| --- | --- | ---: | --- | --- |"]
    for o in outcomes:
        message = (o.unsafe or o.message).replace("|", "\\|")
        lines.append(
            f"| {o.case.input} | {o.case.name} | {o.returncode} | {o.verdict} | {message} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="", help="run the cases whose input or name has this")
    args = parser.parse_args()
    outcomes = run_matrix(
        args.only, lambda o: print(f"{o.verdict:>16}  {o.case.input}: {o.case.name}", flush=True)
    )
    table = re.sub(r"\S*amloop-bad-[\w]+", "$TMP", render(outcomes))  # the run's own folder
    print(table)
    if not args.only:
        RESULTS.write_text(
            "Bad-input matrix (`python -m benchmarks.bad_inputs`): every case run as a fresh "
            "`amloop` process against a campaign with measurements\n\n" + table
        )


if __name__ == "__main__":
    main()
