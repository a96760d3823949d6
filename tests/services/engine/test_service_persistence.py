"""aria_engine's characters in aria_data (SQLite and the tests' PostgreSQL): their state,
to-do list and last run survive a crash of their actor and a restart of the node, a
run cut short keeps what each executed command did, stale writers are refused, and a
corrupt row gives a clear error naming the character and stays as it was.

This module is also the domain module ``relay`` (``[services.aria_engine] modules``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest

from aria_actors import ActorExited, Node, NodeConfig, RuntimeConfig
from aria_actors.services.data.client import Data
from aria_actors.services.engine import Domain, EngineError, State
from aria_actors.services.engine.character_actor import INTERRUPTED
from aria_actors.services.engine.character_store import CharacterStore
from aria_actors.services.engine.client import Engine
from aria_actors.services.engine.errors import CorruptCharacter
from tests.servers.fixtures import PgDatabase

from .test_service import ENDLESS, SERVICES, eventually

RELAY = __name__

# -- the relay domain: ("step", c, n) moves c's counter from n - 1 to n; the goal -------
# -- ("steps", c, n) steps up to n ------------------------------------------------------

HOOKS: dict[str, Callable[[], None]] = {}
"""``"<character>.<n>"`` → a function the command ``c_step`` calls first (tests set it)."""


def step(state: State, c: str, n: int) -> State | bool:
    if state.steps[c] != n - 1:
        return False
    state.steps[c] = n
    return state


def c_step(state: State, c: str, n: int) -> State | bool:
    hook = HOOKS.pop(f"{c}.{n}", None)
    if hook is not None:
        hook()
    return step(state, c, n)


def m_count_up(state: State, c: str, n: int) -> list[Any]:
    """The goal ``("steps", c, n)``: step up from wherever c's counter is."""
    now = state.steps[c]
    return [("step", c, now + 1), ("steps", c, n)] if now < n else []


relay = Domain("relay")
relay.declare_actions(step)
relay.declare_commands(c_step)
relay.declare_unigoal_methods("steps", m_count_up)
DOMAINS = (relay,)

START: dict[str, Any] = {
    "steps": {"hero": 0},
    # what JSON would not keep: int keys, floats, bools and None, nested
    "extra": {1: [1.5, True, None, {"k": 2, 3: -0.25}], "two": 2, "inf": float("inf")},
}


def steps(*numbers: int) -> list[tuple[str, str, int]]:
    return [("step", "hero", n) for n in numbers]


# -- nodes -------------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgres"])
def data_settings(request: pytest.FixtureRequest) -> dict[str, Any] | None:
    """aria_data's settings: its default SQLite (under the state directory), or the
    test's PostgreSQL database."""
    if request.param == "sqlite":
        return None
    pg: PgDatabase = request.getfixturevalue("pg_database")
    main = {"backend": "postgres", "dsn": pg.tcp_dsn, "acquire_timeout": 5.0}
    return {"databases": {"main": main}}


@pytest.fixture
def state(tmp_path: Path) -> Path:
    return tmp_path / "state"


@contextlib.asynccontextmanager
async def engine_node(
    state: Path, data: dict[str, Any] | None, **settings: Any
) -> AsyncIterator[Node]:
    """A node running aria_engine (thread pool) on ``state`` and aria_data's ``data``."""
    engine = {"modules": [ENDLESS, RELAY], "pool": "thread", "pool_size": 2, **settings}
    services: dict[str, Any] = {"aria_engine": engine}
    if data is not None:
        services["aria_data"] = data
    config = NodeConfig(runtime=RuntimeConfig(shutdown=10.0), services=services)
    async with (
        asyncio.timeout(120),
        Node(name="engine-test", config=config, state_dir=state) as node,
    ):
        await node.boot(SERVICES, only=["aria_engine"])
        yield node


async def kill_character(node: Node, character: str) -> None:
    """Kill ``character``'s actor (no ``terminate``) and wait for its restart."""
    name = f"aria_engine.character.{character}"
    ref = node.whereis(name)
    assert ref is not None
    ref._proc.kill()  # type: ignore[attr-defined]
    await ref.wait()

    async def back() -> bool:
        new = node.whereis(name)
        return new is not None and new != ref and new.is_alive()

    await eventually(back)


async def stored_row(node: Node, character: str) -> dict[str, Any] | None:
    return await CharacterStore(Data(node).database()).row(character)


# -- tests -------------------------------------------------------------------------------


async def test_a_character_survives_a_crash_and_a_node_restart(
    state: Path, data_settings: dict[str, Any] | None
) -> None:
    async with engine_node(state, data_settings) as node:
        engine = Engine(node)
        created = await engine.start_character("hero", "relay", START)
        assert created.state == START
        assert created.phase == "idle"
        done = await engine.achieve("hero", steps(1, 2))
        assert done.phase == "done"
        assert done.state["steps"] == {"hero": 2}
        assert done.executed == steps(1, 2)
        assert done.trace is not None

        await kill_character(node, "hero")
        restored = await engine.character("hero", spans=True)
        assert restored.state == done.state
        assert restored.state["extra"] == START["extra"]  # exactly, int keys and all
        assert (restored.phase, restored.error, restored.replans) == ("done", None, 0)
        assert restored.executed == done.executed
        assert restored.todo == [list(s) for s in steps(1, 2)]
        assert restored.trace == done.trace
        assert restored.spans == []  # spans live in memory only

    async with engine_node(state, data_settings) as node:
        engine = Engine(node)
        assert await engine.characters() == ["hero"]
        again = await engine.character("hero")
        assert again.state == done.state
        assert (again.phase, again.executed, again.trace) == ("done", done.executed, done.trace)
        more = await engine.achieve("hero", steps(3))
        assert more.state["steps"] == {"hero": 3}
        assert more.trace not in (None, done.trace)
        await engine.stop_character("hero")  # stops it and deletes it
        assert await engine.characters() == []
        assert await stored_row(node, "hero") is None

    async with engine_node(state, data_settings) as node:
        assert await Engine(node).characters() == []


async def test_a_run_cut_short_keeps_every_executed_command(
    state: Path, data_settings: dict[str, Any] | None
) -> None:
    async with engine_node(state, data_settings) as node:
        engine = Engine(node)
        await engine.start_character("hero", "relay", START)
        ref = node.whereis("aria_engine.character.hero")
        assert ref is not None
        HOOKS["hero.3"] = ref._proc.kill  # type: ignore[attr-defined]
        with pytest.raises(ActorExited):
            await engine.achieve("hero", steps(1, 2, 3, 4))
        assert not HOOKS

        async def back() -> bool:
            new = node.whereis("aria_engine.character.hero")
            return new is not None and new != ref

        await eventually(back)
        status = await engine.character("hero")
        # steps 1 and 2 were written as they happened; the killed run wrote nothing
        # after its actor died (the restarted actor owns the row)
        assert status.state["steps"] == {"hero": 2}
        assert status.executed == steps(1, 2)
        assert (status.phase, status.error) == ("failed", INTERRUPTED)
        assert status.todo == [list(s) for s in steps(1, 2, 3, 4)]
        finish = await engine.achieve("hero", steps(3, 4))
        assert finish.state["steps"] == {"hero": 4}


async def test_a_run_stopped_with_the_node_is_interrupted_after_it(
    state: Path, data_settings: dict[str, Any] | None
) -> None:
    async with engine_node(state, data_settings) as node:
        engine = Engine(node)
        await engine.start_character("dreamer", "endless", {"mood": {"now": "calm"}})
        run = asyncio.create_task(engine.achieve("dreamer", [("choose", 0)]))

        async def searching() -> bool:
            return (await engine.pool_stats()).running == 1

        await eventually(searching)
        assert (await engine.character("dreamer")).phase == "planning"
    with pytest.raises(ActorExited):
        await run

    async with engine_node(state, data_settings) as node:
        status = await Engine(node).character("dreamer")
        assert (status.phase, status.error) == ("failed", INTERRUPTED)
        assert status.state == {"mood": {"now": "calm"}}
        assert status.todo == [["choose", 0]]


async def test_a_stale_writer_is_refused(state: Path, data_settings: dict[str, Any] | None) -> None:
    async with engine_node(state, data_settings) as node:
        engine = Engine(node)
        await engine.start_character("hero", "relay", START)
        store = CharacterStore(Data(node).database())
        record = await store.load("hero")
        assert record is not None
        before = await store.row("hero")
        assert before is not None
        with pytest.raises(EngineError, match="claimed by another actor"):
            await store.save(record.evolve(phase="failed"), owner="some-old-actor")
        assert await store.row("hero") == before
        assert not await store.claim("nobody", "x")


async def corrupt(node: Node, character: str, column: str, value: Any) -> None:
    db = Data(node).database()
    await db.execute(f"UPDATE engine_characters SET {column} = $1 WHERE id = $2", value, character)


async def test_corrupt_rows_give_a_clear_error_and_stay_as_they_are(
    state: Path, data_settings: dict[str, Any] | None
) -> None:
    garbage = b"\xc1\xc1 not msgpack"
    async with engine_node(state, data_settings) as node:
        engine = Engine(node)
        for name in ("hero", "listy", "lost", "fine"):
            await engine.start_character(name, "relay", START)
        await corrupt(node, "hero", "state", garbage)
        await corrupt(node, "listy", "state", msgspec.msgpack.encode(["steps"]))
        await corrupt(node, "lost", "domain", "gone")
        rows = {name: await stored_row(node, name) for name in ("hero", "listy", "lost")}
        for name in ("hero", "listy", "lost"):
            await kill_character(node, name)  # the restart reads the rows again

        expected = {
            "hero": r"stored character 'hero' cannot be loaded: state: undecodable msgpack",
            "listy": r"'listy' cannot be loaded: state: a state is a mapping .* not a list",
            "lost": r"'lost' cannot be loaded: domain: no planning domain named 'gone'",
        }

        async def check(step_number: int) -> None:
            engine = Engine(node)
            assert await engine.characters() == ["fine", "hero", "listy", "lost"]
            for name, message in expected.items():
                with pytest.raises(CorruptCharacter, match=message) as caught:
                    await engine.character(name)
                assert caught.value.character == name
                assert "left as it is" in str(caught.value)
                with pytest.raises(CorruptCharacter, match=message):
                    await engine.achieve(name, steps(1))
                row, before = await stored_row(node, name), rows[name]
                assert row is not None
                assert before is not None
                # the same bytes; only the owner changes: each actor instance claims the row
                assert row.pop("owner") != before["owner"]
                assert row == {k: v for k, v in before.items() if k != "owner"}
            fine = await engine.achieve("fine", steps(step_number))  # the others go on
            assert fine.phase == "done"
            errors = node.metrics.get_sample_value("aria_engine_character_load_errors_total")
            assert errors == len(expected)  # once per actor start that found a bad row

        await check(1)

    async with engine_node(state, data_settings) as node:  # a new node boots all the same
        await check(2)
        assert (await Engine(node).character("fine")).state["steps"] == {"hero": 2}
        await Engine(node).stop_character("hero")  # deleting it is the operator's choice
        assert await stored_row(node, "hero") is None
