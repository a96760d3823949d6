"""Helpers of the store tests: chunks, a chunk-server in a thread, raw HTTP peers."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from aria_actors.services.storage.chunks import Compression, compress
from aria_actors.services.storage.ids import ChunkId
from aria_actors.services.storage.stores.base import Store
from aria_actors.services.storage.stores.server import ChunkServer

LOOPBACK = "127.0.0.1"


def chunk(
    data: bytes | None = None, *, size: int = 4096, compression: Compression = "zstd"
) -> tuple[ChunkId, bytes, bytes]:
    """(id, stored bytes, bytes) of a chunk of ``data`` (random bytes by default)."""
    if data is None:
        data = os.urandom(size)
    return ChunkId.of(data), compress(data, compression=compression), data


def wait_until(predicate: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    """Poll until true; a deadline only, never a speed assertion."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not after {timeout:.0f} s")
        time.sleep(0.01)


class ThreadedChunkServer:
    """A :class:`ChunkServer` on an event loop of its own thread, for blocking tests."""

    def __init__(self, store: Store, **options: Any) -> None:
        self.store = store
        self.options = options
        self.server: ChunkServer | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return self.server.url

    @property
    def requests(self) -> int:
        assert self.server is not None
        return self.server.requests

    @property
    def active(self) -> int:
        """Requests being handled now."""
        assert self.server is not None
        return self.server.active

    @property
    def idle(self) -> bool:
        """No connection open, no request being handled."""
        assert self.server is not None
        return self.server.idle

    def start(self) -> ThreadedChunkServer:
        loop = asyncio.new_event_loop()
        started = threading.Event()
        failure: list[BaseException] = []

        async def boot() -> None:
            try:
                self.server = ChunkServer(self.store, **self.options)
                await self.server.start()
            except BaseException as exc:
                failure.append(exc)
            finally:
                started.set()

        def run() -> None:
            asyncio.set_event_loop(loop)
            booting = loop.create_task(boot())
            loop.run_forever()
            del booting
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

        self._loop = loop
        self._thread = threading.Thread(target=run, name="chunk-server", daemon=True)
        self._thread.start()
        started.wait(30)
        if failure:
            self.stop()
            raise failure[0]
        return self

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        if self.server is not None and loop.is_running():
            asyncio.run_coroutine_threadsafe(self.server.stop(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(30)
        self._loop = self._thread = None

    def __enter__(self) -> ThreadedChunkServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def raw_exchange(port: int, request: bytes, *, timeout: float = 10.0) -> bytes:
    """Send raw bytes and read the answer until the server closes the connection
    (send ``Connection: close``, or something it answers by closing)."""
    with socket.create_connection((LOOPBACK, port), timeout=timeout) as sock:
        sock.sendall(request)
        parts = []
        with contextlib.suppress(ConnectionResetError):
            while part := sock.recv(65536):
                parts.append(part)
    return b"".join(parts)


def status_of(answer: bytes) -> int:
    """The status code of a raw HTTP answer's first line."""
    line = answer.split(b"\r\n", 1)[0]
    assert line.startswith(b"HTTP/1."), answer[:200]
    return int(line.split()[1])


@dataclass
class RawServer:
    """A loopback TCP server whose connections ``handle(sock, request_bytes)`` answers.

    ``handle`` gets each connection and the bytes of the first request's head; what
    it does with the socket (garbage, a cut answer, silence) is the test's business.
    """

    handle: Callable[[socket.socket, bytes], None]
    """Answers one connection's first request; the connection is closed afterwards."""
    port: int = 0
    connections: int = 0
    _sock: socket.socket | None = None
    _thread: threading.Thread | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _open: list[socket.socket] = field(default_factory=list)

    def __enter__(self) -> RawServer:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((LOOPBACK, 0))
        sock.listen(16)
        sock.settimeout(0.1)
        self._sock = sock
        self.port = sock.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, name="raw-server", daemon=True)
        self._thread.start()
        return self

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}/"

    def _serve(self) -> None:
        assert self._sock is not None
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            self._open.append(conn)
            threading.Thread(target=self._one, args=(conn,), daemon=True).start()

    def _one(self, conn: socket.socket) -> None:
        conn.settimeout(10)
        head = b""
        with contextlib.suppress(OSError):
            while b"\r\n\r\n" not in head:
                part = conn.recv(65536)
                if not part:
                    break
                head += part
            self.handle(conn, head)
            conn.close()

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
        if self._sock is not None:
            self._sock.close()
        for conn in self._open:
            with contextlib.suppress(OSError):
                conn.close()


def answer(status: int, body: bytes = b"", extra: str = "") -> bytes:
    reason = {200: "OK", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found"}.get(
        status, "Whatever"
    )
    head = (
        f"HTTP/1.1 {status} {reason}\r\nContent-Length: {len(body)}\r\n"
        f"Connection: close\r\n{extra}\r\n"
    )
    return head.encode() + body


def ids_of(store: Store) -> set[ChunkId]:
    return set(store.ids())


def threads(count: int, work: Callable[[int], None]) -> None:
    """Run ``work(i)`` in ``count`` threads started together; re-raise the first failure."""
    barrier = threading.Barrier(count)
    failures: list[BaseException] = []

    def run(i: int) -> None:
        try:
            barrier.wait(30)
            work(i)
        except BaseException as exc:
            failures.append(exc)

    pool = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for t in pool:
        t.start()
    for t in pool:
        t.join(120)
    if failures:
        raise failures[0]


def iter_lines(data: bytes) -> Iterator[bytes]:
    yield from (line for line in data.split(b"\n") if line)
