"""Fixtures of the aria_data tests.

``db`` is the one database fixture of the dialect-independent tests: it runs each test
on SQLite (a temp file) and on PostgreSQL (a fresh database of the shared test cluster,
reached as its superuser over the Unix socket). ``target`` says where that database
is, so a test can open more handles on it (a second "node"). ``app_role`` is an
ordinary PostgreSQL role with a password, for the tests where a superuser would
bypass row-level security.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from aria_actors.services.data.api import Database
from tests.servers import PostgresCluster, ServerFailed
from tests.servers.fixtures import PgDatabase

from .helpers import AppRole, Target, open_db


@pytest.fixture(params=["sqlite", "postgres"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Target:
    """Where the test's database is: ``<tmp>/main.db``, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return Target("sqlite", path=tmp_path / "main.db")
    pg: PgDatabase = request.getfixturevalue("pg_database")
    return Target("postgres", pg=pg)


@pytest.fixture
async def db(target: Target) -> AsyncIterator[Database]:
    """An opened SqliteDatabase or PostgresDatabase on ``target``; closed afterwards."""
    database = await open_db(target)
    try:
        yield database
    finally:
        await database.close()


@pytest.fixture
def app_role(pg_database: PgDatabase) -> Iterator[AppRole]:
    """A new ordinary role that may create tables in ``pg_database`` (dropped, with
    what it owns, afterwards)."""
    cluster = pg_database.cluster
    name = f"app_{secrets.token_hex(4)}"
    password = secrets.token_urlsafe(16)
    cluster.create_role(name, password)
    cluster.psql(f'GRANT CREATE, USAGE ON SCHEMA public TO "{name}"', pg_database.name)
    try:
        yield AppRole(
            name, password, cluster.tcp_dsn(pg_database.name, name, password), pg_database
        )
    finally:
        with contextlib.suppress(ServerFailed):
            if not cluster.is_running():
                cluster.start()
            cluster.psql(
                f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{name}'"
            )
            cluster.psql(f'DROP OWNED BY "{name}"', pg_database.name)
            cluster.psql(f'DROP ROLE "{name}"')


@pytest.fixture
def new_pg_database(postgres: PostgresCluster) -> Iterator[Callable[[], PgDatabase]]:
    """Makes more empty databases in the shared cluster (owned by ``aria``); all are
    dropped when the test ends."""
    made: list[str] = []

    def make() -> PgDatabase:
        if not postgres.is_running():
            postgres.start()
        name = f"aria_r_{secrets.token_hex(6)}"
        postgres.create_database(name, owner=postgres.password_role)
        made.append(name)
        return PgDatabase(
            name=name,
            dsn=postgres.socket_dsn(name),
            tcp_dsn=postgres.tcp_dsn(name),
            owner=postgres.password_role,
            cluster=postgres,
        )

    try:
        yield make
    finally:
        if made and not postgres.is_running():
            postgres.start()
        for name in made:
            postgres.drop_database(name)


@pytest.fixture
def empty_target(target: Target, tmp_path: Path, request: pytest.FixtureRequest) -> Target:
    """Another, empty database of ``target``'s dialect (to restore into)."""
    if target.dialect == "sqlite":
        return Target("sqlite", path=tmp_path / "restored.db")
    make: Callable[[], PgDatabase] = request.getfixturevalue("new_pg_database")
    return Target("postgres", pg=make())
