"""The planner reports its search to a SearchTracer: task, method and action spans."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aria_actors.services.engine import (
    STRATEGIES,
    BudgetExceeded,
    Cancelled,
    CancelToken,
    Domain,
    Planner,
    PlanningFailed,
    State,
    find_plan,
)
from aria_actors.services.engine.acting import act
from aria_actors.services.engine.spans import (
    PlannerSpanTracer,
    Span,
    SpanRecorder,
    check_tree,
)

from .acting_domain import World, edge, make_domain, make_state
from .endless_domain import endless
from .test_planner import backtracking_domain, start

DFS = ("recursive_dfs", "iterative_dfs_backtracking", "iterative_greedy")


class Recording:
    """A SearchTracer writing down every call (tokens count up from 1)."""

    def __init__(self) -> None:
        self.events: list[tuple[Any, ...]] = []
        self._tokens = itertools.count(1)

    def on_item(self, item: Any, kind: str, parent: int | None) -> int:
        token = next(self._tokens)
        self.events.append(("item", item, kind, parent, token))
        return token

    def on_method(self, item_token: int, method: str, subitems: Sequence[Any] | None) -> int:
        token = next(self._tokens)
        subs = None if subitems is None else list(subitems)
        self.events.append(("method", item_token, method, subs, token))
        return token

    def on_action(self, item: Any, parent: int | None, applied: bool) -> None:
        self.events.append(("action", item, parent, applied))

    def on_backtrack(self, method_token: int) -> None:
        self.events.append(("backtrack", method_token))

    def on_end(self, found: bool) -> None:
        self.events.append(("end", found))


def traced(
    domain: Domain, state: State, todo: list[Any], strategy: Any = "iterative_dfs_backtracking"
) -> tuple[Any, list[Span], int]:
    """Plan with a PlannerSpanTracer under a root ``plan`` span: (plan, spans, root id)."""
    clock = itertools.count(0.0, 1.0)
    rec = SpanRecorder("t", clock=lambda: next(clock))
    root = rec.start("plan", "plan")
    plan = Planner(domain, strategy).find_plan(state, todo, tracer=PlannerSpanTracer(rec, root))
    root.end("ok")
    return plan, rec.spans, root.id


def test_traced_plan_is_a_tree_of_tasks_methods_and_actions() -> None:
    plan, spans, root = traced(make_domain(), make_state(), [("deliver", "robot", "parcel", "c")])
    assert not check_tree(spans)
    by_id = {s.id: s for s in spans}
    children: dict[int, list[Span]] = {s.id: [] for s in spans}
    for s in spans:
        if s.parent is not None:
            children[s.parent].append(s)
    tasks = [s for s in spans if s.kind == "task"]
    assert [t.name for t in tasks if t.parent == root] == ["deliver"]
    for t in tasks:
        assert t.outcome == "ok"
        assert children[t.id]
        assert all(c.kind == "method" for c in children[t.id])
    methods = [s for s in spans if s.kind == "method"]
    assert {m.name for m in methods} == {"m_deliver", "m_goto"}
    assert all(by_id[m.parent].kind == "task" for m in methods if m.parent is not None)
    actions = [s for s in spans if s.kind == "action"]
    assert all(not children[a.id] for a in actions)  # leaves
    assert all(by_id[a.parent].kind == "method" for a in actions if a.parent is not None)
    applied = [
        (a.name, *eval(str(a.attributes["args"])))
        for a in sorted(actions, key=lambda a: a.id)  # ids grow in the order spans start
        if a.outcome == "ok"
    ]
    assert applied == plan.as_list()


@pytest.mark.parametrize("strategy", ["recursive_dfs", "iterative_dfs_backtracking"])
def test_backtracking_marks_the_abandoned_method(strategy: Any) -> None:
    plan, spans, _ = traced(backtracking_domain(), start(), [("put_it",), ("need1",)], strategy)
    assert plan.as_list() == [("putv", 1), ("need", 1)]
    assert not check_tree(spans)
    outcome = {(s.kind, s.name): [] for s in spans}  # type: dict[tuple[str, str], list[str]]
    for s in spans:
        outcome[(s.kind, s.name)].append(s.outcome)
    assert outcome[("method", "m_put0")] == ["failed"]  # backtracked over
    assert outcome[("method", "m_put1")] == ["ok"]
    # need1 was refined on the abandoned branch too: that refinement is marked failed
    assert sorted(outcome[("method", "lambda_free_need1")]) == ["failed", "ok"]
    assert sorted(outcome[("action", "putv")]) == ["failed", "ok"]
    assert sorted(outcome[("action", "need")]) == ["failed", "ok"]
    # ... and so is the top-level need1 task it refined, though no backtracked method is
    # its ancestor: only the task refined on the final branch is part of the plan.
    assert sorted(outcome[("task", "need1")]) == ["failed", "ok"]
    assert outcome[("task", "put_it")] == ["ok"]
    assert all(
        s.attributes["failure"] in ("inapplicable", "backtracked")
        for s in spans
        if s.outcome == "failed"
    )


def test_tracer_sees_the_protocol_calls_in_order() -> None:
    tracer = Recording()
    Planner(backtracking_domain()).find_plan(start(), [("put_it",), ("need1",)], tracer=tracer)
    assert tracer.events == [
        ("item", ("put_it",), "task", None, 1),
        ("method", 1, "m_put0", [("putv", 0)], 2),
        ("action", ("putv", 0), 2, True),
        ("item", ("need1",), "task", None, 3),
        ("method", 3, "lambda_free_need1", [("need", 1)], 4),
        ("action", ("need", 1), 4, False),
        ("backtrack", 2),
        ("backtrack", 4),
        ("method", 1, "m_put1", [("putv", 1)], 5),
        ("action", ("putv", 1), 5, True),
        ("item", ("need1",), "task", None, 6),
        ("method", 6, "lambda_free_need1", [("need", 1)], 7),
        ("action", ("need", 1), 7, True),
        ("end", True),
    ]


def test_inapplicable_methods_are_reported_with_none() -> None:
    d = Domain("d")
    d.declare_actions(backtracking_domain().actions["putv"])
    d.declare_task_methods("t", lambda s: None, lambda s: [("putv", 3)])
    tracer = Recording()
    Planner(d).find_plan(start(), [("t",)], tracer=tracer)
    assert [e for e in tracer.events if e[0] == "method"] == [
        ("method", 1, "<lambda>", None, 2),
        ("method", 1, "<lambda>", [("putv", 3)], 3),
    ]


def test_goals_are_items_with_their_kind() -> None:
    tracer = Recording()
    plan = find_plan(
        make_domain(), make_state(), [("loc", "robot", "c"), ("loc", "robot", "c")], tracer=tracer
    )
    assert plan.as_list() == [("move", "robot", "a", "b"), ("move", "robot", "b", "c")]
    items = [e for e in tracer.events if e[0] == "item"]
    assert [(e[1], e[2]) for e in items] == [
        (("loc", "robot", "c"), "unigoal"),
        (("goto", "robot", "c"), "task"),
    ]  # the second goal already holds: no choice point, no item


def test_greedy_dead_end_fails_every_span() -> None:
    clock = itertools.count(0.0, 1.0)
    rec = SpanRecorder("t", clock=lambda: next(clock))
    root = rec.start("plan", "plan")
    with pytest.raises(PlanningFailed):
        Planner(backtracking_domain(), "iterative_greedy").find_plan(
            start(), [("put_it",), ("need1",)], tracer=PlannerSpanTracer(rec, root)
        )
    root.end("failed")
    spans = rec.spans
    assert not check_tree(spans)
    assert all(s.outcome == "failed" for s in spans)
    assert {s.name for s in spans if s.kind == "method"} == {"m_put0", "lambda_free_need1"}


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_on_end_is_called_when_the_search_raises(strategy: Any) -> None:
    tracer = Recording()
    with pytest.raises(BudgetExceeded):
        Planner(endless, strategy, max_expansions=50).find_plan(
            State("s"), [("choose", 0)], tracer=tracer
        )
    assert tracer.events[-1] == ("end", False)
    token = CancelToken()
    token.cancel()
    tracer = Recording()
    # (greedy dead-ends after 122 expansions, before the first look at the token)
    with pytest.raises(PlanningFailed if strategy == "iterative_greedy" else Cancelled):
        Planner(endless, strategy).find_plan(
            State("s"), [("choose", 0)], cancel=token, tracer=tracer
        )
    assert tracer.events[-1] == ("end", False)
    tracer = Recording()
    with pytest.raises(PlanningFailed):
        Planner(backtracking_domain(), strategy).find_plan(start(), [("need1",)], tracer=tracer)
    assert tracer.events[-1] == ("end", False)


# -- tracing never changes the plan -----------------------------------------------------------

PLACES = "abcdef"
EDGES = [edge(x, y) for x, y in itertools.combinations(PLACES, 2)]


def outcome(planner: Planner, state: State, todo: list[Any], tracer: Any) -> Any:
    try:
        plan = planner.find_plan(state.copy(), todo, tracer=tracer)
    except PlanningFailed:
        return "no plan"
    return plan.as_list(), plan.cost, plan.expansions


@settings(max_examples=60, deadline=None)
@given(
    open_edges=st.sets(st.sampled_from(EDGES)),
    robot=st.sampled_from(PLACES),
    parcel=st.sampled_from(PLACES),
    goal=st.sampled_from(PLACES),
    strategy=st.sampled_from(STRATEGIES),
)
def test_tracing_does_not_change_the_courier_plan(
    open_edges: set[str], robot: str, parcel: str, goal: str, strategy: Any
) -> None:
    state = State(
        "world",
        loc={"robot": robot},
        holding={"robot": None},
        at={"parcel": parcel},
        open=dict.fromkeys(open_edges, True),
    )
    todo = [("deliver", "robot", "parcel", goal), ("loc", "robot", robot)]
    planner = Planner(make_domain(), strategy, max_expansions=5_000)
    untraced = outcome(planner, state, todo, None)
    assert outcome(planner, state, todo, Recording()) == untraced
    rec = SpanRecorder("t")
    root = rec.start("plan", "plan")
    assert outcome(planner, state, todo, PlannerSpanTracer(rec, root)) == untraced
    root.end()
    assert not check_tree(rec.spans)


@settings(max_examples=60, deadline=None)
@given(
    todo=st.lists(st.sampled_from([("put_it",), ("need1",), ("putv", 0), ("need", 1)])),
    strategy=st.sampled_from(STRATEGIES),
)
def test_tracing_does_not_change_the_backtracking_plan(todo: list[Any], strategy: Any) -> None:
    planner = Planner(backtracking_domain(), strategy, max_expansions=5_000)
    untraced = outcome(planner, start(), todo, None)
    tracer = Recording()
    assert outcome(planner, start(), todo, tracer) == untraced
    assert tracer.events[-1] == ("end", untraced != "no plan")


# -- acting ---------------------------------------------------------------------------------


@pytest.mark.parametrize("plan_in_thread", [True, False])
async def test_acting_records_the_search_under_each_plan_span(plan_in_thread: bool) -> None:
    domain = make_domain()
    world = World(domain, make_state())
    world.fail("c_move", ("robot", "b", "c"), 1, ("open", edge("b", "c"), False))
    rec = SpanRecorder("run")
    await act(
        domain, Planner(domain), make_state(), [("deliver", "robot", "parcel", "c")], world,
        spans=rec, plan_in_thread=plan_in_thread,
    )  # fmt: skip
    spans = rec.spans
    assert not check_tree(spans)
    plans = [s for s in spans if s.kind in ("plan", "replan")]
    assert len(plans) == 2
    for plan in plans:
        tasks = [s for s in spans if s.kind == "task" and s.parent == plan.id]
        assert [t.name for t in tasks] == ["deliver"]
        methods = [s for s in spans if s.kind == "method" and s.parent == tasks[0].id]
        assert [m.name for m in methods] == ["m_deliver"]
