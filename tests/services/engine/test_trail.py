"""The undo-logged working state of the depth-first searches (trail.py) against copy-on-write."""

from __future__ import annotations

import copy
import pickle
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aria_actors.services.engine import Domain, Planner, PlanningFailed, State
from aria_actors.services.engine.state import missing_variable_message
from aria_actors.services.engine.trail import (
    ActionView,
    DictView,
    Trail,
    TrailUnsuitable,
    undo,
    working_copy,
)

# -- the log itself ----------------------------------------------------------------------------


def test_undo_restores_values_keys_and_dict_order() -> None:
    live = working_copy(State("s", pos={"c": 3, "a": 1, "b": 2}, hand=None))
    assert live is not None
    trail: Trail = []
    view = ActionView(live, trail)
    view.pos["b"] = 20  # change
    view.pos["d"] = 4  # new key
    del view.pos["a"]  # deletion: saved whole
    view.pos.pop("c")
    view.pos["a"] = 1  # back, but now at the end
    view.hand = "a"
    view.extra = {"x": 1}  # a new variable
    assert list(live.pos.items()) == [("b", 20), ("d", 4), ("a", 1)]
    assert live.hand == "a"
    undo(trail, 0)
    assert trail == []
    assert list(live.pos.items()) == [("c", 3), ("a", 1), ("b", 2)]
    assert live.hand is None
    assert not hasattr(live, "extra")
    assert live.state_vars() == ["pos", "hand"]


def test_undo_to_a_mark_keeps_older_changes() -> None:
    live = working_copy(State("s", pos={"a": 1}))
    assert live is not None
    trail: Trail = []
    ActionView(live, trail).pos["a"] = 2
    mark = len(trail)
    view = ActionView(live, trail)
    view.pos.clear()
    view.pos.update({"z": 9}, y=8)
    assert live.pos == {"z": 9, "y": 8}
    undo(trail, mark)
    assert live.pos == {"a": 2}
    undo(trail, 0)
    assert live.pos == {"a": 1}


def test_dict_view_behaves_like_the_dict() -> None:
    live = working_copy(State("s", pos={"a": 1, "b": 2}))
    assert live is not None
    trail: Trail = []
    v = ActionView(live, trail).pos
    assert isinstance(v, DictView)
    assert v == {"a": 1, "b": 2}
    assert v == DictView(live.pos, trail)
    assert v != {"a": 1}
    assert len(v) == 2
    assert "a" in v
    assert list(v) == ["a", "b"]
    assert list(reversed(v)) == ["b", "a"]
    assert v.get("zz", 7) == 7
    assert v.setdefault("a", 5) == 1
    assert v.setdefault("c", 3) == 3
    assert dict(v.items()) == {"a": 1, "b": 2, "c": 3}
    assert v.pop("zz", None) is None
    with pytest.raises(KeyError):
        v.pop("zz")
    with pytest.raises(KeyError):
        del v["zz"]
    plain = v.copy()
    assert type(plain) is dict
    assert plain == v
    assert type(copy.copy(v)) is dict
    assert type(copy.deepcopy(v)) is dict
    assert (v | {"q": 0})["q"] == 0
    assert ({"q": 0} | v)["a"] == 1
    v |= {"d": 4}
    assert live.pos["d"] == 4
    assert v.popitem() == ("d", 4)
    assert repr(v) == repr(live.pos)
    undo(trail, 0)
    assert live.pos == {"a": 1, "b": 2}
    v.clear()
    with pytest.raises(KeyError):
        v.popitem()
    undo(trail, 0)
    assert live.pos == {"a": 1, "b": 2}


def test_what_does_not_fit_an_undo_log_is_refused() -> None:
    assert working_copy(State("s", seen={"a"})) is None  # a set
    assert working_copy(State("s", bag={"k": ["x"]})) is None  # nested
    assert working_copy(State("s", items=[1, 2])) is None  # a list
    fits = working_copy(State("s", at=("x", 1), ids=frozenset({1}), pos={"a": (1, 2)}))
    assert fits is not None
    trail: Trail = []
    view = ActionView(fits, trail)
    with pytest.raises(TrailUnsuitable, match="stores a list"):
        view.pos["a"] = [1]
    with pytest.raises(TrailUnsuitable, match="assigning state variable 'more'"):
        view.more = {"k": []}
    with pytest.raises(TrailUnsuitable, match="copies its state"):
        view.copy()
    with pytest.raises(TrailUnsuitable):
        pickle.dumps(view)
    own = {"k": 1}
    view.mine = own
    own["k"] = []  # filled directly, after assigning it
    with pytest.raises(TrailUnsuitable, match="'mine' now holds mutable values"):
        view.settle()


def test_missing_variables_are_named() -> None:
    live = working_copy(State("start", pos={}))
    assert live is not None
    with pytest.raises(AttributeError, match="state 'start' has no variable 'holding'"):
        ActionView(live, []).holding  # noqa: B018
    with pytest.raises(AttributeError) as caught:
        live.holding  # noqa: B018
    assert missing_variable_message(caught.value) == "state 'start' has no variable 'holding'"
    assert missing_variable_message(AttributeError("x")) is None


# -- the planner on both kinds of state --------------------------------------------------------

# A domain whose actions make every kind of change, fail after changing things, and force
# backtracking over all of that: each op is (variable, key, value) with value None meaning
# "delete"; an action applies its ops and then fails if its 'fail' flag is set. The task
# ('solve', depth) tries 'done' and then every script followed by ('solve', depth + 1), up
# to depth 3, so the search backtracks over successful actions too.
Op = tuple[str, str, int | None]


def _make_domain(scripts: list[tuple[list[Op], bool]], goal_key: str) -> Domain:
    domain = Domain("scripted")

    def run_script(state: State, i: int) -> State | bool:
        ops, fail = scripts[i]
        if ops and ops[0][0] != "flag" and getattr(state, ops[0][0]).get(ops[0][1]) == ops[0][2]:
            return False  # a precondition: its first op must change something
        for var, key, value in ops:
            if var == "flag":
                state.flag = value
                continue
            d = getattr(state, var)
            if value is None:
                d.pop(key, None)
            else:
                d[key] = value
        return False if fail else state

    domain.declare_actions(run_script)

    def done(state: State, depth: int) -> list[Any] | bool:
        return [] if state.a.get(goal_key) == 1 and list(state.b)[:1] != ["k4"] else False

    methods: list[Any] = [done]
    for i in range(len(scripts)):

        def step(state: State, depth: int, i: int = i) -> list[Any] | bool:
            return [("run_script", i), ("solve", depth + 1)] if depth < 3 else False

        step.__name__ = f"m_script_{i}"
        methods.append(step)
    domain.declare_task_methods("solve", *methods)
    return domain


ops = st.lists(
    st.tuples(
        st.sampled_from(["a", "b", "flag"]),
        st.sampled_from(["k1", "k2", "k3", "k4"]),
        st.one_of(st.none(), st.integers(0, 1)),
    ),
    max_size=4,
)


@settings(max_examples=300, deadline=None)
@given(
    scripts=st.lists(st.tuples(ops, st.booleans()), min_size=1, max_size=4),
    goal_key=st.sampled_from(["k1", "k2"]),
    strategy=st.sampled_from(["iterative_dfs_backtracking", "recursive_dfs", "iterative_greedy"]),
)
def test_logged_and_copied_searches_find_the_same_plans(
    scripts: list[tuple[list[Op], bool]], goal_key: str, strategy: Any
) -> None:
    domain = _make_domain(scripts, goal_key)
    start = State("start", a={"k1": 0, "k3": 2}, b={}, flag=None)
    before = start.variables()
    results = []
    for undo_log in (True, False):
        planner = Planner(domain, strategy, max_expansions=400, undo_log=undo_log)
        try:
            plan = planner.find_plan(start, [("solve", 0)])
            results.append((plan.as_list(), plan.final_state.variables(), plan.expansions))
        except PlanningFailed as e:
            results.append(("failed", e.expansions))
        except Exception as e:
            results.append((type(e).__name__, str(e)))
    assert results[0] == results[1]
    assert start.variables() == before  # the caller's state is never changed


def test_searches_that_do_not_fit_restart_copy_on_write_with_the_same_plan() -> None:
    domain = Domain("misfits")

    def put_list(state: State) -> State:
        state.pos["a"] = ["now", "a", "list"]
        return state

    def fresh_state(state: State) -> State:
        other = state.copy()
        other.pos["b"] = 2
        return other

    def check(state: State) -> State | bool:
        return state if state.pos.get("b") == 2 and isinstance(state.pos["a"], list) else False

    domain.declare_actions(put_list, fresh_state, check)
    start = State("s", pos={"a": 1})
    for todo in ([("put_list",), ("fresh_state",), ("check",)],):
        logged = Planner(domain).find_plan(start, todo)
        copied = Planner(domain, undo_log=False).find_plan(start, todo)
        assert logged.as_list() == copied.as_list() == todo
        assert logged.final_state == copied.final_state
    assert start.pos == {"a": 1}


def test_backtracking_over_successful_actions_undoes_them() -> None:
    # Script 0 succeeds but poisons the goal (b's first key becomes 'k4'); only going back
    # to the very first choice and taking script 1 instead finds the plan.
    domain = _make_domain([([("b", "k4", 1)], False), ([("a", "k1", 1)], False)], "k1")
    start = State("start", a={"k1": 0}, b={}, flag=None)
    for undo_log in (True, False):
        plan = Planner(domain, undo_log=undo_log).find_plan(start, [("solve", 0)])
        assert plan.as_list() == [("run_script", 1)]
        assert plan.final_state.variables() == {"a": {"k1": 1}, "b": {}, "flag": None}


def test_actions_may_use_the_triple_interface() -> None:
    domain = Domain("triples")

    def paint(state: State, thing: str, colour: str) -> State | bool:
        if state.has_fact("colour", thing, colour) or state.get_fact("colour", thing) is None:
            return False
        state.set_fact("colour", thing, colour)
        state.set_fact("painted", thing, True)  # a new variable
        state.remove_fact("dirty", thing)
        return state

    domain.declare_actions(paint)
    start = State("s", colour={"door": "red"}, dirty={"door": True})
    for undo_log in (True, False):
        plan = Planner(domain, undo_log=undo_log).find_plan(start, [("paint", "door", "blue")])
        assert plan.final_state.variables() == {
            "colour": {"door": "blue"},
            "dirty": {},
            "painted": {"door": True},
        }
        assert sorted(plan.final_state.match(subject="door")) == [
            ("colour", "door", "blue"),
            ("painted", "door", True),
        ]


def test_methods_may_copy_the_working_state_to_look_ahead() -> None:
    domain = Domain("lookahead")

    def move(state: State, to: str) -> State | bool:
        if state.at["me"] == to or state.fuel["car"] < 1:
            return False
        state.at["me"] = to
        state.fuel["car"] -= 1
        return state

    domain.declare_actions(move)

    def m_look(state: State, to: str) -> list[Any] | bool:
        trial = state.copy()  # a method simulating the move on a copy
        trial.at["me"] = to
        return [("move", to)] if trial.at["me"] != state.at["me"] else False

    domain.declare_task_methods("go", m_look)
    start = State("s", at={"me": "home"}, fuel={"car": 3})
    todo = [("go", "park"), ("go", "shop"), ("go", "home")]
    logged = Planner(domain).find_plan(start, todo)
    copied = Planner(domain, undo_log=False).find_plan(start, todo)
    assert logged.as_list() == copied.as_list() == [("move", t[1]) for t in todo]
    assert logged.final_state.at == copied.final_state.at == {"me": "home"}
    assert logged.final_state.fuel == copied.final_state.fuel == {"car": 0}
    assert type(logged.final_state.copy()) is State
