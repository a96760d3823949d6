"""Messages between the acting engine and the actors that execute its commands.

The engine's :class:`~.acting.ActorExecutor` sends :class:`RunCommand` with ``call``;
the executing actor replies with one of :data:`CommandReply`:

- :class:`CommandSucceeded` — done; ``updates`` are the facts the command changed
  (applied to the state the engine believed before the command);
- :class:`ObservedState` — done; the whole world as observed afterwards;
- :class:`CommandFailed` — not done (``reason``); ``updates`` are whatever it changed
  before failing.

A reply may also be a :class:`~.state.State` (only within one node: states do not
cross process boundaries) or ``True``/``False``. All messages are frozen and tagged,
so they decode inside the node codec's tagged union.

:class:`WorldChanged` is the event a world (a sensor, another character) sends to an
acting run to say that facts changed under it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec

from .state import State

__all__ = [
    "CommandFailed",
    "CommandReply",
    "CommandSucceeded",
    "Fact",
    "ObservedState",
    "RunCommand",
    "WorldChanged",
    "apply_facts",
]


class Fact(msgspec.Struct, frozen=True, array_like=True):
    """One binding ``state.<var>[arg] = value`` (a triple ``(var, arg, value)``)."""

    var: str
    arg: Any
    value: Any


class RunCommand(msgspec.Struct, frozen=True, tag=True):
    """Execute ``command`` (``c_<action>``) with ``args``; step ``step`` of trace ``trace``."""

    command: str
    args: tuple[Any, ...] = ()
    trace: str = ""
    step: int = 0


class CommandSucceeded(msgspec.Struct, frozen=True, tag=True):
    """The command was carried out; ``updates`` are the facts it changed."""

    updates: tuple[Fact, ...] = ()


class CommandFailed(msgspec.Struct, frozen=True, tag=True):
    """The command was not carried out (``reason``); ``updates``: facts changed anyway."""

    reason: str
    updates: tuple[Fact, ...] = ()


class ObservedState(msgspec.Struct, frozen=True, tag=True):
    """The command was carried out; ``variables`` is the whole world observed afterwards."""

    variables: dict[str, Any]


class WorldChanged(msgspec.Struct, frozen=True, tag=True):
    """An event: the world's facts changed (``updates``), independently of any command."""

    updates: tuple[Fact, ...]
    source: str = ""


CommandReply = CommandSucceeded | CommandFailed | ObservedState
"""What an executing actor answers to :class:`RunCommand`."""


def apply_facts(state: State, facts: Sequence[Fact | tuple[str, Any, Any]]) -> State:
    """A copy of ``state`` with every fact ``(var, arg, value)`` bound (``state`` unchanged).

    Raises:
        TypeError: a fact's variable exists in the state and is not a dict.
    """
    new = state.copy()
    for fact in facts:
        var, arg, value = (fact.var, fact.arg, fact.value) if isinstance(fact, Fact) else fact
        new.set_fact(var, arg, value)
    return new
