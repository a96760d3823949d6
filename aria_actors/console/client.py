"""The client side of the control socket: find a node, attach, ask.

A node is found by its name (its default state directory), by a state directory
(the ``node.json`` the node writes there names its socket), or by a socket path;
the cookie comes from the state directory (or ``--cookie-file``). Every wait has
a deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Final

from .._runtime.errors import AriaError, ConfigError
from ..paths import COOKIE_NAME, NODE_FILE_NAME, default_state_dir
from .cookie import read_cookie
from .protocol import (
    DEFAULT_MAX_FRAME,
    PROTOCOL_VERSION,
    Failed,
    Hello,
    LogEvent,
    ProtocolError,
    Reply,
    Request,
    Welcome,
    decode_reply,
    encode_frame,
    read_frame,
)

CONNECT_TIMEOUT: Final = 5.0
REPLY_TIMEOUT: Final = 60.0
MAX_REPLY: Final = 64 * DEFAULT_MAX_FRAME


class ConsoleError(AriaError):
    """The console could not attach, or the node refused a request (``code`` says why)."""

    def __init__(self, code: str, message: str) -> None:
        self.code = code
        super().__init__(message)


class Target:
    """Where a node listens and the cookie that opens it."""

    def __init__(self, socket: Path, cookie: str, node: str | None = None) -> None:
        self.socket = socket
        self.cookie = cookie
        self.node = node


def locate(
    *,
    node: str | None = None,
    state_dir: str | Path | None = None,
    socket: str | Path | None = None,
    cookie_file: str | Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> Target:
    """Find a node: by ``socket`` (+ cookie), ``state_dir``, or ``node`` name (default ``aria``).

    Raises:
        ConfigError: no such node file or socket (is the node running?), or a bad
            cookie file (missing, or open to other users).
    """
    env = os.environ if environ is None else environ
    state = Path(state_dir).expanduser() if state_dir else None
    if state is None and (node or not socket):
        state = default_state_dir(node or "aria", env)
    cookie_path = Path(cookie_file).expanduser() if cookie_file else None
    if socket:
        if cookie_path is None:
            if state is None:
                raise ConfigError("with --socket, give --cookie-file or --state-dir too")
            cookie_path = state / COOKIE_NAME
        return Target(Path(socket).expanduser(), read_cookie(cookie_path), node)
    assert state is not None
    node_file = state / NODE_FILE_NAME
    try:
        document = json.loads(node_file.read_text(encoding="utf-8"))
        socket_path = Path(document["socket"])
    except FileNotFoundError as exc:
        raise ConfigError(
            f"no node is running with state directory {state} ({node_file} is missing); "
            "start one with aria-node, or pass --state-dir/--socket"
        ) from exc
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"{node_file}: unreadable node file: {exc}") from exc
    return Target(
        socket_path,
        read_cookie(cookie_path or state / COOKIE_NAME),
        str(document.get("node") or node or ""),
    )


class ConsoleClient:
    """One attached session. Use :meth:`attach`; close with :meth:`close`."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, welcome: Welcome
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.welcome = welcome

    @classmethod
    async def attach(
        cls, target: Target, timeout: float = CONNECT_TIMEOUT, client: str = "aria-console"
    ) -> ConsoleClient:
        """Connect and authenticate.

        Raises:
            ConsoleError: ``unreachable`` (no node listens there), ``unauthenticated``
                (wrong cookie), ``version`` (another protocol version), ``timeout``.
        """
        try:
            async with asyncio.timeout(timeout):
                reader, writer = await asyncio.open_unix_connection(
                    str(target.socket), limit=MAX_REPLY
                )
        except TimeoutError as exc:
            raise ConsoleError("timeout", f"no answer from {target.socket} in {timeout}s") from exc
        except OSError as exc:
            raise ConsoleError(
                "unreachable",
                f"cannot connect to {target.socket}: {exc.strerror or exc} (is the node running?)",
            ) from exc
        session = cls(reader, writer, Welcome(node="", version=0, pid=0, eval_enabled=False))
        reply = await session.request(
            Hello(version=PROTOCOL_VERSION, cookie=target.cookie, client=client), timeout
        )
        if isinstance(reply, Failed):
            await session.close()
            raise ConsoleError(reply.code, f"the node refused the console: {reply.message}")
        if not isinstance(reply, Welcome):
            await session.close()
            raise ConsoleError("malformed", f"expected a welcome, got {type(reply).__name__}")
        session.welcome = reply
        return session

    async def request(self, request: Request, timeout: float = REPLY_TIMEOUT) -> Reply:
        """Send ``request`` and return the reply (a :class:`Failed` is returned, not raised).

        Raises:
            ConsoleError: ``timeout``, or ``closed`` (the node went away).
        """
        try:
            async with asyncio.timeout(timeout):
                self.writer.write(encode_frame(request))
                await self.writer.drain()
                return await self.receive()
        except TimeoutError as exc:
            raise ConsoleError("timeout", f"no reply within {timeout}s") from exc
        except (ConnectionError, OSError) as exc:
            raise ConsoleError("closed", f"the node closed the connection: {exc}") from exc

    async def receive(self) -> Reply:
        """The next frame from the node.

        Raises:
            ConsoleError: ``closed`` or ``malformed``.
        """
        try:
            body = await read_frame(self.reader, MAX_REPLY)
        except ProtocolError as exc:
            raise ConsoleError(exc.code, str(exc)) from exc
        if body is None:
            raise ConsoleError("closed", "the node closed the connection")
        try:
            return decode_reply(body)
        except ProtocolError as exc:
            raise ConsoleError(exc.code, str(exc)) from exc

    async def events(self) -> AsyncIterator[LogEvent]:
        """Streamed log events after a ``Logs(follow=True)`` reply, until the node stops."""
        while True:
            try:
                reply = await self.receive()
            except ConsoleError as exc:
                if exc.code == "closed":
                    return
                raise
            if isinstance(reply, LogEvent):
                yield reply

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(OSError, TimeoutError):  # the node may have dropped it first
            await asyncio.wait_for(self.writer.wait_closed(), 1.0)
