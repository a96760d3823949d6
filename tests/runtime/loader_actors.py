"""Small actors that TOML files in the tests name as ``tests.runtime.loader_actors:Name``.

They live in an importable module (not in a test module) because the loader imports
``"module:Class"`` strings, and the daemon tests boot them in a child process.
"""

from __future__ import annotations

import asyncio

import msgspec

from aria_actors import Actor, handles


class Ping(msgspec.Struct, frozen=True, tag=True):
    """Ask a :class:`Worker` for its greeting."""


class GetArgs(msgspec.Struct, frozen=True, tag=True):
    """Ask a :class:`Worker` for the arguments its ``init`` received."""


class Boom(msgspec.Struct, frozen=True, tag=True):
    """Make the receiver crash."""


class Worker(Actor):
    """A worker with arguments (``[children.args]``)."""

    async def init(self, greeting: str = "hello", level: int = 0) -> None:
        self.greeting = greeting
        self.level = level

    @handles(Ping)
    def ping(self, message: Ping) -> str:
        return self.greeting

    @handles(GetArgs)
    def get_args(self, message: GetArgs) -> tuple[str, int]:
        return (self.greeting, self.level)

    @handles(Boom)
    def boom(self, message: Boom) -> None:
        raise RuntimeError("boom")


class Idle(Actor):
    """A worker with no ``init`` and no handlers."""


class Crasher(Actor):
    """Crashes right after every start: its supervisor soon gives up."""

    async def init(self) -> None:
        self.send_after(0.0, Boom())

    @handles(Boom)
    def boom(self, message: Boom) -> None:
        raise RuntimeError("crashing on purpose")


class FailsToStart(Actor):
    """Its ``init`` always raises."""

    async def init(self) -> None:
        raise RuntimeError("cannot start on purpose")


class SlowStart(Actor):
    """Its ``init`` takes ``seconds``."""

    async def init(self, seconds: float = 1.0) -> None:
        await asyncio.sleep(seconds)


class NotAnActor:
    """A class that is not an :class:`Actor`."""


def not_a_class() -> None:
    """A function, not a class."""


NOT_A_TYPE = 42
