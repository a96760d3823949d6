"""How other services use aria_data: ``Data(node).database("main")``.

::

    db = Data(self.node).database()                  # a proxy to the shared pool
    async with db.transaction(tenant=t) as tx:
        await tx.execute(...)
    await Data(self.node).migrate("aria_auth", MIGRATIONS)

The proxy asks ``aria_data.databases`` for the pool on first use and again after
the data service restarted (a closed pool), so a caller can keep it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Final, cast

from ..._runtime.errors import NoProcess
from ..._runtime.node import Node
from ..._runtime.ref import ActorRef
from .actors import Backup, DataHealth, GetDatabase, Migrate, MigrationStatus
from .api import Connection, Database, DatabaseHealth, Dialect, Row
from .migrations import MigrationState

DATABASES_ACTOR: Final = "aria_data.databases"
TIMEOUT: Final = 30.0


class Data:
    """A handle on aria_data."""

    def __init__(self, node: Node, timeout: float = TIMEOUT) -> None:
        self.node = node
        self.timeout = timeout

    def ref(self) -> ActorRef:
        """The databases actor.

        Raises:
            NoProcess: aria_data is not running on this node.
        """
        ref = self.node.whereis(DATABASES_ACTOR)
        if ref is None:
            raise NoProcess(DATABASES_ACTOR, "is the aria_data service running?")
        return ref

    def database(self, name: str = "main") -> DatabaseProxy:
        """The database ``name`` (a proxy that follows restarts of aria_data)."""
        return DatabaseProxy(self, name)

    async def migrate(self, service: str, directory: Path, database: str = "main") -> list[str]:
        """Apply ``service``'s migrations (under the database lock); those applied."""
        message = Migrate(service, str(directory), database)
        return cast(list[str], await self.ref().call(message, timeout=self.timeout))

    async def migration_status(
        self, service: str, directory: Path, database: str = "main"
    ) -> list[MigrationState]:
        message = MigrationStatus(service, str(directory), database)
        return cast(list[MigrationState], await self.ref().call(message, timeout=self.timeout))

    async def health(self) -> list[DatabaseHealth]:
        return cast(list[DatabaseHealth], await self.ref().call(DataHealth(), self.timeout))

    async def backup(self, destination: Path, database: str = "main") -> Path:
        message = Backup(str(destination), database)
        return Path(await self.ref().call(message, timeout=max(self.timeout, 300.0)))


class DatabaseProxy:
    """A :class:`Database` that resolves the live pool from aria_data when needed."""

    def __init__(self, data: Data, name: str) -> None:
        self.data = data
        self.name = name
        self._db: Database | None = None

    async def current(self) -> Database:
        """The live database (asked for again if the one held was closed)."""
        db = self._db
        if db is None or getattr(db, "closed", False):
            db = self._db = cast(
                Database, await self.data.ref().call(GetDatabase(self.name), self.data.timeout)
            )
        return db

    @property
    def dialect(self) -> Dialect:
        """The live database's dialect (``current()`` must have run once)."""
        if self._db is None:
            raise RuntimeError("the dialect is known once the proxy resolved: await current()")
        return self._db.dialect

    async def execute(self, sql: str, *args: Any, timeout: float | None = None) -> str:
        return await (await self.current()).execute(sql, *args, timeout=timeout)

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        await (await self.current()).executemany(sql, rows)

    async def fetch(self, sql: str, *args: Any, timeout: float | None = None) -> list[Row]:
        return await (await self.current()).fetch(sql, *args, timeout=timeout)

    async def fetchrow(self, sql: str, *args: Any, timeout: float | None = None) -> Row | None:
        return await (await self.current()).fetchrow(sql, *args, timeout=timeout)

    async def fetchval(self, sql: str, *args: Any, timeout: float | None = None) -> Any:
        return await (await self.current()).fetchval(sql, *args, timeout=timeout)

    @asynccontextmanager
    async def transaction(
        self, tenant: str | None = None, timeout: float | None = None
    ) -> AsyncIterator[Connection]:
        async with (await self.current()).transaction(tenant, timeout) as connection:
            yield connection

    @asynccontextmanager
    async def lock(self, key: str) -> AsyncIterator[None]:
        async with (await self.current()).lock(key):
            yield

    async def health(self) -> DatabaseHealth:
        return await (await self.current()).health()

    async def close(self) -> None:
        """Does nothing: the pool belongs to aria_data."""
