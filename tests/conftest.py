"""Generic fixtures shared by all test packages: database URLs for SQLite and PostgreSQL, and
the benchmark scripts as modules.

PostgreSQL: when ``AMLOOP_TEST_POSTGRES_URL`` is set (e.g. ``postgresql://postgres@host:5432/
postgres``) that server is used; otherwise one throw-away server is started for the whole test
session from the binaries of Debian's ``postgresql`` package (``/usr/lib/postgresql/*/bin``),
listening on 127.0.0.1 at a free port with trust authentication. Every test gets a fresh
database on that server. Without the binaries the PostgreSQL tests are skipped, except under
CI (``CI`` set), where that is an error.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import pytest
from sqlalchemy.engine import URL, make_url

from amloop.state.database import dispose_engines
from amloop.state.local_postgres import LocalPostgres, postgres_bindir

POSTGRES_URL_ENV = "AMLOOP_TEST_POSTGRES_URL"


@pytest.fixture
def sqlite_url(tmp_path: Path) -> Iterator[str]:
    """URL of a fresh SQLite database file under ``tmp_path``."""
    yield f"sqlite:///{tmp_path / 'campaign.db'}"
    dispose_engines()


@pytest.fixture(scope="session")
def load_benchmark() -> Callable[[str], ModuleType]:
    """Loads ``benchmarks/<name>.py`` from its file (``benchmarks`` is not a package), once."""
    loaded: dict[str, ModuleType] = {}

    def load(name: str) -> ModuleType:
        if name not in loaded:
            path = Path(__file__).parents[1] / "benchmarks" / f"{name}.py"
            spec = importlib.util.spec_from_file_location(f"{name}_benchmark", path)
            assert spec is not None and spec.loader is not None
            module = importlib.util.module_from_spec(spec)
            sys.modules[spec.name] = module  # dataclasses look their module up
            spec.loader.exec_module(module)
            loaded[name] = module
        return loaded[name]

    return load


# --------------------------------------------------------------------------- PostgreSQL server
def _missing_postgres(reason: str) -> None:
    message = (
        f"PostgreSQL tests need a server: {reason}. Install Debian's `postgresql` package "
        f"(apt-get install -y postgresql) or set {POSTGRES_URL_ENV}=postgresql://USER@HOST:PORT/DB"
    )
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[URL]:
    """URL of the maintenance database of a PostgreSQL server for this test session."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        _missing_postgres("the `psycopg` driver is not installed (pip install 'amloop[postgres]')")
    external = os.environ.get(POSTGRES_URL_ENV)
    if external:
        yield make_url(external).set(drivername="postgresql+psycopg")
        return
    bindir = postgres_bindir()
    if bindir is None:
        _missing_postgres("no /usr/lib/postgresql/*/bin/initdb found")
        return
    server = LocalPostgres(bindir)
    try:
        server.start()
        yield server.url
    finally:
        server.stop()


@pytest.fixture
def private_postgres() -> Iterator[LocalPostgres]:
    """A PostgreSQL server of this test's own, which the test may stop and start again."""
    bindir = postgres_bindir()
    if bindir is None:
        _missing_postgres("no /usr/lib/postgresql/*/bin/initdb found for a private server")
        return
    server = LocalPostgres(bindir)
    try:
        server.start()
        yield server
    finally:
        dispose_engines()
        server.stop()


def _libpq(url: URL) -> str:
    """``postgresql://`` conninfo for psycopg from a SQLAlchemy URL."""
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


@pytest.fixture
def postgres_url(postgres_server: URL) -> Iterator[str]:
    """URL of a fresh, empty database on the session's PostgreSQL server (dropped afterwards)."""
    import psycopg

    name = f"amloop_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(_libpq(postgres_server), autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    yield postgres_server.set(database=name).render_as_string(hide_password=False)
    dispose_engines()
    with psycopg.connect(_libpq(postgres_server), autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest) -> str:
    """A fresh database on each backend: SQLite file, then PostgreSQL (marked ``postgres``)."""
    return str(request.getfixturevalue(f"{request.param}_url"))
