"""Actor.start_task: tasks an actor owns live no longer than the actor."""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
import pytest

from aria_actors import Actor, ActorExited, Node, handles
from aria_actors.testing import wait_until


class Begin(msgspec.Struct, frozen=True, tag=True):
    fail: bool = False


class Status(msgspec.Struct, frozen=True, tag=True):
    pass


class Worker(Actor):
    """Starts a long task on Begin; records how the task ended."""

    async def init(self, log: list[str], await_in_terminate: bool = False) -> None:
        self.events = log
        self.await_in_terminate = await_in_terminate
        self.job: asyncio.Task[None] | None = None

    @handles(Begin)
    def begin(self, msg: Begin) -> int:
        self.job = self.start_task(self.work(msg.fail), name="work")
        return len(self._proc.tasks or ())

    async def work(self, fail: bool) -> None:
        self.events.append("started")
        try:
            await asyncio.sleep(0.01)
            if fail:
                raise ValueError("the task broke")
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            self.events.append("cancelled")
            raise

    @handles(Status)
    def status(self, msg: Status) -> bool:
        return self.job is not None and not self.job.done()

    async def terminate(self, reason: Any) -> None:
        self.events.append(f"terminate {reason.kind}")
        if self.await_in_terminate and self.job is not None:
            self.events.append(f"task running in terminate: {not self.job.done()}")


async def test_a_killed_actor_takes_its_tasks_along(node: Node) -> None:
    events: list[str] = []
    ref = await node.spawn(Worker, log=events)
    assert await ref.call(Begin()) == 1
    await wait_until(lambda: "started" in events)
    assert node.info(ref).tasks == 1
    ref._proc.kill()  # no terminate: as brutal_kill or a link does it
    await wait_until(lambda: "cancelled" in events)
    assert events == ["started", "cancelled"]


async def test_terminate_runs_before_the_tasks_are_cancelled(node: Node) -> None:
    events: list[str] = []
    ref = await node.spawn(Worker, log=events, await_in_terminate=True)
    await ref.call(Begin())
    await wait_until(lambda: "started" in events)
    assert await ref.call(Status()) is True
    await node.stop_actor(ref)
    await wait_until(lambda: "cancelled" in events)
    assert events == [
        "started",
        "terminate shutdown",
        "task running in terminate: True",
        "cancelled",
    ]


async def test_an_exception_in_a_task_crashes_the_actor(node: Node) -> None:
    events: list[str] = []
    ref = await node.spawn(Worker, log=events)
    proc = ref._proc
    await ref.call(Begin(fail=True))
    reason = await proc.wait_exit(5.0)
    assert reason.kind == "error"
    assert reason.error_type == "ValueError"
    assert reason.error_message == "the task broke"
    assert reason.detail == "in task work"
    assert events == ["started", "terminate error"]


async def test_no_task_starts_on_an_actor_that_exited(node: Node) -> None:
    events: list[str] = []
    ref = await node.spawn(Worker, log=events)
    actor = ref._proc.actor
    assert actor is not None
    await node.stop_actor(ref)

    async def never() -> None:
        events.append("ran")

    coroutine = never()
    with pytest.raises(ActorExited):
        actor.start_task(coroutine)
    assert coroutine.cr_frame is None  # closed: no "never awaited" warning either
    await asyncio.sleep(0)
    assert "ran" not in events


async def test_a_task_that_ends_is_forgotten(node: Node) -> None:
    class Quick(Actor):
        @handles(Begin)
        async def begin(self, msg: Begin) -> int:
            await self.start_task(asyncio.sleep(0))
            return len(self._proc.tasks or ())

    ref = await node.spawn(Quick)
    assert await ref.call(Begin()) == 0
    assert node.info(ref).tasks == 0
