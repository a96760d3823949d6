"""Planning domains: actions, commands and methods, declared on an object (no global domain).

GTPyhop's domain model, one :class:`Domain` per domain, as many as you like per process::

    d = Domain("blocks")
    d.declare_actions(pickup, putdown, cost=1.0)      # a function named like the action
    d.declare_commands(c_pickup)                      # acting: c_<action name>
    d.declare_task_methods("take", m_take)            # tried in declaration order
    d.declare_unigoal_methods("pos", m_pos)           # goals ('pos', arg, value)
    d.declare_multigoal_methods(m_split_multigoal)    # Multigoal objects

- An **action** ``f(state, *args)`` mutates the state it is given (always a private copy)
  and returns it, or returns ``False``/``None`` when its preconditions do not hold.
- A **method** returns a list of to-do items (possibly empty), or ``False``/``None`` when it
  does not apply. Task methods get ``(state, *args)``, unigoal methods
  ``(state, arg, value)``, multigoal methods ``(state, multigoal)``.
- Declaring a method already declared for the same name is a no-op (as in GTPyhop);
  declaring an action again replaces it.
- Every action has a **cost** (default 1.0): a number, or a function
  ``cost(state, *args) -> float`` of the state before the action.

Failures: a declaration that is not callable, has no usable name, or has a negative cost
raises :class:`~.errors.DomainError` naming it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .errors import DomainError
from .state import Multigoal, State, goals_not_achieved

__all__ = ["ActionCost", "Domain", "m_split_multigoal"]

ActionCost = float | Callable[..., float]


def _callable_name(fn: object, what: str) -> str:
    if not callable(fn):
        raise DomainError(f"{what} {fn!r} is not callable")
    name = getattr(fn, "__name__", None)
    if not isinstance(name, str) or not name or name == "<lambda>":
        raise DomainError(f"{what} {fn!r} has no usable __name__ (its name is the item's name)")
    return name


def _check_methods(key: str, methods: tuple[Callable[..., Any], ...], what: str) -> None:
    for m in methods:
        if not callable(m):
            raise DomainError(f"{what} for {key!r}: {m!r} is not callable")


class Domain:
    """A planning-and-acting domain: its actions, commands, methods and action costs.

    A Domain is a plain object: planners read it, never a process-wide "current domain".
    Declaring while planners run on the same domain is not supported (declare first).
    """

    def __init__(self, name: str) -> None:
        self.__name__ = name
        self.actions: dict[str, Callable[..., Any]] = {}
        self.commands: dict[str, Callable[..., Any]] = {}
        self.task_methods: dict[str, list[Callable[..., Any]]] = {}
        self.unigoal_methods: dict[str, list[Callable[..., Any]]] = {}
        self.multigoal_methods: list[Callable[..., Any]] = []
        self.costs: dict[str, ActionCost] = {}

    @property
    def name(self) -> str:
        """The domain's name."""
        return self.__name__

    def __repr__(self) -> str:
        return f"<Domain {self.__name__}>"

    # -- declarations -----------------------------------------------------------------------

    def declare_actions(self, *actions: Callable[..., Any], cost: ActionCost = 1.0) -> None:
        """Declare actions (each named by its function's ``__name__``) with one cost."""
        self._check_cost(cost, actions)
        for act in actions:
            name = _callable_name(act, "action")
            self.actions[name] = act
            self.costs[name] = cost

    def set_action_cost(self, action: str, cost: ActionCost) -> None:
        """Set the cost of an already declared action."""
        if action not in self.actions:
            raise DomainError(f"cannot set the cost of {action!r}: no such action is declared")
        self._check_cost(cost, (self.actions[action],))
        self.costs[action] = cost

    def declare_commands(self, *commands: Callable[..., Any]) -> None:
        """Declare commands (the acting twins of actions, named ``c_<action>``)."""
        for cmd in commands:
            self.commands[_callable_name(cmd, "command")] = cmd

    def declare_task_methods(self, task_name: str, *methods: Callable[..., Any]) -> None:
        """Append methods for tasks ``(task_name, *args)``; ones already there are skipped."""
        if not isinstance(task_name, str) or not task_name:
            raise DomainError(f"task name {task_name!r} must be a non-empty string")
        _check_methods(task_name, methods, "task method")
        known = self.task_methods.setdefault(task_name, [])
        known.extend(m for m in dict.fromkeys(methods) if m not in known)

    def declare_unigoal_methods(self, state_var: str, *methods: Callable[..., Any]) -> None:
        """Append methods for goals ``(state_var, arg, value)``; ones already there skipped."""
        if not isinstance(state_var, str) or not state_var:
            raise DomainError(f"state variable name {state_var!r} must be a non-empty string")
        _check_methods(state_var, methods, "unigoal method")
        known = self.unigoal_methods.setdefault(state_var, [])
        known.extend(m for m in dict.fromkeys(methods) if m not in known)

    def declare_multigoal_methods(self, *methods: Callable[..., Any]) -> None:
        """Append multigoal methods; ones already there are skipped."""
        _check_methods("multigoals", methods, "multigoal method")
        known = self.multigoal_methods
        known.extend(m for m in dict.fromkeys(methods) if m not in known)

    # -- queries --------------------------------------------------------------------------

    def action_cost(self, name: str, state: State, args: tuple[Any, ...]) -> float:
        """The cost of applying action ``name`` with ``args`` in ``state``."""
        cost = self.costs.get(name, 1.0)
        if callable(cost):
            value = float(cost(state, *args))
            if value < 0:
                raise DomainError(f"the cost function of action {name!r} returned {value} < 0")
            return value
        return cost

    def copy(self, new_name: str | None = None) -> Domain:
        """A copy with its own declaration tables (the functions are shared)."""
        other = Domain(new_name or f"{self.__name__}_copy")
        other.actions = dict(self.actions)
        other.commands = dict(self.commands)
        other.task_methods = {k: list(v) for k, v in self.task_methods.items()}
        other.unigoal_methods = {k: list(v) for k, v in self.unigoal_methods.items()}
        other.multigoal_methods = list(self.multigoal_methods)
        other.costs = dict(self.costs)
        return other

    def describe(self) -> str:
        """A multi-line listing of the declarations (what GTPyhop's print_domain shows)."""
        lines = [f"Domain name: {self.__name__}"]
        lines.append("-- Actions: " + (", ".join(self.actions) or "none"))
        lines.append("-- Commands: " + (", ".join(self.commands) or "none"))
        for title, table in (("Task", self.task_methods), ("Unigoal", self.unigoal_methods)):
            if table:
                lines.append(f"-- {title} methods:")
                lines.extend(
                    f"   {k}: " + ", ".join(m.__name__ for m in v) for k, v in table.items()
                )
            else:
                lines.append(f"-- There are no {title.lower()} methods")
        lines.append(
            "-- Multigoal methods: "
            + (", ".join(m.__name__ for m in self.multigoal_methods) or "none")
        )
        return "\n".join(lines)

    @staticmethod
    def _check_cost(cost: ActionCost, actions: tuple[Callable[..., Any], ...]) -> None:
        if callable(cost):
            return
        if not isinstance(cost, int | float) or cost < 0:
            names = ", ".join(getattr(a, "__name__", repr(a)) for a in actions)
            raise DomainError(f"cost {cost!r} of action(s) {names} must be a number >= 0")


def m_split_multigoal(state: State, multigoal: Multigoal) -> list[Any]:
    """GTPyhop's built-in multigoal method: achieve the unmet goals one by one, then recheck.

    Returns ``[]`` when the multigoal holds, else ``[g1, ..., gn, multigoal]`` for the
    unigoals ``gi = (var, arg, value)`` not true in ``state``, in the multigoal's order.
    """
    goals = [
        (var, arg, value)
        for var, missing in goals_not_achieved(state, multigoal).items()
        for arg, value in missing.items()
    ]
    if goals:
        return [*goals, multigoal]
    return goals
