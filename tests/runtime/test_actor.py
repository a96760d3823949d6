"""Actors: dispatch, replies, crashes, init/terminate, timers, stopping."""

from __future__ import annotations

import asyncio
import contextvars
from typing import Any

import msgspec
import pytest

from aria_actors import (
    Actor,
    ActorExited,
    ActorRef,
    CallTimeout,
    DeferredReply,
    ExitReason,
    Node,
    NoProcess,
    StartError,
    UnhandledMessage,
    handles,
)
from aria_actors.testing import wait_until

from .actors import Counter, Crash, Echo, Get, Inc, Sleep, Stop, Unknown


class Mutable(msgspec.Struct):
    x: int = 0


# -- dispatch and replies ----------------------------------------------------------------


async def test_sync_and_async_handlers_reply_to_calls(node: Node) -> None:
    ref = await node.spawn(Counter, start=5)
    assert await ref.call(Inc(n=2)) == 7
    assert await ref.call(Get()) == 7


async def test_cast_returns_before_handling_and_messages_keep_their_order(node: Node) -> None:
    ref = await node.spawn(Counter)
    for _ in range(10):
        await ref.cast(Inc())
        await ref.cast(Sleep(0))  # an async handler between sync ones
    assert await ref.call(Get()) == 10


async def test_messages_are_passed_by_reference(node: Node) -> None:
    ref = await node.spawn(Counter)
    payload = Echo(value=("a", 1))
    assert await ref.call(payload) is payload.value


@pytest.mark.parametrize("bad", [{"type": "inc"}, ("inc", 1), "inc", Mutable()])
async def test_only_frozen_structs_can_be_sent(node: Node, bad: object) -> None:
    ref = await node.spawn(Counter)
    with pytest.raises(TypeError, match="frozen"):
        await ref.call(bad)
    with pytest.raises(TypeError, match="frozen"):
        await ref.cast(bad)
    with pytest.raises(TypeError, match="frozen"):
        ref.cast_nowait(bad)
    assert ref.is_alive()


async def test_unhandled_call_fails_at_the_caller_and_the_actor_lives(node: Node) -> None:
    ref = await node.spawn(Counter)
    with pytest.raises(UnhandledMessage, match="Unknown"):
        await ref.call(Unknown())
    assert ref.is_alive()
    assert await ref.call(Inc()) == 1


async def test_unhandled_cast_is_a_logged_dead_letter(
    node: Node, logs: list[dict[str, Any]]
) -> None:
    ref = await node.spawn(Counter)
    await ref.cast(Unknown())
    assert await ref.call(Inc()) == 1
    assert node.dead_letters == 1
    letters = [e for e in logs if e["event"] == "dead_letter"]
    assert letters
    assert letters[0]["why"] == "no handler for its type"
    assert "Unknown" in letters[0]["message"]


class Base(msgspec.Struct, frozen=True, tag=True):
    pass


class Derived(Base, frozen=True, tag=True):
    pass


class BaseHandler(Actor):
    @handles(Base)
    def base(self, msg: Base) -> str:
        return type(msg).__name__


class Overriding(BaseHandler):
    def base(self, msg: Base) -> str:
        return "overridden " + type(msg).__name__


async def test_a_message_subtype_reaches_the_handler_of_its_base(node: Node) -> None:
    ref = await node.spawn(BaseHandler)
    assert await ref.call(Derived()) == "Derived"


async def test_overriding_a_handler_method_keeps_its_registration(node: Node) -> None:
    ref = await node.spawn(Overriding)
    assert await ref.call(Base()) == "overridden Base"


def test_actor_classes_are_checked_when_defined() -> None:
    with pytest.raises(TypeError, match="__init__"):

        class WithInit(Actor):
            def __init__(self) -> None:
                pass

    with pytest.raises(TypeError, match="both"):

        class Twice(Actor):
            @handles(Inc)
            def one(self, msg: Inc) -> None:
                pass

            @handles(Inc)
            def two(self, msg: Inc) -> None:
                pass

    with pytest.raises(TypeError, match="frozen"):
        handles(Mutable)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="at least one"):
        handles()


# -- crashes -----------------------------------------------------------------------------


async def test_a_crash_fails_the_call_and_the_actor_exits_with_the_error(node: Node) -> None:
    ref = await node.spawn(Counter)
    with pytest.raises(ActorExited) as info:
        await ref.call(Crash("kaboom"))
    reason = info.value.reason
    assert reason.kind == "error"
    assert reason.error_type == "RuntimeError"
    assert reason.error_message == "kaboom"
    assert "RuntimeError: kaboom" in reason.traceback
    assert not ref.is_alive()
    assert await ref.wait() == reason
    with pytest.raises(NoProcess):
        await ref.call(Get())


async def test_a_crash_in_an_async_handler_also_crashes(node: Node) -> None:
    class AsyncCrash(Actor):
        @handles(Crash)
        async def crash(self, msg: Crash) -> None:
            await asyncio.sleep(0)
            raise ValueError(msg.text)

    ref = await node.spawn(AsyncCrash)
    with pytest.raises(ActorExited) as info:
        await ref.call(Crash("late"))
    assert info.value.reason.error_type == "ValueError"


async def test_calls_queued_behind_a_crash_fail_with_actor_exited(node: Node) -> None:
    ref = await node.spawn(Counter)
    await ref.cast(Sleep(0.05))
    await ref.cast(Crash())
    waiting = [asyncio.ensure_future(ref.call(Get())) for _ in range(3)]
    results = await asyncio.gather(*waiting, return_exceptions=True)
    assert all(isinstance(r, ActorExited) for r in results)


async def test_cast_to_a_dead_actor_is_a_dead_letter(node: Node) -> None:
    ref = await node.spawn(Counter)
    await ref.cast(Stop())
    await ref.wait()
    before = node.dead_letters
    await ref.cast(Inc())
    ref.cast_nowait(Inc())
    assert node.dead_letters == before + 2


# -- init and terminate ------------------------------------------------------------------


async def test_init_failure_raises_start_error_naming_the_actor(node: Node) -> None:
    class Fails(Actor):
        async def init(self) -> None:
            raise OSError("disk on fire")

    with pytest.raises(StartError) as info:
        await node.spawn(Fails, name="fails")
    assert info.value.child == "fails"
    assert "disk on fire" in str(info.value)
    assert isinstance(info.value.__cause__, OSError)
    assert node.whereis("fails") is None
    assert node.actors() == []


async def test_wrong_init_arguments_fail_the_start_clearly(node: Node) -> None:
    with pytest.raises(StartError, match="strt"):
        await node.spawn(Counter, strt=1)

    class NoInit(Actor):
        pass

    with pytest.raises(StartError, match="no init"):
        await node.spawn(NoInit, x=1)


async def test_init_runs_before_any_message_is_handled(node: Node) -> None:
    class Slow(Actor):
        async def init(self) -> None:
            self.ready = False
            await self.ref.cast(Echo("queued during init"))
            await asyncio.sleep(0.01)
            self.ready = True

        @handles(Echo)
        def echo(self, msg: Echo) -> bool:
            return self.ready

    ref = await node.spawn(Slow)
    assert await ref.call(Echo()) is True


async def test_stop_runs_terminate_and_fails_queued_calls(node: Node) -> None:
    journal: list[str] = []
    ref = await node.spawn(Counter, name="c", journal=journal)
    await ref.cast(Sleep(0.02))
    stopping = asyncio.ensure_future(ref.call(Stop()))
    queued = asyncio.ensure_future(ref.call(Get()))
    assert await stopping == "stopping"
    with pytest.raises(ActorExited) as info:
        await queued
    assert info.value.reason.kind == "normal"
    assert (await ref.wait()).kind == "normal"
    assert journal == ["init c", "terminate c normal"]


async def test_stop_with_an_exit_reason(node: Node) -> None:
    class Quits(Actor):
        @handles(Stop)
        def quit(self, msg: Stop) -> None:
            self.stop(ExitReason(kind="shutdown", detail="asked to"))

    ref = await node.spawn(Quits)
    await ref.cast(Stop())
    reason = await ref.wait(timeout=1)
    assert reason.kind == "shutdown"
    assert reason.detail == "asked to"


async def test_an_invalid_stop_reason_is_refused(node: Node) -> None:
    class BadStop(Actor):
        @handles(Stop)
        def quit(self, msg: Stop) -> None:
            self.stop("whatever")  # type: ignore[arg-type]

    ref = await node.spawn(BadStop)
    with pytest.raises(ActorExited) as info:
        await ref.call(Stop())
    assert info.value.reason.error_type == "ValueError"


async def test_an_error_in_terminate_becomes_the_exit_reason(node: Node) -> None:
    class BadTerminate(Actor):
        @handles(Stop)
        def quit(self, msg: Stop) -> None:
            self.stop()

        async def terminate(self, reason: ExitReason) -> None:
            raise KeyError("lost")

    ref = await node.spawn(BadTerminate)
    await ref.cast(Stop())
    reason = await ref.wait(timeout=1)
    assert reason.kind == "error"
    assert reason.error_type == "KeyError"
    assert reason.detail == "in terminate"


async def test_terminate_is_bounded_by_the_shutdown_time(node: Node) -> None:
    class Stuck(Actor):
        @handles(Stop)
        def quit(self, msg: Stop) -> None:
            self.stop()

        async def terminate(self, reason: ExitReason) -> None:
            await asyncio.sleep(60)

    ref = await node.spawn(Stuck, shutdown=0.05)
    await ref.cast(Stop())
    assert (await ref.wait(timeout=2)).kind == "killed"


async def test_each_start_builds_a_fresh_instance(node: Node) -> None:
    first = await node.spawn(Counter, start=1)
    second = await node.spawn(Counter, start=1)
    await first.call(Inc())
    assert await second.call(Get()) == 1


# -- deferred replies --------------------------------------------------------------------


class Deferring(Actor):
    async def init(self) -> None:
        self.pending: list[DeferredReply] = []

    @handles(Get)
    def park(self, msg: Get) -> str:
        self.pending.append(self.defer_reply())
        return "ignored"

    @handles(Echo)
    def release(self, msg: Echo) -> int:
        for reply in self.pending:
            if isinstance(msg.value, str) and msg.value == "fail":
                reply.fail(LookupError("nope"))
            else:
                reply.reply(msg.value)
        released = len(self.pending)
        self.pending.clear()
        return released

    @handles(Stop)
    def quit(self, msg: Stop) -> None:
        self.stop()


async def test_a_deferred_reply_answers_the_call_later(node: Node) -> None:
    ref = await node.spawn(Deferring)
    parked = [asyncio.ensure_future(ref.call(Get())) for _ in range(3)]
    await asyncio.sleep(0.01)
    assert not any(p.done() for p in parked)
    assert await ref.call(Echo(value=42)) == 3
    assert await asyncio.gather(*parked) == [42, 42, 42]


async def test_a_deferred_reply_can_fail_the_call(node: Node) -> None:
    ref = await node.spawn(Deferring)
    parked = asyncio.ensure_future(ref.call(Get()))
    await asyncio.sleep(0.01)
    await ref.call(Echo(value="fail"))
    with pytest.raises(LookupError):
        await parked


async def test_an_exit_fails_pending_deferred_replies(node: Node) -> None:
    ref = await node.spawn(Deferring)
    parked = asyncio.ensure_future(ref.call(Get()))
    await asyncio.sleep(0.01)
    await ref.cast(Stop())
    with pytest.raises(ActorExited):
        await parked


async def test_deferring_a_cast_is_harmless(node: Node) -> None:
    ref = await node.spawn(Deferring)
    await ref.cast(Get())
    assert await ref.call(Echo(value=1)) == 1


# -- call deadlines ----------------------------------------------------------------------


async def test_a_call_past_its_deadline_raises_call_timeout(node: Node) -> None:
    ref = await node.spawn(Counter)
    with pytest.raises(CallTimeout) as info:
        await ref.call(Sleep(0.2), timeout=0.02)
    assert isinstance(info.value, TimeoutError)
    assert "0.02" in str(info.value)
    assert ref.is_alive()
    assert await ref.call(Inc()) == 1  # the late reply was dropped, the actor goes on


async def test_a_cancelled_caller_does_not_disturb_the_actor(node: Node) -> None:
    ref = await node.spawn(Counter)
    task = asyncio.ensure_future(ref.call(Sleep(0.05)))
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await ref.call(Inc()) == 1


# -- timers ------------------------------------------------------------------------------


class Timed(Actor):
    async def init(self) -> None:
        self.fired: list[Any] = []
        self.timer = None

    @handles(Echo)
    def schedule(self, msg: Echo) -> None:
        self.timer = self.send_after(0.02, Inc(n=msg.value))

    @handles(Stop)
    def cancel(self, msg: Stop) -> bool:
        assert self.timer is not None
        return self.timer.cancel()

    @handles(Inc)
    def fire(self, msg: Inc) -> None:
        self.fired.append(msg.n)

    @handles(Get)
    def get(self, msg: Get) -> list[Any]:
        return self.fired


async def test_send_after_delivers_later(node: Node) -> None:
    ref = await node.spawn(Timed)
    await ref.call(Echo(value=7))
    assert await ref.call(Get()) == []
    await asyncio.sleep(0.05)
    assert await ref.call(Get()) == [7]


async def test_a_cancelled_timer_never_fires(node: Node) -> None:
    ref = await node.spawn(Timed)
    await ref.call(Echo(value=7))
    assert await ref.call(Stop()) is True
    await asyncio.sleep(0.05)
    assert await ref.call(Get()) == []
    assert await ref.call(Stop()) is False


async def test_timers_die_with_their_actor(node: Node) -> None:
    ref = await node.spawn(Timed)
    await ref.call(Echo(value=7))
    proc = ref._proc
    assert proc.timers
    await ref.cast(Crash())  # unhandled by Timed: a dead letter, still alive
    assert ref.is_alive()
    proc.kill()
    assert proc.timers is None
    await asyncio.sleep(0.05)
    assert node.dead_letters == 1


# -- identity ----------------------------------------------------------------------------


async def test_references_print_hash_and_compare(node: Node) -> None:
    named = await node.spawn(Counter, name="counter")
    anonymous = await node.spawn(Counter)
    assert repr(named) == f"<actor test.{named.id} counter>"
    assert repr(anonymous) == f"<actor test.{anonymous.id} Counter>"
    assert named.node == "test"
    assert named.name == "counter"
    assert {named, anonymous, named} == {named, anonymous}
    assert node.whereis("counter") == named
    assert isinstance(named, ActorRef)


async def test_a_name_is_unique_and_freed_on_exit(node: Node) -> None:
    ref = await node.spawn(Counter, name="only")
    with pytest.raises(StartError, match="already registered"):
        await node.spawn(Counter, name="only")
    await ref.cast(Stop())
    await ref.wait()
    assert node.whereis("only") is None
    again = await node.spawn(Counter, name="only")
    assert again != ref


async def test_self_log_is_bound_to_the_actor(node: Node, logs: list[dict[str, Any]]) -> None:
    class Logs(Actor):
        @handles(Echo)
        def say(self, msg: Echo) -> None:
            self.log.info("said", value=msg.value)

    ref = await node.spawn(Logs, name="talker")
    await ref.call(Echo("hi"))
    said = [e for e in logs if e["event"] == "said"]
    assert said == [
        {"event": "said", "value": "hi", "actor": repr(ref), "service": "", "log_level": "info"}
    ]


async def test_sending_from_another_thread_is_refused_clearly(node: Node) -> None:
    ref = await node.spawn(Counter)

    def other_thread() -> None:
        async def send() -> None:
            await ref.cast(Inc())

        asyncio.run(send())

    with pytest.raises(RuntimeError, match="outside its node's event loop"):
        await asyncio.to_thread(other_thread)
    await wait_until(lambda: ref.is_alive())
    assert await ref.call(Get()) == 0


# -- calls handled inline ----------------------------------------------------------------

MARK: contextvars.ContextVar[str] = contextvars.ContextVar("mark", default="unset")


class Marks(Actor):
    @handles(Echo)
    def mark(self, msg: Echo) -> str:
        before = MARK.get()
        MARK.set(str(msg.value))
        return before

    @handles(Inc)
    def poke_self(self, msg: Inc) -> None:
        self.ref.cast_nowait(Echo(value=f"queued {msg.n}"))


async def test_an_inline_call_runs_in_the_actors_own_context(node: Node) -> None:
    ref = await node.spawn(Marks)
    MARK.set("caller")
    assert await ref.call(Echo(value="first")) == "unset"  # not the caller's context
    assert await ref.call(Echo(value="second")) == "first"  # the actor's context persists
    assert MARK.get() == "caller"  # nothing leaked back


async def test_messages_sent_during_an_inline_call_are_handled_after_it(node: Node) -> None:
    ref = await node.spawn(Marks)
    await ref.call(Inc(n=1))  # the handler queues a cast to itself while running inline
    assert ref._proc.scheduled  # the queued message is pending, not lost
    assert await ref.call(Echo(value="last")) == "queued 1"


async def test_a_tight_loop_of_calls_still_gives_other_tasks_a_turn(node: Node) -> None:
    ref = await node.spawn(Counter)
    turns = 0

    async def other() -> None:
        nonlocal turns
        while True:
            turns += 1
            await asyncio.sleep(0)

    task = asyncio.ensure_future(other())
    await asyncio.sleep(0)
    before = turns
    for _ in range(1000):
        await ref.call(Inc())
    assert turns - before >= 1000 // 65  # at least one turn per inline budget
    task.cancel()
