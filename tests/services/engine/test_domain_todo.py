from __future__ import annotations

from typing import Any

import pytest

from aria_actors.services.engine import (
    Domain,
    DomainError,
    ItemKind,
    Multigoal,
    State,
    UnknownTodoItem,
    classify,
    m_split_multigoal,
)


def act(s: State) -> State:
    return s


def meth(s: State, *args: Any) -> list[Any]:
    return []


def test_declarations_and_dedup() -> None:
    d = Domain("d")
    d.declare_actions(act, cost=2.5)
    d.declare_task_methods("t", meth, meth)
    d.declare_task_methods("t", meth)
    d.declare_unigoal_methods("pos", meth)
    d.declare_multigoal_methods(m_split_multigoal, m_split_multigoal)
    assert d.actions == {"act": act}
    assert d.task_methods["t"] == [meth]
    assert d.multigoal_methods == [m_split_multigoal]
    assert d.action_cost("act", State(), ()) == 2.5
    d.set_action_cost("act", lambda s, *a: 4.0)
    assert d.action_cost("act", State(), ()) == 4.0
    assert "Actions: act" in d.describe()
    assert d.copy().task_methods == d.task_methods


@pytest.mark.parametrize(
    "declare",
    [
        lambda d: d.declare_actions("not callable"),
        lambda d: d.declare_actions(lambda s: s),
        lambda d: d.declare_actions(act, cost=-1),
        lambda d: d.declare_task_methods("", meth),
        lambda d: d.declare_task_methods("t", 3),
        lambda d: d.declare_unigoal_methods("v", None),
        lambda d: d.set_action_cost("nope", 1),
    ],
)
def test_bad_declarations_raise_domain_error(declare: Any) -> None:
    with pytest.raises(DomainError):
        declare(Domain("d"))


def test_classification_follows_gtpyhops_order() -> None:
    d = Domain("d")
    d.declare_actions(act)
    d.declare_task_methods("act", meth)  # shadowed by the action
    d.declare_task_methods("pos", meth)  # a task shadows a unigoal of the same name
    d.declare_unigoal_methods("pos", meth)
    d.declare_unigoal_methods("loc", meth)
    assert classify(d, ("act",)) is ItemKind.ACTION
    assert classify(d, ("pos", "a", "b")) is ItemKind.TASK
    assert classify(d, ["loc", "a", "b"]) is ItemKind.UNIGOAL
    assert classify(d, Multigoal("g")) is ItemKind.MULTIGOAL
    for bad in [("nothing",), (), "act", 3, ("loc", "a")]:
        with pytest.raises(UnknownTodoItem):
            classify(d, bad)


def test_m_split_multigoal() -> None:
    s = State("s", pos={"a": "table", "b": "a"})
    g = Multigoal("g", pos={"a": "table", "b": "table"})
    assert m_split_multigoal(s, g) == [("pos", "b", "table"), g]
    s.pos["b"] = "table"
    assert m_split_multigoal(s, g) == []
