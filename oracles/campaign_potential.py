"""The campaign's own potential as configuration and folders: which oracles run it
(``model: campaign`` of an ``mlp`` oracle, ``calculator: campaign`` of an ``md`` oracle),
where its committee versions live (``<campaign>/mlp/v001``, ...), and whether one is fitted
yet. Light on purpose (no torch, no matgl): the CLI and the loop ask these questions often."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from amloop.state.config import CampaignConfig, OracleConfig

#: The campaign's own committee as a potential option, resolved to ``committee:<folder>`` by
#: the campaign's run.
CAMPAIGN_MODEL = "campaign"
#: Where in a campaign's folder its committees are fitted.
CAMPAIGN_COMMITTEE_DIR = "mlp"
#: How a potential option names a committee folder fitted by ``amloop mlp fit``:
#: ``committee:/path``.
COMMITTEE_PREFIX = "committee:"
#: A finished committee version folder: ``v001``, ``v002``, ...
VERSION_PATTERN = re.compile(r"^v(\d{3,})$")
#: The summary every finished version holds (settings, labels, metrics, cost).
SUMMARY_FILE = "committee.json"


def committee_versions(root: Path) -> list[Path]:
    """Finished committee versions under ``root``, oldest first."""
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and VERSION_PATTERN.match(p.name)]
    return sorted(found, key=lambda p: int(p.name[1:]))


def newest_committee(root: Path) -> Path | None:
    """The newest finished committee version under ``root``, or ``None``."""
    versions = committee_versions(root)
    return versions[-1] if versions else None


def committee_summary(version: Path) -> dict[str, Any]:
    """The summary of a finished committee version (:data:`SUMMARY_FILE`)."""
    return dict(json.loads((version / SUMMARY_FILE).read_text()))


def member_folders(version: Path) -> list[Path]:
    """The member model folders of a committee version (``member-0``, ``member-1``, ...)."""
    return sorted(version.glob("member-*"), key=lambda p: int(p.name.split("-")[1]))


def with_campaign_committee(config: CampaignConfig, directory: Path) -> CampaignConfig:
    """``config`` with every ``mlp`` oracle's ``model: campaign`` and every ``md`` oracle's
    ``calculator: campaign`` resolved to the committees ``amloop mlp fit`` writes in
    ``directory`` (``committee:<directory>/mlp``)."""
    if not uses_campaign_committee(config):
        return config
    committee = f"{COMMITTEE_PREFIX}{(directory / CAMPAIGN_COMMITTEE_DIR).resolve()}"
    oracles = [
        o.model_copy(update={"options": {**o.options, CAMPAIGN_OPTION[o.type]: committee}})
        if uses_campaign_committee(o)
        else o
        for o in config.oracles
    ]
    return config.model_copy(update={"oracles": oracles})


#: The option that names the potential, per oracle type that can run the campaign's own.
CAMPAIGN_OPTION = {"mlp": "model", "md": "calculator"}


def uses_campaign_committee(config: CampaignConfig | OracleConfig) -> bool:
    """Whether the oracle (or any oracle of the campaign) runs the campaign's own committee."""
    if isinstance(config, CampaignConfig):
        return any(uses_campaign_committee(o) for o in config.oracles)
    option = CAMPAIGN_OPTION.get(config.type)
    return option is not None and config.options.get(option) == CAMPAIGN_MODEL


def committee_missing(config: OracleConfig) -> bool:
    """Whether the oracle runs a committee folder (``committee:/path``, as ``campaign``
    resolves) in which no committee has been fitted yet: it cannot be called until
    ``amloop mlp fit`` (or the loop) fits one."""
    option = CAMPAIGN_OPTION.get(config.type)
    value = config.options.get(option) if option else None
    if not (isinstance(value, str) and value.startswith(COMMITTEE_PREFIX)):
        return False
    return newest_committee(Path(value.removeprefix(COMMITTEE_PREFIX)).expanduser()) is None
