"""Planner spans: the :class:`SearchTracer` hook a planner reports its search to, the
:class:`PlannerSpanTracer` turning that into task, method and action spans, and
:func:`record_plan`, the predicted action spans of a plan searched elsewhere."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from .span_model import PlannerFailure, Span, SpanKind, SpanOutcome
from .span_recorder import OpenSpan, SpanRecorder
from .state import State

__all__ = [
    "PlannerSpanTracer",
    "SearchEvent",
    "SearchLog",
    "SearchTracer",
    "item_name",
    "predicted_effects",
    "record_plan",
    "replay_search",
]


def predicted_effects(before: State, after: State) -> str:
    """The state variables an action changed, as ``var[arg]=value`` separated by ``; ``."""
    old, new = before.variables(), after.variables()
    changes: list[str] = []
    for var in sorted(set(old) | set(new), key=str):
        a, b = old.get(var), new.get(var)
        if a == b:
            continue
        if isinstance(a, dict) and isinstance(b, dict):
            for arg in sorted(set(a) | set(b), key=repr):
                if arg not in b:
                    changes.append(f"{var}[{arg!r}] unset")
                elif a.get(arg, _UNSET) != b[arg]:
                    changes.append(f"{var}[{arg!r}]={b[arg]!r}")
        else:
            changes.append(f"{var}={b!r}")
    return "; ".join(changes)


_UNSET = object()


def record_plan(
    recorder: SpanRecorder,
    parent: OpenSpan | int | None,
    actions: Sequence[tuple[Any, ...]],
    state: State,
    action_models: dict[str, Callable[..., Any]],
    *,
    at: float | None = None,
) -> list[Span]:
    """Derive one ``action`` span per planned action, under ``parent``, from a finished plan.

    These spans are what can be seen of a plan from outside: each action in plan
    order, with attributes ``step``, ``args`` and its ``predicted`` effects (replaying
    the action models from a copy of ``state``). The spans are instantaneous (``start ==
    end == at``, the recorder's clock by default). An action that does not replay (the
    state changed since planning) gets outcome ``"failed"`` and the replay stops there.
    """
    when = recorder.clock() if at is None else at
    out: list[Span] = []
    current = state.copy()
    replayable = True
    for step, action in enumerate(actions):
        effects = ""
        outcome: SpanOutcome = "ok"
        if replayable:
            model = action_models.get(action[0])
            nxt = model(current.copy(), *action[1:]) if model is not None else None
            if isinstance(nxt, State):
                effects = predicted_effects(current, nxt)
                current = nxt
            else:
                outcome = "failed"
                replayable = False
        out.append(
            recorder.record(
                str(action[0]),
                "action",
                parent,
                when,
                when,
                outcome,
                step=step,
                args=repr(tuple(action[1:])),
                predicted=effects,
            )
        )
    return out


class SearchTracer(Protocol):
    """The hook a planner calls while it searches (``Planner.find_plan(..., tracer=...)``).

    Tokens are opaque ints the tracer hands out; the planner carries the token of the
    to-do item (or method) an item came from next to that item on its to-do list, and
    passes it back as ``parent``. ``None`` means "a top-level to-do item".
    """

    def on_item(self, item: Any, kind: str, parent: int | None) -> int:
        """A task, unigoal or multigoal is taken off the to-do list to be refined."""

    def on_method(self, item_token: int, method: str, subitems: Sequence[Any] | None) -> int:
        """A method was tried on the item: ``subitems`` is its refinement, ``None`` if it
        did not apply. The returned token is the parent of the refinement's items."""

    def on_action(self, item: Any, parent: int | None, applied: bool) -> None:
        """An action was tried under ``parent``; ``applied`` is whether it applied."""

    def on_backtrack(self, method_token: int) -> None:
        """The search went back to the choice point where the method (token from
        :meth:`on_method`) was applied: the method, everything under it and everything
        reported after it were abandoned (depth-first search backtracks chronologically;
        the planner reports every method applied since that choice point, oldest first).
        """

    def on_end(self, found: bool) -> None:
        """The search ended, with a plan or without one."""


class PlannerSpanTracer:
    """A :class:`SearchTracer` recording task, method and action spans in a recorder.

    Items become ``task`` spans (``item_kind`` attribute: task/unigoal/multigoal) under
    the method they came from (or under ``parent`` at the top level), methods ``method``
    spans under their item, actions ``action`` spans under their method. Spans stay open
    until :meth:`on_end`, which ends them all, children before parents (so the tree
    invariants hold), with an outcome that tells the truth about the plan found:

    - ``ok``: the span is part of the plan — an applied action or method on the branch
      the search finished on, a task or goal whose method on that branch stayed;
    - ``failed``, with attribute ``failure`` (:data:`PlannerFailure`): ``inapplicable``
      (a method or action that did not apply), ``backtracked`` (anything reported at
      or after a method the search backtracked over, see
      :meth:`SearchTracer.on_backtrack` — top-level items and actions included),
      ``unrefined`` (a task or goal left without a method in the plan), ``no_plan``
      (anything else, when the search found no plan or raised).

    With the greedy strategy nothing is backtracked: a failure ends the search, so
    every span ends ``failed``. A search that reports only :meth:`on_end` leaves no
    spans; :attr:`started` counts the spans started, so a caller can tell whether the
    search's steps were traced.

    Threads: the search may run in a worker thread while the caller gives up on it
    (:meth:`abandon`, from another thread); the two are serialised so that nothing the
    tracer emits is still open when :meth:`abandon` returns.
    """

    def __init__(self, recorder: SpanRecorder, parent: OpenSpan | int | None = None) -> None:
        self.recorder = recorder
        self.parent = parent.id if isinstance(parent, OpenSpan) else parent
        self.started = 0
        """How many spans the search reported (items, methods and actions)."""
        self._open: dict[int, OpenSpan] = {}
        # Invariant: a token in _failures is never live again; a token absent from it is
        # part of the current branch of the search (until on_end says otherwise).
        self._failures: dict[int, PlannerFailure] = {}
        # The tokens not yet backtracked over, in the order they were started (ids grow
        # in that order): a backtrack abandons a suffix of it.
        self._order: list[int] = []
        self._lock = threading.RLock()
        self._abandoned = False

    def _start(self, name: str, kind: SpanKind, parent: int | None, **attrs: object) -> OpenSpan:
        parent_id = self.parent if parent is None else parent
        span = self.recorder.start(name, kind, parent_id, **attrs)
        self._open[span.id] = span
        self._order.append(span.id)
        self.started += 1
        return span

    def on_item(self, item: Any, kind: str, parent: int | None) -> int:
        return self.item(item_name(item), repr(item), kind, parent)

    def on_method(self, item_token: int, method: str, subitems: Sequence[Any] | None) -> int:
        return self.method(item_token, method, None if subitems is None else len(subitems))

    def on_action(self, item: Any, parent: int | None, applied: bool) -> None:
        self.action(str(item[0]), repr(tuple(item[1:])), parent, applied)

    # The same three, from what a span shows of them (replay_search uses these).

    def item(self, name: str, described: str, kind: str, parent: int | None) -> int:
        """:meth:`on_item` for an item known by its name and repr."""
        return self._start(name, "task", parent, item=described, item_kind=kind).id

    def method(self, item_token: int, method: str, subitems: int | None) -> int:
        """:meth:`on_method` for a refinement known by its length (``None``: inapplicable)."""
        span = self._start(
            method, "method", item_token, applicable=subitems is not None, subitems=subitems
        )
        if subitems is None:
            self._failures[span.id] = "inapplicable"
        return span.id

    def action(self, name: str, args: str, parent: int | None, applied: bool) -> None:
        """:meth:`on_action` for an action known by its name and the repr of its args."""
        span = self._start(name, "action", parent, args=args)
        if not applied:
            self._failures[span.id] = "inapplicable"

    def on_backtrack(self, method_token: int) -> None:
        # Everything started at or after the method was abandoned (its subtree, and the
        # items, methods and actions the search went on to outside it). Each token is
        # popped once: amortised O(1) per span.
        order = self._order
        while order and order[-1] >= method_token:
            self._failures.setdefault(order.pop(), "backtracked")

    def abandon(self) -> None:
        """Never emit this search's spans (for a search whose parent span ends before it
        does, e.g. a cancelled plan still running in a worker thread).

        The spans still open are dropped at :meth:`on_end`, unemitted. If
        :meth:`on_end` is running in another thread, this waits for it to finish (it
        only ends spans, it does not search), so that every span the tracer emitted
        ended before this returns — the caller may then end the parent span. Never
        raises.
        """
        with self._lock:
            self._abandoned = True

    def on_end(self, found: bool) -> None:
        with self._lock:
            if not self._abandoned:
                self._end_all(found)
            self._open.clear()
            self._order.clear()

    def _end_all(self, found: bool) -> None:
        refined: set[int] = set()  # items with a method that ended ok
        # Newest first: a child always has a larger id than its parent, so a method
        # ends before its item does.
        for token in reversed(self._open):
            span = self._open[token]
            failure = self._failures.get(token)
            if failure is None and not found:
                failure = "no_plan"
            if failure is None and span.kind == "task" and token not in refined:
                failure = "unrefined"
            if failure is None:
                if span.kind == "method" and span.parent is not None:
                    refined.add(span.parent)
                span.end("ok")
            else:
                span.end("failed", failure=failure)


def item_name(item: Any) -> str:
    """The span name of a to-do item: a task's or goal's name, else its type's."""
    return str(item[0]) if isinstance(item, tuple | list) and item else type(item).__name__


SearchEvent = list[Any]
"""One call a search made to its tracer, as data (JSON- and pickle-able), its time last:
``["item", token, parent, name, repr, kind, t]``, ``["method", token, item_token, name,
subitems or None, t]``, ``["action", parent, name, repr of args, applied, t]``,
``["backtrack", method_token, t]``, ``["end", found, t]``."""


class SearchLog:
    """A :class:`SearchTracer` writing the search down as :data:`SearchEvent` lists, to
    be shipped to where the spans are recorded (a search in a worker process) and turned
    into spans there by :func:`replay_search`.

    At most ``limit`` events are kept: past that the log is ``truncated`` and
    :attr:`events` is None (a cut log would tell untrue outcomes), ``seen`` still counts.
    """

    def __init__(self, limit: int, clock: Callable[[], float] = time.time) -> None:
        self.limit = limit
        self.clock = clock
        self.seen = 0
        self._events: list[SearchEvent] | None = []
        self._tokens = 0

    @property
    def truncated(self) -> bool:
        """Whether the search made more than ``limit`` calls."""
        return self._events is None

    @property
    def events(self) -> list[SearchEvent] | None:
        """The events in order, or None when truncated."""
        return self._events

    def _add(self, event: SearchEvent) -> None:
        self.seen += 1
        events = self._events
        if events is None:
            return
        if len(events) >= self.limit:
            self._events = None
            return
        event.append(self.clock())
        events.append(event)

    def _token(self) -> int:
        self._tokens += 1
        return self._tokens

    def on_item(self, item: Any, kind: str, parent: int | None) -> int:
        token = self._token()
        self._add(["item", token, parent, item_name(item), repr(item), kind])
        return token

    def on_method(self, item_token: int, method: str, subitems: Sequence[Any] | None) -> int:
        token = self._token()
        count = None if subitems is None else len(subitems)
        self._add(["method", token, item_token, method, count])
        return token

    def on_action(self, item: Any, parent: int | None, applied: bool) -> None:
        self._add(["action", parent, str(item[0]), repr(tuple(item[1:])), applied])

    def on_backtrack(self, method_token: int) -> None:
        self._add(["backtrack", method_token])

    def on_end(self, found: bool) -> None:
        self._add(["end", found])


def replay_search(events: Sequence[SearchEvent], tracer: PlannerSpanTracer) -> None:
    """Turn a :class:`SearchLog`'s events into spans through ``tracer`` (under its
    parent), with the times the search recorded: the same spans, outcomes and tree the
    tracer would have made watching the search itself.

    Raises:
        ValueError: an event is malformed or refers to a token never given (the spans
            replayed before it stay open until the tracer's ``on_end``).
    """
    recorder = tracer.recorder
    saved = recorder.clock
    clock = [0.0]
    recorder.clock = lambda: clock[0]
    tokens: dict[int, int] = {}
    try:
        for event in events:
            try:
                _replay(event, tracer, tokens, clock)
            except (TypeError, ValueError, KeyError) as exc:
                raise ValueError(f"malformed search event {event!r:.120}: {exc!r}") from exc
    finally:
        recorder.clock = saved


def _replay(
    event: SearchEvent, tracer: PlannerSpanTracer, tokens: dict[int, int], clock: list[float]
) -> None:
    kind, *fields, at = event
    clock[0] = float(at)
    if kind == "item":
        token, parent, name, described, item_kind = fields
        parent_id = None if parent is None else tokens[parent]
        tokens[token] = tracer.item(str(name), str(described), str(item_kind), parent_id)
    elif kind == "method":
        token, item_token, name, count = fields
        if count is not None and not isinstance(count, int):
            raise TypeError(f"subitems is a {type(count).__name__}")
        tokens[token] = tracer.method(tokens[item_token], str(name), count)
    elif kind == "action":
        parent, name, args, applied = fields
        parent_id = None if parent is None else tokens[parent]
        tracer.action(str(name), str(args), parent_id, bool(applied))
    elif kind == "backtrack":
        (method_token,) = fields
        tracer.on_backtrack(tokens[method_token])
    elif kind == "end":
        (found,) = fields
        tracer.on_end(bool(found))
    else:
        raise ValueError(f"unknown kind {kind!r}")
