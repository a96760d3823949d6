"""Bounded mailboxes.

Every actor has one. It is bounded by ``mailbox_size`` so that overload is visible:
``await ref.cast(msg)`` waits for room (backpressure), ``ref.cast_nowait(msg)``
raises :class:`MailboxFull`, ``await ref.call(msg)`` waits for room within its
deadline. System messages (``Exit``, ``Down``, an actor's own timers) are never
refused: they are bounded by the number of links, monitors and timers.

The queue itself is allocated only while messages wait, so an idle actor carries
no buffer. The mailbox is the base of the process record (no extra object per
actor); the process supplies :meth:`schedule`, which arranges for the messages to
be handled.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections import deque
from typing import TYPE_CHECKING, Any

import msgspec

from .errors import MailboxFull

if TYPE_CHECKING:
    from .ref import ActorRef


class MailboxStatistics(msgspec.Struct, frozen=True):
    """A snapshot of one mailbox.

    ``depth``: messages waiting; ``size``: the bound; ``waiting_senders``: tasks
    blocked in ``cast``/``call`` for room; ``handled``: messages handled so far.
    """

    depth: int
    size: int
    waiting_senders: int
    handled: int


class Mailbox(ABC):
    """The mailbox half of a process record.

    Invariants: ``mailbox`` is ``None`` or a non-empty-since-allocation deque;
    ``scheduled`` is True exactly while a drain is pending or running, or the
    actor is exiting; ``len(mailbox) <= mailbox_size`` except for system messages.
    """

    __slots__ = ("handled", "mailbox", "mailbox_size", "putters", "ref", "scheduled", "state")

    mailbox: deque[Any] | None
    mailbox_size: int
    putters: deque[asyncio.Future[None]] | None
    scheduled: bool
    handled: int
    ref: ActorRef
    state: int

    @abstractmethod
    def schedule(self) -> None:
        """Arrange for the waiting messages to be handled (supplied by the process)."""

    # -- putting ----------------------------------------------------------------------------

    def put_first(self, message: object) -> None:
        """Put a message into an empty (unallocated) mailbox and schedule it.

        Scheduling comes first: if it refuses (a send from a foreign thread), the
        message is not left behind.
        """
        if not self.scheduled:
            self.schedule()
        self.mailbox = deque((message,))

    def put_nowait(self, message: object) -> None:
        """Append a user message, or raise :class:`MailboxFull`."""
        mailbox = self.mailbox
        if mailbox is None:
            self.put_first(message)
            return
        if len(mailbox) >= self.mailbox_size:
            raise MailboxFull(self.ref, self.mailbox_size)
        mailbox.append(message)
        if not self.scheduled:
            self.schedule()

    def put_unbounded(self, message: object) -> None:
        """Append regardless of the bound: a system message (Exit, Down, a timer's
        message) or a call whose sender already waited for room.

        Dropped when the actor is exiting or has exited.
        """
        if self.state > 1:
            return
        mailbox = self.mailbox
        if mailbox is None:
            self.put_first(message)
            return
        mailbox.append(message)
        if not self.scheduled:
            self.schedule()

    # -- room -------------------------------------------------------------------------------

    async def wait_room(self) -> None:
        """Wait until the mailbox has room (or is released because the actor exited)."""
        loop = asyncio.get_running_loop()
        while self.mailbox is not None and len(self.mailbox) >= self.mailbox_size:
            putters = self.putters
            if putters is None:
                putters = self.putters = deque()
            waiter: asyncio.Future[None] = loop.create_future()
            putters.append(waiter)
            try:
                await waiter
            except BaseException:
                waiter.cancel()
                if putters:
                    try:
                        putters.remove(waiter)
                    except ValueError:
                        # Woken and cancelled at once: hand the room on to the next sender.
                        self.wake_putter()
                raise

    def wake_putter(self) -> None:
        """Wake the oldest sender waiting for room, if any."""
        putters = self.putters
        while putters:
            waiter = putters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def wake_all_putters(self) -> None:
        """Wake every waiting sender (the actor exited: they drop their messages)."""
        putters = self.putters
        self.putters = None
        if putters:
            for waiter in putters:
                if not waiter.done():
                    waiter.set_result(None)

    def statistics(self) -> MailboxStatistics:
        """A frozen snapshot of this mailbox."""
        return MailboxStatistics(
            depth=len(self.mailbox) if self.mailbox is not None else 0,
            size=self.mailbox_size,
            waiting_senders=len(self.putters) if self.putters else 0,
            handled=self.handled,
        )
