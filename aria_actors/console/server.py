"""The node side of the control socket.

One asyncio Unix-socket server on the node's loop. Each connection is served by
its own task: the first frame must be a ``Hello`` with the cookie (compared in
constant time) within :data:`HELLO_TIMEOUT`; requests are then answered one at a
time. Bad frames get an error reply (malformed, unknown request) or, when the
stream cannot be trusted any more (oversized, truncated, unauthenticated), a
closed connection; never an exception in the node. Writes wait at most
:data:`WRITE_TIMEOUT` for a console to read: a stuck console is disconnected,
it cannot hold the node up.

A socket file left by a node that died is detected (nobody answers on it) and
replaced; a socket a live node answers on makes the start fail.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import os
from pathlib import Path
from typing import Final

import structlog

from .._runtime.errors import ConfigError
from .commands import Commands, Session
from .logbuffer import LogFilter
from .protocol import (
    PROTOCOL_VERSION,
    Failed,
    Hello,
    LogEvent,
    Logs,
    LogsReply,
    ProtocolError,
    Reply,
    Welcome,
    decode_request,
    encode_frame,
    read_frame,
)

HELLO_TIMEOUT: Final = 5.0
HELLO_MAX_FRAME: Final = 4096
WRITE_TIMEOUT: Final = 10.0
PROBE_TIMEOUT: Final = 1.0

logger = structlog.get_logger("aria_node")


class ControlServer:
    """Serves the console protocol on ``path`` for one node."""

    def __init__(
        self,
        commands: Commands,
        cookie: str,
        path: Path,
        max_frame: int,
    ) -> None:
        self.commands = commands
        self.cookie = cookie.encode()
        self.path = path
        self.max_frame = max_frame
        self.server: asyncio.AbstractServer | None = None
        self.connections: dict[asyncio.Task[None], asyncio.StreamWriter] = {}
        self.stopping = False
        self.stop_event = asyncio.Event()

    async def start(self) -> None:
        """Bind the socket (mode 0600), replacing a stale one.

        Raises:
            ConfigError: a live node already answers on the socket, or it cannot be bound.
        """
        await self._remove_stale()
        try:
            self.server = await asyncio.start_unix_server(self._serve, path=str(self.path))
        except OSError as exc:
            raise ConfigError(
                f"control socket {self.path}: cannot listen: {exc.strerror or exc}"
            ) from exc
        # The directory is 0700, so nobody else could reach the socket before this.
        os.chmod(self.path, 0o600)

    async def stop(self) -> None:
        """Stop listening, close every console connection, remove the socket file.

        Connections are closed (their sessions then end as if the console left);
        one still running after 2 seconds is cancelled.
        """
        self.stopping = True
        if self.server is not None:
            self.server.close()
            self.server = None
        self.stop_event.set()  # following consoles send what is queued, then end
        if self.connections:
            await asyncio.wait(set(self.connections), timeout=0.5)
        for writer in list(self.connections.values()):
            writer.close()
        if self.connections:
            _, stuck = await asyncio.wait(set(self.connections), timeout=2.0)
            for task in stuck:
                task.cancel()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    async def _remove_stale(self) -> None:
        if not self.path.exists() and not self.path.is_symlink():
            return
        try:
            async with asyncio.timeout(PROBE_TIMEOUT):
                _, writer = await asyncio.open_unix_connection(str(self.path))
        except (ConnectionRefusedError, FileNotFoundError, TimeoutError):
            logger.warning("stale_control_socket_removed", socket=str(self.path))
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
            return
        except OSError as exc:
            raise ConfigError(f"control socket {self.path}: {exc.strerror or exc}") from exc
        writer.close()
        raise ConfigError(
            f"control socket {self.path}: another node is running and answering on it; "
            "stop it first, or give this node another name or node.runtime_dir"
        )

    # -- one connection -------------------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.connections[task] = writer
        try:
            await self._session(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the console went away, or the node is stopping
        except RuntimeError:
            if not self.stopping:  # uvloop: a write to a transport stop() closed
                raise
        except TimeoutError:
            writer.transport.abort()  # it stopped reading: drop what it did not take
        except asyncio.CancelledError:
            if not self.stopping:
                raise
            # stop() cancelled a session that would not end: it is over, quietly
        finally:
            self.connections.pop(task, None)
            writer.close()
            try:
                async with asyncio.timeout(1.0):
                    await writer.wait_closed()
            except (OSError, TimeoutError):
                writer.transport.abort()

    async def _send(self, writer: asyncio.StreamWriter, reply: Reply) -> None:
        try:
            frame = encode_frame(reply)
        except ProtocolError as exc:
            frame = encode_frame(Failed(exc.code, str(exc)))
        writer.write(frame)
        async with asyncio.timeout(WRITE_TIMEOUT):
            await writer.drain()

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not await self._authenticate(reader, writer):
            return
        session = Session(self.commands.node)
        while True:
            try:
                body = await read_frame(reader, self.max_frame)
            except ProtocolError as exc:
                await self._send(writer, Failed(exc.code, str(exc)))
                return  # the stream cannot be resynchronised
            if body is None:
                return
            try:
                request = decode_request(body)
            except ProtocolError as exc:
                await self._send(writer, Failed(exc.code, str(exc)))
                continue
            if isinstance(request, Hello):
                await self._send(writer, Failed("bad_request", "this session is authenticated"))
                continue
            if isinstance(request, Logs) and request.follow:
                await self._follow(request, reader, writer)
                return
            await self._send(writer, await self.commands.handle(request, session))

    async def _authenticate(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        try:
            async with asyncio.timeout(HELLO_TIMEOUT):
                body = await read_frame(reader, HELLO_MAX_FRAME)
        except TimeoutError:
            await self._reject(writer, "unauthenticated", f"no hello within {HELLO_TIMEOUT:g} s")
            return False
        except ProtocolError as exc:
            await self._reject(writer, "unauthenticated", f"the first frame is not a hello: {exc}")
            return False
        if body is None:
            return False
        try:
            hello = decode_request(body)
        except ProtocolError as exc:
            await self._reject(writer, "unauthenticated", f"the first frame is not a hello: {exc}")
            return False
        if not isinstance(hello, Hello):
            await self._reject(writer, "unauthenticated", "the first frame must be a hello")
            return False
        if hello.version != PROTOCOL_VERSION:
            await self._reject(
                writer,
                "version",
                f"protocol version {hello.version} is not spoken here (the node speaks "
                f"{PROTOCOL_VERSION}); use an aria-console of the node's version",
            )
            return False
        if not hmac.compare_digest(hello.cookie.encode(), self.cookie):
            await self._reject(writer, "unauthenticated", "wrong cookie")
            return False
        node = self.commands.node
        await self._send(
            writer,
            Welcome(
                node=node.name,
                version=PROTOCOL_VERSION,
                pid=os.getpid(),
                eval_enabled=self.commands.eval_enabled(),
            ),
        )
        logger.info("console_attached", node=node.name, client=hello.client)
        return True

    @staticmethod
    async def _until_eof(reader: asyncio.StreamReader) -> None:
        """Read and drop whatever a following console sends, until it closes."""
        while await reader.read(65536):
            pass

    async def _reject(self, writer: asyncio.StreamWriter, code: str, message: str) -> None:
        logger.warning("console_rejected", code=code, reason=message)
        with contextlib.suppress(ConnectionError, TimeoutError):
            await self._send(writer, Failed(code, message))

    async def _follow(
        self, request: Logs, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        """Send the recent events, then stream new ones until the console closes."""
        buffer = self.commands.logs
        if buffer is None:
            await self._send(writer, Failed("disabled", "this node keeps no log buffer"))
            return
        wanted = LogFilter(request.service, request.actor, request.level)
        follower = buffer.follow(wanted)
        closed = asyncio.ensure_future(self._until_eof(reader))  # it sends nothing more
        try:
            await self._send(writer, LogsReply(events=buffer.recent(request.limit, wanted)))
            stopping = asyncio.ensure_future(self.stop_event.wait())
            try:
                while True:
                    step = asyncio.ensure_future(follower.next())
                    done, _ = await asyncio.wait(
                        {step, closed, stopping}, return_when=asyncio.FIRST_COMPLETED
                    )
                    if step not in done:
                        step.cancel()
                        if closed in done:
                            return
                        # the node is stopping: send what is queued (its last words), end
                        while not follower.queue.empty():
                            event, dropped = follower.queue.get_nowait(), follower.dropped
                            follower.dropped = 0
                            await self._send(writer, LogEvent(event=event, dropped=dropped))
                        return
                    event, dropped = step.result()
                    await self._send(writer, LogEvent(event=event, dropped=dropped))
            finally:
                stopping.cancel()
        finally:
            closed.cancel()
            buffer.unfollow(follower)
