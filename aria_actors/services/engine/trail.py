"""Undo-logged states for the depth-first searches: one working state, changed in place.

The depth-first strategies (recursive and iterative DFS with backtracking, greedy) never
need two sibling states at once: a branch is explored to its end before the next
alternative starts. So instead of a copy per action they keep **one** working state and
a *trail* (an undo log, as in a Prolog machine): an action changes the working state in
place, every change appends how to undo it, and resuming a choice point undoes the trail
back to the mark taken when the choice point was pushed. An action then costs what it
changes, not the size of the state, and methods read a plain state (plain attributes,
plain ``dict`` values: the fastest reads CPython has).

Actions get a :class:`ActionView` of the working state: a :class:`~.state.State` whose
dict-valued variables are :class:`DictView` wrappers that log every write. Methods get
the working state itself (as GTPyhop gives methods the state itself). Methods must not
change the state (GTPyhop's rule too): a change a method makes is not logged, so
backtracking cannot undo it. Nor should a refinement carry the state or one of its
variables as an argument: it would see later actions' changes (take a ``copy()``:
copying the working state is always allowed, see :class:`WorkingState`).

Which states qualify (:func:`working_copy`): every variable is an atomic value (str, int,
float, bool, None, bytes, complex; tuples and frozensets of those) or a ``dict`` whose
values are atomic. Anything else (sets, lists, nested containers, objects) and the
planner uses copy-on-write states instead (:mod:`.state`), as it does when a search
turns out not to fit while running: an action stores a non-atomic value, copies its
state, or returns a different state than it was given (:class:`TrailUnsuitable`; the
planner then restarts that search with copy-on-write states — same plans).

Undo is exact, including dict order: a new key is popped again, a changed value is put
back, and a deletion (``del``/``pop``/``popitem``/``clear``) saves the whole dict first
(deletions are rare in planning domains; restoring them keeps iteration order, which
domain methods may depend on, identical to a copy-based search).
"""

from __future__ import annotations

import copy as _copy
from collections.abc import Iterable, Iterator, Mapping, MutableMapping
from typing import Any

from .state import _ATOMIC, _NO_SNAPSHOT, State, _private_copy, _restore_state

__all__ = ["ActionView", "DictView", "TrailUnsuitable", "WorkingState", "undo", "working_copy"]

# Trail entries: (_SET, d, key, old) puts an old value back; (_NEW, d, key, None) pops
# a key that did not exist; (_RESTORE, d, saved, None) refills d from a saved copy.
_SET, _NEW, _RESTORE = 0, 1, 2
_ABSENT = object()

Trail = list[tuple[int, Any, Any, Any]]


class TrailUnsuitable(Exception):
    """Internal: this search cannot run on an undo-logged state (the message says why)."""


def _is_atomic(value: Any) -> bool:
    kind = type(value)
    if kind in _ATOMIC:
        return True
    if kind is tuple or kind is frozenset:
        return all(type(v) in _ATOMIC for v in value)
    return False


def _is_flat_dict(value: Any) -> bool:
    return isinstance(value, dict) and all(_is_atomic(v) for v in value.values())


class WorkingState(State):
    """The working state of an undo-logged search: a plain state that copying leaves alone.

    A method may copy the state it is given (to look ahead, say): the copy is a plain
    :class:`~.state.State` of its own, copied eagerly (O(state size)), and the working
    state stays as it is — a plain state's ``copy()`` would turn it into a lazily copying
    one, whose variables the undo log no longer sees.
    """

    __slots__ = ()

    def copy(self, new_name: str | None = None) -> State:
        own = self.__dict__
        the_copy = State(new_name if new_name else f"{own['__name__']}_copy")
        for var, value in own.items():
            if var != "__name__":
                the_copy.__dict__[var] = _private_copy(value)
        return the_copy

    def __reduce__(self) -> tuple[Any, ...]:
        own = {k: v for k, v in self.__dict__.items() if k != "__name__"}
        return (_restore_state, (State, self.__dict__["__name__"], own))


def working_copy(state: State) -> State | None:
    """A plain private copy of ``state`` for an undo-logged search, or None if it does not
    qualify (see the module's text). Costs O(state size), once per search."""
    live = WorkingState.__new__(WorkingState)
    object.__setattr__(live, "_shared", _NO_SNAPSHOT)
    own = live.__dict__
    own["__name__"] = state.__dict__["__name__"]
    for name, value in state.variables().items():
        if _is_atomic(value):
            own[name] = value
        elif _is_flat_dict(value):
            own[name] = dict(value)
        else:
            return None
    return live


def undo(trail: Trail, mark: int) -> None:
    """Undo every change logged after ``mark`` (newest first) and truncate the trail."""
    pop = trail.pop
    while len(trail) > mark:
        kind, d, key, old = pop()
        if kind == _SET:
            d[key] = old
        elif kind == _NEW:
            del d[key]
        else:
            d.clear()
            d.update(key)


def _log_store(trail: Trail, d: dict[Any, Any], key: Any) -> None:
    old = d.get(key, _ABSENT)
    if old is _ABSENT:
        trail.append((_NEW, d, key, None))
    else:
        trail.append((_SET, d, key, old))


def _unsuitable_value(where: str, value: Any) -> TrailUnsuitable:
    return TrailUnsuitable(f"{where} stores a {type(value).__name__}, not an atomic value")


class DictView(MutableMapping[Any, Any]):
    """A dict-valued variable as an action sees it: reads pass through, writes are logged.

    Behaves like the ``dict`` it wraps for every read and write of the mapping protocol
    (``isinstance(view, dict)`` is False; ``copy()``, ``copy.copy`` and ``copy.deepcopy``
    give plain dicts). Storing a non-atomic value raises :class:`TrailUnsuitable`.
    """

    __slots__ = ("_d", "_trail")

    def __init__(self, d: dict[Any, Any], trail: Trail) -> None:
        self._d = d
        self._trail = trail

    # -- reads ----------------------------------------------------------------------------

    def __getitem__(self, key: Any) -> Any:
        return self._d[key]

    def __contains__(self, key: object) -> bool:
        return key in self._d

    def __iter__(self) -> Iterator[Any]:
        return iter(self._d)

    def __reversed__(self) -> Iterator[Any]:
        keys: Iterator[Any] = reversed(self._d.keys())
        return keys

    def __len__(self) -> int:
        return len(self._d)

    def get(self, key: Any, default: Any = None) -> Any:
        return self._d.get(key, default)

    def keys(self) -> Any:
        return self._d.keys()

    def values(self) -> Any:
        return self._d.values()

    def items(self) -> Any:
        return self._d.items()

    def __eq__(self, other: object) -> bool:
        if isinstance(other, DictView):
            other = other._d
        return self._d == other

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return repr(self._d)

    def copy(self) -> dict[Any, Any]:
        return dict(self._d)

    def __copy__(self) -> dict[Any, Any]:
        return dict(self._d)

    def __deepcopy__(self, memo: dict[int, Any]) -> dict[Any, Any]:
        return _copy.deepcopy(self._d, memo)

    def __or__(self, other: Any) -> dict[Any, Any]:
        return self._d | (other._d if isinstance(other, DictView) else other)

    def __ror__(self, other: Any) -> dict[Any, Any]:
        return dict(other) | self._d

    # -- writes ---------------------------------------------------------------------------

    def __setitem__(self, key: Any, value: Any) -> None:
        if type(value) not in _ATOMIC and not _is_atomic(value):
            raise _unsuitable_value("an action", value)
        d = self._d
        _log_store(self._trail, d, key)
        d[key] = value

    def _save(self) -> None:
        self._trail.append((_RESTORE, self._d, dict(self._d), None))

    def __delitem__(self, key: Any) -> None:
        if key not in self._d:
            raise KeyError(key)
        self._save()
        del self._d[key]

    _MISSING = object()

    def pop(self, key: Any, default: Any = _MISSING) -> Any:
        if key in self._d:
            self._save()
            return self._d.pop(key)
        if default is DictView._MISSING:
            raise KeyError(key)
        return default

    def popitem(self) -> tuple[Any, Any]:
        if not self._d:
            raise KeyError("popitem(): dictionary is empty")
        self._save()
        return self._d.popitem()

    def clear(self) -> None:
        if self._d:
            self._save()
            self._d.clear()

    def setdefault(self, key: Any, default: Any = None) -> Any:
        if key in self._d:
            return self._d[key]
        self[key] = default
        return default

    def update(self, other: Any = (), /, **kwargs: Any) -> None:
        pairs: Iterable[tuple[Any, Any]]
        if isinstance(other, Mapping) or hasattr(other, "keys"):
            pairs = [(k, other[k]) for k in other.keys()]  # noqa: SIM118 (dict.update uses keys())
        else:
            pairs = list(other)
        for key, value in pairs:
            self[key] = value
        for key, value in kwargs.items():
            self[key] = value

    def __ior__(self, other: Any) -> DictView:
        self.update(other)
        return self


class ActionView(State):
    """The working state as an action sees it: writes to it are logged on the trail.

    Reading a dict-valued variable gives a :class:`DictView`; assigning or deleting a
    variable is logged too. ``copy()`` raises :class:`TrailUnsuitable` (an action that
    copies its state is searched with copy-on-write states instead).
    """

    __slots__ = ("_assigned", "_live", "_trail")

    def __init__(self, live: State, trail: Trail) -> None:
        object.__setattr__(self, "_shared", _NO_SNAPSHOT)
        object.__setattr__(self, "_live", live)
        object.__setattr__(self, "_trail", trail)
        object.__setattr__(self, "_assigned", None)
        own = self.__dict__
        for name, value in live.__dict__.items():
            own[name] = DictView(value, trail) if type(value) is dict else value

    def __getattr__(self, name: str) -> Any:
        # Only reached for a missing variable: say so as a copy-on-write state would.
        raise AttributeError(
            f"state {self.__dict__.get('__name__')!r} has no variable {name!r}",
            name=name,
            obj=self,
        )

    def __setattr__(self, name: str, value: Any) -> None:
        if _is_atomic(value):
            shown = value
        elif type(value) is DictView:
            value = dict(value._d)
            shown = DictView(value, self._trail)
        elif isinstance(value, dict) and _is_flat_dict(value):
            if type(value) is not dict:
                value = dict(value)
            shown = DictView(value, self._trail)
            # The action may go on filling its own dict directly (unlogged, which is
            # harmless: undo drops the whole variable); checked again by settle().
            if self._assigned is None:
                object.__setattr__(self, "_assigned", [])
            self._assigned.append(name)
        else:
            raise _unsuitable_value(f"an action assigning state variable {name!r}", value)
        live = self._live.__dict__
        _log_store(self._trail, live, name)
        live[name] = value
        self.__dict__[name] = shown

    def __delattr__(self, name: str) -> None:
        live = self._live.__dict__
        if name == "__name__" or name not in live:
            raise AttributeError(name, name=name, obj=self)
        self._trail.append((_RESTORE, live, dict(live), None))
        del live[name]
        del self.__dict__[name]

    def settle(self) -> None:
        """After the action: dicts it assigned as variables must still hold atomic values.

        Raises:
            TrailUnsuitable: one of them now holds a mutable value.
        """
        if self._assigned:
            live = self._live.__dict__
            for name in self._assigned:
                value = live.get(name)
                if isinstance(value, dict) and not _is_flat_dict(value):
                    raise TrailUnsuitable(f"state variable {name!r} now holds mutable values")

    def copy(self, new_name: str | None = None) -> State:
        raise TrailUnsuitable("an action copies its state")

    def __reduce__(self) -> tuple[Any, ...]:
        raise TrailUnsuitable("an action pickles or deep-copies its state")
