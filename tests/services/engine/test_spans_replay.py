"""A search logged where it runs (SearchLog) and replayed where the spans are recorded
(replay_search) gives the spans a tracer watching the search itself would have made."""

from __future__ import annotations

import contextlib
import itertools
from typing import Any

import pytest

from aria_actors.services.engine import Planner, PlanningFailed, State
from aria_actors.services.engine.domains import blocks
from aria_actors.services.engine.spans import (
    PlannerSpanTracer,
    SearchLog,
    Span,
    SpanRecorder,
    check_tree,
    replay_search,
)

from .test_planner import backtracking_domain, start


def shape(spans: list[Span]) -> list[tuple[Any, ...]]:
    """The spans without ids and times: name, kind, outcome, attributes, parent's name."""
    by_id = {s.id: s for s in spans}
    return sorted(
        (
            s.name,
            s.kind,
            s.outcome,
            sorted(s.attributes.items()),
            by_id[s.parent].name if s.parent in by_id else None,
        )
        for s in spans
    )


def watched(planner: Planner, state: State, todo: list[Any]) -> list[Span]:
    rec = SpanRecorder("t")
    root = rec.start("plan", "plan")
    with contextlib.suppress(PlanningFailed):
        planner.find_plan(state, todo, tracer=PlannerSpanTracer(rec, root))
    root.end("ok")
    return rec.spans


def logged(planner: Planner, state: State, todo: list[Any]) -> list[Span]:
    log = SearchLog(100_000, clock=itertools.count(1000.0).__next__)
    with contextlib.suppress(PlanningFailed):
        planner.find_plan(state, todo, tracer=log)
    assert log.events is not None
    rec = SpanRecorder("t", clock=lambda: 0.0)
    root = rec.start("plan", "plan")
    replay_search(log.events, PlannerSpanTracer(rec, root))
    rec.clock = lambda: 1e9
    root.end("ok")
    return rec.spans


@pytest.mark.parametrize(
    "strategy", ["iterative_dfs_backtracking", "iterative_greedy", "branch_and_bound"]
)
@pytest.mark.parametrize(
    "todo", [[("put_it",), ("need1",)], [("need1",)], [("put_it",)]], ids=["bt", "fail", "ok"]
)
def test_a_replayed_search_has_the_spans_of_a_watched_one(todo: list[Any], strategy: Any) -> None:
    planner = Planner(backtracking_domain(), strategy)
    direct = watched(planner, start(), todo)
    replayed = logged(planner, start(), todo)
    assert shape(replayed) == shape(direct)
    assert not check_tree(replayed)
    # the times the search recorded, not the replay's
    assert all(s.start >= 1000.0 for s in replayed if s.kind != "plan")
    assert len(replayed) > 1 or (strategy == "branch_and_bound" and todo == [("need1",)])


def test_a_blocks_search_replays_too() -> None:
    planner = Planner(blocks.domain())
    state = blocks.state_of({"a": "b", "b": "c", "c": "table"})
    todo = [("pos", "c", "a"), ("pos", "a", "table")]
    assert shape(logged(planner, state.copy(), todo)) == shape(watched(planner, state, todo))


def test_a_long_search_log_is_dropped_whole() -> None:
    log = SearchLog(5)
    Planner(backtracking_domain()).find_plan(start(), [("put_it",), ("need1",)], tracer=log)
    assert log.truncated
    assert log.events is None
    assert log.seen > 5


@pytest.mark.parametrize(
    "events",
    [
        [["item", 1, None, "t", "('t',)", "task"]],  # no time
        [["method", 2, 99, "m", 1, 0.0]],  # an item never given
        [["teleport", 0.0]],
        [["method", 2, None, "m", "three", 0.0]],
    ],
)
def test_malformed_logs_are_refused(events: list[list[Any]]) -> None:
    rec = SpanRecorder("t")
    with pytest.raises(ValueError, match="malformed search event"):
        replay_search(events, PlannerSpanTracer(rec, None))
