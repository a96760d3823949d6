"""The node side of the control socket, on a real Unix socket in front of a real node."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import stat
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import structlog
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from aria_actors import ConfigError, Node
from aria_actors.console import server as server_module
from aria_actors.console.client import ConsoleClient, Target
from aria_actors.console.commands import Commands
from aria_actors.console.logbuffer import LogBuffer
from aria_actors.console.protocol import (
    HEADER,
    PROTOCOL_VERSION,
    Call,
    Done,
    Eval,
    EvalReply,
    Failed,
    Hello,
    LogEvent,
    Logs,
    LogsReply,
    Ps,
    PsReply,
    Reply,
    Shutdown,
    Tree,
    TreeReply,
    ValueReply,
    Welcome,
)
from aria_actors.console.server import ControlServer
from aria_actors.testing import wait_until

from ..runtime.actors import Counter, Inc
from .helpers import (
    COOKIE,
    DEADLINE,
    FUZZ_BODIES,
    INVALID_UTF8_HELLO,
    INVALID_UTF8_OP,
    RawConsole,
    frame,
)

MAX_FRAME = 8192


class Switches:
    """What the test server's callbacks saw, and what they answer."""

    def __init__(self) -> None:
        self.eval = True
        self.shutdowns = 0
        self.sessions_ended = 0


@pytest.fixture
def switches() -> Switches:
    return Switches()


@pytest.fixture
async def server(
    node: Node, log_buffer: LogBuffer, socket_dir: Path, switches: Switches
) -> AsyncIterator[ControlServer]:
    """A ControlServer for ``node`` on a socket in a fresh directory (max_frame 8 KiB)."""

    def shutdown() -> None:
        switches.shutdowns += 1

    commands = Commands(node, log_buffer, eval_enabled=lambda: switches.eval, shutdown=shutdown)
    control = ControlServer(commands, COOKIE, socket_dir / "control.sock", MAX_FRAME)
    serve = control._serve

    async def counted(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await serve(reader, writer)  # an exception still reaches the loop's handler
        finally:
            switches.sessions_ended += 1

    control._serve = counted  # type: ignore[method-assign]
    await control.start()
    try:
        yield control
    finally:
        await control.stop()


async def connect(server: ControlServer, authenticate: bool = True) -> RawConsole:
    console = await RawConsole.connect(server.path)
    if authenticate:
        welcome = await console.hello()
        assert isinstance(welcome, Welcome), welcome
    return console


async def settled(switches: Switches, sessions: int) -> None:
    """Wait until the server has finished serving ``sessions`` connections."""
    await wait_until(lambda: switches.sessions_ended >= sessions, timeout=DEADLINE)


def failed(reply: Reply | None, code: str, text: str = "") -> None:
    assert isinstance(reply, Failed), reply
    assert reply.code == code, reply
    assert text in reply.message, reply


# -- authentication ---------------------------------------------------------------------------


async def test_the_right_cookie_is_welcomed(
    server: ControlServer,
    node: Node,
    logs: list[dict[str, Any]],
    loop_errors: list[dict[str, Any]],
) -> None:
    console = await RawConsole.connect(server.path)
    welcome = await console.hello()
    assert welcome == Welcome(
        node="test", version=PROTOCOL_VERSION, pid=os.getpid(), eval_enabled=True
    )
    assert isinstance(await console.ask(Tree()), TreeReply)
    assert isinstance(await console.ask(Ps()), PsReply)
    await console.close()
    assert [e["client"] for e in logs if e["event"] == "console_attached"] == ["tests"]
    assert loop_errors == []


async def test_the_welcome_says_whether_eval_is_enabled(
    server: ControlServer, switches: Switches
) -> None:
    switches.eval = False
    console = await RawConsole.connect(server.path)
    welcome = await console.hello()
    assert isinstance(welcome, Welcome)
    assert welcome.eval_enabled is False
    await console.close()


async def test_a_wrong_cookie_is_refused_and_the_connection_closed(
    server: ControlServer, logs: list[dict[str, Any]], loop_errors: list[dict[str, Any]]
) -> None:
    console = await RawConsole.connect(server.path)
    await console.send(Hello(version=PROTOCOL_VERSION, cookie=COOKIE[:-1] + "0"))
    replies = await console.until_closed()
    assert len(replies) == 1
    failed(replies[0], "unauthenticated", "wrong cookie")
    assert any(e["event"] == "console_rejected" for e in logs)
    await console.close()
    assert loop_errors == []


async def test_a_wrong_protocol_version_is_refused(server: ControlServer) -> None:
    console = await RawConsole.connect(server.path)
    await console.send(Hello(version=PROTOCOL_VERSION + 1, cookie=COOKIE))
    replies = await console.until_closed()
    assert len(replies) == 1
    failed(replies[0], "version", f"protocol version {PROTOCOL_VERSION + 1} is not spoken here")
    await console.close()


@pytest.mark.parametrize(
    ("data", "text"),
    [
        (frame(b"\x81\xa2op\xa4tree"), "the first frame must be a hello"),
        (frame(b"\xc1"), "the first frame is not a hello"),
        (frame(b"\x81\xa2op\xa5bogus"), "the first frame is not a hello"),
        (HEADER.pack(4097) + b"\x00" * 16, "the first frame is not a hello"),  # too large
    ],
    ids=["a request", "not msgpack", "unknown op", "too large"],
)
async def test_a_first_frame_that_is_not_a_hello_is_refused(
    server: ControlServer, loop_errors: list[dict[str, Any]], data: bytes, text: str
) -> None:
    console = await RawConsole.connect(server.path)
    await console.send_bytes(data)
    replies = await console.until_closed()
    assert len(replies) == 1
    failed(replies[0], "unauthenticated", text)
    await console.close()
    assert loop_errors == []


@pytest.mark.parametrize("sent", [b"", HEADER.pack(40) + b"\x83"], ids=["nothing", "half a hello"])
async def test_no_hello_in_time_is_refused(
    server: ControlServer, monkeypatch: pytest.MonkeyPatch, sent: bytes
) -> None:
    monkeypatch.setattr(server_module, "HELLO_TIMEOUT", 0.2)
    console = await RawConsole.connect(server.path)
    await console.send_bytes(sent)
    replies = await console.until_closed(timeout=3.0)
    assert len(replies) == 1
    failed(replies[0], "unauthenticated", "no hello")
    await console.close()


async def test_a_console_leaving_before_its_hello_ends_quietly(
    server: ControlServer, switches: Switches, loop_errors: list[dict[str, Any]]
) -> None:
    console = await RawConsole.connect(server.path)
    console.writer.write_eof()
    assert await console.until_closed() == []
    await console.close()
    await settled(switches, 1)
    assert loop_errors == []


async def test_a_hello_that_is_not_utf8_is_refused_without_an_error_in_the_node(
    server: ControlServer, switches: Switches, loop_errors: list[dict[str, Any]]
) -> None:
    """BUG: decode_request lets msgspec's UnicodeDecodeError through, so _authenticate
    raises out of the connection handler (the loop reports "Unhandled exception in
    client_connected_cb") and the console gets no Failed reply."""
    console = await RawConsole.connect(server.path)
    await console.send_bytes(frame(INVALID_UTF8_HELLO))
    replies = await console.until_closed()
    await console.close()
    await settled(switches, 1)
    assert [e.get("exception") for e in loop_errors] == []
    assert len(replies) == 1
    failed(replies[0], "unauthenticated")


# -- an authenticated session -----------------------------------------------------------------


async def test_a_second_hello_is_a_bad_request_and_the_session_goes_on(
    server: ControlServer,
) -> None:
    console = await connect(server)
    failed(await console.hello(), "bad_request", "authenticated")
    assert isinstance(await console.ask(Tree()), TreeReply)
    await console.close()


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"\xc1", "malformed"),
        (b"", "malformed"),
        (b"\x81\xa2op\xa5bogus", "bad_request"),
        (b"\x82\xa2op\xa2ps\xa5limit\xa3ten", "bad_request"),
    ],
    ids=["not msgpack", "empty", "unknown op", "wrong type"],
)
async def test_a_bad_frame_after_the_hello_gets_an_error_and_the_session_goes_on(
    server: ControlServer, loop_errors: list[dict[str, Any]], body: bytes, code: str
) -> None:
    console = await connect(server)
    await console.send_bytes(frame(body))
    failed(await console.receive(), code)
    assert isinstance(await console.ask(Tree()), TreeReply)
    await console.close()
    assert loop_errors == []


async def test_a_request_that_is_not_utf8_gets_an_error_and_the_session_goes_on(
    server: ControlServer, switches: Switches, loop_errors: list[dict[str, Any]]
) -> None:
    """BUG: as for the hello, the UnicodeDecodeError ends the session with an
    exception in the node instead of a ``malformed`` reply."""
    console = await connect(server)
    await console.send_bytes(frame(INVALID_UTF8_OP))
    reply = await console.receive()
    await console.close()
    await settled(switches, 1)
    assert [e.get("exception") for e in loop_errors] == []
    assert isinstance(reply, Failed)


async def test_an_oversized_frame_is_refused_and_the_connection_closed(
    server: ControlServer, switches: Switches, loop_errors: list[dict[str, Any]]
) -> None:
    console = await connect(server)
    await console.send_bytes(HEADER.pack(MAX_FRAME + 1) + b"\x00" * 100)
    replies = await console.until_closed()
    assert len(replies) == 1
    failed(replies[0], "too_large", f"over the limit of {MAX_FRAME}")
    await console.close()
    await settled(switches, 1)
    assert loop_errors == []


@pytest.mark.parametrize(
    ("data", "text"),
    [(HEADER.pack(50) + b"\x85" * 10, "10 of 50 bytes"), (b"\x00\x00", "frame header")],
    ids=["body", "header"],
)
async def test_a_truncated_frame_then_eof_ends_the_session(
    server: ControlServer,
    switches: Switches,
    loop_errors: list[dict[str, Any]],
    data: bytes,
    text: str,
) -> None:
    console = await connect(server)
    await console.send_bytes(data)
    console.writer.write_eof()
    replies = await console.until_closed()
    assert len(replies) == 1
    failed(replies[0], "malformed", text)
    await console.close()
    await settled(switches, 1)
    assert not server.connections
    assert loop_errors == []


async def test_requests_are_answered_in_order(server: ControlServer, node: Node) -> None:
    await node.spawn(Counter, name="counter", start=1)
    console = await connect(server)
    for expected in range(2, 12):
        reply = await console.ask(Call(name="counter", message='{"type": "Inc"}'))
        assert reply == ValueReply(value=str(expected))
    await console.close()


async def test_shutdown_calls_the_callback(server: ControlServer, switches: Switches) -> None:
    console = await connect(server)
    reply = await console.ask(Shutdown())
    assert isinstance(reply, Done)
    assert "is stopping" in reply.detail
    assert switches.shutdowns == 1
    await console.close()


async def test_a_real_client_attaches_and_asks(server: ControlServer) -> None:
    client = await ConsoleClient.attach(Target(server.path, COOKIE, "test"), timeout=DEADLINE)
    try:
        assert client.welcome.node == "test"
        assert isinstance(await client.request(Tree(), timeout=DEADLINE), TreeReply)
    finally:
        await client.close()


async def test_an_event_the_protocol_cannot_carry_does_not_break_logs(
    server: ControlServer,
    switches: Switches,
    log_buffer: LogBuffer,
    loop_errors: list[dict[str, Any]],
) -> None:
    """BUG: LogBuffer's plain() keeps ints beyond 64 bits and strings with lone
    surrogates (os.fsdecode of a non-UTF-8 file name); msgpack cannot encode them, so
    ``_send`` raises out of the session: the console gets no reply, and every ``logs``
    fails while the event is in the buffer."""
    structlog.get_logger("test").info("odd_values", big=2**70, path=os.fsdecode(b"caf\xe9"))
    console = await connect(server)
    await console.send(Logs(limit=5))
    reply = await console.receive()
    await console.close()
    await settled(switches, 1)
    assert [e.get("exception") for e in loop_errors] == []
    assert isinstance(reply, LogsReply)


async def test_eval_output_the_protocol_cannot_carry_does_not_kill_the_session(
    server: ControlServer, switches: Switches, loop_errors: list[dict[str, Any]]
) -> None:
    """BUG: an EvalReply whose output has a lone surrogate cannot be encoded; the
    exception leaves the connection handler instead of becoming a Failed reply."""
    console = await connect(server)
    await console.send(Eval(code="import os; print(os.fsdecode(b'caf\\xe9'))"))
    reply = await console.receive()
    await console.close()
    await settled(switches, 1)
    assert [e.get("exception") for e in loop_errors] == []
    assert isinstance(reply, EvalReply | Failed)


# -- logs --follow ----------------------------------------------------------------------------


async def test_logs_follow_streams_new_events_until_the_console_leaves(
    server: ControlServer, log_buffer: LogBuffer, switches: Switches
) -> None:
    log = structlog.get_logger("test")
    log.info("before", service="web")
    log.info("ignored", service="other")
    console = await connect(server)
    reply = await console.ask(Logs(follow=True, service="web"))
    assert isinstance(reply, LogsReply)
    assert [e["event"] for e in reply.events] == ["before"]
    assert len(log_buffer.followers) == 1
    log.info("other service", service="other")
    log.warning("after", service="web", n=1)
    event = await console.receive()
    assert isinstance(event, LogEvent)
    assert event.event["event"] == "after"
    assert event.event["level"] == "warning"
    assert event.event["n"] == 1
    assert event.dropped == 0
    await console.close()
    await wait_until(lambda: not log_buffer.followers, timeout=DEADLINE)
    await settled(switches, 1)


async def test_a_console_that_does_not_read_cannot_hold_up_the_node(
    server: ControlServer, node: Node, log_buffer: LogBuffer
) -> None:
    """Events pile up for a follower that never reads: it drops them (counted), while
    the node goes on answering calls; what it lost is reported when it reads again."""
    counter = await node.spawn(Counter, name="counter")
    console = await connect(server)
    assert isinstance(await console.ask(Logs(follow=True, limit=0, service="flood")), LogsReply)
    (follower,) = log_buffer.followers
    console.pause_reading()  # it reads nothing: the socket buffers fill up
    flood = structlog.get_logger("flood")
    payload = "x" * 4096
    total = 3000
    loop = asyncio.get_running_loop()
    slowest = 0.0
    for index in range(total):
        flood.info("flood", service="flood", index=index, payload=payload)
        if index % 100 == 99:
            started = loop.time()
            assert await counter.call(Inc(), timeout=1.0) == (index + 1) // 100
            slowest = max(slowest, loop.time() - started)
    assert slowest < 1.0
    assert follower.dropped > 0  # counted, not waited for

    received: list[LogEvent] = []

    async def read_until_done() -> None:
        while True:
            reply = await console.receive()
            assert isinstance(reply, LogEvent), reply
            received.append(reply)
            if reply.event["event"] == "flood_done":
                return

    console.resume_reading()
    reading = asyncio.ensure_future(read_until_done())
    try:
        await wait_until(follower.queue.empty, timeout=DEADLINE)
        flood.info("flood_done", service="flood")
        await asyncio.wait_for(asyncio.shield(reading), DEADLINE)
    finally:
        reading.cancel()
    events = [r for r in received if r.event["event"] == "flood"]
    indexes = [r.event["index"] for r in events]
    assert indexes == sorted(indexes)
    assert len(events) + sum(r.dropped for r in received) == total
    assert any(r.dropped for r in received)
    await console.close()


async def flood_a_stuck_follower(
    server: ControlServer, log_buffer: LogBuffer, monkeypatch: pytest.MonkeyPatch
) -> RawConsole:
    """A following console that stopped reading, and 3 MB of events for it."""
    monkeypatch.setattr(server_module, "WRITE_TIMEOUT", 0.3)
    console = await connect(server)
    assert isinstance(await console.ask(Logs(follow=True, limit=0, service="flood")), LogsReply)
    console.pause_reading()
    flood = structlog.get_logger("flood")
    for index in range(800):
        flood.info("flood", service="flood", index=index, payload="x" * 4096)
        if index % 100 == 99:
            await asyncio.sleep(0)
    return console


async def test_a_stuck_follower_is_dropped_after_the_write_timeout(
    server: ControlServer, node: Node, log_buffer: LogBuffer, monkeypatch: pytest.MonkeyPatch
) -> None:
    counter = await node.spawn(Counter, name="counter")
    console = await flood_a_stuck_follower(server, log_buffer, monkeypatch)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE
    while log_buffer.followers:
        assert loop.time() < deadline, "the stuck console was not dropped"
        assert await counter.call(Inc(), timeout=1.0) > 0  # the node answers meanwhile
        await asyncio.sleep(0.01)
    assert not server.connections
    console.resume_reading()
    replies = await console.until_closed()
    assert 0 < len(replies) < 800
    await console.close()


async def test_a_stuck_follower_is_really_disconnected(
    server: ControlServer,
    switches: Switches,
    log_buffer: LogBuffer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """BUG: after the write timeout, _serve's ``finally`` closes the writer and awaits
    ``writer.wait_closed()`` without a deadline; a transport with unsent data closes
    only once it is flushed, so while the console does not read, the session task
    (no longer in ``connections``, so ``stop()`` never cancels it) and its socket and
    buffers stay alive: the console is not disconnected."""
    console = await flood_a_stuck_follower(server, log_buffer, monkeypatch)
    try:
        await wait_until(lambda: not log_buffer.followers, timeout=DEADLINE)
        # still not reading: WRITE_TIMEOUT (0.3 s) has passed, the session should be over
        await wait_until(lambda: switches.sessions_ended >= 1, timeout=1.5)
    finally:
        console.resume_reading()
        await console.until_closed()
        await console.close()


# -- the socket file --------------------------------------------------------------------------


async def test_the_socket_is_private(server: ControlServer) -> None:
    info = server.path.lstat()
    assert stat.S_ISSOCK(info.st_mode)
    assert stat.S_IMODE(info.st_mode) == 0o600


async def test_a_stale_socket_is_replaced(
    node: Node, socket_dir: Path, logs: list[dict[str, Any]]
) -> None:
    path = socket_dir / "control.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as dead:
        dead.bind(str(path))  # left behind, as by a node that was killed
    assert path.exists()
    control = ControlServer(Commands(node, None, lambda: False, lambda: None), COOKIE, path, 4096)
    await control.start()
    try:
        assert any(e["event"] == "stale_control_socket_removed" for e in logs)
        console = await RawConsole.connect(path)
        assert isinstance(await console.hello(), Welcome)
        await console.close()
    finally:
        await control.stop()
    assert not path.exists()


async def test_a_live_socket_refuses_a_second_server(server: ControlServer, node: Node) -> None:
    second = ControlServer(
        Commands(node, None, lambda: False, lambda: None), COOKIE, server.path, 4096
    )
    with pytest.raises(ConfigError, match="another node is running"):
        await second.start()
    console = await connect(server)  # the first one still serves
    await console.close()


async def test_stop_closes_the_sessions_and_removes_the_socket(
    node: Node, log_buffer: LogBuffer, socket_dir: Path
) -> None:
    path = socket_dir / "control.sock"
    control = ControlServer(
        Commands(node, log_buffer, lambda: True, lambda: None), COOKIE, path, 4096
    )
    await control.start()
    idle = await RawConsole.connect(path)
    assert isinstance(await idle.hello(), Welcome)
    following = await RawConsole.connect(path)
    assert isinstance(await following.hello(), Welcome)
    assert isinstance(await following.ask(Logs(follow=True)), LogsReply)
    async with asyncio.timeout(DEADLINE):
        await control.stop()
    assert not path.exists()
    assert not control.connections
    assert not log_buffer.followers
    for console in (idle, following):
        assert all(isinstance(r, LogEvent) for r in await console.until_closed())
        await console.close()


# -- fuzz -------------------------------------------------------------------------------------

SOCKET_FUZZ = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@SOCKET_FUZZ
@given(
    data=st.binary(max_size=300)
    | FUZZ_BODIES.map(frame)
    | st.lists(FUZZ_BODIES.map(frame), min_size=2, max_size=4).map(b"".join),
    authenticated=st.booleans(),
    ending=st.sampled_from(["eof", "close"]),
)
@example(data=frame(INVALID_UTF8_HELLO), authenticated=False, ending="eof")
@example(data=frame(INVALID_UTF8_OP), authenticated=True, ending="eof")
async def test_fuzz_the_socket(
    server: ControlServer,
    switches: Switches,
    loop_errors: list[dict[str, Any]],
    data: bytes,
    authenticated: bool,
    ending: str,
) -> None:
    """Whatever a console sends, the node answers or closes, never fails, and serves on."""
    switches.eval = False  # fuzzed requests must not run code in the node
    loop_errors.clear()  # one example's errors are not the next one's
    ended = switches.sessions_ended
    console = await connect(server, authenticate=authenticated)
    with contextlib.suppress(ConnectionError):
        await console.send_bytes(data)
    if ending == "eof":
        with contextlib.suppress(OSError):
            console.writer.write_eof()
        await console.until_closed()
    await console.close()
    await settled(switches, ended + 1)
    assert [(e["message"], e.get("exception")) for e in loop_errors] == []

    fresh = await connect(server)
    assert isinstance(await fresh.ask(Tree()), TreeReply)
    await fresh.close()
    await settled(switches, ended + 2)
