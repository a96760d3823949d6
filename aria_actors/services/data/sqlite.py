"""SQLite, the embedded default: one file, WAL mode, one writer and several readers.

Every call runs in a worker thread (``sqlite3`` blocks), each connection used by
one call at a time. Writes (``execute`` outside a transaction, and every
transaction) go to the single writer connection, so they never fight over the
write lock; reads outside a transaction go to a free reader and see the last
committed state (WAL lets them run while the writer writes). A transaction is
``BEGIN IMMEDIATE`` … ``COMMIT`` (``ROLLBACK`` on any error): all or nothing.

``$1``-style placeholders are read as SQLite's ``?1`` (a ``$`` followed by digits
inside a string literal would be read as one too: pass such text as a parameter).
SQLite has no row-level security: tenant isolation is the repository layer's
filter (see :mod:`.repository`). :meth:`lock` takes an exclusive ``flock`` on a
file beside the database, so it holds across processes on the machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import re
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Final, Literal, TypeVar
from urllib.parse import quote

from ..._runtime.blocking import run_blocking
from .api import (
    Connection,
    DatabaseError,
    DatabaseHealth,
    DatabaseTimeout,
    DatabaseUnavailable,
    QueryError,
    Row,
)
from .instruments import Instruments

T = TypeVar("T")
PLACEHOLDER: Final = re.compile(r"\$(\d+)")
LOCK_POLL: Final = 0.02


def sqlite_sql(sql: str) -> str:
    """PostgreSQL's ``$1`` placeholders as SQLite's ``?1``."""
    return PLACEHOLDER.sub(r"?\1", sql)


def _translate(exc: BaseException, what: str) -> Exception:
    if isinstance(exc, sqlite3.OperationalError):
        text = str(exc)
        if "locked" in text or "busy" in text:
            return DatabaseTimeout(f"{what}: the database stayed locked ({text})")
        if "unable to open" in text or "disk I/O" in text:
            return DatabaseUnavailable(f"{what}: {text}")
        return QueryError(f"{what}: {text}")
    if isinstance(exc, sqlite3.Error):
        return QueryError(f"{what}: {exc}", getattr(exc, "sqlite_errorname", None))
    return exc if isinstance(exc, Exception) else RuntimeError(str(exc))


class _Link:
    """One sqlite3 connection, used by one call at a time, in worker threads."""

    def __init__(self, path: Path, busy_timeout: float, readonly: bool) -> None:
        quoted = quote(str(path))  # '#', '?' and '%' in a path must not read as URI syntax
        uri = f"file:{quoted}?mode=ro" if readonly else f"file:{quoted}"
        self.connection = sqlite3.connect(
            uri,
            uri=True,
            timeout=busy_timeout,
            isolation_level=None,
            check_same_thread=False,
        )
        self.connection.row_factory = sqlite3.Row
        self.connection.execute("PRAGMA foreign_keys = ON")
        self.connection.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
        self.lock = asyncio.Lock()
        self.wait = busy_timeout

    async def call(self, function: Callable[..., T], *args: Any) -> T:
        """Run ``function`` in a worker thread once this connection is free.

        Raises:
            DatabaseTimeout: it stayed busy past the busy timeout (a statement of
                one's own open transaction waits here for the transaction to end).
        """
        try:
            async with asyncio.timeout(self.wait):
                await self.lock.acquire()
        except TimeoutError as exc:
            raise DatabaseTimeout("the connection stayed busy past the busy timeout") from exc
        try:
            return await run_blocking(function, *args)
        finally:
            self.lock.release()


class _Connection:
    """Statements on one link, timed and translated."""

    def __init__(self, link: _Link, instruments: Instruments) -> None:
        self.link = link
        self.instruments = instruments

    async def _run(
        self, sql: str, args: Sequence[Any], fetch: str, timeout: float | None = None
    ) -> Any:
        statement = sqlite_sql(sql)

        def work() -> Any:
            cursor = self.link.connection.execute(statement, tuple(args))
            if fetch == "all":
                return [dict(row) for row in cursor.fetchall()]
            if fetch == "one":
                row = cursor.fetchone()
                return dict(row) if row is not None else None
            if fetch == "value":
                row = cursor.fetchone()
                return row[0] if row is not None else None
            return str(cursor.rowcount)

        interrupt = None
        if timeout is not None:  # sqlite3 has no statement timeout: interrupt it
            interrupt = asyncio.get_running_loop().call_later(
                timeout, self.link.connection.interrupt
            )
        try:
            with self.instruments.timed(sql):
                return await self.link.call(work)
        except sqlite3.OperationalError as exc:
            self.instruments.failed(type(exc).__name__)
            if "interrupted" in str(exc):
                raise DatabaseTimeout(f"statement: ran past its deadline of {timeout}s") from exc
            raise _translate(exc, "statement") from exc
        except (sqlite3.Error, OSError) as exc:
            self.instruments.failed(type(exc).__name__)
            raise _translate(exc, "statement") from exc
        finally:
            if interrupt is not None:
                interrupt.cancel()

    async def execute(self, sql: str, *args: Any, timeout: float | None = None) -> str:
        return str(await self._run(sql, args, "status", timeout))

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        statement = sqlite_sql(sql)
        try:
            with self.instruments.timed(sql):
                await self.link.call(
                    self.link.connection.executemany, statement, [tuple(r) for r in rows]
                )
        except sqlite3.Error as exc:
            self.instruments.failed(type(exc).__name__)
            raise _translate(exc, "statement") from exc

    async def fetch(self, sql: str, *args: Any, timeout: float | None = None) -> list[Row]:
        rows: list[Row] = await self._run(sql, args, "all", timeout)
        return rows

    async def fetchrow(self, sql: str, *args: Any, timeout: float | None = None) -> Row | None:
        row: Row | None = await self._run(sql, args, "one", timeout)
        return row

    async def fetchval(self, sql: str, *args: Any, timeout: float | None = None) -> Any:
        return await self._run(sql, args, "value", timeout)


class SqliteDatabase:
    """A :class:`Database` on one SQLite file; see the module documentation."""

    dialect: Literal["sqlite"] = "sqlite"

    def __init__(
        self,
        name: str,
        path: Path,
        *,
        readers: int = 4,
        busy_timeout: float = 5.0,
        instruments: Instruments | None = None,
    ) -> None:
        self.name = name
        self.path = path
        self.reader_count = readers
        self.busy_timeout = busy_timeout
        self.instruments = instruments or Instruments(None, name, float("inf"))
        self.writer: _Link | None = None
        self.readers: asyncio.Queue[_Link] = asyncio.Queue()
        self.links: list[_Link] = []

    async def open(self) -> None:
        """Open (creating the file, mode 0600) and switch to WAL.

        Raises:
            DatabaseUnavailable: the file cannot be opened or is not a database.
        """

        def connect() -> list[_Link]:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if not self.path.exists():
                self.path.touch(mode=0o600)
            writer = _Link(self.path, self.busy_timeout, readonly=False)
            mode = writer.connection.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if mode != "wal":
                raise sqlite3.OperationalError(f"cannot switch to WAL (journal_mode={mode})")
            writer.connection.execute("PRAGMA synchronous = NORMAL")
            readers = [
                _Link(self.path, self.busy_timeout, readonly=True) for _ in range(self.reader_count)
            ]
            return [writer, *readers]

        try:
            links = await run_blocking(connect)
        except (sqlite3.Error, OSError) as exc:
            raise DatabaseUnavailable(f"database {self.name} ({self.path}): {exc}") from exc
        self.writer, readers = links[0], links[1:]
        self.links = links
        for reader in readers:
            self.readers.put_nowait(reader)

    def _writer(self) -> _Link:
        if self.writer is None:
            raise DatabaseUnavailable(f"database {self.name} is closed")
        return self.writer

    async def _read(self, fetch: str, sql: str, args: Sequence[Any], timeout: float | None) -> Any:
        if self.writer is None:
            raise DatabaseUnavailable(f"database {self.name} is closed")
        self.instruments.waiting += 1
        try:
            async with asyncio.timeout(timeout if timeout is not None else self.busy_timeout):
                reader = await self.readers.get()
        except TimeoutError as exc:
            raise DatabaseTimeout(f"database {self.name}: no free reader in time") from exc
        finally:
            self.instruments.waiting -= 1
        try:
            return await _Connection(reader, self.instruments)._run(sql, args, fetch, timeout)
        finally:
            self.readers.put_nowait(reader)

    async def execute(self, sql: str, *args: Any, timeout: float | None = None) -> str:
        connection = _Connection(self._writer(), self.instruments)
        return await connection.execute(sql, *args, timeout=timeout)

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        async with self.transaction() as connection:
            await connection.executemany(sql, rows)

    async def fetch(self, sql: str, *args: Any, timeout: float | None = None) -> list[Row]:
        rows: list[Row] = await self._read("all", sql, args, timeout)
        return rows

    async def fetchrow(self, sql: str, *args: Any, timeout: float | None = None) -> Row | None:
        row: Row | None = await self._read("one", sql, args, timeout)
        return row

    async def fetchval(self, sql: str, *args: Any, timeout: float | None = None) -> Any:
        return await self._read("value", sql, args, timeout)

    @asynccontextmanager
    async def transaction(
        self, tenant: str | None = None, timeout: float | None = None
    ) -> AsyncIterator[Connection]:
        writer = self._writer()
        try:
            async with asyncio.timeout(timeout if timeout is not None else self.busy_timeout):
                await writer.lock.acquire()
        except TimeoutError as exc:
            raise DatabaseTimeout(f"database {self.name}: the writer stayed busy") from exc
        connection = _Connection(_Locked(writer), self.instruments)
        try:
            try:
                await run_blocking(writer.connection.execute, "BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise _translate(exc, f"database {self.name}: begin") from exc
            try:
                yield connection
            except BaseException:
                await run_blocking(_rollback, writer.connection)
                raise
            try:
                await run_blocking(writer.connection.execute, "COMMIT")
            except sqlite3.Error as exc:
                await run_blocking(_rollback, writer.connection)
                raise _translate(exc, f"database {self.name}: commit") from exc
        finally:
            writer.lock.release()

    @asynccontextmanager
    async def lock(self, key: str) -> AsyncIterator[None]:
        """An exclusive ``flock`` beside the database file (across processes).

        Polled without blocking (every 20 ms), so a waiter that is cancelled or times
        out never takes the lock later behind its caller's back.
        """
        path = self.path.with_name(f"{self.path.name}.{key}.lock")
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            while True:
                try:
                    fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    await asyncio.sleep(LOCK_POLL)
        except BaseException:
            os.close(descriptor)
            raise
        try:
            yield
        finally:
            fcntl.flock(descriptor, fcntl.LOCK_UN)
            os.close(descriptor)

    async def health(self) -> DatabaseHealth:
        size = len(self.links)
        idle = self.readers.qsize() + (1 if self.writer and not self.writer.lock.locked() else 0)
        self.instruments.connections(size, idle)
        started = time.perf_counter()
        try:
            await self.fetchval("SELECT 1", timeout=5.0)
        except DatabaseError as exc:
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

    async def backup(self, destination: Path) -> None:
        """A consistent online copy of the database into ``destination`` (SQLite's backup API).

        Raises:
            DatabaseError: the copy failed (``destination`` is removed).
        """
        reader = await self.readers.get()

        def copy() -> None:
            target = sqlite3.connect(destination)
            try:
                reader.connection.backup(target)
            finally:
                target.close()
            os.chmod(destination, 0o600)

        try:
            await reader.call(copy)
        except (sqlite3.Error, OSError) as exc:
            with contextlib.suppress(OSError):
                os.remove(destination)  # no partial backup is left behind
            raise DatabaseError(f"backup of {self.name} to {destination} failed: {exc}") from exc
        finally:
            self.readers.put_nowait(reader)

    @property
    def closed(self) -> bool:
        """True once closed (a proxy then asks aria_data for the live one)."""
        return self.writer is None

    async def close(self) -> None:
        links, self.links = self.links, []
        self.writer = None
        for link in links:
            async with link.lock:
                await run_blocking(link.connection.close)


class _Locked(_Link):
    """The writer inside a transaction: its lock is already held by the transaction."""

    def __init__(self, link: _Link) -> None:
        self.connection = link.connection
        self.lock = asyncio.Lock()  # a fresh lock: statements of one transaction in order
        self.wait = link.wait


def _rollback(connection: sqlite3.Connection) -> None:
    if connection.in_transaction:
        connection.execute("ROLLBACK")
