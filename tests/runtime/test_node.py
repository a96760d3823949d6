"""The node: spawning, the registry, stopping, metrics, blocking work, embedding in threads."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from typing import Any

import pytest
from prometheus_client import generate_latest

from aria_actors import (
    Actor,
    ChildSpec,
    MailboxFull,
    Node,
    NodeConfig,
    NodeThread,
    RuntimeConfig,
    StartError,
    SupervisorSpec,
    handles,
    run_blocking,
    run_in_process,
)

from .actors import Counter, Echo, Get, Inc, Sleep, Stop, Unknown


async def test_spawn_checks_its_arguments(node: Node) -> None:
    with pytest.raises(TypeError, match="Actor subclass"):
        await node.spawn(object)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="shutdown"):
        await node.spawn(Counter, shutdown=-1)


async def test_a_node_that_is_not_running_refuses_to_spawn() -> None:
    node = Node(name="idle")
    with pytest.raises(StartError, match="not running"):
        await node.spawn(Counter)
    async with node:
        pass
    with pytest.raises(StartError, match="not running"):
        await node.spawn(Counter)
    with pytest.raises(RuntimeError, match="already started"):
        await node.start()


async def test_registry_views(node: Node) -> None:
    a = await node.spawn(Counter, name="a")
    b = await node.spawn(Counter)
    assert node.actors() == [a, b]
    assert node.registered() == {"a": a}
    assert len(node) == 2
    assert "actors=2" in repr(node)


async def test_stop_stops_actors_newest_first_and_is_idempotent() -> None:
    journal: list[str] = []
    async with Node(name="n", config=NodeConfig(runtime=RuntimeConfig(loop_lag_interval=0))) as n:
        for name in ("first", "second", "third"):
            await n.spawn(Counter, name=name, journal=journal)
        journal.clear()
        await asyncio.gather(n.stop(), n.stop())
        assert journal == [
            "terminate third shutdown",
            "terminate second shutdown",
            "terminate first shutdown",
        ]
        assert n.actors() == []
        assert await n.wait_stopped() == 0
    assert n.exit_status == 0


async def test_stop_reaches_actors_linked_below_unsupervised_ones() -> None:
    class Parent(Actor):
        @handles(Echo)
        async def start_child(self, msg: Echo) -> Any:
            return await self.spawn_link(Counter)

    async with Node(name="n") as n:
        parent = await n.spawn(Parent)
        child = await parent.call(Echo())
    assert not child.is_alive()
    assert (await child.wait()).kind == "shutdown"


async def test_metrics_expose_the_runtime(node: Node) -> None:
    await node.start_supervisor(
        SupervisorSpec(children=[ChildSpec(id="c", start=Counter, name="counter")]), name="sup"
    )
    ref = node.whereis("counter")
    assert ref is not None
    for _ in range(5):
        await ref.call(Inc())
    await ref.cast(Unknown())
    await ref.call(Get())
    await ref.cast(Stop())  # a permanent child: restarted
    await ref.wait()
    await asyncio.sleep(0.01)
    text = generate_latest(node.metrics).decode()
    assert "aria_actors 2.0" in text
    assert "aria_dead_letters_total 1.0" in text
    assert 'aria_restarts_total{child="c",supervisor="sup"} 1.0' in text
    assert 'aria_mailbox_depth{actor="counter"} 0.0' in text
    assert 'aria_actor_messages_handled_total{actor="sup"}' in text
    handled = [
        line for line in text.splitlines() if line.startswith("aria_messages_handled_total ")
    ]
    assert float(handled[0].split()[1]) >= 7
    assert "aria_event_loop_lag_seconds" in text
    assert "aria_event_loop_lag_histogram_seconds_bucket" in text


async def test_event_loop_lag_is_measured() -> None:
    config = NodeConfig(runtime=RuntimeConfig(loop_lag_interval=0.01))
    async with Node(name="lag", config=config) as n:
        await asyncio.sleep(0.02)
        time.sleep(0.1)  # noqa: ASYNC251 - blocking the loop on purpose
        await asyncio.sleep(0.03)
        assert n.loop_lag.take_max() >= 0.05


async def test_run_blocking_keeps_the_loop_free(node: Node) -> None:
    class Blocking(Actor):
        @handles(Sleep)
        async def block(self, msg: Sleep) -> int:
            return await self.run_blocking(blocking_sleep, msg.seconds)

    ref = await node.spawn(Blocking)
    other = await node.spawn(Counter)
    task = asyncio.ensure_future(ref.call(Sleep(0.2)))
    await asyncio.sleep(0.01)
    started = time.perf_counter()
    assert await other.call(Inc()) == 1  # answered while the thread sleeps
    assert time.perf_counter() - started < 0.1
    assert await task != threading.get_ident()  # it ran in a worker thread
    assert await run_blocking(sum, [1, 2, 3]) == 6


def blocking_sleep(seconds: float) -> int:
    time.sleep(seconds)
    return threading.get_ident()


async def test_run_in_process_runs_in_another_process(node: Node) -> None:
    class Heavy(Actor):
        @handles(Get)
        async def pid(self, msg: Get) -> int:
            return await self.run_in_process(os.getpid)

    ref = await node.spawn(Heavy)
    assert await ref.call(Get(), timeout=60) != os.getpid()
    assert await run_in_process(abs, -3) == 3


def test_node_thread_from_synchronous_code() -> None:
    with NodeThread(name="embedded") as embedded:
        ref = embedded.spawn(Counter, name="counter", start=5)
        assert embedded.whereis("counter") == ref
        embedded.cast(ref, Inc())
        assert embedded.call(ref, Inc(n=2)) == 8
        with pytest.raises(TypeError):
            embedded.call(ref, {"not": "a struct"})

        errors: list[BaseException] = []

        def hammer() -> None:
            try:
                for _ in range(200):
                    embedded.cast(ref, Inc())
            except BaseException as exc:
                errors.append(exc)
                raise

        threads = [threading.Thread(target=hammer) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        assert embedded.call(ref, Get()) == 808

        async def inside() -> int:
            return len(embedded.node.actors())

        assert embedded.run(inside) == 1
        assert embedded.is_running
    assert not embedded.is_running
    assert embedded.stop() == 0
    with pytest.raises(RuntimeError, match="not running"):
        embedded.call(ref, Get())


def test_node_thread_backpressure_and_timeouts() -> None:
    with NodeThread(name="bp") as embedded:
        ref = embedded.spawn(Counter, mailbox_size=1)
        embedded.cast(ref, Sleep(0.3))
        time.sleep(0.05)
        embedded.cast_nowait(ref, Inc())
        with pytest.raises(MailboxFull):
            embedded.cast_nowait(ref, Inc())
        with pytest.raises(TimeoutError):
            embedded.cast(ref, Inc(), timeout=0.05)
        assert embedded.call(ref, Get()) == 1


def test_node_thread_refuses_calls_from_its_own_thread() -> None:
    with NodeThread(name="self") as embedded:
        ref = embedded.spawn(Counter)

        async def reenter() -> Any:
            return embedded.call(ref, Get())

        with pytest.raises(RuntimeError, match="own thread"):
            embedded.run(reenter)
