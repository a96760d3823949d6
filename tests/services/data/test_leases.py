"""Table leases (the lock where advisory locks fail: CockroachDB, PgBouncer's
transaction mode), on the real PostgreSQL cluster: exclusion, takeover of a dead
holder's lease, heartbeats, release, lost leases; and how ``lock()`` chooses."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from aria_actors import ConfigError
from aria_actors.services.data import leases
from aria_actors.services.data.migrations import migrate
from aria_actors.services.data.postgres import PostgresDatabase, is_cockroach
from aria_actors.services.data.settings import load_settings
from tests.servers.fixtures import PgDatabase

from .helpers import eventually, write_migrations

# ``SELECT version()`` of a CockroachDB node, as CockroachDB prints it
COCKROACH = "CockroachDB CCL v23.1.11 (x86_64-pc-linux-gnu, built 2023/09/27 01:53:43, go1.19.10)"


@pytest.fixture
async def open_pg(pg_database: PgDatabase) -> AsyncIterator[Callable[..., Any]]:
    """Opens PostgresDatabase handles on the test database; closes them afterwards."""
    opened: list[PostgresDatabase] = []

    async def opener(**options: Any) -> PostgresDatabase:
        database = PostgresDatabase("main", pg_database.dsn, **options)
        await database.open()
        opened.append(database)
        return database

    try:
        yield opener
    finally:
        for database in opened:
            await database.close()


async def lease_row(db: PostgresDatabase, key: str) -> dict[str, Any] | None:
    return await db.fetchrow(
        "SELECT holder, expires_at > now() AS alive FROM aria_locks WHERE name = $1", key
    )


def test_cockroachdb_is_recognised_by_its_version_string() -> None:
    assert is_cockroach(COCKROACH)
    assert not is_cockroach("PostgreSQL 15.10 (Debian 15.10-0+deb12u1) on x86_64-pc-linux-gnu")


async def test_auto_uses_advisory_locks_on_postgresql(open_pg: Callable[..., Any]) -> None:
    db = await open_pg()
    assert await db.lock_kind() == "advisory"
    async with db.lock("k"):
        assert await db.fetchval("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'") == 1
    assert (await open_pg(locks="table")).locks == "table"
    assert await (await open_pg(locks="table")).lock_kind() == "table"


def test_a_wrong_lock_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="locks must be"):
        PostgresDatabase("main", "postgresql://x/y", locks="bogus")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"services\.aria_data\.databases\.main.*locks"):
        load_settings({"databases": {"main": {"backend": "postgres", "dsn": "x", "locks": "no"}}})


async def test_a_table_lock_excludes_another_holder_until_released(
    open_pg: Callable[..., Any],
) -> None:
    first, second = await open_pg(locks="table"), await open_pg(locks="table")
    events: list[str] = []
    entered = asyncio.Event()

    async def holder() -> None:
        async with first.lock("migrations"):
            events.append("first in")
            entered.set()
            row = await lease_row(first, "migrations")
            assert row is not None
            assert row["alive"]
            await asyncio.sleep(0.5)  # the second waits all this time
            events.append("first out")

    async def waiter() -> None:
        await entered.wait()
        async with second.lock("migrations"):
            events.append("second in")

    async with asyncio.timeout(20):
        await asyncio.gather(holder(), waiter())
    assert events == ["first in", "first out", "second in"]
    assert await lease_row(first, "migrations") is None  # released: the row is gone


async def test_a_dead_holders_lease_is_taken_over_once_it_expires(
    open_pg: Callable[..., Any],
) -> None:
    db = await open_pg(locks="table")
    await leases.create_table(db)
    await db.execute(
        "INSERT INTO aria_locks (name, holder, expires_at) "
        "VALUES ('k', 'dead-node', now() - INTERVAL '1 second')"
    )
    async with asyncio.timeout(10), leases.lease(db, "k", holder="me") as me:
        assert me == "me"
        row = await lease_row(db, "k")
        assert row == {"holder": "me", "alive": True}


async def test_a_live_lease_of_another_holder_is_waited_for(
    open_pg: Callable[..., Any], logs: list[dict[str, Any]]
) -> None:
    db = await open_pg(locks="table")
    await leases.create_table(db)
    await db.execute(
        "INSERT INTO aria_locks (name, holder, expires_at) "
        "VALUES ('k', 'other-node', now() + INTERVAL '1 hour')"
    )
    lease = leases.lease(db, "k", poll=0.05)
    taking = asyncio.create_task(lease.__aenter__())
    await eventually(lambda: _logged(logs, "lock_waiting"), timeout=10)
    await asyncio.sleep(0.3)  # several polls
    assert not taking.done()
    [waiting] = [e for e in logs if e["event"] == "lock_waiting"]
    assert waiting["holder"] == "other-node"  # the operator learns who holds it
    await db.execute("DELETE FROM aria_locks WHERE name = 'k'")  # the other one releases
    async with asyncio.timeout(10):
        await taking
    row = await lease_row(db, "k")
    assert row is not None
    assert row["holder"] != "other-node"
    await lease.__aexit__(None, None, None)
    assert await lease_row(db, "k") is None


async def _logged(logs: list[dict[str, Any]], event: str) -> bool:
    return any(entry["event"] == event for entry in logs)


async def test_heartbeats_keep_a_lease_alive_past_its_ttl(open_pg: Callable[..., Any]) -> None:
    """Held for four times its ttl: another holder never gets in meanwhile."""
    first, second = await open_pg(), await open_pg()
    async with asyncio.timeout(20), leases.lease(first, "k", ttl=0.4, holder="first"):
        for _ in range(8):
            await asyncio.sleep(0.2)
            assert await lease_row(first, "k") == {"holder": "first", "alive": True}
        other = leases.lease(second, "k", poll=0.05)
        contender = asyncio.create_task(other.__aenter__())
        await asyncio.sleep(0.5)
        assert not contender.done()
    async with asyncio.timeout(10):
        await contender  # now it gets in
    assert (await lease_row(first, "k") or {}).get("holder") != "first"
    await other.__aexit__(None, None, None)


async def test_a_lease_taken_over_is_logged_as_lost(
    open_pg: Callable[..., Any], logs: list[dict[str, Any]]
) -> None:
    db = await open_pg()
    async with asyncio.timeout(20), leases.lease(db, "k", ttl=0.3, holder="me"):
        await db.execute("UPDATE aria_locks SET holder = 'thief' WHERE name = 'k'")
        await eventually(lambda: _logged(logs, "lock_lease_lost"), timeout=10)
    [lost] = [e for e in logs if e["event"] == "lock_lease_lost"]
    assert (lost["lock"], lost["holder"], lost["log_level"]) == ("k", "me", "error")
    # leaving the block deletes only its own row: the thief's stays
    assert await lease_row(db, "k") == {"holder": "thief", "alive": True}


async def test_a_lease_is_released_when_the_block_fails(open_pg: Callable[..., Any]) -> None:
    db = await open_pg()
    with pytest.raises(RuntimeError, match="inside"):
        async with leases.lease(db, "k"):
            raise RuntimeError("inside")
    assert await lease_row(db, "k") is None


async def test_bad_lease_parameters_are_refused(open_pg: Callable[..., Any]) -> None:
    db = await open_pg()
    with pytest.raises(ValueError, match="ttl > 0"):
        async with leases.lease(db, "k", ttl=0):
            pass


async def test_concurrent_migrations_with_table_locks_apply_each_once(
    open_pg: Callable[..., Any], tmp_path: Path
) -> None:
    """Three nodes migrating at once with table leases (as on CockroachDB)."""
    root = write_migrations(
        tmp_path / "m",
        {
            "0001_create.sql": "CREATE TABLE things (id INTEGER PRIMARY KEY, name TEXT);\n",
            "0002_seed.sql": "CREATE TABLE log (n INTEGER);\nINSERT INTO log VALUES (1);\n",
        },
    )
    handles = [await open_pg(locks="table") for _ in range(3)]
    async with asyncio.timeout(30):
        results = await asyncio.gather(*(migrate(h, "svc", root) for h in handles))
    assert sorted(label for result in results for label in result) == [
        "0001_create",
        "0002_seed",
    ]
    assert await handles[0].fetchval("SELECT count(*) FROM log") == 1
    assert await handles[0].fetchval("SELECT count(*) FROM aria_locks") == 0
