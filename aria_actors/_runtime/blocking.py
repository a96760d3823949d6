"""Running blocking or CPU-heavy work off the event loop.

A handler must never block the loop: one slow handler would stall every actor on
the node. Blocking I/O (a synchronous client library, file system calls, hashing
large files) goes to a worker thread with :func:`run_blocking`; CPU-heavy pure
functions go to a worker process with :func:`run_in_process` (the function and its
arguments must pickle). Both are thin, documented wrappers over anyio's worker
pools, which bound their concurrency (40 threads by default; one process per core).

While the work runs, the calling handler is suspended, so the actor handles no
other message: the actor's state is never touched from two places at once. Pass
data in and out as arguments and return values; do not touch the actor from the
worker.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any, TypeVar

import anyio.to_process
import anyio.to_thread

T = TypeVar("T")


async def run_blocking(
    function: Callable[..., T],
    *args: Any,
    limiter: anyio.CapacityLimiter | None = None,
    **kwargs: Any,
) -> T:
    """Run ``function(*args, **kwargs)`` in a worker thread and return its result.

    ``limiter`` bounds how many such calls run at once (anyio's default: 40).
    If the caller is cancelled, the thread still runs to completion (threads cannot
    be interrupted) but its result is discarded.

    Raises:
        Whatever ``function`` raises, in the calling task.
    """
    return await anyio.to_thread.run_sync(partial(function, *args, **kwargs), limiter=limiter)


async def run_in_process(
    function: Callable[..., T],
    *args: Any,
    limiter: anyio.CapacityLimiter | None = None,
) -> T:
    """Run ``function(*args)`` in a worker process and return its result.

    For CPU-bound work that would hold the GIL. ``function`` must be importable
    (module level) and the arguments and result must pickle. ``limiter`` defaults
    to one process per core.

    Raises:
        Whatever ``function`` raises (re-raised in the caller), or
        ``anyio.BrokenWorkerProcess`` if the worker died.
    """
    return await anyio.to_process.run_sync(function, *args, limiter=limiter)
