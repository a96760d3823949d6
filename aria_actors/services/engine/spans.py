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

from .planner_spans import (
    PlannerSpanTracer,
    SearchEvent,
    SearchLog,
    SearchTracer,
    predicted_effects,
    record_plan,
    replay_search,
)
from .span_model import (
    DEFAULT_SPAN_CAPACITY,
    AttributeValue,
    PlannerFailure,
    Span,
    SpanKind,
    SpanOutcome,
    outcome_of,
)
from .span_recorder import OpenSpan, SpanRecorder, check_tree
from .span_sinks import (
    JsonLinesSpanSink,
    MemorySpanSink,
    SinkStatistics,
    SpanSink,
    TeeSpanSink,
    read_spans,
)

__all__ = [
    "DEFAULT_SPAN_CAPACITY",
    "AttributeValue",
    "JsonLinesSpanSink",
    "MemorySpanSink",
    "OpenSpan",
    "PlannerFailure",
    "PlannerSpanTracer",
    "SearchEvent",
    "SearchLog",
    "SearchTracer",
    "SinkStatistics",
    "Span",
    "SpanKind",
    "SpanOutcome",
    "SpanRecorder",
    "SpanSink",
    "TeeSpanSink",
    "check_tree",
    "outcome_of",
    "predicted_effects",
    "read_spans",
    "record_plan",
    "replay_search",
]
