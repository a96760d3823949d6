"""The errors of acting (executing plans with commands): all :class:`ActingError`.

::

    EngineError (an AriaError; see .errors for the planner's)
    └── ActingError            acting stopped without accomplishing the to-do list;
        │                      ``state`` (last observed), ``executed`` (actions whose
        │                      commands succeeded), ``replans``
        ├── ReplanLimitExceeded  the plan broke more than ``max_replans`` times; names the
        │                        last command that failed (``command``, ``command_args``,
        │                        ``reason``)
        ├── NoPlan               the planner found no plan from the observed state (the first
        │                        plan or a replan); the planner's error is ``__cause__``
        ├── UnknownCommand       no command (or no actor) executes an action: a configuration
        │                        bug, raised at once, never retried
        ├── CommandError         raised *by an executor* to report a failed command
        │                        (``command``, ``command_args``, ``reason``, and the observed
        │                        ``state`` when the failure is known to have changed it)
        └── CoordinationFailed   several characters' plans could not be made compatible
                                 (``character``, ``step``, ``action``)

A ``CommandError`` (or any other exception, or a timeout) coming out of one command is a
*failure of that command*: acting replans. What reaches the caller is
``ReplanLimitExceeded`` or ``NoPlan``, chained to the last failure.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .errors import EngineError
from .state import State

__all__ = [
    "ActingError",
    "CommandError",
    "CoordinationFailed",
    "NoPlan",
    "ReplanLimitExceeded",
    "UnknownCommand",
]


class ActingError(EngineError):
    """Acting ended without accomplishing the to-do list.

    ``state``: the last observed state; ``executed``: the actions whose commands
    succeeded, in order; ``replans``: how many times acting replanned.
    """

    def __init__(
        self,
        message: str,
        *,
        state: State | None = None,
        executed: Sequence[tuple[Any, ...]] = (),
        replans: int = 0,
    ) -> None:
        self.state = state
        self.executed = tuple(executed)
        self.replans = replans
        super().__init__(message)


class ReplanLimitExceeded(ActingError):
    """A command failed when ``max_replans`` replans were already spent.

    ``command``/``command_args``/``reason``: the last failed command and why it failed.
    """

    def __init__(
        self,
        message: str,
        *,
        command: str,
        args: tuple[Any, ...],
        reason: str,
        state: State | None = None,
        executed: Sequence[tuple[Any, ...]] = (),
        replans: int = 0,
    ) -> None:
        self.command = command
        self.command_args = args
        self.reason = reason
        super().__init__(message, state=state, executed=executed, replans=replans)


class NoPlan(ActingError):
    """The planner found no plan from the observed state; ``__cause__`` says why."""


class UnknownCommand(ActingError):
    """Nothing executes the command ``command`` (no ``c_<action>``, no actor route)."""

    def __init__(self, message: str, *, command: str) -> None:
        self.command = command
        super().__init__(message)


class CommandError(ActingError):
    """Raised by an executor: the command ``command`` with ``args`` failed (``reason``).

    ``state``, when given, is the world as observed after the failure (a command can
    fail half-way); otherwise acting keeps the state it believed before the command.
    """

    def __init__(
        self,
        command: str,
        args: tuple[Any, ...],
        reason: str,
        *,
        state: State | None = None,
    ) -> None:
        self.command = command
        self.command_args = args
        self.reason = reason
        super().__init__(f"command {command}{args!r} failed: {reason}", state=state)


class CoordinationFailed(ActingError):
    """Characters' plans still clash and no replan is left (or the replanner found none).

    ``character``: whose plan could not be fixed; ``step``/``action``: where it broke.
    """

    def __init__(self, message: str, *, character: str, step: int, action: tuple[Any, ...]) -> None:
        self.character = character
        self.step = step
        self.action = action
        super().__init__(message)
