"""Cold-boot order (``aria_actors.boot_order``) and booting services on a node (``Node.boot``)."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Sequence
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aria_actors import (
    LAYER_ORDER,
    Actor,
    BootError,
    ChildSpec,
    ExitReason,
    Node,
    NodeConfig,
    Restart,
    RuntimeConfig,
    ServiceSpec,
    StartError,
    SupervisorRef,
    SupervisorSpec,
    boot_order,
    handles,
)
from aria_actors.testing import VirtualClock, wait_until

# ======================================================================================
# Helpers
# ======================================================================================

ARIA_REQUIRES: dict[str, tuple[str, ...]] = {
    "aria_security": (),
    "aria_data": ("aria_security",),
    "aria_auth": ("aria_security", "aria_data"),
    "aria_storage": ("aria_security", "aria_auth"),
    "aria_queue": ("aria_data", "aria_security"),
    "aria_shape": ("aria_security", "aria_data", "aria_storage", "aria_queue"),
    "aria_engine": ("aria_security", "aria_data", "aria_queue"),
    "aria_interpret": ("aria_security", "aria_data", "aria_storage", "aria_queue"),
    "aria_workflow": ("aria_security", "aria_data", "aria_queue"),
    "aria_interface": (
        "aria_security",
        "aria_auth",
        "aria_data",
        "aria_storage",
        "aria_queue",
        "aria_workflow",
    ),
    "aria_coordinate": ("aria_security", "aria_auth"),
    "aria_monitor": ("aria_security",),
    "aria_debugger": ("aria_security", "aria_auth"),
    "aria_tune": ("aria_security", "aria_data", "aria_monitor", "aria_queue"),
}

EXPECTED_ORDER = [
    "aria_security",
    "aria_data",
    "aria_auth",
    "aria_storage",
    "aria_queue",
    "aria_shape",
    "aria_engine",
    "aria_interpret",
    "aria_workflow",
    "aria_interface",
    "aria_coordinate",
    "aria_monitor",
    "aria_debugger",
    "aria_tune",
]

Events = list[tuple[str, str]]


def service(
    name: str,
    *requires: str,
    children: Sequence[ChildSpec] = (),
    restart: Restart = "permanent",
    max_restarts: int = 3,
) -> ServiceSpec:
    return ServiceSpec(
        name=name,
        requires=requires,
        restart=restart,
        supervisor=SupervisorSpec(max_restarts=max_restarts, children=children),
    )


def names(specs: Sequence[ServiceSpec]) -> list[str]:
    return [spec.name for spec in specs]


def aria_services() -> list[ServiceSpec]:
    return [service(name, *requires) for name, requires in ARIA_REQUIRES.items()]


class Boom(msgspec.Struct, frozen=True, tag=True):
    """Crash the receiving :class:`Recorder`."""


class Recorder(Actor):
    """A worker that records its ``init`` and ``terminate`` into a shared list."""

    async def init(
        self,
        label: str,
        events: Events,
        fail: bool = False,
        crash_soon: bool = False,
        delay: float = 0.0,
    ) -> None:
        self.label = label
        self.events = events
        events.append(("init", label))
        if delay:
            await asyncio.sleep(delay)
        if fail:
            raise RuntimeError(f"{label} cannot start")
        if crash_soon:
            self.send_after(0.0, Boom())

    @handles(Boom)
    def boom(self, message: Boom) -> None:
        raise RuntimeError(f"{self.label} crashed")

    async def terminate(self, reason: ExitReason) -> None:
        self.events.append(("terminate", self.label))


def recorded(
    name: str,
    *requires: str,
    events: Events,
    restart: Restart = "permanent",
    max_restarts: int = 3,
    **args: Any,
) -> ServiceSpec:
    """A service whose one worker (child id ``worker``) records into ``events``."""
    child = ChildSpec(id="worker", start=Recorder, args={"label": name, "events": events, **args})
    return service(name, *requires, children=[child], restart=restart, max_restarts=max_restarts)


def quiet_node(name: str) -> Node:
    """A node of our own (not the fixture's), to watch it stop by itself."""
    config = NodeConfig(runtime=RuntimeConfig(mailbox_size=64, shutdown=2.0))
    return Node(name=name, config=config, clock=VirtualClock())


# ======================================================================================
# boot_order
# ======================================================================================


def test_aria_services_boot_in_the_architecture_order() -> None:
    assert names(boot_order(aria_services())) == EXPECTED_ORDER


def test_layer_order_is_the_architecture_order() -> None:
    assert list(LAYER_ORDER) == EXPECTED_ORDER


@pytest.mark.parametrize("seed", range(10))
def test_aria_services_in_any_input_order_boot_in_the_same_order(seed: int) -> None:
    services = aria_services()
    random.Random(seed).shuffle(services)
    assert names(boot_order(services)) == EXPECTED_ORDER


def test_reversed_input_boots_in_the_same_order() -> None:
    assert names(boot_order(list(reversed(aria_services())))) == EXPECTED_ORDER


def test_boot_order_returns_the_specs_themselves() -> None:
    services = aria_services()
    order = boot_order(services)
    assert sorted(map(id, order)) == sorted(map(id, services))


@pytest.mark.parametrize(
    ("only", "expected"),
    [
        (["aria_security"], ["aria_security"]),
        (["aria_storage"], ["aria_security", "aria_data", "aria_auth", "aria_storage"]),
        (["aria_monitor"], ["aria_security", "aria_monitor"]),
        (
            ["aria_tune"],
            ["aria_security", "aria_data", "aria_queue", "aria_monitor", "aria_tune"],
        ),
        (
            ["aria_interface"],
            [
                "aria_security",
                "aria_data",
                "aria_auth",
                "aria_storage",
                "aria_queue",
                "aria_workflow",
                "aria_interface",
            ],
        ),
        (
            ["aria_debugger", "aria_engine"],
            [
                "aria_security",
                "aria_data",
                "aria_auth",
                "aria_queue",
                "aria_engine",
                "aria_debugger",
            ],
        ),
        ([], []),
    ],
)
def test_only_brings_the_requirements_along(only: list[str], expected: list[str]) -> None:
    assert names(boot_order(aria_services(), only=only)) == expected


def test_only_accepts_any_iterable_and_repeated_names() -> None:
    order = boot_order(aria_services(), only=iter(["aria_auth", "aria_auth", "aria_data"]))
    assert names(order) == ["aria_security", "aria_data", "aria_auth"]


def test_services_outside_the_layer_order_come_after_it_in_input_order() -> None:
    services = [
        service("zeta"),
        service("aria_data", "aria_security"),
        service("alpha"),
        service("aria_security"),
        service("beta", "zeta"),
    ]
    assert names(boot_order(services)) == ["aria_security", "aria_data", "zeta", "alpha", "beta"]


def test_a_requirement_outside_the_layer_order_starts_first() -> None:
    services = [service("aria_security", "vault"), service("vault")]
    assert names(boot_order(services)) == ["vault", "aria_security"]


def test_no_services() -> None:
    assert boot_order([]) == []


@pytest.mark.parametrize(
    ("services", "cycle"),
    [
        ([service("a", "b"), service("b", "a")], "a -> b -> a"),
        ([service("a", "a")], "a -> a"),
        (
            [service("a", "b"), service("b", "c"), service("c", "d"), service("d", "b")],
            "b -> c -> d -> b",
        ),
        (
            [service("aria_security", "aria_tune"), *aria_services()[1:]],
            "aria_security -> aria_tune -> aria_security",
        ),
    ],
    ids=["two", "self", "longer", "aria"],
)
def test_a_cycle_is_refused_and_shown(services: list[ServiceSpec], cycle: str) -> None:
    with pytest.raises(BootError, match="cycle") as caught:
        boot_order(services)
    assert cycle in str(caught.value)


def test_a_cycle_outside_the_only_selection_is_not_in_the_way() -> None:
    services = [service("ok"), service("a", "b"), service("b", "a")]
    assert names(boot_order(services, only=["ok"])) == ["ok"]
    with pytest.raises(BootError, match="a -> b -> a"):
        boot_order(services, only=["a"])


def test_an_unknown_requirement_is_named() -> None:
    services = [service("aria_security"), service("aria_data", "aria_securty")]
    with pytest.raises(BootError) as caught:
        boot_order(services)
    message = str(caught.value)
    assert "'aria_data'" in message
    assert "'aria_securty'" in message
    assert "aria_security" in message  # the known names, to spot the typo


def test_an_unknown_only_name_is_named() -> None:
    with pytest.raises(BootError, match="'aria_nope'"):
        boot_order(aria_services(), only=["aria_security", "aria_nope"])


def test_a_duplicate_name_is_named() -> None:
    with pytest.raises(BootError, match="'aria_data' is defined twice"):
        boot_order([service("aria_data"), service("aria_security"), service("aria_data")])


# -- property: random DAGs --------------------------------------------------------------


@st.composite
def dags(draw: st.DrawFn) -> list[ServiceSpec]:
    """Random acyclic services: a service may only require services drawn before it.

    Names mix Aria's (tie-broken by the layer order) with others (by input order);
    the input order is then shuffled.
    """
    pool = [*LAYER_ORDER, *(f"svc{i}" for i in range(12))]
    chosen = draw(st.lists(st.sampled_from(pool), unique=True, max_size=16))
    specs: list[ServiceSpec] = []
    for index, name in enumerate(chosen):
        requires = draw(st.lists(st.sampled_from(chosen[:index]), unique=True)) if index else []
        specs.append(service(name, *requires))
    return draw(st.permutations(specs))


@settings(max_examples=200, deadline=None)
@given(dags())
def test_every_service_comes_after_what_it_requires(services: list[ServiceSpec]) -> None:
    order = boot_order(services)
    assert sorted(names(order)) == sorted(names(services))
    position = {spec.name: index for index, spec in enumerate(order)}
    for spec in services:
        for required in spec.requires:
            assert position[required] < position[spec.name]
    # Deterministic: the same input always gives the same order.
    assert names(boot_order(services)) == names(order)
    assert names(boot_order(list(services))) == names(order)


@settings(max_examples=100, deadline=None)
@given(dags(), st.data())
def test_only_is_closed_under_requires(services: list[ServiceSpec], data: st.DataObject) -> None:
    if not services:
        return
    wanted = data.draw(st.lists(st.sampled_from(names(services)), unique=True))
    order = names(boot_order(services, only=wanted))
    by_name = {spec.name: spec for spec in services}
    assert set(wanted) <= set(order)
    for name in order:
        for required in by_name[name].requires:
            assert required in order
            assert order.index(required) < order.index(name)
    # Nothing more than the closure: every service is wanted or required by one in the order.
    for name in order:
        assert name in wanted or any(name in by_name[other].requires for other in order)
    # The subset keeps the relative order of the full boot.
    full = names(boot_order(services))
    assert order == [name for name in full if name in order]


# ======================================================================================
# Node.boot
# ======================================================================================


async def test_services_start_in_boot_order(node: Node) -> None:
    events: Events = []
    services = [
        recorded("aria_auth", "aria_security", "aria_data", events=events),
        recorded("aria_data", "aria_security", events=events),
        recorded("extra", "aria_auth", events=events),
        recorded("aria_security", events=events),
    ]
    started = await node.boot(services)
    assert started == ["aria_security", "aria_data", "aria_auth", "extra"]
    assert events == [("init", name) for name in started]
    assert node.services == started


async def test_the_top_supervisor_is_registered_under_the_service_name(node: Node) -> None:
    events: Events = []
    await node.boot([recorded("aria_security", events=events)])
    ref = node.whereis("aria_security")
    assert isinstance(ref, SupervisorRef)
    assert ref.is_alive()
    assert node.registered()["aria_security"] == ref
    children = await ref.which_children()
    assert [child.id for child in children] == ["worker"]
    assert children[0].actor is not None
    assert children[0].actor.is_alive()


async def test_boot_only_starts_the_selection_and_its_requirements(node: Node) -> None:
    events: Events = []
    services = [recorded(spec.name, *spec.requires, events=events) for spec in aria_services()]
    started = await node.boot(services, only=["aria_storage"])
    assert started == ["aria_security", "aria_data", "aria_auth", "aria_storage"]
    assert events == [("init", name) for name in started]
    assert node.whereis("aria_queue") is None


async def test_stop_stops_the_services_in_reverse_boot_order(node: Node) -> None:
    events: Events = []
    services = [recorded(spec.name, *spec.requires, events=events) for spec in aria_services()]
    random.Random(7).shuffle(services)
    started = await node.boot(services)
    assert started == EXPECTED_ORDER
    events.clear()
    await node.stop()
    assert events == [("terminate", name) for name in reversed(EXPECTED_ORDER)]
    assert node.services == []
    assert node.actors() == []


async def test_services_of_several_boot_calls_stop_newest_first(node: Node) -> None:
    events: Events = []
    await node.boot([recorded("first", events=events)])
    await node.boot([recorded("second", events=events), recorded("third", "second", events=events)])
    assert node.services == ["first", "second", "third"]
    events.clear()
    await node.stop()
    assert events == [("terminate", "third"), ("terminate", "second"), ("terminate", "first")]


async def test_a_service_that_fails_to_start_stops_what_this_boot_started(node: Node) -> None:
    events: Events = []
    services = [
        recorded("a", events=events),
        recorded("b", "a", events=events),
        recorded("c", "b", events=events, fail=True),
        recorded("d", "c", events=events),
    ]
    with pytest.raises(StartError) as caught:
        await node.boot(services)
    error = caught.value
    assert error.child == "c/worker"
    assert "c/worker" in str(error)
    assert "c cannot start" in str(error)
    assert isinstance(error.__cause__, StartError)
    assert events == [
        ("init", "a"),
        ("init", "b"),
        ("init", "c"),
        ("terminate", "b"),
        ("terminate", "a"),
    ]
    assert node.services == []
    assert node.actors() == []
    assert node.registered() == {}


async def test_a_failed_boot_leaves_services_of_earlier_boots_running(node: Node) -> None:
    events: Events = []
    await node.boot([recorded("base", events=events)])
    base = node.whereis("base")
    with pytest.raises(StartError, match="broken/worker"):
        await node.boot(
            [recorded("ok", events=events), recorded("broken", "ok", events=events, fail=True)]
        )
    assert events[-1] == ("terminate", "ok")
    assert ("terminate", "base") not in events
    assert node.services == ["base"]
    assert node.whereis("base") == base
    assert base is not None
    assert base.is_alive()


async def test_a_nested_start_failure_names_the_whole_path(node: Node) -> None:
    events: Events = []
    inner = SupervisorSpec(
        children=[
            ChildSpec(id="fine", start=Recorder, args={"label": "fine", "events": events}),
            ChildSpec(
                id="leaf", start=Recorder, args={"label": "leaf", "events": events, "fail": True}
            ),
        ]
    )
    services = [service("nest", children=[ChildSpec(id="inner", start=inner)])]
    with pytest.raises(StartError) as caught:
        await node.boot(services)
    assert caught.value.child == "nest/inner/leaf"
    assert events == [("init", "fine"), ("init", "leaf"), ("terminate", "fine")]
    assert node.actors() == []


async def test_booting_a_running_service_again_is_refused(node: Node) -> None:
    events: Events = []
    services = [recorded("a", events=events), recorded("b", "a", events=events)]
    await node.boot(services)
    actors = node.actors()
    with pytest.raises(BootError, match="'a' is already running"):
        await node.boot(services)
    with pytest.raises(BootError, match="'b' is already running"):
        await node.boot([recorded("b", events=events)])
    assert node.actors() == actors
    assert events == [("init", "a"), ("init", "b")]


async def test_a_service_name_taken_by_an_actor_is_refused(node: Node) -> None:
    events: Events = []
    await node.spawn(Recorder, name="svc", label="plain", events=events)
    with pytest.raises(BootError, match="'svc'"):
        await node.boot([recorded("svc", events=events)])
    assert events == [("init", "plain")]


async def test_requirements_already_running_are_not_started_again(node: Node) -> None:
    """Booting a service whose requirements an earlier boot started starts just it.

    ``boot(only=...)`` brings the requirements along; those already up must not
    make the boot fail (OTP's ``application:ensure_all_started`` skips them).
    """
    events: Events = []
    services = [recorded("base", events=events), recorded("app", "base", events=events)]
    assert await node.boot(services, only=["base"]) == ["base"]
    assert await node.boot(services, only=["app"]) == ["app"]
    assert node.services == ["base", "app"]


async def test_only_may_be_any_iterable(node: Node) -> None:
    events: Events = []
    services = [recorded("base", events=events), recorded("app", "base", events=events)]
    assert await node.boot(services, only=iter(["base"])) == ["base"]
    with pytest.raises(BootError, match="'base' is already running"):
        await node.boot(services, only=(name for name in ["base"]))


@pytest.mark.parametrize(
    ("services", "match"),
    [
        ([service("a", "b"), service("b", "a")], "a -> b -> a"),
        ([service("a", "a")], "a -> a"),
        ([service("a", "b"), service("b", "c"), service("c", "a")], "a -> b -> c -> a"),
        ([service("a", "ghost")], "'ghost'"),
        ([service("a"), service("a")], "'a' is defined twice"),
    ],
    ids=["cycle", "self", "longer-cycle", "unknown", "duplicate"],
)
async def test_a_boot_error_starts_nothing(
    node: Node, services: list[ServiceSpec], match: str
) -> None:
    events: Events = []
    innocent = recorded("innocent", events=events)
    with pytest.raises(BootError, match=match):
        await node.boot([innocent, *services])
    assert events == []
    assert node.actors() == []
    assert node.services == []
    assert node.registered() == {}


async def test_an_unknown_only_name_starts_nothing(node: Node) -> None:
    events: Events = []
    with pytest.raises(BootError, match="'nope'"):
        await node.boot([recorded("a", events=events)], only=["a", "nope"])
    assert events == []
    assert node.actors() == []
    assert node.services == []


async def test_boot_on_a_stopped_node_fails(node: Node) -> None:
    await node.stop()
    events: Events = []
    with pytest.raises(StartError, match="not running"):
        await node.boot([recorded("a", events=events)])
    assert node.services == []


# ======================================================================================
# Application restart types
# ======================================================================================


async def test_a_permanent_service_dying_stops_the_node_with_status_1(
    logs: list[dict[str, Any]],
) -> None:
    events: Events = []
    async with quiet_node("permanent") as node:
        await node.boot(
            [
                recorded("bystander", events=events),
                recorded("doomed", events=events, crash_soon=True, max_restarts=2),
            ]
        )
        assert await asyncio.wait_for(node.wait_stopped(), 5) == 1
        assert node.exit_status == 1
        assert not node.is_running
        assert node.services == []
        assert node.actors() == []
    # started once, restarted max_restarts times, then the supervisor gave up
    assert events.count(("init", "doomed")) == 3
    assert ("terminate", "bystander") in events
    exits = [entry for entry in logs if entry["event"] == "service_exited"]
    assert len(exits) == 1
    assert exits[0]["service"] == "doomed"
    assert exits[0]["stops_node"] is True
    assert "reached_max_restart_intensity" in exits[0]["reason"]


async def test_a_temporary_service_dying_leaves_the_node_running(
    logs: list[dict[str, Any]],
) -> None:
    events: Events = []
    async with quiet_node("temporary") as node:
        await node.boot(
            [
                recorded("bystander", events=events),
                recorded(
                    "doomed", events=events, crash_soon=True, max_restarts=1, restart="temporary"
                ),
            ]
        )
        doomed = node.whereis("doomed")
        assert doomed is not None
        reason = await doomed.wait(timeout=5)
        assert reason == ExitReason(kind="shutdown", detail="reached_max_restart_intensity")
        await wait_until(lambda: node.services == ["bystander"], timeout=5)
        await asyncio.sleep(0.01)
        assert node.is_running
        assert node.exit_status is None
        assert node.whereis("doomed") is None
        bystander = node.whereis("bystander")
        assert bystander is not None
        assert bystander.is_alive()
        exits = [entry for entry in logs if entry["event"] == "service_exited"]
        assert [entry["stops_node"] for entry in exits] == [False]
        await node.stop()
        assert await node.wait_stopped() == 0


async def test_a_transient_service_giving_up_stops_the_node_with_status_1(
    logs: list[dict[str, Any]],
) -> None:
    events: Events = []
    async with quiet_node("transient") as node:
        await node.boot(
            [
                recorded(
                    "doomed", events=events, crash_soon=True, max_restarts=1, restart="transient"
                )
            ]
        )
        # a supervisor that gives up exits with kind shutdown: not normal
        assert await asyncio.wait_for(node.wait_stopped(), 5) == 1


async def test_a_transient_service_exiting_normally_leaves_the_node_running(
    logs: list[dict[str, Any]],
) -> None:
    events: Events = []
    async with quiet_node("transient-normal") as node:
        await node.boot(
            [recorded("done", events=events, restart="transient"), recorded("other", events=events)]
        )
        top = node.whereis("done")
        assert top is not None
        # No public API stops a service's top supervisor normally; ask its process.
        top._proc.request_stop(ExitReason(kind="normal"))
        assert (await top.wait(timeout=5)).is_normal
        await wait_until(lambda: node.services == ["other"], timeout=5)
        await asyncio.sleep(0.01)
        assert node.is_running
        assert node.exit_status is None
    assert node.exit_status == 0


async def test_stopping_the_node_on_purpose_is_not_a_service_failure(
    logs: list[dict[str, Any]],
) -> None:
    events: Events = []
    async with quiet_node("orderly") as node:
        await node.boot([recorded("a", events=events), recorded("b", "a", events=events)])
    assert await node.wait_stopped() == 0
    assert events[-2:] == [("terminate", "b"), ("terminate", "a")]


async def test_a_service_exiting_during_a_failed_boot_does_not_break_the_rollback(
    logs: list[dict[str, Any]],
) -> None:
    """A service of this boot call dies while a later one is starting, which then fails.

    The rollback must stop what is still running and raise the ``StartError``; the
    service that already exited is not there to stop any more.
    """
    events: Events = []
    async with quiet_node("rollback") as node:
        services = [
            recorded("flaky", events=events, crash_soon=True, max_restarts=0, restart="temporary"),
            recorded("slow", "flaky", events=events, delay=0.1, fail=True),
        ]
        with pytest.raises(StartError, match="slow/worker"):
            await asyncio.wait_for(node.boot(services), 5)
        assert node.services == []
        assert node.actors() == []


async def test_a_permanent_service_dying_during_boot_leaves_no_service_behind(
    logs: list[dict[str, Any]],
) -> None:
    """The node stops (status 1) while a later service is still starting.

    Once the node has stopped, no service may be left recorded as running.
    """
    events: Events = []
    async with quiet_node("dies-during-boot") as node:
        services = [
            recorded("flaky", events=events, crash_soon=True, max_restarts=0),
            recorded("slow", "flaky", events=events, delay=0.1),
        ]
        with contextlib.suppress(StartError):  # failing or not: the node stopped under it
            await asyncio.wait_for(node.boot(services), 5)
        assert await asyncio.wait_for(node.wait_stopped(), 5) == 1
        assert node.services == []
        assert node.actors() == []


async def test_stopping_the_node_during_a_boot_is_an_orderly_stop(
    logs: list[dict[str, Any]],
) -> None:
    """``node.stop()`` (SIGTERM in the daemon) while a service is still starting.

    The boot may fail with ``StartError`` (the node is no longer running), but no
    other exception may escape, and the node stops cleanly with status 0.
    """
    events: Events = []
    async with quiet_node("stopped-during-boot") as node:
        services = [
            recorded("a", events=events),
            recorded("slow", "a", events=events, delay=0.1),
            recorded("c", "slow", events=events),
        ]
        boot = asyncio.create_task(node.boot(services))
        await wait_until(lambda: ("init", "slow") in events, timeout=5)
        await asyncio.wait_for(node.stop(), 5)
        with contextlib.suppress(StartError):
            await asyncio.wait_for(boot, 5)
        assert await node.wait_stopped() == 0
        assert node.services == []
        assert node.actors() == []
        assert ("init", "c") not in events
