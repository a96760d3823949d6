"""aria_engine's Prometheus metrics, read in the text form a scrape gets, after real
work; and the planner pool refusing requests when full (``EngineBusy``), callers'
timeouts freeing their places."""

from __future__ import annotations

import asyncio
from pathlib import Path

import prometheus_client
import pytest
from prometheus_client.parser import text_string_to_metric_families

from aria_actors import CallTimeout, Node
from aria_actors.services.engine import BudgetExceeded, PlanningFailed
from aria_actors.services.engine.client import Engine
from aria_actors.services.engine.domains import blocks, character
from aria_actors.services.engine.errors import EngineBusy
from aria_actors.services.engine.wire import UnknownDomain

from .test_service import ENDLESS, engine_node, eventually
from .test_service_persistence import HOOKS, RELAY, START, steps

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(node: Node) -> Samples:
    """Every sample of the node's registry, parsed from the Prometheus text format."""
    text = prometheus_client.generate_latest(node.metrics).decode()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def plans(samples: Samples, outcome: str) -> float:
    return value(samples, "aria_engine_plans_total", outcome=outcome)


async def test_engine_metrics_count_real_work(tmp_path: Path) -> None:
    modules = [ENDLESS, RELAY]
    async with engine_node(tmp_path / "state", pool="thread", pool_size=2, modules=modules) as node:
        engine = Engine(node)
        before = scrape(node)
        assert value(before, "aria_engine_pool_size") == 2
        assert value(before, "aria_engine_pool_busy") == 0
        assert value(before, "aria_engine_characters_active") == 0

        start, goal = blocks.random_problem(6, 1)
        for _ in range(3):
            await engine.plan("blocks", start, [goal])
        with pytest.raises(PlanningFailed):
            await engine.plan("blocks", blocks.state_of({"a": "table"}), [("pos", "a", "zz")])
        with pytest.raises(BudgetExceeded):
            await engine.plan("endless", {}, [("choose", 0)], max_expansions=500)
        with pytest.raises(BudgetExceeded, match="timeout"):
            await engine.plan("endless", {}, [("choose", 0)], timeout=0.1)
        with pytest.raises(UnknownDomain):
            await engine.plan("nope", {}, [])
        with pytest.raises(CallTimeout):
            await engine.plan("endless", {}, [("choose", 0)], call_timeout=0.2)
        await eventually(lambda: _pool_idle(engine))

        hero = character.new_character("hero", "mage", fault="generate_textures")
        await engine.start_character("hero", "character", hero)
        done = await engine.achieve("hero", [("published", "hero", True)])
        assert done.replans == 1

        after = scrape(node)
        assert value(after, "aria_engine_plan_requests_total") == 8 + 2  # + the character's
        assert plans(after, "succeeded") == 3 + 2
        assert plans(after, "failed") == 1
        assert plans(after, "budget_exceeded") == 1
        assert plans(after, "timed_out") == 1
        assert plans(after, "bad_request") == 1
        assert plans(after, "abandoned") == 1
        assert plans(after, "refused") == 0
        searched = value(after, "aria_engine_planning_seconds_count", domain="blocks")
        assert searched == 4
        assert value(after, "aria_engine_planning_seconds_count", domain="endless") == 3
        assert value(after, "aria_engine_planning_seconds_count", domain="character") == 2
        inf = value(after, "aria_engine_planning_seconds_bucket", domain="blocks", le="+Inf")
        assert inf == searched
        assert value(after, "aria_engine_plan_wait_seconds_count") == 3 + 4 + 2
        assert value(after, "aria_engine_pool_busy") == 0
        assert value(after, "aria_engine_pool_waiting") == 0

        assert value(after, "aria_engine_characters_active") == 1
        executed = len(done.executed)
        assert value(after, "aria_engine_commands_total", outcome="ok") == executed
        assert value(after, "aria_engine_commands_total", outcome="failed") == 0
        assert value(after, "aria_engine_replans_total") == 1  # the fault surprised it
        assert value(after, "aria_engine_acting_runs_total", outcome="done") == 1
        assert value(after, "aria_engine_character_save_errors_total") == 0

        def fail_once() -> None:
            raise OSError("the relay dropped the baton")

        await engine.start_character("runner", "relay", START)
        HOOKS["hero.2"] = fail_once  # the command raises once: a failure, then a replan
        relayed = await engine.achieve("runner", [("steps", "hero", 3)])
        assert relayed.executed == steps(1, 2, 3)
        assert relayed.replans == 1
        later = scrape(node)
        assert value(later, "aria_engine_commands_total", outcome="ok") == executed + 3
        assert value(later, "aria_engine_commands_total", outcome="failed") == 1
        assert value(later, "aria_engine_replans_total") == 2

        poor = character.new_character("poor", "mage", budget=2)
        await engine.start_character("poor", "character", poor)
        with pytest.raises(PlanningFailed):
            await engine.achieve("poor", [("published", "poor", True)])
        later = scrape(node)
        assert value(later, "aria_engine_acting_runs_total", outcome="failed") == 1
        assert value(later, "aria_engine_acting_runs_total", outcome="done") == 2
        assert value(later, "aria_engine_characters_active") == 3
        await engine.stop_character("poor")
        assert value(scrape(node), "aria_engine_characters_active") == 2


async def _pool_idle(engine: Engine) -> bool:
    stats = await engine.pool_stats()
    return stats.running == 0 and stats.waiting == 0


@pytest.fixture(params=["process", "thread"])
def pool(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def test_a_full_pool_refuses_with_engine_busy_and_timeouts_free_it(
    tmp_path: Path, pool: str
) -> None:
    settings = {"pool_size": 1, "max_waiting": 1, "max_expansions": 10**12}  # no budget
    async with engine_node(tmp_path / "state", pool=pool, **settings) as node:
        engine = Engine(node)
        start, goal = blocks.random_problem(5, 0)
        await engine.plan("blocks", start, [goal])  # workers up

        # the slot: a search that never ends, until its caller's timeout
        hog = asyncio.create_task(engine.plan("endless", {}, [("choose", 0)], call_timeout=4.0))
        await eventually(lambda: _stats_are(engine, running=1, waiting=0))
        # the queue (max_waiting = 1): a plan whose caller gives up first
        queued = asyncio.create_task(engine.plan("blocks", start, [goal], call_timeout=2.0))
        await eventually(lambda: _stats_are(engine, running=1, waiting=1))
        samples = scrape(node)
        assert value(samples, "aria_engine_pool_busy") == 1
        assert value(samples, "aria_engine_pool_waiting") == 1

        limit = r"pool_size \+ max_waiting = 1 \+ 1 = 2 plan requests"
        with pytest.raises(EngineBusy, match=limit) as caught:
            await engine.plan("blocks", start, [goal])
        assert "services.aria_engine.max_waiting" in str(caught.value)
        # several at once: the requests are counted as they are taken, not later
        results = await asyncio.gather(
            *(engine.plan("blocks", start, [goal]) for _ in range(3)), return_exceptions=True
        )
        assert all(isinstance(r, EngineBusy) for r in results)
        assert plans(scrape(node), "refused") == 4

        with pytest.raises(CallTimeout):
            await queued  # its caller's timeout frees its place in the queue ...
        await eventually(lambda: _stats_are(engine, running=1, waiting=0))
        retry = asyncio.create_task(engine.plan("blocks", start, [goal]))
        await eventually(lambda: _stats_are(engine, waiting=1))
        with pytest.raises(CallTimeout):
            await hog  # ... and the hog's frees the slot: the retry gets it
        assert (await retry).actions
        await eventually(lambda: _pool_idle(engine))
        stats = await engine.pool_stats()
        assert stats.cancelled == 2
        samples = scrape(node)
        assert plans(samples, "abandoned") == 2
        assert plans(samples, "refused") == 4
        assert value(samples, "aria_engine_pool_busy") == 0
        assert value(samples, "aria_engine_pool_waiting") == 0


async def _stats_are(engine: Engine, **wanted: int) -> bool:
    stats = await engine.pool_stats()
    return all(getattr(stats, k) == v for k, v in wanted.items())
