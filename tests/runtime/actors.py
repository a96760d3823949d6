"""Small actors and messages shared by the runtime tests."""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec

from aria_actors import Actor, DeferredReply, Down, Exit, ExitReason, handles


class Inc(msgspec.Struct, frozen=True, tag=True):
    n: int = 1


class Get(msgspec.Struct, frozen=True, tag=True):
    pass


class Crash(msgspec.Struct, frozen=True, tag=True):
    text: str = "boom"


class Sleep(msgspec.Struct, frozen=True, tag=True):
    seconds: float


class Stop(msgspec.Struct, frozen=True, tag=True):
    kind: str = "normal"


class Echo(msgspec.Struct, frozen=True, tag=True):
    value: Any = None


class Unknown(msgspec.Struct, frozen=True, tag=True):
    pass


class Counter(Actor):
    """Counts; ``Get`` is async, ``Inc`` sync; ``Crash`` raises; ``Sleep`` awaits."""

    async def init(self, start: int = 0, journal: list[str] | None = None) -> None:
        self.value = start
        self.journal = journal
        if journal is not None:
            journal.append(f"init {self.ref.name}")

    @handles(Inc)
    def inc(self, msg: Inc) -> int:
        self.value += msg.n
        return self.value

    @handles(Get)
    async def get(self, msg: Get) -> int:
        return self.value

    @handles(Crash)
    def crash(self, msg: Crash) -> None:
        raise RuntimeError(msg.text)

    @handles(Sleep)
    async def sleep(self, msg: Sleep) -> float:
        await asyncio.sleep(msg.seconds)
        return msg.seconds

    @handles(Stop)
    def stop_now(self, msg: Stop) -> str:
        self.stop(msg.kind)  # type: ignore[arg-type]
        return "stopping"

    @handles(Echo)
    def echo(self, msg: Echo) -> Any:
        return msg.value

    async def terminate(self, reason: ExitReason) -> None:
        if self.journal is not None:
            self.journal.append(f"terminate {self.ref.name} {reason.kind}")


class Watcher(Actor):
    """Traps exits and records every Exit and Down it receives."""

    async def init(self, trap: bool = True) -> None:
        self.trap_exits = trap
        self.seen: list[Exit | Down] = []
        self.waiting: list[DeferredReply] = []

    @handles(Exit, Down)
    def record(self, msg: Exit | Down) -> None:
        self.seen.append(msg)
        for reply in self.waiting:
            reply.reply(list(self.seen))
        self.waiting.clear()

    @handles(Get)
    def get(self, msg: Get) -> list[Exit | Down]:
        return list(self.seen)

    @handles(Echo)
    def wait_for_next(self, msg: Echo) -> None:
        """Reply with the seen list once another Exit/Down arrives."""
        self.waiting.append(self.defer_reply())
