"""A small repository layer: typed access to one table, tenant-filtered where it must be.

::

    class Notes(Repository):
        table = "notes"
        columns = ("id", "tenant_id", "body")
        tenant_scoped = True

    notes = Notes(db, tenant="t1")
    row = await notes.insert(body="hello")          # tenant_id is filled in
    await notes.find(body="hello")                  # only t1's rows, on both dialects

A tenant-scoped repository needs a tenant and adds ``tenant_id = <tenant>`` to
every statement it makes. On PostgreSQL each of its statements also runs in a
transaction with ``aria.tenant`` set, so row-level security (see
:func:`row_level_security`) holds the line even for hand-written SQL in that
transaction. Column names are checked against ``columns`` (never interpolated
from input).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, ClassVar

from .api import Connection, Database, Row

TENANT_SETTING = "aria.tenant"


def row_level_security(table: str, column: str = "tenant_id") -> list[str]:
    """PostgreSQL statements that confine ``table`` to the transaction's tenant.

    Put them in the PostgreSQL migration that creates the table. ``FORCE`` makes
    them bind the table's owner too; only superusers and ``BYPASSRLS`` roles pass
    (connect the services as an ordinary role). A transaction without a tenant
    sees no rows at all.
    """
    check = f"{column} = current_setting('{TENANT_SETTING}', true)"
    return [
        f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY;",
        f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY;",
        f"CREATE POLICY aria_tenant_isolation ON {table} USING ({check}) WITH CHECK ({check});",
    ]


class Repository:
    """Typed access to one table; subclass it with ``table`` and ``columns``."""

    table: ClassVar[str]
    columns: ClassVar[tuple[str, ...]]
    key: ClassVar[str] = "id"
    tenant_scoped: ClassVar[bool] = False
    tenant_column: ClassVar[str] = "tenant_id"

    def __init__(self, db: Database | Connection, tenant: str | None = None) -> None:
        if self.tenant_scoped and not tenant:
            raise ValueError(f"{type(self).__name__} is tenant-scoped: give it a tenant")
        self.db = db
        self.tenant = tenant

    def _column(self, name: str) -> str:
        if name not in self.columns:
            raise ValueError(f"{self.table} has no column {name!r} (columns: {self.columns})")
        return name

    @asynccontextmanager
    async def _connection(self, write: bool = False) -> AsyncIterator[Connection]:
        """Where a statement runs: the caller's transaction if given one; else a
        transaction of its own for writes (SQLite's readers are read-only) and, on
        PostgreSQL, for tenant-scoped reads (so row-level security knows the tenant)."""
        db: Any = self.db
        resolve = getattr(db, "current", None)
        if resolve is not None:  # a DatabaseProxy: the live database
            db = await resolve()
        if not isinstance(db, Database):
            yield db
            return
        tenant = self.tenant if self.tenant_scoped else None
        if write or (tenant is not None and db.dialect == "postgres"):
            async with db.transaction(tenant=tenant) as connection:
                yield connection
        else:
            yield db

    def _where(self, conditions: dict[str, Any]) -> tuple[str, list[Any]]:
        clauses: list[str] = []
        args: list[Any] = []
        if self.tenant_scoped:
            conditions = {**conditions, self.tenant_column: self.tenant}
        for name, value in conditions.items():
            args.append(value)
            clauses.append(f"{self._column(name)} = ${len(args)}")
        return (" WHERE " + " AND ".join(clauses)) if clauses else "", args

    async def get(self, key: Any) -> Row | None:
        """The row whose key is ``key`` (in this tenant), or ``None``."""
        where, args = self._where({self.key: key})
        async with self._connection() as db:
            return await db.fetchrow(f"SELECT * FROM {self.table}{where}", *args)

    async def find(self, **conditions: Any) -> list[Row]:
        """Every row (of this tenant) whose columns equal ``conditions``."""
        where, args = self._where(conditions)
        async with self._connection() as db:
            return await db.fetch(f"SELECT * FROM {self.table}{where} ORDER BY {self.key}", *args)

    async def count(self, **conditions: Any) -> int:
        where, args = self._where(conditions)
        async with self._connection() as db:
            return int(await db.fetchval(f"SELECT count(*) FROM {self.table}{where}", *args))

    async def insert(self, **values: Any) -> Row:
        """Insert a row (its tenant filled in); the row as stored."""
        if self.tenant_scoped:
            if values.get(self.tenant_column, self.tenant) != self.tenant:
                raise ValueError(f"cannot insert a row of another tenant into {self.table}")
            values[self.tenant_column] = self.tenant
        names = [self._column(name) for name in values]
        placeholders = ", ".join(f"${i}" for i in range(1, len(names) + 1))
        sql = f"INSERT INTO {self.table} ({', '.join(names)}) VALUES ({placeholders}) RETURNING *"
        async with self._connection(write=True) as db:
            row = await db.fetchrow(sql, *values.values())
        assert row is not None
        return row

    async def update(self, key: Any, **values: Any) -> bool:
        """Change columns of the row ``key`` (in this tenant); whether there was one."""
        if self.tenant_scoped and self.tenant_column in values:
            raise ValueError("a row cannot change tenant")
        sets = [f"{self._column(name)} = ${i}" for i, name in enumerate(values, 1)]
        where, args = self._where({self.key: key})
        shift = len(values)
        where = _renumber(where, shift)
        sql = f"UPDATE {self.table} SET {', '.join(sets)}{where} RETURNING {self.key}"
        async with self._connection(write=True) as db:
            return await db.fetchrow(sql, *values.values(), *args) is not None

    async def delete(self, key: Any) -> bool:
        """Delete the row ``key`` (in this tenant); whether there was one."""
        where, args = self._where({self.key: key})
        sql = f"DELETE FROM {self.table}{where} RETURNING {self.key}"
        async with self._connection(write=True) as db:
            return await db.fetchrow(sql, *args) is not None


def _renumber(where: str, shift: int) -> str:
    """``$1``, ``$2`` in a WHERE clause moved up by ``shift``."""
    return re.sub(r"\$(\d+)", lambda m: f"${int(m[1]) + shift}", where)
