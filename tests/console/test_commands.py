"""Commands.handle for every request, against a node with services booted in-process."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import msgspec
import pytest

from aria_actors import (
    Actor,
    ChildSpec,
    DynamicSupervisorSpec,
    Node,
    ServiceSpec,
    SupervisorRef,
    SupervisorSpec,
    handles,
)
from aria_actors.console.commands import YIELD_EVERY, Commands, Session
from aria_actors.console.logbuffer import LogBuffer
from aria_actors.console.protocol import (
    BootOrder,
    BootOrderReply,
    Call,
    Cast,
    Done,
    Eval,
    EvalReply,
    Failed,
    Hello,
    Info,
    InfoReply,
    Logs,
    LogsReply,
    Metrics,
    MetricsReply,
    Names,
    NamesReply,
    Ps,
    PsReply,
    Reply,
    Request,
    Restart,
    ServiceRow,
    Services,
    ServicesReply,
    Shutdown,
    State,
    StateReply,
    Stop,
    Trace,
    Tree,
    TreeReply,
    ValueReply,
)
from aria_actors.testing import wait_restarted, wait_until

from ..runtime.actors import Counter, Get, Inc

# -- actors of these tests ----------------------------------------------------------------------


class Vault(Actor):
    """Keeps a secret that ``state`` must not show."""

    secret_fields = frozenset({"password"})

    async def init(self) -> None:
        self.user = "admin"
        self.password = "hunter2"

    @handles(Get)
    def get(self, msg: Get) -> str:
        return self.user


class Forward(msgspec.Struct, frozen=True, tag=True):
    to: str


class Relay(Actor):
    """Casts an ``Inc`` to another actor from its handler (a message in and one out)."""

    @handles(Forward)
    def forward(self, msg: Forward) -> str:
        target = self.node.whereis(msg.to)
        assert target is not None
        target.cast_nowait(Inc())
        return "forwarded"


class Hold(msgspec.Struct, frozen=True, tag=True):
    pass


class Gate(Actor):
    """Its first Hold waits on ``gate``: later messages pile up in the mailbox."""

    async def init(self, gate: asyncio.Event) -> None:
        self.gate = gate

    @handles(Hold)
    async def hold(self, msg: Hold) -> None:
        await self.gate.wait()


class Untagged(msgspec.Struct, frozen=True):
    pass


class Plain(Actor):
    """Handles only an untagged message type: the console cannot build its messages."""

    @handles(Untagged)
    def untagged(self, msg: Untagged) -> None:
        pass


class Idle(Actor):
    @handles(Get)
    def get(self, msg: Get) -> int:
        return 0


SERVICES = [
    ServiceSpec(
        name="store",
        supervisor=SupervisorSpec(
            children=[
                ChildSpec(id="counter", start=Counter, name="counter", args={"start": 5}),
                ChildSpec(id="vault", start=Vault, name="vault"),
                ChildSpec(id="pool", start=DynamicSupervisorSpec(), name="pool"),
            ]
        ),
    ),
    ServiceSpec(
        name="web",
        requires=["store"],
        restart="temporary",
        supervisor=SupervisorSpec(children=[ChildSpec(id="front", start=Counter, name="front")]),
    ),
]


class Harness:
    """Commands for the test node, one Session, and what the shutdown callback saw."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self.buffer = LogBuffer(100)
        self.eval_enabled = True
        self.shutdowns = 0
        self.commands = Commands(node, self.buffer, lambda: self.eval_enabled, self.shutdown)
        self.session = Session(node)

    def shutdown(self) -> None:
        self.shutdowns += 1

    async def ask(self, request: Request, session: Session | None = None) -> Reply:
        async with asyncio.timeout(5.0):
            return await self.commands.handle(request, session or self.session)

    def ref(self, name: str) -> Any:
        ref = self.node.whereis(name)
        assert ref is not None, name
        return ref


@pytest.fixture
async def harness(node: Node) -> Harness:
    assert await node.boot(SERVICES) == ["store", "web"]
    return Harness(node)


def failed(reply: Reply, code: str, text: str = "") -> str:
    assert isinstance(reply, Failed), reply
    assert reply.code == code, reply
    assert text in reply.message, reply
    return reply.message


# -- inspection --------------------------------------------------------------------------------


async def test_tree_shows_the_services_and_their_children(harness: Harness) -> None:
    reply = await harness.ask(Tree())
    assert isinstance(reply, TreeReply)
    store, web = reply.roots
    assert (store.label, store.kind, store.status, store.actor) == (
        "store",
        "service",
        "running",
        repr(harness.ref("store")),
    )
    assert [(c.label, c.kind, c.restarts) for c in store.children] == [
        ("counter", "worker", 0),
        ("vault", "worker", 0),
        ("pool", "supervisor", 0),
    ]
    assert [c.label for c in web.children] == ["front"]


async def test_tree_counts_restarts_after_a_crash(harness: Harness) -> None:
    old = harness.ref("counter")
    done = await harness.ask(Cast(name="counter", message='{"type": "Crash", "text": "boom"}'))
    assert isinstance(done, Done)
    new = await wait_restarted(harness.node, "counter", old, timeout=5.0)
    reply = await harness.ask(Tree())
    assert isinstance(reply, TreeReply)
    counter = reply.roots[0].children[0]
    assert (counter.label, counter.actor, counter.restarts) == ("counter", repr(new), 1)
    ps = await harness.ask(Ps(sort="restarts", limit=1))
    assert isinstance(ps, PsReply)
    assert [(r.name, r.restarts) for r in ps.rows] == [("counter", 1)]


async def test_tree_lists_unsupervised_actors_after_the_services(harness: Harness) -> None:
    loose = await harness.node.spawn(Counter)
    reply = await harness.ask(Tree())
    assert isinstance(reply, TreeReply)
    assert [r.label for r in reply.roots] == ["store", "web", repr(loose)]
    assert reply.roots[-1].kind == "worker"


async def test_ps_lists_sorts_limits_and_filters(harness: Harness) -> None:
    gate = asyncio.Event()
    busy = await harness.node.spawn(Gate, name="busy", gate=gate)
    for _ in range(4):
        busy.cast_nowait(Hold())
    await wait_until(lambda: harness.node.process_row(busy).task == "running", timeout=5.0)
    for _ in range(3):
        await harness.ref("front").call(Inc())
    try:
        everything = await harness.ask(Ps(limit=0))
        assert isinstance(everything, PsReply)
        assert everything.total == len(everything.rows) == len(harness.node) == 7
        assert everything.rows[0].name == "busy"  # the deepest mailbox first
        assert everything.rows[0].mailbox == 3
        assert everything.rows[0].task == "running"

        by_id = await harness.ask(Ps(limit=0, sort="id"))
        assert isinstance(by_id, PsReply)
        assert [r.id for r in by_id.rows] == sorted(r.id for r in everything.rows)

        handled = await harness.ask(Ps(limit=2, sort="handled"))
        assert isinstance(handled, PsReply)
        assert handled.total == 7
        assert (handled.rows[0].name, handled.rows[0].handled) == ("front", 3)
        assert len(handled.rows) == 2

        store = await harness.ask(Ps(limit=0, service="store"))
        assert isinstance(store, PsReply)
        assert sorted(r.name or "" for r in store.rows) == ["counter", "pool", "store", "vault"]
        assert store.total == 4
        assert {r.service for r in store.rows} == {"store"}

        nothing = await harness.ask(Ps(service="nope"))
        assert nothing == PsReply(rows=[], total=0)
    finally:
        gate.set()


async def test_ps_over_many_actors_yields_to_the_loop(node: Node) -> None:
    count = 4 * YIELD_EVERY  # 20,000
    for _ in range(count):
        await node.spawn(Idle)
    harness = Harness(node)
    ticks = 0
    stop = asyncio.Event()

    async def ticker() -> None:
        nonlocal ticks
        while not stop.is_set():
            ticks += 1
            await asyncio.sleep(0)

    task = asyncio.ensure_future(ticker())
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    before = ticks
    reply = await harness.ask(Ps(limit=10))
    during = ticks - before
    stop.set()
    await asyncio.wait_for(task, 5.0)
    assert isinstance(reply, PsReply)
    assert reply.total == count
    assert len(reply.rows) == 10
    assert during >= count // YIELD_EVERY - 1  # it let the other task run as it went


async def test_info_by_name_id_and_reference(harness: Harness) -> None:
    ref = harness.ref("counter")
    for name in ("counter", str(ref.id), f"test.{ref.id}", repr(ref), f"  {ref.id} "):
        reply = await harness.ask(Info(name=name))
        assert isinstance(reply, InfoReply), name
        info = reply.info
        assert (info.id, info.name, info.service, info.child_id) == (
            ref.id,
            "counter",
            "store",
            "counter",
        )
        assert info.actor_class == "tests.runtime.actors.Counter"
        assert info.parent == repr(harness.ref("store"))


async def test_an_unknown_actor_is_not_found(harness: Harness) -> None:
    for request in (
        Info(name="nobody"),
        State(name="9999"),
        Info(name="test.9999"),
        Call(name="nobody", message="{}"),
        Cast(name="nobody", message="{}"),
        Restart(name="nobody"),
        Stop(name="nobody"),
        Trace(name="nobody", on=True),
    ):
        failed(await harness.ask(request), "not_found", f"no actor {request.name!r} on node test")


async def test_state_redacts_secret_fields(harness: Harness) -> None:
    reply = await harness.ask(State(name="vault"))
    assert reply == StateReply(
        actor=repr(harness.ref("vault")), fields={"user": "'admin'", "password": "<redacted>"}
    )
    counter = await harness.ask(State(name="counter"))
    assert isinstance(counter, StateReply)
    assert counter.fields["value"] == "5"


async def test_services_and_boot_order_and_names(harness: Harness) -> None:
    services = await harness.ask(Services())
    assert services == ServicesReply(
        services=[
            ServiceRow(
                name="store",
                restart="permanent",
                requires=[],
                supervisor=repr(harness.ref("store")),
                status="running",
            ),
            ServiceRow(
                name="web",
                restart="temporary",
                requires=["store"],
                supervisor=repr(harness.ref("web")),
                status="running",
            ),
        ]
    )
    assert await harness.ask(BootOrder()) == BootOrderReply(order=["store", "web"])
    assert await harness.ask(Names()) == NamesReply(
        names=["counter", "front", "pool", "store", "vault", "web"]
    )


async def test_metrics_are_prometheus_text(harness: Harness) -> None:
    await harness.ref("counter").call(Inc())
    reply = await harness.ask(Metrics())
    assert isinstance(reply, MetricsReply)
    assert "# TYPE aria_actors gauge" in reply.text
    assert f"aria_actors {float(len(harness.node))}" in reply.text
    assert "aria_messages_handled_total" in reply.text


# -- call and cast -----------------------------------------------------------------------------


async def test_call_and_cast_take_tagged_json(harness: Harness) -> None:
    assert await harness.ask(Call(name="counter", message='{"type": "Inc", "n": 2}')) == (
        ValueReply(value="7")
    )
    done = await harness.ask(Cast(name="counter", message=' { "type" : "Inc" } '))
    assert done == Done(f"sent to {harness.ref('counter')!r}")
    assert await harness.ask(Call(name="counter", message='{"type": "Get"}')) == ValueReply("8")
    echoed = await harness.ask(
        Call(name="counter", message='{"type": "Echo", "value": {"a": [1, null]}}')
    )
    assert isinstance(echoed, ValueReply)
    assert json.loads(echoed.value) == {"a": [1, None]}


async def test_bad_json_lists_the_accepted_tags(harness: Harness) -> None:
    accepted = "type='Crash', type='Echo', type='Get', type='Inc', type='Sleep', type='Stop'"
    for message in ("not json", '{"type": "Nope"}', '{"type": "Inc", "n": "two"}', "[]"):
        text = failed(await harness.ask(Call(name="counter", message=message)), "failed")
        assert text.endswith(f"accepts JSON objects with {accepted}"), text
        assert repr(harness.ref("counter")) in text
    text = failed(await harness.ask(Cast(name="counter", message="{")), "failed")
    assert "accepts JSON objects with" in text


async def test_an_actor_without_tagged_messages_cannot_be_called(harness: Harness) -> None:
    await harness.node.spawn(Plain, name="plain")
    text = failed(await harness.ask(Call(name="plain", message="{}")), "failed")
    assert "handles no tagged message types" in text


async def test_a_call_that_times_out_is_failed_timeout(harness: Harness) -> None:
    reply = await harness.ask(
        Call(name="counter", message='{"type": "Sleep", "seconds": 0.3}', timeout=0.05)
    )
    failed(reply, "timeout")


async def test_a_call_whose_handler_crashes_is_failed(harness: Harness) -> None:
    old = harness.ref("counter")
    reply = await harness.ask(Call(name="counter", message='{"type": "Crash", "text": "kaboom"}'))
    failed(reply, "failed")
    await wait_restarted(harness.node, "counter", old, timeout=5.0)


# -- restart, stop, trace ---------------------------------------------------------------------


async def test_restart_a_static_child_gives_a_new_actor_with_fresh_state(harness: Harness) -> None:
    old = harness.ref("counter")
    await old.call(Inc(n=10))
    reply = await harness.ask(Restart(name="counter"))
    new = harness.ref("counter")
    assert new != old
    assert not old.is_alive()
    assert reply == Done(f"restarted 'counter': now {new!r}")
    assert await new.call(Get()) == 5  # from its spec's args again


async def test_restart_a_dynamic_child(harness: Harness) -> None:
    pool = harness.ref("pool")
    assert isinstance(pool, SupervisorRef)
    child = await pool.start_child(ChildSpec(id="worker", start=Counter, args={"start": 1}))
    await child.call(Inc())
    reply = await harness.ask(Restart(name=repr(child)))
    (info,) = await pool.which_children()
    assert info.actor is not None
    assert info.actor != child
    assert reply == Done(f"restarted {child!r}: now {info.actor!r}")
    assert await info.actor.call(Get()) == 1


async def test_restart_an_unsupervised_actor_is_failed(harness: Harness) -> None:
    loose = await harness.node.spawn(Counter, name="loose")
    failed(await harness.ask(Restart(name="loose")), "failed", "has no supervisor")
    failed(await harness.ask(Restart(name="store")), "failed", "top supervisor of service store")
    assert loose.is_alive()


async def test_stop_a_supervised_child_keeps_it_stopped(harness: Harness) -> None:
    old = harness.ref("counter")
    reply = await harness.ask(Stop(name="counter"))
    assert isinstance(reply, Done)
    assert "it stays stopped" in reply.detail
    assert not old.is_alive()
    await asyncio.sleep(0.05)
    assert harness.node.whereis("counter") is None
    tree = await harness.ask(Tree())
    assert isinstance(tree, TreeReply)
    counter = tree.roots[0].children[0]
    assert (counter.label, counter.status, counter.actor) == ("counter", "stopped", None)


async def test_stop_an_unsupervised_actor(harness: Harness) -> None:
    loose = await harness.node.spawn(Counter, name="loose")
    assert await harness.ask(Stop(name="loose")) == Done(f"stopped {loose!r}: shutdown")
    assert not loose.is_alive()
    failed(await harness.ask(Stop(name="loose")), "not_found")


async def test_trace_logs_messages_in_and_out_until_turned_off(
    harness: Harness, logs: list[dict[str, Any]]
) -> None:
    relay = await harness.node.spawn(Relay, name="relay")
    reply = await harness.ask(Trace(name="relay", on=True))
    assert reply == Done(f"tracing on for {relay!r}: see 'logs --follow --actor relay'")
    assert await harness.ask(
        Call(name="relay", message='{"type": "Forward", "to": "counter"}')
    ) == (ValueReply('"forwarded"'))
    await wait_until(lambda: len(traces(logs)) >= 2, timeout=5.0)
    assert [(e["direction"], e["kind"]) for e in traces(logs)] == [("in", "call"), ("out", "cast")]
    incoming, outgoing = traces(logs)
    assert incoming["actor"] == outgoing["actor"] == repr(relay)
    assert "Forward" in incoming["message"]
    assert outgoing["to"] == repr(harness.ref("counter"))
    assert "Inc" in outgoing["message"]

    info = await harness.ask(Info(name="relay"))
    assert isinstance(info, InfoReply)
    assert info.info.traced

    assert isinstance(await harness.ask(Trace(name="relay", on=False)), Done)
    await relay.call(Forward(to="counter"))
    await asyncio.sleep(0.01)
    assert len(traces(logs)) == 2
    assert harness.node.tracing == 0


def traces(logs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in logs if e["event"] == "trace"]


# -- logs ----------------------------------------------------------------------------------------


def fill(buffer: LogBuffer) -> None:
    for level, event, fields in [
        ("info", "a", {"service": "store", "actor": "<actor test.2 counter>"}),
        ("warning", "b", {"service": "web", "actor": "<actor test.6 front>"}),
        ("error", "c", {"service": "store", "actor": "<actor test.3 vault>"}),
        ("debug", "d", {"service": "store"}),
        ("critical", "e", {}),
    ]:
        buffer(None, level, {"event": event, **fields})


async def test_logs_filters_by_service_actor_and_level(harness: Harness) -> None:
    fill(harness.buffer)

    async def events(**filters: Any) -> list[str]:
        reply = await harness.ask(Logs(**filters))
        assert isinstance(reply, LogsReply)
        return [e["event"] for e in reply.events]

    assert await events() == ["a", "b", "c", "d", "e"]
    assert await events(limit=2) == ["d", "e"]
    assert await events(limit=0) == ["a", "b", "c", "d", "e"]
    assert await events(service="store") == ["a", "c", "d"]
    assert await events(actor="counter") == ["a"]
    assert await events(actor="test.") == ["a", "b", "c"]
    assert await events(level="warning") == ["b", "c", "e"]
    assert await events(level="ERROR") == ["c", "e"]
    assert await events(service="store", level="info") == ["a", "c"]
    assert await events(service="nope") == []


async def test_logs_without_a_buffer_are_disabled(node: Node) -> None:
    commands = Commands(node, None, lambda: True, lambda: None)
    reply = await commands.handle(Logs(), Session(node))
    failed(reply, "disabled", "log_buffer")


# -- eval ----------------------------------------------------------------------------------------


async def test_eval_gives_the_value_the_output_and_errors(harness: Harness) -> None:
    assert await harness.ask(Eval(code="1 + 1")) == EvalReply(output="", value="2")
    assert await harness.ask(Eval(code="None")) == EvalReply(output="", value="")
    assert await harness.ask(Eval(code="print('hi', 3)")) == EvalReply(output="hi 3\n", value="")
    assert await harness.ask(Eval(code="x = 41\nx += 1")) == EvalReply(output="", value="")
    assert await harness.ask(Eval(code="x")) == EvalReply(output="", value="42")
    assert await harness.ask(Eval(code="_")) == EvalReply(output="", value="42")
    reply = await harness.ask(Eval(code="print('before'); 1 / 0"))
    assert isinstance(reply, EvalReply)
    assert reply.output == "before\n"
    assert reply.value == ""
    assert reply.error.rstrip().endswith("ZeroDivisionError: division by zero")
    syntax = await harness.ask(Eval(code="def ("))
    assert isinstance(syntax, EvalReply)
    assert "SyntaxError" in syntax.error


async def test_eval_awaits_at_top_level_and_sees_the_node(harness: Harness) -> None:
    code = "await whereis('counter').call(Inc(n=3))"
    assert isinstance(
        await harness.ask(Eval(code="from tests.runtime.actors import Inc")), EvalReply
    )
    assert await harness.ask(Eval(code=code)) == EvalReply(output="", value="8")
    assert await harness.ask(Eval(code="await asyncio.sleep(0, 'slept')")) == EvalReply(
        output="", value="'slept'"
    )
    assert await harness.ask(Eval(code="sorted(refs)")) == EvalReply(
        output="", value=repr(sorted(harness.node.registered()))
    )
    assert await harness.ask(Eval(code="node.name")) == EvalReply(output="", value="'test'")
    statements = "for i in range(2):\n    await asyncio.sleep(0)\n    print(i)"
    assert await harness.ask(Eval(code=statements)) == EvalReply(output="0\n1\n", value="")


async def test_eval_namespace_lasts_for_one_session(harness: Harness) -> None:
    await harness.ask(Eval(code="kept = [1]"))
    await harness.ask(Eval(code="kept.append(2)"))
    assert await harness.ask(Eval(code="kept")) == EvalReply(output="", value="[1, 2]")
    other = Session(harness.node)
    reply = await harness.ask(Eval(code="kept"), other)
    assert isinstance(reply, EvalReply)
    assert "NameError" in reply.error


async def test_eval_with_a_bad_repr_still_answers(harness: Harness) -> None:
    code = "class Odd:\n    def __repr__(self):\n        raise ValueError('no')\n"
    await harness.ask(Eval(code=code))
    assert await harness.ask(Eval(code="Odd()")) == EvalReply(output="", value="")


async def test_eval_disabled(harness: Harness) -> None:
    harness.eval_enabled = False
    failed(await harness.ask(Eval(code="1")), "disabled", "console.eval = false")


@pytest.mark.parametrize(
    "code", ["exit()", "quit()", "import sys; sys.exit(3)", "raise SystemExit"]
)
async def test_eval_of_exit_does_not_stop_the_node(harness: Harness, code: str) -> None:
    """BUG: eval catches Exception only; SystemExit (``exit()``, ``quit()``,
    ``sys.exit()``: what people type to leave Python mode) escapes Commands.handle and,
    in the server, the connection task, which stops the node's event loop."""
    try:
        reply = await harness.ask(Eval(code=code))
    except SystemExit:
        pytest.fail(f"eval {code!r} raised SystemExit out of Commands.handle")
    assert isinstance(reply, EvalReply)
    assert "SystemExit" in reply.error


# -- the rest ------------------------------------------------------------------------------------


async def test_shutdown_calls_the_callback(harness: Harness) -> None:
    assert await harness.ask(Shutdown()) == Done("node test is stopping")
    assert harness.shutdowns == 1


async def test_a_hello_is_not_a_command(harness: Harness) -> None:
    failed(await harness.ask(Hello(version=1, cookie="x")), "bad_request", "Hello")


async def test_a_bug_in_a_handler_becomes_a_failed_reply(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(ref: object) -> None:
        raise KeyError("oops")

    monkeypatch.setattr(harness.node, "info", broken)
    failed(await harness.ask(Info(name="counter")), "failed", "KeyError: 'oops'")
