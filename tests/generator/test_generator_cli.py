"""``amloop generator train|sample|optimize`` end to end on the tiny preset."""

from __future__ import annotations

from pathlib import Path

from ase.io import read as ase_read
from typer.testing import CliRunner

from amloop.loop.cli import app

DATA = Path(__file__).parents[1] / "data" / "nifecr_relaxed.extxyz"


def test_train_sample_optimize(tmp_path):
    runner = CliRunner()
    ckpt = tmp_path / "ckpt"
    trained = runner.invoke(
        app,
        [
            "generator",
            "train",
            "--data",
            str(DATA),
            "--preset",
            "tiny",
            "--epochs",
            "2",
            "--elements",
            "Fe,Co,Ni,Mo,B,O,Cr",
            "--properties",
            "bulk_modulus",
            "-o",
            str(ckpt),
        ],
    )
    assert trained.exit_code == 0, trained.output
    assert (ckpt / "hparams.json").is_file()

    target = ",".join(["2.0"] * 28)  # 7 elements -> 28 element pairs
    out = tmp_path / "samples.extxyz"
    sampled = runner.invoke(
        app,
        [
            "generator",
            "sample",
            "--checkpoint",
            str(ckpt),
            "--composition",
            "Fe0.2Co0.2Ni0.2Mo0.1B0.1O0.2",
            "--pdm-target",
            target,
            "-n",
            "2",
            "--n-atoms",
            "20",
            "-o",
            str(out),
        ],
    )
    assert sampled.exit_code == 0, sampled.output
    assert sampled.output.count("PDM MAE") == 2
    frames = ase_read(out, index=":")
    assert len(frames) == 2
    assert sorted(frames[0].get_chemical_symbols()).count("O") == 4  # exact 0.2 of 20 atoms

    wrong = runner.invoke(
        app,
        [
            "generator",
            "sample",
            "--checkpoint",
            str(ckpt),
            "--composition",
            "Fe0.5Co0.5",
            "--pdm-target",
            "1,2",
        ],
    )
    assert wrong.exit_code != 0 and "needs 28 values" in wrong.output

    optimized = tmp_path / "opt.extxyz"
    result = runner.invoke(
        app,
        [
            "generator",
            "optimize",
            "--checkpoint",
            str(ckpt),
            "--start",
            str(out),
            "--property",
            "bulk_modulus",
            "--decode-at",
            "5,10",
            "-o",
            str(optimized),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "step 5:" in result.output and "step 10:" in result.output
    assert len(ase_read(optimized, index=":")) == 4
