"""Embedding a node in an application that is not async everywhere.

::

    with NodeThread(name="aria") as node:                 # a node in a background thread
        ref = node.spawn(Counter, name="counter", start=5)
        node.cast(ref, Inc(n=2))                          # from any thread
        assert node.call(ref, Get()) == 7

The node and its actors run on an event loop of their own in a daemon thread.
Every method here is thread-safe and blocks its caller until the node has done
the work; none may be called from the node's own loop thread (that would wait on
itself): inside the node, ``await ref.call(...)`` directly.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from .config import NodeConfig
from .loops import loop_factory
from .node import Node
from .ref import DEFAULT_CALL_TIMEOUT, ActorRef

if TYPE_CHECKING:
    from types import TracebackType

    from .actor import Actor
    from .clock import Clock
    from .specs import ServiceSpec

T = TypeVar("T")


class NodeThread:
    """A :class:`Node` running in a background thread, driven from synchronous code.

    The thread's event loop is the one ``config.runtime.event_loop`` names (uvloop
    when installed, by default). ``start_timeout`` bounds how long :meth:`start`
    waits for the node to come up.

    Raises:
        ConfigError: the configured event loop is not available.
    """

    def __init__(
        self,
        name: str = "aria",
        config: NodeConfig | None = None,
        *,
        clock: Clock | None = None,
        start_timeout: float = 10.0,
    ) -> None:
        self.node = Node(name=name, config=config, clock=clock)
        self.loop_factory = loop_factory(self.node.config.runtime.event_loop)
        self.start_timeout = start_timeout
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()
        self._stop_request: asyncio.Event | None = None
        self._failure: BaseException | None = None
        self._exit_status: int | None = None

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> NodeThread:
        """Start the thread and wait until the node is up.

        Raises:
            RuntimeError: already started, or the node did not come up in time.
        """
        if self._thread is not None:
            raise RuntimeError("this NodeThread was already started")
        self._thread = threading.Thread(
            target=self._run, name=f"aria-node-{self.node.name}", daemon=True
        )
        self._thread.start()
        if not self._ready.wait(self.start_timeout):
            raise RuntimeError(f"node {self.node.name} did not start within {self.start_timeout}s")
        if self._failure is not None:
            raise RuntimeError(f"node {self.node.name} failed to start") from self._failure
        return self

    def stop(self, timeout: float | None = 60.0) -> int:
        """Stop the node (services in reverse boot order) and join the thread; the exit status.

        Raises:
            TimeoutError: the node did not stop within ``timeout`` seconds.
        """
        thread = self._thread
        if thread is None:
            return 0
        loop = self._loop
        if loop is not None and thread.is_alive():
            self._check_thread()
            request = self._stop_request
            if request is not None:
                loop.call_soon_threadsafe(request.set)
        thread.join(timeout)
        if thread.is_alive():
            raise TimeoutError(f"node {self.node.name} did not stop within {timeout}s")
        return self._exit_status if self._exit_status is not None else 0

    def __enter__(self) -> NodeThread:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def is_running(self) -> bool:
        """True while the node's thread runs and the node is up."""
        return self._thread is not None and self._thread.is_alive() and self.node.is_running

    def wait_stopped(self, timeout: float | None = None) -> int:
        """Block until the node stopped (for any reason); its exit status.

        Raises:
            TimeoutError: still running after ``timeout`` seconds.
        """
        if self._thread is None:
            raise RuntimeError("this NodeThread was never started")
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise TimeoutError(f"node {self.node.name} still running after {timeout}s")
        return self._exit_status if self._exit_status is not None else 0

    # -- running work on the node's loop ----------------------------------------------------

    def run(
        self, function: Callable[..., Awaitable[T]], *args: Any, timeout: float | None = None
    ) -> T:
        """Run ``await function(*args)`` on the node's loop and return its result.

        Raises:
            TimeoutError: no result within ``timeout`` seconds (the coroutine is cancelled).
            RuntimeError: the node is not running, or this is the node's own thread.
            Whatever the coroutine raises.
        """
        loop = self._require_loop()

        async def runner() -> T:
            return await function(*args)

        future = asyncio.run_coroutine_threadsafe(runner(), loop)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            name = getattr(function, "__name__", function)
            raise TimeoutError(f"{name} took over {timeout}s") from None

    def spawn(
        self,
        actor_class: type[Actor],
        /,
        *,
        name: str | None = None,
        mailbox_size: int | None = None,
        **init_args: Any,
    ) -> ActorRef:
        """``Node.spawn`` from another thread; see it for the errors."""
        node = self.node

        async def spawn() -> ActorRef:
            return await node.spawn(actor_class, name=name, mailbox_size=mailbox_size, **init_args)

        return self.run(spawn)

    def call(self, ref: ActorRef, message: object, timeout: float = DEFAULT_CALL_TIMEOUT) -> Any:
        """``ref.call(message, timeout)`` from another thread; raises as it does."""
        return self.run(ref.call, message, timeout)

    def cast(self, ref: ActorRef, message: object, timeout: float | None = None) -> None:
        """``ref.cast(message)`` from another thread, waiting for room (backpressure).

        Raises:
            TimeoutError: the mailbox stayed full for ``timeout`` seconds.
        """
        self.run(ref.cast, message, timeout=timeout)

    def cast_nowait(self, ref: ActorRef, message: object) -> None:
        """``ref.cast_nowait(message)`` from another thread; raises ``MailboxFull`` when full."""

        async def cast_nowait() -> None:
            ref.cast_nowait(message)

        self.run(cast_nowait)

    def whereis(self, name: str) -> ActorRef | None:
        """``Node.whereis`` from another thread."""
        node = self.node

        async def whereis() -> ActorRef | None:
            return node.whereis(name)

        return self.run(whereis)

    def boot(
        self, services: Sequence[ServiceSpec], *, only: Iterable[str] | None = None
    ) -> list[str]:
        """``Node.boot`` from another thread; see it for the errors."""
        node = self.node

        async def boot() -> list[str]:
            return await node.boot(services, only=only)

        return self.run(boot)

    # -- internals --------------------------------------------------------------------------

    def _check_thread(self) -> None:
        if self._thread is not None and threading.get_ident() == self._thread.ident:
            raise RuntimeError(
                "NodeThread methods block until the node answers, so they cannot be called "
                "from the node's own thread; inside the node use 'await ref.call(...)'"
            )

    def _require_loop(self) -> asyncio.AbstractEventLoop:
        self._check_thread()
        loop = self._loop
        if loop is None or self._thread is None or not self._thread.is_alive():
            raise RuntimeError(f"node {self.node.name} is not running (call start() first)")
        return loop

    def _run(self) -> None:
        try:
            with asyncio.Runner(loop_factory=self.loop_factory) as runner:
                runner.run(self._main())
        except BaseException as exc:
            # Recorded for start(), then re-raised so threading's excepthook shows it.
            self._failure = exc
            self._ready.set()
            raise

    async def _main(self) -> None:
        node = self.node
        self._stop_request = asyncio.Event()
        try:
            await node.start()
        except BaseException as exc:
            self._failure = exc
            self._ready.set()
            return
        self._loop = asyncio.get_running_loop()
        self._ready.set()
        stop_request = asyncio.create_task(self._stop_request.wait())
        stopped = asyncio.create_task(node.wait_stopped())
        await asyncio.wait({stop_request, stopped}, return_when=asyncio.FIRST_COMPLETED)
        stop_request.cancel()
        await node.stop()
        stopped.cancel()
        self._exit_status = node.exit_status
