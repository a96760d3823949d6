from __future__ import annotations

import msgspec

from aria_actors import Actor, Node, handles


class Inc(msgspec.Struct, frozen=True, tag=True):
    n: int = 1


class Counter(Actor):
    async def init(self, start: int = 0) -> None:
        self.value = start

    @handles(Inc)
    def inc(self, msg: Inc) -> int:
        self.value += msg.n
        return self.value


async def test_counter(node: Node) -> None:
    ref = await node.spawn(Counter, name="counter", start=5)
    await ref.cast(Inc())
    assert await ref.call(Inc(n=2)) == 8
