"""Campaign config validation: a valid config parses; each bad one fails with a message that
names the field and says how to fix it."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from amloop.state.config import CampaignConfig, ConfigError, load_config, parse_config

ORACLE_TYPES = ["lammps", "emt"]


def valid() -> dict[str, Any]:
    return {
        "name": "nifecr",
        "elements": ["Ni", "Fe", "Cr"],
        "bounds": {"Ni": [0.2, 1.0], "Cr": [0.0, 0.6]},
        "cell": {"n_atoms": 32, "lattice": "fcc"},
        "objectives": [
            {"property": "bulk_modulus", "direction": "maximize", "oracle": "meam"},
            {"property": "hardness", "direction": "maximize", "unit": "GPa"},
        ],
        "oracles": [
            {"name": "meam", "type": "lammps", "fidelity": 0.6, "cost": {"core_s": 2.0}},
            {"name": "cheap", "type": "emt", "fidelity": 0.2},
        ],
        "budget": {"core_hours": 0.5, "evaluations": {"meam": 200}},
        "acquisition": {"batch_size": 4, "strategy": "qLogNEHVI"},
    }


def test_valid_config_parses() -> None:
    config = parse_config(valid(), oracle_types=ORACLE_TYPES)
    assert isinstance(config, CampaignConfig)
    assert config.elements == ["Ni", "Fe", "Cr"]
    assert config.element_bounds("Ni") == (0.2, 1.0)
    assert config.element_bounds("Fe") == (0.0, 1.0)  # default
    assert config.objectives[0].unit == "GPa"  # the property's canonical unit
    assert config.objective_properties == ["bulk_modulus", "hardness"]
    assert config.oracles[1].cost.core_s == 1.0
    assert config.budget.evaluations == {"meam": 200}
    assert config.generator.samples_per_proposal == 4
    # What the store keeps (JSON) validates to the same config.
    assert parse_config(config.model_dump(mode="json")) == config


def test_load_config_reads_yaml(tmp_path: Path) -> None:
    path = tmp_path / "campaign.yaml"
    path.write_text(yaml.safe_dump(valid()))
    assert load_config(path, oracle_types=ORACLE_TYPES).name == "nifecr"
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "missing.yaml")
    path.write_text("name: x\nelements: [Ni, Fe\nbounds: {}\n")
    with pytest.raises(ConfigError) as error:  # one line: file:line:column and the problem
        load_config(path)
    assert str(error.value) == (
        f"{path}:3:7: not valid YAML: expected ',' or ']', but got ':' "
        "(while parsing a flow sequence)"
    )
    path.write_bytes(b"name: \xff\xfe\n")
    with pytest.raises(ConfigError, match="not a text file"):
        load_config(path)
    path.write_text("- just a list\n")
    with pytest.raises(ConfigError, match="expected a mapping of fields, got list"):
        load_config(path)
    path.write_text(yaml.safe_dump({**valid(), "budget": {"core_hours": -1}}))
    with pytest.raises(ConfigError) as excinfo:
        load_config(path)
    assert str(excinfo.value).startswith(f"{path}: invalid campaign config: budget.core_hours")


def with_change(change: Callable[[dict[str, Any]], object]) -> dict[str, Any]:
    data = copy.deepcopy(valid())
    change(data)
    return data


BAD_CONFIGS = {
    "unknown element": (
        lambda d: d.update(elements=["Ni", "Fe", "Xx"]),
        ["elements: unknown element 'Xx'; use chemical symbols such as Fe, Ni, Cr"],
    ),
    "element twice": (
        lambda d: d.update(elements=["Ni", "Fe", "Ni"]),
        ["elements: an element is listed twice"],
    ),
    "upper bound above 1": (
        lambda d: d["bounds"].update(Ni=[0.2, 1.5]),
        ["bounds.Ni: [0.2, 1.5] must satisfy 0 <= lower <= upper <= 1"],
    ),
    "negative lower bound": (
        lambda d: d["bounds"].update(Cr=[-0.1, 0.5]),
        ["bounds.Cr: [-0.1, 0.5] must satisfy 0 <= lower <= upper <= 1"],
    ),
    "lower above upper": (
        lambda d: d["bounds"].update(Cr=[0.6, 0.3]),
        ["bounds.Cr: [0.6, 0.3] must satisfy 0 <= lower <= upper <= 1"],
    ),
    "lower bounds sum above 1": (
        lambda d: d.update(bounds={"Ni": [0.5, 1.0], "Fe": [0.4, 1.0], "Cr": [0.3, 1.0]}),
        ["bounds: infeasible, the lower bounds sum to 1.2", "loosen the bounds"],
    ),
    "upper bounds sum below 1": (
        lambda d: d.update(bounds={"Ni": [0.0, 0.3], "Fe": [0.0, 0.3], "Cr": [0.0, 0.3]}),
        ["bounds: infeasible", "the upper bounds to 0.9", "loosen the bounds"],
    ),
    "bounds for an element not listed": (
        lambda d: d["bounds"].update(Co=[0.1, 0.2]),
        ["bounds.Co: 'Co' is not in elements", "add it to elements or remove its bounds"],
    ),
    "unknown oracle type": (
        lambda d: d["oracles"][1].update(type="vasp"),
        ["oracles.1.type: unknown oracle type 'vasp'; registered types: emt, lammps"],
    ),
    "duplicate oracle names": (
        lambda d: d["oracles"][1].update(name="meam"),
        ["oracles: names must be unique", "rename the duplicates"],
    ),
    "fidelity above 1": (
        lambda d: d["oracles"][0].update(fidelity=2),
        ["oracles.0.fidelity: got 2, but it must be <= 1"],
    ),
    "negative core-hours": (
        lambda d: d["budget"].update(core_hours=-1),
        ["budget.core_hours: got -1, but it must be >= 0"],
    ),
    "negative evaluation count": (
        lambda d: d["budget"].update(evaluations={"meam": -5}),
        ["budget.evaluations: evaluations for 'meam' is -5; it must be >= 0"],
    ),
    "evaluation budget for an unconfigured oracle": (
        lambda d: d["budget"].update(evaluations={"dft": 5}),
        ["budget.evaluations.dft: names oracle 'dft', which is not configured", "meam, cheap"],
    ),
    "seed oracle not configured": (
        lambda d: d.setdefault("acquisition", {}).update(seed_oracles=["cheap", "md"]),
        ["acquisition.seed_oracles.1: names oracle 'md', which is not configured", "meam, cheap"],
    ),
    "no budget limit": (
        lambda d: d.update(budget={}),
        ["budget: no limit given: set core_hours, gpu_hours and/or evaluations"],
    ),
    "misspelt top-level field": (
        lambda d: d.update(budjet=d.pop("budget")),
        ["budjet: unknown field; did you mean 'budget'?", "budget: required field is missing"],
    ),
    "misspelt nested field": (
        lambda d: d["budget"].update(core_hour=1.0),
        ["budget.core_hour: unknown field; did you mean 'core_hours'?"],
    ),
    "unknown field without a near match": (
        lambda d: d["cell"].update(temperature=300),
        ["cell.temperature: unknown field; valid fields here: n_atoms, lattice"],
    ),
    "objective naming an unconfigured oracle": (
        lambda d: d["objectives"][0].update(oracle="dft"),
        [
            "objectives.0.oracle: objective 'bulk_modulus' names oracle 'dft', which is not "
            "configured; use one of the configured oracles (meam, cheap) or add it under oracles"
        ],
    ),
    "unknown property without a unit": (
        lambda d: d["objectives"][1].pop("unit"),
        [
            "objectives.1: unknown property 'hardness': give its `unit`, or use one of",
            "bulk_modulus",
        ],
    ),
    "bad direction": (
        lambda d: d["objectives"][0].update(direction="max"),
        ["objectives.0.direction: Input should be 'maximize' or 'minimize'"],
    ),
    "missing oracles": (
        lambda d: d.pop("oracles"),
        ["oracles: required field is missing"],
    ),
}


@pytest.mark.parametrize("case", list(BAD_CONFIGS))
def test_bad_config_names_field_and_fix(case: str) -> None:
    change, expected = BAD_CONFIGS[case]
    with pytest.raises(ConfigError) as excinfo:
        parse_config(with_change(change), oracle_types=ORACLE_TYPES, source="campaign.yaml")
    message = str(excinfo.value)
    assert message.startswith("campaign.yaml: invalid campaign config")
    for part in expected:
        assert part in message, f"{part!r} not in:\n{message}"


def test_every_problem_is_listed() -> None:
    data = with_change(lambda d: d.update(elements=["Ni", "Qq"], budjet=1, seed="x"))
    data["budget"]["gpu_hours"] = -2
    with pytest.raises(ConfigError) as excinfo:
        parse_config(data)
    lines = str(excinfo.value).splitlines()[1:]
    assert len(lines) == 4
    assert any(line.startswith("  - elements: unknown element 'Qq'") for line in lines)
    assert any(line.startswith("  - budjet: unknown field") for line in lines)
    assert any(line.startswith("  - seed: ") for line in lines)
    assert any(
        line.startswith("  - budget.gpu_hours: got -2, but it must be >= 0") for line in lines
    )


def test_oracle_types_are_not_checked_without_a_registry() -> None:
    data = with_change(lambda d: d["oracles"][1].update(type="vasp"))
    assert parse_config(data).oracles[1].type == "vasp"
