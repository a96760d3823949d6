"""References: the handles through which actors are reached.

``ActorRef.call`` ──► mailbox ──► handler ──► return value ──► caller
``ActorRef.cast`` ──► mailbox ──► handler (return value dropped)

A reference stays valid after its actor exited: ``call`` then raises
:class:`NoProcess`, ``cast`` drops the message as a dead letter, ``wait`` returns the
exit reason at once.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from .errors import CallTimeout, NoProcess
from .messages import MESSAGE_TYPES, ExitReason, check_message

if TYPE_CHECKING:
    from .process import Process

DEFAULT_CALL_TIMEOUT = 5.0
INLINE_BUDGET = 64
"""Calls handled inline in a row before one goes through the loop (giving others a turn)."""


class Envelope:
    """A call in a mailbox: the request and the future its reply goes to.

    Invariant: ``deferred`` is True once the handler took a :class:`DeferredReply`;
    the mailbox loop then leaves the future alone.
    """

    __slots__ = ("deferred", "future", "message")

    def __init__(self, message: object, future: asyncio.Future[Any]) -> None:
        self.message = message
        self.future = future
        self.deferred = False


def _expire(future: asyncio.Future[Any], ref: ActorRef, message: object, timeout: float) -> None:
    if not future.done():
        future.set_exception(CallTimeout(ref, message, timeout))


class ActorRef:
    """A hashable, printable handle on an actor: ``<actor aria.17 counter>``.

    ``id`` is unique within its node; ``name`` is the registered name the actor
    was started with (``None`` if unnamed); ``node`` is the node's name.
    """

    __slots__ = ("_proc", "id", "name")

    def __init__(self, proc: Process, id: int, name: str | None) -> None:
        self._proc = proc
        self.id = id
        self.name = name

    @property
    def node(self) -> str:
        """The name of the node the actor lives on."""
        return self._proc.node.name

    def __repr__(self) -> str:
        label = self.name if self.name is not None else self._proc.actor_class.__name__
        return f"<actor {self._proc.node.name}.{self.id} {label}>"

    def __hash__(self) -> int:
        return self.id

    def __eq__(self, other: object) -> bool:
        if isinstance(other, ActorRef):
            return self._proc is other._proc
        return NotImplemented

    # -- messaging --------------------------------------------------------------------------

    async def call(self, message: object, timeout: float = DEFAULT_CALL_TIMEOUT) -> Any:
        """Send ``message`` and wait for the handler's return value.

        The deadline covers waiting for room in a full mailbox as well as the reply.
        A call to an idle actor whose handler is a plain function is handled at
        once, in the caller's turn of the loop (see :meth:`Process.call_inline`).

        Raises:
            TypeError: ``message`` is not a frozen ``msgspec.Struct``.
            NoProcess: the actor is not alive.
            CallTimeout: no reply within ``timeout`` seconds (a ``TimeoutError``).
            ActorExited: the actor exited before replying (``.reason`` says why).
            UnhandledMessage: the actor has no handler for the message's type.
            RuntimeError: called from outside the node's event loop.
        """
        if type(message) not in MESSAGE_TYPES:
            check_message(message)
        proc = self._proc
        if proc.state > 1:
            raise NoProcess(self)
        loop = proc.loop
        if proc.node.tracing:
            proc.node._trace_out(self, message, "call")
        if asyncio.get_running_loop() is not loop:
            raise RuntimeError(
                f"{self!r} was called from outside its node's event loop; "
                "from another thread use NodeThread.call (aria_actors.NodeThread)"
            )
        future: asyncio.Future[Any] = loop.create_future()
        envelope = Envelope(message, future)
        entry = None
        if not proc.scheduled and proc.state == 1 and proc.node.inline_budget:
            entry = proc.handlers.get(type(message))
        if entry is not None and not entry[1]:
            proc.call_inline(entry[0], envelope)
            if future.done():
                return future.result()
            # the handler deferred its reply: wait for it below
        else:
            mailbox = proc.mailbox
            if mailbox is not None and len(mailbox) >= proc.mailbox_size:
                deadline = loop.time() + timeout
                try:
                    async with asyncio.timeout_at(deadline):
                        await proc.wait_room()
                except TimeoutError:
                    raise CallTimeout(self, message, timeout) from None
                if proc.state > 1:
                    raise NoProcess(self)
                timeout = max(0.0, deadline - loop.time())
            proc.put_unbounded(envelope)
        timer = loop.call_later(timeout, _expire, future, self, message, timeout)
        try:
            return await future
        finally:
            timer.cancel()
            proc.node.inline_budget = INLINE_BUDGET

    async def cast(self, message: object) -> None:
        """Send ``message`` without waiting for it to be handled.

        Returns at once, or waits while the bounded mailbox is full (backpressure).
        A cast to an actor that is not alive is dropped and counted as a dead letter.
        Like every method here it belongs to the node's event loop; from another
        thread use :class:`NodeThread` (a cast that would wake an idle actor from a
        foreign thread raises ``RuntimeError``).

        Raises:
            TypeError: ``message`` is not a frozen ``msgspec.Struct``.
        """
        if type(message) not in MESSAGE_TYPES:
            check_message(message)
        proc = self._proc
        if proc.node.tracing:
            proc.node._trace_out(self, message, "cast")
        if proc.state > 1:
            proc.node._dead_letter(self, message)
            return
        mailbox = proc.mailbox
        if mailbox is None:
            proc.put_first(message)
            return
        if len(mailbox) >= proc.mailbox_size:
            await proc.wait_room()
            if proc.state > 1:
                proc.node._dead_letter(self, message)
                return
            if proc.mailbox is None:
                proc.put_first(message)
                return
            mailbox = proc.mailbox
        mailbox.append(message)
        if not proc.scheduled:
            proc.schedule()

    def cast_nowait(self, message: object) -> None:
        """Like :meth:`cast`, but never waits.

        Raises:
            TypeError: ``message`` is not a frozen ``msgspec.Struct``.
            MailboxFull: the mailbox is full.
        """
        if type(message) not in MESSAGE_TYPES:
            check_message(message)
        proc = self._proc
        if proc.node.tracing:
            proc.node._trace_out(self, message, "cast")
        if proc.state > 1:
            proc.node._dead_letter(self, message)
            return
        proc.put_nowait(message)

    # -- lifecycle --------------------------------------------------------------------------

    def is_alive(self) -> bool:
        """True while the actor is starting or running (not exiting, not exited)."""
        return self._proc.state <= 1

    async def wait(self, timeout: float | None = None) -> ExitReason:
        """Wait until the actor has exited and return its :class:`ExitReason`.

        Raises:
            TimeoutError: it was still alive after ``timeout`` seconds (``None``: no limit).
        """
        return await self._proc.wait_exit(timeout)


class MonitorRef:
    """The handle of one monitor, as returned by ``Actor.monitor`` and carried by ``Down``."""

    __slots__ = ("id", "target", "watcher")

    def __init__(self, id: int, watcher: Process, target: Process) -> None:
        self.id = id
        self.watcher = watcher
        self.target = target

    def __repr__(self) -> str:
        return f"<monitor {self.id} {self.watcher.ref!r} -> {self.target.ref!r}>"

    def __hash__(self) -> int:
        return self.id

    def __eq__(self, other: object) -> bool:
        if isinstance(other, MonitorRef):
            return self.id == other.id and self.watcher is other.watcher
        return NotImplemented
