"""A structure file, or a structure stored in a shared campaign store, never runs code: pymatgen
JSON is read with lattice, species, coordinates and plain properties only."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from pymatgen.core import Lattice, Structure

from amloop.state.structures import (
    StructureFileError,
    read_structures,
    structure_from_json,
    structure_to_json,
)

#: A site property that pymatgen's MontyDecoder would resolve by importing module ``this`` (which
#: prints the Zen of Python when imported): any installed module could be named instead.
HOSTILE = {"@module": "this", "@class": "x"}


def _cell() -> Structure:
    return Structure(
        Lattice.cubic(3.6),
        ["Cu", "Ni"],
        [[0, 0, 0], [0.5, 0.5, 0.5]],
        site_properties={"magmom": [0.5, 0.6]},
    )


def _hostile_json() -> str:
    data = _cell().as_dict()
    data["sites"][0]["properties"]["payload"] = HOSTILE
    return json.dumps(data)


def test_plain_structures_round_trip() -> None:
    cell = _cell()
    back = structure_from_json(structure_to_json(cell))
    assert back == cell and back.site_properties["magmom"] == [0.5, 0.6]


@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: d["sites"][0]["properties"].update(payload=HOSTILE),
        lambda d: d["sites"][1]["properties"].update(nested={"deep": [HOSTILE]}),
        lambda d: d["lattice"].update(HOSTILE),
        lambda d: d.update({"@module": "this"}),
        lambda d: d["properties"].update(payload=HOSTILE),
    ],
    ids=["site-property", "nested", "lattice", "root-module", "structure-property"],
)
def test_an_object_reference_anywhere_is_rejected(mutate) -> None:
    data = _cell().as_dict()
    mutate(data)
    with pytest.raises(StructureFileError, match="only lattice, species, coordinates"):
        structure_from_json(json.dumps(data))


def test_a_hostile_structure_file_runs_nothing(tmp_path: Path) -> None:
    """In a fresh interpreter (``this`` prints on import): reading the file fails with one line
    and imports nothing."""
    path = tmp_path / "cell.json"
    path.write_text(_hostile_json())
    probe = (
        "import sys\n"
        "from pathlib import Path\n"
        "from amloop.state.structures import StructureFileError, read_structures\n"
        "try:\n"
        f"    read_structures(Path({str(path)!r}))\n"
        "except StructureFileError as exc:\n"
        "    print('rejected:', exc)\n"
        "print('this imported' if 'this' in sys.modules else 'nothing imported')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    assert "Beautiful is better than ugly" not in result.stdout
    assert "rejected:" in result.stdout and "nothing imported" in result.stdout


def test_read_structures_rejects_the_payload_with_one_line(tmp_path: Path) -> None:
    path = tmp_path / "cell.json"
    path.write_text(_hostile_json())
    with pytest.raises(StructureFileError) as error:
        read_structures(path)
    assert "\n" not in str(error.value) and "'this'" in str(error.value)


def test_a_cif_without_a_usable_structure_says_why(tmp_path: Path) -> None:
    path = tmp_path / "flat.cif"
    path.write_text(
        "data_flat\n_cell_length_a 0\n_cell_length_b 3\n_cell_length_c 3\n"
        "_cell_angle_alpha 90\n_cell_angle_beta 90\n_cell_angle_gamma 90\n"
        "loop_\n_atom_site_label\n_atom_site_type_symbol\n_atom_site_fract_x\n"
        "_atom_site_fract_y\n_atom_site_fract_z\nCu1 Cu 0 0 0\n"
    )
    with pytest.raises(StructureFileError, match="cannot read structure file") as error:
        read_structures(path)
    assert "\n" not in str(error.value)
