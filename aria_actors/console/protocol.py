"""The control protocol between a node and ``aria-console``.

Transport: a Unix stream socket (mode 0600 in a 0700 directory). Each frame is a
4-byte big-endian length followed by that many bytes of msgpack: one msgspec
struct of the tagged unions below (the tag is the ``op`` field). A frame longer
than the receiver's limit is refused.

Session::

    client → Hello(version, cookie)        node → Welcome(...)  or  Failed + close
    client → <request>                     node → <reply> or Failed
    client → Logs(follow=True)             node → LogsReply, then LogEvent frames
                                                  until the client closes

The first frame must be a ``Hello`` with the right cookie and protocol version;
anything else gets ``Failed(code="unauthenticated"|"version")`` and the connection
is closed. A malformed frame gets ``Failed(code="malformed")``; an unknown or
ill-typed request ``Failed(code="bad_request")``; neither closes the connection.
``PROTOCOL_VERSION`` changes whenever a request or reply changes incompatibly.
"""

from __future__ import annotations

import asyncio
import struct
from typing import Any, Final, Literal

import msgspec

from .._runtime.introspect import ActorInfo, ProcessRow, TreeNode

PROTOCOL_VERSION: Final = 1
HEADER: Final = struct.Struct(">I")
DEFAULT_MAX_FRAME: Final = 1 << 20


class ProtocolError(Exception):
    """A frame could not be read: too large, truncated, or not a known message."""

    def __init__(self, code: str, message: str) -> None:
        self.code = code
        super().__init__(message)


# ======================================================================================
# Requests
# ======================================================================================


class Hello(msgspec.Struct, frozen=True, tag="hello", tag_field="op"):
    """The first frame of every session: the protocol version and the node's cookie."""

    version: int
    cookie: str
    client: str = "aria-console"


class Tree(msgspec.Struct, frozen=True, tag="tree", tag_field="op"):
    """The supervision trees."""


class Ps(msgspec.Struct, frozen=True, tag="ps", tag_field="op"):
    """Actors sorted by ``sort`` (largest first; ``id``: oldest first), at most ``limit``
    (0: all), optionally only one ``service``'s."""

    limit: int = 100
    service: str = ""
    sort: Literal["mailbox", "handled", "id", "restarts"] = "mailbox"


class Info(msgspec.Struct, frozen=True, tag="info", tag_field="op"):
    """One actor's details. ``name`` is a registered name or an id (``17``, ``aria.17``)."""

    name: str


class State(msgspec.Struct, frozen=True, tag="state", tag_field="op"):
    """One actor's state, as its ``inspect_state`` shows it (secrets redacted)."""

    name: str


class Call(msgspec.Struct, frozen=True, tag="call", tag_field="op"):
    """Call an actor; ``message`` is JSON with the message's tag (``{"type": "Inc", "n": 2}``)."""

    name: str
    message: str
    timeout: float = 5.0


class Cast(msgspec.Struct, frozen=True, tag="cast", tag_field="op"):
    """Cast to an actor; ``message`` as for :class:`Call`."""

    name: str
    message: str


class Restart(msgspec.Struct, frozen=True, tag="restart", tag_field="op"):
    """Restart a supervised actor through its supervisor (stop it, start it again)."""

    name: str


class Stop(msgspec.Struct, frozen=True, tag="stop", tag_field="op"):
    """Stop an actor: through its supervisor (it stays stopped), else a shutdown."""

    name: str


class Services(msgspec.Struct, frozen=True, tag="services", tag_field="op"):
    """The running services."""


class BootOrder(msgspec.Struct, frozen=True, tag="boot_order", tag_field="op"):
    """The cold-boot order of the services the node booted."""


class Trace(msgspec.Struct, frozen=True, tag="trace", tag_field="op"):
    """Log (or stop logging) every message an actor receives and sends."""

    name: str
    on: bool


class Logs(msgspec.Struct, frozen=True, tag="logs", tag_field="op"):
    """Recent log events (newest last), filtered; ``follow`` streams new ones after."""

    limit: int = 50
    service: str = ""
    actor: str = ""
    level: str = ""
    follow: bool = False


class Metrics(msgspec.Struct, frozen=True, tag="metrics", tag_field="op"):
    """The node's Prometheus metrics, in the text exposition format."""


class Shutdown(msgspec.Struct, frozen=True, tag="shutdown", tag_field="op"):
    """Stop the node in reverse boot order (exit status 0)."""


class Eval(msgspec.Struct, frozen=True, tag="eval", tag_field="op"):
    """Run Python in the node's loop (top-level ``await`` allowed); off unless enabled."""

    code: str


class Names(msgspec.Struct, frozen=True, tag="names", tag_field="op"):
    """Registered actor names (for completion)."""


Request = (
    Hello
    | Tree
    | Ps
    | Info
    | State
    | Call
    | Cast
    | Restart
    | Stop
    | Services
    | BootOrder
    | Trace
    | Logs
    | Metrics
    | Shutdown
    | Eval
    | Names
)


# ======================================================================================
# Replies
# ======================================================================================


class Welcome(msgspec.Struct, frozen=True, tag="welcome", tag_field="op"):
    """The node accepted the session."""

    node: str
    version: int
    pid: int
    eval_enabled: bool


class Failed(msgspec.Struct, frozen=True, tag="failed", tag_field="op"):
    """A request failed; ``code`` is machine-readable, ``message`` says what to do.

    Codes: ``unauthenticated``, ``version``, ``malformed``, ``too_large``,
    ``bad_request``, ``not_found``, ``disabled``, ``timeout``, ``failed``.
    """

    code: str
    message: str


class Done(msgspec.Struct, frozen=True, tag="done", tag_field="op"):
    """The request was carried out."""

    detail: str = ""


class TreeReply(msgspec.Struct, frozen=True, tag="tree", tag_field="op"):
    roots: list[TreeNode]


class PsReply(msgspec.Struct, frozen=True, tag="ps", tag_field="op"):
    rows: list[ProcessRow]
    total: int


class InfoReply(msgspec.Struct, frozen=True, tag="info", tag_field="op"):
    info: ActorInfo


class StateReply(msgspec.Struct, frozen=True, tag="state", tag_field="op"):
    actor: str
    fields: dict[str, str]


class ValueReply(msgspec.Struct, frozen=True, tag="value", tag_field="op"):
    """A call's reply, as JSON."""

    value: str


class ServiceRow(msgspec.Struct, frozen=True):
    name: str
    restart: str
    requires: list[str]
    supervisor: str
    status: str


class ServicesReply(msgspec.Struct, frozen=True, tag="services", tag_field="op"):
    services: list[ServiceRow]


class BootOrderReply(msgspec.Struct, frozen=True, tag="boot_order", tag_field="op"):
    order: list[str]


class LogsReply(msgspec.Struct, frozen=True, tag="logs", tag_field="op"):
    events: list[dict[str, Any]]


class LogEvent(msgspec.Struct, frozen=True, tag="log_event", tag_field="op"):
    """One log event streamed to a ``Logs(follow=True)`` session; ``dropped`` counts
    the events lost since the previous one because the console read too slowly."""

    event: dict[str, Any]
    dropped: int = 0


class MetricsReply(msgspec.Struct, frozen=True, tag="metrics", tag_field="op"):
    text: str


class EvalReply(msgspec.Struct, frozen=True, tag="eval", tag_field="op"):
    """What the code printed, the repr of its value (``""`` for statements), its error."""

    output: str
    value: str
    error: str = ""


class NamesReply(msgspec.Struct, frozen=True, tag="names", tag_field="op"):
    names: list[str]


Reply = (
    Welcome
    | Failed
    | Done
    | TreeReply
    | PsReply
    | InfoReply
    | StateReply
    | ValueReply
    | ServicesReply
    | BootOrderReply
    | LogsReply
    | LogEvent
    | MetricsReply
    | EvalReply
    | NamesReply
)


# ======================================================================================
# Framing
# ======================================================================================

ENCODER: Final = msgspec.msgpack.Encoder()
REQUEST_DECODER: Final[msgspec.msgpack.Decoder[Request]] = msgspec.msgpack.Decoder(Request)
REPLY_DECODER: Final[msgspec.msgpack.Decoder[Reply]] = msgspec.msgpack.Decoder(Reply)


def encode_frame(message: Request | Reply) -> bytes:
    """The bytes of one frame: length header and msgpack body.

    Raises:
        ProtocolError: ``failed``: a value msgpack cannot carry (an integer over
            64 bits, a string with lone surrogates).
    """
    try:
        body = ENCODER.encode(message)
    except (OverflowError, UnicodeEncodeError, TypeError) as exc:
        raise ProtocolError("failed", f"the reply cannot be encoded: {exc}") from exc
    return HEADER.pack(len(body)) + body


async def read_frame(reader: asyncio.StreamReader, max_frame: int) -> bytes | None:
    """The body of the next frame, or ``None`` at a clean end of stream.

    Raises:
        ProtocolError: ``too_large`` (the length exceeds ``max_frame``; the caller
            must close, the stream cannot be resynchronised) or ``malformed`` (the
            stream ended inside a frame).
    """
    try:
        header = await reader.readexactly(HEADER.size)
    except asyncio.IncompleteReadError as exc:
        if not exc.partial:
            return None
        raise ProtocolError("malformed", "the stream ended inside a frame header") from exc
    (length,) = HEADER.unpack(header)
    if length > max_frame:
        raise ProtocolError(
            "too_large", f"a frame of {length} bytes is over the limit of {max_frame}"
        )
    try:
        return await reader.readexactly(length)
    except asyncio.IncompleteReadError as exc:
        raise ProtocolError(
            "malformed", f"the stream ended inside a frame ({len(exc.partial)} of {length} bytes)"
        ) from exc


def decode_request(body: bytes) -> Request:
    """Decode a request body.

    Raises:
        ProtocolError: ``malformed`` (not msgpack) or ``bad_request`` (not a known
            request, or a field of the wrong type; the message says which).
    """
    try:
        return REQUEST_DECODER.decode(body)
    except msgspec.ValidationError as exc:
        raise ProtocolError("bad_request", f"not a valid request: {exc}") from exc
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise ProtocolError("malformed", f"not a msgpack frame: {exc}") from exc


def decode_reply(body: bytes) -> Reply:
    """Decode a reply body.

    Raises:
        ProtocolError: as :func:`decode_request`.
    """
    try:
        return REPLY_DECODER.decode(body)
    except msgspec.ValidationError as exc:
        raise ProtocolError("bad_request", f"not a valid reply: {exc}") from exc
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise ProtocolError("malformed", f"not a msgpack frame: {exc}") from exc
