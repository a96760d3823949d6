"""Bounded mailboxes: backpressure, MailboxFull, system messages, statistics."""

from __future__ import annotations

import asyncio

import pytest

from aria_actors import Actor, CallTimeout, MailboxFull, MailboxStatistics, Node, handles

from .actors import Counter, Echo, Get, Inc, Sleep


class Gate(Actor):
    """Blocks on Sleep-like gate until released, so the mailbox fills."""

    async def init(self) -> None:
        self.gate = asyncio.Event()
        self.seen: list[int] = []

    @handles(Echo)
    async def wait_gate(self, msg: Echo) -> None:
        await self.gate.wait()

    @handles(Inc)
    def record(self, msg: Inc) -> None:
        self.seen.append(msg.n)

    @handles(Get)
    def get(self, msg: Get) -> list[int]:
        return self.seen


async def blocked_gate(node: Node, size: int) -> tuple[Gate, object]:
    ref = await node.spawn(Gate, mailbox_size=size)
    await ref.cast(Echo())
    await asyncio.sleep(0)  # the gate handler is now running and blocked
    actor = ref._proc.actor
    assert isinstance(actor, Gate)
    return actor, ref


async def test_cast_nowait_raises_mailbox_full_at_the_bound(node: Node) -> None:
    gate, ref = await blocked_gate(node, 3)
    for n in range(3):
        ref.cast_nowait(Inc(n=n))  # type: ignore[attr-defined]
    with pytest.raises(MailboxFull) as info:
        ref.cast_nowait(Inc(n=99))  # type: ignore[attr-defined]
    assert info.value.size == 3
    assert "full (3 messages)" in str(info.value)
    gate.gate.set()
    assert await ref.call(Get()) == [0, 1, 2]  # type: ignore[attr-defined]


async def test_cast_waits_for_room_and_keeps_order(node: Node) -> None:
    gate, ref = await blocked_gate(node, 2)
    senders = [asyncio.ensure_future(ref.cast(Inc(n=n))) for n in range(6)]  # type: ignore[attr-defined]
    await asyncio.sleep(0.01)
    assert sum(s.done() for s in senders) == 2  # two fit, four wait (backpressure)
    stats = ref._proc.statistics()  # type: ignore[attr-defined]
    assert stats == MailboxStatistics(depth=2, size=2, waiting_senders=4, handled=0)
    gate.gate.set()
    await asyncio.gather(*senders)
    assert await ref.call(Get()) == [0, 1, 2, 3, 4, 5]  # type: ignore[attr-defined]


async def test_a_call_waits_for_room_within_its_deadline(node: Node) -> None:
    gate, ref = await blocked_gate(node, 1)
    ref.cast_nowait(Inc(n=1))  # type: ignore[attr-defined]
    with pytest.raises(CallTimeout):
        await ref.call(Get(), timeout=0.02)  # type: ignore[attr-defined]
    late = asyncio.ensure_future(ref.call(Get(), timeout=2))  # type: ignore[attr-defined]
    await asyncio.sleep(0.01)
    gate.gate.set()
    assert await late == [1]


async def test_a_cancelled_waiting_sender_gives_its_turn_away(node: Node) -> None:
    gate, ref = await blocked_gate(node, 1)
    ref.cast_nowait(Inc(n=0))  # type: ignore[attr-defined]
    first = asyncio.ensure_future(ref.cast(Inc(n=1)))  # type: ignore[attr-defined]
    second = asyncio.ensure_future(ref.cast(Inc(n=2)))  # type: ignore[attr-defined]
    await asyncio.sleep(0.01)
    first.cancel()
    gate.gate.set()
    await second
    assert await ref.call(Get()) == [0, 2]  # type: ignore[attr-defined]


async def test_senders_waiting_on_a_dying_actor_are_released(node: Node) -> None:
    _gate, ref = await blocked_gate(node, 1)
    ref.cast_nowait(Inc(n=0))  # type: ignore[attr-defined]
    waiting = asyncio.ensure_future(ref.cast(Inc(n=1)))  # type: ignore[attr-defined]
    await asyncio.sleep(0.01)
    ref._proc.kill()  # type: ignore[attr-defined]
    await asyncio.wait_for(waiting, 1)
    assert node.dead_letters == 2  # the queued one and the one that waited


async def test_system_messages_are_never_refused(node: Node) -> None:
    class Timed(Gate):
        @handles(Sleep)
        def arm(self, msg: Sleep) -> None:
            self.send_after(msg.seconds, Inc(n=-1))

    ref = await node.spawn(Timed, mailbox_size=1)
    await ref.call(Sleep(0.02))
    await ref.cast(Echo())
    await asyncio.sleep(0)
    ref.cast_nowait(Inc(n=0))
    with pytest.raises(MailboxFull):
        ref.cast_nowait(Inc(n=1))
    await asyncio.sleep(0.05)  # the timer fires into the full mailbox
    assert ref._proc.statistics().depth == 2
    actor = ref._proc.actor
    assert isinstance(actor, Timed)
    actor.gate.set()
    assert await ref.call(Get()) == [0, -1]


async def test_an_idle_actor_holds_no_queue(node: Node) -> None:
    ref = await node.spawn(Counter)
    for _ in range(5):
        await ref.cast(Inc())
    assert await ref.call(Get()) == 5
    await asyncio.sleep(0)
    proc = ref._proc
    assert proc.mailbox is None
    assert proc.task is None
    assert not proc.scheduled
    assert proc.statistics() == MailboxStatistics(depth=0, size=64, waiting_senders=0, handled=6)


async def test_the_node_default_bounds_the_mailbox(node: Node) -> None:
    ref = await node.spawn(Counter)
    assert ref._proc.mailbox_size == 64  # from the fixture's RuntimeConfig
    with pytest.raises(ValueError, match="mailbox_size"):
        await node.spawn(Counter, mailbox_size=0)
