"""Helpers of the aria_data tests: where a test database lives, opening more handles on
it, migration directories, snapshots of a database's content, waiting with deadlines,
and the tenant-scoped ``notes`` table several test modules use."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from aria_actors.services.data.api import Database, Dialect, Row
from aria_actors.services.data.instruments import Instruments
from aria_actors.services.data.postgres import PostgresDatabase
from aria_actors.services.data.repository import Repository, row_level_security
from aria_actors.services.data.sqlite import SqliteDatabase
from tests.servers.fixtures import PgDatabase

REPO = Path(__file__).resolve().parents[3]
SUPERVISORS = REPO / "supervisors"


@dataclass(frozen=True)
class Target:
    """The database a test works on: a SQLite file, or a PostgreSQL database."""

    dialect: Literal["sqlite", "postgres"]
    path: Path | None = None
    pg: PgDatabase | None = None

    @property
    def dsn(self) -> str:
        """The superuser's socket DSN (PostgreSQL only)."""
        assert self.pg is not None, "a SQLite target has no DSN"
        return self.pg.dsn


async def open_db(
    target: Target,
    *,
    name: str = "main",
    instruments: Instruments | None = None,
    **options: Any,
) -> Database:
    """One more opened handle on ``target`` (another pool, another SqliteDatabase).

    ``options`` go to the constructor of the dialect (``busy_timeout`` for SQLite,
    ``max_size``, ``command_timeout``, ``acquire_timeout``... for PostgreSQL); the other
    dialect's options are dropped, so one call serves both.
    """
    database: SqliteDatabase | PostgresDatabase
    if target.dialect == "sqlite":
        assert target.path is not None
        keep = {k: v for k, v in options.items() if k in ("readers", "busy_timeout")}
        database = SqliteDatabase(name, target.path, instruments=instruments, **keep)
    else:
        keep = {
            k: v
            for k, v in options.items()
            if k in ("min_size", "max_size", "command_timeout", "acquire_timeout")
        }
        keep.setdefault("command_timeout", 10.0)
        keep.setdefault("acquire_timeout", 5.0)
        database = PostgresDatabase(name, target.dsn, instruments=instruments, **keep)
    await database.open()
    return database


def sql_for(dialect: Dialect, postgres: str, sqlite: str) -> str:
    return postgres if dialect == "postgres" else sqlite


def write_migrations(
    root: Path, files: Mapping[str, str | tuple[str, str]], *, clear: bool = False
) -> Path:
    """Write migration files into ``root/postgres`` and ``root/sqlite``.

    A value is the SQL of both dialects, or a ``(postgres, sqlite)`` pair. ``clear``
    removes the files that were there first.
    """
    for dialect in ("postgres", "sqlite"):
        folder = root / dialect
        folder.mkdir(parents=True, exist_ok=True)
        if clear:
            for old in folder.iterdir():
                old.unlink()
        for name, sql in files.items():
            text = sql if isinstance(sql, str) else sql[0 if dialect == "postgres" else 1]
            (folder / name).write_text(text, encoding="utf-8")
    return root


async def user_tables(db: Database) -> list[str]:
    """The names of the tables of ``db`` (PostgreSQL: schema public), sorted."""
    if db.dialect == "postgres":
        sql = "SELECT tablename AS name FROM pg_tables WHERE schemaname = 'public'"
    else:
        sql = "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
    return sorted(row["name"] for row in await db.fetch(sql))


async def snapshot(db: Database) -> dict[str, list[Row]]:
    """Every row of every table, each table's rows sorted: for comparing contents."""
    content: dict[str, list[Row]] = {}
    for table in await user_tables(db):
        rows = await db.fetch(f"SELECT * FROM {table}")
        content[table] = sorted(rows, key=repr)
    return content


async def eventually(
    check: Callable[[], Awaitable[bool]], *, timeout: float, interval: float = 0.05
) -> None:
    """Wait until ``await check()`` is true; ``TimeoutError`` after ``timeout`` seconds."""
    async with asyncio.timeout(timeout):
        while not await check():  # noqa: ASYNC110 - polling the database is the point
            await asyncio.sleep(interval)


async def outcome_of(work: Callable[[], Awaitable[Any]]) -> Exception | None:
    """The exception ``work()`` raised, or None (for checking it after other things)."""
    try:
        await work()
    except Exception as exc:
        return exc
    return None


@asynccontextmanager
async def held_elsewhere(
    enter: Callable[[], AbstractAsyncContextManager[Any]], timeout: float = 10.0
) -> AsyncIterator[None]:
    """While the body runs, another task holds ``enter()`` (a transaction, a lock).

    The other task is let go when the body ends, however it ends, and awaited.
    """
    entered = asyncio.Event()
    release = asyncio.Event()

    async def hold() -> None:
        async with enter():
            entered.set()
            await release.wait()

    task = asyncio.create_task(hold())
    try:
        async with asyncio.timeout(timeout):
            waiter = asyncio.create_task(entered.wait())
            await asyncio.wait([task, waiter], return_when=asyncio.FIRST_COMPLETED)
            waiter.cancel()
        if task.done():
            task.result()  # it failed to enter: its error
        yield
    finally:
        release.set()
        async with asyncio.timeout(timeout):
            await asyncio.wait([task])
    task.result()


@dataclass(frozen=True)
class AppRole:
    """An ordinary (NOSUPERUSER, NOBYPASSRLS) login role that may create tables in the
    test database, and its TCP DSN with the password."""

    name: str
    password: str
    dsn: str
    pg: PgDatabase


# -- a tenant-scoped table for the repository, backup and service tests ----------------

NOTES_PG = "CREATE TABLE notes (id SERIAL PRIMARY KEY, tenant_id TEXT NOT NULL, body TEXT);\n"
NOTES_SQLITE = (
    "CREATE TABLE notes (\n"
    "    id INTEGER PRIMARY KEY AUTOINCREMENT, tenant_id TEXT NOT NULL, body TEXT\n);\n"
)
TAGS = "CREATE TABLE tags (id INTEGER PRIMARY KEY, label TEXT NOT NULL);\n"


class Notes(Repository):
    table = "notes"
    columns = ("id", "tenant_id", "body")
    tenant_scoped = True


class Tags(Repository):
    table = "tags"
    columns = ("id", "label")


def notes_migrations(root: Path, rls: bool = False) -> Path:
    pg = NOTES_PG + ("\n".join(row_level_security("notes")) + "\n" if rls else "")
    return write_migrations(root, {"0001_notes.sql": (pg, NOTES_SQLITE), "0002_tags.sql": TAGS})
