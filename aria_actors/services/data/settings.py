"""aria_data's settings: ``[services.aria_data]`` in the node configuration.

::

    [services.aria_data]
    slow_query = 0.5                       # seconds; slower statements are logged

    [services.aria_data.databases.main]    # the default: SQLite in the state directory
    backend = "sqlite"
    path = ""                              # "": <state_dir>/main.db

    [services.aria_data.databases.main]    # or PostgreSQL (or CockroachDB)
    backend = "postgres"
    dsn = "postgresql://db.internal:5432/aria"     # no password here
    credentials = "aria_data/postgres"     # a secret in aria_security: user, password
    backup_credentials = "aria_data/backup"        # pg_dump's role (BYPASSRLS)
    max_size = 20
    locks = "auto"                         # "table" behind PgBouncer's transaction mode
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import msgspec

from ..._runtime.errors import ConfigError
from ..._runtime.tomlfile import describe

SERVICE = "aria_data"


class DatabaseSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One database: SQLite (``path``, ``readers``) or PostgreSQL (``dsn``, pool sizes).

    ``credentials`` names a secret (fields ``user`` and ``password``) that
    aria_security holds; they are added to ``dsn`` when the pool opens.
    ``backup_credentials`` names the secret of the role ``pg_dump`` runs as: one with
    ``BYPASSRLS`` (or a superuser), since row-level security hides rows from the
    services' own role. Without it backups run as the services' role.
    """

    backend: Literal["sqlite", "postgres"] = "sqlite"
    path: str = ""
    readers: int = 4
    busy_timeout: float = 5.0
    dsn: str = ""
    credentials: str = ""
    backup_credentials: str = ""
    min_size: int = 0
    max_size: int = 10
    command_timeout: float = 30.0
    acquire_timeout: float = 10.0
    locks: Literal["auto", "advisory", "table"] = "auto"
    """How migrations lock across nodes: ``advisory`` (PostgreSQL session advisory
    locks), ``table`` (a lease row in ``aria_locks``: for CockroachDB, whose advisory
    locks lock nothing, or behind PgBouncer in transaction mode), ``auto`` (table on
    CockroachDB, advisory elsewhere)."""

    def __post_init__(self) -> None:
        if self.backend == "postgres" and not self.dsn:
            raise ValueError("a postgres database needs a dsn (postgresql://host:port/name)")
        if not 1 <= self.readers <= 64:
            raise ValueError("readers must be 1..64")
        if not 0 <= self.min_size <= self.max_size or self.max_size < 1:
            raise ValueError("pool sizes: 0 <= min_size <= max_size, max_size >= 1")


def _default_databases() -> dict[str, DatabaseSettings]:
    return {"main": DatabaseSettings()}


class DataSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """All of ``[services.aria_data]``; see the module documentation."""

    databases: dict[str, DatabaseSettings] = msgspec.field(default_factory=_default_databases)
    slow_query: float = 0.5
    health_interval: float = 10.0
    credentials_timeout: float = 30.0
    """Seconds to wait at start for aria_security's credentials and for the database."""

    def __post_init__(self) -> None:
        if "main" not in self.databases:
            raise ValueError("databases must define 'main' (the database services share)")


def load_settings(raw: Mapping[str, Any]) -> DataSettings:
    """Decode ``[services.aria_data]``.

    Raises:
        ConfigError: naming the key (``services.aria_data.databases.main.dsn: ...``).
    """
    raw = dict(raw)
    databases = raw.get("databases")
    if isinstance(databases, dict):  # each one decoded alone, so errors name it
        checked: dict[str, DatabaseSettings] = {}
        for name, table in databases.items():
            try:
                checked[str(name)] = msgspec.convert(table, DatabaseSettings)
            except msgspec.ValidationError as exc:
                described = describe(exc).removeprefix("(top level)")
                joiner = "" if described.startswith(":") else "."
                raise ConfigError(
                    f"services.{SERVICE}.databases.{name}{joiner}{described}"
                ) from exc
        raw["databases"] = checked
    try:
        return msgspec.convert(raw, DataSettings, from_attributes=True)
    except msgspec.ValidationError as exc:
        described = describe(exc).removeprefix("(top level)")
        raise ConfigError(
            f"services.{SERVICE}{'' if described.startswith(':') else '.'}{described}"
        ) from exc
