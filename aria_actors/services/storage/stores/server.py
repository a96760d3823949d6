"""The chunk-server: one :class:`~.base.Store` served over HTTP in desync's layout.

::

    server = await serve(LocalStore("/srv/store"), "0.0.0.0", 8080, authorize=hook)
    ...                                    # http://host:8080/<xxxx>/<id>.cacnk
    await server.stop()

==============================  ===========================================================
request                         answer
==============================  ===========================================================
``GET /xxxx/<id>.cacnk``        200 and the stored bytes; 404 when the store lacks it
``HEAD /xxxx/<id>.cacnk``       200 or 404
``PUT /xxxx/<id>.cacnk``        200 once stored. The body (at most ``max_body`` bytes, else
                                413) must decompress and hash to ``<id>`` with the server's
                                digest, else 400 and nothing is stored
``DELETE /xxxx/<id>.cacnk``     204, whether or not it was there
``GET /_ids``                   200 and every id, one 64-hex line each (aria's extension;
                                off with ``listing=False``)
anything else                   400 (a path that is not exactly four lower-case hex digits,
                                ``/``, the 64 hex digits of an id starting with them and
                                ``.cacnk``; no query, no encoding, no ``..``), 405 for
                                another method
==============================  ===========================================================

A read-only server (``writable=False``, the default when the store is read-only)
answers ``PUT`` and ``DELETE`` with 405. With an ``authorize`` hook, every request is
first put to it: ``await authorize(token, method, chunk_id)`` where ``token`` is the
bearer token of the ``Authorization`` header (``None`` without one) and ``chunk_id``
is ``None`` for the listing. The hook raises to refuse: the answer is 401 when there
was no token, 403 when there was one; :class:`AuthUnavailable` (the hook could not
decide) answers 503. :func:`aria_auth_authorizer` binds the hook to aria_auth's
tokens, :func:`static_token_authorizer` to one shared secret (like desync's
``DESYNC_HTTP_AUTH``).

The HTTP side is aiohttp's low-level server (keep-alive, HTTP/1.1 parsing, 400 for a
malformed request); store calls and chunk checks run in worker threads
(``workers`` at a time), never on the event loop.
"""

from __future__ import annotations

import hmac
import itertools
import re
import ssl
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Final, TypeVar

import anyio
import anyio.abc
import anyio.to_thread
import structlog
from aiohttp import web

from ..chunks import CHUNK_SIZE_LIMIT, open_chunk
from ..errors import ChunkMissing, CorruptChunk, StoreError, StoreReadOnly
from ..ids import ChunkId, hasher
from .base import Store
from .http import LIST_NAME

if TYPE_CHECKING:
    from ...auth.client import Auth

logger = structlog.get_logger("aria_storage.chunk_server")

T = TypeVar("T")

Authorizer = Callable[[str | None, str, ChunkId | None], Awaitable[None]]
"""``await authorize(bearer_token_or_None, method, chunk_id_or_None)``; raises to refuse."""

#: The default cap of a ``PUT`` body (a stored chunk).
DEFAULT_MAX_BODY: Final = 16 * 1024 * 1024

_CHUNK_PATH: Final = re.compile(r"/([0-9a-f]{4})/([0-9a-f]{64})\.cacnk")
_LIST_PATH: Final = "/" + LIST_NAME
_READS: Final = frozenset({"GET", "HEAD"})
_WRITES: Final = frozenset({"PUT", "DELETE"})
_LIST_BATCH: Final = 4096


class AuthUnavailable(Exception):
    """Raised by an authorizer that cannot decide now (its service is down): 503."""


class _Answer(Exception):
    """An early answer: a status and a one-line text."""

    def __init__(self, status: int, text: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(text)
        self.status = status
        self.text = text
        self.headers = headers or {}


def _text(status: int, text: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(status=status, text=text + "\n", headers=headers)


def _bearer(header: str | None) -> str | None:
    """The token of ``Authorization: Bearer <token>``; ``None`` without the header."""
    if header is None:
        return None
    scheme, _, token = header.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise _Answer(
            401, "unauthorized: a bearer token is expected", {"WWW-Authenticate": "Bearer"}
        )
    return token


class ChunkServer:
    """An HTTP server for ``store``; see the module documentation.

    ``port=0`` picks a free port (read :attr:`port` after :meth:`start`). ``digest``
    is the id digest uploads are checked with; ``max_body`` caps an upload,
    ``max_chunk_size`` what it may decompress to, ``uploads`` how many uploads are
    read and checked at once (each holds its body in memory). ``ssl_context`` serves
    HTTPS; ``workers`` bounds the threads running store calls and checks.
    """

    def __init__(
        self,
        store: Store,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        writable: bool | None = None,
        digest: str = "sha512-256",
        authorize: Authorizer | None = None,
        max_body: int = DEFAULT_MAX_BODY,
        max_chunk_size: int = CHUNK_SIZE_LIMIT,
        listing: bool = True,
        ssl_context: ssl.SSLContext | None = None,
        workers: int = 16,
        uploads: int = 16,
        keepalive_timeout: float = 75.0,
        shutdown_timeout: float = 5.0,
    ) -> None:
        hasher(digest)  # UnsupportedFeature now rather than on the first upload
        self.store = store
        self.host = host
        self.writable = store.writable if writable is None else writable
        self.digest = digest
        self.authorize = authorize
        self.max_body = max_body
        self.max_chunk_size = max_chunk_size
        self.listing = listing
        self.ssl_context = ssl_context
        self.workers = workers
        self.uploads = uploads
        self.keepalive_timeout = keepalive_timeout
        self.shutdown_timeout = shutdown_timeout
        self._port = port
        self._runner: web.ServerRunner | None = None
        self._limiter: anyio.CapacityLimiter | None = None
        self._uploading: anyio.Semaphore | None = None
        self.requests = 0
        """How many requests have been answered (or abandoned) since the start."""
        self.active = 0
        """How many requests are being handled now."""

    # -- life cycle ------------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The bound port (after :meth:`start`)."""
        return self._port

    @property
    def url(self) -> str:
        """The store's URL, for :class:`~.http.HttpStore` (``http://host:port/``)."""
        scheme = "https" if self.ssl_context is not None else "http"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{host}:{self._port}/"

    @property
    def running(self) -> bool:
        return self._runner is not None

    @property
    def connections(self) -> int:
        """How many client connections are open now."""
        runner = self._runner
        if runner is None or runner.server is None:
            return 0
        return len(runner.server.connections)

    @property
    def idle(self) -> bool:
        """No connection open and no request being handled."""
        return self.active == 0 and self.connections == 0

    async def start(self) -> None:
        """Bind and start answering; returns once the port is bound."""
        if self._runner is not None:
            return
        self._limiter = anyio.CapacityLimiter(self.workers)
        self._uploading = anyio.Semaphore(self.uploads)
        server = web.Server(
            self._handle,
            access_log=None,
            keepalive_timeout=self.keepalive_timeout,
            auto_decompress=False,
        )
        runner = web.ServerRunner(server, shutdown_timeout=self.shutdown_timeout)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self._port, ssl_context=self.ssl_context)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self._port = int(runner.addresses[0][1])
        logger.info("chunk_server_started", url=self.url, store=self.store.location)

    async def stop(self) -> None:
        """Stop listening, let running requests finish (``shutdown_timeout``), close."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
            logger.info("chunk_server_stopped", url=self.url)

    async def run_forever(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Start (if needed) and serve until cancelled; stops on the way out.

        ``await task_group.start(server.run_forever)`` returns once the port is bound.
        """
        await self.start()
        task_status.started()
        try:
            await anyio.sleep_forever()
        finally:
            with anyio.CancelScope(shield=True):
                await self.stop()

    async def __aenter__(self) -> ChunkServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- requests --------------------------------------------------------------------------

    async def _thread(self, func: Callable[[], T]) -> T:
        return await anyio.to_thread.run_sync(func, limiter=self._limiter)

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        self.active += 1
        try:
            return await self._dispatch(request)
        except _Answer as answer:
            return _text(answer.status, answer.text, answer.headers)
        except Exception:
            logger.exception(
                "chunk_server_error", method=request.method, path=request.raw_path[:200]
            )
            return _text(500, "internal server error")
        finally:
            self.active -= 1
            self.requests += 1

    async def _dispatch(self, request: web.BaseRequest) -> web.StreamResponse:
        method = request.method
        raw = request.raw_path
        if raw == _LIST_PATH and self.listing:
            if method != "GET":
                raise _Answer(405, "only GET lists chunks", {"Allow": "GET"})
            await self._check(request, method, None)
            return await self._list(request)
        match = _CHUNK_PATH.fullmatch(raw)
        if match is None or not match.group(2).startswith(match.group(1)):
            raise _Answer(400, "bad request: expected /<xxxx>/<64 hex digits>.cacnk")
        chunk_id = ChunkId(bytes.fromhex(match.group(2)))
        allowed = "GET, HEAD, PUT, DELETE" if self.writable else "GET, HEAD"
        if method not in _READS and method not in _WRITES:
            raise _Answer(405, f"method {method} is not allowed", {"Allow": allowed})
        if method in _WRITES and not self.writable:
            raise _Answer(405, "this chunk store is read-only", {"Allow": allowed})
        await self._check(request, method, chunk_id)
        if method == "GET":
            return await self._get(chunk_id)
        if method == "HEAD":
            return await self._head(chunk_id)
        if method == "PUT":
            return await self._put(request, chunk_id)
        return await self._remove(chunk_id)

    async def _check(self, request: web.BaseRequest, method: str, chunk_id: ChunkId | None) -> None:
        if self.authorize is None:
            return
        token = _bearer(request.headers.get("Authorization"))
        try:
            await self.authorize(token, method, chunk_id)
        except AuthUnavailable as exc:
            logger.warning("chunk_server_auth_unavailable", error=str(exc))
            raise _Answer(503, f"cannot check the token now: {exc}", {"Retry-After": "5"}) from None
        except Exception as exc:
            if token is None:
                raise _Answer(401, f"unauthorized: {exc}", {"WWW-Authenticate": "Bearer"}) from None
            raise _Answer(403, f"forbidden: {exc}") from None

    def _store_failed(self, what: str, chunk_id: ChunkId | None, exc: StoreError) -> _Answer:
        logger.error("chunk_server_store_error", op=what, chunk=str(chunk_id), error=str(exc))
        return _Answer(500, f"the store failed to {what} the chunk")

    async def _get(self, chunk_id: ChunkId) -> web.StreamResponse:
        try:
            blob = await self._thread(lambda: self.store.get(chunk_id))
        except ChunkMissing:
            raise _Answer(404, f"chunk {chunk_id} is not here") from None
        except StoreError as exc:
            raise self._store_failed("read", chunk_id, exc) from None
        return web.Response(body=blob, content_type="application/octet-stream")

    async def _head(self, chunk_id: ChunkId) -> web.StreamResponse:
        try:
            present = await self._thread(lambda: self.store.has(chunk_id))
        except StoreError as exc:
            raise self._store_failed("look up", chunk_id, exc) from None
        return web.Response(status=200 if present else 404)

    async def _body(self, request: web.BaseRequest) -> bytes:
        length = request.content_length
        if length is not None and length > self.max_body:
            raise _Answer(413, f"a chunk of {length} bytes is over the {self.max_body}-byte limit")
        expect = request.headers.get("Expect")
        if expect is not None:
            if expect.lower() != "100-continue":
                raise _Answer(417, f"cannot meet Expect: {expect[:60]}")
            if request.version >= (1, 1):
                await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        body = bytearray()
        while True:
            try:
                part = await request.content.readany()
            except Exception as exc:  # the client went away mid-body: nothing is stored
                raise _Answer(400, f"the upload broke off: {exc}") from None
            if not part:
                break
            body += part
            if len(body) > self.max_body:
                raise _Answer(413, f"a chunk over the {self.max_body}-byte limit")
        if length is not None and len(body) != length:
            raise _Answer(400, "the body is shorter than its Content-Length")
        return bytes(body)

    async def _put(self, request: web.BaseRequest, chunk_id: ChunkId) -> web.StreamResponse:
        assert self._uploading is not None
        async with self._uploading:  # at most ``uploads`` bodies in memory at once
            return await self._store_upload(request, chunk_id)

    async def _store_upload(
        self, request: web.BaseRequest, chunk_id: ChunkId
    ) -> web.StreamResponse:
        blob = await self._body(request)

        def verify() -> None:
            open_chunk(blob, chunk_id, self.digest, max_size=self.max_chunk_size)

        try:
            await self._thread(verify)
        except CorruptChunk as exc:
            logger.warning("chunk_server_corrupt_upload", chunk=str(chunk_id), error=str(exc))
            raise _Answer(400, f"refused: {exc}") from None
        try:
            await self._thread(lambda: self.store.put(chunk_id, blob))
        except StoreReadOnly:
            raise _Answer(405, "this chunk store is read-only", {"Allow": "GET, HEAD"}) from None
        except StoreError as exc:
            raise self._store_failed("store", chunk_id, exc) from None
        return _text(200, "stored")

    async def _remove(self, chunk_id: ChunkId) -> web.StreamResponse:
        try:
            await self._thread(lambda: self.store.remove(chunk_id))
        except StoreReadOnly:
            raise _Answer(405, "this chunk store is read-only", {"Allow": "GET, HEAD"}) from None
        except StoreError as exc:
            raise self._store_failed("remove", chunk_id, exc) from None
        return web.Response(status=204)

    async def _list(self, request: web.BaseRequest) -> web.StreamResponse:
        ids = self.store.ids()

        def batch() -> list[ChunkId]:
            return list(itertools.islice(ids, _LIST_BATCH))

        try:
            first = await self._thread(batch)
        except StoreError as exc:
            raise self._store_failed("list", None, exc) from None
        response = web.StreamResponse(headers={"Content-Type": "text/plain; charset=us-ascii"})
        await response.prepare(request)
        part: list[ChunkId] = first
        try:
            while part:
                await response.write("".join(f"{i.hex()}\n" for i in part).encode("ascii"))
                part = await self._thread(batch)
        except Exception as exc:
            # too late to change the status: break the connection, so that the client
            # sees a listing cut short (no last chunk of the chunked encoding)
            logger.warning("chunk_server_listing_broken", error=str(exc))
            if request.transport is not None:
                request.transport.abort()
            return response
        finally:
            close = getattr(ids, "close", None)
            if close is not None:
                close()
        await response.write_eof()
        return response


async def serve(
    store: Store,
    host: str = "127.0.0.1",
    port: int = 0,
    **options: Any,
) -> ChunkServer:
    """Start a :class:`ChunkServer` for ``store``; stop it with ``await server.stop()``.

    ``options`` are :class:`ChunkServer`'s (``writable``, ``digest``, ``authorize``,
    ``max_body``, ``listing``, ``ssl_context``...).
    """
    server = ChunkServer(store, host=host, port=port, **options)
    await server.start()
    return server


def static_token_authorizer(token: str) -> Authorizer:
    """A hook that admits requests bearing ``token`` (compared in constant time)."""
    expected = token.encode()

    async def authorize(given: str | None, method: str, chunk_id: ChunkId | None) -> None:
        if given is None:
            raise PermissionError("a token is needed")
        if not hmac.compare_digest(given.encode(), expected):
            raise PermissionError("the token is not valid here")

    return authorize


def aria_auth_authorizer(
    auth: Auth,
    read_permission: str = "storage:read",
    write_permission: str = "storage:write",
    *,
    service: str = "aria_storage",
    resource: Callable[[str, ChunkId | None], str] | None = None,
) -> Authorizer:
    """A hook that verifies aria_auth tokens: reads (GET, HEAD, the listing) need
    ``read_permission``, writes (PUT, DELETE) ``write_permission``, for ``service``.

    ``resource(method, chunk_id)``, when given, names the ``storage`` resource the
    request touches (matched by ``scope-storage`` caveats). aria_auth's refusals
    (expired, revoked, forged token, missing permission) answer 401/403; aria_auth,
    aria_data or aria_security being down answers 503.
    """
    from ...._runtime.errors import NoProcess
    from ...data.api import DatabaseError
    from ...security.api import SecretsError

    async def authorize(token: str | None, method: str, chunk_id: ChunkId | None) -> None:
        if token is None:
            raise PermissionError("a token is needed")
        needed = write_permission if method in _WRITES else read_permission
        resources = {"storage": resource(method, chunk_id)} if resource is not None else None
        try:
            await auth.verify(token, service=service, permissions={needed}, resources=resources)
        except (DatabaseError, SecretsError, NoProcess) as exc:
            raise AuthUnavailable(str(exc)) from exc

    return authorize
