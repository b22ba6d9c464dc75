"""Fixtures shared by the suite: a migrated database on SQLite and on PostgreSQL, settings, processes."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url

from claude_signal.config import Settings, load_settings
from claude_signal.db.engine import dispose_all, make_engine, unit_of_work
from claude_signal.db.migrate import upgrade
from claude_signal.db.models import Base
from tests.harness import RedisServer

PG_ADMIN_URL = os.environ.get("CLAUDE_SIGNAL_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
BACKENDS = ["sqlite", "postgresql"]


def _table_names() -> list[str]:
    return [t.name for t in reversed(Base.metadata.sorted_tables)]


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A fresh PostgreSQL database for this test run, migrated once and dropped at the end."""
    name = f"cs_test_{uuid.uuid4().hex[:10]}"
    admin = make_url(PG_ADMIN_URL)
    try:
        conn = psycopg.connect(admin.set(drivername="postgresql").render_as_string(hide_password=False),
                               autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as error:
        pytest.fail(f"PostgreSQL is needed for the database tests ({PG_ADMIN_URL}): {error}. "
                    "Run .ci/run, or set CLAUDE_SIGNAL_TEST_PG.")
    with conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = admin.set(database=name).render_as_string(hide_password=False)
    upgrade(url)
    yield url
    dispose_all()
    with psycopg.connect(admin.render_as_string(hide_password=False), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A migrated, empty database; each test runs once per backend."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'test.db'}"
        upgrade(url)
        yield url
        return
    url = request.getfixturevalue("pg_database")
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {', '.join(_table_names())} RESTART IDENTITY CASCADE"))
    engine.dispose()
    yield url


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def db(engine: Engine):  # type: ignore[no-untyped-def]
    """A transaction that commits when the test body ends (tests that need several use ``engine``)."""
    with unit_of_work(engine) as session:
        yield session


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A private redis-server for one test (the broker's Redis, as far as the code under test knows)."""
    server = RedisServer(tmp_path / "redis", appendonly=False).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    return redis_server.url


@pytest.fixture
def project_root(tmp_path: Path) -> Path:
    root = tmp_path / "projects"
    (root / "shop").mkdir(parents=True)
    (root / "blog").mkdir()
    return root


@pytest.fixture
def settings(database_url: str, project_root: Path, tmp_path: Path) -> Settings:
    fake_claude = Path(__file__).parent / "fakes" / "claude"
    return load_settings(
        home=tmp_path / "home", database_url=database_url, project_roots=[project_root], host="hosta",
        claude_bin=str(fake_claude), account="+15550000001", authorized=["alice", "mallory", "owner"],
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Integration tests run on SQLite only, unless marked ``both_databases``: their subject is processes, the
    network and the CLI, and the database's part of every flow runs on both backends in the domain tests.
    Those whose subject includes what a database decides under concurrency or with its own clock (recovery
    races, leases, two beats, the chaos tests) carry the mark and run on PostgreSQL as well."""
    keep, drop = [], []
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        integration = item.nodeid.startswith("tests/integration/")
        one_backend = (integration and item.get_closest_marker("both_databases") is None) \
            or item.get_closest_marker("transport") or params.get("claude_cli") == "real"
        if one_backend and params.get("database_url", "sqlite") != "sqlite":
            drop.append(item)
        else:
            keep.append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep
