"""Helpers for testing code built on aria_actors.

- :class:`VirtualClock`: pass it as ``Node(clock=...)`` and step supervisors'
  restart-intensity windows with :meth:`VirtualClock.advance` instead of sleeping.
- :func:`wait_until`: poll a condition on the event loop with a deadline.
- :func:`wait_restarted`: wait until a registered name points at a new, live actor.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from ._runtime.node import Node
from ._runtime.ref import ActorRef


class VirtualClock:
    """A monotonic clock that moves only when told to."""

    __slots__ = ("now",)

    def __init__(self, start: float = 0.0) -> None:
        self.now = float(start)

    def monotonic(self) -> float:
        """The current virtual time, in seconds."""
        return self.now

    def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds`` (must not be negative).

        Raises:
            ValueError: ``seconds`` is negative.
        """
        if seconds < 0:
            raise ValueError(f"a monotonic clock cannot go back ({seconds}s)")
        self.now += seconds


async def wait_until(
    condition: Callable[[], bool], timeout: float = 5.0, interval: float = 0.001
) -> None:
    """Wait until ``condition()`` is true, checking every ``interval`` seconds.

    Raises:
        TimeoutError: still false after ``timeout`` seconds.
    """
    async with asyncio.timeout(timeout):
        while not condition():  # noqa: ASYNC110 - polling a plain predicate is the point
            await asyncio.sleep(interval)


async def wait_restarted(
    node: Node, name: str, previous: ActorRef | None, timeout: float = 5.0
) -> ActorRef:
    """Wait until ``name`` is registered to a live actor other than ``previous``; return it.

    Raises:
        TimeoutError: no such actor within ``timeout`` seconds.
    """

    def restarted() -> bool:
        ref = node.whereis(name)
        return ref is not None and ref != previous and ref.is_alive()

    await wait_until(restarted, timeout)
    ref = node.whereis(name)
    assert ref is not None
    return ref
