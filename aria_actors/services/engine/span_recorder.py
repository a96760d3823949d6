"""Recording the spans of one trace: :class:`SpanRecorder`, :class:`OpenSpan`, and
:func:`check_tree`, which verifies the invariants listed in :mod:`.spans`."""

from __future__ import annotations

import collections
import contextlib
import itertools
import time
from collections.abc import Callable, Iterator, Sequence

from .span_model import (
    DEFAULT_SPAN_CAPACITY,
    AttributeValue,
    Span,
    SpanKind,
    SpanOutcome,
    as_attribute,
    outcome_of,
)
from .span_sinks import SpanSink

__all__ = ["OpenSpan", "SpanRecorder", "check_tree"]


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
        self.attributes.update({k: as_attribute(v) for k, v in attributes.items()})

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
            {k: as_attribute(v) for k, v in attributes.items()},
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
