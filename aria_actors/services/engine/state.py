"""World states for the planner: GTPyhop-style state variables and predicate triples.

A :class:`State` holds *state variables* as attributes, exactly as GTPyhop's does::

    s = State("start", pos={"a": "b", "b": "table"}, clear={"a": True, "b": False})
    s.pos["a"] = "table"            # a state variable is usually a dict: argument -> value
    s.holding = None                # ... but any value will do

The same bindings read as the original Aria engine's predicate-subject-object triples:
``s.pos["a"] == "table"`` *is* the triple ``("pos", "a", "table")``
(:meth:`State.get_fact`, :meth:`State.set_fact`, :meth:`State.facts`, :meth:`State.match`).

Copy-on-write
-------------
A state made with ``State(...)`` holds its variables as plain attributes (nothing runs on
a read). ``copy()`` costs O(number of variables), never O(state size): the parent and the
copy share one frozen *snapshot* of the variables (both become lazily copying states),
and each of them takes a private copy of a variable the first time it reads that
variable through the state. Variables an action
never touches are never copied. A private copy is a C-level shallow copy when the
variable's values are all atomic (str, int, float, bool, None, bytes); a variable holding
nested mutable values (a dict of lists, ...) is deep-copied, as GTPyhop would.

Invariant: a value in the snapshot is never mutated — every state reaches its variables
through attribute access, which hands out the state's own private copy. The one way to
break it is to keep a reference to a variable (``d = s.pos``), copy the state, and then
mutate ``d``: read the variable again through the state after a ``copy()``.

The planner's depth-first searches copy nothing per action: they change one plain
working state in place and undo from a log on backtracking (:mod:`.trail`).
"""

from __future__ import annotations

import copy as _copy
from collections.abc import Iterable, Iterator, MutableMapping
from typing import TYPE_CHECKING, Any

__all__ = ["Multigoal", "State"]

_ATOMIC: frozenset[type] = frozenset({str, int, float, bool, type(None), bytes, complex})


class _FlatVar(dict[Any, Any]):
    """A state-variable dict known to hold only atomic values (so a shallow copy is a copy).

    Its mutators notice a non-atomic value being stored and then turn the dict into a
    :class:`_NestedVar`, which is deep-copied instead. Reads are plain ``dict`` reads.
    """

    __slots__ = ()

    def __setitem__(self, key: Any, value: Any) -> None:
        if type(value) not in _ATOMIC:
            self.__class__ = _NestedVar  # type: ignore[assignment]
        dict.__setitem__(self, key, value)

    def setdefault(self, key: Any, default: Any = None) -> Any:
        if type(default) not in _ATOMIC:
            self.__class__ = _NestedVar  # type: ignore[assignment]
        return dict.setdefault(self, key, default)

    def update(self, *args: Any, **kwargs: Any) -> None:
        dict.update(self, *args, **kwargs)
        if not set(map(type, self.values())) <= _ATOMIC:
            self.__class__ = _NestedVar  # type: ignore[assignment]

    def __ior__(self, other: Any) -> _FlatVar:  # type: ignore[misc]
        self.update(other)
        return self


class _NestedVar(dict[Any, Any]):
    """A state-variable dict whose values may be mutable: deep-copied when copied."""

    __slots__ = ()


def _private_copy(value: Any) -> Any:
    """A copy of ``value`` that shares nothing mutable with it (cheaply when possible)."""
    kind = type(value)
    if kind in _ATOMIC:
        return value
    if kind is _FlatVar:
        return _FlatVar(value)
    if kind is dict:
        if set(map(type, value.values())) <= _ATOMIC:
            return _FlatVar(value)
        return _NestedVar(_copy.deepcopy(value))
    if kind is set:
        # Members are hashable, taken to be immutable. Rebuilt from a list, as deepcopy
        # does, so that iteration order (which domains may depend on) matches GTPyhop's.
        return set(list(value))  # noqa: C414 (deepcopy's member order)
    if kind is list and set(map(type, value)) <= _ATOMIC:
        return list(value)
    return _copy.deepcopy(value)


class State:
    """A state of the world: named state variables, copied on write.

    ``State(name, **variables)`` creates a state; variables are read and assigned as
    attributes. Equality compares the variables and ignores the name. A missing variable
    raises ``AttributeError`` (so ``hasattr``/``getattr(s, v, default)`` work as in
    GTPyhop).

    A state made by ``State(...)`` keeps its variables as plain attributes: reading
    ``s.pos`` costs what reading any attribute costs. :meth:`copy` turns both the state and
    its copy into lazily copying states (they share a snapshot; see the module's text),
    whose first read of each variable takes a private copy of it.
    """

    __slots__ = ("__dict__", "_shared")

    # Invariant: a variable lives either in __dict__ (owned: this state's private copy)
    # or only in _shared (the frozen snapshot shared with other states); an owned
    # variable shadows the snapshot's. '__name__' always lives in __dict__. A plain State
    # owns every variable and its _shared is the empty _NO_SNAPSHOT (never mutated).
    _shared: dict[str, Any]

    def __init__(self, state_name: str = "state", **variables: Any) -> None:
        object.__setattr__(self, "_shared", _NO_SNAPSHOT)
        self.__dict__["__name__"] = state_name
        self.__dict__.update(variables)

    # -- variables ------------------------------------------------------------------------

    if TYPE_CHECKING:
        # For type checkers only: variables are dynamic attributes. At run time a plain
        # State has no __getattr__ (it would slow down every attribute read).
        def __getattr__(self, name: str) -> Any: ...

    def __delattr__(self, name: str) -> None:
        found = name in self.__dict__
        self.__dict__.pop(name, None)
        if name in self._shared:
            found = True
            object.__setattr__(
                self, "_shared", {k: v for k, v in self._shared.items() if k != name}
            )
        if not found:
            raise AttributeError(name)

    def state_vars(self) -> list[str]:
        """The names of the state's variables, in insertion order."""
        names = [n for n in self._shared if n not in self.__dict__]
        names.extend(n for n in self.__dict__ if n != "__name__")
        return names

    def variables(self) -> dict[str, Any]:
        """A read-only view of all variables: ``{name: value}`` (do not mutate the values)."""
        merged = dict(self._shared)
        merged.update(self.__dict__)
        del merged["__name__"]
        return merged

    def copy(self, new_name: str | None = None) -> State:
        """A copy sharing this state's variables until either side reads one (O(#variables)).

        The copy is named ``new_name``, or this state's name with ``_copy`` appended.
        Both this state and the copy then read variables lazily (a plain state becomes a
        lazily copying one). Instances of subclasses of :class:`State` are copied eagerly
        instead (every variable privately copied, O(state size)), keeping their class.
        """
        own = self.__dict__
        name = own["__name__"]
        copy_name = new_name if new_name else f"{name}_copy"
        cls = type(self)
        if cls is not State and cls is not _CowState:
            the_copy = cls.__new__(cls)
            object.__setattr__(the_copy, "_shared", _NO_SNAPSHOT)
            the_copy.__dict__["__name__"] = copy_name
            for var, value in self.variables().items():
                the_copy.__dict__[var] = _private_copy(value)
            return the_copy
        snapshot = dict(self._shared)
        if len(own) > 1:
            snapshot.update(own)
            del snapshot["__name__"]
            object.__setattr__(self, "__dict__", {"__name__": name})
        object.__setattr__(self, "_shared", snapshot)
        if cls is State:
            self.__class__ = _CowState
        the_copy = _CowState.__new__(_CowState)
        object.__setattr__(the_copy, "_shared", snapshot)
        object.__setattr__(the_copy, "__dict__", {"__name__": copy_name})
        return the_copy

    def __reduce__(self) -> tuple[Any, ...]:
        # A lazily copying state pickles with its snapshot, so that states pickled
        # together still share theirs (and stay copy-on-write) once unpickled.
        own = {k: v for k, v in self.__dict__.items() if k != "__name__"}
        name = self.__dict__["__name__"]
        if type(self) is _CowState:
            return (_restore_cow, (name, self._shared, own))
        return (_restore_state, (type(self), name, own))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, State):
            return NotImplemented
        return self.variables() == other.variables()

    __hash__ = None  # type: ignore[assignment]

    def __str__(self) -> str:
        return f"<State {self.__dict__['__name__']}>"

    def __repr__(self) -> str:
        body = ", ".join(f"{k}={v!r}" for k, v in self.variables().items())
        return f"State({self.__dict__['__name__']!r}, {body})"

    def display(self, heading: str | None = None) -> None:
        """Print the variables, one per line, under ``heading`` if given."""
        print(format_bindings(self.__dict__["__name__"], self.variables(), heading))

    # -- triples ----------------------------------------------------------------------------

    def get_fact(self, predicate: str, subject: Any, default: Any = None) -> Any:
        """The object of ``(predicate, subject, ?)``, or ``default`` when unbound."""
        binding = getattr(self, predicate, None)
        if not isinstance(binding, MutableMapping):
            return default
        return binding.get(subject, default)

    def set_fact(self, predicate: str, subject: Any, obj: Any) -> None:
        """Bind ``(predicate, subject, obj)``, replacing the subject's previous object."""
        binding = getattr(self, predicate, None)
        if binding is None:
            setattr(self, predicate, _FlatVar())
            binding = getattr(self, predicate)  # what the state stored (may be a view)
        elif not isinstance(binding, MutableMapping):
            raise TypeError(
                f"state variable {predicate!r} is a {type(binding).__name__}, not a dict"
            )
        binding[subject] = obj

    def remove_fact(self, predicate: str, subject: Any) -> None:
        """Unbind ``(predicate, subject, ?)``; nothing happens when it is unbound."""
        binding = getattr(self, predicate, None)
        if isinstance(binding, MutableMapping):
            binding.pop(subject, None)

    def has_fact(self, predicate: str, subject: Any, obj: Any) -> bool:
        """Whether the triple ``(predicate, subject, obj)`` holds."""
        binding = getattr(self, predicate, None)
        return (
            isinstance(binding, MutableMapping) and subject in binding and binding[subject] == obj
        )

    def facts(self) -> Iterator[tuple[str, Any, Any]]:
        """Every triple: one per argument of every dict-valued variable (read only)."""
        for predicate, binding in self.variables().items():
            if isinstance(binding, MutableMapping):
                for subject, obj in binding.items():
                    yield (predicate, subject, obj)

    def match(
        self, predicate: str | None = None, subject: Any = None, obj: Any = None
    ) -> list[tuple[str, Any, Any]]:
        """The triples agreeing with every argument that is not ``None``."""
        source: Iterable[tuple[str, Any, Any]]
        if predicate is not None:
            binding = self.variables().get(predicate)
            if not isinstance(binding, MutableMapping):
                return []
            source = ((predicate, s, o) for s, o in binding.items())
        else:
            source = self.facts()
        return [
            t
            for t in source
            if (subject is None or t[1] == subject) and (obj is None or t[2] == obj)
        ]


class _CowState(State):
    """A state sharing a snapshot with others: its first read of a variable copies it.

    Kept apart from :class:`State` because a class with ``__getattr__`` makes every
    attribute read slower (CPython cannot specialise them); plain states stay fast.
    """

    __slots__ = ()

    def __getattr__(self, name: str) -> Any:
        # Only reached when `name` is not owned: take a private copy from the snapshot.
        shared = object.__getattribute__(self, "_shared")
        if name in shared:
            value = _private_copy(shared[name])
            self.__dict__[name] = value
            return value
        raise AttributeError(
            f"state {self.__dict__.get('__name__')!r} has no variable {name!r}",
            name=name,
            obj=self,
        )


_NO_SNAPSHOT: dict[str, Any] = {}
"""The (empty, never mutated) snapshot of a plain state."""


def _restore_state(cls: type[State], name: str, variables: dict[str, Any]) -> State:
    state = cls.__new__(cls)
    object.__setattr__(state, "_shared", _NO_SNAPSHOT)
    state.__dict__["__name__"] = name
    state.__dict__.update(variables)
    return state


def _restore_cow(name: str, shared: dict[str, Any], own: dict[str, Any]) -> State:
    state = _CowState.__new__(_CowState)
    object.__setattr__(state, "_shared", shared)
    state.__dict__["__name__"] = name
    state.__dict__.update(own)
    return state


def missing_variable_message(error: AttributeError) -> str | None:
    """``"state 'S' has no variable 'V'"`` when ``error`` is a failed read of a state's
    variable (``error.obj`` a :class:`State`), else None: Python's own text for it names
    the class, not the state."""
    obj = getattr(error, "obj", None)
    name = getattr(error, "name", None)
    if isinstance(obj, State) and isinstance(name, str):
        return f"state {obj.__dict__.get('__name__')!r} has no variable {name!r}"
    return None


class Multigoal:
    """A conjunction of unigoals: ``Multigoal(name, pos={"a": "b"})`` wants ``pos['a'] == 'b'``.

    Its attributes have the shape of a state's variables (``{argument: desired value}``).
    """

    def __init__(self, multigoal_name: str = "multigoal", **goals: Any) -> None:
        self.__name__ = multigoal_name
        vars(self).update(goals)

    def goals(self) -> dict[str, Any]:
        """The goals, ``{state variable: {argument: desired value}}``."""
        return {k: v for k, v in vars(self).items() if k != "__name__"}

    def state_vars(self) -> list[str]:
        """The names of the state variables the multigoal constrains."""
        return list(self.goals())

    def copy(self, new_name: str | None = None) -> Multigoal:
        """A deep copy, named ``new_name`` or this name with ``_copy`` appended."""
        the_copy = _copy.deepcopy(self)
        the_copy.__name__ = new_name if new_name else f"{self.__name__}_copy"
        return the_copy

    def __str__(self) -> str:
        return f"<Multigoal {self.__name__}>"

    def __repr__(self) -> str:
        body = ", ".join(f"{k}={v!r}" for k, v in self.goals().items())
        return f"Multigoal({self.__name__!r}, {body})"

    def display(self, heading: str | None = None) -> None:
        """Print the goals, one per line, under ``heading`` if given."""
        print(format_bindings(self.__name__, self.goals(), heading))


def format_bindings(name: str, bindings: dict[str, Any], heading: str | None = None) -> str:
    """The text :meth:`State.display` prints: ``name.var = value`` lines under a heading."""
    lines = [heading] if heading else []
    if not bindings:
        lines.append("  (no variables)")
    lines.extend(f"  - {name}.{var} = {value!r}" for var, value in bindings.items())
    return "\n".join(lines)


def goals_not_achieved(state: State, multigoal: Multigoal) -> dict[str, dict[Any, Any]]:
    """The multigoal's goals that do not hold in ``state``: ``{variable: {arg: value}}``.

    Raises ``AttributeError``/``TypeError`` naming the variable when the state lacks it or
    it is not a dict (see :func:`unigoal_holds`).
    """
    missing: dict[str, dict[Any, Any]] = {}
    for var, wanted in multigoal_goals(multigoal).items():
        for arg, value in wanted.items():
            if not unigoal_holds(state, var, arg, value):
                missing.setdefault(var, {})[arg] = value
    return missing


def multigoal_goals(multigoal: object) -> dict[str, Any]:
    """The goals of any multigoal-shaped object (ours, or GTPyhop's): its non-name attributes."""
    return {k: v for k, v in vars(multigoal).items() if k != "__name__"}


def unigoal_holds(state: State, var: str, arg: Any, value: Any) -> bool:
    """Whether ``state.<var>[arg] == value``.

    Raises:
        AttributeError: the state has no variable ``var``.
        TypeError: the variable is not a dict (it has no ``get``).
    """
    binding = getattr(state, var, _MISSING)
    if binding is _MISSING:
        raise AttributeError(
            f"goal ({var!r}, {arg!r}, {value!r}) is about state variable {var!r}, which "
            f"state {state.__dict__['__name__']!r} does not have"
        )
    if not hasattr(binding, "get"):
        raise TypeError(
            f"goal ({var!r}, {arg!r}, {value!r}): state variable {var!r} is a "
            f"{type(binding).__name__}, not a dict"
        )
    return bool(binding.get(arg) == value)


_MISSING = object()
