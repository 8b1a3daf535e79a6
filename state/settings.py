"""Machine-level settings (paths, database, device), read from ``AMLOOP_*`` environment variables."""

from __future__ import annotations

from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Where campaigns live and which database and device to use.

    Every field can be set as ``AMLOOP_<FIELD>`` (e.g. ``AMLOOP_DATABASE_URL``).
    """

    model_config = SettingsConfigDict(env_prefix="AMLOOP_", extra="ignore")

    #: Folder holding one sub-folder per campaign (``<home>/<campaign name>``).
    home: Path = Path("campaigns")
    #: SQLAlchemy URL of a shared database (PostgreSQL at scale); empty = one SQLite file per
    #: campaign at ``<campaign dir>/campaign.db``.
    database_url: str = ""
    #: ``auto`` (cuda if available, else cpu), ``cpu`` or ``cuda[:N]``.
    device: str = "auto"
    #: A campaign lock whose heartbeat is older than this (s) may be taken over.
    lock_stale_after_s: float = 120.0
    #: How long (s) an unreachable database is waited for (retries with backoff) before a run
    #: pauses; a database restart or a short network outage then costs no work.
    db_outage_s: float = 300.0

    def campaign_dir(self, name: str) -> Path:
        """Folder of campaign ``name``."""
        return self.home / name

    def database_url_for(self, name: str) -> str:
        """The database URL campaign ``name`` uses."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.campaign_dir(name) / 'campaign.db').resolve()}"
