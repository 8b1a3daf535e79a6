"""The commands behind ``amloop generator train|pretrain|sample|optimize`` (registered in loop/cli.py)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer

if TYPE_CHECKING:  # torch and the model load when a command runs
    from pymatgen.core import Structure


def _floats(text: str) -> list[float]:
    try:
        return [float(x) for x in text.replace(" ", "").split(",") if x]
    except ValueError:
        raise typer.BadParameter(f"'{text}' is not a comma-separated list of numbers") from None


def campaign_training_data(
    campaign: str | None,
) -> tuple[list[tuple[Structure, dict[str, float]]], list[str]]:
    """``(structure, properties)`` of every finished evaluation of a campaign (relaxed
    structures where the oracle relaxed), and the campaign's elements."""
    from amloop.loop.campaigns import resolve_campaign
    from amloop.state.settings import Settings

    handle = resolve_campaign(campaign, Settings())
    store = handle.store()
    candidates = {c.content_hash: c for c in store.candidates()}
    data = []
    for evaluation in store.evaluations(status="done"):
        structure = evaluation.relaxed_structure or candidates[evaluation.candidate_hash].structure
        data.append((structure, {k: v.value for k, v in evaluation.properties.items()}))
    return data, handle.config.elements


def train(
    output: Annotated[Path, typer.Option("--out", "-o", help="checkpoint folder to write")],
    data: Annotated[Path | None, typer.Option(help="extxyz with properties in atoms.info")] = None,
    campaign: Annotated[
        str | None, typer.Option("--campaign", "-c", help="train on a campaign's results")
    ] = None,
    elements: Annotated[
        str | None, typer.Option(help="all elements the model must know, e.g. Fe,Co,Ni")
    ] = None,
    properties: Annotated[
        str | None, typer.Option(help="property heads, e.g. bulk_modulus")
    ] = None,
    epochs: Annotated[int | None, typer.Option(min=1)] = None,
    preset: Annotated[
        Literal["paper", "tiny"], typer.Option(help="paper = Table S1 sizes")
    ] = "paper",
    resume: Annotated[bool, typer.Option(help="continue an interrupted training in --out")] = False,
    seed: int = 0,
) -> None:
    """Train a Cond-CDVAE on an extxyz file or on a campaign's finished evaluations."""
    from amloop.generator.cdvae import CondCDVAE
    from amloop.generator.config import CondCDVAEConfig
    from amloop.generator.data import read_training_data

    if (data is None) == (campaign is None):
        raise typer.BadParameter("give exactly one of --data or --campaign")
    if data is not None:
        pairs = read_training_data(data, properties.split(",") if properties else None)
        known: list[str] = []
    else:
        pairs, known = campaign_training_data(campaign)
    if not pairs:
        raise typer.BadParameter("no training structures found")
    model = CondCDVAE(CondCDVAEConfig.preset(preset), seed=seed)
    history = model.fit(
        pairs,
        epochs=epochs,
        checkpoint_dir=output,
        resume=resume,
        progress=True,
        elements=elements.split(",") if elements else (known or None),
        property_names=properties.split(",") if properties else None,
    )
    model.save(output)
    typer.echo(
        f"trained on {len(pairs)} structures: best validation loss {history.best_val_loss:.4g} "
        f"at epoch {history.best_epoch}; checkpoint {output} (sha256 {str(model.checkpoint_sha256)[:12]})"
    )


def pretrain(
    config: Annotated[
        Path, typer.Argument(help="campaign YAML of the family (elements, bounds, md)")
    ],
    output: Annotated[Path, typer.Option("--out", "-o", help="the prior's folder")],
    compositions: Annotated[
        int, typer.Option(min=2, help="melt-quenches, one per composition")
    ] = 12,
    every_ps: Annotated[float, typer.Option(min=0.01, help="ps between kept configurations")] = 1.0,
    below_k: Annotated[
        float, typer.Option("--below-K", min=1.0, help="keep configurations from this T (K) down")
    ] = 1000.0,
    epochs: Annotated[int, typer.Option(min=1, help="training epochs")] = 50,
    preset: Annotated[
        Literal["paper", "tiny"], typer.Option(help="paper = Table S1 sizes")
    ] = "tiny",
    md: Annotated[
        str | None, typer.Option(help="md oracle of the YAML (default: the first)")
    ] = None,
    seed: int = 0,
) -> None:
    """Build a generator prior: melt-quench trajectories over the family's compositions, their
    relaxed snapshots as a corpus, the Cond-CDVAE trained on it, a data card. Resumable."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from amloop.loop.prior import pretrain as build_prior
    from amloop.oracles.md import MDOracle, SnapshotPlan
    from amloop.oracles.registry import oracle_from_config
    from amloop.state.config import ConfigError, load_config

    campaign = load_config(config)
    chosen = [o for o in campaign.oracles if o.type == MDOracle.type_name and md in (None, o.name)]
    if not chosen:
        raise ConfigError(
            f"{config}: no md oracle{f' named {md!r}' if md else ''} to melt-quench with"
        )
    engine = oracle_from_config(chosen[0])
    assert isinstance(engine, MDOracle)
    with Progress(
        TextColumn("[bold]melt-quench[/]"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        TextColumn("{task.description}"),
    ) as bar:  # fmt: skip
        task = bar.add_task("", total=compositions)
        card = build_prior(
            output,
            campaign,
            engine,
            n_compositions=compositions,
            snapshots=SnapshotPlan(every_ps=every_ps, below_K=below_k),
            epochs=epochs,
            preset=preset,
            seed=seed,
            progress=lambda done, total, what: bar.update(task, completed=done, description=what),
        )
    typer.echo(card.read_text())


def sample(
    checkpoint: Annotated[Path, typer.Option(help="checkpoint folder")],
    composition: Annotated[str, typer.Option(help="e.g. Fe0.2Co0.2Ni0.2Mo0.1B0.1O0.2")],
    pdm_target: Annotated[str | None, typer.Option(help="PDM vector, comma-separated")] = None,
    n: Annotated[int, typer.Option("-n", min=1, help="structures to sample")] = 8,
    n_atoms: Annotated[int | None, typer.Option(help="atoms per cell (default: predicted)")] = None,
    output: Annotated[Path, typer.Option("--output", "-o")] = Path("samples.extxyz"),
    seed: int = 0,
) -> None:
    """Sample structures for one composition (+ PDM target); prints the PDM error of each."""
    import numpy as np

    from amloop.generator.cdvae import CondCDVAE
    from amloop.generator.sample import Condition
    from amloop.loop.export import write_extxyz
    from amloop.state.composition import parse_composition

    model = CondCDVAE.load(checkpoint)
    fractions = parse_composition(composition)
    target = _floats(pdm_target) if pdm_target else None
    if target is not None and len(target) != len(model.pdm_labels):
        raise typer.BadParameter(
            f"the PDM target needs {len(model.pdm_labels)} values ({', '.join(model.pdm_labels)})"
        )
    candidates = model.sample([Condition(fractions, target)], n, seed=seed, n_atoms=n_atoms)
    write_extxyz(candidates, output)
    for index, candidate in enumerate(candidates):
        pdm = model.pdm(candidate.structure)
        reference = np.asarray(candidate.pdm_target) if candidate.pdm_target is not None else None
        error = "" if reference is None else f"  PDM MAE {np.abs(pdm - reference).mean():.3f}"
        typer.echo(
            f"{index}: {candidate.structure.composition.formula} ({len(candidate.structure)} atoms){error}"
        )
    typer.echo(f"wrote {len(candidates)} structures to {output}")


def optimize(
    checkpoint: Annotated[Path, typer.Option(help="checkpoint folder")],
    start: Annotated[Path, typer.Option(help="structures to start from (CIF/POSCAR/extxyz)")],
    property_name: Annotated[str, typer.Option("--property", help="property head to optimise")],
    goal: Annotated[Literal["maximize", "minimize", "target"], typer.Option()] = "maximize",
    target: Annotated[float | None, typer.Option(help="value for goal=target")] = None,
    decode_at: Annotated[
        str, typer.Option(help="Adam steps at which to decode")
    ] = "200,500,1000,1500,2500",
    output: Annotated[Path, typer.Option("--output", "-o")] = Path("optimized.extxyz"),
    seed: int = 0,
) -> None:
    """Move latent vectors along the property head (Adam, lr 1e-3) and decode at chosen steps."""
    import numpy as np

    from amloop.generator.cdvae import CondCDVAE
    from amloop.loop.export import write_extxyz
    from amloop.state.structures import read_structures

    model = CondCDVAE.load(checkpoint)
    steps = [int(x) for x in _floats(decode_at)]
    result = model.optimize_latent(
        read_structures(start),
        property_name=property_name,
        goal=goal,
        target=target,
        decode_at=steps,
        seed=seed,
    )
    decoded = [c for step in sorted(result.candidates) for c in result.candidates[step]]
    write_extxyz(decoded, output)
    for step in sorted(result.candidates):
        predicted = result.predicted[step]
        typer.echo(
            f"step {step}: predicted {property_name} per start: {np.array2string(predicted, precision=4)}"
        )
    typer.echo(f"wrote {len(decoded)} structures to {output}")
