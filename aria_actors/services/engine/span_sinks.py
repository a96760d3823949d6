"""Where finished spans go: the :class:`SpanSink` seam and the two sinks shipped.

Both sinks are bounded and never block the event loop: :class:`MemorySpanSink` keeps the
newest ``capacity`` spans; :class:`JsonLinesSpanSink` appends JSON lines from a worker
thread through a bounded buffer, dropping (and counting) what does not fit.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Protocol

import msgspec

from .span_model import DEFAULT_SPAN_CAPACITY, Span

__all__ = [
    "JsonLinesSpanSink",
    "MemorySpanSink",
    "SinkStatistics",
    "SpanSink",
    "TeeSpanSink",
    "read_spans",
]


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

    With ``max_bytes``, the file is rotated before a write would take it past that size:
    it is renamed ``<name>.1`` (replacing the previous one) and a new file is started,
    so the two hold at most about ``2 * max_bytes``; lines are never split.
    """

    def __init__(
        self, path: str | Path, capacity: int = 4096, max_bytes: int | None = None
    ) -> None:
        if capacity < 1:
            raise ValueError("capacity must be >= 1")
        if max_bytes is not None and max_bytes < 1:
            raise ValueError("max_bytes must be >= 1 (or None)")
        self.path = Path(path)
        self.capacity = capacity
        self.max_bytes = max_bytes
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
            await asyncio.to_thread(_append, self.path, data, self.max_bytes)
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


def _append(path: Path, data: bytes, max_bytes: int | None) -> None:
    if max_bytes is not None:
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            size = 0
        if size and size + len(data) > max_bytes:
            os.replace(path, path.with_name(path.name + ".1"))
    with path.open("ab") as f:
        f.write(data)


class TeeSpanSink:
    """Hands every span to each of ``sinks``, in order (statistics are the sinks' own)."""

    def __init__(self, *sinks: SpanSink) -> None:
        self.sinks = sinks

    def emit(self, span: Span) -> None:
        """Emit ``span`` to every sink."""
        for sink in self.sinks:
            sink.emit(span)


def read_spans(path: str | Path) -> list[Span]:
    """The spans in a JSON-lines file written by :class:`JsonLinesSpanSink`, in file order.

    Raises:
        OSError: the file cannot be read.
        msgspec.ValidationError: a line is not a span.
    """
    decoder = msgspec.json.Decoder(Span)
    with Path(path).open("rb") as f:
        return [decoder.decode(line) for line in f if line.strip()]
