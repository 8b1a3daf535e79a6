"""The steps of a campaign, free of any workflow engine (``loop.flows`` wraps them in Prefect).

One iteration runs the phases ``acquire -> generate -> filter -> evaluate -> record -> retrain
-> done``. The store is the only state: every step reads what it needs from the store and writes
its results there before it returns, and every step is idempotent, so a process killed at any
moment is resumed by running the same steps again:

- proposals are stored in the iteration's metadata the first time and re-read afterwards;
- generator checkpoints live in ``<campaign>/generator/iter-NNN`` (``model.pt`` marks a finished
  training; an interrupted one continues from its resume file);
- sampling is seeded by the campaign seed and the iteration, so regenerating after a crash gives
  the same structures, and candidates are keyed by content hash (stored once);
- an evaluation is keyed by (candidate, oracle, fidelity); finished and failed ones are never
  redone, ``running`` ones left by a dead process are re-queued (:meth:`requeue_running`).

Oracle failures are data (a ``failed`` evaluation with its reason), never exceptions.

Modules:

- :mod:`amloop.loop.steps.run`: A campaign being run (store, config, folder) and what every step shares: the oracle instances of this process, the iteration counter and seeds, the data cut-off of an overlapped schedule.
- :mod:`amloop.loop.steps.seed`: The seed set of a campaign: which oracles score it, built (and completed after failures) before the first iteration.
- :mod:`amloop.loop.steps.training`: The generator's training policy: train at iteration 0, fine-tune on what was scored (at once or spread over iterations), checkpoints and their cost.
- :mod:`amloop.loop.steps.acquire`: The acquisition step: the iteration's proposals (compositions, PDM targets, oracles), stored once.
- :mod:`amloop.loop.steps.calls`: One oracle call on one candidate: budget check, idempotent record, failure as data.
- :mod:`amloop.loop.steps.refinement`: The refinement step of amorphous campaigns: each generated cell relaxed, annealed and relaxed again with the campaign's md engine before the gate; the refined cell is the candidate that is gated and scored.
- :mod:`amloop.loop.steps.sampling`: The generation step: sample for every proposal, latent-optimise the best known structures, carry lattice cells onto their parent lattice, refine amorphous ones.
- :mod:`amloop.loop.steps.gate`: The quality gate of an iteration: crystallised refinements, push-apart, closest pair, structure metrics and the seed-001 energy rule; every verdict stored.
- :mod:`amloop.loop.steps.crafting`: The crafting step (seed 001): atom-swap local searches from the best cells after an iteration's calls, every child stored and scored within the budget.
- :mod:`amloop.loop.steps.planning`: The evaluation half of an iteration: which oracle runs on which survivor (cheap ones on all, dear ones where proposals chose them, lab requests), and running them.
- :mod:`amloop.loop.steps.stopping`: The end of an iteration and of the campaign: the best values recorded, the budget, iteration and patience rules.
"""

from amloop.loop.steps.acquire import ACQUIRE_CORE_S, GP_KEY, acquire
from amloop.loop.steps.calls import EvaluationTask, TaskRunner, evaluate
from amloop.loop.steps.crafting import CRAFT_KEY, craft
from amloop.loop.steps.gate import gate, seed_energy_reference, seed_structures
from amloop.loop.steps.planning import (
    cheap_tasks,
    evaluate_and_finish,
    evaluate_here,
    evaluate_iteration,
    expensive_tasks,
    request_lab,
)
from amloop.loop.steps.refinement import REFINE_ORACLE, refine
from amloop.loop.steps.run import (
    CHEAP_CORE_S,
    CampaignRun,
    current_iteration,
    data_cutoff,
    is_cheap,
    iteration_seed,
    oracle_config,
    oracle_instance,
    set_torch_threads,
)
from amloop.loop.steps.sampling import best_structures, generate, on_lattice, snap_lattice, timings
from amloop.loop.steps.seed import SEED_ATTEMPTS, scored_seed_count, seed, seed_sources
from amloop.loop.steps.stopping import finish_iteration, record, stop_reason
from amloop.loop.steps.training import (
    MODEL_FILE,
    SPREAD_FINETUNE_DIR,
    STARTED_FILE,
    TRAINING_COST_FILE,
    ensure_generator,
    finetuning_subset,
    scored_count,
    training_pairs,
)
from amloop.state.schema import GATE_ORACLE

__all__ = [
    "ACQUIRE_CORE_S",
    "CHEAP_CORE_S",
    "CRAFT_KEY",
    "GATE_ORACLE",
    "GP_KEY",
    "MODEL_FILE",
    "REFINE_ORACLE",
    "SEED_ATTEMPTS",
    "SPREAD_FINETUNE_DIR",
    "STARTED_FILE",
    "TRAINING_COST_FILE",
    "CampaignRun",
    "EvaluationTask",
    "TaskRunner",
    "acquire",
    "best_structures",
    "cheap_tasks",
    "craft",
    "current_iteration",
    "data_cutoff",
    "ensure_generator",
    "evaluate",
    "evaluate_and_finish",
    "evaluate_here",
    "evaluate_iteration",
    "expensive_tasks",
    "finetuning_subset",
    "finish_iteration",
    "gate",
    "generate",
    "is_cheap",
    "iteration_seed",
    "on_lattice",
    "oracle_config",
    "oracle_instance",
    "record",
    "refine",
    "request_lab",
    "scored_count",
    "scored_seed_count",
    "seed",
    "seed_energy_reference",
    "seed_sources",
    "seed_structures",
    "set_torch_threads",
    "snap_lattice",
    "stop_reason",
    "timings",
    "training_pairs",
]
