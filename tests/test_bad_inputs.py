"""The bad-input matrix (``benchmarks/bad_inputs.py``): every malformed or hostile input a user
can give is refused with one line, no traceback, nothing run from it, and every table's row
count unchanged. Run in this process (the benchmark runs each case as a fresh ``amloop``)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def matrix(load_benchmark):
    return load_benchmark("bad_inputs")


def test_every_bad_input_is_rejected_cleanly(matrix):
    outcomes = matrix.run_matrix(invoke=matrix.invoke_in_process)
    assert len(outcomes) >= 60
    kinds = {o.case.input for o in outcomes}
    assert kinds == {
        "campaign YAML",
        "measurements CSV",
        "structure file",
        "checkpoint",
        "CLI argument",
        "campaign name",
    }
    bad = [o for o in outcomes if o.verdict != "rejected cleanly"]
    assert not bad, matrix.render(bad)


def test_the_matrix_notices_a_traceback_and_a_changed_table(matrix, tmp_path):
    """The verdicts can fail: an exception escaping a command is a traceback, and a command
    that stores rows is unsafe."""
    home = tmp_path / "home"
    matrix.prepare_home(home)
    crash = matrix.Case("CLI argument", "a crash", ("status",))

    def raising(args, env, cwd):
        raise_in = matrix.invoke_in_process(["history", "--iteration", "x"], env, cwd)
        return 1, raise_in[1] + "\nTraceback (most recent call last):\n  boom"

    assert matrix.run_case(crash, home, tmp_path / "a", raising).verdict == "traceback"
    good_csv = matrix.Case(
        "measurements CSV",
        "a good file",
        ("inject", "{dir}/m.csv"),
        {"m.csv": matrix.CSV_HEADER + "\n" + matrix.GOOD_ROW.replace("178.0", "181.0") + "\n"},
    )
    outcome = matrix.run_case(good_csv, home, tmp_path / "b", matrix.invoke_in_process)
    assert outcome.verdict == "unsafe" and "measurements" in outcome.unsafe
