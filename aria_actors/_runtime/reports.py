"""Structured reports: crash reports, supervisor reports, dead letters.

Every abnormal exit (any kind but ``normal`` and ``shutdown``) gives one
``crash_report`` event, logged at error level through structlog with the actor,
its class, its service, the message it was handling, the reason and, for an
error, the traceback. Supervisors report children that exit, restarts and giving
up. Dead letters are logged one by one up to a rate, then summarised.

The runtime never configures structlog: the daemon or the embedding app does.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Final

import structlog

if TYPE_CHECKING:
    from .messages import ExitReason
    from .process import Process

MESSAGE_REPR_LIMIT: Final = 500

logger = structlog.get_logger("aria_actors")


def short_repr(value: object, limit: int = MESSAGE_REPR_LIMIT) -> str:
    """``repr(value)`` cut to ``limit`` characters, never raising."""
    try:
        text = repr(value)
    except Exception as exc:  # a broken __repr__ must not hide the report
        text = f"<{type(value).__qualname__}: repr failed: {exc!r}>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def crash_report(proc: Process, reason: ExitReason, current: object, via: Process | None) -> None:
    """Log the one crash report of an abnormal exit."""
    message = getattr(current, "message", current)
    fields: dict[str, Any] = {
        "actor": repr(proc.ref),
        "actor_class": f"{proc.actor_class.__module__}.{proc.actor_class.__qualname__}",
        "service": proc.service,
        "reason": str(reason),
        "reason_kind": reason.kind,
        "message": short_repr(message) if message is not None else None,
        "messages_handled": proc.handled,
    }
    if via is not None:
        fields["linked_from"] = repr(via.ref)
    if reason.traceback:
        fields["traceback"] = reason.traceback
    logger.error("crash_report", **fields)


def supervisor_report(event: str, level: str = "warning", **fields: Any) -> None:
    """Log a supervisor event (``child_exited``, ``child_restarted``, ``supervisor_gave_up``...)."""
    getattr(logger, level)(event, **fields)


class DeadLetterLog:
    """Logs dead letters one by one up to ``per_second``, then counts the rest."""

    __slots__ = ("logged", "per_second", "suppressed", "window")

    def __init__(self, per_second: int) -> None:
        self.per_second = per_second
        self.window = 0.0
        self.logged = 0
        self.suppressed = 0

    def record(self, target: str, message: object, why: str, count: int = 1) -> None:
        """Note ``count`` dead letters to ``target``; log them if the rate allows."""
        now = time.monotonic()
        if now - self.window >= 1.0:
            if self.suppressed:
                logger.warning("dead_letters_suppressed", count=self.suppressed)
            self.window = now
            self.logged = 0
            self.suppressed = 0
        if self.logged < self.per_second:
            self.logged += 1
            logger.warning(
                "dead_letter",
                actor=target,
                why=why,
                message=short_repr(message),
                count=count,
            )
        else:
            self.suppressed += count
