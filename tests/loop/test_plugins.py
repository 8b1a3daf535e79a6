"""Oracle types from another distribution, found through the ``amloop.oracles`` entry points in
every process: a plugin made here (the guide's EMT oracle with a ``*.dist-info`` on a temporary
``sys.path``) runs in campaigns whose oracle calls happen in a process-pool worker and on a Dask
LocalCluster, with nothing imported by hand."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from amloop.oracles import registry
from amloop.oracles.base import OracleSetupError
from amloop.oracles.registry import ORACLE_GROUP, oracle_class, oracle_types
from amloop.state.settings import Settings
from amloop.state.store import CampaignStore

REPO = Path(__file__).parents[2]
CONFIG = REPO / "tests" / "data" / "loop_nifecr.yaml"


def make_plugin(root: Path, entry_points: str) -> Path:
    """A distribution ``amloop-emt`` in ``root``: the guide's module and its dist-info."""
    root.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "examples" / "emt_plugin" / "emt_oracle.py", root / "emt_oracle.py")
    info = root / "amloop_emt-0.1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: amloop-emt\nVersion: 0.1.0\n")
    (info / "entry_points.txt").write_text(entry_points)
    return root


@pytest.fixture
def plugin_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = make_plugin(tmp_path / "plugin", f"[{ORACLE_GROUP}]\nemt = emt_oracle:EmtOracle\n")
    monkeypatch.syspath_prepend(str(root))
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))  # this test's only
    monkeypatch.delitem(sys.modules, "emt_oracle", raising=False)
    return root


def test_an_installed_plugin_is_listed_and_loaded_on_first_use(plugin_path: Path) -> None:
    assert "emt" in oracle_types()
    assert "emt_oracle" not in sys.modules  # listed without importing it
    cls = oracle_class("emt")
    assert cls.__module__ == "emt_oracle" and cls.type_name == "emt"


def test_a_broken_plugin_names_its_distribution(plugin_path: Path) -> None:
    with (plugin_path / "amloop_emt-0.1.0.dist-info" / "entry_points.txt").open("a") as points:
        points.write("broken = emt_oracle:NoSuchClass\n")
    with pytest.raises(OracleSetupError, match=r"'broken'.*amloop-emt.*AttributeError"):
        oracle_class("broken")
    with pytest.raises(OracleSetupError, match=r"unknown oracle type 'nope'.*emt"):
        oracle_class("nope")


def _emt_campaign(tmp_path: Path, name: str, execution: dict[str, object]) -> Path:
    """The test loop campaign on Cu-Ni with the plugin's EMT oracle."""
    data = yaml.safe_load(CONFIG.read_text())
    data.update(name=name, elements=["Cu", "Ni"], bounds={}, execution=execution)
    data["objectives"] = [{"property": "bulk_modulus", "direction": "maximize", "oracle": "emt"}]
    data["oracles"] = [
        {"name": "emt", "type": "emt", "fidelity": 0.3, "cost": {"core_s": 1.0}, "timeout_s": 120}
    ]
    data["budget"] = {"core_hours": 0.2, "evaluations": {"emt": 20}}
    data["quality"] = {"min_distance": 1.5}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.slow
@pytest.mark.parametrize(
    "execution",
    [
        {"max_iterations": 1, "overlap": True},  # the calls in a process-pool worker
        {"max_iterations": 1, "executor": "dask", "n_workers": 2},  # in Dask worker processes
    ],
    ids=["process-pool", "dask"],
)
def test_a_plugin_oracle_runs_in_worker_processes(
    execution, plugin_path, tmp_path, prefect_api_url
) -> None:
    name = f"emt-{execution.get('executor', 'local')}"
    config = _emt_campaign(tmp_path, name, execution)
    env = {
        **os.environ,
        "AMLOOP_HOME": str(tmp_path / "home"),
        "PREFECT_API_URL": prefect_api_url,
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": os.pathsep.join([str(plugin_path), os.environ.get("PYTHONPATH", "")]),
    }
    run = subprocess.run(
        [sys.executable, "-m", "amloop", "run", str(config)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    store = CampaignStore.open(Settings(home=tmp_path / "home").database_url_for(name), name)
    calls = [e for e in store.evaluations(oracle="emt") if e.iteration == 0]
    assert calls and all(e.status == "done" for e in calls), [e.error for e in calls]
    here = f":{os.getpid()}"
    assert not any(e.provenance["worker"].endswith(here) for e in calls)
    # EMT's Cu-Ni FCC solid solutions: B between copper's 134 and nickel's ~180 GPa
    moduli = [e.properties["bulk_modulus"].value for e in store.evaluations(oracle="emt")]
    assert all(120.0 < b < 200.0 for b in moduli), moduli
