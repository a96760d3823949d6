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

Planner spans (task, method, action) come from a :class:`PlannerSpanTracer`, which
implements the :class:`SearchTracer` hook a planner calls while it searches
(``Planner.find_plan(..., tracer=...)``); :func:`record_plan` derives one predicted
action span per planned action (with the action's predicted effects) from a finished
plan.
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
    "AttributeValue",
    "JsonLinesSpanSink",
    "MemorySpanSink",
    "OpenSpan",
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
    """A ring buffer of the newest ``capacity`` spans (older ones are evicted and counted)."""

    def __init__(self, capacity: int = 10_000) -> None:
        if capacity < 1:
            raise ValueError("capacity must be >= 1")
        self.capacity = capacity
        self._spans: collections.deque[Span] = collections.deque(maxlen=capacity)
        self._emitted = 0
        self._lock = threading.Lock()

    def emit(self, span: Span) -> None:
        """Keep ``span``, evicting the oldest one when full. Thread-safe."""
        with self._lock:
            self._spans.append(span)
            self._emitted += 1

    def spans(self, trace: str | None = None) -> list[Span]:
        """The spans held, oldest first (only ``trace``'s when given)."""
        with self._lock:
            held = list(self._spans)
        return held if trace is None else [s for s in held if s.trace == trace]

    def clear(self) -> None:
        """Forget the spans held (the counters stay)."""
        with self._lock:
            self._spans.clear()

    def statistics(self) -> SinkStatistics:
        """Counters: ``dropped`` is the number of spans evicted to make room."""
        with self._lock:
            held = len(self._spans)
            return SinkStatistics(self._emitted, held, self._emitted - held, self.capacity)


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

    Every finished span is kept here (``spans``; at most ``keep``, older ones are
    evicted and counted in ``evicted``) and emitted to ``sink`` if one is given. The
    clock (``time.time`` by default) must not go backwards; ``end`` is clamped to
    ``start`` if it does. Not thread-safe: use one recorder from one thread at a time.
    """

    def __init__(
        self,
        trace: str,
        sink: SpanSink | None = None,
        *,
        clock: Callable[[], float] = time.time,
        keep: int = 10_000,
    ) -> None:
        if keep < 1:
            raise ValueError("keep must be >= 1")
        self.trace = trace
        self.sink = sink
        self.clock = clock
        self._ids = itertools.count(1)
        self._spans: collections.deque[Span] = collections.deque(maxlen=keep)
        self.evicted = 0

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
        if len(self._spans) == self._spans.maxlen:
            self.evicted += 1
        self._spans.append(span)
        if self.sink is not None:
            self.sink.emit(span)


def check_tree(spans: Sequence[Span]) -> list[str]:
    """The violations of the span-tree invariants in ``spans`` (empty: a proper tree).

    Checks: ids unique per trace, every parent present in the same trace, ``start <=
    end``, children inside their parent's interval, exactly one root per trace.
    """
    problems: list[str] = []
    by_id: dict[tuple[str, int], Span] = {}
    for s in spans:
        key = (s.trace, s.id)
        if key in by_id:
            problems.append(f"duplicate span id {s.id} in trace {s.trace}")
        by_id[key] = s
        if s.start > s.end:
            problems.append(f"span {s.id} {s.name}: start {s.start} > end {s.end}")
    roots: dict[str, int] = collections.Counter()
    for s in spans:
        if s.parent is None:
            roots[s.trace] += 1
            continue
        parent = by_id.get((s.trace, s.parent))
        if parent is None:
            problems.append(f"span {s.id} {s.name}: parent {s.parent} is missing")
        elif s.start < parent.start or s.end > parent.end:
            problems.append(
                f"span {s.id} {s.name} [{s.start}, {s.end}] is not inside its parent "
                f"{parent.id} {parent.name} [{parent.start}, {parent.end}]"
            )
    for trace in {s.trace for s in spans}:
        if roots[trace] != 1:
            problems.append(f"trace {trace} has {roots[trace]} roots")
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
        """Everything under the method (token from :meth:`on_method`) was abandoned."""

    def on_end(self, found: bool) -> None:
        """The search ended, with a plan or without one."""


class PlannerSpanTracer:
    """A :class:`SearchTracer` recording task, method and action spans in a recorder.

    Items become ``task`` spans (``kind`` attribute: task/unigoal/multigoal), methods
    ``method`` spans under their item (outcome ``failed`` when the method did not apply
    or was backtracked over), actions ``action`` spans under their method (``failed``
    when not applicable). Spans stay open until :meth:`on_end`, which closes them all:
    ``ok`` unless marked failed, or ``failed`` for everything when no plan was found;
    children are closed before their parents, so the tree invariants hold.
    """

    def __init__(self, recorder: SpanRecorder, parent: OpenSpan | int | None = None) -> None:
        self.recorder = recorder
        self.parent = parent.id if isinstance(parent, OpenSpan) else parent
        self._open: dict[int, OpenSpan] = {}
        self._failed: set[int] = set()
        self._children: dict[int, list[int]] = collections.defaultdict(list)
        self._abandoned = False

    def _start(self, name: str, kind: SpanKind, parent: int | None, **attrs: object) -> OpenSpan:
        parent_id = self.parent if parent is None else parent
        span = self.recorder.start(name, kind, parent_id, **attrs)
        self._open[span.id] = span
        if parent_id is not None:
            self._children[parent_id].append(span.id)
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
            self._failed.add(span.id)
        return span.id

    def on_action(self, item: Any, parent: int | None, applied: bool) -> None:
        span = self._start(str(item[0]), "action", parent, args=repr(tuple(item[1:])))
        if not applied:
            self._failed.add(span.id)

    def on_backtrack(self, method_token: int) -> None:
        stack = [method_token]
        while stack:
            token = stack.pop()
            if token in self._failed:
                continue  # already backtracked over (with its subtree), or a failed leaf
            self._failed.add(token)
            stack.extend(self._children.get(token, ()))

    def abandon(self) -> None:
        """Drop the open spans unemitted, now and at :meth:`on_end` (for a search whose
        parent span ends before it does, e.g. a cancelled plan in a worker thread)."""
        self._abandoned = True

    def on_end(self, found: bool) -> None:
        if self._abandoned:
            self._open.clear()
            return
        # Newest first: a child always has a larger id than its parent.
        for token in sorted(self._open, reverse=True):
            failed = not found or token in self._failed
            self._open[token].end("failed" if failed else "ok")
        self._open.clear()
