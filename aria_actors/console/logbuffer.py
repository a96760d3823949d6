"""Recent log events, kept in memory for the console's ``logs`` command.

:class:`LogBuffer` is a structlog processor: put it in the chain before the
renderer and it keeps the last ``size`` events (as plain, JSON-safe dicts) and
hands new ones to followers. A follower's queue is bounded: a console that reads
too slowly loses events (they are counted and reported), it never makes logging,
and so the node, wait.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import MutableMapping
from typing import Any, Final

LEVELS: Final = {"debug": 10, "info": 20, "warning": 30, "error": 40, "critical": 50}
FOLLOW_QUEUE: Final = 1000


INT64: Final = range(-(2**63), 2**64)


def plain(value: object) -> Any:
    """``value`` as something msgpack and JSON carry: scalars as they are, except
    integers past 64 bits and strings that are not valid Unicode (as text); lists of
    scalars as lists; anything else as its ``str``."""
    if value is None or isinstance(value, bool | float):
        return value
    if isinstance(value, int):
        return value if value in INT64 else str(value)
    if isinstance(value, str):
        return _text(value)
    if isinstance(value, list | tuple):
        return [
            plain(v) if v is None or isinstance(v, bool | int | float | str) else _text(str(v))
            for v in value
        ]
    return _text(str(value))


def _text(text: str) -> str:
    """``text`` with lone surrogates (undecodable file names) replaced."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


class LogFilter:
    """Which events a ``logs`` request wants: by service, actor (substring), minimum level."""

    __slots__ = ("actor", "level", "service")

    def __init__(self, service: str = "", actor: str = "", level: str = "") -> None:
        self.service = service
        self.actor = actor
        self.level = LEVELS.get(level.lower(), 0) if level else 0

    def matches(self, event: dict[str, Any]) -> bool:
        if self.service and event.get("service") != self.service:
            return False
        if self.actor and self.actor not in str(event.get("actor", "")):
            return False
        return not (self.level and LEVELS.get(str(event.get("level", "")), 0) < self.level)


class Follower:
    """A bounded stream of new events for one console session."""

    def __init__(self, loop: asyncio.AbstractEventLoop, wanted: LogFilter) -> None:
        self.loop = loop
        self.thread = threading.get_ident()  # built on the loop's thread
        self.wanted = wanted
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(FOLLOW_QUEUE)
        self.dropped = 0

    def offer(self, event: dict[str, Any]) -> None:
        if not self.wanted.matches(event):
            return
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            self.dropped += 1

    async def next(self) -> tuple[dict[str, Any], int]:
        """The next event and how many were dropped before it."""
        event = await self.queue.get()
        dropped, self.dropped = self.dropped, 0
        return event, dropped


class LogBuffer:
    """A structlog processor keeping recent events; see the module documentation."""

    def __init__(self, size: int) -> None:
        self.events: deque[dict[str, Any]] = deque(maxlen=size)
        self.followers: set[Follower] = set()
        self.lock = threading.Lock()

    def __call__(
        self, logger: object, method_name: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        record = {key: plain(value) for key, value in event_dict.items()}
        record.setdefault("level", method_name)
        with self.lock:
            self.events.append(record)
            followers = list(self.followers)
        for follower in followers:
            if follower.loop.is_closed():
                continue
            if threading.get_ident() == follower.thread:
                follower.offer(record)
            else:
                try:
                    follower.loop.call_soon_threadsafe(follower.offer, record)
                except RuntimeError:  # its loop closed meanwhile: nobody to tell
                    self.unfollow(follower)
        return event_dict

    def resize(self, size: int) -> None:
        """Keep the last ``size`` events from now on."""
        with self.lock:
            self.events = deque(self.events, maxlen=size)

    def recent(self, limit: int, wanted: LogFilter) -> list[dict[str, Any]]:
        """The last ``limit`` matching events (0: all kept), oldest first."""
        with self.lock:
            matching = [event for event in self.events if wanted.matches(event)]
        return matching[-limit:] if limit > 0 else matching

    def follow(self, wanted: LogFilter) -> Follower:
        """Start streaming new matching events (call :meth:`unfollow` when done)."""
        follower = Follower(asyncio.get_running_loop(), wanted)
        with self.lock:
            self.followers.add(follower)
        return follower

    def unfollow(self, follower: Follower) -> None:
        with self.lock:
            self.followers.discard(follower)
