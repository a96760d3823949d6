"""Fault scenarios: crashes in init, terminate and calls; stuck children; storms that escalate.

Each builds a real tree on a real node and breaks it the way production would.
"""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
import pytest

from aria_actors import (
    Actor,
    ActorExited,
    ChildSpec,
    ExitReason,
    Node,
    NodeConfig,
    RuntimeConfig,
    ServiceSpec,
    SupervisorRef,
    SupervisorSpec,
    handles,
)
from aria_actors.testing import VirtualClock, wait_restarted, wait_until

from .actors import Counter, Crash, Get, Inc


class Flaky(Actor):
    """Fails in init whenever the shared ``plan`` says so (pops one verdict per start)."""

    async def init(self, plan: list[bool], journal: list[str]) -> None:
        self.journal = journal
        journal.append("init")
        if plan and plan.pop(0):
            raise ConnectionError("database not reachable")

    @handles(Get)
    def get(self, msg: Get) -> str:
        return "up"

    @handles(Crash)
    def crash(self, msg: Crash) -> None:
        raise RuntimeError(msg.text)


async def test_crash_during_init_at_first_start_fails_the_tree(node: Node) -> None:
    journal: list[str] = []
    spec = SupervisorSpec(
        children=[
            ChildSpec(id="db", start=Flaky, args={"plan": [True], "journal": journal}),
        ]
    )
    with pytest.raises(Exception, match="database not reachable") as info:
        await node.start_supervisor(spec)
    assert info.value.child == "db"  # type: ignore[attr-defined]
    assert node.actors() == []


async def test_crash_during_init_at_restart_is_retried(
    node: Node, logs: list[dict[str, Any]]
) -> None:
    journal: list[str] = []
    plan = [False, True, True, False]  # first start ok, two failed restarts, then ok
    sup = await node.start_supervisor(
        SupervisorSpec(
            max_restarts=5,
            children=[
                ChildSpec(id="db", start=Flaky, name="db", args={"plan": plan, "journal": journal})
            ],
        )
    )
    old = node.whereis("db")
    assert old is not None
    with pytest.raises(ActorExited):
        await old.call(Crash())
    new = await wait_restarted(node, "db", old)
    assert await new.call(Get()) == "up"
    assert journal == ["init"] * 4
    assert sum(e["event"] == "restart_failed" for e in logs) == 2
    assert sup.is_alive()


class CrashesInTerminate(Actor):
    async def init(self, journal: list[str]) -> None:
        self.journal = journal

    async def terminate(self, reason: ExitReason) -> None:
        self.journal.append(f"terminate {reason.kind}")
        raise RuntimeError("cleanup failed")

    @handles(Crash)
    def crash(self, msg: Crash) -> None:
        raise RuntimeError(msg.text)


async def test_crash_during_terminate_on_shutdown(node: Node, logs: list[dict[str, Any]]) -> None:
    journal: list[str] = []
    spec = SupervisorSpec(
        children=[
            ChildSpec(id="a", start=Counter, name="a", args={"journal": journal}),
            ChildSpec(id="bad", start=CrashesInTerminate, name="bad", args={"journal": journal}),
            ChildSpec(id="c", start=Counter, name="c", args={"journal": journal}),
        ]
    )
    sup = await node.start_supervisor(spec)
    bad = node.whereis("bad")
    assert bad is not None
    journal.clear()
    await sup._proc.shutdown_with(ExitReason(kind="shutdown"), "infinity")
    # the failure in terminate is reported, and the siblings are still stopped in order
    assert journal == ["terminate c shutdown", "terminate shutdown", "terminate a shutdown"]
    reason = await bad.wait()
    assert reason.kind == "error"
    assert reason.detail == "in terminate"
    assert any(e["event"] == "shutdown_error" and e["child"] == "bad" for e in logs)
    assert any(
        e["event"] == "crash_report" and e["reason"].endswith("(in terminate)") for e in logs
    )


async def test_crash_during_terminate_after_a_crash_is_still_restarted(node: Node) -> None:
    journal: list[str] = []
    await node.start_supervisor(
        SupervisorSpec(
            children=[
                ChildSpec(id="bad", start=CrashesInTerminate, name="bad", args={"journal": journal})
            ]
        )
    )
    old = node.whereis("bad")
    assert old is not None
    with pytest.raises(ActorExited) as info:
        await old.call(Crash("first"))
    # As in OTP the exit reason is terminate's error; the first crash is kept beside it.
    reason = info.value.reason
    assert reason.error_message == "cleanup failed"
    assert reason.detail == "in terminate, after error: RuntimeError: first"
    assert await old.wait() == reason
    await wait_restarted(node, "bad", old)


async def test_crash_during_a_call_then_the_restarted_child_answers(node: Node) -> None:
    await node.start_supervisor(
        SupervisorSpec(children=[ChildSpec(id="c", start=Counter, name="c", args={"start": 3})])
    )
    first = node.whereis("c")
    assert first is not None
    assert await first.call(Inc()) == 4
    pending = [asyncio.ensure_future(first.call(Get())) for _ in range(3)]
    await asyncio.sleep(0)  # the three calls are queued now
    with pytest.raises(ActorExited) as info:
        await first.call(Crash("mid-call"))
    assert info.value.reason.error_message == "mid-call"
    results = await asyncio.gather(*pending, return_exceptions=True)
    assert results[:3] == [4, 4, 4]  # queued before the crash: answered
    again = await wait_restarted(node, "c", first)
    assert await again.call(Get()) == 3  # fresh state from init


class Headstrong(Actor):
    """Ignores shutdown: its terminate never returns."""

    async def init(self, journal: list[str]) -> None:
        self.journal = journal

    @handles(Get)
    async def hang(self, msg: Get) -> None:
        await asyncio.sleep(3600)

    async def terminate(self, reason: ExitReason) -> None:
        self.journal.append("headstrong terminate")
        await asyncio.sleep(3600)


async def test_a_child_that_ignores_shutdown_is_killed_and_siblings_stop(node: Node) -> None:
    journal: list[str] = []
    spec = SupervisorSpec(
        children=[
            ChildSpec(id="a", start=Counter, name="a", args={"journal": journal}),
            ChildSpec(
                id="headstrong",
                start=Headstrong,
                name="headstrong",
                args={"journal": journal},
                shutdown=0.1,
            ),
            ChildSpec(id="c", start=Counter, name="c", args={"journal": journal}),
        ]
    )
    sup = await node.start_supervisor(spec)
    headstrong = node.whereis("headstrong")
    assert headstrong is not None
    hung = asyncio.ensure_future(headstrong.call(Get(), timeout=60))  # busy in a handler
    await asyncio.sleep(0.01)
    journal.clear()
    await asyncio.wait_for(sup._proc.shutdown_with(ExitReason(kind="shutdown"), "infinity"), 5)
    assert (await headstrong.wait()).kind == "killed"
    with pytest.raises(ActorExited):
        await hung
    assert journal == ["terminate c shutdown", "terminate a shutdown"]


class Leaf(Actor):
    @handles(Crash)
    def crash(self, msg: Crash) -> None:
        raise RuntimeError("storm")

    @handles(Get)
    def get(self, msg: Get) -> str:
        return "leaf"


def storm_tree() -> SupervisorSpec:
    """top (2 in 60 s) → middle (1 in 60 s) → leaf."""
    middle = SupervisorSpec(
        max_restarts=1, max_seconds=60, children=[ChildSpec(id="leaf", start=Leaf, name="leaf")]
    )
    return SupervisorSpec(
        max_restarts=2,
        max_seconds=60,
        children=[
            ChildSpec(id="middle", start=middle, name="middle"),
            ChildSpec(id="sibling", start=Counter, name="sibling"),
        ],
    )


async def crash_leaf(node: Node) -> None:
    leaf = node.whereis("leaf")
    assert leaf is not None
    with pytest.raises(ActorExited):
        await leaf.call(Crash())


async def test_a_crash_storm_escalates_two_levels_up(node: Node) -> None:
    top = await node.start_supervisor(storm_tree(), name="top")
    middles = [node.whereis("middle")]
    for _ in range(3):  # each round: the leaf crashes twice, so middle gives up
        previous = node.whereis("leaf")
        await crash_leaf(node)
        await wait_restarted(node, "leaf", previous)
        await crash_leaf(node)
        if len(middles) < 3:
            middles.append(await wait_restarted(node, "middle", middles[-1]))
    reason = await top.wait(timeout=2)
    assert reason == ExitReason(kind="shutdown", detail="reached_max_restart_intensity")
    assert node.actors() == []
    assert len(set(middles)) == 3  # middle was restarted twice before top gave up


async def test_a_crash_storm_in_a_permanent_service_stops_the_node() -> None:
    clock = VirtualClock()
    config = NodeConfig(runtime=RuntimeConfig(loop_lag_interval=0))
    service = ServiceSpec(name="aria_storm", supervisor=storm_tree(), restart="permanent")
    async with Node(name="storm", config=config, clock=clock) as node:
        await node.boot([service])
        for _ in range(3):
            previous = node.whereis("leaf")
            await crash_leaf(node)
            await wait_restarted(node, "leaf", previous)
            await crash_leaf(node)
            if node.whereis("aria_storm") is None:
                break
            await wait_until(lambda: node.whereis("leaf") is not None or not node.is_running)
            if not node.is_running:
                break
        assert await asyncio.wait_for(node.wait_stopped(), 5) == 1
        assert node.services == []


class Report(msgspec.Struct, frozen=True, tag=True):
    pass


async def test_a_supervisor_child_answers_as_a_supervisor_ref(node: Node) -> None:
    top = await node.start_supervisor(storm_tree())
    middle = node.whereis("middle")
    assert isinstance(middle, SupervisorRef)
    assert [c.id for c in await middle.which_children()] == ["leaf"]
    assert [c.id for c in await top.which_children()] == ["middle", "sibling"]
