"""The service's span export: ``aria_engine.span_log``, JSON lines other services read.

The actor (:class:`SpanLogActor`) owns one :class:`~.span_sinks.JsonLinesSpanSink` per
node, at ``[services.aria_engine] span_log`` (under the node's state directory when
relative; rotated to ``<name>.1`` past ``span_log_max_bytes``), and publishes it for the
node's character actors (:func:`span_log_sink`): every span of every character's run is
written there as well as kept in the character's memory. The file is what a monitor or
debugger reads (:func:`~.span_sinks.read_spans`), each line one
:class:`~.span_model.Span`, the spans of a run sharing its ``trace``
(``character.<id>.<run>``).

The export never slows acting down: the sink buffers (bounded) and writes from a worker
thread; what does not fit is dropped and counted (:class:`SpanLogStatus`). With
``span_log = ""``, or a node without a state directory and a relative path, there is
no export (the status says so); nor when its directory cannot be created (logged, and
the status says why: acting never depends on the export). The actor starts before the
characters and stops after them, flushing what they emitted last; a write error
(``OSError``) is logged when it stops, and the file keeps what was written before.
"""

from __future__ import annotations

import weakref
from pathlib import Path
from typing import Any

import msgspec

from ..._runtime.actor import Actor, handles
from ..._runtime.node import Node
from .settings import SERVICE, load_settings
from .span_sinks import JsonLinesSpanSink, SpanSink

__all__ = ["GetSpanLog", "SpanLogActor", "SpanLogStatus", "span_log_sink"]

BUFFER: int = 16_384
"""Spans the export buffers before it drops (the writer drains it continuously)."""

_SINKS: weakref.WeakKeyDictionary[Node, JsonLinesSpanSink] = weakref.WeakKeyDictionary()


def span_log_sink(node: Node) -> SpanSink | None:
    """The node's span export, or None when it is off (or its actor is not running)."""
    return _SINKS.get(node)


class GetSpanLog(msgspec.Struct, frozen=True, tag=True):
    """Where the spans go and how the export is doing (a :class:`SpanLogStatus`)."""


class SpanLogStatus(msgspec.Struct, frozen=True, tag=True, kw_only=True):
    """``path`` None: no export (``error`` says why when it is not turned off).
    ``emitted``: spans handed to it; ``written``: spans in the file; ``dropped``: spans
    lost because the buffer was full."""

    path: str | None
    error: str | None = None
    emitted: int = 0
    written: int = 0
    dropped: int = 0


class SpanLogActor(Actor):
    """``aria_engine.span_log``; see the module documentation."""

    async def init(self) -> None:
        settings = load_settings(self.node.service_settings(SERVICE))
        self.sink: JsonLinesSpanSink | None = None
        self.error: str | None = None
        if not settings.span_log:
            return
        path = Path(settings.span_log)
        if not path.is_absolute():
            if self.node.state_dir is None:
                self.log.info("span_log_off", reason="the node has no state directory")
                return
            path = Path(self.node.state_dir) / path
        try:
            await self.run_blocking(lambda: path.parent.mkdir(parents=True, exist_ok=True))
        except OSError as exc:  # acting goes on without the export; the status says why
            self.error = f"cannot create {path.parent}: {exc}"
            self.log.error("span_log_off", error=self.error)
            return
        self.sink = JsonLinesSpanSink(path, BUFFER, max_bytes=settings.span_log_max_bytes)
        await self.sink.start()
        _SINKS[self.node] = self.sink

    async def terminate(self, reason: Any) -> None:
        sink = self.sink
        if sink is None:
            return
        if _SINKS.get(self.node) is sink:
            del _SINKS[self.node]
        try:
            await sink.aclose()
        except OSError as exc:
            self.log.error("span_log_write_failed", path=str(sink.path), error=str(exc))

    @handles(GetSpanLog)
    def status(self, message: GetSpanLog) -> SpanLogStatus:
        sink = self.sink
        if sink is None:
            return SpanLogStatus(path=None, error=self.error)
        stats = sink.statistics()
        return SpanLogStatus(
            path=str(sink.path), emitted=stats.emitted, written=sink.written, dropped=stats.dropped
        )
