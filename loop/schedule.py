"""The order of a campaign's iterations: one after another, or overlapped.

An iteration has two halves: *prepare* (acquisition, generator training or fine-tuning,
sampling and latent optimisation; the loop's own work) and *evaluate* (quality gate, oracle
calls, record; :func:`loop.steps.evaluate_iteration`). By default they alternate. With
``execution.overlap`` the next iteration is prepared while the current one's oracle calls run
(asynchronous batch BO): iteration ``k`` sees the evaluations up to ``k - 2`` with iteration
``k - 1``'s proposals pending (:func:`loop.steps.data_cutoff`), so that the oracles do not wait
for the loop when a call is cheap, and what each iteration proposes does not depend on timing.

Data-dependent stops (budget, patience) are decided with no oracle call running: after the
previous iteration's calls finished and before the prepared one's start. A prepared iteration
that then must not run is marked ``failed`` with the reason (``abandoned`` in its metadata); its
candidates stay stored. A crash leaves at most two unfinished iterations; they are finished in
order, one after another, before the schedule goes on.

The callers (the Prefect flow, the discovery benchmark) say how each half runs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from amloop.loop.interrupt import Interrupted
from amloop.loop.steps import CampaignRun, current_iteration, stop_reason


class Waitable(Protocol):
    """A running evaluation half (a ``concurrent.futures`` or Prefect future)."""

    def result(self) -> object:
        """Wait for it; raises what it raised."""
        ...


@dataclass(frozen=True)
class Halves:
    """How the two halves of iteration ``index`` run.

    Attributes:
        prepare: Acquire and generate; returns the hashes of the stored candidates.
        evaluate: Gate, oracle calls, record, finish the iteration (waits for them).
        submit: ``evaluate`` started in the background (used with ``execution.overlap``).
    """

    prepare: Callable[[int], list[str]]
    evaluate: Callable[[int, list[str]], None]
    submit: Callable[[int, list[str]], Waitable]


def run_iterations(
    run: CampaignRun,
    halves: Halves,
    max_iterations: int | None,
    check: Callable[[], None] = lambda: None,
) -> str:
    """Run iterations until :func:`loop.steps.stop_reason` gives a reason; returns it.

    Args:
        run: The campaign.
        halves: How each half of an iteration runs.
        max_iterations: Stop after this many done iterations (``None``: no limit).
        check: Called before each iteration; raises to stop (e.g. the campaign lock was lost).
    """
    unfinished = [r.index for r in run.store.iterations() if r.phase not in ("done", "failed")]
    for index in unfinished[:-1]:  # only an overlapped run leaves two
        halves.evaluate(index, halves.prepare(index))
    if not run.config.execution.overlap:
        while (reason := stop_reason(run, max_iterations)) is None:
            check()
            index = current_iteration(run.store).index
            halves.evaluate(index, halves.prepare(index))
        return reason
    return _overlapped(run, halves, max_iterations, check)


def _overlapped(
    run: CampaignRun, halves: Halves, max_iterations: int | None, check: Callable[[], None]
) -> str:
    running: tuple[int, Waitable] | None = None
    try:
        while True:
            check()
            if running is None:
                if (reason := stop_reason(run, max_iterations)) is not None:
                    return reason
                index = current_iteration(run.store).index
            else:
                done = sum(r.phase == "done" for r in run.store.iterations())
                if max_iterations is not None and done + 1 >= max_iterations:
                    running[1].result()  # the last one allowed: the stop reason follows
                    running = None
                    continue
                index = run.store.start_iteration(running[0] + 1).index
            hashes = halves.prepare(index)
            if running is not None:
                running[1].result()
                running = None
                if (reason := stop_reason(run, max_iterations)) is not None:
                    run.store.update_iteration(
                        index, phase="failed", metadata={"abandoned": reason}
                    )
                    return reason
            running = (index, halves.submit(index, hashes))
    except Interrupted:
        running = None  # Ctrl-C: the running calls are not waited for (resume re-queues them)
        raise
    finally:
        if running is not None:  # an error in the loop's half: let the oracle calls finish
            running[1].result()


__all__ = ["Halves", "Waitable", "run_iterations"]
