"""Where campaigns live: the campaign folder, its database URL and the "current" campaign.

``amloop init`` creates ``<AMLOOP_HOME>/<name>/`` with the validated ``config.yaml`` and, by
default, a SQLite ``campaign.db``; it also records the campaign as current, so later commands
need no ``--campaign`` argument.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from amloop.oracles.base import OracleSetupError
from amloop.oracles.campaign_potential import uses_campaign_committee
from amloop.oracles.registry import oracle_from_config, oracle_types
from amloop.state.composition import subsystems
from amloop.state.config import (
    CAMPAIGN_NAME_MAX,
    CAMPAIGN_NAME_PATTERN,
    CampaignConfig,
    load_config,
    parse_config,
)
from amloop.state.database import sqlite_path
from amloop.state.settings import Settings
from amloop.state.store import CampaignExists, CampaignNotFound, CampaignStore

CURRENT_FILE = "CURRENT"
CONFIG_FILE = "config.yaml"


class CampaignLookupError(LookupError):
    """No campaign could be found for the command."""


@dataclass(frozen=True)
class CampaignHandle:
    """A campaign's folder, database URL and validated config."""

    name: str
    directory: Path
    database_url: str
    config: CampaignConfig

    def store(self) -> CampaignStore:
        """Open the campaign's store."""
        return CampaignStore.open(self.database_url, self.name)


def init_campaign(config_path: Path, settings: Settings) -> CampaignHandle:
    """Validate ``config_path`` and create the campaign folder, store and current pointer.

    Raises:
        amloop.state.config.ConfigError: the config is invalid.
        amloop.oracles.base.OracleSetupError: an oracle cannot work (a missing potential file,
            an element its potential does not cover); nothing is written.
        amloop.state.config.ConfigError: ``generator.prior`` is missing or of other elements.
        amloop.state.store.CampaignExists: a campaign of that name exists.
    """
    from amloop.loop.prior import check_prior  # MD and ASE: loaded by the commands that init

    config = load_config(config_path, oracle_types=oracle_types())
    check_oracles(config)
    check_prior(config)
    directory = settings.campaign_dir(config.name)
    url = settings.database_url_for(config.name)
    if campaign_exists(url, config.name):  # the database first: unreachable or
        raise CampaignExists(f"campaign '{config.name}' already exists; pick another name")
    directory.mkdir(parents=True, exist_ok=True)  # damaged, it leaves no folder behind
    # the config before the store: a process killed in between leaves a folder that
    # `amloop run CONFIG` completes, never a store without its config
    (directory / CONFIG_FILE).write_text(
        yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)
    )
    store = CampaignStore.create(url, config.name, config.model_dump(mode="json"))
    store.log_event("config", f"config read from {config_path}", payload={"path": str(config_path)})
    _write_current(settings, config.name)
    return CampaignHandle(config.name, directory, url, config)


def campaign_exists(url: str, name: str) -> bool:
    """Whether the database at ``url`` holds campaign ``name``; a SQLite file that does not
    exist yet is not created (``init`` writes ``config.yaml`` before the store, so that a kill
    in between leaves a folder ``amloop resume`` can finish)."""
    store_file = sqlite_path(url)
    if store_file is not None and not store_file.exists():
        return False
    return name in CampaignStore.campaign_names(url)


def check_oracles(config: CampaignConfig) -> None:
    """Build every oracle of ``config`` and check that it covers every subsystem of the
    campaign's composition space (:func:`state.composition.subsystems`: with per-subsystem
    potentials, each binary and ternary a composition can have), so that a campaign that
    cannot run is refused before any store is written or budget spent.

    Raises:
        amloop.oracles.base.OracleSetupError: the first oracle that cannot work, named.
    """
    spaces = subsystems(config.elements, config.bounds)
    for index, oracle_config in enumerate(config.oracles):
        if uses_campaign_committee(oracle_config):
            continue  # fitted by the campaign itself (amloop mlp fit): nothing to load yet
        try:
            oracle = oracle_from_config(oracle_config)
            check = getattr(oracle, "check_elements", None)
            if check is None:
                continue
            for subsystem in spaces:
                check(list(subsystem))
        except OracleSetupError as exc:
            raise OracleSetupError(f"oracles.{index} ({oracle_config.name}): {exc}") from None


def resolve_campaign(
    name: str | None, settings: Settings, *, finish_init: bool = False, make_current: bool = True
) -> CampaignHandle:
    """Find a campaign by name, by its folder in AMLOOP_HOME, or (``None``) the current one; a
    campaign found by name or folder becomes the current one (unless not ``make_current``).

    With ``finish_init`` (``amloop resume``), a campaign whose ``init`` was killed after it
    wrote ``config.yaml`` and before its store row is created from that file.

    Raises:
        CampaignLookupError: nothing found; the message says how to pick one.
    """
    explicit = name is not None
    if name is None:
        name = _read_current(settings)
    elif not _is_name(name):
        name = _folder_name(name, settings)
    directory = settings.campaign_dir(name)
    url = settings.database_url_for(name)
    if not (directory / CONFIG_FILE).is_file():
        raise CampaignLookupError(
            f"no campaign '{name}' under {settings.home}; create one with `amloop init CONFIG`, "
            "or set AMLOOP_HOME to the folder that holds your campaigns"
        )
    try:
        store = CampaignStore.open(url, name)
    except CampaignNotFound:
        if not finish_init:
            raise
        written = load_config(directory / CONFIG_FILE)
        store = CampaignStore.create(url, name, written.model_dump(mode="json"))
        store.log_event("config", f"init finished from {directory / CONFIG_FILE}")
    config = parse_config(store.info().config, source=f"campaign '{name}'")
    if explicit and make_current:
        _write_current(settings, name)  # the campaign last used is the current one
    return CampaignHandle(name, directory, url, config)


def campaign_folders(settings: Settings) -> list[str]:
    """Names of the campaign folders under AMLOOP_HOME (those with a config file), sorted."""
    if not settings.home.is_dir():
        return []
    return sorted(
        p.parent.name for p in settings.home.glob(f"*/{CONFIG_FILE}") if _is_name(p.parent.name)
    )


def current_campaign(settings: Settings) -> str | None:
    """The current campaign's name, or ``None`` when none was used yet."""
    try:
        return _read_current(settings)
    except CampaignLookupError:
        return None


def _is_name(text: str) -> bool:
    return len(text) <= CAMPAIGN_NAME_MAX and re.fullmatch(CAMPAIGN_NAME_PATTERN, text) is not None


def _folder_name(path: str, settings: Settings) -> str:
    """The name of campaign folder ``path``, which must lie directly under AMLOOP_HOME (a store
    elsewhere is never opened, nor migrated, by a path).

    Raises:
        CampaignLookupError: not a name, nor a campaign folder under AMLOOP_HOME.
    """
    folder, home = Path(path).resolve(), settings.home.resolve()
    if folder.parent == home and (folder / CONFIG_FILE).is_file() and _is_name(folder.name):
        return folder.name
    raise CampaignLookupError(
        f"'{path}' is neither a campaign name (letters, digits, _ . - ; at most "
        f"{CAMPAIGN_NAME_MAX}) nor a campaign folder in AMLOOP_HOME ({home}); set AMLOOP_HOME "
        "to the folder that holds the campaign"
    )


def _write_current(settings: Settings, name: str) -> None:
    settings.home.mkdir(parents=True, exist_ok=True)
    (settings.home / CURRENT_FILE).write_text(name + "\n")


def _read_current(settings: Settings) -> str:
    pointer = settings.home / CURRENT_FILE
    if pointer.is_file():
        name = pointer.read_text().strip()
        if not _is_name(name):
            raise CampaignLookupError(f"{pointer} holds '{name[:40]}', not a campaign name")
        return name
    candidates = sorted(p.name for p in settings.home.glob(f"*/{CONFIG_FILE}"))
    raise CampaignLookupError(
        f"no current campaign under {settings.home}: run `amloop init CONFIG` first"
        + (f", or pass --campaign (one of: {', '.join(candidates)})" if candidates else "")
    )
