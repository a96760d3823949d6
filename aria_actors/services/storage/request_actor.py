"""Answering calls from tasks: the base of aria_storage's actors.

Long operations never hold a mailbox: each request runs in a task answering later
(a deferred reply). Expected failures (bad requests, a damaged index, a store or the
database down) go back to the caller; anything else is a bug and crashes the actor,
which its supervisor restarts.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, Final

from ..._runtime.actor import Actor
from ..._runtime.errors import AriaError
from ..._runtime.messages import ExitReason
from .metrics import Metrics

EXPECTED: Final = (AriaError, ValueError, OSError)
"""What a request may fail with and still leave the actor running (AriaError covers
StorageError, DatabaseError, SecretsError, NoProcess, CallTimeout...)."""


class RequestActor(Actor):
    """An actor answering calls from tasks of its own (the base of the store,
    catalogue and maintenance actors)."""

    def _start_requests(self, metrics: Metrics | None = None) -> None:
        self.tasks: set[asyncio.Task[None]] = set()
        self.metrics_ref = metrics

    def answer(self, op: str, work: Callable[[], Awaitable[Any]]) -> None:
        """Answer the current call from a task: expected failures go back to the
        caller, anything else crashes the actor after failing the call."""
        reply = self.defer_reply()
        metrics = self.metrics_ref

        async def run() -> None:
            try:
                result = await work()
            except EXPECTED as exc:
                if metrics is not None:
                    metrics.operations.labels(op=op, outcome="error").inc()
                reply.fail(exc)
                return
            except Exception as exc:
                reply.fail(exc)
                self.stop(ExitReason.from_exception(exc))  # a bug: restart clean
                return
            if metrics is not None:
                metrics.operations.labels(op=op, outcome="ok").inc()
            reply.reply(result)

        task = self.start_task(run())
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _finish_tasks(self, timeout: float) -> None:
        if self.tasks:
            await asyncio.wait(self.tasks, timeout=timeout)
        for task in self.tasks:
            task.cancel()
