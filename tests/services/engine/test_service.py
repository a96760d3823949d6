"""aria_engine as a service: a node booting it (with aria_security and aria_data on the
embedded defaults), planning through the client, errors, budgets, cancellation, and
character actors that plan and act."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from aria_actors import CallTimeout, Node, NodeConfig, RuntimeConfig, load_services
from aria_actors.services.engine import BudgetExceeded, DomainError, PlanningFailed
from aria_actors.services.engine.client import Engine
from aria_actors.services.engine.domains import blocks, character, logistics
from aria_actors.services.engine.messages import MAX_REPLY_SPANS
from aria_actors.services.engine.spans import check_tree
from aria_actors.services.engine.wire import BadRequest, UnknownDomain, state_from_data

SUPERVISORS = Path(__file__).resolve().parents[3] / "supervisors"
SERVICES = load_services(SUPERVISORS)
ENDLESS = "tests.services.engine.endless_domain"


@contextlib.asynccontextmanager
async def engine_node(state: Path, **settings: Any) -> AsyncIterator[Node]:
    services = {"aria_engine": {"modules": [ENDLESS], **settings}}
    config = NodeConfig(runtime=RuntimeConfig(shutdown=10.0), services=services)
    async with (
        asyncio.timeout(120),
        Node(name="engine-test", config=config, state_dir=state) as node,
    ):
        await node.boot(SERVICES, only=["aria_engine"])
        yield node


@pytest.fixture(params=["process", "thread"])
def pool(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def node(tmp_path: Path, pool: str) -> AsyncIterator[Node]:
    async with engine_node(tmp_path / "state", pool=pool, pool_size=2) as running:
        yield running


@pytest.fixture
def engine(node: Node) -> Engine:
    return Engine(node)


async def eventually(check: Callable[[], Awaitable[bool]], seconds: float = 30.0) -> None:
    """Poll ``check`` (a state of another actor: no event to wait on) until it holds."""
    async with asyncio.timeout(seconds):
        while not await check():  # noqa: ASYNC110
            await asyncio.sleep(0.02)


async def test_it_boots_after_what_it_requires(node: Node) -> None:
    for name in ("aria_security.secrets", "aria_data.databases", "aria_engine.planner"):
        assert node.whereis(name) is not None, name


async def test_plans_in_every_shipped_domain(engine: Engine) -> None:
    start, goal = blocks.random_problem(12, 3)
    plan = await engine.plan("blocks", start, [goal])
    assert plan.actions
    assert plan.cost == len(plan.actions)
    final = state_from_data(plan.final_state)
    assert all(final.pos[b] == where for b, where in goal.pos.items())

    start, goal = logistics.random_problem(2)
    plan = await engine.plan("logistics", start, [goal], strategy="branch_and_bound")
    assert plan.optimal
    assert plan.strategy == "branch_and_bound"
    assert state_from_data(plan.final_state).at["pkg1"] == goal.at["pkg1"]

    start = character.new_character("hero", "mage")
    plan = await engine.plan("character", start, [("published", "hero", True)])
    assert plan.actions[-1] == ("publish", "hero")

    names = {info.name for info in await engine.domains()}
    assert {"blocks", "logistics", "character", "endless"} <= names
    info = await engine.describe("character")
    assert info.tasks["build_body"][:2] == ["m_body_done", "m_body_from_library"]
    assert info.actions["paint_textures"] == 8.0
    assert "c_publish" in info.commands


async def test_bad_requests_get_clear_errors_and_the_planner_keeps_running(
    engine: Engine, node: Node
) -> None:
    planner = node.whereis("aria_engine.planner")
    start = blocks.state_of({"a": "table"})
    with pytest.raises(UnknownDomain, match="no planning domain named 'nope'"):
        await engine.plan("nope", start, [])
    with pytest.raises(UnknownDomain):
        await engine.describe("nope")
    with pytest.raises(BadRequest, match="not JSON-able"):
        await engine.plan("blocks", {"pos": {"a": object()}}, [])
    with pytest.raises(BadRequest, match="a state is a mapping"):
        await engine.plan("blocks", ["pos"], [])  # type: ignore[arg-type]
    with pytest.raises(BadRequest, match="to-do item 0"):
        await engine.plan("blocks", start, [42])
    with pytest.raises(BadRequest, match="unknown strategy"):
        await engine.plan("blocks", start, [], strategy="psychic")
    with pytest.raises(DomainError, match="nothing named 'fly'"):
        await engine.plan("blocks", start, [("fly", "a")])
    with pytest.raises(DomainError, match="has no variable 'holding'"):
        await engine.plan("blocks", {"pos": {"a": "table"}}, [("pos", "a", "b")])
    with pytest.raises(DomainError, match="raised KeyError"):
        await engine.plan("endless", {}, [("crash",)])
    with pytest.raises(PlanningFailed):
        await engine.plan("blocks", start, [("pos", "a", "zz")])
    assert node.whereis("aria_engine.planner") == planner
    assert planner is not None
    assert planner.is_alive()
    plan = await engine.plan("blocks", start, [("pos", "a", "table")])
    assert plan.actions == []
    stats = await engine.pool_stats()
    assert stats.running == 0
    assert stats.failed >= 4


async def test_a_plan_over_budget_is_budget_exceeded(engine: Engine) -> None:
    with pytest.raises(BudgetExceeded) as caught:
        await engine.plan("endless", {}, [("choose", 0)], max_expansions=5000)
    assert caught.value.expansions > 5000
    with pytest.raises(BudgetExceeded, match="timeout"):
        await engine.plan("endless", {}, [("choose", 0)], timeout=0.2)


async def test_a_caller_timing_out_cancels_its_search_and_frees_the_pool(
    tmp_path: Path, pool: str
) -> None:
    async with engine_node(tmp_path / "state", pool=pool, pool_size=1) as node:
        engine = Engine(node)
        await engine.plan("blocks", blocks.state_of({"a": "table"}), [])  # workers up
        with pytest.raises(CallTimeout):
            await engine.plan("endless", {}, [("choose", 0)], call_timeout=0.3)

        async def freed() -> bool:
            stats = await engine.pool_stats()
            return stats.running == 0 and stats.cancelled == 1

        await eventually(freed)
        start, goal = blocks.random_problem(5, 0)
        assert (await engine.plan("blocks", start, [goal])).actions

        # a caller whose task is cancelled while it waits for the (busy) pool
        hog = asyncio.create_task(engine.plan("endless", {}, [("choose", 0)]))
        waiter = asyncio.create_task(engine.plan("blocks", start, [goal]))
        await eventually(lambda: _stats_are(engine, running=1, waiting=1))
        waiter.cancel()
        hog.cancel()
        await eventually(lambda: _stats_are(engine, running=0, waiting=0))
        assert (await engine.pool_stats()).cancelled == 3


async def _stats_are(engine: Engine, **wanted: int) -> bool:
    stats = await engine.pool_stats()
    return all(getattr(stats, k) == v for k, v in wanted.items())


async def test_concurrent_plans_from_several_callers(engine: Engine) -> None:
    problems = [blocks.random_problem(8 + i, i) for i in range(6)]
    problems_l = [logistics.random_problem(i) for i in range(4)]
    plans = await asyncio.gather(
        *(engine.plan("blocks", s, [g]) for s, g in problems),
        *(engine.plan("logistics", s, [g]) for s, g in problems_l),
    )
    for plan, (_, goal) in zip(plans, problems + problems_l, strict=True):
        final = state_from_data(plan.final_state)
        for var, wanted in goal.goals().items():
            assert all(getattr(final, var)[k] == v for k, v in wanted.items())
    stats = await engine.pool_stats()
    assert stats.completed >= 10
    assert stats.running == 0


async def test_a_character_plans_and_acts_and_replans_when_the_world_surprises_it(
    engine: Engine, node: Node
) -> None:
    start = character.new_character("hero", "mage", fault="generate_textures")
    status = await engine.start_character("hero", "character", start)
    assert status.phase == "idle"
    assert status.state["brief"] == {"hero": "mage"}
    assert await engine.characters() == ["hero"]

    done = await engine.achieve("hero", [("published", "hero", True)])
    assert done.phase == "done"
    assert done.state["published"]["hero"] is True
    assert done.replans == 1  # the failed texture render made it plan again
    executed = [a[0] for a in done.executed]
    assert executed.count("generate_textures") == 2
    assert (await engine.character("hero")).state == done.state

    with pytest.raises(BadRequest, match="already running"):
        await engine.start_character("hero", "character", start)
    with pytest.raises(UnknownDomain, match="no planning domain named 'nope'"):
        await engine.start_character("ghost", "nope", {})
    assert await engine.characters() == ["hero"]  # nothing stored or started for it
    failed = character.new_character("poor", "mage", budget=2)
    await engine.start_character("poor", "character", failed)
    with pytest.raises(PlanningFailed):
        await engine.achieve("poor", [("published", "poor", True)])
    assert (await engine.character("poor")).phase == "failed"

    await engine.stop_character("poor")
    assert await engine.characters() == ["hero"]


async def test_a_character_run_records_its_spans(engine: Engine) -> None:
    start = character.new_character("hero", "mage", fault="generate_textures")
    await engine.start_character("hero", "character", start)
    assert (await engine.character("hero", spans=True)).spans == []
    done = await engine.achieve("hero", [("published", "hero", True)], spans=True)
    assert done.trace is not None
    assert done.spans_omitted == 0
    spans = done.spans
    assert spans
    assert not check_tree(spans)
    assert {s.trace for s in spans} == {done.trace}
    roots = [s for s in spans if s.parent is None]
    assert [(r.kind, r.outcome) for r in roots] == [("acting", "ok")]
    plans = [s for s in spans if s.kind in ("plan", "replan")]
    assert [(s.kind, s.parent) for s in plans] == [("plan", roots[0].id), ("replan", roots[0].id)]
    assert [s.outcome for s in plans] == ["failed", "ok"]  # the surprise broke the first
    commands = [s for s in spans if s.kind == "command"]
    assert [s.name for s in commands] == [f"c_{a[0]}" for a in done.executed]
    assert all(s.outcome == "ok" and s.parent in {p.id for p in plans} for s in commands)
    # the search ran in the pool, which logged it: its spans are replayed under each plan,
    # and the actions it kept are the plan's (no predicted duplicates)
    tops = {s.parent for s in spans if s.kind == "task" and s.parent in {p.id for p in plans}}
    assert tops == {p.id for p in plans}
    final = [s for s in spans if s.kind == "action" and s.outcome == "ok"]
    assert all("predicted" not in s.attributes for s in final)

    again = await engine.achieve("hero", [("published", "hero", True)], spans=True)
    assert again.trace not in (None, done.trace)  # nothing to do this time
    assert [s.kind for s in again.spans] == ["plan", "acting"]
    assert (await engine.character("hero")).trace == again.trace


async def test_spans_come_only_when_asked_and_bounded(engine: Engine) -> None:
    start = character.new_character("hero", "mage", fault="generate_textures")
    await engine.start_character("hero", "character", start)
    done = await engine.achieve("hero", [("published", "hero", True)])
    assert done.spans == []  # not asked for
    assert done.spans_omitted == 0
    assert done.trace is not None
    plain = await engine.character("hero")
    assert (plain.spans, plain.spans_omitted, plain.trace) == ([], 0, done.trace)

    every = await engine.character("hero", spans=True)
    assert len(every.spans) > 3
    assert every.spans_omitted == 0
    assert {s.trace for s in every.spans} == {done.trace}

    few = await engine.character("hero", spans=True, max_spans=3)
    assert few.spans == every.spans[-3:]  # the newest: the acting root ends last
    assert few.spans_omitted == len(every.spans) - 3
    assert few.spans[-1].kind == "acting"

    for bad in (0, -1, MAX_REPLY_SPANS + 1):
        with pytest.raises(BadRequest, match=f"max_spans must be 1..{MAX_REPLY_SPANS}"):
            await engine.character("hero", spans=True, max_spans=bad)
    with pytest.raises(BadRequest, match="max_spans"):
        await engine.achieve("hero", [("published", "hero", True)], max_spans=0)
    assert (await engine.character("hero")).phase == "done"  # the actor kept running


async def test_a_crashed_character_is_restarted_with_its_stored_state(
    engine: Engine, node: Node
) -> None:
    start = blocks.state_of({"a": "b", "b": "table"})
    await engine.start_character("stacker", "blocks", start)
    done = await engine.achieve("stacker", [("pos", "b", "a")])
    assert done.state["pos"] == {"a": "table", "b": "a"}

    ref = node.whereis("aria_engine.character.stacker")
    assert ref is not None
    ref._proc.kill()  # type: ignore[attr-defined]
    await ref.wait()

    async def back() -> bool:
        new = node.whereis("aria_engine.character.stacker")
        return new is not None and new != ref and new.is_alive()

    await eventually(back)
    status = await engine.character("stacker")
    assert status.phase == "done"
    assert status.state == done.state
    assert status.executed == done.executed
    assert status.todo == [["pos", "b", "a"]]
    assert status.trace == done.trace
    again = await engine.achieve("stacker", [("pos", "a", "b")])
    assert again.state["pos"] == {"a": "b", "b": "table"}
    assert again.trace not in (None, done.trace)  # the run count survived too
