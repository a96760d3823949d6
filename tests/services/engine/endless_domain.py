"""A test domain loaded through ``[services.aria_engine] modules``: ``endless``.

The task ``("choose", i)`` has two methods, each going on to ``("choose", i + 1)``, and
nothing ever succeeds: a search of 2**60 leaves that only a budget, a timeout or a
cancellation ends. ``("crash",)`` is an action whose code raises.
"""

from __future__ import annotations

from typing import Any

from aria_actors.services.engine import Domain, State


def crash(state: State) -> State:
    raise KeyError("the domain's own bug")


def m_left(state: State, i: int) -> list[Any] | None:
    return [("choose", i + 1)] if i < 60 else None


def m_right(state: State, i: int) -> list[Any] | None:
    return [("choose", i + 1)] if i < 60 else None


endless = Domain("endless")
endless.declare_actions(crash)
endless.declare_task_methods("choose", m_left, m_right)

DOMAINS = (endless,)
