"""aria_data's actor shell: the actor that owns the databases.

``aria_data.databases`` opens every configured database at start (PostgreSQL with
the credentials it reads from aria_security, retrying while aria_security or the
database are not ready, up to ``credentials_timeout``), applies aria_data's own
migrations, and probes each database every ``health_interval`` seconds
(``data_degraded`` / ``data_recovered`` events, ``aria_data_up{database}``).

Statements do not go through this actor: it hands out the database objects
(``GetDatabase``) and callers use their pools directly, concurrently. It runs
migrations for other services (``Migrate``) under the database lock, reports their
status, and takes backups.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Final
from urllib.parse import quote, urlsplit, urlunsplit

import msgspec
from prometheus_client import Gauge

from ..._runtime.actor import Actor, handles
from ..._runtime.errors import CallTimeout, ConfigError, NoProcess
from ..._runtime.messages import ExitReason
from ..security.actors import state_dir
from ..security.api import SecretNotFound, SecretsUnavailable
from ..security.client import Secrets
from . import backup as backups
from . import migrations
from .api import Database, DatabaseError, DatabaseHealth, DatabaseTimeout, DatabaseUnavailable
from .instruments import Instruments
from .postgres import PostgresDatabase
from .settings import SERVICE, DatabaseSettings, DataSettings, load_settings
from .sqlite import SqliteDatabase

MIGRATIONS: Final = Path(__file__).resolve().parent / "sql"


class GetDatabase(msgspec.Struct, frozen=True, tag=True):
    """The database object named ``name`` (pass it around; it is a shared pool)."""

    name: str = "main"


class Migrate(msgspec.Struct, frozen=True, tag=True):
    """Apply ``service``'s migrations from ``directory`` to database ``database``."""

    service: str
    directory: str
    database: str = "main"


class MigrationStatus(msgspec.Struct, frozen=True, tag=True):
    service: str
    directory: str
    database: str = "main"


class DataHealth(msgspec.Struct, frozen=True, tag=True):
    """Probe every database now; a list of DatabaseHealth."""


class Backup(msgspec.Struct, frozen=True, tag=True):
    """Back database ``database`` up into ``destination``; the path written."""

    destination: str
    database: str = "main"


class ProbeDatabases(msgspec.Struct, frozen=True, tag=True):
    """Internal: the periodic health probe."""


def with_credentials(dsn: str, user: str, password: str) -> str:
    """``dsn`` with ``user:password@`` put in (both URL-quoted)."""
    parts = urlsplit(dsn)
    host = parts.hostname or ""
    if ":" in host:  # IPv6: keep the brackets
        host = f"[{host}]"
    if parts.port:
        host = f"{host}:{parts.port}"
    netloc = f"{quote(user, safe='')}:{quote(password, safe='')}@{host}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


class DatabasesActor(Actor):
    """The ``aria_data.databases`` actor; see the module documentation."""

    secret_fields = frozenset({"dsns", "backup_dsns"})

    async def init(self) -> None:
        self.settings: DataSettings = load_settings(self.node.service_settings(SERVICE))
        self.databases: dict[str, Database] = {}
        self.dsns: dict[str, str] = {}
        self.backup_dsns: dict[str, str] = {}
        self.healthy: dict[str, bool] = {}
        self.up = self.node.metric(
            Gauge, "aria_data_up", "1 while the database answers.", labelnames=["database"]
        )
        try:
            for name, database in self.settings.databases.items():
                self.databases[name] = await self.open(name, database)
                self.healthy[name] = True
            await self.first_migration()
        except BaseException:
            await self.close_all()
            raise
        self.send_after(self.settings.health_interval, ProbeDatabases())

    async def terminate(self, reason: ExitReason) -> None:
        await self.close_all()

    async def first_migration(self) -> None:
        """aria_data's own migrations, waiting (up to ``credentials_timeout``) for a
        database that is not up yet: a node may start before its database does."""
        deadline = time.monotonic() + self.settings.credentials_timeout
        delay = 0.2
        while True:
            try:
                await migrations.migrate(self.databases["main"], SERVICE, MIGRATIONS)
                return
            except (DatabaseUnavailable, DatabaseTimeout):
                if time.monotonic() + delay > deadline:
                    raise
                self.log.warning("waiting_for_database", database="main", retry_in=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def close_all(self) -> None:
        for database in self.databases.values():
            await database.close()

    async def open(self, name: str, settings: DatabaseSettings) -> Database:
        """Open one database (reading its credentials first, for PostgreSQL).

        Raises:
            ConfigError: SQLite without a state directory or path.
            DatabaseError: it cannot be opened.
            SecretNotFound: the credentials secret does not exist.
        """
        instruments = Instruments(self.node, name, self.settings.slow_query)
        if settings.backend == "sqlite":
            path = Path(settings.path) if settings.path else state_dir(self.node) / f"{name}.db"
            sqlite = SqliteDatabase(
                name,
                path,
                readers=settings.readers,
                busy_timeout=settings.busy_timeout,
                instruments=instruments,
            )
            await sqlite.open()
            return sqlite
        dsn = settings.dsn
        if settings.credentials:
            dsn = await self.credentials(settings.dsn, settings.credentials)
        self.dsns[name] = dsn
        if settings.backup_credentials:
            self.backup_dsns[name] = await self.credentials(
                settings.dsn, settings.backup_credentials
            )
        postgres = PostgresDatabase(
            name,
            dsn,
            min_size=settings.min_size,
            max_size=settings.max_size,
            command_timeout=settings.command_timeout,
            acquire_timeout=settings.acquire_timeout,
            instruments=instruments,
            locks=settings.locks,
        )
        await postgres.open()
        return postgres

    async def credentials(self, dsn: str, path: str) -> str:
        """The DSN with the user and password of secret ``path`` (waiting for aria_security)."""
        secrets = Secrets(self.node, caller=SERVICE)
        deadline = time.monotonic() + self.settings.credentials_timeout
        delay = 0.2
        while True:
            try:
                secret = await secrets.get(path)
                break
            except SecretNotFound as exc:
                raise ConfigError(
                    f"{SERVICE}: the credentials secret {path!r} does not exist in "
                    "aria_security (fields: user, password)"
                ) from exc
            except (SecretsUnavailable, NoProcess, CallTimeout):
                if time.monotonic() + delay > deadline:
                    raise
                self.log.warning("waiting_for_credentials", secret=path, retry_in=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
        missing = {"user", "password"} - set(secret.data)
        if missing:
            raise ConfigError(f"{SERVICE}: secret {path!r} lacks {sorted(missing)}")
        return with_credentials(dsn, secret.data["user"], secret.data["password"])

    def database(self, name: str) -> Database:
        try:
            return self.databases[name]
        except KeyError:
            raise DatabaseError(
                f"no database {name!r} (configured: {', '.join(self.databases)})"
            ) from None

    # Requests answer errors to the caller (a bad request must not crash the service and
    # spend its restart intensity); the work runs in the handler, one at a time.

    @handles(GetDatabase)
    def get_database(self, message: GetDatabase) -> Database | None:
        try:
            return self.database(message.name)
        except DatabaseError as exc:
            self.defer_reply().fail(exc)
            return None

    async def answer(self, work: Callable[[], Awaitable[object]]) -> object:
        reply = self.defer_reply()
        try:
            reply.reply(await work())
        except (DatabaseError, OSError, ValueError) as exc:
            reply.fail(exc)
        return None

    @handles(Migrate)
    async def migrate(self, message: Migrate) -> object:
        return await self.answer(
            lambda: migrations.migrate(
                self.database(message.database), message.service, Path(message.directory)
            )
        )

    @handles(MigrationStatus)
    async def migration_status(self, message: MigrationStatus) -> object:
        return await self.answer(
            lambda: migrations.status(
                self.database(message.database), message.service, Path(message.directory)
            )
        )

    @handles(Backup)
    async def backup(self, message: Backup) -> object:
        async def work() -> str:
            database = self.database(message.database)
            dsn = self.backup_dsns.get(message.database) or self.dsns.get(message.database)
            return str(await backups.backup(database, Path(message.destination), dsn))

        return await self.answer(work)

    @handles(DataHealth)
    async def health(self, message: DataHealth) -> list[DatabaseHealth]:
        return list(await asyncio.gather(*(self.probe(name) for name in self.databases)))

    @handles(ProbeDatabases)
    async def scheduled_probe(self, message: ProbeDatabases) -> None:
        await asyncio.gather(*(self.probe(name) for name in self.databases))
        self.send_after(self.settings.health_interval, ProbeDatabases())

    async def probe(self, name: str) -> DatabaseHealth:
        health = await self.databases[name].health()
        was = self.healthy.get(name, True)
        if health.ok and not was:
            self.log.info("data_recovered", database=name)
        elif not health.ok and was:
            self.log.warning("data_degraded", database=name, detail=health.detail)
        self.healthy[name] = health.ok
        self.up.labels(database=name).set(1 if health.ok else 0)
        return health


__all__ = [
    "Backup",
    "DataHealth",
    "DatabaseUnavailable",
    "DatabasesActor",
    "GetDatabase",
    "Migrate",
    "MigrationStatus",
]
