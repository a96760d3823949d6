"""The Database API on both dialects: statements, transactions, errors, timeouts, locks,
health and the instruments (slow-query log, Prometheus metrics)."""

from __future__ import annotations

import asyncio
import fcntl
import os
from pathlib import Path
from typing import Any

import prometheus_client
import pytest

from aria_actors import Node
from aria_actors.services.data.api import (
    Connection,
    Database,
    DatabaseError,
    DatabaseHealth,
    DatabaseTimeout,
    DatabaseUnavailable,
    QueryError,
)
from aria_actors.services.data.instruments import Instruments
from aria_actors.services.data.sqlite import SqliteDatabase, sqlite_sql
from tests.servers.fixtures import PgDatabase

from .helpers import Target, eventually, held_elsewhere, open_db, outcome_of, sql_for

ITEMS = "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL, qty INTEGER)"
# About half a second of work for SQLite (a statement a deadline must be able to stop).
SQLITE_LONG = (
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT 3000000) "
    "SELECT count(*) FROM c"
)


async def count(db: Database | Connection, table: str = "items") -> int:
    return int(await db.fetchval(f"SELECT count(*) FROM {table}"))


def test_placeholders_become_sqlites_numbered_parameters() -> None:
    assert sqlite_sql("SELECT $1, $2, $10, $1") == "SELECT ?1, ?2, ?10, ?1"
    assert sqlite_sql("SELECT 1") == "SELECT 1"


async def test_both_backends_are_databases(db: Database) -> None:
    assert isinstance(db, Database)
    assert db.name == "main"
    assert db.dialect in ("sqlite", "postgres")


# -- statements ---------------------------------------------------------------------------


async def test_statements_take_numbered_placeholders_and_return_dict_rows(db: Database) -> None:
    await db.execute(ITEMS)
    status = await db.execute("INSERT INTO items (id, name, qty) VALUES ($1, $2, $3)", 1, "a", 5)
    assert isinstance(status, str)
    # out of order and repeated placeholders
    await db.execute("INSERT INTO items (qty, name, id) VALUES ($3, $2, $1)", 2, "b", 7)
    await db.execute("INSERT INTO items (id, name, qty) VALUES ($1, $2, $1)", 3, "c")

    rows = await db.fetch("SELECT id, name, qty FROM items ORDER BY id")
    assert rows == [
        {"id": 1, "name": "a", "qty": 5},
        {"id": 2, "name": "b", "qty": 7},
        {"id": 3, "name": "c", "qty": 3},
    ]
    assert all(type(row) is dict for row in rows)
    assert await db.fetchrow("SELECT name, qty FROM items WHERE id = $1", 2) == {
        "name": "b",
        "qty": 7,
    }
    assert await db.fetchrow("SELECT * FROM items WHERE id = $1", 99) is None
    assert await db.fetchval("SELECT qty FROM items WHERE name = $1", "a") == 5
    assert await db.fetchval("SELECT qty FROM items WHERE name = $1", "zz") is None
    assert await db.fetch("SELECT * FROM items WHERE qty > $1", 100) == []
    assert await db.fetchval("SELECT count(*) FROM items WHERE qty BETWEEN $1 AND $2", 3, 6) == 2


async def test_executemany_runs_once_per_row_all_or_nothing(db: Database) -> None:
    await db.execute(ITEMS)
    await db.executemany(
        "INSERT INTO items (id, name, qty) VALUES ($1, $2, $3)",
        [(1, "a", 1), (2, "b", 2), (3, "c", None)],
    )
    assert await db.fetch("SELECT id, qty FROM items ORDER BY id") == [
        {"id": 1, "qty": 1},
        {"id": 2, "qty": 2},
        {"id": 3, "qty": None},
    ]
    with pytest.raises(QueryError):
        await db.executemany(
            "INSERT INTO items (id, name, qty) VALUES ($1, $2, $3)",
            [(10, "x", 1), (11, "y", 1), (1, "duplicate", 1)],
        )
    assert await count(db) == 3  # 10 and 11 were rolled back with the failing row


async def test_a_constraint_violation_is_a_query_error_with_its_sqlstate(db: Database) -> None:
    await db.execute(ITEMS)
    await db.execute("INSERT INTO items (id, name) VALUES (1, 'a')")
    with pytest.raises(QueryError) as unique:
        await db.execute("INSERT INTO items (id, name) VALUES (1, 'again')")
    with pytest.raises(QueryError) as not_null:
        await db.execute("INSERT INTO items (id, name) VALUES (2, NULL)")
    if db.dialect == "postgres":
        assert unique.value.sqlstate == "23505"  # unique_violation
        assert not_null.value.sqlstate == "23502"  # not_null_violation
    else:
        assert unique.value.sqlstate is not None
        assert unique.value.sqlstate.startswith("SQLITE_CONSTRAINT")
        assert not_null.value.sqlstate == "SQLITE_CONSTRAINT_NOTNULL"
    with pytest.raises(QueryError) as syntax:
        await db.fetch("SELEC nonsense")
    assert isinstance(syntax.value, DatabaseError)
    if db.dialect == "postgres":
        assert syntax.value.sqlstate == "42601"  # syntax_error
    assert await count(db) == 1  # the database is still usable


async def test_a_wrong_number_of_arguments_is_a_query_error(db: Database) -> None:
    """A caller's mistake, not an outage: it must not read as ``DatabaseUnavailable``.

    asyncpg reports it as an ``InterfaceError``, which postgres.py files under
    UNAVAILABLE, so callers are told "the database is unreachable" and may retry
    forever.
    """
    await db.execute(ITEMS)
    with pytest.raises(QueryError):
        await db.fetchval("SELECT CAST($1 AS INTEGER) + CAST($2 AS INTEGER)", 1)
    with pytest.raises(QueryError):
        await db.execute("INSERT INTO items (id, name) VALUES (1, 'a')", 5)
    async with db.transaction() as tx:
        with pytest.raises(QueryError):
            await tx.fetchval("SELECT CAST($1 AS INTEGER)", 1, 2)


# -- transactions --------------------------------------------------------------------------


async def test_a_transaction_commits_everything_and_sees_its_own_writes(db: Database) -> None:
    await db.execute(ITEMS)
    await db.execute("INSERT INTO items (id, name, qty) VALUES (1, 'before', 1)")
    async with asyncio.timeout(10):
        async with db.transaction() as tx:
            await tx.execute("INSERT INTO items (id, name, qty) VALUES ($1, $2, $3)", 2, "b", 2)
            await tx.execute("UPDATE items SET qty = qty + $1 WHERE id = $2", 10, 1)
            # statements of the transaction see its writes...
            assert await count(tx) == 2
            assert await tx.fetchval("SELECT qty FROM items WHERE id = 1") == 11
            assert await tx.fetchrow("SELECT name FROM items WHERE id = 2") == {"name": "b"}
            # ...and nobody else does before the commit (nor is blocked: readers run)
            assert await count(db) == 1
            assert await db.fetchval("SELECT qty FROM items WHERE id = 1") == 1
    assert await db.fetch("SELECT id, qty FROM items ORDER BY id") == [
        {"id": 1, "qty": 11},
        {"id": 2, "qty": 2},
    ]


class Boom(Exception):
    pass


async def test_a_transaction_rolls_back_on_any_exception(db: Database) -> None:
    await db.execute(ITEMS)
    await db.execute("INSERT INTO items (id, name) VALUES (1, 'kept')")

    async def partial(tx: Connection, n: int) -> None:
        await tx.execute("INSERT INTO items (id, name) VALUES ($1, 'partial')", n)
        await tx.execute("UPDATE items SET name = 'changed' WHERE id = 1")
        assert await count(tx) == 2

    async def callers_error() -> None:
        async with db.transaction() as tx:
            await partial(tx, 2)
            raise Boom

    async def refused_statement() -> None:  # after others succeeded
        async with db.transaction() as tx:
            await partial(tx, 3)
            await tx.execute("INSERT INTO items (id, name) VALUES (1, 'duplicate')")

    async def cancelled() -> None:  # a deadline of the caller's, in the middle
        async with asyncio.timeout(0.2), db.transaction() as tx:
            await partial(tx, 4)
            await asyncio.sleep(30)

    async def interrupted() -> None:  # BaseExceptions too
        async with db.transaction() as tx:
            await partial(tx, 5)
            raise KeyboardInterrupt

    with pytest.raises(Boom):
        await callers_error()
    with pytest.raises(QueryError):
        await refused_statement()
    with pytest.raises(TimeoutError):
        await cancelled()
    with pytest.raises(KeyboardInterrupt):
        await interrupted()

    assert await db.fetch("SELECT id, name FROM items") == [{"id": 1, "name": "kept"}]
    async with db.transaction() as tx:  # and the next transaction works
        await tx.execute("INSERT INTO items (id, name) VALUES (6, 'after')")
    assert await count(db) == 2


async def test_a_transaction_with_a_failed_statement_never_commits_silently(
    db: Database,
) -> None:
    """A caller that catches a statement's error and leaves the block normally.

    SQLite undoes just the failed statement and commits the rest. PostgreSQL aborts
    the whole transaction, and its ``COMMIT`` then answers ``ROLLBACK`` without an
    error: the caller is told nothing while the insert before it is lost. Either
    the earlier writes are committed, or leaving the block must raise.
    """
    await db.execute(ITEMS)
    await db.execute("INSERT INTO items (id, name) VALUES (1, 'a')")
    raised: BaseException | None = None
    try:
        async with db.transaction() as tx:
            await tx.execute("INSERT INTO items (id, name) VALUES (2, 'b')")
            with pytest.raises(QueryError):
                await tx.execute("INSERT INTO items (id, name) VALUES (1, 'duplicate')")
    except DatabaseError as exc:
        raised = exc
    ids = [row["id"] for row in await db.fetch("SELECT id FROM items ORDER BY id")]
    assert raised is not None or ids == [1, 2], (
        f"the transaction left without an error, but its insert is not there: {ids}"
    )


# -- deadlines ------------------------------------------------------------------------------


async def test_a_long_statement_runs_into_its_deadline(db: Database) -> None:
    long = sql_for(db.dialect, "SELECT pg_sleep(5)", SQLITE_LONG)
    async with asyncio.timeout(10):
        with pytest.raises(DatabaseTimeout) as caught:
            await db.fetchval(long, timeout=0.1)
        assert isinstance(caught.value, TimeoutError)
        with pytest.raises(DatabaseTimeout):
            await db.execute(long, timeout=0.1)
        with pytest.raises(DatabaseTimeout):
            async with db.transaction() as tx:
                await tx.fetchval(long, timeout=0.1)
        assert await db.fetchval("SELECT 1") == 1
    if db.dialect == "postgres":

        async def cancelled_on_the_server() -> bool:
            running = await db.fetchval(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE query = 'SELECT pg_sleep(5)' AND state = 'active'"
            )
            return bool(running == 0)

        await eventually(cancelled_on_the_server, timeout=5)


async def test_waiting_for_the_writer_or_a_connection_runs_into_its_deadline(
    target: Target,
) -> None:
    """SQLite: one writer; PostgreSQL: a pool of one connection."""
    db = await open_db(target, max_size=1)
    try:
        async with held_elsewhere(db.transaction):
            with pytest.raises(DatabaseTimeout):
                async with db.transaction(timeout=0.1):
                    pass
        async with asyncio.timeout(5), db.transaction(timeout=1.0) as tx:  # free again
            assert await tx.fetchval("SELECT 1") == 1
    finally:
        await db.close()


async def test_sqlite_a_writer_of_another_process_blocks_only_until_busy_timeout(
    tmp_path: Path,
) -> None:
    """Two SqliteDatabase objects on one file stand for two processes."""
    first = SqliteDatabase("main", tmp_path / "main.db")
    second = SqliteDatabase("main", tmp_path / "main.db", busy_timeout=0.1)
    await first.open()
    await second.open()
    try:
        await first.execute(ITEMS)
        async with asyncio.timeout(10):
            async with first.transaction() as tx:
                await tx.execute("INSERT INTO items (id, name) VALUES (1, 'a')")
                with pytest.raises(DatabaseTimeout):
                    await second.execute("INSERT INTO items (id, name) VALUES (2, 'b')")
                with pytest.raises(DatabaseTimeout):
                    async with second.transaction():
                        pass
                assert await count(second) == 0  # readers are not blocked
            await second.execute("INSERT INTO items (id, name) VALUES (2, 'b')")
        assert await count(first) == 2
    finally:
        await second.close()
        await first.close()


# -- the lock -------------------------------------------------------------------------------


async def test_lock_is_exclusive_across_tasks_and_database_objects(target: Target) -> None:
    """Five tasks on two handles (two pools; two SqliteDatabase objects on one file)."""
    first = await open_db(target)
    second = await open_db(target)
    inside: list[int] = []
    most = 0
    order: list[int] = []

    async def critical(db: Database, n: int) -> None:
        nonlocal most
        async with db.lock("migrations"):
            inside.append(n)
            most = max(most, len(inside))
            await asyncio.sleep(0.03)
            order.append(n)
            inside.remove(n)

    try:
        async with asyncio.timeout(15):
            await asyncio.gather(*(critical((first, second)[n % 2], n) for n in range(5)))
            assert most == 1
            assert sorted(order) == list(range(5))
            # another key is another lock
            async with first.lock("a"):
                async with asyncio.timeout(5):
                    async with second.lock("b"):
                        pass
    finally:
        await second.close()
        await first.close()


async def test_a_cancelled_lock_waiter_does_not_keep_the_lock(db: Database) -> None:
    """A task that gives up waiting for the lock must not end up holding it.

    SQLite's lock() waits in ``flock()`` in a worker thread; when the waiting task is
    cancelled the thread still gets the lock later, and nobody ever releases it.
    (For SQLite the lock file is probed without blocking: a thread stuck in
    ``flock()`` would keep the test process from exiting.)
    """
    async with held_elsewhere(lambda: db.lock("k")):
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.2), db.lock("k"):
                pytest.fail("the lock is held by the other task")
    if isinstance(db, SqliteDatabase):
        lock_file = db.path.with_name(f"{db.path.name}.k.lock")
        for _ in range(20):  # the abandoned waiter would take it within a few ms
            assert not flock_taken(lock_file), "the cancelled waiter took the lock for good"
            await asyncio.sleep(0.02)
        return
    try:
        async with asyncio.timeout(3), db.lock("k"):
            pass
    except TimeoutError:
        pytest.fail("the lock stayed taken after the waiter was cancelled")


def flock_taken(path: Path) -> bool:
    """Whether somebody holds an exclusive flock on ``path`` (probed without waiting)."""
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    else:
        fcntl.flock(descriptor, fcntl.LOCK_UN)
        return False
    finally:
        os.close(descriptor)


async def test_postgres_a_lock_wait_past_the_statement_deadline_is_a_database_timeout(
    pg_database: PgDatabase,
) -> None:
    """PostgreSQL waits for an advisory lock within ``command_timeout``; running out
    must be a DatabaseTimeout (lock() lets asyncpg's bare TimeoutError through)."""
    db = await open_db(Target("postgres", pg=pg_database), command_timeout=0.3)
    try:

        async def second_holder() -> None:
            async with asyncio.timeout(10), db.lock("k"):
                pass

        async with held_elsewhere(lambda: db.lock("k")):
            outcome = await outcome_of(second_holder)
        assert isinstance(outcome, DatabaseTimeout), repr(outcome)
    finally:
        await db.close()


# -- health -------------------------------------------------------------------------------


async def test_health_reports_the_pool_and_a_round_trip(db: Database) -> None:
    await db.fetchval("SELECT 1")
    health = await db.health()
    assert isinstance(health, DatabaseHealth)
    assert health.name == "main"
    assert health.dialect == db.dialect
    assert health.ok is True
    assert health.detail == ""
    assert health.size >= 1
    assert 0 <= health.idle <= health.size
    assert health.waiting == 0
    assert health.round_trip_ms >= 0.0
    if db.dialect == "sqlite":
        assert health.size == 5  # the writer and 4 readers
    await db.close()
    closed = await db.health()  # a probe never raises
    assert closed.ok is False
    assert closed.detail.startswith("degraded")


# -- instruments --------------------------------------------------------------------------


async def test_slow_statements_are_logged_without_their_arguments(
    target: Target, node: Node, logs: list[dict[str, Any]]
) -> None:
    quick = await open_db(target, instruments=Instruments(node, "quick", 60.0))
    slow = await open_db(target, instruments=Instruments(node, "slow", 1e-9))
    try:
        await quick.fetchval("SELECT CAST($1 AS TEXT)", "not-logged")
        assert [e for e in logs if e["event"] == "slow_query"] == []

        terms = " + ".join(["1"] * 200)
        long_sql = f"SELECT   CAST($1 AS TEXT)  AS  value,\n  {terms} AS total"
        assert await slow.fetchval(long_sql, "secret-argument") == "secret-argument"
        events = [e for e in logs if e["event"] == "slow_query"]
        assert len(events) == 1
        event = events[0]
        assert event["log_level"] == "warning"
        assert event["database"] == "slow"
        assert event["seconds"] >= 0
        # whitespace collapsed
        assert event["sql"].startswith("SELECT CAST($1 AS TEXT) AS value, 1 + 1")
        assert len(event["sql"]) == 300  # cut
        assert "secret-argument" not in repr(event)
    finally:
        await slow.close()
        await quick.close()


async def test_statement_times_errors_and_connections_are_in_the_node_metrics(
    target: Target, node: Node
) -> None:
    db = await open_db(target, instruments=Instruments(node, "main", 60.0))
    try:
        await db.execute(ITEMS)
        await db.execute("INSERT INTO items (id, name) VALUES (1, 'a')")
        await db.fetch("SELECT * FROM items")
        async with db.transaction() as tx:
            await tx.fetchval("SELECT count(*) FROM items")
        with pytest.raises(QueryError):
            await db.execute("INSERT INTO items (id, name) VALUES (1, 'a')")
        await db.health()

        text = prometheus_client.generate_latest(node.metrics).decode()
        assert 'aria_data_query_seconds_count{database="main"}' in text
        assert "aria_data_errors_total" in text
        assert 'aria_data_pool_connections{database="main",state="open"}' in text

        def sample(name: str, **labels: str) -> float | None:
            return node.metrics.get_sample_value(name, {"database": "main", **labels})

        statements = sample("aria_data_query_seconds_count")
        assert statements is not None
        assert statements >= 5
        errors = [
            m
            for m in node.metrics.collect()
            if m.name == "aria_data_errors"
            for s in m.samples
            if s.name == "aria_data_errors_total" and s.labels["database"] == "main"
        ]
        assert errors, "the failed INSERT was not counted"
        assert (sample("aria_data_pool_connections", state="open") or 0) >= 1
        assert sample("aria_data_pool_connections", state="waiting") == 0
    finally:
        await db.close()


# -- SQLite's file --------------------------------------------------------------------------


@pytest.mark.parametrize("directory", ["with space", "hash#mark", "question?mark", "per%41cent"])
async def test_sqlite_opens_the_file_it_was_given(tmp_path: Path, directory: str) -> None:
    """The path is put into a ``file:`` URI unquoted: ``#`` and ``?`` cut it short
    (another file is opened, silently) and ``%41`` is decoded (cannot be opened)."""
    path = tmp_path / directory / "main.db"
    db = SqliteDatabase("main", path)
    await db.open()
    try:
        await db.execute("CREATE TABLE marker (x INTEGER)")
    finally:
        await db.close()
    assert entries(tmp_path) == [directory]
    db = SqliteDatabase("again", path)
    await db.open()
    try:
        assert await db.fetch("SELECT name FROM sqlite_master") == [{"name": "marker"}]
    finally:
        await db.close()


def entries(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


async def test_sqlite_refuses_a_file_that_is_not_a_database(tmp_path: Path) -> None:
    path = tmp_path / "main.db"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(DatabaseUnavailable):
        await SqliteDatabase("main", path).open()


async def test_sqlite_makes_its_file_private(tmp_path: Path) -> None:
    path = tmp_path / "state" / "main.db"
    db = SqliteDatabase("main", path)
    await db.open()
    await db.close()
    assert path.stat().st_mode & 0o777 == 0o600
