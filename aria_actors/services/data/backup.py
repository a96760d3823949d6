"""Backup and restore: a consistent online copy, restorable into an empty database.

- SQLite: SQLite's online backup API (a consistent snapshot while the node keeps
  writing); restore copies a backup into a database file that does not exist yet
  (or is empty).
- PostgreSQL: ``pg_dump --format=custom`` (a consistent snapshot: one
  repeatable-read transaction); restore with ``pg_restore`` into an empty database.

Restoring into a database that already has tables is refused: a restore never
overwrites data.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import os
import shutil
import sqlite3
from pathlib import Path
from typing import Final

from ..._runtime.blocking import run_blocking
from .api import Database, DatabaseError
from .sqlite import SqliteDatabase

TOOL_DIRS: Final = ("/usr/lib/postgresql/*/bin", "/usr/local/pgsql/bin")


def tool(name: str) -> str:
    """The path of a PostgreSQL client tool (``pg_dump``, ``pg_restore``).

    Raises:
        DatabaseError: it is not installed.
    """
    found = shutil.which(name)
    if found:
        return found
    for pattern in TOOL_DIRS:
        for directory in sorted(glob.glob(pattern), reverse=True):
            candidate = Path(directory) / name
            if candidate.exists():
                return str(candidate)
    raise DatabaseError(f"{name} is not installed (Debian: apt-get install postgresql-client)")


async def _run(*command: str) -> None:
    process = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    _, stderr = await process.communicate()
    if process.returncode != 0:
        text = stderr.decode(errors="replace").strip().splitlines()
        raise DatabaseError(f"{Path(command[0]).name} failed: {' | '.join(text[-3:])}")


async def backup(db: Database, destination: Path, dsn: str | None = None) -> Path:
    """Write a consistent backup of ``db`` to ``destination`` (mode 0600).

    ``dsn`` is needed for PostgreSQL (the database's connection URI).

    Raises:
        DatabaseError: the copy failed (a partial file is removed).
    """
    destination.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(db, SqliteDatabase):
        await db.backup(destination)
        return destination
    if not dsn:
        raise DatabaseError("a PostgreSQL backup needs the database's DSN")
    try:
        await _run(tool("pg_dump"), "--format=custom", f"--file={destination}", f"--dbname={dsn}")
    except DatabaseError:
        with contextlib.suppress(FileNotFoundError):
            os.remove(destination)  # no partial backup is left behind
        raise
    os.chmod(destination, 0o600)
    return destination


async def restore_postgres(source: Path, dsn: str) -> None:
    """Restore a ``pg_dump`` backup into the empty database at ``dsn``.

    Raises:
        DatabaseError: the database is not empty, or ``pg_restore`` failed.
    """
    import asyncpg

    connection = await asyncpg.connect(dsn)
    try:
        tables = await connection.fetchval(
            "SELECT count(*) FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', "
            "'information_schema')"
        )
    finally:
        await connection.close()
    if tables:
        raise DatabaseError(f"refusing to restore into a database that has {tables} table(s)")
    await _run(tool("pg_restore"), "--no-owner", "--exit-on-error", f"--dbname={dsn}", str(source))


async def restore_sqlite(source: Path, target: Path) -> None:
    """Restore a SQLite backup into ``target``, which must not exist or be empty.

    Raises:
        DatabaseError: ``target`` has tables, or ``source`` is not a SQLite database.
    """

    def copy() -> None:
        if target.exists() and target.stat().st_size:
            with sqlite3.connect(target) as existing:
                count = existing.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
            if count:
                raise DatabaseError(f"refusing to restore into {target}: it has {count} objects")
        source_db = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
        try:
            source_db.execute("SELECT count(*) FROM sqlite_master").fetchone()
            target_db = sqlite3.connect(target)
            try:
                source_db.backup(target_db)
            finally:
                target_db.close()
        except sqlite3.DatabaseError as exc:
            raise DatabaseError(f"{source} is not a SQLite backup: {exc}") from exc
        finally:
            source_db.close()
        os.chmod(target, 0o600)

    await run_blocking(copy)
