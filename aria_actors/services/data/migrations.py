"""Versioned SQL migrations, one set per service, for both dialects.

A service keeps its migrations in a directory with one folder per dialect::

    migrations/postgres/0001_create_users.sql
    migrations/sqlite/0001_create_users.sql

``NNNN_name.sql``: the number orders them (both dialects must have the same
numbers and names). :func:`migrate` applies the pending ones in order, each in a
transaction, and records them in ``aria_migrations`` (service, version, name,
SHA-256 of the file, when). It works under the database's lock (a PostgreSQL
advisory lock; a file lock for SQLite), so several nodes starting at once apply
each migration exactly once. It refuses to go on, naming the migration, when an
applied one was changed afterwards or is missing, or when the numbering has a gap
or a duplicate.
"""

from __future__ import annotations

import hashlib
import re
import time
from pathlib import Path
from typing import Final, Literal

import msgspec

from .api import Database, Dialect, MigrationError, QueryError

FILE: Final = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
TABLE: Final = "aria_migrations"
CREATE_TABLE: Final = f"""
CREATE TABLE IF NOT EXISTS {TABLE} (
    service TEXT NOT NULL,
    version INTEGER NOT NULL,
    name TEXT NOT NULL,
    checksum TEXT NOT NULL,
    applied_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (service, version)
)
"""


class Migration(msgspec.Struct, frozen=True):
    """One migration file of one service for one dialect."""

    service: str
    version: int
    name: str
    sql: str
    checksum: str


class MigrationState(msgspec.Struct, frozen=True):
    """One line of :func:`status`."""

    service: str
    version: int
    name: str
    state: Literal["applied", "pending", "changed", "missing"]
    applied_at: float | None


def load(service: str, directory: Path, dialect: Dialect) -> list[Migration]:
    """The migrations of ``service`` for ``dialect`` in ``directory/<dialect>/``, in order.

    Raises:
        MigrationError: a file name that does not match ``NNNN_name.sql``, a gap or a
            duplicate in the numbering.
    """
    folder = directory / dialect
    if not folder.is_dir():
        others = [d for d in ("postgres", "sqlite") if d != dialect and (directory / d).is_dir()]
        if others:
            raise MigrationError(
                f"{directory}: migrations exist for {others[0]} but not for {dialect} "
                f"(expected {folder})"
            )
        return []
    migrations: list[Migration] = []
    for file in sorted(folder.glob("*.sql")):
        match = FILE.match(file.name)
        if match is None:
            raise MigrationError(f"{file}: migration files are named NNNN_name.sql")
        text = file.read_text(encoding="utf-8")
        migrations.append(
            Migration(
                service=service,
                version=int(match[1]),
                name=match[2],
                sql=text,
                checksum=hashlib.sha256(text.encode()).hexdigest(),
            )
        )
    for expected, migration in enumerate(migrations, 1):
        if migration.version != expected:
            raise MigrationError(
                f"{folder}: migrations must be numbered 0001, 0002, ... without gaps or "
                f"duplicates; found {migration.version:04d}_{migration.name} where "
                f"{expected:04d} belongs"
            )
    return migrations


async def _create_table(db: Database) -> None:
    """Create the bookkeeping table if it is missing.

    Two sessions creating it at once make PostgreSQL's ``CREATE TABLE IF NOT
    EXISTS`` fail with a unique violation (on ``pg_type``) in the one that waited;
    by then the table exists, so the statement is tried once more.
    """
    try:
        await db.execute(CREATE_TABLE)
    except QueryError:
        await db.execute(CREATE_TABLE)


async def _applied(db: Database, service: str) -> dict[int, tuple[str, str, float]]:
    rows = await db.fetch(
        f"SELECT version, name, checksum, applied_at FROM {TABLE} WHERE service = $1", service
    )
    return {int(r["version"]): (r["name"], r["checksum"], float(r["applied_at"])) for r in rows}


def _check(migrations: list[Migration], applied: dict[int, tuple[str, str, float]]) -> None:
    known = {m.version: m for m in migrations}
    for version, (name, checksum, _) in sorted(applied.items()):
        migration = known.get(version)
        if migration is None:
            raise MigrationError(
                f"migration {version:04d}_{name} was applied to this database but its file is "
                "missing; restore the file (applied migrations are never removed)"
            )
        if migration.checksum != checksum:
            raise MigrationError(
                f"migration {version:04d}_{name} was changed after it was applied "
                "(its checksum differs); put the original back and add a new migration"
            )


async def migrate(db: Database, service: str, directory: Path) -> list[str]:
    """Apply ``service``'s pending migrations; the names applied (``0002_add_index``).

    Raises:
        MigrationError: a changed or missing applied migration, a bad numbering, or
            a migration the database refused (its transaction rolled back; the ones
            before it stay applied).
        DatabaseUnavailable, DatabaseTimeout: the database went away (retry later:
            nothing of the interrupted migration was kept).
    """
    migrations = load(service, directory, db.dialect)
    async with db.lock("aria_migrations"):
        await _create_table(db)
        applied = await _applied(db, service)
        _check(migrations, applied)
        done: list[str] = []
        for migration in migrations:
            if migration.version in applied:
                continue
            label = f"{migration.version:04d}_{migration.name}"
            try:
                async with db.transaction() as tx:
                    for statement in split_statements(migration.sql):
                        await tx.execute(statement)
                    await tx.execute(
                        f"INSERT INTO {TABLE} (service, version, name, checksum, applied_at) "
                        "VALUES ($1, $2, $3, $4, $5)",
                        service,
                        migration.version,
                        migration.name,
                        migration.checksum,
                        time.time(),
                    )
            except QueryError as exc:  # the migration itself is wrong (the database is fine)
                raise MigrationError(f"migration {service} {label} failed: {exc}") from exc
            done.append(label)
        return done


async def status(db: Database, service: str, directory: Path) -> list[MigrationState]:
    """Every migration of ``service``: applied, pending, changed or missing."""
    migrations = load(service, directory, db.dialect)
    async with db.lock("aria_migrations"):  # another node may be creating the table
        await _create_table(db)
        applied = await _applied(db, service)
    states: list[MigrationState] = []
    for migration in migrations:
        record = applied.get(migration.version)
        if record is None:
            states.append(
                MigrationState(service, migration.version, migration.name, "pending", None)
            )
        else:
            state: Literal["applied", "changed"] = (
                "applied" if record[1] == migration.checksum else "changed"
            )
            states.append(
                MigrationState(service, migration.version, migration.name, state, record[2])
            )
    known = {m.version for m in migrations}
    for version, (name, _, when) in sorted(applied.items()):
        if version not in known:
            states.append(MigrationState(service, version, name, "missing", when))
    return sorted(states, key=lambda s: s.version)


def split_statements(sql: str) -> list[str]:
    """The statements of a migration file, split on ``;`` at the ends of lines.

    Migrations keep one statement per ``;``-terminated block; a ``;`` inside a
    function body must not end a line (or the file is a single statement when it
    contains ``$$``, which is then sent whole).
    """
    if "$$" in sql:
        return [sql]
    statements: list[str] = []
    current: list[str] = []
    for line in sql.splitlines():
        stripped = line.strip()
        if not current and (not stripped or stripped.startswith("--")):
            continue
        current.append(line)
        code = stripped.split("--", 1)[0].rstrip()  # a comment may follow the ';'
        if code.endswith(";"):
            statements.append("\n".join(current).strip())
            current = []
    if any(line.strip() and not line.strip().startswith("--") for line in current):
        statements.append("\n".join(current).strip())
    return statements
