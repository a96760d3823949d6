"""Spans: what planning and acting did, as a tree of timed, named records per plan.

A :class:`Span` is one finished unit of work — a task refined, a method chosen, an
action planned, a command executed, a plan or a replan — with an ``id``, the ``parent``
span's id (``None`` for the root), the ``trace`` it belongs to (one trace per acting
run or plan), a ``name``, a ``kind`` (closed vocabulary :data:`SpanKind`), ``start`` and
``end`` times, an ``outcome`` (:data:`SpanOutcome`) and flat ``attributes``.

Spans are produced by a :class:`SpanRecorder` (one per trace) and handed, as each one
finishes, to a :class:`SpanSink` — the seam later services (monitor, debugger) read
from. Two sinks ship here, both bounded and never blocking the event loop:

- :class:`MemorySpanSink`: a ring buffer keeping the newest ``capacity`` spans;
- :class:`JsonLinesSpanSink`: appends one JSON object per line to a file, from a
  worker thread, through a bounded buffer (when the buffer is full, new spans are
  dropped and counted, never waited for).

Invariants of a recorder's spans (what :func:`check_tree` verifies):

- every ``parent`` is the id of a span of the same trace (recorded before or after);
- ``start <= end``; a child starts no earlier than its parent and ends no later;
- a span is emitted exactly once, when it ends; ids are unique within a trace.

Because every span is emitted before its parent (children end first), a buffer that
keeps the *newest* spans it was given (both recorders and :class:`MemorySpanSink` do)
still holds a tree when it overflows: the ancestors of every span kept are kept too;
what is lost is the oldest leaves — for a trace of acting, the deepest steps of the
first searches. Losses are never silent: ``SpanRecorder.dropped`` and every sink's
``statistics().dropped`` count them. :data:`DEFAULT_SPAN_CAPACITY` is the default bound.

Planner spans (task, method, action) come from a :class:`PlannerSpanTracer`, which
implements the :class:`SearchTracer` hook a planner calls while it searches
(``Planner.find_plan(..., tracer=...)``); :func:`record_plan` derives one predicted
action span per planned action (with the action's predicted effects) from a finished
plan. A planner span ends ``ok`` only if it is part of the plan found; otherwise it
ends ``failed`` with a ``failure`` attribute saying why (:data:`PlannerFailure`).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Protocol

import msgspec

from .state import State

__all__ = [
    "DEFAULT_SPAN_CAPACITY",
    "AttributeValue",
    "JsonLinesSpanSink",
    "MemorySpanSink",
    "OpenSpan",
    "PlannerFailure",
    "PlannerSpanTracer",
    "SearchTracer",
    "SinkStatistics",
    "Span",
    "SpanKind",
    "SpanOutcome",
    "SpanRecorder",
    "SpanSink",
    "check_tree",
    "outcome_of",
    "predicted_effects",
    "read_spans",
    "record_plan",
]

SpanKind = Literal["acting", "plan", "replan", "task", "method", "action", "command", "event"]
"""What a span measures: the whole acting run, a (re)plan, a planner step, a command, an event."""

SpanOutcome = Literal["ok", "failed", "cancelled", "timeout"]
"""How a span ended."""

PlannerFailure = Literal["inapplicable", "backtracked", "unrefined", "no_plan"]
"""Why a planner span ended ``failed`` (its ``failure`` attribute): ``inapplicable``, the
method or action did not apply; ``backtracked``, it was on a branch the search abandoned;
``unrefined``, a task or goal none of whose methods stayed in the plan; ``no_plan``, the
search ended without a plan (or raised)."""

DEFAULT_SPAN_CAPACITY = 10_000
"""How many spans a :class:`SpanRecorder` or a :class:`MemorySpanSink` keeps by default."""

AttributeValue = str | int | float | bool | None
"""Attributes are flat scalars (anything else is stored as its ``repr``)."""


class Span(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """One finished unit of work (see the module docstring for the tree invariants)."""

    id: int
    """Unique within ``trace``; ids grow in the order spans are *started*."""
    parent: int | None
    """The enclosing span's id, or ``None`` for the trace's root."""
    trace: str
    """The acting run or plan the span belongs to."""
    name: str
    kind: SpanKind
    start: float
    """Seconds (the recorder's clock; wall-clock ``time.time`` by default)."""
    end: float
    """Invariant: ``start <= end``."""
    outcome: SpanOutcome
    attributes: dict[str, AttributeValue] = msgspec.field(default_factory=dict)
    """Flat scalars; treat as read-only."""


def _attr(value: object) -> AttributeValue:
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return repr(value)


def outcome_of(error: BaseException | None) -> SpanOutcome:
    """The outcome a span ends with when ``error`` escapes it (``None``: ``"ok"``)."""
    if error is None:
        return "ok"
    if isinstance(error, asyncio.CancelledError):
        return "cancelled"
    if isinstance(error, TimeoutError):
        return "timeout"
    return "failed"


# ==========================================================================================
# Sinks
# ==========================================================================================


class SpanSink(Protocol):
    """Where finished spans go. ``emit`` never blocks and never raises on overload.

    A sink that cannot keep up drops spans and counts them (:class:`SinkStatistics`);
    it must not grow without bound or make the caller wait.
    """

    def emit(self, span: Span) -> None:
        """Take one finished span."""


@dataclass(frozen=True)
class SinkStatistics:
    """A sink's counters: spans taken, spans held now, spans lost (evicted or dropped)."""

    emitted: int
    buffered: int
    dropped: int
    capacity: int


class MemorySpanSink:
    """A ring buffer of the newest ``capacity`` spans; older ones are evicted and counted.

    Keeping the newest keeps a tree (see the module docstring): when full, the spans
    evicted are the oldest, leaves before their ancestors. ``statistics().dropped`` is
    the number of spans evicted so far (spans forgotten by :meth:`clear` are not lost
    to overflow and are not counted). Thread-safe.
    """

    def __init__(self, capacity: int = DEFAULT_SPAN_CAPACITY) -> None:
        if capacity < 1:
            raise ValueError("capacity must be >= 1")
        self.capacity = capacity
        self._spans: collections.deque[Span] = collections.deque(maxlen=capacity)
        self._emitted = 0
        self._dropped = 0
        self._lock = threading.Lock()

    def emit(self, span: Span) -> None:
        """Keep ``span``, evicting (and counting) the oldest one when full."""
        with self._lock:
            if len(self._spans) == self.capacity:
                self._dropped += 1
            self._spans.append(span)
            self._emitted += 1

    def spans(self, trace: str | None = None) -> list[Span]:
        """The spans held, oldest first (only ``trace``'s when given)."""
        with self._lock:
            held = list(self._spans)
        return held if trace is None else [s for s in held if s.trace == trace]

    def clear(self) -> None:
        """Forget the spans held (the counters stay; forgotten spans are not ``dropped``)."""
        with self._lock:
            self._spans.clear()

    def statistics(self) -> SinkStatistics:
        """Counters: ``dropped`` is the number of spans evicted to make room."""
        with self._lock:
            return SinkStatistics(self._emitted, len(self._spans), self._dropped, self.capacity)


class JsonLinesSpanSink:
    """Appends spans to a JSON-lines file from a worker thread, through a bounded buffer.

    Use it as ``async with JsonLinesSpanSink(path) as sink:`` (or ``await sink.start()``
    … ``await sink.aclose()``) inside the event loop. :meth:`emit` only appends to the
    buffer (at most ``capacity`` spans) and wakes the writer; when the buffer is full
    the span is dropped and counted in ``statistics().dropped``. The writer encodes and
    appends batches of lines in a worker thread, so the loop never waits on the disk.
    ``emit`` may also be called from other threads (a planner's worker thread).

    :meth:`aclose` writes what is buffered and stops the writer. A write error
    (``OSError``) stops the writer; :meth:`aclose` re-raises it.
    """

    def __init__(self, path: str | Path, capacity: int = 4096) -> None:
        if capacity < 1:
            raise ValueError("capacity must be >= 1")
        self.path = Path(path)
        self.capacity = capacity
        self._buffer: collections.deque[Span] = collections.deque()
        self._lock = threading.Lock()
        self._emitted = 0
        self._dropped = 0
        self._written = 0
        self._wake: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    async def start(self) -> None:
        """Start the writer task in the running loop (idempotent)."""
        if self._task is not None:
            return
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._task = self._loop.create_task(self._write_loop(), name="span-jsonl-writer")

    async def __aenter__(self) -> JsonLinesSpanSink:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def emit(self, span: Span) -> None:
        """Buffer ``span`` for writing, or drop and count it when the buffer is full."""
        with self._lock:
            self._emitted += 1
            if len(self._buffer) >= self.capacity or self._closing:
                self._dropped += 1
                return
            self._buffer.append(span)
        self._notify()

    def _notify(self) -> None:
        loop, wake = self._loop, self._wake
        if loop is None or wake is None:
            return  # not started: spans wait in the buffer until start()
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            wake.set()
        else:
            with contextlib.suppress(RuntimeError):  # the loop is closed: aclose() flushes
                loop.call_soon_threadsafe(wake.set)

    async def _write_loop(self) -> None:
        assert self._wake is not None
        while True:
            await self._wake.wait()
            self._wake.clear()
            await self._flush()
            if self._closing:
                await self._flush()  # what came in during the last write (none comes after)
                return

    async def _flush(self) -> None:
        with self._lock:
            batch = list(self._buffer)
            self._buffer.clear()
        if batch:
            data = b"".join(msgspec.json.encode(s) + b"\n" for s in batch)
            await asyncio.to_thread(_append, self.path, data)
            self._written += len(batch)

    async def aclose(self) -> None:
        """Write the buffered spans, stop the writer. Raises the writer's ``OSError``, if any."""
        self._closing = True
        task = self._task
        if task is None:
            await self._flush()
            return
        if not task.done():
            assert self._wake is not None
            self._wake.set()
        await task

    def statistics(self) -> SinkStatistics:
        """Counters: ``buffered`` spans wait for the writer; ``dropped`` found it full."""
        with self._lock:
            return SinkStatistics(self._emitted, len(self._buffer), self._dropped, self.capacity)

    @property
    def written(self) -> int:
        """How many spans reached the file."""
        return self._written


def _append(path: Path, data: bytes) -> None:
    with path.open("ab") as f:
        f.write(data)


def read_spans(path: str | Path) -> list[Span]:
    """The spans in a JSON-lines file written by :class:`JsonLinesSpanSink`, in file order.

    Raises:
        OSError: the file cannot be read.
        msgspec.ValidationError: a line is not a span.
    """
    decoder = msgspec.json.Decoder(Span)
    with Path(path).open("rb") as f:
        return [decoder.decode(line) for line in f if line.strip()]


# ==========================================================================================
# Recorder
# ==========================================================================================


class OpenSpan:
    """A started span: ``set()`` attributes, then ``end()`` it once (further ends are no-ops)."""

    __slots__ = ("attributes", "ended", "id", "kind", "name", "parent", "recorder", "start")

    def __init__(
        self,
        recorder: SpanRecorder,
        id: int,
        parent: int | None,
        name: str,
        kind: SpanKind,
        start: float,
        attributes: dict[str, AttributeValue],
    ) -> None:
        self.recorder = recorder
        self.id = id
        self.parent = parent
        self.name = name
        self.kind = kind
        self.start = start
        self.attributes = attributes
        self.ended: Span | None = None

    def set(self, **attributes: object) -> None:
        """Add or replace attributes (non-scalars are stored as their ``repr``)."""
        self.attributes.update({k: _attr(v) for k, v in attributes.items()})

    def end(self, outcome: SpanOutcome = "ok", **attributes: object) -> Span:
        """Finish the span with ``outcome`` and emit it; returns the finished span."""
        if self.ended is not None:
            return self.ended
        self.set(**attributes)
        end = max(self.start, self.recorder.clock())
        span = Span(
            id=self.id,
            parent=self.parent,
            trace=self.recorder.trace,
            name=self.name,
            kind=self.kind,
            start=self.start,
            end=end,
            outcome=outcome,
            attributes=self.attributes,
        )
        self.ended = span
        self.recorder._finish(span)
        return span


class SpanRecorder:
    """Starts and finishes the spans of one trace; keeps the newest ``keep`` finished ones.

    Every finished span is kept here (``spans``; at most ``keep``, the oldest evicted
    first, see the module docstring for why that still leaves a tree) and emitted to
    ``sink`` if one is given. :attr:`dropped` counts the spans evicted from ``spans``:
    when it is not 0, ``spans`` is an incomplete trace (what a sink lost is counted by
    the sink's own ``statistics()``). The clock (``time.time`` by default) must not go
    backwards; ``end`` is clamped to ``start`` if it does. Not thread-safe: use one
    recorder from one thread at a time.

    Raises:
        ValueError: ``keep`` < 1.
    """

    def __init__(
        self,
        trace: str,
        sink: SpanSink | None = None,
        *,
        clock: Callable[[], float] = time.time,
        keep: int = DEFAULT_SPAN_CAPACITY,
    ) -> None:
        if keep < 1:
            raise ValueError("keep must be >= 1")
        self.trace = trace
        self.sink = sink
        self.clock = clock
        self.keep = keep
        self._ids = itertools.count(1)
        self._spans: collections.deque[Span] = collections.deque(maxlen=keep)
        self._dropped = 0

    @property
    def dropped(self) -> int:
        """How many finished spans were evicted from :attr:`spans` to stay within ``keep``."""
        return self._dropped

    @property
    def spans(self) -> list[Span]:
        """The finished spans kept, in the order they ended."""
        return list(self._spans)

    def start(
        self,
        name: str,
        kind: SpanKind,
        parent: OpenSpan | int | None = None,
        **attributes: object,
    ) -> OpenSpan:
        """Start a span now, under ``parent`` (an open span or a span id)."""
        parent_id = parent.id if isinstance(parent, OpenSpan) else parent
        return OpenSpan(
            self,
            next(self._ids),
            parent_id,
            name,
            kind,
            self.clock(),
            {k: _attr(v) for k, v in attributes.items()},
        )

    @contextlib.contextmanager
    def span(
        self,
        name: str,
        kind: SpanKind,
        parent: OpenSpan | int | None = None,
        **attributes: object,
    ) -> Iterator[OpenSpan]:
        """A span around a block: its outcome is :func:`outcome_of` what escapes the block
        (unless the block ended the span itself). The exception is re-raised."""
        open_span = self.start(name, kind, parent, **attributes)
        try:
            yield open_span
        except BaseException as e:
            open_span.end(outcome_of(e), error=f"{type(e).__name__}: {e}")
            raise
        open_span.end("ok")

    def record(
        self,
        name: str,
        kind: SpanKind,
        parent: OpenSpan | int | None,
        start: float,
        end: float,
        outcome: SpanOutcome = "ok",
        **attributes: object,
    ) -> Span:
        """Record an already finished span (for spans derived after the fact)."""
        open_span = self.start(name, kind, parent, **attributes)
        open_span.start = start
        span = Span(
            id=open_span.id,
            parent=open_span.parent,
            trace=self.trace,
            name=name,
            kind=kind,
            start=start,
            end=max(start, end),
            outcome=outcome,
            attributes=open_span.attributes,
        )
        open_span.ended = span
        self._finish(span)
        return span

    def _finish(self, span: Span) -> None:
        if len(self._spans) == self.keep:
            self._dropped += 1
        self._spans.append(span)
        if self.sink is not None:
            self.sink.emit(span)


def check_tree(spans: Sequence[Span]) -> list[str]:
    """The violations of the span-tree invariants in ``spans`` (empty: a proper tree).

    Checks, per trace: ids unique; ``start <= end`` (a NaN time violates it); every
    parent present in the same trace; children inside their parent's interval; no
    span its own ancestor (a cycle of parents, which would otherwise hide behind a
    valid root); exactly one root. Problems are listed in a deterministic order (the
    spans' order, then the traces sorted).
    """
    problems: list[str] = []
    by_id: dict[tuple[str, int], Span] = {}
    for s in spans:
        key = (s.trace, s.id)
        if key in by_id:
            problems.append(f"duplicate span id {s.id} in trace {s.trace}")
        by_id[key] = s
        if not s.start <= s.end:
            problems.append(f"span {s.id} {s.name}: start {s.start} > end {s.end}")
    roots: dict[str, int] = collections.Counter()
    for s in spans:
        if s.parent is None:
            roots[s.trace] += 1
            continue
        parent = by_id.get((s.trace, s.parent))
        if parent is None:
            problems.append(f"span {s.id} {s.name}: parent {s.parent} is missing")
        elif not (parent.start <= s.start and s.end <= parent.end):
            problems.append(
                f"span {s.id} {s.name} [{s.start}, {s.end}] is not inside its parent "
                f"{parent.id} {parent.name} [{parent.start}, {parent.end}]"
            )
    problems.extend(_parent_cycles(by_id))
    for trace in sorted({s.trace for s in spans}):
        if roots[trace] != 1:
            problems.append(f"trace {trace} has {roots[trace]} roots")
    return problems


def _parent_cycles(by_id: dict[tuple[str, int], Span]) -> list[str]:
    """One problem per cycle of parent links (each span is walked once: O(n))."""
    problems: list[str] = []
    settled: set[tuple[str, int]] = set()
    for start in by_id:
        path: list[tuple[str, int]] = []
        on_path: set[tuple[str, int]] = set()
        key: tuple[str, int] | None = start
        while key is not None and key in by_id and key not in settled:
            if key in on_path:
                cycle = [k[1] for k in path[path.index(key) :]]
                problems.append(
                    f"spans {cycle} in trace {key[0]} form a cycle of parents "
                    f"(each is its own ancestor)"
                )
                break
            on_path.add(key)
            path.append(key)
            parent = by_id[key].parent
            key = None if parent is None else (key[0], parent)
        settled.update(path)
    return problems


# ==========================================================================================
# Planner spans
# ==========================================================================================


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
        name = str(item[0]) if isinstance(item, tuple | list) and item else type(item).__name__
        return self._start(name, "task", parent, item=repr(item), item_kind=kind).id

    def on_method(self, item_token: int, method: str, subitems: Sequence[Any] | None) -> int:
        span = self._start(
            method,
            "method",
            item_token,
            applicable=subitems is not None,
            subitems=len(subitems) if subitems is not None else None,
        )
        if subitems is None:
            self._failures[span.id] = "inapplicable"
        return span.id

    def on_action(self, item: Any, parent: int | None, applied: bool) -> None:
        span = self._start(str(item[0]), "action", parent, args=repr(tuple(item[1:])))
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
