"""The acting engine: lazy lookahead, timeouts, cancellation, events, actors as executors."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import msgspec
import pytest

from aria_actors import Actor, Node, handles
from aria_actors.services.engine import DomainError, Plan, Planner, PlanningFailed, State
from aria_actors.services.engine.acting import (
    Acting,
    ActorExecutor,
    DomainCommandExecutor,
    act,
    apply_reply,
    replay,
)
from aria_actors.services.engine.acting_errors import (
    CommandError,
    NoPlan,
    ReplanLimitExceeded,
    UnknownCommand,
)
from aria_actors.services.engine.acting_messages import (
    CommandFailed,
    CommandSucceeded,
    Fact,
    ObservedState,
    RunCommand,
    WorldChanged,
)
from aria_actors.services.engine.spans import MemorySpanSink, SpanRecorder, check_tree

from .acting_domain import World, edge, make_domain, make_state

DELIVER = [("deliver", "robot", "parcel", "c")]
VIA_B = [
    ("move", "robot", "a", "b"),
    ("pickup", "robot", "parcel"),
    ("move", "robot", "b", "c"),
    ("drop", "robot", "parcel"),
]


@pytest.fixture
def domain() -> Any:
    return make_domain()


@pytest.fixture
def world(domain: Any) -> World:
    return World(domain, make_state())


def recorder() -> tuple[SpanRecorder, MemorySpanSink]:
    sink = MemorySpanSink()
    return SpanRecorder("t", sink), sink


# -- lazy lookahead ----------------------------------------------------------------------------


async def test_plan_executed_without_failure(domain: Any, world: World) -> None:
    result = await act(domain, Planner(domain), make_state(), DELIVER, world)
    assert list(result.executed) == VIA_B
    assert (result.plans, result.replans, result.failures) == (1, 0, ())
    assert result.state.at["parcel"] == "c"
    assert world.state.at["parcel"] == "c"


async def test_failed_command_replans_from_observed_state(domain: Any, world: World) -> None:
    # The passage b|c turns out to be closed: the failure reveals it, the replan goes round.
    world.fail("c_move", ("robot", "b", "c"), 1, ("open", edge("b", "c"), False))
    rec, _ = recorder()
    result = await act(domain, Planner(domain), make_state(), DELIVER, world, spans=rec)
    assert result.replans == 1
    assert [f.command for f in result.failures] == ["c_move"]
    assert result.failures[0].args == ("robot", "b", "c")
    assert result.failures[0].kind == "failed"
    assert result.state.at["parcel"] == "c"
    assert result.executed[:2] == tuple(VIA_B[:2])
    assert ("move", "robot", "e", "c") in result.executed
    assert not check_tree(rec.spans)


async def test_transient_failure_retries_same_command(domain: Any, world: World) -> None:
    world.fail("c_pickup", ("robot", "parcel"), 2)
    result = await act(domain, Planner(domain), make_state(), DELIVER, world, max_replans=2)
    assert result.replans == 2
    assert list(result.executed) == VIA_B
    assert world.calls.count(("c_pickup", ("robot", "parcel"))) == 3


async def test_gives_up_after_max_replans_naming_the_command(domain: Any, world: World) -> None:
    world.fail("c_pickup", ("robot", "parcel"), 100)
    with pytest.raises(ReplanLimitExceeded, match=r"c_pickup\('robot', 'parcel'\)") as info:
        await act(domain, Planner(domain), make_state(), DELIVER, world, max_replans=2)
    err = info.value
    assert err.command == "c_pickup"
    assert err.command_args == ("robot", "parcel")
    assert err.reason == "jammed"
    assert err.replans == 2
    assert err.executed == (VIA_B[0],)
    assert err.state is not None
    assert err.state.loc["robot"] == "b"
    assert world.calls.count(("c_pickup", ("robot", "parcel"))) == 3


async def test_max_replans_zero_gives_up_at_first_failure(domain: Any, world: World) -> None:
    world.fail("c_move", ("robot", "a", "b"), 1)
    with pytest.raises(ReplanLimitExceeded, match="c_move"):
        await act(domain, Planner(domain), make_state(), DELIVER, world, max_replans=0)


async def test_command_timeout_is_a_failure_then_replan(domain: Any, world: World) -> None:
    world.hang[("c_pickup", ("robot", "parcel"))] = 1
    rec, _ = recorder()
    result = await act(
        domain, Planner(domain), make_state(), DELIVER, world, command_timeout=0.05, spans=rec
    )
    assert result.replans == 1
    assert result.failures[0].kind == "timeout"
    assert result.failures[0].command == "c_pickup"
    assert world.cancelled == 1  # the hung command was cancelled by the timeout
    commands = [s for s in rec.spans if s.kind == "command"]
    assert [s.outcome for s in commands if s.name == "c_pickup"] == ["timeout", "ok"]
    plans = [s for s in rec.spans if s.kind in ("plan", "replan")]
    assert [s.outcome for s in plans] == ["timeout", "ok"]


async def test_command_timeout_exhausting_replans(domain: Any, world: World) -> None:
    world.hang[("c_move", ("robot", "a", "b"))] = 5
    with pytest.raises(ReplanLimitExceeded, match="timed out") as info:
        await act(
            domain,
            Planner(domain),
            make_state(),
            DELIVER,
            world,
            command_timeout=0.02,
            max_replans=1,
        )
    assert info.value.command == "c_move"


async def test_cancellation_stops_cleanly(domain: Any, world: World) -> None:
    world.hang[("c_pickup", ("robot", "parcel"))] = 1
    rec, _ = recorder()
    task = asyncio.ensure_future(
        act(domain, Planner(domain), make_state(), DELIVER, world, spans=rec, command_timeout=None)
    )
    await world.hanging.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert world.cancelled == 1
    by_kind = {s.kind: s for s in rec.spans}
    assert by_kind["acting"].outcome == "cancelled"
    assert by_kind["plan"].outcome == "cancelled"
    assert [s.outcome for s in rec.spans if s.kind == "command"] == ["ok", "cancelled"]
    assert not check_tree(rec.spans)


async def test_state_source_is_observed_before_every_plan(domain: Any, world: World) -> None:
    world.fail("c_move", ("robot", "b", "c"), 1)
    observed = 0

    async def observe() -> State:
        nonlocal observed
        observed += 1
        if observed == 2:  # the world is looked at again after the failure
            world.state.open[edge("b", "c")] = False
        return world.state.copy()

    result = await act(domain, Planner(domain), observe, DELIVER, world)
    assert observed == 2
    assert result.replans == 1
    assert ("move", "robot", "e", "c") in result.executed


async def test_no_plan_from_observed_state(domain: Any, world: World) -> None:
    # The failure reveals that every way to c is closed.
    world.fail(
        "c_move",
        ("robot", "b", "c"),
        1,
        ("open", edge("b", "c"), False),
        ("open", edge("e", "c"), False),
    )
    with pytest.raises(NoPlan, match="no plan") as info:
        await act(domain, Planner(domain), make_state(), DELIVER, world)
    assert info.value.replans == 1
    assert info.value.__cause__ is not None


async def test_domain_error_propagates(domain: Any, world: World) -> None:
    with pytest.raises(DomainError):
        await act(domain, Planner(domain), make_state(), [("teleport", "robot")], world)


async def test_domain_commands_executor_as_gtpyhop(domain: Any) -> None:
    tries = {"n": 0}

    def c_pickup(state: State, who: str, obj: str) -> State | bool:
        tries["n"] += 1
        if tries["n"] == 1:
            return False  # the gripper slips once
        return domain.actions["pickup"](state, who, obj)  # type: ignore[no-any-return]

    domain.declare_commands(c_pickup)
    executor = DomainCommandExecutor(domain)
    result = await act(domain, Planner(domain), make_state(), DELIVER, executor)
    assert result.replans == 1
    assert result.failures[0].reason == "the command reported failure"
    assert list(result.executed) == VIA_B
    with pytest.raises(UnknownCommand, match="c_fly"):
        await executor("c_fly", (), make_state())


async def test_unknown_command_is_not_retried(domain: Any) -> None:
    async def executor(command: str, args: tuple[Any, ...], state: State) -> State:
        raise UnknownCommand(f"nothing runs {command}", command=command)

    with pytest.raises(UnknownCommand):
        await act(domain, Planner(domain), make_state(), DELIVER, executor)


async def test_inline_planning_gives_the_same_result(domain: Any, world: World) -> None:
    result = await act(domain, Planner(domain), make_state(), DELIVER, world, plan_in_thread=False)
    assert list(result.executed) == VIA_B


async def test_true_reply_means_as_predicted(domain: Any) -> None:
    async def executor(command: str, args: tuple[Any, ...], state: State) -> bool:
        return True

    result = await act(domain, Planner(domain), make_state(), DELIVER, executor)
    assert result.state.at["parcel"] == "c"
    assert result.checks == 0


async def test_malformed_reply_is_a_domain_error(domain: Any) -> None:
    async def executor(command: str, args: tuple[Any, ...], state: State) -> Any:
        return 42

    with pytest.raises(DomainError, match="int"):
        await act(domain, Planner(domain), make_state(), DELIVER, executor)


def test_replay_reports_first_inapplicable_action(domain: Any) -> None:
    state = make_state()
    states, broken = replay(domain, state, VIA_B)
    assert broken is None
    assert states[-1].at["parcel"] == "c"
    assert len(states) == 5
    state.open[edge("b", "c")] = False
    states, broken = replay(domain, state, VIA_B)
    assert broken == 2
    assert len(states) == 3


def test_bad_arguments(domain: Any, world: World) -> None:
    with pytest.raises(ValueError, match="max_replans"):
        Acting(domain, Planner(domain), make_state(), DELIVER, world, max_replans=-1)
    with pytest.raises(ValueError, match="command_timeout"):
        Acting(domain, Planner(domain), make_state(), DELIVER, world, command_timeout=0)


# -- a pluggable plan function -----------------------------------------------------------------


class PlanCalls:
    """A plan function (as a planner pool's would be): the in-process planner, awaited,
    recording what it was asked; ``hold`` keeps a call pending until it is cancelled."""

    def __init__(self, domain: Any, hold: bool = False) -> None:
        self.planner = Planner(domain)
        self.hold = hold
        self.calls: list[tuple[State, list[Any]]] = []
        self.pending = asyncio.Event()
        self.cancelled = 0

    async def __call__(self, state: State, todo: Sequence[Any]) -> Plan:
        self.calls.append((state, list(todo)))
        if self.hold:
            self.pending.set()
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                self.cancelled += 1
                raise
        await asyncio.sleep(0)  # a real call would yield to the loop
        return self.planner.find_plan(state, todo)


async def test_plan_function_replans_from_observed_state(domain: Any, world: World) -> None:
    world.fail("c_move", ("robot", "b", "c"), 1, ("open", edge("b", "c"), False))
    plan = PlanCalls(domain)
    rec, _ = recorder()
    result = await act(domain, None, make_state(), DELIVER, world, plan=plan, spans=rec)
    assert result.replans == 1
    assert [f.command for f in result.failures] == ["c_move"]
    assert ("move", "robot", "e", "c") in result.executed
    assert result.state.at["parcel"] == "c"
    assert len(plan.calls) == 2
    assert plan.calls[0][1] == DELIVER
    assert plan.calls[1][0].open[edge("b", "c")] is False  # planned from what was observed
    assert not check_tree(rec.spans)
    kinds = [s.kind for s in rec.spans]
    assert kinds.count("plan") == 1
    assert kinds.count("replan") == 1
    assert "task" not in kinds  # the search ran elsewhere: no search spans
    plan_span = next(s for s in rec.spans if s.kind == "plan")
    assert plan_span.outcome == "failed"
    assert plan_span.attributes["actions"] == len(VIA_B)
    predicted = [s for s in rec.spans if s.kind == "action" and s.parent == plan_span.id]
    assert [s.name for s in predicted] == [a[0] for a in VIA_B]


async def test_plan_function_gives_up_after_max_replans(domain: Any, world: World) -> None:
    world.fail("c_pickup", ("robot", "parcel"), 100)
    plan = PlanCalls(domain)
    with pytest.raises(ReplanLimitExceeded, match="c_pickup") as info:
        await act(domain, None, make_state(), DELIVER, world, plan=plan, max_replans=2)
    assert info.value.replans == 2
    assert len(plan.calls) == 3


async def test_cancellation_while_the_plan_call_is_pending(domain: Any, world: World) -> None:
    plan = PlanCalls(domain, hold=True)
    rec, _ = recorder()
    task = asyncio.ensure_future(
        act(domain, None, make_state(), DELIVER, world, plan=plan, spans=rec)
    )
    await plan.pending.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert plan.cancelled == 1  # the awaited plan call itself was cancelled
    assert world.calls == []
    assert [(s.kind, s.outcome) for s in rec.spans] == [
        ("plan", "cancelled"),
        ("acting", "cancelled"),
    ]
    assert not check_tree(rec.spans)


async def test_plan_function_errors(domain: Any, world: World) -> None:
    async def no_plan(state: State, todo: Sequence[Any]) -> Plan:
        raise PlanningFailed("nothing works")

    with pytest.raises(NoPlan, match="nothing works") as info:
        await act(domain, None, make_state(), DELIVER, world, plan=no_plan)
    assert isinstance(info.value.__cause__, PlanningFailed)

    async def broken(state: State, todo: Sequence[Any]) -> Plan:
        raise RuntimeError("the pool is gone")

    rec, _ = recorder()
    with pytest.raises(RuntimeError, match="the pool is gone"):
        await act(domain, None, make_state(), DELIVER, world, plan=broken, spans=rec)
    assert [(s.kind, s.outcome) for s in rec.spans] == [("plan", "failed"), ("acting", "failed")]
    assert not check_tree(rec.spans)


def test_exactly_one_way_to_plan(domain: Any, world: World) -> None:
    plan = PlanCalls(domain)
    with pytest.raises(ValueError, match=r"exactly one way to plan.*not both"):
        Acting(domain, Planner(domain), make_state(), DELIVER, world, plan=plan)
    with pytest.raises(ValueError, match="exactly one way to plan"):
        Acting(domain, None, make_state(), DELIVER, world)
    Acting(domain, None, make_state(), DELIVER, world, plan=plan)  # fine


# -- dynamic adaptation ------------------------------------------------------------------------


class EventfulWorld(World):
    """Fires ``events[step]`` (through ``acting.notify``) while that command runs."""

    def __init__(self, acting_events: dict[int, Any]) -> None:
        super().__init__(make_domain(), make_state())
        self.acting: Acting | None = None
        self.events = acting_events

    async def __call__(self, command: str, args: tuple[Any, ...], state: State) -> State:
        step = len(self.calls)
        result = await super().__call__(command, args, state)
        event = self.events.get(step)
        if event is not None:
            assert self.acting is not None
            for var, arg, value in event:
                self.state.set_fact(var, arg, value)
            self.acting.notify(event)
        return result


def eventful(events: dict[int, Any], **options: Any) -> tuple[Acting, EventfulWorld, SpanRecorder]:
    world = EventfulWorld(events)
    rec = SpanRecorder("ev")
    acting = Acting(
        world.domain, Planner(world.domain), make_state(), DELIVER, world, spans=rec, **options
    )
    world.acting = acting
    return acting, world, rec


async def test_event_that_keeps_the_plan_applicable_does_not_replan() -> None:
    acting, _world, rec = eventful({0: [("weather", "sky", "rain")]})
    result = await acting.run()
    assert result.replans == 0
    assert result.checks == 1
    assert result.state.weather["sky"] == "rain"
    checks = [s for s in rec.spans if s.kind == "event"]
    assert [s.attributes["applicable"] for s in checks] == [True]
    assert checks[0].attributes["cause"] == "event"


async def test_event_that_breaks_the_plan_replans_once() -> None:
    # While the robot walks to b, the passage b|c closes: the plan breaks before c_move.
    acting, world, rec = eventful({0: [("open", edge("b", "c"), False)]})
    result = await acting.run()
    assert result.replans == 1
    assert result.failures == ()
    assert ("c_move", ("robot", "b", "c")) not in world.calls
    assert result.state.at["parcel"] == "c"
    assert [s.attributes["applicable"] for s in rec.spans if s.kind == "event"] == [False]
    replan = next(s for s in rec.spans if s.kind == "replan")
    assert replan.attributes["reason"] == "broken"
    assert not check_tree(rec.spans)


async def test_events_counted_separately_from_replans() -> None:
    acting, _world, _ = eventful(
        {
            0: [("weather", "sky", "rain")],
            1: [("weather", "sky", "snow")],
            2: [("open", edge("d", "e"), False)],
        }
    )
    result = await acting.run()
    # Three events, none breaking the remaining plan (d|e is not on it): no replan.
    assert (result.checks, result.replans) == (3, 0)


async def test_broken_plan_counts_against_max_replans() -> None:
    acting, _, _ = eventful({0: [("open", edge("b", "c"), False)]}, max_replans=0)
    with pytest.raises(ReplanLimitExceeded, match=r"c_move\('robot', 'b', 'c'\)"):
        await acting.run()


async def test_events_from_a_queue_and_whole_states(domain: Any) -> None:
    queue: asyncio.Queue[Any] = asyncio.Queue()
    world = World(domain, make_state())

    async def executor(command: str, args: tuple[Any, ...], state: State) -> State:
        result = await world(command, args, state)
        if len(world.calls) == 1:
            closed = result.copy()
            closed.open[edge("b", "c")] = False
            world.state = closed.copy()
            await queue.put(WorldChanged(updates=(Fact("weather", "sky", "fog"),)))
            await queue.put(closed)  # a whole observation replaces the facts before it
        return result

    result = await act(domain, Planner(domain), make_state(), DELIVER, executor, events=queue)
    assert result.replans == 1
    assert result.checks == 1
    assert result.state.weather["sky"] == "clear"
    assert result.state.at["parcel"] == "c"


async def test_confirm_replans_until_the_goal_holds(domain: Any) -> None:
    world = World(domain, make_state())
    acting: Acting

    async def executor(command: str, args: tuple[Any, ...], state: State) -> State:
        result = await world(command, args, state)
        if len(world.calls) == 2:  # pushed back to a after arriving at c
            world.state.loc["robot"] = "a"
            acting.notify([("loc", "robot", "a")])
        return result

    acting = Acting(
        domain, Planner(domain), make_state(), [("loc", "robot", "c")], executor, confirm=True
    )
    result = await acting.run()
    assert result.state.loc["robot"] == "c"
    assert result.plans == 3  # the plan, the replan after the push, the empty confirmation
    assert len(result.executed) == 4


# -- commands as calls to actors ---------------------------------------------------------------


class Crash(msgspec.Struct, frozen=True, tag=True):
    pass


class Robot(Actor):
    """Executes the courier's commands on its own world; scripted to fail, crash or stall."""

    async def init(
        self, script: dict[str, list[str]], release: asyncio.Event | None = None
    ) -> None:
        self.release = release or asyncio.Event()
        self.domain = make_domain()
        self.world = make_state()
        self.script = {k: list(v) for k, v in script.items()}

    @handles(RunCommand)
    async def run_command(self, msg: RunCommand) -> Any:
        plan = self.script.get(msg.command, [])
        what = plan.pop(0) if plan else "ok"
        if what == "fail":
            self.world.open[edge("b", "c")] = False
            return CommandFailed("passage closed", (Fact("open", edge("b", "c"), False),))
        if what == "crash":
            raise RuntimeError("motor burnt out")
        if what == "stall":
            await self.release.wait()
        before = self.world.copy()
        new = self.domain.actions[msg.command.removeprefix("c_")](self.world.copy(), *msg.args)
        if new is None:
            return CommandFailed("not applicable")
        self.world = new
        if msg.command == "c_drop":
            return ObservedState(self.world.variables())
        changed = [
            Fact(var, arg, value)
            for var, binding in new.variables().items()
            if isinstance(binding, dict)
            for arg, value in binding.items()
            if before.get_fact(var, arg) != value
        ]
        return CommandSucceeded(tuple(changed))


async def test_commands_through_actors_on_a_node(node: Node) -> None:
    domain = make_domain()
    robot = await node.spawn(Robot, name="robot", script={"c_move": ["ok", "fail"]})
    sink = MemorySpanSink()
    rec = SpanRecorder("actors", sink)
    executor = ActorExecutor(dict.fromkeys(("c_move", "c_pickup", "c_drop"), robot))
    result = await act(domain, Planner(domain), make_state(), DELIVER, executor, spans=rec)
    assert result.replans == 1
    assert result.failures[0].reason == "passage closed"
    assert result.state.at["parcel"] == "c"
    assert result.state.open[edge("b", "c")] is False
    assert not check_tree(sink.spans("actors"))


async def test_actor_crash_and_call_timeout_are_failures(node: Node) -> None:
    domain = make_domain()
    release = asyncio.Event()
    mover = await node.spawn(Robot, script={"c_move": ["crash"]})
    slow = await node.spawn(Robot, script={"c_pickup": ["stall"]}, release=release)
    hands = await node.spawn(Robot, script={})
    used: set[str] = set()

    def resolve(command: str, args: tuple[Any, ...]) -> Any:
        # The first move goes to `mover` (which crashes), the first pickup to `slow`
        # (which stalls past the call timeout); everything else to `hands`.
        if command in ("c_move", "c_pickup") and command not in used:
            used.add(command)
            return mover if command == "c_move" else slow
        return hands

    executor = ActorExecutor(resolve, call_timeout=0.05)
    try:
        result = await act(domain, Planner(domain), make_state(), DELIVER, executor, max_replans=2)
    finally:
        release.set()
    assert not mover.is_alive()
    kinds = [(f.command, f.kind) for f in result.failures]
    assert kinds == [("c_move", "error"), ("c_pickup", "timeout")]
    assert "ActorExited" in result.failures[0].reason
    assert result.state.at["parcel"] == "c"


async def test_actor_routes_misconfigured(node: Node) -> None:
    domain = make_domain()
    robot = await node.spawn(Robot, script={})
    with pytest.raises(UnknownCommand, match="c_pickup"):
        await act(domain, Planner(domain), make_state(), DELIVER, ActorExecutor({"c_move": robot}))
    deaf = ActorExecutor(lambda command, args: (robot, Crash()))
    with pytest.raises(UnknownCommand, match="no handler"):
        await act(domain, Planner(domain), make_state(), DELIVER, deaf)


def test_apply_reply() -> None:
    state = make_state()
    new = apply_reply("c_x", (), state, CommandSucceeded((Fact("loc", "robot", "b"),)))
    assert isinstance(new, State)
    assert new.loc["robot"] == "b"
    assert state.loc["robot"] == "a"
    observed = apply_reply("c_x", (), state, ObservedState({"loc": {"robot": "z"}}))
    assert isinstance(observed, State)
    assert observed.loc == {"robot": "z"}
    with pytest.raises(CommandError, match="nope") as info:
        apply_reply("c_x", (1,), state, CommandFailed("nope", (Fact("loc", "robot", "q"),)))
    assert info.value.state is not None
    assert info.value.state.loc["robot"] == "q"
    with pytest.raises(DomainError):
        apply_reply("c_x", (), state, "what")
    assert apply_reply("c_x", (), state, False) is False


def test_messages_round_trip() -> None:
    union = RunCommand | CommandSucceeded | CommandFailed | ObservedState | WorldChanged
    for msg in (
        RunCommand("c_move", ("robot", "a", "b"), "t", 3),
        CommandSucceeded((Fact("loc", "robot", "b"),)),
        CommandFailed("jammed"),
        ObservedState({"loc": {"robot": "b"}}),
        WorldChanged((Fact("open", "a|b", False),), "sensor"),
    ):
        data = msgspec.msgpack.encode(msg)
        back = msgspec.msgpack.decode(data, type=union)
        assert msgspec.to_builtins(back) == msgspec.to_builtins(msg)
