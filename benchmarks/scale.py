"""Scale-out load test: oracle calls through the loop's own path on a Dask LocalCluster of 1, 2,
4, 8, 16 workers against a PostgreSQL store, all in one campaign that grows stage by stage.

Each stage stores fresh candidates (random Cu-Zr BCC solid solutions, 32 atoms,
:func:`generator.solid_solution.random_solid_solution`), then runs a Prefect flow on the
``DaskTaskRunner`` of :func:`loop.flows.task_runner` (``execution.executor: dask``,
``n_workers`` = W) that maps :func:`loop.flows.evaluate_task` over them with
:func:`loop.flows.fan_out`: each task opens the store itself and records through
:func:`loop.steps.evaluate` (budget check, claim, oracle, ``record_evaluation``). The first W
calls of a stage warm the workers (imports, oracle construction) and are not timed. Oracles:

- ``lammps``: the project's LAMMPS oracle with the Mendelev Cu-Zr EAM (``CuZr_mm.eam.fs``,
  relaxation + elastic constants, ~0.15 s a call here): a real cheap oracle;
- ``remote``: :class:`RemoteJobOracle`, a stand-in for a DFT or lab job running elsewhere: a
  real cheap computation (the unrelaxed EAM energy, a LAMMPS single point, ~30 ms) whose result is
  returned once ``wait_s`` (2 s) has passed since the call started. It is a plugin oracle type
  (``remote_job``) found through an ``amloop.oracles`` entry point of a ``*.dist-info`` that
  this script writes to a scratch folder on every process's ``sys.path``.

Per stage: calls, wall time of the timed calls (s), calls/s, ideal calls/s (W / ``wait_s``
for ``remote``; min(W, cores) / the serial call time for ``lammps``), efficiency, the
orchestration overhead per call (W x wall / calls - the mean call time measured inside the
oracle: Prefect task bookkeeping, Dask scheduling, store reads and writes; ms), the store's
write latency (``CampaignStore.record_evaluation`` timed in W concurrent writer processes on
a probe campaign of the same database, p50/p95 ms), lost and doubled writes (every mapped
candidate must have exactly one finished evaluation of the stage's oracle) and the time of
:func:`acquisition.propose.propose` on the campaign as it is after the stage (s).

Targets: 0 lost or doubled writes at every size; ``remote`` throughput >= 80 % of ideal up to
16 workers; overhead <= 50 ms a call; acquisition at 10^4 points within 30 s (not reached by
real calls here: ``benchmarks/acquisition.py`` times it on synthetic data, run with
``--acquisition-10k``).

PostgreSQL: a throw-away server on 127.0.0.1 (:class:`amloop.state.local_postgres.LocalPostgres`)
with its data in ``--work-dir``, or ``--database-url``.
Prefect: a temporary API server (``prefect_test_harness``), analytics off.

Usage: ``python -m benchmarks.scale`` (CI size: workers 1, 2, 4, a few calls each, 0.5 s
wait; ~3 min on 2 cores) or ``--full`` (workers 1-16, 60 x W calls per stage and oracle, 2 s
wait); ``--resume`` skips the stages whose JSON is in ``benchmarks/results/scale-{ci,full}/
stages`` (the store is kept in ``--work-dir``); ``--calls-per-task N`` maps chunks of N calls
per Prefect task (``execution.calls_per_task``; stages are kept per N, the summary shows all).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "warning")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import json
import shlex
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, ClassVar

import numpy as np
from pydantic import Field

from amloop.oracles.base import Oracle, OracleOptions, OracleResult
from amloop.state.schema import PropertyValue

REPO = Path(__file__).resolve().parents[1]
#: Shipped EAM potential of both oracles (Mendelev et al. 2009, Cu-Zr).
POTENTIAL = "CuZr_mm.eam.fs"
N_ATOMS = 32
LATTICE = "bcc"
CU_RANGE = (0.3, 0.8)
CAMPAIGN = "scale"
PROBE_CAMPAIGN = "scale-write-probe"
#: Oracle names in the campaign, by the benchmark's short name.
ORACLES = {"remote": "remote_job", "lammps": "lammps_eam"}
PLUGIN_DIST = "amloop_scale_bench-0.0.0.dist-info"
TARGET_EFFICIENCY = 0.80
TARGET_OVERHEAD_MS = 50.0
TARGET_ACQUISITION_S = 30.0


# --------------------------------------------------------------------------- the waiting oracle
class RemoteJobOptions(OracleOptions):
    """Options of the ``remote_job`` oracle."""

    potential: str = Field(POTENTIAL, description="EAM file of the single point")
    wait_s: float = Field(2.0, ge=0, description="seconds from the call's start to its result (s)")


class RemoteJobOracle(Oracle):
    """A stand-in for remote latency: a DFT or lab job that runs elsewhere and answers after
    ``wait_s``. The value is real: the unrelaxed energy per atom (eV/atom) of the cell, a
    single point of the project's LAMMPS oracle (:meth:`oracles.lammps.LammpsOracle.label`)
    on the Mendelev Cu-Zr EAM (~30 ms for 32 atoms); the call then sleeps until ``wait_s``
    has passed since it started (the worker idles, as it would waiting for a remote job)."""

    type_name: ClassVar[str] = "remote_job"
    properties: ClassVar[dict[str, str]] = {"energy_per_atom": "eV/atom"}
    Options: ClassVar[type[RemoteJobOptions]] = RemoteJobOptions
    default_fidelity: ClassVar[float] = 0.9
    default_timeout_s: ClassVar[float] = 120.0
    options: RemoteJobOptions
    _lammps: Any = None

    def compute(self, structure: Any) -> OracleResult:
        from amloop.oracles.lammps import LammpsOracle

        started = time.perf_counter()
        if self._lammps is None:  # the potential is read once per process
            self._lammps = LammpsOracle(potential=self.options.potential)
        energy = self._lammps.label(structure).energy_eV / len(structure)
        computed_s = time.perf_counter() - started
        time.sleep(max(0.0, self.options.wait_s - computed_s))
        return OracleResult(
            properties={"energy_per_atom": PropertyValue(value=energy, unit="eV/atom")},
            provenance={
                "code": "lammps single point",
                "compute_s": computed_s,
                "stand_in": "remote job latency",
                **self.options.parameters(),
            },
        )


def install_plugin(root: Path) -> None:
    """Make ``remote_job`` an installed oracle type for this process and every process it
    starts (Dask workers): a ``*.dist-info`` with its entry point in ``root``, and ``root`` and
    the repository on ``sys.path`` and ``PYTHONPATH``."""
    info = root / PLUGIN_DIST
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: amloop-scale-bench\nVersion: 0\n")
    (info / "entry_points.txt").write_text(
        f"[amloop.oracles]\n{RemoteJobOracle.type_name} = benchmarks.scale:RemoteJobOracle\n"
    )
    for path in (str(REPO), str(root)):
        if path not in sys.path:
            sys.path.insert(0, path)
    paths = [str(root), str(REPO), *filter(None, os.environ.get("PYTHONPATH", "").split(":"))]
    os.environ["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))


# --------------------------------------------------------------------------- PostgreSQL
@contextmanager
def database(url: str | None, work_dir: Path) -> Iterator[str]:
    """``url`` as given, or the URL of a throw-away server with its data in ``work_dir``."""
    if url:
        yield url
        return
    from amloop.state.database import dispose_engines
    from amloop.state.local_postgres import LocalPostgres, postgres_bindir

    bindir = postgres_bindir()
    if bindir is None:
        raise SystemExit("no /usr/lib/postgresql/*/bin/initdb: make system-deps")
    server = LocalPostgres(bindir, work_dir)  # its data kept there for --resume
    server.start()
    try:
        yield server.url.render_as_string(hide_password=False)
    finally:
        dispose_engines()
        server.halt()


# --------------------------------------------------------------------------- the campaign
def campaign_config(wait_s: float, calls_per_task: int | str) -> dict[str, Any]:
    """The campaign: Cu-Zr, both oracles, energy per atom minimised (multi-fidelity)."""
    return {
        "name": CAMPAIGN,
        "description": "scale-out load test (benchmarks/scale.py)",
        "elements": ["Cu", "Zr"],
        "bounds": {"Cu": list(CU_RANGE)},
        "cell": {"n_atoms": N_ATOMS, "lattice": LATTICE},
        "objectives": [{"property": "energy_per_atom", "direction": "minimize"}],
        "oracles": [
            {
                "name": ORACLES["lammps"],
                "type": "lammps",
                "fidelity": 0.5,
                "cost": {"core_s": 0.2},
                "timeout_s": 120,
                "options": {"potential": POTENTIAL, "method": "elastic"},
            },
            {
                "name": ORACLES["remote"],
                "type": RemoteJobOracle.type_name,
                "fidelity": 0.9,
                "cost": {"core_s": 0.1},
                "timeout_s": 60 + 2 * wait_s,
                "options": {"potential": POTENTIAL, "wait_s": wait_s},
            },
        ],
        "budget": {"core_hours": 1000.0, "evaluations": {n: 1_000_000 for n in ORACLES.values()}},
        "acquisition": {"batch_size": 4},
        "execution": {"executor": "dask", "n_workers": 1, "calls_per_task": calls_per_task},
    }


def open_campaign(url: str, config: dict[str, Any]) -> Any:
    """The campaign's store (created the first time; a resumed one gets ``config``'s
    execution and oracle settings, e.g. another ``--calls-per-task``)."""
    from amloop.state.store import CampaignExists, CampaignStore

    try:
        return CampaignStore.create(url, CAMPAIGN, config)
    except CampaignExists:
        return CampaignStore.open(url, CAMPAIGN)


def store_candidates(store: Any, n: int, seed: int) -> list[str]:
    """Store ``n`` new random solid solutions; returns their content hashes (s: not timed)."""
    from amloop.generator.solid_solution import random_solid_solution
    from amloop.state.schema import Candidate

    rng = np.random.default_rng(seed)
    hashes: list[str] = []
    while len(hashes) < n:
        cu = float(rng.uniform(*CU_RANGE))
        structure = random_solid_solution({"Cu": cu, "Zr": 1 - cu}, LATTICE, N_ATOMS, rng)
        candidate = Candidate(
            structure=structure, origin="seed", provenance={"builder": "benchmarks/scale.py"}
        )
        if store.candidate(candidate.content_hash) is None:
            hashes.append(store.add_candidate(candidate).content_hash)
    return hashes


# --------------------------------------------------------------------------- one stage
@dataclass
class StageResult:
    """One oracle at one worker count."""

    oracle: str
    workers: int
    calls_per_task: int | str  # execution.calls_per_task: a number or "auto"
    calls: int  # timed calls (warm-up calls excluded)
    warmup_calls: int  # one per worker, one call per task
    wall_s: float
    oracle_s: float  # mean call time measured inside the oracle (s)
    ideal_calls_per_s: float
    statuses: dict[str, int]
    lost: int
    doubled: int
    write_ms: list[float]  # record_evaluation latencies of the write probe (ms)
    campaign_evaluations: int  # finished evaluations in the campaign after the stage
    acquisition_s: float
    wait_s: float
    started: str = field(default_factory=lambda: datetime.now(UTC).isoformat())
    chunk: int | None = None  # calls per task the timed calls were mapped in (kept since "auto")

    @property
    def calls_per_s(self) -> float:
        return self.calls / self.wall_s

    @property
    def efficiency(self) -> float:
        return self.calls_per_s / self.ideal_calls_per_s

    @property
    def overhead_ms(self) -> float:
        """Worker time per call not spent inside the oracle (ms)."""
        return 1000.0 * (self.workers * self.wall_s / self.calls - self.oracle_s)

    @property
    def key(self) -> str:
        return f"{self.oracle}-w{self.workers:02d}-k{self.calls_per_task}"


def stage_key(oracle: str, workers: int, calls_per_task: int | str) -> str:
    return f"{oracle}-w{workers:02d}-k{calls_per_task}"


#: Run on every Dask worker before a stage (``Client.run``): the imports and the oracle of a
#: task, so that no worker's first timed call pays for them.
WARM_WORKER = """
import amloop.loop.flows
from amloop.loop.steps.run import oracle_instance
from amloop.state.config import OracleConfig
oracle_instance(OracleConfig.model_validate_json({config!r}))
"""


def timed_fan_out(
    url: str, directory: Path, oracle_name: str, hashes: list[str], warmup: int, index: int
) -> tuple[float, dict[str, int]]:
    """Body of the stage flow: the warm-up calls, then the timed ones, through
    :func:`loop.flows.fan_out`; returns (wall s of the timed calls, count per status)."""
    from prefect.context import FlowRunContext

    from amloop.loop.flows import fan_out, open_run
    from amloop.loop.runs import RunLimits
    from amloop.loop.steps import EvaluationTask

    limits = RunLimits()
    args = (url, CAMPAIGN, str(directory), limits)
    run = open_run(*args)
    (oracle_config,) = (o for o in run.config.oracles if o.name == oracle_name)
    context = FlowRunContext.get()
    assert context is not None and context.task_runner is not None
    client = context.task_runner.client  # type: ignore[attr-defined]  # DaskTaskRunner's
    client.run(exec, WARM_WORKER.format(config=oracle_config.model_dump_json()))
    execution = run.config.execution.model_copy(update={"calls_per_task": 1})
    single = replace(run, config=run.config.model_copy(update={"execution": execution}))
    tasks = [EvaluationTask(oracle_name, h) for h in hashes]
    statuses = Counter(fan_out(tasks[:warmup], single, args, index))  # one call per task
    started = time.perf_counter()
    statuses.update(fan_out(tasks[warmup:], run, args, index))
    return time.perf_counter() - started, dict(statuses)


def run_flow(
    url: str,
    directory: Path,
    oracle_name: str,
    hashes: list[str],
    warmup: int,
    index: int,
    config: Any,
) -> tuple[float, dict[str, int]]:
    """:func:`timed_fan_out` as a Prefect flow on the task runner ``config`` asks for."""
    import logging

    from prefect import flow

    from amloop.loop.flows import task_runner

    logging.getLogger("distributed").setLevel(logging.WARNING)  # cluster start and stop lines

    stage_flow = flow(name="amloop-scale-stage", task_runner=task_runner(config))(timed_fan_out)
    return stage_flow(url, directory, oracle_name, hashes, warmup, index)  # type: ignore[no-any-return]


def write_counts(store: Any, oracle_name: str, hashes: list[str]) -> tuple[int, int]:
    """(lost, doubled): mapped candidates with no finished evaluation of the oracle, and with
    more than one (rows in the store, not deduplicated)."""
    finished = Counter(
        e.candidate_hash
        for e in store.evaluations(oracle=oracle_name, candidates=hashes, structures=False)
        if e.status in ("done", "failed")
    )
    return sum(finished[h] == 0 for h in hashes), sum(finished[h] > 1 for h in hashes)


def mean_oracle_s(store: Any, oracle_name: str, hashes: list[str]) -> float:
    """Mean time of the calls measured inside the oracle (started to finished, s)."""
    spans = [
        (e.finished_at - e.started_at).total_seconds()
        for e in store.evaluations(oracle=oracle_name, candidates=hashes, structures=False)
        if e.status == "done" and e.started_at and e.finished_at
    ]
    return statistics.fmean(spans) if spans else float("nan")


def time_acquisition(store: Any) -> float:
    """Wall time (s) of one :func:`acquisition.propose.propose` on the campaign as stored."""
    import torch

    from amloop.acquisition.propose import propose
    from amloop.state.config import CampaignConfig

    torch.set_num_threads(1)
    config = CampaignConfig.model_validate(store.info().config)
    started = time.perf_counter()
    propose(store, config, seed=0)
    return time.perf_counter() - started


# --------------------------------------------------------------------------- write probe
def write_probe_worker(url: str, writes: int, seed: int) -> None:
    """One writer process of the probe (``--write-probe``): stores its candidates, says
    ``ready``, waits for a line on stdin, then times ``writes`` ``record_evaluation`` calls of
    finished evaluations (relaxed structure and properties, as an oracle call stores them) and
    prints their latencies (ms) as JSON."""
    from amloop.state.schema import Cost, Evaluation
    from amloop.state.store import CampaignStore

    store = CampaignStore.open(url, PROBE_CAMPAIGN)
    hashes = store_candidates(store, writes, seed)
    evaluations = []
    for h in hashes:
        structure = store.candidate(h).structure  # type: ignore[union-attr]
        evaluations.append(
            Evaluation(
                candidate_hash=h,
                oracle="write_probe",
                fidelity=0.5,
                status="done",
                properties={"energy_per_atom": PropertyValue(value=-4.8, unit="eV/atom")},
                relaxed_structure=structure,
                provenance={"oracle_type": "write_probe"},
                cost=Cost(core_s=0.1),
                attempts=1,
                started_at=datetime.now(UTC),
                finished_at=datetime.now(UTC),
            )
        )
    print("ready", flush=True)
    sys.stdin.readline()
    latencies = []
    for evaluation in evaluations:
        started = time.perf_counter()
        store.record_evaluation(evaluation)
        latencies.append(1000.0 * (time.perf_counter() - started))
    print(json.dumps(latencies), flush=True)


def write_probe(url: str, writers: int, writes: int, seed: int) -> list[float]:
    """``record_evaluation`` latencies (ms) from ``writers`` concurrent writer processes,
    ``writes`` each, on the probe campaign of the same database."""
    from amloop.state.store import CampaignExists, CampaignStore

    with suppress(CampaignExists):
        CampaignStore.create(url, PROBE_CAMPAIGN, {"probe": True})
    command = [sys.executable, "-m", "benchmarks.scale", "--write-probe", url]
    processes = [
        subprocess.Popen(
            [*command, "--probe-writes", str(writes), "--probe-seed", str(seed * 1000 + i)],
            cwd=REPO,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for i in range(writers)
    ]
    for process in processes:  # all set up before any writes
        assert process.stdout is not None
        line = process.stdout.readline()
        if line.strip() != "ready":
            raise RuntimeError(f"write probe did not start: {line!r}")
    for process in processes:
        assert process.stdin is not None
        process.stdin.write("go\n")
        process.stdin.flush()
    latencies: list[float] = []
    for process in processes:
        out, _ = process.communicate(timeout=600)
        if process.returncode != 0:
            raise RuntimeError(f"write probe failed ({process.returncode})")
        latencies.extend(json.loads(out.strip().splitlines()[-1]))
    return latencies


# --------------------------------------------------------------------------- the benchmark
@dataclass(frozen=True)
class Settings:
    """What to run."""

    size: str  # "ci" or "full": the results folder
    workers: list[int]
    oracles: list[str]  # short names, keys of ORACLES
    calls_per_worker: int  # timed calls per stage = calls_per_worker x W
    wait_s: float
    calls_per_task: int | str
    probe_writes: int  # record_evaluation calls per writer process
    out: Path
    work_dir: Path
    database_url: str | None = None
    resume: bool = False


def serial_call_s(oracle: str, wait_s: float, repeats: int = 3) -> float:
    """Median time (s) of one call in this process, one after another: the reference of the
    ideal throughput."""
    from amloop.generator.solid_solution import random_solid_solution
    from amloop.oracles.lammps import LammpsOracle
    from amloop.state.schema import Candidate

    if oracle == "remote":
        return wait_s
    instance = LammpsOracle(potential=POTENTIAL, method="elastic")
    rng = np.random.default_rng(12345)
    times = []
    for _ in range(repeats):
        cell = random_solid_solution({"Cu": 0.5, "Zr": 0.5}, LATTICE, N_ATOMS, rng)
        evaluation = instance.evaluate(Candidate(structure=cell, origin="seed"))
        times.append((evaluation.finished_at - evaluation.started_at).total_seconds())  # type: ignore[operator]
    return statistics.median(times)


def run_stage(
    settings: Settings, url: str, oracle: str, workers: int, index: int, reference_s: float
) -> StageResult:
    """One oracle at one worker count: candidates stored, calls mapped and timed, writes
    checked, the store's write latency probed, acquisition timed."""
    from amloop.loop.flows import chunk_size
    from amloop.state.config import CampaignConfig

    config = campaign_config(settings.wait_s, settings.calls_per_task)
    store = open_campaign(url, config)
    oracle_name = ORACLES[oracle]
    calls = settings.calls_per_worker * workers
    hashes = store_candidates(store, workers + calls, seed=index)
    runner_config = CampaignConfig.model_validate(
        {**config, "execution": {**config["execution"], "n_workers": workers}}
    )
    wall_s, statuses = run_flow(
        url, settings.work_dir / "campaign", oracle_name, hashes, workers, index, runner_config
    )
    lost, doubled = write_counts(store, oracle_name, hashes)
    cores = len(os.sched_getaffinity(0))
    ideal = workers / settings.wait_s if oracle == "remote" else min(workers, cores) / reference_s
    write_ms = write_probe(url, workers, settings.probe_writes, seed=index)
    return StageResult(
        oracle=oracle,
        workers=workers,
        calls_per_task=settings.calls_per_task,
        calls=calls,
        warmup_calls=workers,
        wall_s=wall_s,
        oracle_s=mean_oracle_s(store, oracle_name, hashes[workers:]),
        ideal_calls_per_s=ideal,
        statuses=statuses,
        lost=lost,
        doubled=doubled,
        write_ms=write_ms,
        campaign_evaluations=sum(store.evaluation_counts().values()),
        acquisition_s=time_acquisition(store),
        wait_s=settings.wait_s,
        chunk=chunk_size(settings.calls_per_task, calls, workers),
    )


@contextmanager
def prefect_server() -> Iterator[None]:
    """A temporary Prefect API server; its URL exported for the Dask workers."""
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=180):
        previous = os.environ.get("PREFECT_API_URL")
        os.environ["PREFECT_API_URL"] = str(PREFECT_API_URL.value())
        try:
            yield
        finally:
            if previous is None:
                os.environ.pop("PREFECT_API_URL", None)
            else:
                os.environ["PREFECT_API_URL"] = previous


def load_stages(folder: Path) -> list[StageResult]:
    """The finished stages kept in ``folder`` (every ``--calls-per-task``), in run order."""
    stages = []
    for path in sorted(folder.glob("*.json")):
        data = json.loads(path.read_text())
        stages.append(StageResult(**data))
    order = {name: i for i, name in enumerate(ORACLES)}
    return sorted(stages, key=lambda s: (chunk_order(s.calls_per_task), order[s.oracle], s.workers))


def seed_offset(calls_per_task: int | str) -> int:
    """Offset of a stage's candidate seed per ``calls_per_task`` setting (``auto``: 9900), so
    that runs of different settings in one campaign draw different cells."""
    return 100 * (calls_per_task if isinstance(calls_per_task, int) else 99)


def chunk_order(calls_per_task: int | str) -> tuple[int, int]:
    """Sort key of a ``calls_per_task`` setting: the numbers in order, then ``auto``."""
    return (1, 0) if isinstance(calls_per_task, str) else (0, calls_per_task)


def run_benchmark(settings: Settings) -> list[StageResult]:
    """Every stage not kept yet (all of them without ``resume``); returns all kept stages."""
    folder = settings.out / "stages"
    if not settings.resume:
        shutil.rmtree(folder, ignore_errors=True)
        (settings.out / "commands.txt").unlink(missing_ok=True)
        if settings.database_url is None:
            shutil.rmtree(settings.work_dir, ignore_errors=True)
    folder.mkdir(parents=True, exist_ok=True)
    settings.work_dir.mkdir(parents=True, exist_ok=True)
    install_plugin(settings.work_dir / "plugin")
    plan = [(o, w) for o in settings.oracles for w in settings.workers]
    todo = [
        (o, w)
        for o, w in plan
        if not (folder / f"{stage_key(o, w, settings.calls_per_task)}.json").exists()
    ]
    if todo:
        references = {o: serial_call_s(o, settings.wait_s) for o in settings.oracles}
        with database(settings.database_url, settings.work_dir) as url, prefect_server():
            for oracle, workers in todo:
                index = plan.index((oracle, workers)) + seed_offset(settings.calls_per_task)
                print(f"stage {oracle} x {workers} worker(s) ...", flush=True)
                result = run_stage(settings, url, oracle, workers, index, references[oracle])
                (folder / f"{result.key}.json").write_text(json.dumps(asdict(result), indent=1))
                print(row(result), flush=True)
    return load_stages(folder)


# --------------------------------------------------------------------------- report
HEADER = (
    "| oracle | workers | calls/task | calls | wall s | calls/s | ideal calls/s | efficiency "
    "| oracle ms/call | overhead ms/call | write p50/p95 ms | lost | doubled | campaign size "
    "| acquisition s |\n" + "|---" * 15 + "|"
)


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def row(s: StageResult) -> str:
    """The stage as a markdown table row (``auto`` with the chunk it chose)."""
    per_task = f"auto ({s.chunk})" if s.calls_per_task == "auto" else s.calls_per_task
    return (
        f"| {s.oracle} | {s.workers} | {per_task} | {s.calls} | {s.wall_s:.1f} "
        f"| {s.calls_per_s:.2f} | {s.ideal_calls_per_s:.2f} | {100 * s.efficiency:.0f} % "
        f"| {1000 * s.oracle_s:.0f} | {s.overhead_ms:.0f} "
        f"| {percentile(s.write_ms, 50):.1f} / {percentile(s.write_ms, 95):.1f} "
        f"| {s.lost} | {s.doubled} | {s.campaign_evaluations} | {s.acquisition_s:.1f} |"
    )


def verdicts(stages: list[StageResult], acquisition_10k_s: float | None) -> list[str]:
    """The targets, met or not, as lines."""

    def mark(ok: bool) -> str:
        return "met" if ok else "NOT MET"

    lines = []
    bad = [s.key for s in stages if s.lost or s.doubled]
    lines.append(
        f"- 0 lost or doubled writes at every size: {mark(not bad)}"
        + (f" ({', '.join(bad)})" if bad else "")
    )
    for k in sorted({s.calls_per_task for s in stages}, key=chunk_order):
        remote = [s for s in stages if s.oracle == "remote" and s.calls_per_task == k]
        if remote:
            worst = min(remote, key=lambda s: s.efficiency)
            lines.append(
                f"- waiting oracle >= {100 * TARGET_EFFICIENCY:.0f} % of ideal up to "
                f"{max(s.workers for s in remote)} workers (calls/task {k}): "
                f"{mark(worst.efficiency >= TARGET_EFFICIENCY)} (lowest "
                f"{100 * worst.efficiency:.0f} % at {worst.workers} workers)"
            )
        mine = [s for s in stages if s.calls_per_task == k]
        worst = max(mine, key=lambda s: s.overhead_ms)
        lines.append(
            f"- orchestration overhead <= {TARGET_OVERHEAD_MS:.0f} ms a call (calls/task {k}): "
            f"{mark(worst.overhead_ms <= TARGET_OVERHEAD_MS)} (highest {worst.overhead_ms:.0f} "
            f"ms: {worst.oracle} at {worst.workers} workers)"
        )
    if acquisition_10k_s is None:
        largest = max(stages, key=lambda s: s.campaign_evaluations)
        lines.append(
            f"- acquisition at 10^4 points within {TARGET_ACQUISITION_S:.0f} s: not measured by "
            f"this run (here: {largest.acquisition_s:.1f} s at {largest.campaign_evaluations} "
            "evaluations; `--acquisition-10k` or `python benchmarks/acquisition.py` times "
            "10^4 synthetic points)"
        )
    else:
        lines.append(
            f"- acquisition at 10^4 points within {TARGET_ACQUISITION_S:.0f} s: "
            f"{mark(acquisition_10k_s <= TARGET_ACQUISITION_S)} ({acquisition_10k_s:.1f} s, "
            "benchmarks/acquisition.py's synthetic 10^4 points)"
        )
    return lines


def acquisition_10k_s() -> float:
    """One refit + propose on 10^4 synthetic points (``benchmarks/acquisition.py``), s."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "acquisition_bench", REPO / "benchmarks" / "acquisition.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    seconds, _, _ = module.time_step(10_000, 1)
    return float(seconds)


def recorded_commands(out: Path, command: str) -> list[str]:
    """Every command that wrote into ``out`` (``commands.txt``), this one appended if new."""
    path = out / "commands.txt"
    commands = path.read_text().splitlines() if path.exists() else []
    if command.strip() not in commands:
        commands.append(command.strip())
        path.write_text("\n".join(commands) + "\n")
    return commands


def summary(stages: list[StageResult], settings: Settings, commands: list[str], elapsed_s: float,
            acquisition_10k: float | None) -> str:  # fmt: skip
    """The summary page: the commands that made its stages (in order), table, targets, notes."""
    cores = len(os.sched_getaffinity(0))
    waits = sorted({s.wait_s for s in stages})
    return "\n".join(
        [
            f"# Scale-out load test ({settings.size} size)",
            "",
            "Commands (in order; `--resume` keeps the earlier stages): "
            + "; ".join(f"`{command}`" for command in commands),
            "",
            f"Machine: {cores} cores, {socket.gethostname()}; PostgreSQL on 127.0.0.1, Dask "
            f"LocalCluster (one thread per worker), Prefect temporary API server. Run time of "
            f"this invocation: {elapsed_s / 60:.1f} min. Waiting oracle's wait: "
            f"{', '.join(f'{w:g}' for w in waits)} s.",
            "",
            HEADER,
            *(row(s) for s in stages),
            "",
            "Targets:",
            "",
            *verdicts(stages, acquisition_10k),
            "",
            "Columns: calls = timed calls (W warm-up calls per stage not timed); ideal = W / wait "
            "(remote) or min(W, cores) / the serial call time in one process (lammps); overhead "
            "= W x wall / calls - the mean call time measured inside the oracle; write = "
            "`CampaignStore.record_evaluation` from W concurrent writer processes; lost / "
            "doubled = mapped candidates with 0 / more than 1 finished evaluation of the oracle; "
            "campaign size = finished evaluations after the stage; acquisition = one "
            "`acquisition.propose.propose` on it.",
            "",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="workers 1-16, 60 x W calls, 2 s wait")
    parser.add_argument("--workers", help="worker counts, comma-separated")
    parser.add_argument("--oracles", default="remote,lammps", help="remote and/or lammps")
    parser.add_argument("--calls-per-worker", type=int, help="timed calls per stage / W")
    parser.add_argument("--wait-s", type=float, help="the waiting oracle's wait (s)")
    parser.add_argument(
        "--calls-per-task",
        type=lambda value: value if value == "auto" else int(value),
        default=1,
        help="execution.calls_per_task: a number or auto",
    )
    parser.add_argument("--probe-writes", type=int, help="record_evaluation calls per writer")
    parser.add_argument("--resume", action="store_true", help="skip the stages already kept")
    parser.add_argument("--database-url", help="an existing PostgreSQL database to use")
    parser.add_argument("--work-dir", type=Path, help="PostgreSQL data, plugin, campaign folder")
    parser.add_argument("--out", type=Path, help="results folder")
    parser.add_argument("--acquisition-10k", action="store_true", help="time 10^4 points too")
    parser.add_argument("--write-probe", help=argparse.SUPPRESS)
    parser.add_argument("--probe-seed", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.write_probe:
        write_probe_worker(args.write_probe, args.probe_writes, args.probe_seed)
        return
    size = "full" if args.full else "ci"
    settings = Settings(
        size=size,
        workers=[int(w) for w in (args.workers or ("1,2,4,8,16" if args.full else "1,2,4")).split(",")],
        oracles=args.oracles.split(","),
        calls_per_worker=args.calls_per_worker or (60 if args.full else 4),
        wait_s=args.wait_s if args.wait_s is not None else (2.0 if args.full else 0.5),
        calls_per_task=args.calls_per_task,
        probe_writes=args.probe_writes or (20 if args.full else 5),
        out=args.out or REPO / "benchmarks" / "results" / f"scale-{size}",
        work_dir=args.work_dir or Path(tempfile.gettempdir()) / f"amloop-scale-{size}",
        database_url=args.database_url,
        resume=args.resume,
    )  # fmt: skip
    started = time.perf_counter()
    stages = run_benchmark(settings)
    acquisition = acquisition_10k_s() if args.acquisition_10k else None
    commands = recorded_commands(
        settings.out, "python -m benchmarks.scale " + shlex.join(sys.argv[1:])
    )
    text = summary(stages, settings, commands, time.perf_counter() - started, acquisition)
    (settings.out / "summary.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
