"""The span record and its closed vocabularies (see :mod:`.spans` for the whole picture)."""

from __future__ import annotations

import asyncio
from typing import Literal

import msgspec

__all__ = [
    "DEFAULT_SPAN_CAPACITY",
    "AttributeValue",
    "PlannerFailure",
    "Span",
    "SpanKind",
    "SpanOutcome",
    "as_attribute",
    "outcome_of",
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


def as_attribute(value: object) -> AttributeValue:
    """``value`` as a span attribute: flat scalars as they are, anything else its repr."""
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
