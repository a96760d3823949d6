"""Model-based tests of static supervisors: a pure model of OTP semantics against the runtime.

The model (:class:`SupState` and the functions below it) is a few lines of plain
Python that know nothing about asyncio or the runtime. It predicts, for each
child exit (crash, ``normal``, ``shutdown``) and each step of the virtual clock,
which children exist, which run, which were (re)started by that step, their
restart counts, and whether the supervisor gives up. :class:`SupervisorMachine`
drives a real supervisor through the same steps with hypothesis and checks that
the two agree after every step.

The semantics modelled are those of the supervisor module's docstring:

- a child exiting with reason R: ``permanent`` restarts; ``transient`` restarts
  only if R is abnormal (not ``normal``, not ``shutdown``); ``temporary`` never
  restarts and its spec is removed;
- before restarting, a restart is recorded at ``now``; restarts at time t count
  while ``now - t <= max_seconds`` (OTP's ``R >= Now - Period``); more than
  ``max_restarts`` counting makes the supervisor stop its children and exit with
  ``shutdown (reached_max_restart_intensity)``;
- ``one_for_one`` restarts the child; ``one_for_all`` stops the other running
  children, drops the temporary ones among them, then starts every remaining spec
  in order (transient children that had exited normally included, as OTP does);
  ``rest_for_one`` does the same for the child and those after it.

The plain tests at the end pin the edges of the intensity window exactly.
"""

from __future__ import annotations

import asyncio
import math
import os
from collections.abc import Awaitable
from dataclasses import dataclass, replace
from typing import Literal, TypeVar

import msgspec
import pytest
import structlog
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    precondition,
    rule,
    run_state_machine_as_test,
)
from structlog.testing import LogCapture

from aria_actors import (
    Actor,
    ActorExited,
    ActorRef,
    ChildInfo,
    ChildSpec,
    ExitReason,
    Node,
    NodeConfig,
    NoProcess,
    RuntimeConfig,
    SupervisorRef,
    SupervisorSpec,
    handles,
)
from aria_actors.testing import VirtualClock

T = TypeVar("T")

GAVE_UP = ExitReason(kind="shutdown", detail="reached_max_restart_intensity")
# Real seconds. A step takes milliseconds; the bound only turns a hang into a failure.
STEP_TIMEOUT = 10.0
MAX_EXAMPLES = int(os.environ.get("ARIA_SUPERVISOR_MODEL_EXAMPLES", "200"))
"""Examples per run; raise it (e.g. ``ARIA_SUPERVISOR_MODEL_EXAMPLES=300``) to search harder."""

ExitHow = Literal["crash", "normal", "shutdown"]
RestartType = Literal["permanent", "transient", "temporary"]
StrategyName = Literal["one_for_one", "one_for_all", "rest_for_one"]


# -- the child actors ----------------------------------------------------------------------


class Crash(msgspec.Struct, frozen=True, tag=True):
    """Raise in the handler: an ``error`` exit."""


class Normal(msgspec.Struct, frozen=True, tag=True):
    """Stop with ``normal``."""


class Shut(msgspec.Struct, frozen=True, tag=True):
    """Stop with ``shutdown``."""


class Ping(msgspec.Struct, frozen=True, tag=True):
    """Answer with the child's id."""


class Worker(Actor):
    """A child that exits on demand. It has no ``terminate``: it exits inline."""

    async def init(self, child_id: str) -> None:
        self.child_id = child_id

    @handles(Crash)
    def crash(self, message: Crash) -> None:
        raise RuntimeError(f"{self.child_id} crashes on purpose")

    @handles(Normal)
    def normal(self, message: Normal) -> None:
        self.stop("normal")

    @handles(Shut)
    def shut(self, message: Shut) -> None:
        self.stop("shutdown")

    @handles(Ping)
    def ping(self, message: Ping) -> str:
        return self.child_id


class TerminatingWorker(Worker):
    """The same child with a ``terminate``: its exits go through the runtime's exit task."""

    async def terminate(self, reason: ExitReason) -> None:
        await asyncio.sleep(0)


def child_name(child_id: str) -> str:
    return f"model-child-{child_id}"


# -- the model -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ChildState:
    """One child spec as the model sees it."""

    id: str
    restart: RestartType
    running: bool = True
    restarts: int = 0


@dataclass(frozen=True)
class SupState:
    """A static supervisor as the model sees it. Values only: every step makes a new one."""

    strategy: StrategyName
    max_restarts: int
    max_seconds: float
    children: tuple[ChildState, ...]
    now: float = 0.0
    restart_times: tuple[float, ...] = ()
    gave_up: bool = False

    @property
    def running(self) -> frozenset[str]:
        return frozenset(c.id for c in self.children if c.running)


def advance(state: SupState, seconds: float) -> SupState:
    """Time passes (the same float addition as the virtual clock's)."""
    return replace(state, now=state.now + seconds)


def wants_restart(restart: RestartType, how: ExitHow) -> bool:
    if restart == "permanent":
        return True
    if restart == "transient":
        return how == "crash"  # "normal" and "shutdown" are the quiet reasons
    return False


def child_exits(state: SupState, child_id: str, how: ExitHow) -> tuple[SupState, frozenset[str]]:
    """A running child exits; the next state and the ids the supervisor (re)started."""
    assert not state.gave_up
    children = list(state.children)
    index = next(i for i, c in enumerate(children) if c.id == child_id)
    child = children[index]
    assert child.running
    if not wants_restart(child.restart, how):
        if child.restart == "temporary":
            del children[index]
        else:
            children[index] = replace(child, running=False)
        return replace(state, children=tuple(children)), frozenset()

    counting = tuple(t for t in state.restart_times if state.now - t <= state.max_seconds)
    restart_times = (*counting, state.now)
    if len(restart_times) > state.max_restarts:
        stopped = tuple(replace(c, running=False) for c in children)
        gave_up = replace(state, children=stopped, restart_times=restart_times, gave_up=True)
        return gave_up, frozenset()

    if state.strategy == "one_for_one":
        group = {child_id}
    elif state.strategy == "one_for_all":
        group = {c.id for c in children}
    else:
        group = {c.id for c in children[index:]}
    # The running members of the group are stopped; the temporary ones among them go.
    kept = [
        c
        for c in children
        if not (c.id in group and c.id != child_id and c.running and c.restart == "temporary")
    ]
    # Then every member left starts again, in order, running before or not.
    restarted = tuple(
        replace(c, running=True, restarts=c.restarts + 1) if c.id in group else c for c in kept
    )
    started = frozenset(c.id for c in kept if c.id in group)
    return replace(state, children=restarted, restart_times=restart_times), started


# -- the machine ---------------------------------------------------------------------------


class SupervisorMachine(RuleBasedStateMachine):
    """Drives a real supervisor and the model through the same steps; they must agree."""

    def __init__(self) -> None:
        super().__init__()
        self.capture = LogCapture()
        self.old_logging = structlog.get_config()
        structlog.configure(processors=[self.capture], cache_logger_on_first_use=False)
        self.loop = asyncio.new_event_loop()
        self.clock = VirtualClock()
        self.node = Node(
            name="model",
            clock=self.clock,
            config=NodeConfig(runtime=RuntimeConfig(loop_lag_interval=0)),
        )
        self.run(self.node.start())
        self.sup: SupervisorRef | None = None
        self.model: SupState | None = None
        self.refs: dict[str, ActorRef] = {}  # the running children's refs after the last step
        self.steps = 0

    def run(self, awaitable: Awaitable[T]) -> T:
        async def bounded() -> T:
            async with asyncio.timeout(STEP_TIMEOUT):
                return await awaitable

        return self.loop.run_until_complete(bounded())

    def teardown(self) -> None:
        try:
            self.run(self.node.stop())
            pending = asyncio.all_tasks(self.loop)
            for task in pending:
                task.cancel()
            if pending:
                self.loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            self.loop.run_until_complete(self.loop.shutdown_asyncgens())
        finally:
            self.loop.close()
            structlog.configure(**self.old_logging)

    # -- steps ----------------------------------------------------------------------------

    @initialize(
        strategy=st.sampled_from(["one_for_one", "one_for_all", "rest_for_one"]),
        max_restarts=st.integers(min_value=0, max_value=4),
        max_seconds=st.sampled_from([0.3, 1.0, 2.5, 5.0]),
        children=st.lists(
            st.tuples(st.sampled_from(["permanent", "transient", "temporary"]), st.booleans()),
            min_size=2,
            max_size=5,
        ),
    )
    def start(
        self,
        strategy: StrategyName,
        max_restarts: int,
        max_seconds: float,
        children: list[tuple[RestartType, bool]],
    ) -> None:
        ids = [f"c{i}" for i in range(len(children))]
        spec = SupervisorSpec(
            strategy=strategy,
            max_restarts=max_restarts,
            max_seconds=max_seconds,
            children=[
                ChildSpec(
                    id=child_id,
                    start=TerminatingWorker if terminates else Worker,
                    args={"child_id": child_id},
                    name=child_name(child_id),
                    restart=restart,
                )
                for child_id, (restart, terminates) in zip(ids, children, strict=True)
            ],
        )
        self.sup = self.run(self.node.start_supervisor(spec, name="model-sup"))
        self.model = SupState(
            strategy=strategy,
            max_restarts=max_restarts,
            max_seconds=max_seconds,
            children=tuple(
                ChildState(id=child_id, restart=restart)
                for child_id, (restart, _) in zip(ids, children, strict=True)
            ),
        )
        self.check(started=frozenset(ids))

    def can_exit(self) -> bool:
        return self.model is not None and not self.model.gave_up and bool(self.model.running)

    @precondition(can_exit)
    @rule(pick=st.integers(min_value=0, max_value=4))
    def crash(self, pick: int) -> None:
        self.exit_child(pick, "crash")

    @precondition(can_exit)
    @rule(pick=st.integers(min_value=0, max_value=4))
    def exit_normal(self, pick: int) -> None:
        self.exit_child(pick, "normal")

    @precondition(can_exit)
    @rule(pick=st.integers(min_value=0, max_value=4))
    def exit_shutdown(self, pick: int) -> None:
        self.exit_child(pick, "shutdown")

    @rule(fraction=st.sampled_from([0.0, 0.1, 0.5, 1.0, 2.0]))
    def advance_clock(self, fraction: float) -> None:
        """Always enabled (time passes after a give-up too), so a run never gets stuck."""
        assert self.model is not None
        seconds = fraction * self.model.max_seconds
        self.clock.advance(seconds)
        self.model = advance(self.model, seconds)
        assert self.clock.now == self.model.now
        self.check(started=frozenset())

    def exit_child(self, pick: int, how: ExitHow) -> None:
        assert self.model is not None
        running = [c.id for c in self.model.children if c.running]
        child_id = running[pick % len(running)]
        ref = self.refs[child_id]
        self.run(self.make_exit(ref, how))
        self.model, started = child_exits(self.model, child_id, how)
        self.check(started)

    @staticmethod
    async def make_exit(ref: ActorRef, how: ExitHow) -> None:
        """Make the child exit; return once it has."""
        if how == "crash":
            with pytest.raises(ActorExited) as info:
                await ref.call(Crash())
            assert info.value.reason.kind == "error"
            return
        await ref.cast(Normal() if how == "normal" else Shut())
        reason = await ref.wait()
        assert reason.kind == how

    # -- the check after every step -------------------------------------------------------

    async def observe(self) -> tuple[list[ChildInfo] | None, ExitReason | None]:
        """The supervisor's children, or ``None`` and its exit reason if it has exited.

        ``which_children`` queues behind the ``Exit`` of the child that just exited,
        so the answer shows what the supervisor did about it.
        """
        assert self.sup is not None
        try:
            return await self.sup.which_children(), None
        except (ActorExited, NoProcess):
            return None, await self.sup.wait()

    async def ping(self, ref: ActorRef) -> object:
        return await ref.call(Ping())

    def check(self, started: frozenset[str]) -> None:
        """The real supervisor must be where the model says, after every step."""
        assert self.sup is not None
        assert self.model is not None
        self.steps += 1
        model = self.model
        infos, reason = self.run(self.observe())
        gave_up_reports = sum(1 for e in self.capture.entries if e["event"] == "supervisor_gave_up")

        if model.gave_up:
            assert infos is None, (
                f"the model predicts the supervisor gave up (restarts at {model.restart_times}, "
                f"now={model.now}), but it is alive with {infos}"
            )
            assert reason == GAVE_UP, f"supervisor exited with {reason!r}, expected {GAVE_UP!r}"
            assert not self.sup.is_alive()
            assert gave_up_reports == 1
            for child_id, ref in self.refs.items():
                assert not ref.is_alive(), f"{child_id} ({ref!r}) outlived its supervisor"
                assert self.node.whereis(child_name(child_id)) is None
            self.refs = {}
            return

        assert infos is not None, (
            f"the supervisor exited with {reason!r}, but the model predicts it is alive "
            f"(restarts counting at {model.restart_times}, now={model.now}, "
            f"max_restarts={model.max_restarts}, max_seconds={model.max_seconds})"
        )
        assert self.sup.is_alive()
        assert gave_up_reports == 0

        assert [i.id for i in infos] == [c.id for c in model.children], "child specs differ"
        real_running = {i.id for i in infos if i.actor is not None}
        assert real_running == model.running, "running children differ"
        real_started = {
            i.id for i in infos if i.actor is not None and i.actor != self.refs.get(i.id)
        }
        assert real_started == started, "(re)started children differ"
        assert {i.id: i.restarts for i in infos} == {c.id: c.restarts for c in model.children}, (
            "restart counts differ"
        )

        refs = {i.id: i.actor for i in infos if i.actor is not None}
        for child_id, old in self.refs.items():
            if refs.get(child_id) != old:
                assert not old.is_alive(), f"{child_id}: replaced or stopped, yet {old!r} lives"
        for child_id, ref in refs.items():
            assert ref.is_alive(), f"{child_id}: which_children reports a dead actor {ref!r}"
            assert self.run(self.ping(ref)) == child_id
        for info in infos:
            assert self.node.whereis(child_name(info.id)) == info.actor, (
                f"the name of {info.id} does not follow the child"
            )
        self.refs = refs


def test_supervisor_agrees_with_model() -> None:
    run_state_machine_as_test(
        SupervisorMachine,
        settings=settings(
            max_examples=MAX_EXAMPLES,
            stateful_step_count=40,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )


# -- the model on its own ------------------------------------------------------------------


def test_model_one_for_all_restarts_a_normally_exited_transient_child() -> None:
    state = SupState(
        strategy="one_for_all",
        max_restarts=3,
        max_seconds=5.0,
        children=(
            ChildState("a", "transient"),
            ChildState("b", "permanent"),
            ChildState("c", "temporary"),
        ),
    )
    state, started = child_exits(state, "a", "normal")
    assert started == frozenset()
    assert state.running == {"b", "c"}
    state, started = child_exits(state, "b", "crash")
    assert started == {"a", "b"}
    assert [c.id for c in state.children] == ["a", "b"]  # the temporary child was stopped
    assert state.restart_times == (0.0,)


# -- the window's edges, pinned ------------------------------------------------------------


async def start_sup(
    node: Node,
    *,
    max_restarts: int = 2,
    max_seconds: float = 5.0,
    strategy: StrategyName = "one_for_one",
    restarts: tuple[RestartType, ...] = ("permanent", "permanent"),
) -> SupervisorRef:
    spec = SupervisorSpec(
        strategy=strategy,
        max_restarts=max_restarts,
        max_seconds=max_seconds,
        children=[
            ChildSpec(id=f"c{i}", start=Worker, args={"child_id": f"c{i}"}, restart=restart)
            for i, restart in enumerate(restarts)
        ],
    )
    return await node.start_supervisor(spec)


async def child_ref(sup: SupervisorRef, child_id: str) -> ActorRef:
    for info in await sup.which_children():
        if info.id == child_id:
            assert info.actor is not None, f"{child_id} is not running"
            return info.actor
    raise AssertionError(f"no child {child_id}")


async def exit_and_survives(sup: SupervisorRef, child_id: str, how: ExitHow = "crash") -> bool:
    """Make ``child_id`` exit; True if the supervisor is still running afterwards."""
    await SupervisorMachine.make_exit(await child_ref(sup, child_id), how)
    try:
        await sup.which_children()
    except (ActorExited, NoProcess):  # exiting as the call came, or already gone
        assert await sup.wait() == GAVE_UP
        return False
    return True


def at(clock: VirtualClock, when: float) -> None:
    clock.advance(when - clock.now)
    assert clock.now == when


AFTER_FIVE = math.nextafter(5.0, 6.0)


@pytest.mark.parametrize(
    "crashes",
    [
        # three restarts within 5 s: the third is one too many
        pytest.param([(0.0, True), (0.0, True), (0.0, False)], id="three-at-0"),
        # at t=5 the restarts at t=0 still count (5 - 0 <= 5, as OTP's R >= Now - Period)
        pytest.param([(0.0, True), (0.0, True), (5.0, False)], id="0-0-5-still-counts"),
        # a hair after t=5 they have expired: only one counts
        pytest.param(
            [(0.0, True), (0.0, True), (AFTER_FIVE, True), (AFTER_FIVE, True), (AFTER_FIVE, False)],
            id="0-0-just-after-5-expired",
        ),
        # the window slides: at 7.5 and exactly at 8 the restarts at 3 and 5.5 count;
        # past 8 the one at 3 has gone
        pytest.param([(0.0, True), (3.0, True), (5.5, True), (7.5, False)], id="sliding-7.5"),
        pytest.param([(0.0, True), (3.0, True), (5.5, True), (8.0, False)], id="sliding-8-edge"),
        pytest.param([(0.0, True), (3.0, True), (5.5, True), (8.5, True)], id="sliding-8.5"),
    ],
)
async def test_intensity_window_edges(
    node: Node, clock: VirtualClock, crashes: list[tuple[float, bool]]
) -> None:
    sup = await start_sup(node, max_restarts=2, max_seconds=5.0)
    for when, survives in crashes:
        at(clock, when)
        assert await exit_and_survives(sup, "c0") is survives, f"crash at t={when}"


async def test_zero_max_restarts_gives_up_on_the_first_restart(node: Node) -> None:
    sup = await start_sup(node, max_restarts=0)
    refs = [await child_ref(sup, "c0"), await child_ref(sup, "c1")]
    assert not await exit_and_survives(sup, "c0")
    assert not any(ref.is_alive() for ref in refs)


async def test_quiet_exits_of_transient_and_any_exit_of_temporary_do_not_count(
    node: Node,
) -> None:
    sup = await start_sup(
        node, max_restarts=1, restarts=("transient", "transient", "temporary", "permanent")
    )
    assert await exit_and_survives(sup, "c0", "normal")
    assert await exit_and_survives(sup, "c1", "shutdown")
    assert await exit_and_survives(sup, "c2", "crash")
    infos = await sup.which_children()
    assert [(i.id, i.actor is not None) for i in infos] == [
        ("c0", False),
        ("c1", False),
        ("c3", True),
    ]
    assert await exit_and_survives(sup, "c3", "crash")  # the first counting restart
    assert not await exit_and_survives(sup, "c3", "crash")  # the second is one too many


async def test_shutdown_exit_of_a_permanent_child_counts(node: Node) -> None:
    sup = await start_sup(node, max_restarts=1)
    assert await exit_and_survives(sup, "c0", "shutdown")
    assert not await exit_and_survives(sup, "c1", "shutdown")


async def test_one_for_all_restarts_a_transient_child_that_exited_normally(
    node: Node,
) -> None:
    sup = await start_sup(
        node, strategy="one_for_all", restarts=("transient", "permanent", "temporary")
    )
    assert await exit_and_survives(sup, "c0", "normal")
    before = {i.id: i.actor for i in await sup.which_children()}
    assert before["c0"] is None
    assert await exit_and_survives(sup, "c1", "crash")
    after = await sup.which_children()
    assert [i.id for i in after] == ["c0", "c1"]  # the temporary child was stopped and dropped
    assert all(i.actor is not None and i.restarts == 1 for i in after)
    assert after[1].actor != before["c1"]
