"""The shipped examples stay valid: every campaign YAML loads, and the guide's oracle runs."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from ase.build import bulk
from pymatgen.io.ase import AseAtomsAdaptor

from amloop.oracles.registry import oracle_from_config, oracle_types
from amloop.state.config import load_config
from amloop.state.schema import Candidate

EXAMPLES = Path(__file__).parents[1] / "examples"


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.yaml")), ids=lambda p: p.name)
def test_example_campaign_is_valid_and_its_oracles_build(path):
    config = load_config(path, oracle_types=oracle_types())
    for oracle in config.oracles:
        if oracle.type != "dft":  # GPAW setups are checked by the DFT tests
            oracle_from_config(oracle)


def test_guide_oracle_example_gives_the_emt_bulk_modulus_of_copper():
    spec = importlib.util.spec_from_file_location(
        "emt_oracle", EXAMPLES / "emt_plugin" / "emt_oracle.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    cell = AseAtomsAdaptor.get_structure(bulk("Cu", "fcc", a=3.6, cubic=True).repeat(2))
    evaluation = module.EmtOracle().evaluate(Candidate(structure=cell, origin="injected"))
    assert evaluation.status == "done", evaluation.error
    # EMT copper: a = 3.59 Å, B ≈ 134 GPa (Jacobsen et al. parameters; experiment 137-140 GPa)
    assert evaluation.properties["bulk_modulus"].value == pytest.approx(134, rel=0.03)
    assert evaluation.relaxed_structure.lattice.a / 2 == pytest.approx(3.59, abs=0.01)


def test_the_guides_oracle_example_is_the_example_plugin():
    """docs/guide.md §6 shows examples/emt_plugin/emt_oracle.py as it is (less its docstring)."""
    code = (EXAMPLES / "emt_plugin" / "emt_oracle.py").read_text()
    body = code.split("from __future__ import annotations\n", 1)[1].strip()
    guide = (EXAMPLES.parent / "docs" / "guide.md").read_text()
    assert body in guide
