"""Shared pieces of the console tests: sample messages, a raw socket console, fuzz inputs."""

from __future__ import annotations

import asyncio
import contextlib
import typing
from pathlib import Path
from typing import Any, Final

import msgspec
from hypothesis import strategies as st

from aria_actors import ExitReason
from aria_actors._runtime.introspect import ActorInfo, ProcessRow, TreeNode
from aria_actors._runtime.mailbox import MailboxStatistics
from aria_actors.console.protocol import (
    PROTOCOL_VERSION,
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
    LogEvent,
    Logs,
    LogsReply,
    Metrics,
    MetricsReply,
    Names,
    NamesReply,
    ProtocolError,
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
    Welcome,
    decode_reply,
    encode_frame,
    read_frame,
)

COOKIE: Final = "c0ffee" * 10 + "beef"
DEADLINE: Final = 5.0
"""The longest any single wait in these tests may take."""

SAMPLE_REQUESTS: Final[list[Request]] = [
    Hello(version=PROTOCOL_VERSION, cookie=COOKIE),
    Hello(version=7, cookie="", client="a script ✓"),
    Tree(),
    Ps(),
    Ps(limit=0, service="storage", sort="restarts"),
    Info(name="counter"),
    State(name="aria.17"),
    Call(name="counter", message='{"type": "Inc", "n": 2}', timeout=1.5),
    Cast(name="<actor aria.3 counter>", message='{"type": "Get"}'),
    Restart(name="counter"),
    Stop(name="17"),
    Services(),
    BootOrder(),
    Trace(name="counter", on=True),
    Trace(name="counter", on=False),
    Logs(),
    Logs(limit=0, service="s", actor="counter", level="warning", follow=True),
    Metrics(),
    Shutdown(),
    Eval(code="await asyncio.sleep(0)\nprint('é')"),
    Names(),
]

MAILBOX: Final = MailboxStatistics(depth=3, size=64, waiting_senders=1, handled=12)
INFO: Final = ActorInfo(
    id=17,
    name="counter",
    actor="<actor aria.17 counter>",
    actor_class="tests.runtime.actors.Counter",
    service="storage",
    state="running",
    task="scheduled",
    mailbox=MAILBOX,
    trap_exits=True,
    parent="<actor aria.2 storage>",
    child_id="counter",
    restarts=2,
    links=["<actor aria.2 storage>"],
    monitors=["<actor aria.9 x>"],
    watchers=["<actor aria.10 y>"],
    timers=1,
    traced=True,
    exit_reason=ExitReason(kind="error", error_type="RuntimeError", error_message="boom"),
)
TREE: Final = [
    TreeNode(
        label="storage",
        kind="service",
        actor="<actor aria.2 storage>",
        status="running",
        restarts=0,
        children=[
            TreeNode(
                label="counter",
                kind="worker",
                actor="<actor aria.17 counter>",
                status="running",
                restarts=2,
            ),
            TreeNode(
                label="pool",
                kind="supervisor",
                actor="<actor aria.4 pool>",
                status="exiting",
                restarts=0,
                children=[
                    TreeNode(label="w1", kind="worker", actor=None, status="stopped", restarts=1)
                ],
            ),
        ],
    ),
    TreeNode(label="<actor aria.30 Counter>", kind="worker", actor="<actor aria.30 Counter>",
             status="running", restarts=0),
]  # fmt: skip
ROWS: Final = [
    ProcessRow(
        id=17,
        actor="<actor aria.17 counter>",
        name="counter",
        service="storage",
        task="idle",
        mailbox=3,
        handled=12,
        restarts=2,
    ),
    ProcessRow(
        id=30,
        actor="<actor aria.30 Counter>",
        name=None,
        service="",
        task="running",
        mailbox=0,
        handled=0,
        restarts=0,
    ),
]
EVENT: Final[dict[str, Any]] = {
    "event": "service_started",
    "level": "info",
    "timestamp": "2024-05-01T12:00:00Z",
    "service": "storage",
    "supervisor": "<actor aria.2 storage>",
    "count": 3,
    "ratio": 0.5,
    "flags": [1, "a", None, True],
}

SAMPLE_REPLIES: Final[list[Reply]] = [
    Welcome(node="aria", version=PROTOCOL_VERSION, pid=4242, eval_enabled=False),
    Failed(code="not_found", message="no actor 'x' on node aria (try: ps)"),
    Done(),
    Done(detail="sent to <actor aria.17 counter>"),
    TreeReply(roots=TREE),
    TreeReply(roots=[]),
    PsReply(rows=ROWS, total=5),
    PsReply(rows=[], total=0),
    InfoReply(info=INFO),
    StateReply(actor="<actor aria.17 counter>", fields={"value": "5", "password": "<redacted>"}),
    StateReply(actor="<actor aria.18 empty>", fields={}),
    ValueReply(value='{"a":[1,2]}'),
    ServicesReply(
        services=[
            ServiceRow(
                name="storage",
                restart="permanent",
                requires=[],
                supervisor="<actor aria.2 storage>",
                status="running",
            ),
            ServiceRow(
                name="web",
                restart="transient",
                requires=["storage", "cache"],
                supervisor="<actor aria.5 web>",
                status="stopped",
            ),
        ]
    ),
    BootOrderReply(order=["storage", "web"]),
    BootOrderReply(order=[]),
    LogsReply(events=[EVENT, {"event": "bare"}]),
    LogsReply(events=[]),
    LogEvent(event=EVENT),
    LogEvent(event={"event": "crash", "level": "error", "reason": "a b c"}, dropped=3),
    MetricsReply(text="# HELP aria_actors Live actors.\naria_actors 3.0\n"),
    EvalReply(output="hello\n", value="42"),
    EvalReply(output="", value="", error="Traceback ...\nZeroDivisionError: division by zero\n"),
    NamesReply(names=["counter", "storage"]),
    NamesReply(names=[]),
]


# -- fuzz inputs ----------------------------------------------------------------------------

OPS: Final = sorted(
    {str(type(r).__struct_config__.tag) for r in SAMPLE_REQUESTS} | {"bogus", "welcome", "failed"}
)
FIELDS: Final = sorted(
    {f.name for r in SAMPLE_REQUESTS for f in msgspec.structs.fields(type(r))} | {"op", "extra"}
)
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats()
    | st.text(max_size=20)
    | st.binary(max_size=20)
)
KEYS = st.sampled_from(FIELDS) | st.text(max_size=8) | st.integers(-5, 5)
MSGPACK_VALUES = st.recursive(
    SCALARS,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(KEYS, children, max_size=4),
    max_leaves=12,
)
"""Anything msgpack can encode: dicts, lists, ints, strings, bytes, floats, None, bools."""

REQUEST_LIKE = st.fixed_dictionaries(
    {"op": st.sampled_from(OPS)},
    optional={name: MSGPACK_VALUES for name in FIELDS if name != "op"},
)
"""Maps with a (mostly) known op and fields of any type: the bad_request paths."""


@st.composite
def mutated_bodies(draw: st.DrawFn) -> bytes:
    """A valid request body with bytes flipped, inserted, overwritten or deleted."""
    body = bytearray(msgspec.msgpack.encode(draw(st.sampled_from(SAMPLE_REQUESTS))))
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        kind = draw(st.sampled_from(["flip", "insert", "set", "delete"]))
        if kind == "insert" or not body:
            body.insert(draw(st.integers(0, len(body))), draw(st.integers(0, 255)))
            continue
        index = draw(st.integers(0, len(body) - 1))
        if kind == "flip":
            body[index] ^= 1 << draw(st.integers(0, 7))
        elif kind == "set":
            body[index] = draw(st.integers(0, 255))
        else:
            del body[index]
    return bytes(body)


FUZZ_BODIES = (
    st.binary(max_size=64)
    | MSGPACK_VALUES.map(msgspec.msgpack.encode)
    | REQUEST_LIKE.map(msgspec.msgpack.encode)
    | mutated_bodies()
)

INVALID_UTF8_HELLO: Final = (
    b"\x83\xa2op\xa5hello\xa7version" + bytes([PROTOCOL_VERSION]) + b"\xa6cookie\xa2\xff\xfe"
)
"""A Hello whose cookie is not UTF-8 (one flipped bit in a real session can do this)."""
INVALID_UTF8_OP: Final = b"\x81\xa2op\xa4tr\xffe"
"""A map whose op is not UTF-8."""


def frame(body: bytes) -> bytes:
    return len(body).to_bytes(4, "big") + body


# -- a console on a raw socket ------------------------------------------------------------------


class RawConsole:
    """A console speaking the protocol by hand, to send anything at all."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(cls, path: Path) -> RawConsole:
        async with asyncio.timeout(DEADLINE):
            reader, writer = await asyncio.open_unix_connection(str(path), limit=1 << 24)
        return cls(reader, writer)

    async def send_bytes(self, data: bytes) -> None:
        self.writer.write(data)
        async with asyncio.timeout(DEADLINE):
            await self.writer.drain()

    async def send(self, message: Request | Reply) -> None:
        await self.send_bytes(encode_frame(message))

    async def receive(self, timeout: float = DEADLINE) -> Reply | None:
        """The next reply, or ``None`` when the node closed the connection."""
        async with asyncio.timeout(timeout):
            try:
                body = await read_frame(self.reader, 1 << 24)
            except ConnectionResetError:
                return None  # closed with our unread bytes in its buffer: the same as EOF
        return None if body is None else decode_reply(body)

    async def ask(self, message: Request) -> Reply:
        await self.send(message)
        reply = await self.receive()
        assert reply is not None, f"the node closed the connection instead of answering {message}"
        return reply

    async def hello(self, cookie: str = COOKIE, version: int = PROTOCOL_VERSION) -> Reply:
        return await self.ask(Hello(version=version, cookie=cookie, client="tests"))

    async def until_closed(self, timeout: float = DEADLINE) -> list[Reply]:
        """Every reply until the node closes the connection (a deadline bounds the wait)."""
        replies: list[Reply] = []
        while True:
            try:
                reply = await self.receive(timeout)
            except ProtocolError:
                return replies  # a frame cut short by the close
            if reply is None:
                return replies
            replies.append(reply)

    def pause_reading(self) -> None:
        """Stop reading the socket, as a console that hangs: the node's writes pile up."""
        typing.cast(asyncio.ReadTransport, self.writer.transport).pause_reading()

    def resume_reading(self) -> None:
        typing.cast(asyncio.ReadTransport, self.writer.transport).resume_reading()

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(OSError):
            async with asyncio.timeout(DEADLINE):
                await self.writer.wait_closed()
