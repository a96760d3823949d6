from __future__ import annotations

import contextlib
import io
import threading
from typing import Any

import pytest

from aria_actors.services.engine import (
    STRATEGIES,
    BudgetExceeded,
    Cancelled,
    CancelToken,
    Domain,
    GoalNotAchieved,
    MalformedReturn,
    Multigoal,
    Planner,
    PlanningFailed,
    State,
    find_plan,
    m_split_multigoal,
)

# -- a small domain with backtracking (like GTPyhop's backtracking_htn) ----------------------


def putv(s: State, v: int) -> State:
    s.flag["x"] = v
    return s


def need(s: State, v: int) -> State | bool:
    return s if s.flag["x"] == v else False


def m_put0(s: State) -> list[Any]:
    return [("putv", 0)]


def m_put1(s: State) -> list[Any]:
    return [("putv", 1)]


def backtracking_domain() -> Domain:
    d = Domain("bt")
    d.declare_actions(putv, need)
    d.declare_task_methods("put_it", m_put0, m_put1)
    d.declare_task_methods("need1", lambda_free_need1)
    return d


def lambda_free_need1(s: State) -> list[Any]:
    return [("need", 1)]


def start() -> State:
    return State("s", flag={"x": -1})


@pytest.mark.parametrize("strategy", ["recursive_dfs", "iterative_dfs_backtracking"])
def test_dfs_backtracks_to_the_next_method(strategy: Any) -> None:
    plan = Planner(backtracking_domain(), strategy).find_plan(start(), [("put_it",), ("need1",)])
    assert plan.as_list() == [("putv", 1), ("need", 1)]
    assert plan.cost == 2.0
    assert not plan.optimal


def test_greedy_commits_to_the_first_method() -> None:
    with pytest.raises(PlanningFailed):
        Planner(backtracking_domain(), "iterative_greedy").find_plan(
            start(), [("put_it",), ("need1",)]
        )
    plan = Planner(backtracking_domain(), "iterative_greedy").find_plan(start(), [("put_it",)])
    assert plan.as_list() == [("putv", 0)]


def test_the_callers_state_is_not_modified() -> None:
    s = start()
    find_plan(backtracking_domain(), s, [("put_it",), ("need1",)])
    assert s.flag == {"x": -1}


def test_empty_todo_gives_the_empty_plan() -> None:
    for strategy in STRATEGIES:
        assert find_plan(backtracking_domain(), start(), [], strategy).as_list() == []  # type: ignore[arg-type]


# -- goals -------------------------------------------------------------------------------


def move(s: State, b: str, to: str) -> State:
    s.pos[b] = to
    return s


def m_move(s: State, b: str, to: str) -> list[Any]:
    return [("move", b, to)]


def m_wrong(s: State, b: str, to: str) -> list[Any]:
    return []


def goal_domain(*unigoal_methods: Any) -> Domain:
    d = Domain("goals")
    d.declare_actions(move)
    d.declare_unigoal_methods("pos", *unigoal_methods)
    d.declare_multigoal_methods(m_split_multigoal)
    return d


def test_unigoals_multigoals_and_satisfied_goals() -> None:
    s = State("s", pos={"a": "table", "b": "table"})
    g = Multigoal("g", pos={"a": "b", "b": "table"})
    plan = find_plan(goal_domain(m_move), s, [g, ("pos", "a", "b")])
    assert plan.as_list() == [("move", "a", "b")]


def test_goal_verification_catches_a_method_that_lies() -> None:
    s = State("s", pos={"a": "table"})
    with pytest.raises(GoalNotAchieved, match="m_wrong"):
        find_plan(goal_domain(m_wrong), s, [("pos", "a", "b")])
    plan = Planner(goal_domain(m_wrong), verify_goals=False).find_plan(s, [("pos", "a", "b")])
    assert plan.as_list() == []


def test_malformed_returns_raise() -> None:
    d = Domain("bad")

    def bad_action(s: State) -> bool:
        return True

    def bad_method(s: State) -> str:
        return "oops"

    d.declare_actions(bad_action)
    d.declare_task_methods("t", bad_method)
    with pytest.raises(MalformedReturn, match="bad_action"):
        find_plan(d, State(), [("bad_action",)])
    with pytest.raises(MalformedReturn, match="bad_method"):
        find_plan(d, State(), [("t",)])


# -- GTPyhop 2.x drops actions that do not change the state; we keep them (Nau) --------------


def look(s: State) -> State:
    return s  # changes nothing


def test_actions_that_change_nothing_stay_in_the_plan_like_naus_gtpyhop() -> None:
    d = Domain("look")
    d.declare_actions(look, move)
    s = State("s", pos={"a": "table"})
    todo = [("look",), ("move", "a", "b"), ("look",)]
    assert find_plan(d, s, todo).as_list() == todo
    dropped = Planner(d, drop_unchanging_actions=True).find_plan(s, todo)
    assert dropped.as_list() == [("move", "a", "b")]


def test_gtpyhop_2_really_drops_them() -> None:
    """The divergence is GTPyhop 2.x's documented behaviour, checked against the real thing."""
    with contextlib.redirect_stdout(io.StringIO()):
        import gtpyhop

        d = gtpyhop.Domain("aria_look_divergence")

        def look(s: Any) -> Any:
            return s

        def move(s: Any, b: str, to: str) -> Any:
            s.pos[b] = to
            return s

        gtpyhop.declare_actions(look, move)
        s = gtpyhop.State("s", pos={"a": "table"})
        with gtpyhop.PlannerSession(domain=d, strategy="iterative_dfs_backtracking") as ses:
            result = ses.find_plan(s, [("look",), ("move", "a", "b"), ("look",)])
    assert result.plan == [("move", "a", "b")]


# -- deep problems: no recursion ----------------------------------------------------------


def tick(s: State) -> State:
    s.count["n"] += 1
    return s


def m_count(s: State, n: int) -> list[Any]:
    return [] if n == 0 else [("tick",), ("count", n - 1)]


@pytest.mark.parametrize("strategy", ["recursive_dfs", "iterative_greedy", "branch_and_bound"])
def test_a_plan_far_deeper_than_the_recursion_limit(strategy: Any) -> None:
    d = Domain("deep")
    d.declare_actions(tick)
    d.declare_task_methods("count", m_count)
    plan = Planner(d, strategy).find_plan(State("s", count={"n": 0}), [("count", 20_000)])
    assert len(plan) == 20_000
    assert plan.final_state.count == {"n": 20_000}


def blocks_domain() -> Domain:
    import importlib.util
    from pathlib import Path

    from aria_actors.services.engine import load_gtpyhop_module

    here = Path(__file__).resolve().parents[3] / "benchmarks" / "engine_blocks_domain.py"
    assert importlib.util.find_spec("gtpyhop") is not None
    return load_gtpyhop_module(here).domain


def test_three_thousand_blocks_plan_without_recursion_error() -> None:
    n = 3000
    pos = {f"b{i}": ("table" if i == 0 else f"b{i - 1}") for i in range(n)}  # one tall tower
    goal = {f"b{i}": ("table" if i == n - 1 else f"b{i + 1}") for i in range(n)}  # reversed
    s = State("s", pos=pos, clear={b: b == f"b{n - 1}" for b in pos}, holding={"hand": False})
    plan = Planner(blocks_domain(), "recursive_dfs").find_plan(s, [("solve", goal)])
    assert all(plan.final_state.pos[b] == w for b, w in goal.items())
    assert len(plan) == 4 * (n - 1)


# -- budgets and cancellation ---------------------------------------------------------------


def endless_domain() -> Domain:
    d = Domain("endless")
    d.declare_actions(tick)
    d.declare_task_methods("forever", lambda_forever)
    return d


def lambda_forever(s: State) -> list[Any]:
    return [("tick",), ("forever",)]


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_the_expansion_budget_is_enforced(strategy: Any) -> None:
    planner = Planner(endless_domain(), strategy, max_expansions=1000)
    with pytest.raises(BudgetExceeded) as info:
        planner.find_plan(State("s", count={"n": 0}), [("forever",)])
    assert info.value.expansions == 1001
    assert info.value.best is None


def test_cancellation_from_another_thread() -> None:
    token = CancelToken()
    calls = {"n": 0}

    def counting_tick(s: State) -> State:
        calls["n"] += 1
        if calls["n"] == 500:
            threading.Thread(target=token.cancel).start()
        return s

    d = Domain("c")
    d.declare_actions(counting_tick)
    d.declare_task_methods("forever", lambda s: [("counting_tick",), ("forever",)])
    with pytest.raises(Cancelled):
        Planner(d).find_plan(State(), [("forever",)], cancel=token)


def test_a_zero_timeout_ends_the_search() -> None:
    with pytest.raises(BudgetExceeded, match="timeout"):
        Planner(endless_domain(), timeout=0).find_plan(State("s", count={"n": 0}), [("forever",)])


# -- costs and optimisation ------------------------------------------------------------------


def walk(s: State, to: str) -> State:
    s.at["me"] = to
    return s


def ride(s: State, to: str) -> State:
    s.at["me"] = to
    return s


def m_walk(s: State, to: str) -> list[Any]:
    return [("walk", to)]


def m_ride(s: State, to: str) -> list[Any]:
    return [("ride", to), ("ride", to)]


def travel_domain() -> Domain:
    d = Domain("travel")
    d.declare_actions(walk, cost=10.0)
    d.declare_actions(ride, cost=1.0)
    d.declare_task_methods("go", m_walk, m_ride)
    return d


@pytest.mark.parametrize("strategy", ["branch_and_bound", "best_first"])
def test_optimising_strategies_return_the_cheapest_plan(strategy: Any) -> None:
    s = State("s", at={"me": "home"})
    first = find_plan(travel_domain(), s, [("go", "x"), ("go", "y")])
    assert first.cost == 20.0
    best = find_plan(travel_domain(), s, [("go", "x"), ("go", "y")], strategy)
    assert best.cost == 4.0
    assert best.optimal
    assert [a[0] for a in best] == ["ride"] * 4
    with pytest.raises(PlanningFailed):
        find_plan(travel_domain(), s, [("go", "x")], strategy, cost_bound=1.5)


def test_anytime_returns_the_best_plan_so_far_when_the_budget_ends() -> None:
    s = State("s", at={"me": "home"})
    todo = [("go", str(i)) for i in range(6)]
    plan = Planner(travel_domain(), "branch_and_bound", max_expansions=60).find_plan(s, todo)
    assert not plan.optimal
    assert plan.cost < 60.0  # improved on the first-found 60


def test_many_planners_run_concurrently_on_one_domain() -> None:
    d = travel_domain()
    results: list[float] = []

    def run() -> None:
        s = State("s", at={"me": "home"})
        results.append(Planner(d, "best_first").find_plan(s, [("go", "x")] * 3).cost)

    threads = [threading.Thread(target=run) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [6.0] * 8


def test_unknown_strategy_and_bad_budgets() -> None:
    with pytest.raises(ValueError, match="strategy"):
        Planner(travel_domain(), "sideways")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_expansions"):
        Planner(travel_domain(), max_expansions=-1)
