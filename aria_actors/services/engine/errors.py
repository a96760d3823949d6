"""The errors of aria_engine's planner.

Every way planning can end without a plan has its own class::

    EngineError (an AriaError)
    ├── PlanningFailed       the search space was exhausted: no plan exists under the domain's
    │                        methods (or the greedy strategy committed to a dead end)
    ├── BudgetExceeded       the expansion budget or the deadline ran out first (``expansions``;
    │                        ``best`` is the cheapest plan found so far by an anytime search)
    ├── Cancelled            the caller's cancellation token was set (``expansions``)
    └── DomainError          the domain or the problem is malformed: the message names the
        │                    declaration or to-do item at fault
        ├── UnknownTodoItem  a to-do item that is no action, task, unigoal or multigoal
        ├── MalformedReturn  an action returned something other than a State, False or None,
        │                    or a method something other than a list, False or None
        └── GoalNotAchieved  goal verification: a unigoal or multigoal method's refinement
                             finished without achieving the goal it was chosen for

And the service's own (aria_engine's actors, not the planner)::

    EngineError
    ├── EngineBusy           the planner pool has ``pool_size + max_waiting`` requests already
    └── CorruptCharacter     a character's stored row cannot be used (``character``,
                             ``problem``); the row is left as it is

``PlanningFailed``, ``BudgetExceeded`` and ``Cancelled`` are search outcomes; a
``DomainError`` is a bug in the domain and is raised as soon as it is seen, never
treated as "this branch failed".
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..._runtime.errors import AriaError

if TYPE_CHECKING:
    from .planner import Plan


class EngineError(AriaError):
    """Base of aria_engine's errors."""


class PlanningFailed(EngineError):
    """No plan: every alternative the strategy may try was tried (``expansions``)."""

    def __init__(self, message: str, expansions: int = 0) -> None:
        self.expansions = expansions
        super().__init__(message)


class BudgetExceeded(EngineError):
    """The node (expansion) budget or the deadline ran out before the search ended.

    ``best`` is the best complete plan an anytime search had found when the budget
    ended (``None`` for the first-found strategies, which stop at their first plan).
    """

    def __init__(self, message: str, expansions: int = 0, best: Plan | None = None) -> None:
        self.expansions = expansions
        self.best = best
        super().__init__(message)


class Cancelled(EngineError):
    """The caller cancelled the search through its :class:`CancelToken`."""

    def __init__(self, message: str, expansions: int = 0) -> None:
        self.expansions = expansions
        super().__init__(message)


class DomainError(EngineError):
    """A malformed domain declaration or problem; the message names the culprit."""


class UnknownTodoItem(DomainError):
    """A to-do item that names nothing declared in the domain (``item``)."""

    def __init__(self, message: str, item: object = None) -> None:
        self.item = item
        super().__init__(message)


class MalformedReturn(DomainError):
    """An action or method returned a value outside its contract (``name``, ``value``)."""

    def __init__(self, message: str, name: str = "", value: object = None) -> None:
        self.name = name
        self.value = value
        super().__init__(message)


class GoalNotAchieved(DomainError):
    """A goal method's refinement succeeded without achieving its goal (``method``, ``goal``)."""

    def __init__(self, message: str, method: str = "", goal: object = None) -> None:
        self.method = method
        self.goal = goal
        super().__init__(message)


class EngineBusy(EngineError):
    """The planner pool has ``pool_size + max_waiting`` requests already: try later.

    The message names the limit and the setting that raises it.
    """


class CorruptCharacter(EngineError):
    """A character's stored row (``engine_characters``) cannot be used: a column is
    undecodable or malformed, its domain is not loaded, or the row is gone.

    ``character`` is the character's id, ``problem`` what is wrong (the column and
    why). The row is never changed (but for the ``owner`` token every actor instance
    claims) or deleted because of it: an operator fixes it (or loads the domain), then
    restarts the character's actor or the node; or deletes it (``StopCharacter``).
    """

    def __init__(self, character: str, problem: str) -> None:
        self.character = character
        self.problem = problem
        super().__init__(
            f"stored character {character!r} cannot be loaded: {problem} (its row in "
            "engine_characters is left as it is: fix it and restart the character's "
            "actor, or delete the character with StopCharacter)"
        )
