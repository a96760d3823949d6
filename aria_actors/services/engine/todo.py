"""What a to-do item is, decided in GTPyhop's order.

A to-do list holds actions, tasks, unigoals and multigoals. :func:`classify` answers:

1. a :class:`~.state.Multigoal` (any object whose class is named ``Multigoal``) is a
   **multigoal**;
2. otherwise the item must be a non-empty tuple or list whose first element is a name,
   looked up as an **action** first, then a **task**, then a **unigoal**'s state variable.
   So a state variable that shares its name with an action or task is shadowed by it,
   exactly as in GTPyhop.

An item matching nothing is a domain-authoring error, not a search outcome:
:class:`~.errors.UnknownTodoItem` says what was expected. A unigoal must have exactly
three elements ``(state_var, arg, value)``.
"""

from __future__ import annotations

import enum
from typing import Any

from .domain import Domain
from .errors import UnknownTodoItem

__all__ = ["ItemKind", "classify"]


class ItemKind(enum.Enum):
    """The four kinds of to-do item."""

    ACTION = "action"
    TASK = "task"
    UNIGOAL = "unigoal"
    MULTIGOAL = "multigoal"


def is_multigoal(item: object) -> bool:
    """Whether ``item`` is a multigoal (GTPyhop decides by the class's name)."""
    return type(item).__name__ == "Multigoal"


def classify(domain: Domain, item: Any) -> ItemKind:
    """The kind of ``item`` in ``domain``.

    Raises:
        UnknownTodoItem: nothing of that name is declared, the item is not a tuple/list,
            or a unigoal does not have three elements.
    """
    if is_multigoal(item):
        return ItemKind.MULTIGOAL
    if isinstance(item, tuple | list) and item:
        name = item[0]
        try:
            if name in domain.actions:
                return ItemKind.ACTION
            if name in domain.task_methods:
                return ItemKind.TASK
            if name in domain.unigoal_methods:
                if len(item) != 3:
                    raise UnknownTodoItem(
                        f"goal {item!r} must be (state_variable, argument, value)", item
                    )
                return ItemKind.UNIGOAL
        except TypeError:  # an unhashable first element
            pass
        raise UnknownTodoItem(
            f"{item!r} is no action, task, unigoal or multigoal: nothing named {name!r} is "
            f"declared in domain {domain.name!r} (declare it with declare_actions, "
            f"declare_task_methods, or, for a goal, declare_unigoal_methods({name!r}, ...))",
            item,
        )
    raise UnknownTodoItem(
        f"{item!r} is no action, task, unigoal or multigoal: expected a Multigoal or a "
        f"non-empty tuple naming an action, a task or a goal's state variable",
        item,
    )
