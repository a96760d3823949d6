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
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import asyncpg

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


def _without_password(dsn: str) -> tuple[str, dict[str, str]]:
    """The DSN without its password, and the environment that carries it instead
    (``PGPASSWORD``): a password on a command line is readable by every user in ``ps``."""
    parts = urlsplit(dsn)
    if parts.password is None:
        return dsn, {}
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    if parts.port:
        host = f"{host}:{parts.port}"
    user = quote(unquote(parts.username or ""), safe="")
    netloc = f"{user}@{host}" if user else host
    clean = urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    return clean, {"PGPASSWORD": unquote(parts.password)}


async def _run(*command: str, env: dict[str, str] | None = None) -> None:
    process = await asyncio.create_subprocess_exec(
        *command,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **(env or {})},
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
    clean, env = _without_password(dsn)
    try:
        await _run(
            tool("pg_dump"),
            "--format=custom",
            f"--file={destination}",
            f"--dbname={clean}",
            env=env,
        )
    except DatabaseError as exc:
        with contextlib.suppress(OSError):
            os.remove(destination)  # no partial backup is left behind
        if "row-level security" in str(exc):
            raise DatabaseError(
                f"{exc}; back up as a role with BYPASSRLS (services.aria_data.databases."
                "<name>.backup_credentials)"
            ) from exc
        raise
    os.chmod(destination, 0o600)
    return destination


async def restore_postgres(source: Path, dsn: str) -> None:
    """Restore a ``pg_dump`` backup into the empty database at ``dsn``.

    The restore runs as one transaction: if any object fails, nothing is left
    half-restored.

    Raises:
        DatabaseError: ``source`` is missing, the database cannot be reached or is
            not empty, or ``pg_restore`` failed.
    """
    if not await run_blocking(source.is_file):
        raise DatabaseError(f"no backup at {source}")
    try:
        connection = await asyncpg.connect(dsn, timeout=10)
    except (TimeoutError, OSError, asyncpg.PostgresError) as exc:
        raise DatabaseError(f"cannot reach the restore target: {exc}") from exc
    try:
        tables = await connection.fetchval(
            "SELECT count(*) FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', "
            "'information_schema')"
        )
    finally:
        await connection.close()
    if tables:
        raise DatabaseError(f"refusing to restore into a database that has {tables} table(s)")
    clean, env = _without_password(dsn)
    await _run(
        tool("pg_restore"),
        "--no-owner",
        "--exit-on-error",
        "--single-transaction",
        f"--dbname={clean}",
        str(source),
        env=env,
    )


async def restore_sqlite(source: Path, target: Path) -> None:
    """Restore a SQLite backup into ``target``, which must not exist or be empty.

    The backup is checked (``PRAGMA integrity_check``) before anything is written;
    a restore that fails part-way removes the file it created.

    Raises:
        DatabaseError: ``source`` is missing or is not a sound SQLite database,
            ``target`` has tables, or its directory does not exist.
    """

    def copy() -> None:
        if not source.is_file():
            raise DatabaseError(f"no backup at {source}")
        if not target.parent.is_dir():
            raise DatabaseError(f"cannot restore into {target}: {target.parent} does not exist")
        existed = target.exists()
        if existed and target.stat().st_size:
            try:
                with contextlib.closing(sqlite3.connect(target)) as existing:
                    count = existing.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
            except sqlite3.DatabaseError as exc:
                raise DatabaseError(
                    f"refusing to restore into {target}: it is not an empty SQLite database ({exc})"
                ) from exc
            if count:
                raise DatabaseError(f"refusing to restore into {target}: it has {count} objects")
        created = False
        try:
            source_db = sqlite3.connect(f"file:{quote(str(source))}?mode=ro", uri=True)
            try:
                verdict = source_db.execute("PRAGMA integrity_check").fetchall()
                if [tuple(row) for row in verdict] != [("ok",)]:
                    problems = "; ".join(str(row[0]) for row in verdict[:3])
                    raise DatabaseError(f"{source} is a damaged SQLite backup: {problems}")
                target_db = sqlite3.connect(target)
                created = not existed
                try:
                    source_db.backup(target_db)
                finally:
                    target_db.close()
            finally:
                source_db.close()
        except sqlite3.DatabaseError as exc:
            if created:
                with contextlib.suppress(OSError):
                    os.remove(target)
            raise DatabaseError(f"{source} is not a SQLite backup: {exc}") from exc
        except BaseException:
            if created:
                with contextlib.suppress(OSError):
                    os.remove(target)
            raise
        os.chmod(target, 0o600)

    await run_blocking(copy)
