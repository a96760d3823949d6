"""The database API every Aria service uses, on PostgreSQL or SQLite alike.

SQL is written once with PostgreSQL's numbered placeholders (``$1``, ``$2``);
SQLite reads them as ``?1``, ``?2``. Rows come back as plain ``dict``s.

::

    async with db.transaction(tenant="t1") as tx:     # all or nothing
        await tx.execute("INSERT INTO notes (tenant_id, body) VALUES ($1, $2)", "t1", "x")
        rows = await tx.fetch("SELECT body FROM notes")  # RLS: only t1's (PostgreSQL)
    row = await db.fetchrow("SELECT count(*) AS n FROM notes")

Errors::

    DatabaseError (an AriaError)
    ├── DatabaseUnavailable   the server is down or the connection broke (retry later);
    │                         ``committed`` is False, or None when a COMMIT's fate is unknown
    ├── DatabaseTimeout       the statement or the wait for a connection ran out of time
    ├── QueryError            the server refused the statement (syntax, constraint...)
    └── MigrationError        migrations cannot be applied (changed, missing, failed)
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, Literal, Protocol, runtime_checkable

import msgspec

from ..._runtime.errors import AriaError

Dialect = Literal["postgres", "sqlite"]
Row = dict[str, Any]


def affected(status: str) -> int:
    """The row count of what ``execute`` returned (``"UPDATE 1"`` on PostgreSQL,
    ``"1"`` on SQLite); 0 when it names none."""
    try:
        return int(status.rsplit(" ", 1)[-1])
    except ValueError:
        return 0


class DatabaseError(AriaError):
    """Base of the database errors."""


class DatabaseUnavailable(DatabaseError):
    """The server cannot be reached or the connection broke; nothing partial was kept.

    ``committed`` is ``False`` when the work was certainly not committed, ``None``
    when the connection broke during ``COMMIT`` (the outcome is unknown).
    """

    def __init__(self, message: str, committed: bool | None = False) -> None:
        self.committed = committed
        super().__init__(message)


class DatabaseTimeout(DatabaseError, TimeoutError):
    """A statement, or the wait for a free connection, ran past its deadline."""


class QueryError(DatabaseError):
    """The database refused the statement; ``sqlstate`` says why (when it gives one)."""

    def __init__(self, message: str, sqlstate: str | None = None) -> None:
        self.sqlstate = sqlstate
        super().__init__(message)


class MigrationError(DatabaseError):
    """A migration cannot be applied: changed or missing after it was applied, or failed."""


class DatabaseHealth(msgspec.Struct, frozen=True):
    """A probe: ``ok``, connections (``size``, ``idle``), ``waiting`` acquires, the
    round trip of ``SELECT 1`` in milliseconds, and a sentence for operators."""

    name: str
    dialect: str
    ok: bool
    size: int
    idle: int
    waiting: int
    round_trip_ms: float
    detail: str = ""


@runtime_checkable
class Connection(Protocol):
    """Statements on one connection (inside a transaction, or a pooled one for a call)."""

    async def execute(self, sql: str, *args: Any, timeout: float | None = None) -> str:
        """Run a statement; its status (``INSERT 0 1``, or rows changed for SQLite)."""
        ...

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """Run a statement once per row of arguments."""
        ...

    async def fetch(self, sql: str, *args: Any, timeout: float | None = None) -> list[Row]:
        """All rows."""
        ...

    async def fetchrow(self, sql: str, *args: Any, timeout: float | None = None) -> Row | None:
        """The first row, or ``None``."""
        ...

    async def fetchval(self, sql: str, *args: Any, timeout: float | None = None) -> Any:
        """The first column of the first row, or ``None``."""
        ...


@runtime_checkable
class Database(Connection, Protocol):
    """A pool of connections to one database. Outside a transaction each statement
    runs on a connection of its own (autocommit)."""

    @property
    def name(self) -> str:
        """The database's name in the configuration (``main``)."""
        ...

    @property
    def dialect(self) -> Dialect:
        """``postgres`` or ``sqlite``: which SQL the migrations must speak."""
        ...

    def transaction(
        self, tenant: str | None = None, timeout: float | None = None
    ) -> AbstractAsyncContextManager[Connection]:
        """All or nothing. With ``tenant``, PostgreSQL's row-level security shows the
        transaction only that tenant's rows (``current_setting('aria.tenant')``)."""
        ...

    def lock(self, key: str) -> AbstractAsyncContextManager[None]:
        """An exclusive lock across every node sharing the database (migrations)."""
        ...

    async def health(self) -> DatabaseHealth:
        """Probe the database (never raises)."""
        ...

    async def close(self) -> None:
        """Close every connection."""
        ...
