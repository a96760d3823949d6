"""Static and dynamic supervisors: strategies, restart types, intensity, the API."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import pytest

from aria_actors import (
    Actor,
    ActorExited,
    ChildCounts,
    ChildSpec,
    DynamicSupervisorSpec,
    ExitReason,
    Node,
    StartError,
    SupervisorError,
    SupervisorRef,
    SupervisorSpec,
    handles,
)
from aria_actors.testing import VirtualClock, wait_restarted, wait_until

from .actors import Counter, Crash, Get, Inc, Stop


def workers(journal: list[str], *ids: str, **overrides: Any) -> list[ChildSpec]:
    return [
        ChildSpec(id=i, start=Counter, name=i, args={"journal": journal}, **overrides) for i in ids
    ]


async def crash(node: Node, name: str) -> None:
    """Crash the child registered as ``name`` and wait until its supervisor acted."""
    ref = node.whereis(name)
    assert ref is not None
    parent = ref._proc.parent
    assert parent is not None
    with pytest.raises(ActorExited):
        await ref.call(Crash())
    assert isinstance(parent.ref, SupervisorRef)
    with contextlib.suppress(ActorExited):  # it may give up instead of answering
        await parent.ref.which_children()  # its reply comes after it handled the Exit


async def refs(sup: SupervisorRef) -> dict[str, Any]:
    return {c.id: c.actor for c in await sup.which_children()}


# -- starting and stopping ---------------------------------------------------------------


async def test_children_start_in_order_and_stop_in_reverse(node: Node) -> None:
    journal: list[str] = []
    sup = await node.start_supervisor(
        SupervisorSpec(children=workers(journal, "a", "b", "c")), name="sup"
    )
    assert journal == ["init a", "init b", "init c"]
    assert isinstance(sup, SupervisorRef)
    assert node.whereis("sup") == sup
    journal.clear()
    await sup._proc.shutdown_with(ExitReason(kind="shutdown"), "infinity")
    assert journal == ["terminate c shutdown", "terminate b shutdown", "terminate a shutdown"]
    assert node.actors() == []


async def test_a_failed_start_stops_the_started_children_and_names_the_child(node: Node) -> None:
    class Broken(Actor):
        async def init(self) -> None:
            raise ValueError("bad disk")

    journal: list[str] = []
    spec = SupervisorSpec(
        children=[*workers(journal, "a", "b"), ChildSpec(id="broken", start=Broken)]
    )
    with pytest.raises(StartError) as info:
        await node.start_supervisor(spec)
    assert info.value.child == "broken"
    assert "bad disk" in str(info.value)
    assert journal == ["init a", "init b", "terminate b shutdown", "terminate a shutdown"]
    assert node.actors() == []


async def test_a_nested_start_failure_names_the_path(node: Node) -> None:
    class Broken(Actor):
        async def init(self) -> None:
            raise ValueError("bad disk")

    inner = SupervisorSpec(children=[ChildSpec(id="store", start=Broken)])
    middle = SupervisorSpec(children=[ChildSpec(id="inner", start=inner)])
    spec = SupervisorSpec(children=[ChildSpec(id="middle", start=middle)])
    with pytest.raises(StartError) as info:
        await node.start_supervisor(spec)
    assert info.value.child == "middle/inner/store"
    assert node.actors() == []


# -- strategies --------------------------------------------------------------------------


async def test_one_for_one_restarts_only_the_crashed_child(node: Node) -> None:
    journal: list[str] = []
    sup = await node.start_supervisor(SupervisorSpec(children=workers(journal, "a", "b", "c")))
    before = await refs(sup)
    journal.clear()
    await crash(node, "b")
    after = await refs(sup)
    assert after["a"] == before["a"]
    assert after["c"] == before["c"]
    assert after["b"] != before["b"]
    assert after["b"].is_alive()
    assert journal == ["terminate b error", "init b"]
    assert [c.restarts for c in await sup.which_children()] == [0, 1, 0]


async def test_one_for_all_restarts_everyone(node: Node) -> None:
    journal: list[str] = []
    sup = await node.start_supervisor(
        SupervisorSpec(strategy="one_for_all", children=workers(journal, "a", "b", "c"))
    )
    before = await refs(sup)
    journal.clear()
    await crash(node, "b")
    after = await refs(sup)
    assert all(after[i] != before[i] and after[i].is_alive() for i in "abc")
    assert journal == [
        "terminate b error",
        "terminate c shutdown",
        "terminate a shutdown",
        "init a",
        "init b",
        "init c",
    ]


async def test_rest_for_one_restarts_the_child_and_those_after_it(node: Node) -> None:
    journal: list[str] = []
    sup = await node.start_supervisor(
        SupervisorSpec(strategy="rest_for_one", children=workers(journal, "a", "b", "c"))
    )
    before = await refs(sup)
    journal.clear()
    await crash(node, "b")
    after = await refs(sup)
    assert after["a"] == before["a"]
    assert after["b"] != before["b"]
    assert after["c"] != before["c"]
    assert journal == ["terminate b error", "terminate c shutdown", "init b", "init c"]


async def test_a_registered_name_follows_the_child_across_restarts(node: Node) -> None:
    journal: list[str] = []
    await node.start_supervisor(SupervisorSpec(children=workers(journal, "a")))
    old = node.whereis("a")
    await crash(node, "a")
    new = await wait_restarted(node, "a", old)
    assert await new.call(Inc()) == 1  # a fresh instance: state did not survive


# -- restart types -----------------------------------------------------------------------


async def test_transient_children_restart_only_after_abnormal_exits(node: Node) -> None:
    journal: list[str] = []
    sup = await node.start_supervisor(
        SupervisorSpec(children=workers(journal, "t", restart="transient"))
    )
    await crash(node, "t")
    assert (await refs(sup))["t"] is not None
    ref = node.whereis("t")
    assert ref is not None
    await ref.cast(Stop("normal"))
    await ref.wait()
    assert (await refs(sup))["t"] is None  # the spec stays, not running
    assert await sup.count_children() == ChildCounts(specs=1, active=0, supervisors=0, workers=1)
    ref2 = await sup.restart_child("t")
    await ref2.cast(Stop("shutdown"))
    await ref2.wait()
    assert (await refs(sup))["t"] is None


async def test_temporary_children_are_never_restarted_and_forgotten(node: Node) -> None:
    journal: list[str] = []
    sup = await node.start_supervisor(
        SupervisorSpec(children=workers(journal, "tmp", "keep", restart="temporary"))
    )
    await crash(node, "tmp")
    assert list(await refs(sup)) == ["keep"]


async def test_permanent_children_restart_even_after_normal_exits(node: Node) -> None:
    journal: list[str] = []
    sup = await node.start_supervisor(SupervisorSpec(children=workers(journal, "p")))
    ref = node.whereis("p")
    assert ref is not None
    await ref.cast(Stop("normal"))
    await ref.wait()
    new = (await refs(sup))["p"]
    assert new is not None
    assert new != ref


# -- intensity and escalation ------------------------------------------------------------


async def test_too_many_restarts_make_the_supervisor_give_up(
    node: Node, clock: VirtualClock, logs: list[dict[str, Any]]
) -> None:
    journal: list[str] = []
    sup = await node.start_supervisor(
        SupervisorSpec(max_restarts=2, max_seconds=5, children=workers(journal, "a", "b"))
    )
    await crash(node, "a")
    clock.advance(1)
    await crash(node, "a")
    clock.advance(1)
    await crash(node, "a")  # the third restart within 5 s: give up
    reason = await sup.wait(timeout=1)
    assert reason == ExitReason(kind="shutdown", detail="reached_max_restart_intensity")
    assert node.actors() == []
    assert journal[-2:] == ["terminate a error", "terminate b shutdown"]
    assert any(e["event"] == "supervisor_gave_up" for e in logs)


async def test_restarts_outside_the_window_do_not_count(node: Node, clock: VirtualClock) -> None:
    journal: list[str] = []
    sup = await node.start_supervisor(
        SupervisorSpec(max_restarts=1, max_seconds=5, children=workers(journal, "a"))
    )
    for _ in range(5):
        await crash(node, "a")
        clock.advance(5.001)  # the previous restart has left the window
    assert sup.is_alive()
    await crash(node, "a")
    clock.advance(5)  # still inside: a restart counts while now - t <= max_seconds
    await crash(node, "a")
    assert (await sup.wait(timeout=1)).detail == "reached_max_restart_intensity"


async def test_max_restarts_zero_gives_up_at_the_first_crash(node: Node) -> None:
    journal: list[str] = []
    sup = await node.start_supervisor(
        SupervisorSpec(max_restarts=0, children=workers(journal, "a"))
    )
    await crash(node, "a")
    assert (await sup.wait(timeout=1)).kind == "shutdown"


async def test_a_child_supervisor_giving_up_is_restarted_by_its_parent(node: Node) -> None:
    journal: list[str] = []
    inner = SupervisorSpec(max_restarts=0, children=workers(journal, "leaf"))
    top = await node.start_supervisor(
        SupervisorSpec(children=[ChildSpec(id="inner", start=inner, name="inner")])
    )
    old_inner = node.whereis("inner")
    await crash(node, "leaf")
    new_inner = await wait_restarted(node, "inner", old_inner)
    assert node.whereis("leaf") is not None
    assert (await top.which_children())[0].restarts == 1
    assert isinstance(new_inner, SupervisorRef)
    assert [c.id for c in await new_inner.which_children()] == ["leaf"]


async def test_a_failing_restart_is_retried_and_counts_against_the_intensity(
    node: Node, logs: list[dict[str, Any]]
) -> None:
    starts: list[int] = []

    class FailsAfterFirst(Actor):
        async def init(self) -> None:
            starts.append(1)
            if len(starts) > 1:
                raise OSError("cannot reopen")

        @handles(Crash)
        def crash(self, msg: Crash) -> None:
            raise RuntimeError("first crash")

    sup = await node.start_supervisor(
        SupervisorSpec(
            max_restarts=3, children=[ChildSpec(id="f", start=FailsAfterFirst, name="f")]
        )
    )
    await crash(node, "f")
    assert (await sup.wait(timeout=2)).detail == "reached_max_restart_intensity"
    assert len(starts) == 4  # the first start, then three failed restarts
    assert sum(e["event"] == "restart_failed" for e in logs) == 3


# -- shutdown specs ----------------------------------------------------------------------


class IgnoresShutdown(Actor):
    async def init(self, journal: list[str]) -> None:
        self.journal = journal

    async def terminate(self, reason: ExitReason) -> None:
        self.journal.append("terminate started")
        await asyncio.sleep(60)


async def test_brutal_kill_skips_terminate(node: Node) -> None:
    journal: list[str] = []
    sup = await node.start_supervisor(
        SupervisorSpec(children=workers(journal, "a", shutdown="brutal_kill"))
    )
    journal.clear()
    await sup.terminate_child("a")
    assert journal == []


async def test_a_child_that_ignores_shutdown_is_killed_after_its_time(node: Node) -> None:
    journal: list[str] = []
    spec = SupervisorSpec(
        children=[
            *workers(journal, "a"),
            ChildSpec(id="stuck", start=IgnoresShutdown, args={"journal": journal}, shutdown=0.05),
        ]
    )
    sup = await node.start_supervisor(spec)
    stuck = node.actors()[-1]
    started = time.monotonic()
    await sup._proc.shutdown_with(ExitReason(kind="shutdown"), "infinity")
    # killed after its 0.05 s (uvloop's clock ticks in milliseconds), long before its 60 s
    assert 0.04 <= time.monotonic() - started < 30
    assert (await stuck.wait()).kind == "killed"
    assert journal[-2:] == ["terminate started", "terminate a shutdown"]


# -- the API -----------------------------------------------------------------------------


async def test_which_and_count_children(node: Node) -> None:
    journal: list[str] = []
    spec = SupervisorSpec(
        children=[
            *workers(journal, "a"),
            ChildSpec(id="pool", start=DynamicSupervisorSpec(max_children=2)),
        ]
    )
    sup = await node.start_supervisor(spec)
    infos = await sup.which_children()
    assert [(i.id, i.type, i.restart, i.restarts) for i in infos] == [
        ("a", "worker", "permanent", 0),
        ("pool", "supervisor", "permanent", 0),
    ]
    assert all(i.actor is not None and i.actor.is_alive() for i in infos)
    assert await sup.count_children() == ChildCounts(specs=2, active=2, supervisors=1, workers=1)


async def test_start_terminate_restart_delete_child(node: Node) -> None:
    journal: list[str] = []
    sup = await node.start_supervisor(SupervisorSpec(children=workers(journal, "a")))
    b = await sup.start_child(ChildSpec(id="b", start=Counter, args={"start": 7}))
    assert await b.call(Get()) == 7
    with pytest.raises(SupervisorError) as info:
        await sup.start_child(ChildSpec(id="b", start=Counter))
    assert info.value.kind == "running"

    await sup.terminate_child("b")
    assert not b.is_alive()
    assert (await refs(sup))["b"] is None  # spec kept, not restarted
    with pytest.raises(SupervisorError) as info:
        await sup.start_child(ChildSpec(id="b", start=Counter))
    assert info.value.kind == "already_present"

    b2 = await sup.restart_child("b")
    assert await b2.call(Get()) == 7
    with pytest.raises(SupervisorError) as info:
        await sup.restart_child("b")
    assert info.value.kind == "running"
    with pytest.raises(SupervisorError) as info:
        await sup.delete_child("b")
    assert info.value.kind == "running"

    await sup.terminate_child("b")
    await sup.delete_child("b")
    assert list(await refs(sup)) == ["a"]
    for call in (sup.terminate_child, sup.restart_child, sup.delete_child):
        with pytest.raises(SupervisorError) as info:
            await call("nope")
        assert info.value.kind == "not_found"


async def test_start_child_failure_keeps_no_spec(node: Node) -> None:
    class Broken(Actor):
        async def init(self) -> None:
            raise ValueError("nope")

    sup = await node.start_supervisor(SupervisorSpec())
    with pytest.raises(StartError, match="nope") as info:
        await sup.start_child(ChildSpec(id="x", start=Broken))
    assert info.value.child == "x"
    assert await sup.which_children() == []


async def test_a_temporary_child_terminated_is_forgotten(node: Node) -> None:
    journal: list[str] = []
    sup = await node.start_supervisor(
        SupervisorSpec(children=workers(journal, "t", restart="temporary"))
    )
    await sup.terminate_child("t")
    assert await sup.which_children() == []


async def test_exits_of_children_stopped_on_purpose_are_ignored(node: Node) -> None:
    journal: list[str] = []
    sup = await node.start_supervisor(SupervisorSpec(children=workers(journal, "a")))
    ref = node.whereis("a")
    assert ref is not None
    await ref.cast(Crash())  # the Exit reaches the supervisor...
    await sup.terminate_child("a")  # ...queued before this request, which it handles after
    await asyncio.sleep(0.01)
    infos = await sup.which_children()
    assert infos[0].actor is None


# -- dynamic supervisors -----------------------------------------------------------------


async def test_dynamic_supervisor_children(node: Node) -> None:
    sup = await node.start_supervisor(DynamicSupervisorSpec(max_children=2), name="pool")
    one = await sup.start_child(ChildSpec(id="w", start=Counter, args={"start": 1}))
    two = await sup.start_child(ChildSpec(id="w", start=Counter, args={"start": 2}))
    with pytest.raises(StartError, match="max_children"):
        await sup.start_child(ChildSpec(id="w", start=Counter))
    assert [i.actor for i in await sup.which_children()] == [one, two]
    assert await sup.count_children() == ChildCounts(specs=2, active=2, supervisors=0, workers=2)

    with pytest.raises(ActorExited):
        await one.call(Crash())
    infos = await sup.which_children()
    assert len(infos) == 2
    restarted = infos[-1].actor
    assert restarted is not None
    assert restarted not in (one, two)
    assert await restarted.call(Get()) == 1

    await sup.terminate_child(two)
    assert [i.actor for i in await sup.which_children()] == [restarted]
    with pytest.raises(SupervisorError) as info:
        await sup.terminate_child(two)
    assert info.value.kind == "not_found"
    with pytest.raises(SupervisorError) as info:
        await sup.restart_child("w")
    assert info.value.kind == "dynamic"
    with pytest.raises(SupervisorError) as info:
        await sup.terminate_child("w")
    assert info.value.kind == "dynamic"


async def test_dynamic_supervisor_forgets_children_that_end_for_good(node: Node) -> None:
    sup = await node.start_supervisor(DynamicSupervisorSpec())
    temporary = await sup.start_child(ChildSpec(id="t", start=Counter, restart="temporary"))
    transient = await sup.start_child(ChildSpec(id="n", start=Counter, restart="transient"))
    await temporary.cast(Crash())
    await transient.cast(Stop("normal"))
    await temporary.wait()
    await transient.wait()
    assert await sup.which_children() == []


async def test_dynamic_supervisor_stops_children_newest_first(node: Node) -> None:
    journal: list[str] = []
    sup = await node.start_supervisor(DynamicSupervisorSpec())
    for name in ("x", "y", "z"):
        await sup.start_child(
            ChildSpec(id=name, start=Counter, name=name, args={"journal": journal})
        )
    journal.clear()
    await sup._proc.shutdown_with(ExitReason(kind="shutdown"), "infinity")
    assert journal == ["terminate z shutdown", "terminate y shutdown", "terminate x shutdown"]


async def test_dynamic_supervisor_gives_up_too(node: Node) -> None:
    sup = await node.start_supervisor(DynamicSupervisorSpec(max_restarts=1))
    child = await sup.start_child(ChildSpec(id="w", start=Counter, name="w"))
    with pytest.raises(ActorExited):
        await child.call(Crash())
    child = await wait_restarted(node, "w", child)
    with pytest.raises(ActorExited):
        await child.call(Crash())
    assert (await sup.wait(timeout=1)).detail == "reached_max_restart_intensity"


# -- reports -----------------------------------------------------------------------------


async def test_crash_and_supervisor_reports(node: Node, logs: list[dict[str, Any]]) -> None:
    journal: list[str] = []
    await node.start_supervisor(SupervisorSpec(children=workers(journal, "a")), name="sup")
    await crash(node, "a")
    await wait_until(lambda: any(e["event"] == "child_restarted" for e in logs))
    report = next(e for e in logs if e["event"] == "crash_report")
    assert report["log_level"] == "error"
    assert report["actor"].endswith(" a>")
    assert report["actor_class"] == "tests.runtime.actors.Counter"
    assert report["message"] == "Crash(text='boom')"
    assert report["reason"] == "error: RuntimeError: boom"
    assert "RuntimeError: boom" in report["traceback"]
    exited = next(e for e in logs if e["event"] == "child_exited")
    assert exited["child"] == "a"
    assert exited["reason"] == "error: RuntimeError: boom"
    assert node.restart_counts == {("sup", "a"): 1}


async def test_quiet_exits_give_no_crash_report(node: Node, logs: list[dict[str, Any]]) -> None:
    ref = await node.spawn(Counter)
    await ref.cast(Stop("normal"))
    await ref.wait()
    other = await node.spawn(Counter)
    await other.cast(Stop("shutdown"))
    await other.wait()
    assert not [e for e in logs if e["event"] == "crash_report"]


async def test_brutal_kill_is_not_reported_as_a_crash(
    node: Node, logs: list[dict[str, Any]]
) -> None:
    journal: list[str] = []
    sup = await node.start_supervisor(
        SupervisorSpec(children=workers(journal, "a", shutdown="brutal_kill"))
    )
    await sup.terminate_child("a")
    assert not [e for e in logs if e["event"] in ("crash_report", "shutdown_error")]


async def test_a_child_killed_for_overrunning_its_shutdown_is_reported(
    node: Node, logs: list[dict[str, Any]]
) -> None:
    journal: list[str] = []
    sup = await node.start_supervisor(
        SupervisorSpec(
            children=[
                ChildSpec(id="s", start=IgnoresShutdown, args={"journal": journal}, shutdown=0.02)
            ]
        )
    )
    await sup.terminate_child("s")
    assert [e["reason"] for e in logs if e["event"] == "crash_report"] == ["killed"]
    assert [e["child"] for e in logs if e["event"] == "shutdown_error"] == ["s"]
