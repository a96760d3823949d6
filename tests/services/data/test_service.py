"""The aria_data service on a node: booted from supervisors/*.toml with aria_security,
on its default SQLite or on PostgreSQL with credentials from aria_security; its
client (Data, DatabaseProxy), its errors, and restarts of its actor."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import sqlite3
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from aria_actors import Node, NodeConfig, RuntimeConfig, StartError, load_services
from aria_actors.services.data.actors import GetDatabase, with_credentials
from aria_actors.services.data.api import (
    Database,
    DatabaseError,
    DatabaseHealth,
    MigrationError,
)
from aria_actors.services.data.backup import restore_postgres, restore_sqlite
from aria_actors.services.data.client import DATABASES_ACTOR, Data
from aria_actors.services.data.postgres import PostgresDatabase
from aria_actors.services.security.client import Secrets
from aria_actors.testing import wait_restarted
from tests.servers import PostgresCluster
from tests.servers.fixtures import PgDatabase

from .helpers import SUPERVISORS, AppRole, Notes, notes_migrations, write_migrations

SERVICES = load_services(SUPERVISORS)
THINGS = {
    "0001_create.sql": "CREATE TABLE things (id INTEGER PRIMARY KEY, name TEXT NOT NULL);\n",
    "0002_seed.sql": "INSERT INTO things (id, name) VALUES (1, 'seed');\n",
}


@contextlib.asynccontextmanager
async def running_node(state: Path, services: dict[str, Any] | None = None) -> AsyncIterator[Node]:
    config = NodeConfig(runtime=RuntimeConfig(shutdown=5.0), services=services or {})
    async with asyncio.timeout(60), Node(name="data-test", config=config, state_dir=state) as node:
        yield node


def postgres_settings(dsn: str, **more: Any) -> dict[str, Any]:
    main = {"backend": "postgres", "dsn": dsn, "acquire_timeout": 5.0, "command_timeout": 10.0}
    return {"aria_data": {"databases": {"main": main | more}}}


async def boot_with_credentials(node: Node, credentials: dict[str, str] | None) -> list[str]:
    """aria_security first, the secret put into it, then aria_data."""
    await node.boot(SERVICES, only=["aria_security"])
    if credentials is not None:
        await Secrets(node, caller="test").put("aria_data/postgres", credentials)
    return await node.boot(SERVICES, only=["aria_data"])


# -- the default: SQLite in the state directory ----------------------------------------------


async def test_the_default_service_serves_sqlite_from_the_state_directory(
    tmp_path: Path, logs: list[dict[str, Any]]
) -> None:
    async with running_node(tmp_path / "state") as node:
        assert await node.boot(SERVICES, only=["aria_data"]) == ["aria_security", "aria_data"]
        data = Data(node)
        db = data.database()
        assert await db.fetchval("SELECT 1") == 1
        assert db.dialect == "sqlite"
        assert (tmp_path / "state" / "main.db").is_file()

        # aria_data's own migration
        assert await db.fetch("SELECT service, version, name FROM aria_migrations") == [
            {"service": "aria_data", "version": 1, "name": "tenants"}
        ]
        async with db.transaction() as tx:
            await tx.execute("INSERT INTO aria_tenants (id, name) VALUES ($1, $2)", "t1", "One")
        row = await db.fetchrow("SELECT id, name, created_at FROM aria_tenants")
        assert row is not None
        assert row["id"] == "t1"
        assert row["created_at"]

        [health] = await data.health()
        assert isinstance(health, DatabaseHealth)
        assert (health.name, health.dialect, health.ok) == ("main", "sqlite", True)

        # another service's migrations, through the actor
        root = write_migrations(tmp_path / "svc", THINGS)
        assert await data.migrate("svc", root) == ["0001_create", "0002_seed"]
        assert await data.migrate("svc", root) == []
        assert [(s.version, s.state) for s in await data.migration_status("svc", root)] == [
            (1, "applied"),
            (2, "applied"),
        ]
        async with db.lock("svc"):
            assert await db.fetchval("SELECT name FROM things") == "seed"

        # a backup, restorable
        path = await data.backup(tmp_path / "backups" / "main.backup")
        assert path == tmp_path / "backups" / "main.backup"
        await restore_sqlite(path, tmp_path / "restored.db")
        with contextlib.closing(sqlite3.connect(tmp_path / "restored.db")) as restored:
            assert restored.execute("SELECT id FROM aria_tenants").fetchall() == [("t1",)]
            assert restored.execute("SELECT name FROM things").fetchall() == [("seed",)]
        await db.close()  # does nothing: the pool is aria_data's
        assert await db.fetchval("SELECT count(*) FROM things") == 1


async def test_a_repository_over_the_proxy_works_from_its_first_call(
    tmp_path: Path, logs: list[dict[str, Any]]
) -> None:
    """Repository checks ``isinstance(db, Database)``, which reads ``proxy.dialect``,
    which raises RuntimeError until the proxy has made a call."""
    async with running_node(tmp_path / "state") as node:
        await node.boot(SERVICES, only=["aria_data"])
        await Data(node).migrate(
            "notes",
            write_migrations(
                tmp_path / "m",
                {
                    "0001_notes.sql": "CREATE TABLE notes (id INTEGER PRIMARY KEY, "
                    "tenant_id TEXT NOT NULL, body TEXT);\n"
                },
            ),
        )
        proxy = Data(node).database()
        assert await Notes(proxy, tenant="a").count() == 0


async def test_request_errors_reach_the_caller_and_do_not_crash_the_service(
    tmp_path: Path, logs: list[dict[str, Any]]
) -> None:
    """A refused migration, an unknown database, a failed backup are answers to the
    caller. Raised in the handler they crash ``aria_data.databases`` instead (callers
    get ActorExited), and the fourth within 5 s exceeds the supervisor's intensity:
    aria_data dies for good and, being permanent, stops the node (exit status 1)."""
    async with running_node(tmp_path / "state") as node:
        await node.boot(SERVICES, only=["aria_data"])
        data = Data(node)
        actor = data.ref()
        root = write_migrations(tmp_path / "svc", THINGS)
        await data.migrate("svc", root)
        write_migrations(root, {"0001_create.sql": "CREATE TABLE changed (x INTEGER);\n"})

        outcomes: list[BaseException | None] = []
        for _ in range(4):
            try:
                await data.migrate("svc", root)
            except Exception as exc:
                outcomes.append(exc)
            else:
                outcomes.append(None)
            await asyncio.sleep(0.05)
        assert "aria_data" in node.services, "aria_data died of refused migrations"
        assert node.exit_status is None
        assert data.ref() == actor, "the databases actor was restarted"
        assert all(isinstance(o, MigrationError) for o in outcomes), outcomes

        with pytest.raises(DatabaseError, match="nope"):
            await data.database("nope").fetchval("SELECT 1")
        with pytest.raises(DatabaseError):
            await data.backup(tmp_path)  # a directory
        assert data.ref() == actor


@pytest.mark.parametrize(
    ("settings", "words"),
    [
        ({"databases": {"main": {"backend": "postgres"}}}, ["main", "dsn"]),
        ({"databases": {"other": {}}}, ["main"]),
        ({"slow_querry": 1}, ["slow_querry"]),
    ],
)
async def test_bad_settings_are_a_start_error_naming_the_key(
    tmp_path: Path, logs: list[dict[str, Any]], settings: dict[str, Any], words: list[str]
) -> None:
    async with running_node(tmp_path / "state", {"aria_data": settings}) as node:
        with pytest.raises(StartError) as caught:
            await node.boot(SERVICES, only=["aria_data"])
    for word in ["services.aria_data", *words]:
        assert word in str(caught.value)


# -- PostgreSQL with credentials from aria_security ------------------------------------------


def tcp_dsn_without_password(pg: PgDatabase) -> str:
    return f"postgresql://{pg.cluster.host}:{pg.cluster.port}/{pg.name}"


async def test_postgres_connects_with_the_credentials_from_aria_security(
    pg_database: PgDatabase, tmp_path: Path, logs: list[dict[str, Any]]
) -> None:
    settings = postgres_settings(
        tcp_dsn_without_password(pg_database), credentials="aria_data/postgres"
    )
    async with running_node(tmp_path / "state", settings) as node:
        credentials = {"user": pg_database.owner, "password": pg_database.cluster.password}
        assert await boot_with_credentials(node, credentials) == ["aria_data"]
        data = Data(node)
        db = data.database()
        # TCP needs the password (scram-sha-256): the secret's, as its user
        assert await db.fetchrow(
            "SELECT current_user AS who, inet_server_addr() IS NOT NULL AS tcp"
        ) == {"who": pg_database.owner, "tcp": True}
        assert db.dialect == "postgres"
        assert await db.fetch("SELECT service, version, name FROM aria_migrations") == [
            {"service": "aria_data", "version": 1, "name": "tenants"}
        ]
        [health] = await data.health()
        assert (health.dialect, health.ok) == ("postgres", True)
        assert await data.migrate("svc", write_migrations(tmp_path / "svc", THINGS)) == [
            "0001_create",
            "0002_seed",
        ]
        path = await data.backup(tmp_path / "main.backup")
        assert path.stat().st_size > 0
        secret = pg_database.cluster.password
        assert all(secret not in repr(entry) for entry in logs), "the password was logged"


async def test_backups_run_as_the_backup_credentials_role(
    app_role: AppRole,
    tmp_path: Path,
    new_pg_database: Callable[[], PgDatabase],
    logs: list[dict[str, Any]],
) -> None:
    """The services' role sees only the current tenant's rows (FORCE ROW LEVEL
    SECURITY); Backup runs pg_dump as ``backup_credentials`` (BYPASSRLS, reads all
    data), so the backup holds every tenant's rows."""
    cluster = app_role.pg.cluster
    backup_role, backup_password = f"{app_role.name}_backup", secrets.token_urlsafe(12)
    cluster.create_role(backup_role, backup_password)
    cluster.psql(f'ALTER ROLE "{backup_role}" BYPASSRLS')
    cluster.psql(f'GRANT pg_read_all_data TO "{backup_role}"')
    try:
        settings = postgres_settings(
            tcp_dsn_without_password(app_role.pg),
            credentials="aria_data/postgres",
            backup_credentials="aria_data/backup",
        )
        async with running_node(tmp_path / "state", settings) as node:
            await node.boot(SERVICES, only=["aria_security"])
            store = Secrets(node, caller="test")
            await store.put(
                "aria_data/postgres", {"user": app_role.name, "password": app_role.password}
            )
            await store.put("aria_data/backup", {"user": backup_role, "password": backup_password})
            assert await node.boot(SERVICES, only=["aria_data"]) == ["aria_data"]
            data = Data(node)
            await data.migrate("notes", notes_migrations(tmp_path / "notes", rls=True))
            db = data.database()
            for tenant in ("a", "b"):
                async with db.transaction(tenant=tenant) as tx:
                    await tx.execute("INSERT INTO notes (tenant_id, body) VALUES ($1, 'x')", tenant)
            async with db.transaction(tenant="a") as tx:
                assert await tx.fetchval("SELECT count(*) FROM notes") == 1
            path = await data.backup(tmp_path / "main.backup")
        empty = new_pg_database()
        await restore_postgres(path, empty.dsn)
        restored = PostgresDatabase("restored", empty.dsn)
        await restored.open()
        try:
            rows = await restored.fetch("SELECT tenant_id FROM notes ORDER BY tenant_id")
        finally:
            await restored.close()
        assert [r["tenant_id"] for r in rows] == ["a", "b"]
        assert all(backup_password not in repr(entry) for entry in logs), "a password was logged"
    finally:
        cluster.psql(f'DROP OWNED BY "{backup_role}"', app_role.pg.name)
        cluster.psql(f'DROP ROLE "{backup_role}"')


@pytest.mark.parametrize(
    ("credentials", "words"),
    [
        (None, ["aria_data/postgres", "does not exist"]),
        ({"user": "aria"}, ["aria_data/postgres", "password"]),
        ({"user": "aria", "password": "wrong"}, ["password authentication failed"]),
    ],
    ids=["missing", "incomplete", "wrong"],
)
async def test_unusable_credentials_are_a_clear_start_error(
    pg_database: PgDatabase,
    tmp_path: Path,
    logs: list[dict[str, Any]],
    credentials: dict[str, str] | None,
    words: list[str],
) -> None:
    settings = postgres_settings(
        tcp_dsn_without_password(pg_database), credentials="aria_data/postgres"
    )
    async with running_node(tmp_path / "state", settings) as node:
        with pytest.raises(StartError) as caught:
            await boot_with_credentials(node, credentials)
        assert "aria_data" not in node.services
        assert "aria_security" in node.services
    for word in words:
        assert word in str(caught.value)


def test_credentials_go_into_the_dsn_quoted() -> None:
    assert (
        with_credentials("postgresql://db.internal:5432/aria", "u", "p@ss:/w?rd")
        == "postgresql://u:p%40ss%3A%2Fw%3Frd@db.internal:5432/aria"
    )
    assert (
        with_credentials("postgresql://old@db.internal/aria?sslmode=require", "u", "p")
        == "postgresql://u:p@db.internal/aria?sslmode=require"
    )


def test_credentials_keep_an_ipv6_host_in_brackets() -> None:
    assert (
        with_credentials("postgresql://[::1]:5432/aria", "u", "p")
        == "postgresql://u:p@[::1]:5432/aria"
    )


async def test_aria_data_waits_for_postgres_at_start(
    postgres_factory: Callable[..., PostgresCluster], tmp_path: Path, logs: list[dict[str, Any]]
) -> None:
    """actors.py: a node may start before its database; aria_data waits for it (up to
    ``credentials_timeout``) instead of failing the boot."""
    cluster = postgres_factory(durable=False)
    cluster.create_database("app", owner=cluster.password_role)
    await asyncio.to_thread(cluster.stop)
    settings = postgres_settings(
        cluster.socket_dsn("app"), acquire_timeout=0.3, command_timeout=1.0
    )
    settings["aria_data"]["credentials_timeout"] = 20.0

    async def start_later() -> None:
        await asyncio.sleep(1.0)
        await asyncio.to_thread(cluster.start)

    async with running_node(tmp_path / "state", settings) as node:
        starter = asyncio.create_task(start_later())
        try:
            booted = await node.boot(SERVICES, only=["aria_data"])
        finally:
            await starter
        assert booted == ["aria_security", "aria_data"]
        assert (await Data(node).health())[0].ok


# -- restarts of the databases actor --------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> dict[str, Any]:
    """aria_data's settings: the default SQLite, or PostgreSQL over the trusted socket."""
    if request.param == "sqlite":
        return {}
    pg: PgDatabase = request.getfixturevalue("pg_database")
    return postgres_settings(pg.dsn)


async def test_the_proxy_survives_a_kill_of_the_databases_actor(
    backend: dict[str, Any], tmp_path: Path, logs: list[dict[str, Any]]
) -> None:
    async with running_node(tmp_path / "state", backend) as node:
        await node.boot(SERVICES, only=["aria_data"])
        data = Data(node)
        proxy = data.database()
        await proxy.execute("CREATE TABLE t (x INTEGER)")
        await proxy.execute("INSERT INTO t (x) VALUES (1)")
        before = data.ref()
        held = await proxy.current()

        before._proc.kill()  # no terminate: the supervisor just starts a new one
        after = await wait_restarted(node, DATABASES_ACTOR, before)
        try:
            assert await proxy.fetchval("SELECT count(*) FROM t") == 1
            async with proxy.transaction() as tx:
                await tx.execute("INSERT INTO t (x) VALUES (2)")
            assert await data.database().fetchval("SELECT count(*) FROM t") == 2
        finally:
            live: Database = await after.call(GetDatabase())
            if held is not live:
                await held.close()  # the killed actor's pool (nobody closes it: leaked)


async def test_the_proxy_survives_a_restart_of_the_databases_actor(
    backend: dict[str, Any], tmp_path: Path, logs: list[dict[str, Any]]
) -> None:
    """The supervisor stops the actor (terminate closes its pools) and starts it again.
    The proxy must then ask for the new pool: it looks for a ``closed`` attribute
    that neither SqliteDatabase nor PostgresDatabase has, and keeps the closed one."""
    async with running_node(tmp_path / "state", backend) as node:
        await node.boot(SERVICES, only=["aria_data"])
        data = Data(node)
        proxy = data.database()
        await proxy.execute("CREATE TABLE t (x INTEGER)")
        before = data.ref()
        service = node.service("aria_data")
        assert service is not None
        supervisor = service[1]
        await supervisor.terminate_child("databases")
        await supervisor.restart_child("databases")
        await wait_restarted(node, DATABASES_ACTOR, before)
        assert await proxy.fetchval("SELECT count(*) FROM t") == 0
        async with proxy.transaction() as tx:
            await tx.execute("INSERT INTO t (x) VALUES (1)")
        assert await proxy.fetchval("SELECT count(*) FROM t") == 1
