"""The chunk-server (strict paths, verified uploads, size caps, auth hook, listing) and the
HTTP store's client (errors, retries, broken servers, TLS), on loopback."""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import anyio
import anyio.to_thread
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from aria_actors.services.storage.chunks import compress
from aria_actors.services.storage.errors import ChunkMissing, StoreError, StoreReadOnly
from aria_actors.services.storage.ids import ChunkId
from aria_actors.services.storage.stores.base import Store
from aria_actors.services.storage.stores.http import HttpStore
from aria_actors.services.storage.stores.local import LocalStore
from aria_actors.services.storage.stores.server import (
    AuthUnavailable,
    ChunkServer,
    serve,
    static_token_authorizer,
)
from tests.servers._util import free_port

from .stores_support import (
    LOOPBACK,
    RawServer,
    ThreadedChunkServer,
    answer,
    chunk,
    raw_exchange,
    status_of,
    wait_until,
)


@pytest.fixture
def backend(tmp_path: Path) -> LocalStore:
    return LocalStore(tmp_path / "served")


@pytest.fixture
def server(backend: LocalStore) -> Iterator[ThreadedChunkServer]:
    with ThreadedChunkServer(backend, max_body=1024 * 1024) as running:
        yield running


def port_of(server: ThreadedChunkServer) -> int:
    assert server.server is not None
    return server.server.port


def request(method: str, target: str, body: bytes = b"", headers: str = "") -> bytes:
    head = f"{method} {target} HTTP/1.1\r\nHost: {LOOPBACK}\r\nConnection: close\r\n"
    if body or method == "PUT":
        head += f"Content-Length: {len(body)}\r\n"
    return (head + headers + "\r\n").encode() + body


def target_of(chunk_id: ChunkId) -> str:
    h = chunk_id.hex()
    return f"/{h[:4]}/{h}.cacnk"


# -- the server: paths ------------------------------------------------------------------------


def _bad_targets() -> list[str]:
    h = ChunkId.of(b"bad paths").hex()
    p = h[:4]
    other = "0000" if not h.startswith("0000") else "1111"
    return [
        "/../x",
        "/%2e%2e/x",
        "/%2E%2E/%2e%2e/etc/passwd",
        f"/{p}/../{p}/{h}.cacnk",
        f"/{p}/%2e%2e/{h}.cacnk",
        f"/./{p}/{h}.cacnk",
        f"//{p}/{h}.cacnk",
        f"/{p}/{h}.cacnk/",
        f"/{p}%2f{h}.cacnk",
        f"/{p}/{h}.cacnk%00",
        f"/{p}/{h}.cacnk?x=1",
        f"/{p}/{h}.cacnk#frag",
        f"/{p.upper()}/{h.upper()}.cacnk",
        f"/{other}/{h}.cacnk",
        f"/{p}/{h}",
        f"/{p}/{h}.CACNK",
        f"/{p}/{h[:-1]}.cacnk",
        f"/{p}/{h}0.cacnk",
        f"/{p}/{h[:-2]}zz.cacnk",
        f"/{p}/x/{h}.cacnk",
        f"/store/{p}/{h}.cacnk",
        f"http://{LOOPBACK}/{p}/{h}.cacnk",
        "/",
        "/_ids/../x",
        "/index.html",
    ]


@pytest.mark.parametrize("target", _bad_targets())
def test_anything_but_a_chunk_path_is_400(server: ThreadedChunkServer, target: str) -> None:
    assert status_of(raw_exchange(port_of(server), request("GET", target))) == 400


@pytest.mark.parametrize("target", ["/../x", "/%2e%2e/x", "/abcd/../abcd/x.cacnk"])
def test_a_put_to_a_bad_path_stores_nothing(
    server: ThreadedChunkServer, backend: LocalStore, target: str
) -> None:
    _, blob, _ = chunk()
    assert status_of(raw_exchange(port_of(server), request("PUT", target, blob))) == 400
    assert list(backend.ids()) == []
    assert [p.name for p in backend.root.iterdir()] == []


@pytest.mark.parametrize(
    "raw",
    [
        b"GARBAGE\r\n\r\n",
        b"GET /x HTTP/9.9\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
        b"GET / HTTP/1.1\r\nBad Header Line\r\n\r\n",
        b"\x00\x01\x02\x03\r\n\r\n",
    ],
)
def test_a_malformed_request_is_400(server: ThreadedChunkServer, raw: bytes) -> None:
    assert status_of(raw_exchange(port_of(server), raw)) == 400


def test_other_methods_are_405(server: ThreadedChunkServer) -> None:
    chunk_id, _, _ = chunk()
    reply = raw_exchange(port_of(server), request("POST", target_of(chunk_id), b"x"))
    assert status_of(reply) == 405
    assert b"Allow: GET, HEAD, PUT, DELETE" in reply


# -- the server: uploads ------------------------------------------------------------------------


def test_get_head_put_delete(server: ThreadedChunkServer, backend: LocalStore) -> None:
    chunk_id, blob, _ = chunk()
    port = port_of(server)
    assert status_of(raw_exchange(port, request("GET", target_of(chunk_id)))) == 404
    assert status_of(raw_exchange(port, request("HEAD", target_of(chunk_id)))) == 404
    assert status_of(raw_exchange(port, request("PUT", target_of(chunk_id), blob))) == 200
    assert backend.get(chunk_id) == blob
    reply = raw_exchange(port, request("GET", target_of(chunk_id)))
    assert status_of(reply) == 200
    assert reply.endswith(b"\r\n\r\n" + blob)
    assert status_of(raw_exchange(port, request("HEAD", target_of(chunk_id)))) == 200
    assert status_of(raw_exchange(port, request("DELETE", target_of(chunk_id)))) == 204
    assert not backend.has(chunk_id)


@pytest.mark.parametrize(
    "body",
    [
        b"not a chunk at all",
        b"",
        compress(b"some other chunk's bytes"),  # a fine chunk, under the wrong id
        compress(b"x" * 100_000)[:-10],  # truncated
        b"\x28\xb5\x2f\xfd" + b"\xff" * 64,  # zstd magic, garbage after
    ],
    ids=["garbage", "empty", "wrong-id", "truncated", "bad-zstd"],
)
def test_a_corrupt_upload_is_refused_and_never_stored(
    server: ThreadedChunkServer, backend: LocalStore, body: bytes
) -> None:
    chunk_id, _, _ = chunk(b"x" * 100_000)
    reply = raw_exchange(port_of(server), request("PUT", target_of(chunk_id), body))
    assert status_of(reply) == 400
    assert chunk_id.hex().encode() in reply
    assert not backend.has(chunk_id)
    assert list(backend.root.rglob("*")) == [] or all(p.is_dir() for p in backend.root.rglob("*"))


def test_an_upload_is_checked_with_the_servers_digest(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "b3")
    data = b"blake3 chunk" * 100
    good = ChunkId.of(data, "blake3")
    with ThreadedChunkServer(store, digest="blake3") as running:
        client = HttpStore(running.url, retries=0)
        client.put(good, compress(data))
        with pytest.raises(StoreError, match="HTTP 400"):
            client.put(ChunkId.of(data), compress(data))  # a sha512-256 id
        client.close()
    assert list(store.ids()) == [good]


def test_an_oversize_upload_is_413_before_its_body(server: ThreadedChunkServer) -> None:
    chunk_id, _, _ = chunk()
    head = (
        f"PUT {target_of(chunk_id)} HTTP/1.1\r\nHost: {LOOPBACK}\r\n"
        f"Content-Length: {2 * 1024 * 1024}\r\n\r\n"
    ).encode()
    with socket.create_connection((LOOPBACK, port_of(server)), timeout=10) as sock:
        sock.sendall(head)  # and no body: the answer must come anyway
        reply = sock.recv(65536)
    assert status_of(reply) == 413


def test_an_oversize_chunked_upload_is_413(
    server: ThreadedChunkServer, backend: LocalStore
) -> None:
    chunk_id, _, _ = chunk()
    piece = b"z" * 65536
    body = b"".join(b"%x\r\n%s\r\n" % (len(piece), piece) for _ in range(20)) + b"0\r\n\r\n"
    head = (
        f"PUT {target_of(chunk_id)} HTTP/1.1\r\nHost: {LOOPBACK}\r\n"
        "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    ).encode()
    assert status_of(raw_exchange(port_of(server), head + body)) == 413
    assert not backend.has(chunk_id)


def test_a_client_oversize_put_gets_a_clear_error(server: ThreadedChunkServer) -> None:
    chunk_id, blob, _ = chunk(size=2 * 1024 * 1024)
    client = HttpStore(server.url, retries=0)
    with pytest.raises(StoreError, match=r"too large \(HTTP 413\)"):
        client.put(chunk_id, blob)
    client.close()


def test_a_cut_upload_stores_nothing(server: ThreadedChunkServer, backend: LocalStore) -> None:
    chunk_id, blob, _ = chunk(size=200_000)
    head = (
        f"PUT {target_of(chunk_id)} HTTP/1.1\r\nHost: {LOOPBACK}\r\n"
        f"Content-Length: {len(blob)}\r\n\r\n"
    ).encode()
    with socket.create_connection((LOOPBACK, port_of(server)), timeout=10) as sock:
        sock.sendall(head + blob[:1000])
        wait_until(lambda: server.active > 0, "the server to read the upload")
    wait_until(lambda: server.idle, "the server to give the upload up")
    assert not backend.has(chunk_id)
    assert [p for p in backend.root.rglob("*") if p.is_file()] == []


def test_expect_100_continue(server: ThreadedChunkServer, backend: LocalStore) -> None:
    chunk_id, blob, _ = chunk()
    head = (
        f"PUT {target_of(chunk_id)} HTTP/1.1\r\nHost: {LOOPBACK}\r\n"
        f"Content-Length: {len(blob)}\r\nExpect: 100-continue\r\n\r\n"
    ).encode()
    with socket.create_connection((LOOPBACK, port_of(server)), timeout=10) as sock:
        sock.sendall(head)
        interim = sock.recv(1024)
        assert interim.startswith(b"HTTP/1.1 100")
        sock.sendall(blob)
        final = sock.recv(1024)
    assert status_of(final) == 200
    assert backend.get(chunk_id) == blob


def test_keep_alive_serves_several_requests_on_one_connection(
    server: ThreadedChunkServer, backend: LocalStore
) -> None:
    made = [chunk() for _ in range(3)]
    for chunk_id, blob, _ in made:
        backend.put(chunk_id, blob)
    with socket.create_connection((LOOPBACK, port_of(server)), timeout=10) as sock:
        for chunk_id, blob, _ in made:
            sock.sendall(f"GET {target_of(chunk_id)} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            reply = b""
            while not reply.endswith(blob):
                part = sock.recv(65536)
                assert part, "the server closed a keep-alive connection"
                reply += part
            assert status_of(reply) == 200
    assert server.requests >= 3


def test_concurrent_clients(server: ThreadedChunkServer, backend: LocalStore) -> None:
    made = [chunk(size=10_000 + i) for i in range(32)]
    for chunk_id, blob, _ in made:
        backend.put(chunk_id, blob)
    client = HttpStore(server.url, pool_size=4)
    errors: list[BaseException] = []

    def work(offset: int) -> None:
        try:
            for i in range(len(made)):
                chunk_id, blob, _ = made[(i + offset) % len(made)]
                assert client.get(chunk_id) == blob
        except BaseException as exc:
            errors.append(exc)

    pool = [threading.Thread(target=work, args=(i,)) for i in range(16)]
    for t in pool:
        t.start()
    for t in pool:
        t.join(60)
    client.close()
    assert errors == []


# -- the server: read-only, auth, listing ------------------------------------------------------


def test_a_read_only_server_refuses_writes(backend: LocalStore) -> None:
    chunk_id, blob, _ = chunk()
    backend.put(chunk_id, blob)
    other_id, other_blob, _ = chunk()
    with ThreadedChunkServer(backend, writable=False) as running:
        port = port_of(running)
        reply = raw_exchange(port, request("PUT", target_of(other_id), other_blob))
        assert status_of(reply) == 405
        assert b"read-only" in reply
        assert status_of(raw_exchange(port, request("DELETE", target_of(chunk_id)))) == 405
        client = HttpStore(running.url, retries=0)
        with pytest.raises(StoreReadOnly, match="405"):
            client.put(other_id, other_blob)
        with pytest.raises(StoreError, match="405"):
            client.remove(chunk_id)
        assert client.get(chunk_id) == blob
        client.close()
    assert backend.has(chunk_id)
    assert not backend.has(other_id)


def test_a_read_only_store_makes_a_read_only_server(tmp_path: Path) -> None:
    (tmp_path / "ro").mkdir()
    with ThreadedChunkServer(LocalStore(tmp_path / "ro", writable=False)) as running:
        chunk_id, blob, _ = chunk()
        reply = raw_exchange(port_of(running), request("PUT", target_of(chunk_id), blob))
        assert status_of(reply) == 405


def test_a_static_token(backend: LocalStore) -> None:
    chunk_id, blob, _ = chunk()
    backend.put(chunk_id, blob)
    with ThreadedChunkServer(backend, authorize=static_token_authorizer("s3cret")) as running:
        port = port_of(running)
        none = raw_exchange(port, request("GET", target_of(chunk_id)))
        assert status_of(none) == 401
        assert b"WWW-Authenticate: Bearer" in none
        basic = raw_exchange(
            port, request("GET", target_of(chunk_id), headers="Authorization: Basic eDp5\r\n")
        )
        assert status_of(basic) == 401
        wrong = raw_exchange(
            port, request("GET", target_of(chunk_id), headers="Authorization: Bearer nope\r\n")
        )
        assert status_of(wrong) == 403
        right = raw_exchange(
            port, request("GET", target_of(chunk_id), headers="Authorization: Bearer s3cret\r\n")
        )
        assert status_of(right) == 200

        anonymous = HttpStore(running.url, retries=0)
        with pytest.raises(StoreError, match=r"unauthorized \(HTTP 401\).*pass token="):
            anonymous.get(chunk_id)
        wrong_client = HttpStore(running.url, token="nope", retries=0)
        with pytest.raises(StoreError, match=r"forbidden \(HTTP 403\)"):
            wrong_client.has(chunk_id)
        client = HttpStore(running.url, token="s3cret", retries=0)
        assert client.get(chunk_id) == blob
        other_id, other_blob, _ = chunk()
        client.put(other_id, other_blob)
        assert sorted(client.ids()) == sorted([chunk_id, other_id])
        for c in (anonymous, wrong_client, client):
            c.close()


def test_the_hook_sees_token_method_and_chunk(backend: LocalStore) -> None:
    seen: list[tuple[str | None, str, ChunkId | None]] = []

    async def hook(token: str | None, method: str, chunk_id: ChunkId | None) -> None:
        seen.append((token, method, chunk_id))
        if method == "DELETE":
            raise PermissionError("no removing")
        if token == "down":
            raise AuthUnavailable("aria_auth is not running")

    chunk_id, blob, _ = chunk()
    with ThreadedChunkServer(backend, authorize=hook) as running:
        client = HttpStore(running.url, token="t", retries=0)
        client.put(chunk_id, blob)
        assert client.has(chunk_id)
        assert client.get(chunk_id) == blob
        assert list(client.ids()) == [chunk_id]
        with pytest.raises(StoreError, match="forbidden"):
            client.remove(chunk_id)
        down = HttpStore(running.url, token="down", retries=0)
        with pytest.raises(StoreError, match="HTTP 503"):
            down.get(chunk_id)
        client.close()
        down.close()
    assert seen[:5] == [
        ("t", "PUT", chunk_id),
        ("t", "HEAD", chunk_id),
        ("t", "GET", chunk_id),
        ("t", "GET", None),
        ("t", "DELETE", chunk_id),
    ]
    assert backend.has(chunk_id)


def test_listing_streams_every_id(server: ThreadedChunkServer, backend: LocalStore) -> None:
    made = {chunk(size=50 + i)[0] for i in range(5000)}
    for chunk_id in made:
        backend.put(chunk_id, b"x")  # the listing does not read chunks
    client = HttpStore(server.url)
    listed = list(client.ids())
    assert len(listed) == len(made)
    assert set(listed) == made
    # a consumer that stops early leaves a usable client behind
    first = next(iter(client.ids()))
    assert first in made
    assert client.has(first)
    client.close()


def test_without_listing_ids_says_it_is_unsupported(backend: LocalStore) -> None:
    with ThreadedChunkServer(backend, listing=False) as running:
        client = HttpStore(running.url, retries=0)
        with pytest.raises(StoreError, match="cannot list its chunks"):
            list(client.ids())
        client.close()


class FailingStore(Store):
    """A store whose every call fails."""

    location = "failing://"

    def get(self, chunk_id: ChunkId) -> bytes:
        raise StoreError("disk on fire", store=self.location)

    def has(self, chunk_id: ChunkId) -> bool:
        raise StoreError("disk on fire", store=self.location)

    def put(self, chunk_id: ChunkId, blob: bytes) -> None:
        raise StoreError("disk on fire", store=self.location)

    def remove(self, chunk_id: ChunkId) -> None:
        raise StoreError("disk on fire", store=self.location)

    def ids(self) -> Iterator[ChunkId]:
        raise StoreError("disk on fire", store=self.location)


def test_a_failing_store_is_500_without_its_secrets() -> None:
    chunk_id, blob, _ = chunk()
    with ThreadedChunkServer(FailingStore()) as running:
        port = port_of(running)
        for method, body in (("GET", b""), ("HEAD", b""), ("PUT", blob), ("DELETE", b"")):
            reply = raw_exchange(port, request(method, target_of(chunk_id), body))
            assert status_of(reply) == 500
            assert b"on fire" not in reply
        assert status_of(raw_exchange(port, request("GET", "/_ids"))) == 500
        client = HttpStore(running.url, retries=1, backoff=0.01)
        with pytest.raises(StoreError, match=r"HTTP 500.*after 2 attempts"):
            client.get(chunk_id)
        client.close()


# -- the server inside an event loop ----------------------------------------------------------


async def test_serve_and_stop_inside_a_loop(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "s")
    server = await serve(store, LOOPBACK, 0)
    try:
        assert server.running
        client = HttpStore(server.url, retries=0)
        chunk_id, blob, _ = chunk()
        await anyio.to_thread.run_sync(client.put, chunk_id, blob)
        assert await anyio.to_thread.run_sync(client.get, chunk_id) == blob
        client.close()
    finally:
        await server.stop()
    assert not server.running
    assert store.has(chunk_id)
    with pytest.raises(StoreError, match="cannot connect"):
        await anyio.to_thread.run_sync(HttpStore(server.url, retries=0).get, chunk_id)


async def test_run_forever_stops_when_cancelled(tmp_path: Path) -> None:
    server = ChunkServer(LocalStore(tmp_path / "s"), port=free_port())
    async with anyio.create_task_group() as group:
        await group.start(server.run_forever)
        assert server.running
        group.cancel_scope.cancel()
    assert not server.running


async def test_a_busy_port_fails_to_start(tmp_path: Path) -> None:
    async with ChunkServer(LocalStore(tmp_path / "s")) as first:
        second = ChunkServer(LocalStore(tmp_path / "t"), port=first.port)
        with pytest.raises(OSError, match=r"address|in use"):
            await second.start()
        assert not second.running


# -- the client against servers that misbehave -------------------------------------------------


def test_a_server_that_is_down_is_a_store_error_naming_the_url() -> None:
    url = f"http://{LOOPBACK}:{free_port()}/store/"
    client = HttpStore(url, retries=2, backoff=0.01)
    chunk_id, blob, _ = chunk()
    for call in (lambda: client.get(chunk_id), lambda: client.put(chunk_id, blob)):
        with pytest.raises(StoreError) as caught:
            call()
        assert url in str(caught.value)
        assert "cannot connect" in str(caught.value)
        assert "after 3 attempts" in str(caught.value)
        assert caught.value.store == url
    with pytest.raises(StoreError, match="cannot connect"):
        list(client.ids())


@pytest.mark.parametrize(
    "reply",
    [
        b"this is not HTTP at all\r\n\r\n",
        b"HTTP/1.1 abc Nope\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\nonly this",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nbroken",
        b"\x00\xff" * 100,
        b"",
    ],
    ids=["garbage", "bad-status", "cut-body", "bad-chunked", "binary", "silent-close"],
)
def test_a_broken_answer_is_a_store_error(reply: bytes) -> None:
    def handle(sock: socket.socket, head: bytes) -> None:
        sock.sendall(reply)

    chunk_id, _, _ = chunk()
    with RawServer(handle) as raw:
        client = HttpStore(raw.url, retries=1, backoff=0.01)
        for call in (lambda: client.get(chunk_id), lambda: list(client.ids())):
            with pytest.raises(StoreError) as caught:
                call()
            assert raw.url in str(caught.value)
        client.close()


@pytest.mark.parametrize(
    "reply",
    [
        b"HTTP/1.1 200 OK\r\nContent-Length: -5\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nabcde",
        b"HTTP/1.1 200 OK\r\n\r\n" + b"\x00" * 100,
        b"HTTP/1.1 204 No Content\r\nContent-Length: 1000\r\n\r\n",
        b"HTTP/1.0 200 OK\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\nonly this",
    ],
)
def test_odd_answers_never_raise_anything_but_store_errors(reply: bytes) -> None:
    def handle(sock: socket.socket, head: bytes) -> None:
        sock.sendall(reply)

    chunk_id, blob, _ = chunk()
    with RawServer(handle) as raw:
        client = HttpStore(raw.url, retries=0)
        for call in (
            lambda: client.get(chunk_id),
            lambda: client.has(chunk_id),
            lambda: client.put(chunk_id, blob),
            lambda: client.remove(chunk_id),
            lambda: list(client.ids()),
        ):
            with contextlib.suppress(StoreError, ChunkMissing):
                call()  # some of these read as complete answers: never a bare exception
        client.close()


def test_a_cut_answer_is_retried_then_named() -> None:
    def handle(sock: socket.socket, head: bytes) -> None:
        sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\nonly this")
        sock.close()

    with RawServer(handle) as raw:
        client = HttpStore(raw.url, retries=2, backoff=0.01)
        with pytest.raises(StoreError, match=r"broken answer.*after 3 attempts"):
            client.get(chunk()[0])
        assert raw.connections == 3


def test_a_server_that_never_answers_times_out() -> None:
    hold = threading.Event()

    def handle(sock: socket.socket, head: bytes) -> None:
        hold.wait(10)

    with RawServer(handle) as raw:
        client = HttpStore(raw.url, timeout=0.3, retries=0)
        with pytest.raises(StoreError, match="timed out"):
            client.get(chunk()[0])
        hold.set()


@pytest.mark.parametrize(
    ("status", "pattern"),
    [
        (401, r"unauthorized \(HTTP 401\)"),
        (403, r"forbidden \(HTTP 403\)"),
        (418, r"HTTP 418: short and stout"),
        (302, r"HTTP 302"),
    ],
)
def test_error_statuses_are_named(status: int, pattern: str) -> None:
    def handle(sock: socket.socket, head: bytes) -> None:
        sock.sendall(answer(status, b"short and stout"))

    with RawServer(handle) as raw:
        client = HttpStore(raw.url, retries=0)
        chunk_id = chunk()[0]
        with pytest.raises(StoreError, match=pattern) as caught:
            client.get(chunk_id)
        assert raw.url in str(caught.value)
        with pytest.raises(StoreError, match=pattern):
            client.put(chunk_id, b"x")


def test_5xx_is_retried_until_it_passes() -> None:
    _, blob, _ = chunk()
    calls: list[int] = []

    def handle(sock: socket.socket, head: bytes) -> None:
        calls.append(1)
        if len(calls) < 3:
            sock.sendall(answer(503, b"busy"))
        else:
            sock.sendall(answer(200, blob))

    with RawServer(handle) as raw:
        client = HttpStore(raw.url, retries=3, backoff=0.01)
        assert client.get(chunk()[0]) == blob
    assert len(calls) == 3


def test_an_answer_over_the_limit_is_refused() -> None:
    def handle(sock: socket.socket, head: bytes) -> None:
        sock.sendall(answer(200, b"y" * 5000))

    with RawServer(handle) as raw:
        client = HttpStore(raw.url, retries=3, max_size=1000)
        with pytest.raises(StoreError, match="over the 1000-byte limit"):
            client.get(chunk()[0])
        assert raw.connections == 1  # never retried


def test_the_token_and_the_layout_on_the_wire() -> None:
    heads: list[bytes] = []

    def handle(sock: socket.socket, head: bytes) -> None:
        heads.append(head)
        sock.sendall(answer(404))

    chunk_id = chunk()[0]
    with RawServer(handle) as raw:
        client = HttpStore(raw.url + "some/store", token="tok123", retries=0)
        with pytest.raises(ChunkMissing):
            client.get(chunk_id)
        assert not client.has(chunk_id)
    h = chunk_id.hex()
    first = heads[0].decode()
    assert first.startswith(f"GET /some/store/{h[:4]}/{h}.cacnk HTTP/1.1\r\n")
    assert "Authorization: Bearer tok123\r\n" in first
    assert heads[1].decode().startswith(f"HEAD /some/store/{h[:4]}/{h}.cacnk")


def test_a_garbage_listing_is_a_store_error() -> None:
    def handle(sock: socket.socket, head: bytes) -> None:
        sock.sendall(answer(200, b"0" * 64 + b"\nthis is not an id\n"))

    with RawServer(handle) as raw:
        client = HttpStore(raw.url, retries=0)
        with pytest.raises(StoreError, match="not a chunk id"):
            list(client.ids())


@pytest.mark.parametrize(
    ("url", "pattern"),
    [
        ("ftp://host/store", "must be http or https"),
        ("http:///store", "no host"),
        ("http://user:pw@host/store", "credentials in the URL"),
        ("http://host/store?x=1", "no query"),
        ("http://host:99999/", "out of range|Port"),
    ],
)
def test_bad_urls(url: str, pattern: str) -> None:
    with pytest.raises(StoreError, match=pattern):
        HttpStore(url)


# -- TLS -----------------------------------------------------------------------------------------


def _self_signed(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "aria chunk-server test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(LOOPBACK))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "cert.pem", directory / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
def test_https_verifies_the_server(tmp_path: Path, backend: LocalStore) -> None:
    cert_file, key_file = _self_signed(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)
    chunk_id, blob, _ = chunk()
    with ThreadedChunkServer(backend, ssl_context=context) as running:
        assert running.url.startswith("https://")
        trusted = HttpStore(running.url, ca_certs=str(cert_file), retries=0)
        trusted.put(chunk_id, blob)
        assert trusted.get(chunk_id) == blob
        untrusted = HttpStore(running.url, retries=0)
        with pytest.raises(StoreError, match="TLS error"):
            untrusted.get(chunk_id)
        unverified = HttpStore(running.url, verify=False, retries=0)
        assert unverified.get(chunk_id) == blob
        for c in (trusted, untrusted, unverified):
            c.close()
