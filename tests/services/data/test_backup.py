"""Backup and restore on both dialects: a consistent online copy, restored into an empty
database only; damaged data brought back; broken backups refused."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import sqlite3
import stat
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from aria_actors.services.data import backup as backups
from aria_actors.services.data.api import Database, DatabaseError
from aria_actors.services.data.migrations import migrate
from aria_actors.services.data.postgres import PostgresDatabase
from aria_actors.services.data.sqlite import SqliteDatabase
from tests.servers.fixtures import PgDatabase

from .helpers import (
    AppRole,
    Target,
    eventually,
    notes_migrations,
    open_db,
    outcome_of,
    snapshot,
    user_tables,
    write_migrations,
)


async def take_backup(db: Database, target: Target, destination: Path) -> Path:
    return await backups.backup(db, destination, target.dsn if target.pg else None)


async def restore(source: Path, into: Target) -> None:
    if into.dialect == "sqlite":
        assert into.path is not None
        await backups.restore_sqlite(source, into.path)
    else:
        await backups.restore_postgres(source, into.dsn)


async def seed(db: Database, tmp_path: Path) -> None:
    pg = (
        "CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT NOT NULL, note TEXT);\n"
        "CREATE TABLE pets (id INTEGER PRIMARY KEY, owner INTEGER NOT NULL REFERENCES people (id),"
        " species TEXT);\n"
    )
    await migrate(db, "zoo", write_migrations(tmp_path / "zoo", {"0001_zoo.sql": pg}))
    await db.executemany(
        "INSERT INTO people (id, name, note) VALUES ($1, $2, $3)",
        [(i, f"person {i}", None if i % 3 else "ünïcødé ✓ 'quoted'") for i in range(1, 51)],
    )
    await db.executemany(
        "INSERT INTO pets (id, owner, species) VALUES ($1, $2, $3)",
        [(i, 1 + i % 50, ("cat", "dog", "newt")[i % 3]) for i in range(1, 101)],
    )


@pytest.fixture
async def restored_db(empty_target: Target) -> AsyncIterator[Callable[[], Awaitable[Database]]]:
    """Opens the restored database when asked (after the restore); closes it afterwards."""
    opened: list[Database] = []

    async def opener() -> Database:
        database = await open_db(empty_target)
        opened.append(database)
        return database

    try:
        yield opener
    finally:
        for database in opened:
            await database.close()


async def test_backs_up_damages_and_restores(
    db: Database,
    target: Target,
    empty_target: Target,
    restored_db: Callable[[], Awaitable[Database]],
    tmp_path: Path,
) -> None:
    await seed(db, tmp_path)
    before = await snapshot(db)
    assert len(before["people"]) == 50
    assert len(before["pets"]) == 100
    path = await take_backup(db, target, tmp_path / "backups" / "main.backup")
    assert path == tmp_path / "backups" / "main.backup"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.stat().st_size > 0

    # the damage
    await db.execute("DELETE FROM pets WHERE species = 'cat'")
    await db.execute("UPDATE people SET name = 'overwritten'")
    await db.execute("DROP TABLE pets")
    assert await snapshot(db) != before

    await restore(path, empty_target)
    restored = await restored_db()
    assert await snapshot(restored) == before
    assert await migrate(restored, "zoo", tmp_path / "zoo") == []  # its migrations came along
    if restored.dialect == "sqlite":
        assert await restored.fetchval("PRAGMA integrity_check") == "ok"


async def test_restoring_into_a_database_that_has_tables_is_refused(
    db: Database, target: Target, tmp_path: Path
) -> None:
    await seed(db, tmp_path)
    path = await take_backup(db, target, tmp_path / "main.backup")
    await db.execute("DELETE FROM pets")
    with pytest.raises(DatabaseError, match="refusing to restore"):
        await restore(path, target)
    assert await db.fetchval("SELECT count(*) FROM pets") == 0  # untouched
    assert await db.fetchval("SELECT count(*) FROM people") == 50


async def test_a_corrupt_backup_is_a_database_error(
    target: Target, empty_target: Target, tmp_path: Path
) -> None:
    garbage = tmp_path / "garbage.backup"
    garbage.write_bytes(b"PGDMP" + secrets.token_bytes(4000))
    with pytest.raises(DatabaseError):
        await restore(garbage, empty_target)
    with pytest.raises(DatabaseError):
        await restore(tmp_path / "no-such.backup", empty_target)


async def test_sqlite_restore_into_a_new_directory_does_not_blame_the_backup(
    tmp_path: Path,
) -> None:
    """The target's directory does not exist yet (a new state directory): restore
    either creates it, as backup() does for its destination, or says the target is
    the problem; it reported "<backup> is not a SQLite backup" instead."""
    db = SqliteDatabase("main", tmp_path / "main.db")
    await db.open()
    try:
        await db.execute("CREATE TABLE t (x INTEGER)")
        path = await backups.backup(db, tmp_path / "main.backup")
    finally:
        await db.close()
    target = tmp_path / "new-state" / "main.db"
    outcome = await outcome_of(lambda: backups.restore_sqlite(path, target))
    if outcome is None:
        with contextlib.closing(sqlite3.connect(target)) as restored:
            assert restored.execute("SELECT name FROM sqlite_master").fetchall() == [("t",)]
    else:
        assert isinstance(outcome, DatabaseError)
        assert "not a SQLite backup" not in str(outcome)
        assert str(target) in str(outcome)


async def test_a_truncated_backup_is_refused_and_leaves_the_target_empty(
    db: Database,
    target: Target,
    empty_target: Target,
    restored_db: Callable[[], Awaitable[Database]],
    tmp_path: Path,
) -> None:
    """A backup cut short (a full disk, a copy interrupted) must be refused, and the
    target must not keep part of it, so that the retry with a good backup works.

    PostgreSQL: pg_restore fails but, without --single-transaction, leaves the
    tables and rows it got to; the retry is refused as "not empty". SQLite: the
    missing tail is read as zeros and the restore "succeeds" with a corrupt
    database (``PRAGMA integrity_check`` fails); nothing checks it."""
    await seed(db, tmp_path)
    good = await take_backup(db, target, tmp_path / "good.backup")
    data = good.read_bytes()
    truncated = tmp_path / "truncated.backup"
    truncated.write_bytes(data[:-200])  # whole up to the last table's data
    with pytest.raises(DatabaseError):
        await restore(truncated, empty_target)
    await restore(good, empty_target)
    assert await snapshot(await restored_db()) == await snapshot(db)


async def test_a_backup_that_cannot_be_written_is_a_database_error(
    db: Database, target: Target, tmp_path: Path
) -> None:
    """E.g. a directory given as the destination: the error must stay a DatabaseError
    (the clean-up ``os.remove(destination)`` raises IsADirectoryError over it)."""
    await seed(db, tmp_path)
    destination = tmp_path / "a-directory"
    destination.mkdir()
    with pytest.raises(DatabaseError):
        await take_backup(db, target, destination)
    assert destination.is_dir()


async def test_sqlite_online_backup_is_consistent_while_a_writer_keeps_writing(
    tmp_path: Path,
) -> None:
    """Every transaction of the writer adds a pair of rows (n, 'a'), (n, 'b'); a backup
    taken meanwhile holds whole pairs 1..k for a k that was committed at some point
    while it ran."""
    db = SqliteDatabase("main", tmp_path / "main.db")
    await db.open()
    committed = 0  # the last transaction known to be committed
    started = 0  # the last transaction begun (its COMMIT may be done, unseen yet)
    stop = asyncio.Event()

    async def writer() -> None:
        nonlocal committed, started
        n = 0
        while not stop.is_set():
            n += 1
            started = n
            async with db.transaction() as tx:
                await tx.execute("INSERT INTO pairs (n, side) VALUES ($1, 'a')", n)
                await asyncio.sleep(0)  # let the backup in between the two rows if it can
                await tx.execute("INSERT INTO pairs (n, side) VALUES ($1, 'b')", n)
            committed = n

    async def writing() -> bool:
        return committed >= 20

    try:
        await db.execute("CREATE TABLE pairs (n INTEGER NOT NULL, side TEXT NOT NULL)")
        await db.execute("CREATE INDEX pairs_n ON pairs (n)")
        async with asyncio.timeout(30):
            task = asyncio.create_task(writer())
            try:
                await eventually(writing, timeout=10)
                windows = []
                for i in range(4):
                    low = committed
                    path = await backups.backup(db, tmp_path / f"online-{i}.backup")
                    windows.append((path, low, started))
                    await asyncio.sleep(0.02)
            finally:
                stop.set()
                await task
        assert committed > windows[0][1]  # the writer did keep writing
        for i, (path, low, high) in enumerate(windows):
            target = tmp_path / f"restored-{i}.db"
            await backups.restore_sqlite(path, target)
            with contextlib.closing(sqlite3.connect(target)) as restored:
                assert restored.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
                rows = restored.execute("SELECT n, side FROM pairs ORDER BY n, side").fetchall()
            k = len(rows) // 2
            assert rows == [(n, side) for n in range(1, k + 1) for side in ("a", "b")]
            assert low <= k <= high
    finally:
        await db.close()


# -- PostgreSQL specifics -------------------------------------------------------------------


async def test_postgres_passwords_stay_off_command_lines(
    pg_database: PgDatabase, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The DSN with the password must not be in pg_dump's or pg_restore's argv (every
    user of the machine can read it in ``ps``): PGPASSWORD or a passfile instead."""
    commands: list[tuple[str, ...]] = []
    real = asyncio.create_subprocess_exec

    async def spy(*argv: str, **kwargs: Any) -> Any:
        commands.append(argv)
        return await real(*argv, **kwargs)

    monkeypatch.setattr(asyncio, "create_subprocess_exec", spy)
    password = pg_database.cluster.password
    db = PostgresDatabase("main", pg_database.tcp_dsn)
    await db.open()
    try:
        await db.execute("CREATE TABLE t (x INTEGER)")
        path = await backups.backup(db, tmp_path / "main.backup", pg_database.tcp_dsn)
    finally:
        await db.close()
    assert path.stat().st_size > 0
    assert commands, "pg_dump did not run"
    assert not [argv for argv in commands if any(password in arg for arg in argv)]


async def rls_notes(app_role: AppRole, tmp_path: Path) -> PostgresDatabase:
    """The services' ordinary role owns ``notes`` with FORCE ROW LEVEL SECURITY (as
    repository.row_level_security() sets up) and one row per tenant ``a`` and ``b``."""
    db = PostgresDatabase("main", app_role.dsn)
    await db.open()
    await migrate(db, "notes", notes_migrations(tmp_path / "m", rls=True))
    for tenant in ("a", "b"):
        async with db.transaction(tenant=tenant) as tx:
            await tx.execute("INSERT INTO notes (tenant_id, body) VALUES ($1, 'x')", tenant)
    return db


async def test_postgres_backup_as_the_services_role_of_rls_tables_is_a_clear_error(
    app_role: AppRole, tmp_path: Path
) -> None:
    """pg_dump refuses a table whose rows row-level security would hide from it; the
    error says so and names the setting that fixes it, and no partial file is left."""
    db = await rls_notes(app_role, tmp_path)
    try:
        with pytest.raises(DatabaseError) as caught:
            await backups.backup(db, tmp_path / "main.backup", app_role.dsn)
    finally:
        await db.close()
    assert "row-level security" in str(caught.value)
    assert "backup_credentials" in str(caught.value)
    assert not (tmp_path / "main.backup").exists()


async def test_postgres_backup_as_a_bypassrls_role_holds_every_tenants_rows(
    app_role: AppRole, tmp_path: Path, new_pg_database: Callable[[], PgDatabase]
) -> None:
    """With a role that bypasses row-level security (what ``backup_credentials``
    names), the backup holds every tenant's rows and restores them."""
    cluster = app_role.pg.cluster
    db = await rls_notes(app_role, tmp_path)
    try:
        admin = cluster.socket_dsn(app_role.pg.name)  # the superuser bypasses RLS
        path = await backups.backup(db, tmp_path / "main.backup", admin)
    finally:
        await db.close()
    empty = Target("postgres", pg=new_pg_database())
    await backups.restore_postgres(path, empty.dsn)
    restored = await open_db(empty)
    try:
        assert "notes" in await user_tables(restored)
        rows = await restored.fetch("SELECT tenant_id FROM notes ORDER BY tenant_id")
        assert [r["tenant_id"] for r in rows] == ["a", "b"]  # as the superuser: all
    finally:
        await restored.close()


async def test_postgres_restore_of_a_missing_backup_is_a_clear_error(
    pg_database: PgDatabase, tmp_path: Path
) -> None:
    with pytest.raises(DatabaseError, match="no backup at"):
        await backups.restore_postgres(tmp_path / "absent.backup", pg_database.dsn)


async def test_postgres_backup_needs_a_dsn(pg_database: PgDatabase, tmp_path: Path) -> None:
    db = PostgresDatabase("main", pg_database.dsn)
    await db.open()
    try:
        with pytest.raises(DatabaseError, match="DSN"):
            await backups.backup(db, tmp_path / "x.backup")
    finally:
        await db.close()
    assert not (tmp_path / "x.backup").exists()
