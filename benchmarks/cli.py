"""Cold start of the ``amloop`` command line, timed as whole processes.

Each command runs ``--repeats`` times (median reported) in a fresh interpreter against a small
campaign made for the run (``examples/nifecr.yaml`` with the demo's measurements injected), next
to the baseline measured in the same run: a bare ``python -c pass``. Targets (issue 25): ``amloop
--help`` <= 1.0 s, ``amloop status`` and ``amloop history`` <= 1.5 s on this machine.

Usage: ``python -m benchmarks.cli [--repeats 5]``; results in ``benchmarks/results/cli.md``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results" / "cli.md"
AMLOOP = [sys.executable, "-m", "amloop"]
#: (command, target in s); ``None``: the baseline.
COMMANDS: tuple[tuple[str, list[str], float | None], ...] = (
    ("python -c pass", [sys.executable, "-c", "pass"], None),
    ("amloop --help", [*AMLOOP, "--help"], 1.0),
    ("amloop status", [*AMLOOP, "status"], 1.5),
    ("amloop history", [*AMLOOP, "history"], 1.5),
)


def wall_s(command: list[str], env: dict[str, str]) -> float:
    """Wall seconds of one run of ``command`` (it must exit 0)."""
    started = time.perf_counter()
    subprocess.run(command, env=env, cwd=REPO, check=True, capture_output=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "AMLOOP_HOME": home, "COLUMNS": "160"}
        subprocess.run([*AMLOOP, "init", "examples/nifecr.yaml"], env=env, cwd=REPO, check=True)
        subprocess.run(
            [*AMLOOP, "inject", "tests/data/measurements.csv"], env=env, cwd=REPO, check=True
        )
        rows = []
        baseline = None
        for label, command, target in COMMANDS:
            wall_s(command, env)  # warm the file cache
            median = statistics.median(wall_s(command, env) for _ in range(args.repeats))
            baseline = baseline or median
            verdict = "baseline" if target is None else ("met" if median <= target else "NOT met")
            rows.append(
                f"| `{label}` | {median:.2f} | {median / baseline:.1f}x | "
                f"{'-' if target is None else f'<= {target:g}'} | {verdict} |"
            )
    table = "\n".join(
        [
            f"Cold start, median of {args.repeats} whole-process runs "
            f"(`python -m benchmarks.cli`; {os.cpu_count()} cores)",
            "",
            "| command | wall s | vs bare python | target s | |",
            "| --- | ---: | ---: | ---: | --- |",
            *rows,
        ]
    )
    print(table)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(table + "\n")


if __name__ == "__main__":
    main()
