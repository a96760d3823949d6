"""Planner spans tell the truth: ``ok`` only for what is in the plan; the tracer's
``abandon`` path; ``check_tree`` catching what is not a tree."""

from __future__ import annotations

import itertools
import math
import threading
from collections.abc import Sequence
from typing import Any, get_args

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aria_actors.services.engine import Domain, Planner, PlanningFailed, State
from aria_actors.services.engine.spans import (
    PlannerFailure,
    PlannerSpanTracer,
    Span,
    SpanRecorder,
    check_tree,
)

from .acting_domain import edge, make_domain
from .test_planner import backtracking_domain, m_put0, m_put1, need, putv, start

DFS = ("recursive_dfs", "iterative_dfs_backtracking")


def tick(s: State) -> State:
    s.flag["ticks"] = s.flag.get("ticks", 0) + 1
    return s


def m_top(s: State) -> list[Any]:
    return [("put_it",), ("need1",)]


def m_need1(s: State) -> list[Any]:
    return [("need", 1)]


def nested_domain() -> Domain:
    """``top`` → [put_it, need1]: put_it's first method dooms need1, inside ``m_top``."""
    d = Domain("nested")
    d.declare_actions(putv, need, tick)
    d.declare_task_methods("top", m_top)
    d.declare_task_methods("put_it", m_put0, m_put1)
    d.declare_task_methods("need1", m_need1)
    return d


def traced(
    domain: Domain, todo: list[Any], strategy: Any, state: State | None = None
) -> tuple[Any, list[Span], int]:
    """(plan or the PlanningFailed raised, the spans, the root ``plan`` span's id)."""
    clock = itertools.count(0.0, 1.0)
    rec = SpanRecorder("t", clock=lambda: next(clock))
    root = rec.start("plan", "plan")
    tracer = PlannerSpanTracer(rec, root)
    result: Any
    try:
        result = Planner(domain, strategy).find_plan(
            start() if state is None else state, todo, tracer=tracer
        )
    except PlanningFailed as e:
        result = e
    root.end("ok")
    return result, rec.spans, root.id


def outcomes(spans: Sequence[Span], kind: str, name: str) -> list[tuple[str, Any]]:
    """(outcome, failure) of the spans of that kind and name, in the order they started."""
    return [
        (s.outcome, s.attributes.get("failure"))
        for s in sorted(spans, key=lambda s: s.id)
        if s.kind == kind and s.name == name
    ]


def assert_ok_spans_are_the_plan(plan: Any, spans: Sequence[Span], root: int) -> None:
    """The ``ok`` planner spans are exactly the decomposition that produced ``plan``."""
    by_id = {s.id: s for s in spans}
    children: dict[int, list[Span]] = {s.id: [] for s in spans}
    for s in spans:
        if s.parent is not None:
            children[s.parent].append(s)
    vocabulary = set(get_args(PlannerFailure))
    for s in spans:
        if s.id == root:
            continue
        if s.outcome == "ok":
            assert s.parent is not None, s
            assert s.parent == root or by_id[s.parent].outcome == "ok", s
            if s.kind == "task":  # refined by exactly one method that stayed in the plan
                assert [c.outcome for c in children[s.id]].count("ok") == 1, s
        else:
            assert s.outcome == "failed"
            assert s.attributes["failure"] in vocabulary, s
            assert all(c.outcome == "failed" for c in children[s.id]), s
    applied = [
        (a.name, *eval(str(a.attributes["args"])))
        for a in sorted(spans, key=lambda s: s.id)
        if a.kind == "action" and a.outcome == "ok"
    ]
    assert applied == plan.as_list()


# -- outcomes -----------------------------------------------------------------------------------


@pytest.mark.parametrize("strategy", DFS)
def test_a_top_level_task_on_an_abandoned_branch_ends_failed(strategy: Any) -> None:
    plan, spans, root = traced(backtracking_domain(), [("put_it",), ("need1",)], strategy)
    assert plan.as_list() == [("putv", 1), ("need", 1)]
    assert not check_tree(spans)
    # need1 was first refined after m_put0, which was backtracked over: that task span
    # (top level, so not under the backtracked method) is not part of the plan.
    assert outcomes(spans, "task", "need1") == [("failed", "backtracked"), ("ok", None)]
    assert outcomes(spans, "task", "put_it") == [("ok", None)]
    assert outcomes(spans, "method", "m_put0") == [("failed", "backtracked")]
    assert outcomes(spans, "action", "need") == [("failed", "inapplicable"), ("ok", None)]
    assert_ok_spans_are_the_plan(plan, spans, root)


@pytest.mark.parametrize("strategy", DFS)
def test_a_nested_task_abandoned_under_a_method_that_stays_ends_failed(strategy: Any) -> None:
    plan, spans, root = traced(nested_domain(), [("top",)], strategy)
    assert plan.as_list() == [("putv", 1), ("need", 1)]
    assert not check_tree(spans)
    assert outcomes(spans, "method", "m_top") == [("ok", None)]
    # Both need1 spans sit under m_top, which stays in the plan; the first was refined
    # on the branch of m_put0 and must not pass for part of the plan.
    need1 = [s for s in spans if s.name == "need1"]
    assert {by_parent.parent for by_parent in need1} == {
        next(s.id for s in spans if s.name == "m_top")
    }
    assert outcomes(spans, "task", "need1") == [("failed", "backtracked"), ("ok", None)]
    assert_ok_spans_are_the_plan(plan, spans, root)


@pytest.mark.parametrize("strategy", DFS)
def test_a_top_level_action_on_an_abandoned_branch_ends_failed(strategy: Any) -> None:
    d = nested_domain()
    plan, spans, root = traced(d, [("put_it",), ("tick",), ("need1",)], strategy)
    assert plan.as_list() == [("putv", 1), ("tick",), ("need", 1)]
    assert not check_tree(spans)
    assert outcomes(spans, "action", "tick") == [("failed", "backtracked"), ("ok", None)]
    assert all(s.parent == root for s in spans if s.name == "tick")
    assert_ok_spans_are_the_plan(plan, spans, root)


def test_greedy_success_is_all_ok_but_what_did_not_apply() -> None:
    d = Domain("greedy")
    d.declare_actions(putv, need)
    d.declare_task_methods("t", lambda s: None, lambda s: [("putv", 3)])
    plan, spans, root = traced(d, [("t",)], "iterative_greedy")
    assert plan.as_list() == [("putv", 3)]
    assert [(s.kind, s.outcome, s.attributes.get("failure")) for s in spans[:-1]] == [
        ("action", "ok", None),
        ("method", "ok", None),
        ("method", "failed", "inapplicable"),
        ("task", "ok", None),
    ]
    assert_ok_spans_are_the_plan(plan, spans, root)


def test_greedy_dead_end_fails_every_span_saying_why() -> None:
    error, spans, root = traced(
        backtracking_domain(), [("put_it",), ("need1",)], "iterative_greedy"
    )
    assert isinstance(error, PlanningFailed)
    assert not check_tree(spans)
    search = [s for s in spans if s.id != root]
    assert {s.outcome for s in search} == {"failed"}
    assert outcomes(spans, "action", "need") == [("failed", "inapplicable")]
    assert {s.attributes["failure"] for s in search if s.name != "need"} == {"no_plan"}


def test_a_task_left_without_a_method_in_the_plan_is_unrefined() -> None:
    # Not something a depth-first planner reports with a plan found, but the tracer
    # must not call a task ok just because nothing failed it explicitly.
    rec = SpanRecorder("t")
    tracer = PlannerSpanTracer(rec)
    item = tracer.on_item(("t",), "task", None)
    tracer.on_method(item, "m_none", None)
    tracer.on_end(found=True)
    by_name = {s.name: s for s in rec.spans}
    assert (by_name["t"].outcome, by_name["t"].attributes["failure"]) == ("failed", "unrefined")
    assert by_name["m_none"].attributes["failure"] == "inapplicable"


PLACES = "abcd"
EDGES = [edge(x, y) for x, y in itertools.combinations(PLACES, 2)]


@settings(max_examples=60, deadline=None)
@given(
    todo=st.lists(
        st.sampled_from([("put_it",), ("need1",), ("putv", 0), ("need", 1), ("top",), ("tick",)]),
        max_size=6,
    ),
    strategy=st.sampled_from(("recursive_dfs", "iterative_dfs_backtracking", "iterative_greedy")),
)
def test_ok_spans_are_exactly_the_plan_backtracking(todo: list[Any], strategy: Any) -> None:
    plan, spans, root = traced(nested_domain(), todo, strategy)
    assert not check_tree(spans)
    if isinstance(plan, PlanningFailed):
        assert all(s.outcome == "failed" for s in spans if s.id != root)
    else:
        assert_ok_spans_are_the_plan(plan, spans, root)


@settings(max_examples=40, deadline=None)
@given(
    open_edges=st.sets(st.sampled_from(EDGES)),
    robot=st.sampled_from(PLACES),
    parcel=st.sampled_from(PLACES),
    goal=st.sampled_from(PLACES),
)
def test_ok_spans_are_exactly_the_plan_courier(
    open_edges: set[str], robot: str, parcel: str, goal: str
) -> None:
    state = State(
        "world",
        loc={"robot": robot},
        holding={"robot": None},
        at={"parcel": parcel},
        open=dict.fromkeys(open_edges, True),
    )
    todo = [("deliver", "robot", "parcel", goal), ("loc", "robot", robot)]
    plan, spans, root = traced(make_domain(), todo, "iterative_dfs_backtracking", state)
    assert not check_tree(spans)
    if not isinstance(plan, PlanningFailed):
        assert_ok_spans_are_the_plan(plan, spans, root)


# -- abandon ------------------------------------------------------------------------------------


class GatedSink:
    """Holds the first planner span it is given until ``gate`` opens."""

    def __init__(self) -> None:
        self.spans: list[Span] = []
        self.entered = threading.Event()
        self.gate = threading.Event()

    def emit(self, span: Span) -> None:
        if span.kind != "plan" and not self.entered.is_set():
            self.entered.set()
            assert self.gate.wait(10)
        self.spans.append(span)


def test_abandon_waits_for_an_on_end_in_progress() -> None:
    sink = GatedSink()
    clock = itertools.count(0.0, 1.0)
    rec = SpanRecorder("t", sink, clock=lambda: next(clock))
    root = rec.start("plan", "plan")
    tracer = PlannerSpanTracer(rec, root)
    item = tracer.on_item(("t",), "task", None)
    method = tracer.on_method(item, "m", [("a",)])
    tracer.on_action(("a",), method, applied=True)
    worker = threading.Thread(target=tracer.on_end, args=(True,))  # the search's thread
    worker.start()
    assert sink.entered.wait(10)  # on_end is emitting its spans

    def give_up() -> None:  # what acting does when it is cancelled mid-plan
        tracer.abandon()
        root.end("cancelled")

    caller = threading.Thread(target=give_up)
    caller.start()
    caller.join(0.2)  # without the wait, the parent span would end now, before its children
    sink.gate.set()
    worker.join(10)
    caller.join(10)
    assert not worker.is_alive()
    assert not caller.is_alive()
    assert [s.kind for s in sink.spans] == ["action", "method", "task", "plan"]
    assert not check_tree(sink.spans)


def test_abandoned_search_emits_nothing() -> None:
    rec = SpanRecorder("t")
    root = rec.start("plan", "plan")
    tracer = PlannerSpanTracer(rec, root)
    item = tracer.on_item(("t",), "task", None)
    tracer.on_method(item, "m", [])
    tracer.abandon()
    root.end("cancelled")
    tracer.on_item(("late",), "task", None)  # the worker goes on until it sees the token
    tracer.on_end(False)
    assert [s.kind for s in rec.spans] == ["plan"]
    assert tracer.started == 3


# -- check_tree ---------------------------------------------------------------------------------


def span(
    id: int, parent: int | None, start: float = 0.0, end: float = 1.0, trace: str = "t"
) -> Span:
    return Span(
        id=id, parent=parent, trace=trace, name=f"s{id}", kind="task",
        start=start, end=end, outcome="ok",
    )  # fmt: skip


def test_check_tree_finds_cycles_of_parents() -> None:
    root = span(1, None, 0, 10)
    problems = check_tree([root, span(2, 3, 1, 2), span(3, 2, 1, 2), span(4, 3, 1, 2)])
    assert problems == [
        "spans [2, 3] in trace t form a cycle of parents (each is its own ancestor)"
    ]
    assert check_tree([root, span(5, 5, 1, 2)]) == [
        "spans [5] in trace t form a cycle of parents (each is its own ancestor)"
    ]
    assert check_tree([root, span(2, 1, 1, 2), span(3, 2, 1, 2)]) == []


def test_check_tree_rejects_nan_times() -> None:
    problems = check_tree([span(1, None, 0, 10), span(2, 1, math.nan, 2)])
    assert any("start nan > end 2" in p for p in problems)
    assert any("not inside its parent" in p for p in problems)


def test_check_tree_lists_traces_in_order() -> None:
    spans = [span(1, None, trace=t) for t in "zyx"] + [span(2, None, trace=t) for t in "zyx"]
    assert check_tree(spans) == [f"trace {t} has 2 roots" for t in "xyz"]
