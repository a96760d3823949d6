"""The worker pool behind make and extract: ordered, bounded, on both cores.

Chunking is sequential (each cut depends on the last), but hashing, compressing,
decompressing and writing chunks are independent: they run in a thread pool whose
heavy calls (hashlib, zstd, zlib, lzma, file I/O, the C chunker) release the GIL.
:class:`OrderedPool` keeps at most ``window`` tasks in flight (memory stays bounded on
any input size) and hands results back in submission order.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from types import TracebackType
from typing import Generic, TypeVar

T = TypeVar("T")


def default_workers() -> int:
    """Worker threads: one per core this process may use (at least 2, for I/O overlap)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cores = os.cpu_count() or 2
    return max(2, cores)


class OrderedPool(Generic[T]):
    """Submit callables; get their results back in submission order.

    ``submit`` blocks (by draining the oldest result into the ready queue) once
    ``window`` tasks are pending. The first exception of a task is raised from
    :meth:`results`/:meth:`drain`; pending tasks are cancelled on close.
    """

    def __init__(self, workers: int | None = None, window: int | None = None) -> None:
        self.workers = workers or default_workers()
        self.window = window or self.workers * 8
        self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="aria-storage")
        self._pending: deque[Future[T]] = deque()
        self._ready: deque[T] = deque()

    def submit(self, fn: Callable[..., T], *args: object) -> None:
        while len(self._pending) >= self.window:
            self._ready.append(self._pending.popleft().result())
        self._pending.append(self._pool.submit(fn, *args))

    def results(self) -> Iterator[T]:
        """The results ready so far (without waiting for running tasks)."""
        while self._ready:
            yield self._ready.popleft()
        while self._pending and self._pending[0].done():
            yield self._pending.popleft().result()

    def drain(self) -> Iterator[T]:
        """Every remaining result, waiting for each in order."""
        yield from self.results()
        while self._pending:
            yield self._pending.popleft().result()

    def close(self) -> None:
        for future in self._pending:
            future.cancel()
        self._pending.clear()
        self._pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> OrderedPool[T]:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
