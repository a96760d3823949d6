"""Migrations on both dialects: order, bookkeeping, refusals, failures, concurrency, and
how a migration file is split into statements."""

from __future__ import annotations

import asyncio
import hashlib
import time
from pathlib import Path

import pytest

from aria_actors.services.data import migrations
from aria_actors.services.data.api import Database, DatabaseError, MigrationError
from aria_actors.services.data.migrations import load, migrate, split_statements, status

from .helpers import Target, eventually, open_db, user_tables, write_migrations

CREATE = """-- the first table
CREATE TABLE things (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL
);

-- an index on it
CREATE INDEX things_name ON things (name);
"""
ADD_COLUMN = "ALTER TABLE things ADD COLUMN size INTEGER;\n"
SEED = "INSERT INTO things (id, name, size) VALUES (1, 'seed', 3);\n"
LABELS = ["0001_create", "0002_add_column", "0003_seed"]


def three(root: Path) -> Path:
    return write_migrations(
        root, {"0001_create.sql": CREATE, "0002_add_column.sql": ADD_COLUMN, "0003_seed.sql": SEED}
    )


async def recorded(db: Database, service: str = "svc") -> list[tuple[int, str]]:
    rows = await db.fetch(
        "SELECT version, name FROM aria_migrations WHERE service = $1 ORDER BY version", service
    )
    return [(row["version"], row["name"]) for row in rows]


async def test_pending_migrations_are_applied_in_order_and_recorded(
    db: Database, tmp_path: Path
) -> None:
    root = three(tmp_path / "m")
    before = time.time()
    assert await migrate(db, "svc", root) == LABELS
    after = time.time()

    assert await db.fetch("SELECT id, name, size FROM things") == [
        {"id": 1, "name": "seed", "size": 3}
    ]
    rows = await db.fetch(
        "SELECT service, version, name, checksum, applied_at FROM aria_migrations ORDER BY version"
    )
    assert [(r["service"], r["version"], r["name"]) for r in rows] == [
        ("svc", 1, "create"),
        ("svc", 2, "add_column"),
        ("svc", 3, "seed"),
    ]
    for row, text in zip(rows, (CREATE, ADD_COLUMN, SEED), strict=True):
        assert row["checksum"] == hashlib.sha256(text.encode()).hexdigest()
        assert before <= row["applied_at"] <= after

    assert await migrate(db, "svc", root) == []  # a second run applies nothing
    assert await db.fetchval("SELECT count(*) FROM things") == 1

    write_migrations(root, {"0004_more.sql": "INSERT INTO things (id, name) VALUES (2, 'b');"})
    assert await migrate(db, "svc", root) == ["0004_more"]  # only the new one
    assert await db.fetchval("SELECT count(*) FROM things") == 2


async def test_each_service_has_its_own_numbering(db: Database, tmp_path: Path) -> None:
    first = write_migrations(tmp_path / "a", {"0001_init.sql": "CREATE TABLE a_t (x INTEGER);"})
    second = write_migrations(tmp_path / "b", {"0001_init.sql": "CREATE TABLE b_t (x INTEGER);"})
    assert await migrate(db, "a", first) == ["0001_init"]
    assert await migrate(db, "b", second) == ["0001_init"]
    assert await recorded(db, "a") == [(1, "init")]
    assert await recorded(db, "b") == [(1, "init")]
    assert {"a_t", "b_t"} <= set(await user_tables(db))


async def test_a_service_without_migrations_for_the_dialect_applies_nothing(
    db: Database, tmp_path: Path
) -> None:
    assert await migrate(db, "svc", tmp_path / "nothing-here") == []
    assert await status(db, "svc", tmp_path / "nothing-here") == []


async def test_status_tells_applied_pending_changed_and_missing(
    db: Database, tmp_path: Path
) -> None:
    root = three(tmp_path / "m")
    assert [(s.version, s.name, s.state, s.applied_at) for s in await status(db, "svc", root)] == [
        (1, "create", "pending", None),
        (2, "add_column", "pending", None),
        (3, "seed", "pending", None),
    ]
    (root / db.dialect / "0003_seed.sql").rename(tmp_path / "0003_seed.sql")
    await migrate(db, "svc", root)
    (tmp_path / "0003_seed.sql").rename(root / db.dialect / "0003_seed.sql")
    states = await status(db, "svc", root)
    assert [(s.service, s.version, s.state) for s in states] == [
        ("svc", 1, "applied"),
        ("svc", 2, "applied"),
        ("svc", 3, "pending"),
    ]
    assert all(s.applied_at is not None for s in states[:2])

    await migrate(db, "svc", root)
    (root / db.dialect / "0001_create.sql").write_text(CREATE + "-- edited afterwards\n")
    (root / db.dialect / "0003_seed.sql").unlink()
    assert [(s.version, s.name, s.state) for s in await status(db, "svc", root)] == [
        (1, "create", "changed"),
        (2, "add_column", "applied"),
        (3, "seed", "missing"),
    ]


async def test_a_changed_applied_migration_is_refused_by_name(db: Database, tmp_path: Path) -> None:
    root = write_migrations(tmp_path / "m", {"0001_create.sql": CREATE})
    await migrate(db, "svc", root)
    write_migrations(
        root, {"0001_create.sql": CREATE.replace("name TEXT", "label TEXT"), "0002_seed.sql": SEED}
    )
    with pytest.raises(MigrationError, match=r"0001_create.*changed"):
        await migrate(db, "svc", root)
    assert await recorded(db) == [(1, "create")]  # and the pending one was not applied
    assert await db.fetchval("SELECT count(*) FROM things") == 0


async def test_a_missing_applied_migration_is_refused_by_name(db: Database, tmp_path: Path) -> None:
    root = three(tmp_path / "m")
    await migrate(db, "svc", root)
    (root / db.dialect / "0003_seed.sql").unlink()
    with pytest.raises(MigrationError, match=r"0003_seed.*missing"):
        await migrate(db, "svc", root)


@pytest.mark.parametrize(
    "name",
    ["1_short.sql", "00001_long.sql", "0001-dash.sql", "0001_Upper.sql", "0001_.sql", "0001.sql"],
)
def test_a_badly_named_migration_file_is_refused(tmp_path: Path, name: str) -> None:
    root = write_migrations(tmp_path / "m", {name: "SELECT 1;"})
    with pytest.raises(MigrationError, match=r"NNNN_name\.sql") as caught:
        load("svc", root, "sqlite")
    assert name in str(caught.value)


@pytest.mark.parametrize(
    ("names", "culprit"),
    [
        (["0001_a.sql", "0003_c.sql"], "0003_c"),  # a gap
        (["0002_b.sql"], "0002_b"),  # not starting at 0001
        (["0001_a.sql", "0001_b.sql"], "0001_b"),  # a duplicate number
        (["0001_a.sql", "0002_b.sql", "0002_c.sql", "0003_d.sql"], "0002_c"),
    ],
)
def test_gaps_and_duplicates_in_the_numbering_are_refused(
    tmp_path: Path, names: list[str], culprit: str
) -> None:
    root = write_migrations(tmp_path / "m", dict.fromkeys(names, "SELECT 1;"))
    with pytest.raises(MigrationError, match=culprit):
        load("svc", root, "postgres")


def test_load_reads_the_dialects_folder_in_order(tmp_path: Path) -> None:
    root = write_migrations(
        tmp_path / "m",
        {"0002_second.sql": ("SELECT 'pg2';", "SELECT 's2';"), "0001_first.sql": "SELECT 1;"},
    )
    (root / "sqlite" / "notes.txt").write_text("not a migration")
    loaded = load("svc", root, "sqlite")
    assert [(m.service, m.version, m.name, m.sql) for m in loaded] == [
        ("svc", 1, "first", "SELECT 1;"),
        ("svc", 2, "second", "SELECT 's2';"),
    ]
    assert loaded[1].checksum == hashlib.sha256(b"SELECT 's2';").hexdigest()
    assert load("svc", root, "postgres")[1].sql == "SELECT 'pg2';"


async def test_bad_numbering_is_refused_before_anything_is_applied(
    db: Database, tmp_path: Path
) -> None:
    root = write_migrations(tmp_path / "m", {"0001_create.sql": CREATE, "0003_seed.sql": SEED})
    with pytest.raises(MigrationError, match="0003_seed"):
        await migrate(db, "svc", root)
    assert "things" not in await user_tables(db)


async def test_a_failing_migration_rolls_back_and_keeps_the_earlier_ones(
    db: Database, tmp_path: Path
) -> None:
    broken = "CREATE TABLE half_done (x INTEGER);\nINSERT INTO no_such_table VALUES (1);\n"
    root = write_migrations(
        tmp_path / "m",
        {"0001_create.sql": CREATE, "0002_broken.sql": broken, "0003_seed.sql": SEED},
    )
    with pytest.raises(MigrationError, match="svc 0002_broken failed") as caught:
        await migrate(db, "svc", root)
    assert isinstance(caught.value, DatabaseError)
    assert await recorded(db) == [(1, "create")]
    tables = await user_tables(db)
    assert "things" in tables
    assert "half_done" not in tables  # the first statement of 0002 was rolled back too

    # the broken one was never applied, so it may be fixed; then the rest follow
    write_migrations(
        root,
        {
            "0002_broken.sql": "CREATE TABLE half_done (x INTEGER);\n" + ADD_COLUMN,
        },
    )
    assert await migrate(db, "svc", root) == ["0002_broken", "0003_seed"]
    assert await recorded(db) == [(1, "create"), (2, "broken"), (3, "seed")]


async def test_a_statement_with_a_comment_after_its_semicolon_is_applied(
    db: Database, tmp_path: Path
) -> None:
    """``CREATE ...; -- why`` is common style. split_statements only splits where a
    line ends with ``;``, so the two statements travel together: PostgreSQL takes
    them (simple query protocol), SQLite refuses ("one statement at a time")."""
    root = write_migrations(
        tmp_path / "m",
        {
            "0001_commented.sql": (
                "CREATE TABLE a (x INTEGER); -- the first table\n"
                "CREATE TABLE b (y INTEGER); -- the second\n"
            )
        },
    )
    assert await migrate(db, "svc", root) == ["0001_commented"]
    assert {"a", "b"} <= set(await user_tables(db))


async def test_concurrent_migrations_apply_each_migration_exactly_once(
    target: Target, tmp_path: Path
) -> None:
    """Six tasks on three handles at once (three nodes sharing the database).

    0003 inserts a row into a table without a unique key: a second application
    would leave two rows; a DDL statement run twice would fail the migration.
    """
    root = three(tmp_path / "m")
    handles = [await open_db(target) for _ in range(3)]
    try:
        async with asyncio.timeout(30):
            results = await asyncio.gather(
                *(migrate(handles[n % 3], "svc", root) for n in range(6)),
                return_exceptions=True,
            )
        errors = [r for r in results if isinstance(r, BaseException)]
        assert errors == []
        applied = [label for result in results if isinstance(result, list) for label in result]
        assert sorted(applied) == LABELS
        assert [r for r in results if r] == [LABELS]  # one run did it all, in order
        db = handles[0]
        assert await recorded(db) == [(1, "create"), (2, "add_column"), (3, "seed")]
        assert await db.fetchval("SELECT count(*) FROM things") == 1
    finally:
        for handle in handles:
            await handle.close()


async def test_status_may_run_while_another_node_creates_the_bookkeeping_table(
    target: Target, tmp_path: Path
) -> None:
    """status() creates ``aria_migrations`` outside the migration lock. Another node
    creating it at the same moment (here: its transaction held open at that point)
    makes PostgreSQL's ``CREATE TABLE IF NOT EXISTS`` fail with a unique violation
    on ``pg_type`` instead of finding the table."""
    root = three(tmp_path / "m")
    first = await open_db(target)
    second = await open_db(target)
    try:
        async with asyncio.timeout(20):
            async with first.transaction() as tx:
                await tx.execute(migrations.CREATE_TABLE)
                asking = asyncio.create_task(status(second, "svc", root))
                if target.dialect == "postgres":
                    await eventually(lambda: waiting_on_a_lock(first), timeout=10)
                else:
                    await asyncio.sleep(0.2)
            states = await asking
        assert [s.state for s in states] == ["pending"] * 3
    finally:
        await second.close()
        await first.close()


async def waiting_on_a_lock(db: Database) -> bool:
    waiting = await db.fetchval(
        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
        "AND datname = current_database()"
    )
    return bool(waiting)


# -- split_statements -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sql", "statements"),
    [
        ("", []),
        ("\n\n   \n", []),
        ("-- only a comment\n-- and another;\n", []),
        ("SELECT 1;", ["SELECT 1;"]),
        ("SELECT 1", ["SELECT 1"]),  # the last statement may lack its ;
        ("SELECT 1;\nSELECT 2", ["SELECT 1;", "SELECT 2"]),
        ("SELECT 1;   \n\tSELECT 2;\t\n", ["SELECT 1;", "SELECT 2;"]),  # blanks after ;
        ("SELECT 1;\r\nSELECT 2;\r\n", ["SELECT 1;", "SELECT 2;"]),  # CRLF
        (
            "CREATE TABLE t (\n    a INTEGER,\n\n    b TEXT\n);\nCREATE INDEX i ON t (a);\n",
            ["CREATE TABLE t (\n    a INTEGER,\n\n    b TEXT\n);", "CREATE INDEX i ON t (a);"],
        ),
        (  # comments between statements go; a comment inside one stays
            "-- head\nCREATE TABLE t (\n  -- the key\n  a INTEGER\n);\n\n-- tail\n",
            ["CREATE TABLE t (\n  -- the key\n  a INTEGER\n);"],
        ),
        ("SELECT 1; SELECT 2;", ["SELECT 1; SELECT 2;"]),  # one line, one chunk
        ("  SELECT 1;\n", ["SELECT 1;"]),  # stripped
    ],
)
def test_split_statements(sql: str, statements: list[str]) -> None:
    assert split_statements(sql) == statements


def test_a_file_with_dollar_quoting_is_one_statement() -> None:
    body = (
        "CREATE FUNCTION f() RETURNS trigger AS $$\nBEGIN\n  NEW.x := 1;\n  RETURN NEW;\n"
        "END;\n$$ LANGUAGE plpgsql;\n\nCREATE TABLE t (x INTEGER);\n"
    )
    assert split_statements(body) == [body]


async def test_a_postgres_function_migration_applies(db: Database, tmp_path: Path) -> None:
    pg = (
        "CREATE TABLE t (x INTEGER);\n"
        "CREATE FUNCTION set_x() RETURNS trigger AS $$\nBEGIN\n  NEW.x := 42;\n"
        "  RETURN NEW;\nEND;\n$$ LANGUAGE plpgsql;\n"
        "CREATE TRIGGER t_x BEFORE INSERT ON t FOR EACH ROW EXECUTE FUNCTION set_x();\n"
    )
    lite = (
        "CREATE TABLE t (x INTEGER);\n"
        "CREATE TRIGGER t_x AFTER INSERT ON t BEGIN\n"
        "  UPDATE t SET x = 42 WHERE rowid = NEW.rowid\n"
        "; END;\n"
    )
    root = write_migrations(tmp_path / "m", {"0001_trigger.sql": (pg, lite)})
    assert await migrate(db, "svc", root) == ["0001_trigger"]
    await db.execute("INSERT INTO t (x) VALUES (1)")
    assert await db.fetchval("SELECT x FROM t") == 42
