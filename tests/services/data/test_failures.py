"""Failure and recovery on a real PostgreSQL server: killed (SIGKILL) in the middle of a
transaction or of a COMMIT, stopped under load, down when the pool opens.

Each test has a cluster of its own (``postgres_factory``), durable (fsync on) where
committed data must survive a kill. The server is killed, stopped and started from
worker threads so that the event loop keeps running (asyncpg notices broken
connections there).
"""

from __future__ import annotations

import asyncio
import traceback
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import pytest

from aria_actors.services.data.api import (
    DatabaseError,
    DatabaseTimeout,
    DatabaseUnavailable,
)
from aria_actors.services.data.postgres import PostgresDatabase
from tests.servers import PostgresCluster

from .helpers import eventually, outcome_of

PostgresFactory = Callable[..., PostgresCluster]


@dataclass
class Server:
    cluster: PostgresCluster
    dsn: str

    async def kill(self) -> None:
        await asyncio.to_thread(self.cluster.kill)

    async def stop(self) -> None:
        await asyncio.to_thread(self.cluster.stop, "fast")

    async def start(self) -> None:
        await asyncio.to_thread(self.cluster.start)


@pytest.fixture
def server(postgres_factory: PostgresFactory) -> Server:
    """A durable cluster of this test's own, with an empty database ``app``."""
    cluster = postgres_factory(durable=True)
    cluster.create_database("app", owner=cluster.password_role)
    return Server(cluster, cluster.socket_dsn("app"))


@pytest.fixture
async def pool(server: Server) -> AsyncIterator[PostgresDatabase]:
    database = PostgresDatabase(
        "main", server.dsn, max_size=8, command_timeout=2.0, acquire_timeout=0.5
    )
    await database.open()
    try:
        yield database
    finally:
        if not server.cluster.is_running():
            await server.start()
        await database.close()


async def answers(db: PostgresDatabase) -> bool:
    try:
        return bool(await db.fetchval("SELECT 1", timeout=1.0) == 1)
    except DatabaseError:
        return False


async def ids(db: PostgresDatabase, table: str = "t") -> list[int]:
    return [row["id"] for row in await db.fetch(f"SELECT id FROM {table} ORDER BY id")]


async def test_a_kill_before_commit_loses_that_transaction_and_nothing_else(
    server: Server, pool: PostgresDatabase
) -> None:
    await pool.execute("CREATE TABLE t (id INTEGER PRIMARY KEY)")
    for i in range(1, 6):
        await pool.execute("INSERT INTO t (id) VALUES ($1)", i)
    await pool.executemany("INSERT INTO t (id) VALUES ($1)", [(i,) for i in range(6, 11)])

    async def doomed() -> None:
        async with pool.transaction() as tx:
            await tx.execute("INSERT INTO t (id) VALUES (11)")
            await tx.execute("INSERT INTO t (id) VALUES (12)")
            await server.kill()
            await tx.execute("INSERT INTO t (id) VALUES (13)")

    async with asyncio.timeout(30):
        outcome = await outcome_of(doomed)
        await server.start()
        await eventually(lambda: answers(pool), timeout=15)  # the same pool object recovers
        assert await ids(pool) == list(range(1, 11))
        assert (await pool.health()).ok
    assert isinstance(outcome, DatabaseUnavailable), repr(outcome)
    assert outcome.committed is False


async def test_a_kill_during_commit_is_reported_with_an_unknown_outcome(
    server: Server, pool: PostgresDatabase
) -> None:
    """A deferred trigger makes COMMIT take a while; the server dies during it."""
    await pool.execute("CREATE TABLE t (id INTEGER PRIMARY KEY)")
    await pool.execute(
        "CREATE FUNCTION linger() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN PERFORM pg_sleep(5); RETURN NULL; END $$"
    )
    await pool.execute(
        "CREATE CONSTRAINT TRIGGER linger AFTER INSERT ON t DEFERRABLE INITIALLY DEFERRED "
        "FOR EACH ROW EXECUTE FUNCTION linger()"
    )
    await pool.execute("ALTER TABLE t DISABLE TRIGGER linger")
    await pool.execute("INSERT INTO t (id) VALUES (1)")
    await pool.execute("ALTER TABLE t ENABLE TRIGGER linger")

    async def committing() -> bool:
        busy = await pool.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query ILIKE 'COMMIT%'"
        )
        return bool(busy)

    async def kill_during_commit() -> None:
        await eventually(committing, timeout=10)
        await server.kill()

    async def slow_commit() -> None:
        async with pool.transaction() as tx:
            await tx.execute("INSERT INTO t (id) VALUES (2)")

    async with asyncio.timeout(30):
        killer = asyncio.create_task(kill_during_commit())
        outcome = await outcome_of(slow_commit)
        await killer
        await server.start()
        await eventually(lambda: answers(pool), timeout=15)
        assert await ids(pool) == [1]  # it died before the commit record was written
    assert isinstance(outcome, DatabaseUnavailable), repr(outcome)
    assert outcome.committed is None


async def test_stopping_the_server_under_load_loses_no_committed_row(
    server: Server, pool: PostgresDatabase
) -> None:
    """Three writers and two readers run while the server stops, stays down and starts
    again. While it is down every call fails with DatabaseUnavailable or
    DatabaseTimeout; afterwards the same pool serves them all again; every insert a
    writer saw committed is there, none it was told was not."""
    await pool.execute("CREATE TABLE load (writer INTEGER, seq INTEGER, PRIMARY KEY (writer, seq))")
    phase = "up"
    committed: set[tuple[int, int]] = set()
    unknown: set[tuple[int, int]] = set()
    refused: set[tuple[int, int]] = set()
    errors: list[tuple[str, Exception]] = []
    after_restart: Counter[str] = Counter()
    stop = asyncio.Event()

    async def writer(w: int) -> None:
        seq = 0
        while not stop.is_set():
            seq += 1
            try:
                async with pool.transaction() as tx:
                    await tx.execute("INSERT INTO load (writer, seq) VALUES ($1, $2)", w, seq)
                    await tx.fetchval("SELECT count(*) FROM load WHERE writer = $1", w)
            except DatabaseUnavailable as exc:
                (unknown if exc.committed is None else refused).add((w, seq))
                errors.append((phase, exc))
            except Exception as exc:
                unknown.add((w, seq))  # an error of another kind says nothing
                errors.append((phase, exc))
            else:
                committed.add((w, seq))
                if phase == "restarted":
                    after_restart[f"writer {w}"] += 1
            await asyncio.sleep(0.005)

    async def reader(r: int) -> None:
        while not stop.is_set():
            try:
                await pool.fetchval("SELECT count(*) FROM load")
            except Exception as exc:
                errors.append((phase, exc))
            else:
                if phase == "restarted":
                    after_restart[f"reader {r}"] += 1
            await asyncio.sleep(0.005)

    async with asyncio.timeout(45):
        tasks = [asyncio.create_task(writer(w)) for w in range(3)]
        tasks += [asyncio.create_task(reader(r)) for r in range(2)]
        try:
            await asyncio.sleep(0.3)
            phase = "stopping"
            await server.stop()
            phase = "down"
            await asyncio.sleep(0.8)
            phase = "starting"
            await server.start()
            phase = "restarted"
            await eventually(_all_served(after_restart), timeout=15)
        finally:
            stop.set()
            await asyncio.gather(*tasks, return_exceptions=True)
        rows = {(r["writer"], r["seq"]) for r in await pool.fetch("SELECT writer, seq FROM load")}

    assert committed, "nothing was written"
    assert committed <= rows, f"committed rows lost: {sorted(committed - rows)}"
    assert not refused & rows, f"rows reported as not committed are there: {refused & rows}"
    assert rows <= committed | unknown
    down = [exc for when, exc in errors if when == "down"]
    assert down, "no call failed while the server was down"
    expected = DatabaseUnavailable | DatabaseTimeout
    unexpected = [(when, exc) for when, exc in errors if not isinstance(exc, expected)]
    assert not unexpected, describe(unexpected)


def describe(errors: list[tuple[str, Exception]]) -> str:
    """The errors by kind, each kind with where it came from (its last frames)."""
    kinds: dict[str, list[str]] = {}
    for when, exc in errors:
        kind = f"{type(exc).__module__}.{type(exc).__qualname__}: {exc}"
        if kind not in kinds:
            stack = traceback.extract_tb(exc.__traceback__)
            frames = [f for f in stack if "/aria_actors/" in f.filename][-2:] + stack[-1:]
            kinds[kind] = [f"{f.filename.rsplit('/', 1)[-1]}:{f.lineno} {f.line}" for f in frames]
        kinds[kind].insert(0, when)
    return "\n".join(
        f"{len([w for w in lines if ':' not in w])} x {kind}\n    " + "\n    ".join(lines)
        for kind, lines in kinds.items()
    )


def _all_served(after_restart: Counter[str]) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return len(after_restart) == 5

    return check


async def test_the_pool_opens_while_the_server_is_down_and_recovers(
    postgres_factory: PostgresFactory,
) -> None:
    cluster = postgres_factory(durable=False)
    cluster.create_database("app", owner=cluster.password_role)
    dsn = cluster.socket_dsn("app")
    await asyncio.to_thread(cluster.stop)

    with pytest.raises(DatabaseUnavailable):
        await PostgresDatabase("eager", dsn, min_size=1).open()

    db = PostgresDatabase("main", dsn, min_size=0, command_timeout=0.5, acquire_timeout=0.3)
    await db.open()  # connections open on demand: nothing to fail yet
    try:
        async with asyncio.timeout(30):
            health = await db.health()
            assert health.ok is False
            assert health.detail.startswith("degraded")
            assert health.size == 0
            # Unavailable, or a Timeout when the deadline ran out during a connection
            # attempt (the last retry gets what is left of it, possibly a millisecond)
            with pytest.raises((DatabaseUnavailable, DatabaseTimeout)):
                await db.fetchval("SELECT 1")
            with pytest.raises((DatabaseUnavailable, DatabaseTimeout)):
                async with db.transaction():
                    pass

            await asyncio.to_thread(cluster.start)

            async def healthy() -> bool:
                return (await db.health()).ok

            await eventually(healthy, timeout=15)
            health = await db.health()
            assert health.size >= 1
            assert health.detail == ""
            assert await db.fetchval("SELECT 41 + 1") == 42
    finally:
        await db.close()
