"""Optimising strategies report how the plan they return decomposes (planner.py ``_derive``)."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from aria_actors.services.engine import Domain, Planner, PlanningFailed, State
from aria_actors.services.engine.spans import PlannerSpanTracer, SpanRecorder, check_tree

from .test_planner import backtracking_domain, start
from .test_planner_tracing import Recording


def priced_domain() -> Domain:
    """Two ways to travel: the first method is dear (cost 10), the second cheap (2 x 1)."""
    d = Domain("priced")

    def fly(s: State, to: str) -> State:
        s.at["me"] = to
        return s

    def walk(s: State, to: str) -> State:
        s.at["me"] = to
        return s

    d.declare_actions(fly, cost=10.0)
    d.declare_actions(walk, cost=1.0)

    def by_air(s: State, to: str) -> list[Any]:
        return [("fly", to)]

    def on_foot(s: State, to: str) -> list[Any]:
        return [("walk", "halfway"), ("walk", to)]

    d.declare_task_methods("go", by_air, on_foot)
    return d


@pytest.mark.parametrize("strategy", ["branch_and_bound", "best_first"])
def test_optimising_strategies_report_the_derivation_of_their_plan(strategy: Any) -> None:
    tracer = Recording()
    plan = Planner(priced_domain(), strategy).find_plan(
        State("s", at={"me": "home"}), [("go", "park")], tracer=tracer
    )
    assert plan.as_list() == [("walk", "halfway"), ("walk", "park")]
    assert plan.optimal
    # The derivation: the dear method is tried first and its action refused (it would
    # leave the plan found), then the cheap one; every action of the plan is reported.
    assert tracer.events == [
        ("item", ("go", "park"), "task", None, 1),
        ("method", 1, "by_air", [("fly", "park")], 2),
        ("action", ("fly", "park"), 2, False),
        ("backtrack", 2),
        ("method", 1, "on_foot", [("walk", "halfway"), ("walk", "park")], 3),
        ("action", ("walk", "halfway"), 3, True),
        ("action", ("walk", "park"), 3, True),
        ("end", True),
    ]


@pytest.mark.parametrize("strategy", ["branch_and_bound", "best_first"])
def test_optimising_spans_form_a_tree_and_failures_report_only_the_end(strategy: Any) -> None:
    clock = itertools.count(0.0, 1.0)
    rec = SpanRecorder("t", clock=lambda: next(clock))
    root = rec.start("plan", "plan")
    Planner(backtracking_domain(), strategy).find_plan(
        start(), [("put_it",), ("need1",)], tracer=PlannerSpanTracer(rec, root)
    )
    root.end("ok")
    assert not check_tree(rec.spans)
    actions = sorted(
        (s for s in rec.spans if s.kind == "action" and s.outcome == "ok"), key=lambda s: s.start
    )
    assert [s.name for s in actions] == ["putv", "need"]
    tracer = Recording()
    with pytest.raises(PlanningFailed):
        Planner(backtracking_domain(), strategy, cost_bound=0.5).find_plan(
            start(), [("put_it",), ("need1",)], tracer=tracer
        )
    assert tracer.events == [("end", False)]
