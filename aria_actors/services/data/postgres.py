"""PostgreSQL (and CockroachDB's PostgreSQL protocol) through an asyncpg pool.

The pool opens connections when they are first needed (``min_size`` 0 by
default), so a node starts while the database is down and the service reports
itself degraded until it is back; a broken connection is dropped and replaced.

Failures are translated here: a connection that cannot be made or breaks →
:class:`DatabaseUnavailable` (retried within the caller's deadline when no
statement of the work had run yet, since then nothing can be half done); a
statement past its deadline → :class:`DatabaseTimeout`; anything the server
refuses → :class:`QueryError` with its SQLSTATE. A transaction is all or nothing:
if the connection breaks before ``COMMIT`` the server rolls it back; if it breaks
*during* ``COMMIT`` the outcome is unknown and the error says so (``committed``
is ``None``).

Tenants: ``transaction(tenant=...)`` sets ``aria.tenant`` for that transaction
only; tables with row-level security (``repository.row_level_security``) then
show only that tenant's rows, whatever SQL runs.

CockroachDB speaks the same protocol; where it differs, this module adapts:
its ``pg_advisory_lock`` locks nothing, so :meth:`PostgresDatabase.lock` takes a
table lease there (:mod:`.leases`).
"""

from __future__ import annotations

import asyncio
import time
import zlib
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any, Final, Literal

import asyncpg

from . import leases
from .api import (
    Connection,
    DatabaseHealth,
    DatabaseTimeout,
    DatabaseUnavailable,
    QueryError,
    Row,
)
from .instruments import Instruments

RETRY_DELAY: Final = 0.1
PROBE_TIMEOUT: Final = 2.0
UNAVAILABLE: Final = (
    OSError,
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.ConnectionFailureError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
    asyncpg.exceptions.InternalClientError,  # a protocol state torn by a broken connection
)
BROKEN_CONNECTION: Final = ("closed", "released", "connection was lost", "another operation")
READS: Final = ("SELECT", "SHOW", "VALUES", "TABLE")


def closed(connection: asyncpg.Connection) -> bool:
    """Whether a pooled connection is gone (a proxy asyncpg detached counts as gone)."""
    try:
        return bool(connection.is_closed())
    except asyncpg.exceptions.InterfaceError:
        return True


def is_cockroach(version: str) -> bool:
    """Whether ``SELECT version()`` answered as CockroachDB (``CockroachDB CCL v23.1...``)."""
    return "cockroachdb" in version.lower()


def lock_key(name: str) -> int:
    """A stable signed 64-bit advisory-lock key for ``name``."""
    return zlib.crc32(name.encode()) - (1 << 31)


def _translate(exc: BaseException, what: str, committed: bool | None = False) -> Exception:
    if isinstance(exc, asyncpg.exceptions.QueryCanceledError | asyncio.TimeoutError):
        return DatabaseTimeout(f"{what}: ran past its deadline")
    if isinstance(exc, UNAVAILABLE):
        return DatabaseUnavailable(f"{what}: the database is unreachable ({exc})", committed)
    if isinstance(exc, asyncpg.exceptions.InterfaceError):
        # A connection asyncpg closed or detached is an outage; anything else it refuses
        # on the client side (a wrong number of arguments) is the statement's fault.
        if any(words in str(exc) for words in BROKEN_CONNECTION):
            return DatabaseUnavailable(f"{what}: the connection broke ({exc})", committed)
        return QueryError(f"{what}: {exc}")
    if isinstance(exc, asyncpg.PostgresError):
        return QueryError(f"{what}: {exc}", getattr(exc, "sqlstate", None))
    return exc if isinstance(exc, Exception) else RuntimeError(str(exc))


class _Connection:
    """Statements on one asyncpg connection, timed and translated."""

    def __init__(self, connection: asyncpg.Connection, instruments: Instruments) -> None:
        self.connection = connection
        self.instruments = instruments
        self.failed: Exception | None = None  # in a transaction: it can no longer commit

    async def _run(self, method: str, sql: str, args: Sequence[Any], timeout: float | None) -> Any:
        try:
            with self.instruments.timed(sql):
                return await getattr(self.connection, method)(sql, *args, timeout=timeout)
        except Exception as exc:
            raise self._failed(exc) from exc

    def _failed(self, exc: BaseException) -> Exception:
        """Count and translate ``exc``; remember it when it aborted the transaction.

        A server error (or a timeout, which cancels the statement on the server)
        aborts the transaction; a client-side refusal (wrong number or type of
        arguments) never reached the server, so the transaction goes on.
        """
        self.instruments.failed(type(exc).__name__)
        error = _translate(exc, "statement")
        if isinstance(exc, (asyncpg.PostgresError, TimeoutError)) or closed(self.connection):
            self.failed = error
        return error

    async def execute(self, sql: str, *args: Any, timeout: float | None = None) -> str:
        return str(await self._run("execute", sql, args, timeout))

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        try:
            with self.instruments.timed(sql):
                await self.connection.executemany(sql, rows)
        except Exception as exc:
            raise self._failed(exc) from exc

    async def fetch(self, sql: str, *args: Any, timeout: float | None = None) -> list[Row]:
        return [dict(record) for record in await self._run("fetch", sql, args, timeout)]

    async def fetchrow(self, sql: str, *args: Any, timeout: float | None = None) -> Row | None:
        record = await self._run("fetchrow", sql, args, timeout)
        return dict(record) if record is not None else None

    async def fetchval(self, sql: str, *args: Any, timeout: float | None = None) -> Any:
        return await self._run("fetchval", sql, args, timeout)


class PostgresDatabase:
    """A :class:`Database` on PostgreSQL; see the module documentation."""

    dialect: Literal["postgres"] = "postgres"

    def __init__(
        self,
        name: str,
        dsn: str,
        *,
        min_size: int = 0,
        max_size: int = 10,
        command_timeout: float = 30.0,
        acquire_timeout: float = 10.0,
        instruments: Instruments | None = None,
        locks: Literal["auto", "advisory", "table"] = "auto",
        lease_ttl: float = leases.DEFAULT_TTL,
    ) -> None:
        if locks not in ("auto", "advisory", "table"):
            raise ValueError(f"locks must be 'auto', 'advisory' or 'table', not {locks!r}")
        self.name = name
        self.dsn = dsn
        self.locks = locks
        self.lease_ttl = lease_ttl
        self._lock_kind: Literal["advisory", "table"] | None = None
        self.min_size = min_size
        self.max_size = max_size
        self.command_timeout = command_timeout
        self.acquire_timeout = acquire_timeout
        self.instruments = instruments or Instruments(None, name, float("inf"))
        self.pool: asyncpg.Pool | None = None

    async def open(self) -> None:
        """Create the pool (connections open on demand).

        Raises:
            DatabaseUnavailable: ``min_size`` connections could not be opened.
        """
        try:
            self.pool = await asyncpg.create_pool(
                self.dsn,
                min_size=self.min_size,
                max_size=self.max_size,
                command_timeout=self.command_timeout,
            )
        except Exception as exc:
            raise _translate(exc, f"database {self.name}") from exc

    async def _checkout(self, timeout: float | None) -> asyncpg.Connection:
        """A pooled connection, retrying connection failures until ``timeout``.

        Raises:
            DatabaseUnavailable: the database stayed unreachable until the deadline.
            DatabaseTimeout: every connection stayed busy until the deadline.
        """
        pool = self.pool
        if pool is None:
            raise DatabaseUnavailable(f"database {self.name} is closed")
        deadline = time.monotonic() + (timeout if timeout is not None else self.acquire_timeout)
        unavailable: DatabaseUnavailable | None = None  # the last outage seen while retrying
        self.instruments.waiting += 1
        try:
            while True:
                try:
                    remaining = max(0.001, deadline - time.monotonic())
                    # asyncio.timeout, not acquire(timeout=): asyncpg would wrap the
                    # acquire in wait_for, a new task per statement
                    async with asyncio.timeout(remaining):
                        return await pool.acquire()
                except Exception as exc:
                    error = _translate(exc, f"database {self.name}")
                    if isinstance(error, DatabaseUnavailable):
                        unavailable = error
                    if not isinstance(error, DatabaseUnavailable) or time.monotonic() >= deadline:
                        if unavailable is not None:
                            raise unavailable from exc  # down, not merely busy
                        if isinstance(exc, TimeoutError):
                            raise DatabaseTimeout(
                                f"database {self.name}: no free connection within the deadline"
                            ) from exc
                        raise error from exc
                    await asyncio.sleep(min(RETRY_DELAY, max(0.0, deadline - time.monotonic())))
        finally:
            self.instruments.waiting -= 1

    async def _checkin(self, connection: asyncpg.Connection) -> None:
        """Give ``connection`` back; a broken one is dropped (the pool opens another)."""
        assert self.pool is not None
        try:
            await self.pool.release(connection)
        except (asyncpg.PostgresError, *UNAVAILABLE, asyncpg.exceptions.InterfaceError):
            pass

    @asynccontextmanager
    async def _acquire(self, timeout: float | None) -> AsyncIterator[asyncpg.Connection]:
        """:meth:`_checkout` and :meth:`_checkin` around a block."""
        connection = await self._checkout(timeout)
        try:
            yield connection
        finally:
            await self._checkin(connection)

    async def _one(self, method: str, sql: str, args: Sequence[Any], timeout: float | None) -> Any:
        """One statement outside a transaction; a read on a connection that broke
        before it ran is retried on a fresh one within the deadline.

        This is the hot path of every query: plain coroutines, no context managers.
        """
        deadline = time.monotonic() + (timeout if timeout is not None else self.command_timeout)
        instruments = self.instruments
        while True:
            raw = await self._checkout(max(0.001, deadline - time.monotonic()))
            try:
                started = time.perf_counter()
                try:
                    result = await getattr(raw, method)(sql, *args, timeout=timeout)
                except Exception as exc:
                    instruments.observe(sql, time.perf_counter() - started)
                    instruments.failed(type(exc).__name__)
                    error = _translate(exc, "statement")
                    if (
                        isinstance(error, DatabaseUnavailable)
                        and sql.lstrip().upper().startswith(READS)
                        and closed(raw)
                        and time.monotonic() < deadline
                    ):
                        continue  # a read on a dead pooled connection: try a fresh one
                    raise error from exc
                instruments.observe(sql, time.perf_counter() - started)
                return result
            finally:
                await self._checkin(raw)

    async def execute(self, sql: str, *args: Any, timeout: float | None = None) -> str:
        return str(await self._one("execute", sql, args, timeout))

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        async with self.transaction() as connection:
            await connection.executemany(sql, rows)

    async def fetch(self, sql: str, *args: Any, timeout: float | None = None) -> list[Row]:
        return [dict(record) for record in await self._one("fetch", sql, args, timeout)]

    async def fetchrow(self, sql: str, *args: Any, timeout: float | None = None) -> Row | None:
        record = await self._one("fetchrow", sql, args, timeout)
        return dict(record) if record is not None else None

    async def fetchval(self, sql: str, *args: Any, timeout: float | None = None) -> Any:
        return await self._one("fetchval", sql, args, timeout)

    @asynccontextmanager
    async def transaction(
        self, tenant: str | None = None, timeout: float | None = None
    ) -> AsyncIterator[Connection]:
        deadline = time.monotonic() + (timeout if timeout is not None else self.acquire_timeout)
        while True:
            async with self._acquire(max(0.001, deadline - time.monotonic())) as raw:
                transaction = raw.transaction()
                try:
                    await transaction.start()
                    if tenant is not None:
                        await raw.execute("SELECT set_config('aria.tenant', $1, true)", tenant)
                except Exception as exc:
                    error = _translate(exc, f"database {self.name}: begin")
                    if isinstance(error, DatabaseUnavailable) and time.monotonic() < deadline:
                        continue  # a dead pooled connection; nothing ran yet: a fresh one
                    raise error from exc
                connection = _Connection(raw, self.instruments)
                try:
                    yield connection
                    if connection.failed is not None:  # PostgreSQL would turn COMMIT into ROLLBACK
                        raise QueryError(
                            f"database {self.name}: a statement of this transaction failed, "
                            f"so none of it was committed ({connection.failed})"
                        )
                except BaseException:
                    if not closed(raw):
                        try:
                            await transaction.rollback()
                        except (
                            asyncpg.PostgresError,
                            *UNAVAILABLE,
                            asyncpg.exceptions.InterfaceError,
                        ):
                            pass  # the connection broke: the server rolls back by itself
                    raise
                try:
                    await transaction.commit()
                except Exception as exc:
                    raise _translate(exc, f"database {self.name}: commit", committed=None) from exc
                return

    @asynccontextmanager
    async def lock(self, key: str) -> AsyncIterator[None]:
        """An exclusive lock on ``key`` across every node sharing the database.

        A session advisory lock on PostgreSQL; a table lease (:mod:`.leases`) on
        CockroachDB, where advisory locks lock nothing, or when ``locks="table"``
        (PgBouncer in transaction mode).

        Raises:
            DatabaseUnavailable, DatabaseTimeout: the lock could not be taken.
        """
        if await self.lock_kind() == "table":
            async with leases.lease(self, key, ttl=self.lease_ttl):
                yield
            return
        async with self._acquire(None) as raw:
            number = lock_key(key)
            try:
                await raw.execute("SELECT pg_advisory_lock($1)", number)
            except Exception as exc:
                raise _translate(exc, f"database {self.name}: lock {key}") from exc
            try:
                yield
            finally:
                if not closed(raw):
                    try:
                        await raw.execute("SELECT pg_advisory_unlock($1)", number)
                    except (asyncpg.PostgresError, *UNAVAILABLE, asyncpg.exceptions.InterfaceError):
                        pass  # the session ended: the server dropped the lock with it

    async def lock_kind(self) -> Literal["advisory", "table"]:
        """How :meth:`lock` locks: ``locks`` as configured, or for ``"auto"`` a table
        lease on CockroachDB and advisory locks elsewhere (asked once)."""
        if self._lock_kind is None:
            if self.locks != "auto":
                self._lock_kind = self.locks
            else:
                version = str(await self.fetchval("SELECT version()"))
                self._lock_kind = "table" if is_cockroach(version) else "advisory"
        return self._lock_kind

    async def health(self) -> DatabaseHealth:
        size = self.pool.get_size() if self.pool is not None else 0
        idle = self.pool.get_idle_size() if self.pool is not None else 0
        self.instruments.connections(size, idle)
        started = time.perf_counter()
        try:
            async with asyncio.timeout(PROBE_TIMEOUT):
                await self.fetchval("SELECT 1", timeout=PROBE_TIMEOUT)
        except Exception as exc:  # a probe reports, it never raises
            return DatabaseHealth(
                self.name,
                self.dialect,
                False,
                size,
                idle,
                self.instruments.waiting,
                0.0,
                f"degraded: {exc}",
            )
        elapsed = (time.perf_counter() - started) * 1000
        return DatabaseHealth(
            self.name, self.dialect, True, size, idle, self.instruments.waiting, round(elapsed, 3)
        )

    @property
    def closed(self) -> bool:
        """True once closed (a proxy then asks aria_data for the live one)."""
        return self.pool is None

    async def close(self) -> None:
        if self.pool is not None:
            pool, self.pool = self.pool, None
            await pool.close()
