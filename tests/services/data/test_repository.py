"""Repositories and tenant isolation: the repository's tenant filter on both dialects, and
PostgreSQL's row-level security holding for hand-written SQL of an ordinary role."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from aria_actors.services.data.api import Database, QueryError
from aria_actors.services.data.migrations import migrate
from aria_actors.services.data.postgres import PostgresDatabase

from .helpers import AppRole, Notes, Tags, notes_migrations


@pytest.fixture
async def notes_db(db: Database, tmp_path: Path) -> Database:
    """``db`` with the notes and tags tables (no row-level security: the repository's
    own filter is under test), and notes 1, 2 of tenant a and 3 of tenant b."""
    await migrate(db, "notes", notes_migrations(tmp_path / "m"))
    for tenant, body in (("a", "a1"), ("a", "a2"), ("b", "b1")):
        await db.execute("INSERT INTO notes (tenant_id, body) VALUES ($1, $2)", tenant, body)
    return db


async def ids(db: Database) -> dict[int, tuple[str, str | None]]:
    rows = await db.fetch("SELECT id, tenant_id, body FROM notes")
    return {row["id"]: (row["tenant_id"], row["body"]) for row in rows}


SEEDED = {1: ("a", "a1"), 2: ("a", "a2"), 3: ("b", "b1")}


def test_a_tenant_scoped_repository_needs_a_tenant() -> None:
    db: Any = object()
    with pytest.raises(ValueError, match="tenant"):
        Notes(db)
    with pytest.raises(ValueError, match="tenant"):
        Notes(db, tenant="")
    Tags(db)  # not tenant-scoped: no tenant needed


async def test_reads_see_only_the_repositorys_tenant(notes_db: Database) -> None:
    a, b = Notes(notes_db, tenant="a"), Notes(notes_db, tenant="b")
    assert await a.get(1) == {"id": 1, "tenant_id": "a", "body": "a1"}
    assert await a.get(3) is None  # b's
    assert await b.get(3) == {"id": 3, "tenant_id": "b", "body": "b1"}
    assert await a.find() == [
        {"id": 1, "tenant_id": "a", "body": "a1"},
        {"id": 2, "tenant_id": "a", "body": "a2"},
    ]
    assert await a.find(body="b1") == []
    assert await b.find(body="b1") == [{"id": 3, "tenant_id": "b", "body": "b1"}]
    assert await a.count() == 2
    assert await b.count() == 1
    assert await a.count(body="a2") == 1
    assert await Notes(notes_db, tenant="c").count() == 0


async def test_insert_fills_in_the_tenant_and_returns_the_stored_row(notes_db: Database) -> None:
    a = Notes(notes_db, tenant="a")
    row = await a.insert(body="new")
    assert row == {"id": 4, "tenant_id": "a", "body": "new"}
    assert await a.insert(tenant_id="a", body="explicit") == {
        "id": 5,
        "tenant_id": "a",
        "body": "explicit",
    }
    assert (await ids(notes_db))[4] == ("a", "new")


async def test_updates_and_deletes_touch_only_the_repositorys_tenant(notes_db: Database) -> None:
    a = Notes(notes_db, tenant="a")
    assert await a.update(3, body="hijacked") is False  # b's row
    assert await a.delete(3) is False
    assert await ids(notes_db) == SEEDED
    assert await a.update(1, body="edited") is True
    assert await a.delete(2) is True
    assert await a.update(2, body="gone") is False
    assert await ids(notes_db) == {1: ("a", "edited"), 3: ("b", "b1")}


async def test_cross_tenant_writes_are_refused_before_any_sql(notes_db: Database) -> None:
    a = Notes(notes_db, tenant="a")
    with pytest.raises(ValueError, match="another tenant"):
        await a.insert(tenant_id="b", body="smuggled")
    with pytest.raises(ValueError, match="cannot change tenant"):
        await a.update(1, tenant_id="b")
    with pytest.raises(ValueError, match="cannot change tenant"):
        await a.update(1, body="x", tenant_id="a")
    assert await ids(notes_db) == SEEDED


async def test_column_names_are_checked_never_interpolated(notes_db: Database) -> None:
    a = Notes(notes_db, tenant="a")
    with pytest.raises(ValueError, match="no column"):
        await a.find(**{"body = body OR 1=1 --": "x"})
    with pytest.raises(ValueError, match="no column"):
        await a.insert(nope="x")
    with pytest.raises(ValueError, match="no column"):
        await a.update(1, nope="x")
    # values are parameters, whatever they contain
    assert await a.find(body="a1' OR '1'='1") == []
    assert await ids(notes_db) == SEEDED


async def test_a_repository_inside_a_transaction_shares_its_fate(notes_db: Database) -> None:
    class Abort(Exception):
        pass

    async def aborted() -> None:
        async with notes_db.transaction(tenant="a") as tx:
            a = Notes(tx, tenant="a")
            await a.insert(body="in tx")
            assert await a.update(1, body="in tx too") is True
            assert await a.count() == 3
            assert await Notes(tx, tenant="b").count() == 1
            raise Abort

    with pytest.raises(Abort):
        await aborted()
    assert await ids(notes_db) == SEEDED
    async with notes_db.transaction(tenant="a") as tx:
        await Notes(tx, tenant="a").insert(body="kept")
    assert ("a", "kept") in (await ids(notes_db)).values()
    assert len(await ids(notes_db)) == 4


async def test_a_plain_repository_reads_and_writes_its_table(notes_db: Database) -> None:
    tags = Tags(notes_db)
    assert await tags.insert(id=1, label="x") == {"id": 1, "label": "x"}
    assert await tags.get(1) == {"id": 1, "label": "x"}
    assert await tags.update(1, label="y") is True
    assert await tags.find(label="y") == [{"id": 1, "label": "y"}]
    assert await tags.delete(1) is True
    assert await tags.count() == 0


# -- row-level security on PostgreSQL ---------------------------------------------------------


@pytest.fixture
async def rls_db(app_role: AppRole, tmp_path: Path) -> AsyncIterator[PostgresDatabase]:
    """The notes table with row-level security, created by the migration of an ordinary
    role (its owner: FORCE makes the policy bind it too), which then connects over TCP
    with its password; notes 1, 2 of tenant a and 3 of tenant b."""
    db = PostgresDatabase("main", app_role.dsn, max_size=2, acquire_timeout=5.0)
    await db.open()
    try:
        assert await db.fetchrow(
            "SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user"
        ) == {"rolsuper": False, "rolbypassrls": False}
        assert await db.fetchval("SELECT current_user") == app_role.name
        await migrate(db, "notes", notes_migrations(tmp_path / "m", rls=True))
        assert await db.fetchval("SELECT tableowner FROM pg_tables WHERE tablename = 'notes'") == (
            app_role.name
        )
        for tenant, body in (("a", "a1"), ("a", "a2"), ("b", "b1")):
            async with db.transaction(tenant=tenant) as tx:
                await tx.execute(
                    "INSERT INTO notes (tenant_id, body) VALUES ($1, $2)", tenant, body
                )
        yield db
    finally:
        await db.close()


async def superuser_view(app_role: AppRole) -> dict[int, tuple[str, str | None]]:
    """The notes as they really are (a superuser bypasses row-level security)."""
    admin = PostgresDatabase("admin", app_role.pg.dsn)
    await admin.open()
    try:
        return await ids(admin)
    finally:
        await admin.close()


async def test_rls_hand_written_sql_sees_only_the_transactions_tenant(
    rls_db: PostgresDatabase, app_role: AppRole
) -> None:
    async with rls_db.transaction(tenant="a") as tx:
        rows = await tx.fetch("SELECT id, tenant_id, body FROM notes ORDER BY id")
        assert rows == [
            {"id": 1, "tenant_id": "a", "body": "a1"},
            {"id": 2, "tenant_id": "a", "body": "a2"},
        ]
        assert await tx.fetchval("SELECT count(*) FROM notes WHERE tenant_id = 'b'") == 0
    async with rls_db.transaction(tenant="b") as tx:
        assert await tx.fetchval("SELECT array_agg(id) FROM notes") == [3]
    assert await superuser_view(app_role) == SEEDED


async def test_rls_updates_and_deletes_of_another_tenant_change_nothing(
    rls_db: PostgresDatabase, app_role: AppRole
) -> None:
    async with rls_db.transaction(tenant="a") as tx:
        assert await tx.execute("UPDATE notes SET body = 'hijacked' WHERE tenant_id = 'b'") == (
            "UPDATE 0"
        )
        assert await tx.execute("UPDATE notes SET body = 'everything'") == "UPDATE 2"
        assert await tx.execute("DELETE FROM notes WHERE id = 3") == "DELETE 0"
    assert await superuser_view(app_role) == {
        1: ("a", "everything"),
        2: ("a", "everything"),
        3: ("b", "b1"),
    }


async def test_rls_refuses_writing_a_row_of_another_tenant(
    rls_db: PostgresDatabase, app_role: AppRole
) -> None:
    with pytest.raises(QueryError) as insert:
        async with rls_db.transaction(tenant="a") as tx:
            await tx.execute("INSERT INTO notes (tenant_id, body) VALUES ('b', 'smuggled')")
    assert insert.value.sqlstate == "42501"  # new row violates row-level security policy
    with pytest.raises(QueryError) as move:
        async with rls_db.transaction(tenant="a") as tx:
            await tx.execute("UPDATE notes SET tenant_id = 'b' WHERE id = 1")
    assert move.value.sqlstate == "42501"
    assert await superuser_view(app_role) == SEEDED


async def test_rls_without_a_tenant_nothing_is_seen(
    rls_db: PostgresDatabase, app_role: AppRole
) -> None:
    assert await rls_db.fetch("SELECT * FROM notes") == []
    async with rls_db.transaction() as tx:
        assert await tx.fetch("SELECT * FROM notes") == []
        assert await tx.execute("DELETE FROM notes") == "DELETE 0"
    # the tenant of a transaction does not stay on its pooled connection
    for _ in range(4):
        async with rls_db.transaction(tenant="a") as tx:
            assert await tx.fetchval("SELECT count(*) FROM notes") == 2
        assert await rls_db.fetchval("SELECT count(*) FROM notes") == 0
        async with rls_db.transaction() as tx:
            assert await tx.fetchval("SELECT count(*) FROM notes") == 0
    with pytest.raises(QueryError):
        await rls_db.execute("INSERT INTO notes (tenant_id, body) VALUES ('a', 'no tenant')")
    assert await superuser_view(app_role) == SEEDED


async def test_rls_a_tenant_scoped_repository_works_as_the_ordinary_role(
    rls_db: PostgresDatabase, app_role: AppRole
) -> None:
    a = Notes(rls_db, tenant="a")
    assert await a.count() == 2
    row = await a.insert(body="via repository")
    assert row["tenant_id"] == "a"
    assert await a.update(3, body="hijacked") is False
    assert await a.delete(3) is False
    assert [r["body"] for r in await a.find()] == ["a1", "a2", "via repository"]
    assert await Notes(rls_db, tenant="b").find() == [{"id": 3, "tenant_id": "b", "body": "b1"}]
    assert (await superuser_view(app_role))[3] == ("b", "b1")
