"""Acting's spans: the plan's actions recorded once, and bounded traces that say so."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest

from aria_actors.services.engine import STRATEGIES, CancelToken, Plan, Planner, State
from aria_actors.services.engine.acting import Acting, act
from aria_actors.services.engine.acting_errors import NoPlan
from aria_actors.services.engine.spans import (
    DEFAULT_SPAN_CAPACITY,
    MemorySpanSink,
    SearchTracer,
    Span,
    SpanRecorder,
    check_tree,
)

from .acting_domain import World, edge, make_domain, make_state
from .endless_domain import endless

DELIVER = [("deliver", "robot", "parcel", "c")]


def descendants(spans: Sequence[Span], root: int) -> list[Span]:
    """The spans under ``root``, in the order they started."""
    children: dict[int, list[Span]] = {}
    for s in spans:
        if s.parent is not None:
            children.setdefault(s.parent, []).append(s)
    out: list[Span] = []
    stack = [root]
    while stack:
        for child in children.get(stack.pop(), []):
            out.append(child)
            stack.append(child.id)
    return sorted(out, key=lambda s: s.id)


def plan_actions(spans: Sequence[Span], plan_span: Span) -> list[tuple[Any, ...]]:
    """The ``ok`` action spans under a plan span, as plan steps."""
    return [
        (s.name, *eval(str(s.attributes["args"])))
        for s in descendants(spans, plan_span.id)
        if s.kind == "action" and s.outcome == "ok"
    ]


# -- the plan's actions, once -------------------------------------------------------------------


@pytest.mark.parametrize("plan_in_thread", [True, False])
async def test_a_traced_search_records_no_predicted_duplicates(plan_in_thread: bool) -> None:
    domain = make_domain()
    world = World(domain, make_state())
    world.fail("c_move", ("robot", "b", "c"), 1, ("open", edge("b", "c"), False))
    rec = SpanRecorder("run")
    result = await act(
        domain, Planner(domain), make_state(), DELIVER, world,
        spans=rec, plan_in_thread=plan_in_thread,
    )  # fmt: skip
    spans = rec.spans
    assert not check_tree(spans)
    assert not [s for s in spans if "predicted" in s.attributes]
    plans = sorted((s for s in spans if s.kind in ("plan", "replan")), key=lambda s: s.id)
    assert len(plans) == 2
    # Each plan span holds its plan's actions exactly once: the search's ok actions.
    first, second = (plan_actions(spans, p) for p in plans)
    assert first == [
        ("move", "robot", "a", "b"),
        ("pickup", "robot", "parcel"),
        ("move", "robot", "b", "c"),  # fails: the replan goes round
        ("drop", "robot", "parcel"),
    ]
    assert list(result.executed[:2]) == first[:2]
    assert second == list(result.executed[2:])
    assert len(second) == plans[1].attributes["actions"]


async def test_a_plan_function_keeps_the_predicted_action_spans() -> None:
    domain = make_domain()
    world = World(domain, make_state())

    async def plan(state: State, todo: Sequence[Any]) -> Plan:
        await asyncio.sleep(0)
        return Planner(domain).find_plan(state, todo)

    rec = SpanRecorder("run")
    result = await act(domain, None, make_state(), DELIVER, world, plan=plan, spans=rec)
    spans = rec.spans
    assert not check_tree(spans)
    assert not [s for s in spans if s.kind in ("task", "method")]
    plan_span = next(s for s in spans if s.kind == "plan")
    predicted = [s for s in spans if s.kind == "action"]
    assert all(s.parent == plan_span.id and "predicted" in s.attributes for s in predicted)
    assert plan_actions(spans, plan_span) == list(result.executed)
    assert [s.attributes["step"] for s in predicted] == list(range(len(result.executed)))


class Stepless(Planner):
    """A planner whose search reports no steps to its tracer, only its end."""

    def find_plan(
        self,
        state: State,
        todo: Sequence[Any],
        *,
        cancel: CancelToken | None = None,
        tracer: SearchTracer | None = None,
    ) -> Plan:
        found = False
        try:
            plan = super().find_plan(state, todo, cancel=cancel)
            found = True
            return plan
        finally:
            if tracer is not None:
                tracer.on_end(found)


async def test_a_search_reporting_no_steps_keeps_the_predicted_spans() -> None:
    domain = make_domain()
    world = World(domain, make_state())
    rec = SpanRecorder("run")
    result = await act(domain, Stepless(domain), make_state(), DELIVER, world, spans=rec)
    plan_span = next(s for s in rec.spans if s.kind == "plan")
    assert not [s for s in rec.spans if s.kind in ("task", "method")]
    assert plan_actions(rec.spans, plan_span) == list(result.executed)
    assert all("predicted" in s.attributes for s in rec.spans if s.kind == "action")


@pytest.mark.parametrize("strategy", STRATEGIES)
async def test_every_strategy_records_the_plan_once(strategy: Any) -> None:
    domain = make_domain()
    world = World(domain, make_state())
    rec = SpanRecorder("run")
    result = await act(domain, Planner(domain, strategy), make_state(), DELIVER, world, spans=rec)
    plan_span = next(s for s in rec.spans if s.kind == "plan")
    assert plan_actions(rec.spans, plan_span) == list(result.executed)
    assert not check_tree(rec.spans)


# -- capacity -----------------------------------------------------------------------------------


async def test_a_small_capacity_drops_the_oldest_spans_and_says_how_many() -> None:
    domain = make_domain()
    world = World(domain, make_state())
    world.fail("c_move", ("robot", "b", "c"), 1, ("open", edge("b", "c"), False))
    whole = SpanRecorder("whole")
    await act(domain, Planner(domain), make_state(), DELIVER, world, spans=whole)
    total = len(whole.spans)
    assert whole.dropped == 0

    world = World(domain, make_state())
    world.fail("c_move", ("robot", "b", "c"), 1, ("open", edge("b", "c"), False))
    acting = Acting(domain, Planner(domain), make_state(), DELIVER, world, span_capacity=12)
    result = await acting.run()
    assert acting.spans.keep == 12
    assert len(acting.spans.spans) == 12
    assert result.dropped == acting.spans.dropped == total - 12 > 0
    kept = acting.spans.spans
    # The newest are kept: the root, the replan and its commands; what is kept is a tree.
    assert not check_tree(kept)
    assert kept[-1].kind == "acting"
    assert "replan" in {s.kind for s in kept}
    assert [s.name for s in kept] == [s.name for s in whole.spans[-12:]]


async def test_dropped_counts_only_the_runs_own_spans() -> None:
    domain = make_domain()
    rec = SpanRecorder("run", keep=5)
    for i in range(8):
        rec.start(f"before{i}", "event").end()
    assert rec.dropped == 3
    result = await act(
        domain, Planner(domain), make_state(), DELIVER, World(domain, make_state()), spans=rec
    )
    assert result.dropped == rec.dropped - 3
    assert result.dropped > 0


async def test_dropped_is_visible_after_a_failed_run() -> None:
    acting = Acting(
        endless, Planner(endless, max_expansions=40), State("s"), [("choose", 0)],
        World(endless, State("s")), span_capacity=3,
    )  # fmt: skip
    with pytest.raises(NoPlan):
        await acting.run()
    assert acting.spans.dropped > 0
    assert len(acting.spans.spans) == 3
    assert not check_tree(acting.spans.spans)


def test_span_capacity_is_checked() -> None:
    domain = make_domain()
    world = World(domain, make_state())
    planner = Planner(domain)
    with pytest.raises(ValueError, match="not both"):
        Acting(
            domain, planner, make_state(), DELIVER, world,
            spans=SpanRecorder("x"), span_capacity=5,
        )  # fmt: skip
    with pytest.raises(ValueError, match="span_capacity"):
        Acting(domain, planner, make_state(), DELIVER, world, span_capacity=0)
    default = Acting(domain, planner, make_state(), DELIVER, world)
    assert default.spans.keep == DEFAULT_SPAN_CAPACITY


async def test_a_shared_sink_counts_what_it_evicted() -> None:
    domain = make_domain()
    sink = MemorySpanSink(capacity=10)
    rec = SpanRecorder("run", sink)
    world = World(domain, make_state())
    await act(domain, Planner(domain), make_state(), DELIVER, world, spans=rec)
    stats = sink.statistics()
    assert stats.emitted == len(rec.spans) > 10
    assert (stats.buffered, stats.dropped) == (10, stats.emitted - 10)
    assert sink.spans() == rec.spans[-10:]
    assert not check_tree(sink.spans())


def test_clearing_a_memory_sink_is_not_dropping() -> None:
    sink = MemorySpanSink(capacity=5)
    rec = SpanRecorder("t", sink)
    for i in range(3):
        rec.start(f"s{i}", "task").end()
    sink.clear()
    assert sink.statistics().dropped == 0
    for i in range(7):
        rec.start(f"t{i}", "task").end()
    stats = sink.statistics()
    assert (stats.emitted, stats.buffered, stats.dropped) == (10, 5, 2)


# -- cancellation while the search runs in its thread -------------------------------------------


async def test_cancelled_search_in_a_thread_leaves_a_tree() -> None:
    rec = SpanRecorder("run")
    task = asyncio.ensure_future(
        act(
            endless,
            Planner(endless),
            State("s"),
            [("choose", 0)],
            World(endless, State("s")),
            spans=rec,
        )
    )
    await asyncio.sleep(0.05)  # the search is running in its worker thread
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    for _ in range(20):  # let the worker see its token and end (abandoned: emits nothing)
        await asyncio.sleep(0.01)
    assert [(s.kind, s.outcome) for s in rec.spans] == [
        ("plan", "cancelled"),
        ("acting", "cancelled"),
    ]
    assert not check_tree(rec.spans)
