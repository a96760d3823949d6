"""Unmodified gtpyhop-examples domains on our planner, compared with real GTPyhop.

Every bundled problem is compared under GTPyhop's three strategies, except two kinds,
left out of the parameters (not skipped) for the reasons given where they are named:
the memory_tracking stress scenarios (``ARIA_ENGINE_COMPAT_STRESS=1`` includes them) and
BW_rand_43, which has no plan as bundled (its own test below proves why, and that both
planners solve it, with equal plans, once the problem is corrected).
"""

from __future__ import annotations

import contextlib
import io
import os
from typing import Any

import pytest

from aria_actors.services.engine import (
    BudgetExceeded,
    EngineError,
    Planner,
    PlanningFailed,
    State,
    load_gtpyhop_module,
)

from .gtpyhop_cases import Case, all_cases, replay, run_real

STRESS = os.environ.get("ARIA_ENGINE_COMPAT_STRESS") == "1"
# Deliberately allocates huge states: minutes on our planner, GTPyhop hits its cap too.
SLOW_PACKAGES = ("memory_tracking.",)
# No plan exists: see test_bw_rand_43_has_no_plan_as_bundled_and_one_once_corrected.
NO_PLAN = ("ipc-2020-total-order.Blocksworld-GTOHP:BW_rand_43",)
# Domains whose methods take "the first" member of a set-valued state variable. GTPyhop's
# methods read the caller's original set objects; ours read them too until the state is
# first copied, after which a state re-reads a rebuilt set whose iteration order may
# differ, so the plan picks other (equivalent) objects. Plans are replay-checked only.
# cybersecurity_attack_planning takes "the first" credential of a set of tuples
# (m_dms_exfiltrate): GTPyhop's own plan for scenario_6_admin_acl_change changes with
# PYTHONHASHSEED (seed 2 picks uid 'bob', seeds 0, 1, 3, 4, 5 pick 'adam').
SET_ORDER_DEPENDENT = (
    "ipc-2020-total-order.Childsnack",
    "cybersecurity_attack_planning",
)
STRATEGIES = ["iterative_dfs_backtracking", "iterative_greedy", "recursive_dfs"]


def selected_cases() -> list[Any]:
    return [
        pytest.param(case, id=case.id)
        for case in all_cases()
        if case.id not in NO_PLAN and (STRESS or not case.package.startswith(SLOW_PACKAGES))
    ]


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("case", selected_cases())
def test_bundled_problem_matches_gtpyhop(case: Case, strategy: str) -> None:
    real = run_real(case, strategy, timeout_ms=20_000)
    if isinstance(real, str):
        pytest.skip(f"GTPyhop gives no answer to compare: {real[:120]}")
    domain, state, todo = case.ours()
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            plan = Planner(domain, strategy, max_expansions=5_000_000).find_plan(state, todo)
    except PlanningFailed:
        assert real is None, f"GTPyhop found {real}"
        return
    except EngineError as e:
        pytest.fail(f"{type(e).__name__}: {e}")
    replay(domain, state, plan)
    if real is None:
        return  # we solve what GTPyhop does not (allowed: e.g. its recursion limit)
    if case.package in SET_ORDER_DEPENDENT:
        return  # valid (replayed above); equality not required, see SET_ORDER_DEPENDENT
    if plan.as_list() != real:
        # The one sanctioned divergence: GTPyhop 2.x drops actions that change nothing.
        domain, state, todo = case.ours()
        with contextlib.redirect_stdout(io.StringIO()):
            dropped = Planner(domain, strategy, drop_unchanging_actions=True).find_plan(state, todo)
        assert dropped.as_list() == real


def test_bw_rand_43_has_no_plan_as_bundled_and_one_once_corrected() -> None:
    case = Case("ipc-2020-total-order.Blocksworld-GTOHP", "BW_rand_43")
    domain, state, todo = case.ours()
    goal = todo[0].on
    # The bundled problem (converted from IPC p20.hddl) leaves b42 out of `blocks`, though
    # b42 is on the table and a goal asks for b17 on b42. Every method for a goal
    # on(x, y) requires both blocks in `blocks`, so no plan exists: GTPyhop searches until
    # its timeout (the domain's two methods for clearing a clear block make that search
    # exponential), and so would we.
    assert goal["b17"] == "b42"
    assert "b42" in state.ontable
    assert "b42" not in state.blocks
    assert domain.unigoal_methods["on"][1](state, "b17", "b42") is False
    with pytest.raises(BudgetExceeded):
        Planner(domain, max_expansions=50_000).find_plan(state, todo)
    # Corrected as p20.hddl declares it, both planners solve it at once, with equal plans
    # (ours keeps the domain's `nop` actions, as Nau's GTPyhop did; without them, equal).
    state.blocks = set(state.blocks) | {"b42"}
    with contextlib.redirect_stdout(io.StringIO()):
        plan = Planner(domain).find_plan(state, todo)
    replay(domain, state, plan)
    assert ("nop",) in plan.actions
    import gtpyhop

    real_domain, real_state, real_todo = case.real()
    real_state.blocks = set(real_state.blocks) | {"b42"}
    with (
        contextlib.redirect_stdout(io.StringIO()),
        gtpyhop.PlannerSession(
            domain=real_domain, strategy="iterative_dfs_backtracking"
        ) as session,
    ):
        real = session.find_plan(real_state, real_todo, timeout_ms=20_000)
    assert real.success
    dropped = Planner(domain, drop_unchanging_actions=True).find_plan(state, todo)
    assert dropped.as_list() == list(real.plan)
    assert [a for a in plan.actions if a != ("nop",)] == list(real.plan)


OLD_STYLE = [
    "blocks_htn",
    "blocks_hgn",
    "blocks_gtn",
    "blocks_goal_splitting",
    "simple_htn",
    "simple_hgn",
    "logistics_hgn",
    "backtracking_htn",
    "pyhop_simple_travel_example",
    "simple_htn_acting_error",
]


@pytest.mark.parametrize("name", OLD_STYLE)
def test_classic_example_runs_and_passes_its_own_checks(name: str) -> None:
    """The classic examples' main() asserts expected plans with test_harness.check_result."""
    with contextlib.redirect_stdout(io.StringIO()):
        loaded = load_gtpyhop_module(f"gtpyhop.examples.{name}")
        main = getattr(loaded.module, "main", None)
        if main is not None:
            try:
                main(False)
            except TypeError:
                main()
    assert loaded.domain.actions


def test_each_load_gets_its_own_facade_and_domain() -> None:
    with contextlib.redirect_stdout(io.StringIO()):
        a = load_gtpyhop_module("gtpyhop.examples.blocks_htn")
        b = load_gtpyhop_module("gtpyhop.examples.blocks_htn")
    assert a.facade is not b.facade
    assert a.domain is not b.domain
    assert a.module.gtpyhop is a.facade
    import gtpyhop  # the real one is untouched

    assert gtpyhop is not a.facade


def test_facade_api_find_plan_sessions_and_lazy_lookahead() -> None:
    with contextlib.redirect_stdout(io.StringIO()):
        loaded = load_gtpyhop_module("gtpyhop.examples.blocks_htn")
        gt = loaded.facade
        s = gt.State("s", pos={"a": "b", "b": "table"}, clear={"a": True, "b": False})
        s.holding = {"hand": False}
        g = gt.Multigoal("g", pos={"b": "a", "a": "table"})
        gt.set_verbose_level(0)
        gt.set_recursive_planning("iterative_dfs_backtracking")
        plan = gt.find_plan(s, [("achieve", g)])
        assert gt.find_plan(s, [("pickup", "b")]) is False
        with gt.PlannerSession(domain=loaded.domain, strategy="iterative_greedy") as ses:
            result = ses.find_plan(s, [("achieve", g)], max_expansions=3)
            assert not result
            assert "budget" in str(result.error)
            ok = ses.find_plan(s, [("achieve", g)])
            executed = ses.run_lazy_lookahead(s, [("achieve", g)])
        final = gt.run_lazy_lookahead(s, [("achieve", g)])
    assert plan == ok.plan == executed.executed_actions
    assert isinstance(final, State)
    assert final.pos == {"a": "table", "b": "a"}
    assert gt.validate_plan_from_goal(s, plan, "pos", {"b": "a"})
