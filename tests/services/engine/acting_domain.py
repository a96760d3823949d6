"""A small courier domain for the acting and coordination tests, and a scripted world.

Places form a graph of passages (``state.open["a|b"]``); characters move along open
passages, pick up and drop objects. ``("deliver", who, obj, place)`` fetches an object
and drops it at a place; ``("goto", who, place)`` walks a shortest open path (ties
broken by name, so plans are deterministic). ``("fetch", who, kind)`` picks up any
object of a kind that is not reserved (``state.reserved``), for coordination tests.

:class:`World` is the real world the commands act on: it applies the action models to
its own state, except that scripted commands fail (optionally revealing a change, such
as a passage found closed) or hang.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import deque
from typing import Any

from aria_actors.services.engine import Domain, State
from aria_actors.services.engine.acting_errors import CommandError


def edge(x: str, y: str) -> str:
    return "|".join(sorted((x, y)))


def move(state: State, who: str, frm: str, to: str) -> State | None:
    if state.loc[who] == frm and state.open.get(edge(frm, to)):
        state.loc[who] = to
        return state
    return None


def pickup(state: State, who: str, obj: str) -> State | None:
    if state.at.get(obj) == state.loc[who] and state.holding[who] is None:
        state.at[obj] = who
        state.holding[who] = obj
        return state
    return None


def drop(state: State, who: str, obj: str) -> State | None:
    if state.holding[who] == obj:
        state.at[obj] = state.loc[who]
        state.holding[who] = None
        return state
    return None


def wait(state: State, who: str) -> State:
    return state


def shortest_path(state: State, frm: str, to: str) -> list[str] | None:
    places = sorted({p for e in state.open for p in e.split("|")})
    parent: dict[str, str | None] = {frm: None}
    queue = deque([frm])
    while queue:
        here = queue.popleft()
        if here == to:
            path = [here]
            while parent[path[-1]] is not None:
                path.append(parent[path[-1]])  # type: ignore[arg-type]
            return path[::-1]
        for p in places:
            if p not in parent and state.open.get(edge(here, p)):
                parent[p] = here
                queue.append(p)
    return None


def m_goto(state: State, who: str, to: str) -> list[Any] | None:
    path = shortest_path(state, state.loc[who], to)
    if path is None:
        return None
    return [("move", who, a, b) for a, b in itertools.pairwise(path)]


def m_deliver(state: State, who: str, obj: str, place: str) -> list[Any] | None:
    where = state.at.get(obj)
    if where is None:
        return None
    if where == who:
        return [("goto", who, place), ("drop", who, obj)]
    return [("goto", who, where), ("pickup", who, obj), ("goto", who, place), ("drop", who, obj)]


def m_fetch(state: State, who: str, kind: str) -> list[Any] | None:
    reserved = getattr(state, "reserved", set())
    for obj in sorted(state.kind):
        where = state.at.get(obj)
        if state.kind[obj] == kind and obj not in reserved and where not in state.loc:
            return [("goto", who, state.at[obj]), ("pickup", who, obj)]
    return None


def m_loc(state: State, who: str, place: str) -> list[Any]:
    return [("goto", who, place)]


def make_domain() -> Domain:
    d = Domain("courier")
    d.declare_actions(move, pickup, drop, wait)
    d.declare_task_methods("goto", m_goto)
    d.declare_task_methods("deliver", m_deliver)
    d.declare_task_methods("fetch", m_fetch)
    d.declare_unigoal_methods("loc", m_loc)
    return d


def make_state() -> State:
    """a - b - c and a - d - e - c: two routes from a to c, the one through b shorter."""
    return State(
        "world",
        loc={"robot": "a"},
        holding={"robot": None},
        at={"parcel": "b"},
        open={
            edge("a", "b"): True,
            edge("b", "c"): True,
            edge("a", "d"): True,
            edge("d", "e"): True,
            edge("e", "c"): True,
        },
        weather={"sky": "clear"},
    )


class World:
    """The real world: commands act on ``self.state``; some are scripted to fail or hang.

    ``failures[(command, args)]``: how many more times that command fails; ``reveal``:
    facts the world shows when it fails (e.g. the passage was closed all along).
    ``hang``: commands that never answer, the given number of times.
    """

    def __init__(self, domain: Domain, state: State) -> None:
        self.domain = domain
        self.state = state
        self.failures: dict[tuple[str, tuple[Any, ...]], int] = {}
        self.reveal: dict[tuple[str, tuple[Any, ...]], list[tuple[str, Any, Any]]] = {}
        self.hang: dict[tuple[str, tuple[Any, ...]], int] = {}
        self.calls: list[tuple[str, tuple[Any, ...]]] = []
        self.hanging = asyncio.Event()
        self.cancelled = 0

    def fail(self, command: str, args: tuple[Any, ...], times: int = 1, *reveal: Any) -> None:
        self.failures[(command, args)] = times
        self.reveal[(command, args)] = list(reveal)

    async def __call__(self, command: str, args: tuple[Any, ...], state: State) -> State:
        key = (command, args)
        self.calls.append(key)
        if self.hang.get(key, 0) > 0:
            self.hang[key] -= 1
            self.hanging.set()
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                self.cancelled += 1
                raise
        if self.failures.get(key, 0) > 0:
            self.failures[key] -= 1
            for var, arg, value in self.reveal.get(key, []):
                self.state.set_fact(var, arg, value)
            raise CommandError(command, args, "jammed", state=self.state.copy())
        new = self.domain.actions[command.removeprefix("c_")](self.state.copy(), *args)
        if not isinstance(new, State):
            raise CommandError(command, args, "not applicable in the real world")
        self.state = new
        return new.copy()
