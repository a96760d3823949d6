"""How states, to-do lists and plans cross a message boundary (JSON-able data).

A **state** travels as its variables, ``{variable: value}``::

    {"pos": {"a": "b", "b": "table"}, "clear": {"a": True, "b": False},
     "holding": {"hand": False}}

Variable names are non-empty strings not starting with ``__``. A value is JSON-able:
``None``, a bool, int, float or string, a list of values, or a dict of values whose
keys are strings or ints (a state variable is usually such a dict: argument → value,
the triple ``(variable, argument, value)``). Nothing else (no tuples, sets, objects).

A **to-do list** is a list of items: an action, task or goal is a list (or tuple)
``[name, *args]`` (``["move_one", "a", "table"]``, ``["pos", "a", "b"]``), planned as
the tuple ``(name, *args)`` with list arguments made tuples; a multigoal is a
:class:`Goals` ``{"type": "multigoal", "name": ..., "goals": {variable: {arg: value}}}``.

A **plan** comes back as its actions (tuples ``(name, *args)``), its cost and the
predicted final state in the form above.

Malformed data raises :class:`BadRequest` naming what is wrong.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import msgspec

from .errors import EngineError
from .state import Multigoal, State

__all__ = [
    "BadRequest",
    "Goals",
    "UnknownDomain",
    "state_from_data",
    "state_to_data",
    "todo_from_data",
    "todo_to_data",
]


class BadRequest(EngineError, ValueError):
    """A request the engine cannot take: malformed state or to-do list, bad option."""


class UnknownDomain(BadRequest):
    """No domain of that name is loaded (``domain``; ``known`` lists those that are)."""

    def __init__(self, domain: str, known: Sequence[str]) -> None:
        self.domain = domain
        self.known = list(known)
        super().__init__(
            f"no planning domain named {domain!r}; loaded: {', '.join(self.known) or 'none'} "
            "(extra domains come from [services.aria_engine] modules / gtpyhop_modules)"
        )


class Goals(msgspec.Struct, frozen=True, tag="multigoal"):
    """A multigoal in a to-do list: ``goals[variable][argument]`` is the wanted value."""

    name: str = "multigoal"
    goals: dict[str, dict[Any, Any]] = msgspec.field(default_factory=dict)


_SCALARS = (str, int, float, bool, type(None))


def _check_value(value: Any, where: str, depth: int = 0) -> None:
    if depth > 32:
        raise BadRequest(f"{where}: nested deeper than 32 levels")
    if isinstance(value, _SCALARS):
        return
    if isinstance(value, list):
        for i, v in enumerate(value):
            _check_value(v, f"{where}[{i}]", depth + 1)
        return
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str | int) or isinstance(k, bool):
                raise BadRequest(f"{where}: key {k!r} is not a string or an int")
            _check_value(v, f"{where}[{k!r}]", depth + 1)
        return
    raise BadRequest(
        f"{where}: a {type(value).__name__} is not JSON-able state data "
        "(use None, bool, int, float, str, lists and dicts)"
    )


def state_from_data(data: Any, name: str = "state") -> State:
    """The :class:`State` whose variables ``data`` gives (each value deep-copied).

    Raises:
        BadRequest: ``data`` is not a mapping of variable names to JSON-able values.
    """
    if not isinstance(data, Mapping):
        raise BadRequest(
            f"a state is a mapping of variable names to values, not a {type(data).__name__}"
        )
    variables: dict[str, Any] = {}
    for var, value in data.items():
        if not isinstance(var, str) or not var or var.startswith("__"):
            raise BadRequest(f"state variable name {var!r} must be a string not starting with __")
        _check_value(value, f"state variable {var!r}")
        variables[var] = msgspec.convert(value, Any)  # a deep copy of JSON-able data
    return State(name, **variables)


def state_to_data(state: State) -> dict[str, Any]:
    """The variables of ``state`` as JSON-able data (tuples become lists, sets sorted lists).

    Raises:
        BadRequest: a variable holds something that is not data (an object).
    """
    try:
        out: dict[str, Any] = msgspec.to_builtins(state.variables(), str_keys=False)
    except TypeError as exc:
        raise BadRequest(f"state {state.__dict__['__name__']!r} is not data: {exc}") from exc
    return out


def _as_tuple(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_as_tuple(v) for v in value)
    return value


def todo_from_data(todo: Any) -> list[Any]:
    """The planner's to-do list for ``todo`` (see the module documentation).

    Raises:
        BadRequest: ``todo`` is not a list of items, or an item is malformed.
    """
    if not isinstance(todo, list | tuple):
        raise BadRequest(f"a to-do list is a list of items, not a {type(todo).__name__}")
    items: list[Any] = []
    for i, item in enumerate(todo):
        if isinstance(item, Goals):
            for var, wanted in item.goals.items():
                if not isinstance(wanted, dict):
                    raise BadRequest(f"to-do item {i}: multigoal {var!r} must map arguments")
            items.append(Multigoal(item.name, **{k: dict(v) for k, v in item.goals.items()}))
        elif isinstance(item, Multigoal):
            items.append(item.copy(item.__name__))
        elif isinstance(item, list | tuple) and item and isinstance(item[0], str) and item[0]:
            _check_value(list(item), f"to-do item {i}")
            items.append((item[0], *(_as_tuple(a) for a in item[1:])))
        else:
            raise BadRequest(
                f"to-do item {i} ({item!r:.80}) must be [name, *args] with a string name, "
                "or a Goals multigoal"
            )
    return items


def todo_to_data(todo: Sequence[Any]) -> list[Any]:
    """``todo`` (tuples and :class:`Multigoal` objects) as wire items; other items are
    left as they are (the service refuses them with a :class:`BadRequest`)."""
    out: list[Any] = []
    for item in todo:
        if type(item).__name__ == "Multigoal":
            goals = {k: v for k, v in vars(item).items() if k != "__name__"}
            out.append(Goals(item.__name__, goals))
        elif isinstance(item, list | tuple):
            out.append(list(item))
        else:
            out.append(item)  # as it is: todo_from_data says what is wrong with it
    return out
