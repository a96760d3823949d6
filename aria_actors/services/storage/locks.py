"""Coordination between adds, fetches and the garbage collector.

:class:`StoreLock` is a read/write lock per store. Adds, fetches and integrity checks
hold it shared; the garbage collector holds it exclusively, so it never runs while a
make writes into (or dedups against) the same store, nor while a fetch reads it.
:class:`Coordination` is what one node's catalogue and maintenance actors share: a
lock per store and the :class:`~.index_files.IndexGuard`; :func:`coordination` gives
the node's, which outlives restarts of either actor.
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .index_files import IndexGuard

if TYPE_CHECKING:
    from ..._runtime.node import Node


class StoreLock:
    """A FIFO read/write lock on one store, for one event loop.

    ``shared()`` (adds, fetches) may be held by many at once; ``exclusive()`` (the
    garbage collector) by one, alone. Waiters are served in arrival order, so a
    waiting collector holds back later adds instead of waiting forever.
    """

    def __init__(self) -> None:
        self.readers = 0
        self.writer = False
        self._waiters: deque[tuple[bool, asyncio.Future[None]]] = deque()

    @property
    def waiting(self) -> int:
        return sum(1 for _, future in self._waiters if not future.done())

    @contextlib.asynccontextmanager
    async def shared(self) -> AsyncIterator[None]:
        await self._acquire(exclusive=False)
        try:
            yield
        finally:
            self.readers -= 1
            self._wake()

    @contextlib.asynccontextmanager
    async def exclusive(self) -> AsyncIterator[None]:
        await self._acquire(exclusive=True)
        try:
            yield
        finally:
            self.writer = False
            self._wake()

    def _grantable(self, exclusive: bool) -> bool:
        if exclusive:
            return not self.writer and self.readers == 0
        return not self.writer

    def _grant(self, exclusive: bool) -> None:
        if exclusive:
            self.writer = True
        else:
            self.readers += 1

    async def _acquire(self, exclusive: bool) -> None:
        if not self.waiting and self._grantable(exclusive):
            self._grant(exclusive)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((exclusive, future))
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():  # granted as we were cancelled
                if exclusive:
                    self.writer = False
                else:
                    self.readers -= 1
            self._wake()
            raise

    def _wake(self) -> None:
        while self._waiters:
            exclusive, future = self._waiters[0]
            if future.done():
                self._waiters.popleft()
                continue
            if not self._grantable(exclusive):
                return
            self._waiters.popleft()
            self._grant(exclusive)
            future.set_result(None)
            if exclusive:
                return


@dataclass
class Coordination:
    """What the catalogue and maintenance actors of one node share: a lock per store
    and the index guard. It outlives restarts of either actor."""

    locks: dict[str, StoreLock] = field(default_factory=dict)
    guard: IndexGuard = field(default_factory=IndexGuard)

    def lock(self, store: str) -> StoreLock:
        found = self.locks.get(store)
        if found is None:
            found = self.locks[store] = StoreLock()
        return found


_COORDINATION: weakref.WeakKeyDictionary[Node, Coordination] = weakref.WeakKeyDictionary()


def coordination(node: Node) -> Coordination:
    """The node's store locks and index guard (shared by the catalogue and maintenance)."""
    found = _COORDINATION.get(node)
    if found is None:
        found = _COORDINATION[node] = Coordination()
    return found
