"""Chaos benchmark: kill ``amloop run`` at uniform random moments, resume, and compare with an
uninterrupted run of the same campaign.

The campaign is the loop tests' 2-iteration Ni-Fe-Cr one (``tests/data/loop_nifecr.yaml``:
6 seed cells, tiny generator, real LAMMPS 2NN-MEAM bulk moduli, energy gate, local-search
crafting), so a trial covers seeding, acquisition, generator training, sampling, latent
optimisation, the gate, oracle calls, crafting and retraining. Per configuration:

- ``local``: the default runner (oracle calls in a thread of the run), SQLite store;
- ``overlap``: ``execution.overlap`` (the oracle half of an iteration in a process pool);
- ``dask-postgres``: the store in a throw-away PostgreSQL server on 127.0.0.1 and the oracle
  calls (the energy gate's and the crafting's included) on a 2-worker Dask LocalCluster;
  every other trial kills a Dask *worker* during an
  oracle call instead of the run (the call must be retried or re-queued, never lost or
  doubled), and the run goes on by itself;
- ``sigint``: Ctrl-C (SIGINT to the run's process group) instead of SIGKILL: exit 130 within
  seconds, then resume.

A SIGKILL goes to the run's process only (``kill -9 PID``): what the run started must end by
itself (its watchdog). Each trial starts a fresh campaign, waits until its store exists, sleeps
``uniform(0, T)`` (``T``: the uninterrupted run's wall time), notes the phase the store shows
(seeding, or the current iteration's phase, and whether an oracle call is in flight), sends the
signal, counts the run's descendants still alive 5 s later, runs ``amloop resume`` (timed), and
compares the store with the uninterrupted run's: evaluations lost (in the reference, missing
here), duplicated (one candidate and oracle recorded twice), stuck (``running``/``pending``
after the resume), candidate set equal, best value equal.

Target (issue 31): every trial of every configuration with 0 lost, 0 duplicated, 0 stuck and
0 surviving children, the candidates and the best value equal.

Usage: ``python -m benchmarks.chaos [--full] [--configs local,overlap,...] [--resume]``; CI size:
2 trials per configuration, full: 20. Each finished trial is kept in
``benchmarks/results/chaos-{ci,full}/trials/`` (``--resume`` skips it), the reference runs in
``build/bench/chaos/``; ``summary.md`` holds the table and the command.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, field
from pathlib import Path

import psutil
import yaml

from amloop.state.database import dispose_engines
from amloop.state.local_postgres import LocalPostgres, postgres_bindir
from amloop.state.store import CampaignStore

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "tests" / "data" / "loop_nifecr.yaml"
CACHE = REPO / "build" / "bench" / "chaos"
RESULTS = REPO / "benchmarks" / "results"
CONFIGURATIONS = ("local", "overlap", "dask-postgres", "sigint")
#: Seconds after a SIGKILL within which every process the run started must have ended.
CHILD_GRACE_S = 5.0
#: Seconds a Ctrl-C'd run may take to exit (the loop's grace plus ending its children).
SIGINT_EXIT_S = 10.0
#: Longest a run or a resume may take (s): more is a hang, reported as such.
RUN_TIMEOUT_S = 900


@dataclass
class Trial:
    """One kill (or worker kill, or Ctrl-C) and its resume, against the reference run."""

    configuration: str
    index: int
    action: str  # "SIGKILL run", "SIGKILL dask worker", "SIGINT group"
    delay_s: float
    phase: str
    exit_code: int | None
    surviving_children: int
    resume_s: float
    lost: int
    duplicated: int
    stuck: int
    candidates_equal: bool
    best_equal: bool
    notes: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        """Everything the issue asks of a trial."""
        return (
            self.lost == self.duplicated == self.stuck == self.surviving_children == 0
            and self.candidates_equal
            and self.best_equal
        )


@dataclass(frozen=True)
class Reference:
    """The uninterrupted run of a configuration."""

    wall_s: float
    evaluations: list[tuple[str, str, str]]  # (candidate hash, oracle, status), sorted
    candidates: list[str]
    best: float | None


# ----------------------------------------------------------------------------- campaigns


def campaign_yaml(configuration: str, folder: Path) -> Path:
    """The benchmark's campaign file for ``configuration``, written into ``folder``."""
    data = yaml.safe_load(CONFIG.read_text())
    if configuration == "overlap":
        data["execution"] = {**data["execution"], "overlap": True}
    if configuration == "dask-postgres":
        data["execution"] = {**data["execution"], "executor": "dask", "n_workers": 2}
    path = folder / f"chaos-{configuration}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def environment(home: Path, prefect_api_url: str, database_url: str | None) -> dict[str, str]:
    """The environment of one ``amloop`` process of a trial."""
    env = {
        **os.environ,
        "AMLOOP_HOME": str(home),
        "PREFECT_API_URL": prefect_api_url,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_LOGGING_LEVEL": "WARNING",
        "OMP_NUM_THREADS": "1",
    }
    env.pop("AMLOOP_DATABASE_URL", None)
    if database_url is not None:
        env["AMLOOP_DATABASE_URL"] = database_url
    return env


def amloop(*args: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """``amloop ARGS`` in a new session (its own process group), output captured."""
    return subprocess.Popen(
        [sys.executable, "-m", "amloop", *args],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )


def store_url(home: Path, name: str, database_url: str | None) -> str:
    """Where the campaign ``name`` of a trial lives."""
    return database_url or f"sqlite:///{home / name / 'campaign.db'}"


def campaign_name() -> str:
    return str(yaml.safe_load(CONFIG.read_text())["name"])


def snapshot(url: str, name: str) -> tuple[list[tuple[str, str, str]], list[str], float | None]:
    """``(evaluations, candidates, best)`` of a campaign: what must equal the reference."""
    store = CampaignStore.open(url, name)
    try:
        evaluations = sorted((e.candidate_hash, e.oracle, e.status) for e in store.evaluations())
        candidates = sorted(c.content_hash for c in store.candidates())
        rejected = store.gate_rejected()
        values = [
            e.properties["bulk_modulus"].value
            for e in store.evaluations(status="done", structures=False)
            if "bulk_modulus" in e.properties and e.candidate_hash not in rejected
        ]
        return evaluations, candidates, max(values) if values else None
    finally:
        dispose_engines()


def store_phase(url: str, name: str) -> str:
    """The phase the store shows now: ``seeding`` before any iteration, else the current
    iteration's phase, with ``+ oracle call`` while a call is in flight."""
    try:
        store = CampaignStore.open(url, name)
        iterations = store.iterations()
        running = store.evaluations(status="running", structures=False)
    except Exception:  # the store is being created: before seeding
        return "start-up"
    finally:
        dispose_engines()
    phase = "seeding" if not iterations else f"{iterations[-1].phase} ({iterations[-1].index})"
    if iterations and iterations[-1].phase == "done":
        phase = f"between iterations ({iterations[-1].index})"
    return phase + (" + oracle call" if running else "")


# ----------------------------------------------------------------------------- processes


def descendants(pid: int) -> list[psutil.Process]:
    """Every live process below ``pid``."""
    with suppress(psutil.Error):
        return psutil.Process(pid).children(recursive=True)
    return []


def dask_workers(pid: int) -> list[psutil.Process]:
    """The Dask worker processes among ``pid``'s descendants (the LocalCluster's nannies start
    them with multiprocessing's spawn; the Prefect server is a uvicorn process)."""
    found = []
    for process in descendants(pid):
        with suppress(psutil.Error):
            if "spawn_main" in " ".join(process.cmdline()):
                found.append(process)
    return found


def surviving(processes: list[psutil.Process]) -> int:
    """How many of ``processes`` are still alive :data:`CHILD_GRACE_S` s from now (they are
    then killed, so the next trial starts clean)."""
    _, alive = psutil.wait_procs(processes, timeout=CHILD_GRACE_S)
    for process in alive:
        with suppress(psutil.Error):
            process.kill()
    return len(alive)


def wait_for_store(run: subprocess.Popen[bytes], url: str, name: str) -> None:
    """Until the run has created its campaign (imports take seconds on a loaded machine)."""
    deadline = time.monotonic() + 300
    while run.poll() is None and time.monotonic() < deadline:
        with suppress(Exception):
            CampaignStore.open(url, name)
            dispose_engines()
            return
        time.sleep(0.2)
    stderr = run.communicate(timeout=10)[1] if run.poll() is not None else b""
    raise RuntimeError(f"amloop run did not create its campaign: {last_line(stderr)}")


# ----------------------------------------------------------------------------- runs


@contextmanager
def prefect_server() -> Iterator[str]:
    """A temporary Prefect API server for the benchmark's processes."""
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=180):
        yield str(PREFECT_API_URL.value())


@contextmanager
def database_server(configurations: list[str]) -> Iterator[LocalPostgres | None]:
    """The throw-away PostgreSQL server, when a configuration needs one."""
    if "dask-postgres" not in configurations:
        yield None
        return
    bindir = postgres_bindir()
    if bindir is None:
        raise SystemExit("dask-postgres needs Debian's postgresql package (make system-deps)")
    server = LocalPostgres(bindir)
    server.start()
    try:
        yield server
    finally:
        dispose_engines()
        server.stop()


def reference_run(
    configuration: str, prefect_api_url: str, server: LocalPostgres | None
) -> Reference:
    """The uninterrupted run (cached in ``build/bench/chaos``; Ctrl-C trials share the local
    runner's)."""
    runner = "local" if configuration == "sigint" else configuration
    cached = cached_reference(configuration)
    if cached is not None:
        return cached
    with tempfile.TemporaryDirectory(prefix="chaos-ref-") as folder:
        home = Path(folder)
        url = server.create_database("chaos_reference") if server else None
        env = environment(home, prefect_api_url, url)
        name = campaign_name()
        started = time.monotonic()
        run = amloop("run", str(campaign_yaml(runner, home)), env=env)
        _, stderr = run.communicate(timeout=RUN_TIMEOUT_S)
        wall = time.monotonic() - started
        if run.returncode != 0:
            raise RuntimeError(f"the reference run failed:\n{stderr.decode()[-3000:]}")
        evaluations, candidates, best = snapshot(store_url(home, name, url), name)
    reference = Reference(wall, evaluations, candidates, best)
    CACHE.mkdir(parents=True, exist_ok=True)
    reference_file(configuration).write_text(json.dumps(asdict(reference)))
    return reference


def reference_file(configuration: str) -> Path:
    """Where a configuration's uninterrupted run is kept (Ctrl-C trials share the local
    runner's)."""
    return CACHE / f"reference-{'local' if configuration == 'sigint' else configuration}.json"


def cached_reference(configuration: str) -> Reference | None:
    """The kept uninterrupted run of ``configuration``, if any."""
    path = reference_file(configuration)
    if not path.is_file():
        return None
    data = json.loads(path.read_text())
    evaluations = [(h, o, status) for h, o, status in data["evaluations"]]
    return Reference(data["wall_s"], evaluations, data["candidates"], data["best"])


def trial(
    configuration: str,
    index: int,
    reference: Reference,
    prefect_api_url: str,
    server: LocalPostgres | None,
) -> Trial:
    """One trial: start, wait a uniform random time, signal, check the children, resume,
    compare."""
    rng = random.Random(f"{configuration}-{index}")
    kill_worker = configuration == "dask-postgres" and index % 2 == 1
    action = (
        "SIGINT group"
        if configuration == "sigint"
        else "SIGKILL dask worker"
        if kill_worker
        else "SIGKILL run"
    )
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="chaos-") as folder:
        home = Path(folder)
        url = server.create_database(f"chaos_trial_{index}") if server else None
        env = environment(home, prefect_api_url, url)
        name = campaign_name()
        where = store_url(home, name, url)
        run = amloop("run", str(campaign_yaml(configuration, home)), env=env)
        wait_for_store(run, where, name)
        delay = rng.uniform(0.0, reference.wall_s)
        if kill_worker:  # during an oracle call, so the call itself is interrupted
            delay = wait_for_oracle_call(run, where, name, delay)
        else:
            time.sleep(delay)
        phase = store_phase(where, name)
        children = descendants(run.pid)
        exit_code: int | None = None
        survivors = 0
        if kill_worker:
            workers = dask_workers(run.pid)
            if workers:
                rng.choice(workers).kill()
            else:
                notes.append("no Dask worker was running: nothing killed")
            _, stderr = run.communicate(timeout=RUN_TIMEOUT_S)
            exit_code = run.returncode
            if exit_code != 0:
                notes.append("run failed after the worker kill: " + last_line(stderr))
            survivors = surviving(children)
        elif configuration == "sigint":
            sent = time.monotonic()
            with suppress(ProcessLookupError):
                os.killpg(run.pid, signal.SIGINT)
            try:
                _, stderr = run.communicate(timeout=60)
            finally:
                run.kill()
            exit_code = run.returncode
            took = time.monotonic() - sent
            if exit_code not in (0, 130):
                notes.append(f"exit {exit_code}: " + last_line(stderr))
            if exit_code == 130 and took > SIGINT_EXIT_S:
                notes.append(f"took {took:.1f} s to exit after Ctrl-C")
            if b"Traceback" in stderr:
                notes.append("traceback on Ctrl-C")
            survivors = surviving(children)
        else:
            run.kill()  # kill -9 PID: the run only, its children must end by themselves
            run.wait()
            exit_code = run.returncode
            survivors = surviving(children)
        started = time.monotonic()
        resume = amloop("resume", name, env=env)
        _, stderr = resume.communicate(timeout=RUN_TIMEOUT_S)
        resume_s = time.monotonic() - started
        if resume.returncode != 0:
            notes.append("resume failed: " + last_line(stderr))
        evaluations, candidates, best = snapshot(where, name)
    counts = Counter((h, o) for h, o, _ in evaluations)
    return Trial(
        configuration=configuration,
        index=index,
        action=action,
        delay_s=round(delay, 2),
        phase=phase,
        exit_code=exit_code,
        surviving_children=survivors,
        resume_s=round(resume_s, 1),
        lost=len(set(reference.evaluations) - set(evaluations)),
        duplicated=sum(n - 1 for n in counts.values() if n > 1),
        stuck=sum(status in ("running", "pending") for *_, status in evaluations),
        candidates_equal=candidates == reference.candidates,
        best_equal=best == reference.best,
        notes=notes,
    )


def wait_for_oracle_call(
    run: subprocess.Popen[bytes], url: str, name: str, not_before_s: float
) -> float:
    """Sleep ``not_before_s``, then until an iteration's oracle call is in flight on the
    cluster; the seconds waited."""
    started = time.monotonic()
    time.sleep(not_before_s)
    while run.poll() is None and time.monotonic() - started < RUN_TIMEOUT_S:
        phase = store_phase(url, name)
        if phase.endswith("oracle call") and not phase.startswith("seeding"):
            break
        time.sleep(0.05)
    return time.monotonic() - started


def last_line(stderr: bytes) -> str:
    lines = [line for line in stderr.decode(errors="replace").splitlines() if line.strip()]
    return lines[-1][:200] if lines else "(no output)"


# ----------------------------------------------------------------------------- report


def render(trials: list[Trial], references: dict[str, Reference], command: str) -> str:
    """The summary table per configuration, then one row per trial."""
    lines = [
        f"Chaos benchmark (`{command}`): the 2-iteration Ni-Fe-Cr campaign of",
        "`tests/data/loop_nifecr.yaml` killed at a uniform random moment of its run, resumed,",
        "and compared with an uninterrupted run of the same configuration.",
        "",
        "| configuration | uninterrupted run (s) | trials | clean | lost | duplicated | stuck"
        " | surviving children | candidates equal | best equal | resume (s, median) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for configuration, reference in references.items():
        mine = [t for t in trials if t.configuration == configuration]
        if not mine:
            continue
        resumes = sorted(t.resume_s for t in mine)
        lines.append(
            f"| {configuration} | {reference.wall_s:.0f} | {len(mine)} | "
            f"{sum(t.clean for t in mine)}/{len(mine)} | {sum(t.lost for t in mine)} | "
            f"{sum(t.duplicated for t in mine)} | {sum(t.stuck for t in mine)} | "
            f"{sum(t.surviving_children for t in mine)} | "
            f"{sum(t.candidates_equal for t in mine)}/{len(mine)} | "
            f"{sum(t.best_equal for t in mine)}/{len(mine)} | {resumes[len(resumes) // 2]:.0f} |"
        )
    clean = sum(t.clean for t in trials)
    lines += [
        "",
        f"Target: every trial clean (0 lost, 0 duplicated, 0 stuck, 0 surviving children, same"
        f" candidates and best): {'met' if clean == len(trials) else 'not met'}"
        f" ({clean}/{len(trials)}).",
        "",
        "Where the signals landed: "
        + ", ".join(f"{phase} {n}" for phase, n in Counter(t.phase for t in trials).most_common())
        + ".",
        "",
        "| configuration | trial | signal | after (s) | phase | exit | survivors | resume (s)"
        " | lost | dup | stuck | clean | notes |",
        "| --- | ---: | --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |",
    ]
    for t in trials:
        lines.append(
            f"| {t.configuration} | {t.index} | {t.action} | {t.delay_s:.1f} | {t.phase} | "
            f"{t.exit_code} | {t.surviving_children} | {t.resume_s:.0f} | {t.lost} | "
            f"{t.duplicated} | {t.stuck} | {'yes' if t.clean else 'NO'} | "
            f"{'; '.join(t.notes)} |"
        )
    return "\n".join(lines) + "\n"


def report_kept(folder: Path, configurations: list[str], n_trials: int, command: str) -> None:
    """Write and print the summary of the trials kept in ``folder`` so far."""
    references = {c: r for c in configurations if (r := cached_reference(c)) is not None}
    trials = [
        load_trial(path)
        for c in references
        for index in range(n_trials)
        if (path := folder / "trials" / f"{c}-{index}.json").is_file()
    ]
    text = render(trials, references, command)
    if len(trials) < n_trials * len(configurations):
        text = (
            f"**Cut short: {len(trials)} of {n_trials * len(configurations)} trials so far;"
            f" `{command} --resume` runs the rest.**\n\n" + text
        )
    (folder / "summary.md").write_text(text)
    print(text)


def load_trial(path: Path) -> Trial:
    return Trial(**json.loads(path.read_text()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--full", action="store_true", help="20 trials per configuration")
    parser.add_argument("--trials", type=int, help="trials per configuration (2 CI, 20 full)")
    parser.add_argument("--configs", default=",".join(CONFIGURATIONS), help="comma-separated")
    parser.add_argument("--resume", action="store_true", help="keep trials finished earlier")
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="summarise the trials kept so far (a run cut short) without starting any",
    )
    args = parser.parse_args()
    size = "full" if args.full else "ci"
    n_trials = args.trials or (20 if args.full else 2)
    configurations = [c for c in args.configs.split(",") if c]
    unknown = set(configurations) - set(CONFIGURATIONS)
    if unknown:
        parser.error(f"unknown configuration(s) {sorted(unknown)}: use {CONFIGURATIONS}")
    folder = RESULTS / f"chaos-{size}"
    (folder / "trials").mkdir(parents=True, exist_ok=True)
    command = "python -m benchmarks.chaos" + (" --full" if args.full else "")
    if args.trials:
        command += f" --trials {args.trials}"
    if args.report_only:
        report_kept(folder, configurations, n_trials, command)
        return
    references: dict[str, Reference] = {}
    trials: list[Trial] = []
    with prefect_server() as prefect_api_url, database_server(configurations) as postgres:

        def server(configuration: str) -> LocalPostgres | None:
            return postgres if configuration == "dask-postgres" else None

        for configuration in configurations:
            references[configuration] = reference_run(
                configuration, prefect_api_url, server(configuration)
            )
            print(f"{configuration}: uninterrupted run {references[configuration].wall_s:.0f} s")
        for index in range(n_trials):  # round-robin: a run cut short covers every configuration
            for configuration in configurations:
                path = folder / "trials" / f"{configuration}-{index}.json"
                if args.resume and path.is_file():
                    trials.append(load_trial(path))
                    continue
                result = trial(
                    configuration,
                    index,
                    references[configuration],
                    prefect_api_url,
                    server(configuration),
                )
                path.write_text(json.dumps(asdict(result), indent=1))
                trials.append(result)
                print(
                    f"  {configuration} trial {index}: {result.action} after"
                    f" {result.delay_s:.1f} s in {result.phase}:"
                    f" {'clean' if result.clean else 'NOT CLEAN'} {'; '.join(result.notes)}",
                    flush=True,
                )
    trials.sort(key=lambda t: (configurations.index(t.configuration), t.index))
    text = render(trials, references, command)
    (folder / "summary.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
