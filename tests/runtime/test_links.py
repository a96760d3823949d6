"""Links, monitors and exit signals, with OTP's semantics."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from aria_actors import Actor, ActorRef, Down, Exit, MonitorRef, Node, NoProcess, handles

from .actors import Counter, Crash, Echo, Get, Sleep, Stop, Watcher


class Linker(Actor):
    """Links or monitors on request; can trap exits."""

    async def init(self, trap: bool = False) -> None:
        self.trap_exits = trap
        self.seen: list[Exit | Down] = []
        self.monitors: list[MonitorRef] = []

    @handles(Echo)
    def act(self, msg: Echo) -> object:
        verb, target = msg.value
        assert isinstance(target, ActorRef)
        if verb == "link":
            self.link(target)
        elif verb == "unlink":
            self.unlink(target)
        elif verb == "monitor":
            self.monitors.append(self.monitor(target))
            return self.monitors[-1]
        elif verb == "demonitor":
            return self.demonitor(self.monitors.pop())
        return None

    @handles(Exit, Down)
    def record(self, msg: Exit | Down) -> None:
        self.seen.append(msg)

    @handles(Get)
    def get(self, msg: Get) -> list[Exit | Down]:
        return list(self.seen)

    @handles(Sleep)
    async def nap(self, msg: Sleep) -> None:
        await asyncio.sleep(msg.seconds)


async def test_an_abnormal_exit_kills_linked_actors_with_the_same_reason(node: Node) -> None:
    a = await node.spawn(Linker)
    b = await node.spawn(Counter)
    await a.call(Echo(("link", b)))
    await b.cast(Crash("linked crash"))
    reason = await a.wait(timeout=1)
    assert reason == await b.wait()
    assert reason.error_message == "linked crash"


async def test_a_normal_exit_does_not_kill_linked_actors(node: Node) -> None:
    a = await node.spawn(Linker)
    b = await node.spawn(Counter)
    await a.call(Echo(("link", b)))
    await b.cast(Stop("normal"))
    await b.wait()
    await asyncio.sleep(0.01)
    assert a.is_alive()


async def test_shutdown_is_abnormal_for_links(node: Node) -> None:
    a = await node.spawn(Linker)
    b = await node.spawn(Counter)
    await a.call(Echo(("link", b)))
    await b.cast(Stop("shutdown"))
    assert (await a.wait(timeout=1)).kind == "shutdown"


async def test_links_are_two_way(node: Node) -> None:
    a = await node.spawn(Linker)
    b = await node.spawn(Counter)
    await a.call(Echo(("link", b)))
    a._proc.kill()
    assert (await b.wait(timeout=1)).kind == "killed"


async def test_a_trapping_actor_receives_exit_messages_for_every_exit(node: Node) -> None:
    a = await node.spawn(Linker, trap=True)
    crashing = await node.spawn(Counter)
    stopping = await node.spawn(Counter)
    await a.call(Echo(("link", crashing)))
    await a.call(Echo(("link", stopping)))
    await crashing.cast(Crash())
    await stopping.cast(Stop())
    await crashing.wait()
    await stopping.wait()
    seen = await a.call(Get())
    assert [(type(m), m.actor, m.reason.kind) for m in seen] == [
        (Exit, crashing, "error"),
        (Exit, stopping, "normal"),
    ]
    assert a.is_alive()


async def test_an_in_flight_handler_is_cancelled_by_a_linked_death(node: Node) -> None:
    a = await node.spawn(Linker)
    b = await node.spawn(Counter)
    await a.call(Echo(("link", b)))
    napping = asyncio.ensure_future(a.call(Sleep(30)))
    await asyncio.sleep(0.01)
    await b.cast(Crash())
    with pytest.raises(Exception, match="exited before replying"):
        await asyncio.wait_for(napping, 1)


async def test_unlink_removes_both_directions(node: Node) -> None:
    a = await node.spawn(Linker)
    b = await node.spawn(Counter)
    await a.call(Echo(("link", b)))
    await a.call(Echo(("unlink", b)))
    await b.cast(Crash())
    await b.wait()
    await asyncio.sleep(0.01)
    assert a.is_alive()


async def test_linking_to_a_dead_actor(node: Node) -> None:
    dead = await node.spawn(Counter)
    await dead.cast(Stop())
    await dead.wait()
    plain = await node.spawn(Linker)
    with pytest.raises(Exception, match="exited before replying") as info:
        await plain.call(Echo(("link", dead)))
    assert info.value.reason.error_type == "NoProcess"  # type: ignore[attr-defined]
    trapping = await node.spawn(Linker, trap=True)
    await trapping.call(Echo(("link", dead)))
    seen = await trapping.call(Get())
    assert [(type(m), m.reason.kind) for m in seen] == [(Exit, "noproc")]


async def test_a_monitor_delivers_down_exactly_once(node: Node) -> None:
    watcher = await node.spawn(Linker)
    target = await node.spawn(Counter)
    monitor = await watcher.call(Echo(("monitor", target)))
    await target.cast(Crash())
    await target.wait()
    seen = await watcher.call(Get())
    assert len(seen) == 1
    down = seen[0]
    assert isinstance(down, Down)
    assert down.monitor == monitor
    assert down.actor == target
    assert down.reason.kind == "error"
    assert watcher.is_alive()  # monitors never kill


async def test_monitoring_a_dead_actor_gives_noproc_at_once(node: Node) -> None:
    watcher = await node.spawn(Linker)
    target = await node.spawn(Counter)
    await target.cast(Stop())
    await target.wait()
    await watcher.call(Echo(("monitor", target)))
    seen = await watcher.call(Get())
    assert [(type(m), m.reason.kind) for m in seen] == [(Down, "noproc")]


async def test_two_monitors_give_two_downs(node: Node) -> None:
    watcher = await node.spawn(Linker)
    target = await node.spawn(Counter)
    first = await watcher.call(Echo(("monitor", target)))
    second = await watcher.call(Echo(("monitor", target)))
    assert first != second
    await target.cast(Stop())
    await target.wait()
    seen = await watcher.call(Get())
    assert {m.monitor for m in seen} == {first, second}  # type: ignore[union-attr]


async def test_demonitor_stops_the_down(node: Node) -> None:
    watcher = await node.spawn(Linker)
    target = await node.spawn(Counter)
    await watcher.call(Echo(("monitor", target)))
    assert await watcher.call(Echo(("demonitor", target))) is True
    await target.cast(Stop())
    await target.wait()
    assert await watcher.call(Get()) == []


async def test_a_dead_watcher_leaves_no_monitor_behind(node: Node) -> None:
    watcher = await node.spawn(Linker)
    target = await node.spawn(Counter)
    await watcher.call(Echo(("monitor", target)))
    assert target._proc.watchers
    watcher._proc.kill()
    assert not target._proc.watchers


async def test_a_long_chain_of_links_dies_without_recursion(node: Node) -> None:
    refs = [await node.spawn(Linker) for _ in range(5000)]
    for left, right in itertools.pairwise(refs):
        await left.call(Echo(("link", right)))
    refs[0]._proc.kill()
    assert not any(ref.is_alive() for ref in refs)
    reasons = [await ref.wait() for ref in refs]
    assert {reason.kind for reason in reasons} == {"killed"}


async def test_an_exit_from_the_parent_stops_a_trapping_child_with_terminate(node: Node) -> None:
    journal: list[str] = []

    class Parent(Actor):
        @handles(Echo)
        async def start_child(self, msg: Echo) -> ActorRef:
            return await self.spawn_link(TrappingChild, name="child", journal=journal)

    class TrappingChild(Counter):
        async def init(self, start: int = 0, journal: list[str] | None = None) -> None:
            await super().init(start, journal)
            self.trap_exits = True

    parent = await node.spawn(Parent)
    child = await parent.call(Echo())
    parent._proc.kill()
    reason = await child.wait(timeout=1)
    assert reason.kind == "killed"
    assert journal == ["init child", "terminate child killed"]


async def test_spawn_link_links_and_sets_the_service(node: Node) -> None:
    class Parent(Actor):
        @handles(Echo)
        async def start_child(self, msg: Echo) -> ActorRef:
            return await self.spawn_link(Counter)

    parent = await node.spawn(Parent)
    child = await parent.call(Echo())
    assert child._proc in parent._proc.links  # type: ignore[operator]
    assert child._proc.parent is parent._proc
    await child.cast(Crash())
    assert (await parent.wait(timeout=1)).kind == "error"


async def test_waiting_on_an_exit_with_a_deadline(node: Node) -> None:
    ref = await node.spawn(Counter)
    with pytest.raises(TimeoutError):
        await ref.wait(timeout=0.01)
    assert ref.is_alive()
    ref._proc.kill()
    with pytest.raises(NoProcess):
        await ref.call(Get())


async def test_watcher_actor_records_in_order(node: Node) -> None:
    watcher = await node.spawn(Watcher)
    targets = [await node.spawn(Counter) for _ in range(3)]
    for target in targets:
        watcher._proc.link(target._proc)
    for target in targets:
        await target.cast(Stop())
        await target.wait()
    seen = await watcher.call(Get())
    assert [m.actor for m in seen] == targets


async def test_a_handler_that_brings_its_own_actor_down_stops_handling(node: Node) -> None:
    class Kamikaze(Actor):
        async def init(self, partner: ActorRef) -> None:
            self.partner = partner
            self.handled = 0
            self.link(partner)

        @handles(Echo)
        def strike(self, msg: Echo) -> None:
            self.handled += 1
            self.partner._proc.kill()  # the link kills this actor while its handler runs

        @handles(Sleep)
        async def strike_later(self, msg: Sleep) -> None:
            await asyncio.sleep(0)
            self.partner._proc.kill()

    for message in (Echo(), Sleep(0)):
        partner = await node.spawn(Counter)
        ref = await node.spawn(Kamikaze, partner=partner)
        actor = ref._proc.actor
        await ref.cast(message)
        await ref.cast(Echo())  # must never be handled: the actor is dead by then
        assert (await ref.wait(timeout=1)).kind == "killed"
        assert isinstance(actor, Kamikaze)
        assert actor.handled == (1 if isinstance(message, Echo) else 0)
