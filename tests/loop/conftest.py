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

    with prefect_test_harness():
        url = PREFECT_API_URL.value()
        assert url, "prefect_test_harness did not start a server"
        yield str(url)
