"""Fixtures of the loop tests: one Prefect test server for the whole session."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")


@pytest.fixture(scope="session")
def prefect_api_url() -> Iterator[str]:
    """URL of a temporary Prefect server (``prefect_test_harness``), shared by the session so
    that subprocesses started by tests can report to it too."""
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    # 30 s by default: too short on a loaded 2-core machine (seen: "Timed out while attempting
    # to connect to ephemeral Prefect API server")
    with prefect_test_harness(server_startup_timeout=180):
        url = PREFECT_API_URL.value()
        assert url, "prefect_test_harness did not start a server"
        yield str(url)
