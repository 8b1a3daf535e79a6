"""How every ``amloop`` command names its campaign: positionally or with ``-c/--campaign``."""

from __future__ import annotations

from typing import Annotated

import typer

CampaignOption = Annotated[
    str | None,
    typer.Option(
        "--campaign",
        "-c",
        envvar="AMLOOP_CAMPAIGN",
        help="campaign name or folder (default: the last one used)",
    ),
]
#: The positional form of :data:`CampaignOption` (``amloop status nifecr``).
CampaignArgument = Annotated[
    str | None,
    typer.Argument(
        help="campaign name or folder, as -c (default: the last one used)", show_default=False
    ),
]


def either_campaign(positional: str | None, option: str | None) -> str | None:
    """The campaign given positionally or with ``-c`` (the same one if both)."""
    if positional is not None and option is not None and positional != option:
        raise typer.BadParameter(
            f"two campaigns given: '{positional}' and -c '{option}'; name one of them"
        )
    return positional if positional is not None else option
