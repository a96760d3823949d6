"""The blocks world, with GTPyhop's classic semantics (``blocks_htn`` and goal methods).

State variables (every block is a string, ``"table"`` and ``"hand"`` are places)::

    pos[b]          where block b is: another block, "table" or "hand"
    clear[b]        True when nothing is on b (and b is not held)
    holding["hand"] the block held, or False

Actions (cost 1 each): ``pickup(b)``, ``unstack(b, c)``, ``putdown(b)``, ``stack(b, c)``;
commands ``c_<action>`` do the same in the world.

Methods:

- tasks ``move_one(b, dest)`` → get, put; ``get(b)`` → pickup or unstack;
  ``put(b, dest)`` → putdown or stack;
- the multigoal method ``m_moveblocks`` (Gupta and Nau's near-optimal algorithm, as
  GTPyhop's ``blocks_htn``): move a clear block straight to its final place when it can
  go there, else to the table when it is in the way;
- unigoal methods for ``clear`` (move what is on the block to the table) and ``pos``
  (clear the block and its destination, then move it).

:func:`random_problem` makes a problem of ``n`` blocks from a seed (the same seed gives
the same problem).
"""

from __future__ import annotations

import random
from typing import Any

from ..domain import Domain
from ..state import Multigoal, State

__all__ = ["DOMAINS", "domain", "random_problem", "random_towers"]

HAND = "hand"
TABLE = "table"


# -- actions -------------------------------------------------------------------------------


def pickup(state: State, b: str) -> State | None:
    if state.pos.get(b) == TABLE and state.clear[b] and state.holding[HAND] is False:
        state.pos[b] = HAND
        state.clear[b] = False
        state.holding[HAND] = b
        return state
    return None


def unstack(state: State, b: str, c: str) -> State | None:
    if state.pos.get(b) == c and c != TABLE and state.clear[b] and state.holding[HAND] is False:
        state.pos[b] = HAND
        state.clear[b] = False
        state.holding[HAND] = b
        state.clear[c] = True
        return state
    return None


def putdown(state: State, b: str) -> State | None:
    if state.pos.get(b) == HAND:
        state.pos[b] = TABLE
        state.clear[b] = True
        state.holding[HAND] = False
        return state
    return None


def stack(state: State, b: str, c: str) -> State | None:
    if state.pos.get(b) == HAND and c in state.clear and state.clear[c]:
        state.pos[b] = c
        state.clear[b] = True
        state.holding[HAND] = False
        state.clear[c] = False
        return state
    return None


# -- commands (acting): the world does what the action predicts ----------------------------


def c_pickup(state: State, b: str) -> State | None:
    return pickup(state, b)


def c_unstack(state: State, b: str, c: str) -> State | None:
    return unstack(state, b, c)


def c_putdown(state: State, b: str) -> State | None:
    return putdown(state, b)


def c_stack(state: State, b: str, c: str) -> State | None:
    return stack(state, b, c)


# -- task methods ----------------------------------------------------------------------------


def m_move_one(state: State, b: str, dest: str) -> list[Any]:
    return [("get", b), ("put", b, dest)]


def m_get(state: State, b: str) -> list[Any] | None:
    if not state.clear.get(b):
        return None
    if state.pos[b] == TABLE:
        return [("pickup", b)]
    return [("unstack", b, state.pos[b])]


def m_put(state: State, b: str, dest: str) -> list[Any] | None:
    if state.holding[HAND] != b:
        return None
    if dest == TABLE:
        return [("putdown", b)]
    return [("stack", b, dest)]


# -- the multigoal method (Gupta and Nau) ------------------------------------------------------


def _is_done(b: str, state: State, goal: Multigoal) -> bool:
    wanted = getattr(goal, "pos", {})
    while b != TABLE:
        if b in wanted and wanted[b] != state.pos[b]:
            return False
        if state.pos[b] == TABLE:
            return True
        b = state.pos[b]
    return True


def _status(b: str, state: State, goal: Multigoal) -> str:
    wanted = getattr(goal, "pos", {})
    if _is_done(b, state, goal):
        return "done"
    if not state.clear[b]:
        return "inaccessible"
    if b not in wanted or wanted[b] == TABLE:
        return "move-to-table"
    if _is_done(wanted[b], state, goal) and state.clear[wanted[b]]:
        return "move-to-block"
    return "waiting"


def m_moveblocks(state: State, goal: Multigoal) -> list[Any] | None:
    if state.holding[HAND] is not False:
        return None
    wanted = getattr(goal, "pos", {})
    clear = [b for b, is_clear in state.clear.items() if is_clear]
    for b in clear:
        status = _status(b, state, goal)
        if status == "move-to-table":
            return [("move_one", b, TABLE), goal]
        if status == "move-to-block":
            return [("move_one", b, wanted[b]), goal]
    for b in clear:
        if _status(b, state, goal) == "waiting" and state.pos[b] != TABLE:
            return [("move_one", b, TABLE), goal]
    return []


# -- unigoal methods ---------------------------------------------------------------------------


def m_clear(state: State, b: str, value: bool) -> list[Any] | None:
    if value is not True or state.holding[HAND] is not False:
        return None
    above = [x for x, where in state.pos.items() if where == b]
    if not above:
        return None
    return [("clear", above[0], True), ("move_one", above[0], TABLE)]


def m_pos(state: State, b: str, dest: str) -> list[Any] | None:
    if state.holding[HAND] is not False or b == dest or b not in state.pos:
        return None
    steps: list[Any] = [("clear", b, True)]
    if dest != TABLE:
        if dest not in state.pos:
            return None
        steps.append(("clear", dest, True))
    steps.append(("move_one", b, dest))
    return steps


def domain() -> Domain:
    """A new blocks-world domain named ``blocks``."""
    d = Domain("blocks")
    d.declare_actions(pickup, unstack, putdown, stack, cost=1.0)
    d.declare_commands(c_pickup, c_unstack, c_putdown, c_stack)
    d.declare_task_methods("move_one", m_move_one)
    d.declare_task_methods("get", m_get)
    d.declare_task_methods("put", m_put)
    d.declare_multigoal_methods(m_moveblocks)
    d.declare_unigoal_methods("clear", m_clear)
    d.declare_unigoal_methods("pos", m_pos)
    return d


DOMAINS = (domain(),)


# -- problems ------------------------------------------------------------------------------


def random_towers(blocks: list[str], rng: random.Random) -> dict[str, str]:
    """A random arrangement: ``{block: what it is on}``, every block on a tower."""
    order = list(blocks)
    rng.shuffle(order)
    tops: list[str] = []
    pos: dict[str, str] = {}
    for b in order:
        if tops and rng.random() < 0.6:
            i = rng.randrange(len(tops))
            pos[b] = tops[i]
            tops[i] = b
        else:
            pos[b] = TABLE
            tops.append(b)
    return pos


def state_of(pos: dict[str, str], name: str = "blocks") -> State:
    """The state where blocks are placed as ``pos`` says, the hand empty."""
    below = set(pos.values())
    return State(
        name,
        pos=dict(pos),
        clear={b: b not in below for b in pos},
        holding={HAND: False},
    )


def random_problem(n: int, seed: int = 0) -> tuple[State, Multigoal]:
    """A problem of ``n`` blocks ``b1..bn``: a random start and a random goal (every
    block's position), the same for the same ``n`` and ``seed``."""
    if n < 1:
        raise ValueError("a blocks problem needs at least one block")
    rng = random.Random(f"blocks/{n}/{seed}")
    blocks = [f"b{i}" for i in range(1, n + 1)]
    start = state_of(random_towers(blocks, rng), f"blocks{n}_{seed}")
    goal = Multigoal(f"goal{n}_{seed}", pos=random_towers(blocks, rng))
    return start, goal
