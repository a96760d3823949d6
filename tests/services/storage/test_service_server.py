"""A node serving its chunk stores over HTTP (``[services.aria_storage.stores.<n>.serve]``):
aria_auth tokens for reads and writes, verified uploads, casync reading an open
server, the settings' checks, and a server actor that crashes or is killed coming
back on its configured port. On the embedded defaults (SQLite, local store)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import anyio.to_thread
import pytest

from aria_actors import ExitReason, Node, NodeConfig, NoProcess, RuntimeConfig, StartError
from aria_actors.services.auth import caveats as cv
from aria_actors.services.auth import macaroons
from aria_actors.services.auth.client import Auth
from aria_actors.services.storage.actors import store_actor_name
from aria_actors.services.storage.chunks import compress, open_chunk
from aria_actors.services.storage.client import Storage
from aria_actors.services.storage.errors import StoreError, StoreReadOnly
from aria_actors.services.storage.extract import extract
from aria_actors.services.storage.ids import ChunkId
from aria_actors.services.storage.messages import ServerInfo
from aria_actors.services.storage.server_actor import server_actor_name, store_resource
from aria_actors.services.storage.settings import is_loopback, load_settings, parse_listen
from aria_actors.services.storage.stores.http import HttpStore
from aria_actors.testing import wait_restarted
from tests.services.auth.support import PASSWORD, auth_settings

from .casync import run_casync
from .service_support import (
    SERVICES,
    chunk_path,
    random_bytes,
    storage_settings,
    stored_ids,
    write,
)

BASE = random_bytes(300_000, seed=11)

AUTH = auth_settings(
    roles={
        "reader": {"permissions": ["storage:read"]},
        "writer": {"permissions": ["storage:read", "storage:write"]},
    },
)
USERS = (("dave", "reader"), ("erin", "writer"), ("fred", None))


def served(serve: dict[str, Any], **more: Any) -> dict[str, Any]:
    """``[services.aria_storage]`` with the default store served as ``serve`` says."""
    return storage_settings(stores={"default": {"serve": serve}}, **more)


@contextlib.asynccontextmanager
async def serving_node(state: Path, storage: dict[str, Any]) -> AsyncIterator[Node]:
    """A node running aria_storage (as ``storage`` says) and aria_auth with the
    users of ``USERS``; stopped after."""
    services = {"aria_auth": AUTH, "aria_storage": storage}
    config = NodeConfig(runtime=RuntimeConfig(shutdown=5.0), services=services)
    async with asyncio.timeout(120), Node(name="served", config=config, state_dir=state) as node:
        await node.boot(SERVICES, only=["aria_storage"])
        auth = Auth(node)
        for user, role in USERS:
            await auth.create_user(user, PASSWORD)
            if role:
                await auth.assign_role(user, role)
        yield node


async def token(node: Node, user: str) -> str:
    return (await Auth(node).login(user, PASSWORD)).access


async def in_thread(func: Callable[..., Any], *args: Any) -> Any:
    """Blocking client calls run in a thread: the server answers on this loop."""
    return await anyio.to_thread.run_sync(func, *args)


@contextlib.contextmanager
def http_stores() -> Iterator[Callable[..., HttpStore]]:
    """Make HttpStores (no retries unless asked), all closed after."""
    made: list[HttpStore] = []

    def make(url: str, token: str | None = None, retries: int = 0) -> HttpStore:
        store = HttpStore(url, token=token, retries=retries, timeout=10.0)
        made.append(store)
        return store

    try:
        yield make
    finally:
        for store in made:
            store.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


# -- reads with tokens ---------------------------------------------------------------------


async def test_a_token_with_storage_read_fetches_and_extracts_an_asset(
    state: Path, files: Path
) -> None:
    async with serving_node(state, served({"listen": "127.0.0.1:0"})) as node:
        storage = Storage(node)
        await storage.add_version("hero", write(files / "hero.bin", BASE))
        index = await storage.index("hero")
        [status] = await storage.servers()
        assert (status.store, status.auth, status.writable) == ("default", True, False)
        assert status.url.startswith("http://127.0.0.1:")
        assert not status.url.endswith(":0/")  # the bound port, not the configured 0
        [description] = await storage.stores()
        assert (description.served, description.url) == (True, status.url)

        dave = await token(node, "dave")
        with http_stores() as client:
            reader = client(status.url, dave)
            first = index.chunk_id(0)
            blob = await in_thread(reader.get, first)
            assert blob == chunk_path(state, first.hex()).read_bytes()
            open_chunk(blob, first, index.digest)  # the bytes of that chunk
            assert await in_thread(reader.has, first)
            listed = await in_thread(lambda: {i.hex() for i in reader.ids()})
            assert listed == stored_ids(state)
            await in_thread(extract, index, files / "out.bin", reader)
            assert (files / "out.bin").read_bytes() == BASE

            with pytest.raises(StoreError, match=r"unauthorized \(HTTP 401\)"):
                await in_thread(client(status.url).get, first)  # no token
            fred = await token(node, "fred")
            with pytest.raises(StoreError, match=r"forbidden \(HTTP 403\)"):
                await in_thread(client(status.url, fred).get, first)  # no storage:read
            with pytest.raises(StoreReadOnly, match="405"):  # a read-only server
                await in_thread(reader.put, *_new_chunk())

            # a token attenuated to this store opens it; to another store, not
            here = macaroons.attenuate(dave, [cv.scope("storage", store_resource("default"))])
            assert await in_thread(client(status.url, here).get, first) == blob
            there = macaroons.attenuate(dave, [cv.scope("storage", store_resource("other"))])
            with pytest.raises(StoreError, match="forbidden"):
                await in_thread(client(status.url, there).get, first)

            await Auth(node).logout(dave)
            with pytest.raises(StoreError, match="forbidden"):
                await in_thread(reader.get, first)  # revoked

        after = await storage.server("default")
        assert after.requests >= len(index)
        assert after.active == 0


def _new_chunk() -> tuple[ChunkId, bytes]:
    data = random_bytes(5_000, seed=99)
    return ChunkId.of(data), compress(data)


# -- uploads -------------------------------------------------------------------------------


async def test_a_writable_server_takes_verified_uploads_with_storage_write(state: Path) -> None:
    settings = served({"writable": True})
    settings["stores"]["default"]["gc"] = False
    async with serving_node(state, settings) as node:
        url = (await Storage(node).server("default")).url
        erin, dave = await token(node, "erin"), await token(node, "dave")
        chunk_id, blob = _new_chunk()
        with http_stores() as client:
            with pytest.raises(StoreError, match=r"forbidden \(HTTP 403\)"):
                await in_thread(client(url, dave).put, chunk_id, blob)  # no storage:write
            with pytest.raises(StoreError, match="unauthorized"):
                await in_thread(client(url).put, chunk_id, blob)
            assert chunk_id.hex() not in stored_ids(state)

            writer = client(url, erin)
            await in_thread(writer.put, chunk_id, blob)
            assert chunk_path(state, chunk_id.hex()).read_bytes() == blob
            assert await Storage(node).get_chunk("default", chunk_id.hex()) == blob

            other = ChunkId.of(b"not these bytes")
            with pytest.raises(StoreError, match=r"HTTP 400.*refused"):
                await in_thread(writer.put, other, blob)  # bytes of another chunk
            with pytest.raises(StoreError, match="HTTP 400"):
                await in_thread(writer.put, other, b"garbage, not zstd")
            assert other.hex() not in stored_ids(state)
            assert stored_ids(state) == {chunk_id.hex()}


# -- casync against an open server ---------------------------------------------------------


@pytest.mark.integration
async def test_casync_extracts_from_an_open_loopback_server(
    casync: str, state: Path, files: Path
) -> None:
    async with serving_node(state, served({"auth": False})) as node:
        storage = Storage(node)
        await storage.add_version("hero", write(files / "hero.bin", BASE))
        (await storage.index("hero")).write(files / "hero.caibx")
        status = await storage.server("default")
        assert not status.auth
        out = files / "by-casync.bin"
        await in_thread(
            lambda: run_casync(
                casync, "extract", f"--store={status.url}", files / "hero.caibx", out
            )
        )
        assert out.read_bytes() == BASE
        assert (await storage.server("default")).requests > 0


# -- restarts ------------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["crash", "kill"])
async def test_a_crashed_or_killed_server_comes_back_on_its_port(
    state: Path, files: Path, how: str
) -> None:
    port = free_port()
    async with serving_node(state, served({"listen": f"127.0.0.1:{port}"})) as node:
        storage = Storage(node)
        await storage.add_version("hero", write(files / "hero.bin", BASE))
        index = await storage.index("hero")
        url = f"http://127.0.0.1:{port}/"
        assert (await storage.server("default")).url == url
        dave = await token(node, "dave")
        store_ref = node.whereis(store_actor_name("default"))
        name = server_actor_name("default")
        ref = node.whereis(name)
        assert ref is not None
        with http_stores() as client:
            reader = client(url, dave, retries=3)
            assert await in_thread(reader.has, index.chunk_id(0))
            if how == "kill":
                ref._proc.kill()  # no terminate: the watcher and the successor free the port
            else:
                ref._proc.request_stop(ExitReason.from_exception(RuntimeError("boom")))
            restarted = await wait_restarted(node, name, ref, timeout=15.0)
            status = await restarted.call(ServerInfo())
            assert (status.url, status.requests) == (url, 0)
            assert node.whereis(store_actor_name("default")) == store_ref  # restarted alone
            await in_thread(extract, index, files / "out.bin", client(url, dave))
            assert (files / "out.bin").read_bytes() == BASE
        assert [d.url for d in await storage.stores()] == [url]
    assert port_is_free(port)  # the node's stop closed it


async def test_a_store_without_serve_has_no_server(state: Path) -> None:
    async with serving_node(state, storage_settings()) as node:
        storage = Storage(node)
        assert await storage.servers() == []
        [description] = await storage.stores()
        assert (description.served, description.url) == (False, "")
        with pytest.raises(NoProcess):
            await storage.server("default")


# -- settings ------------------------------------------------------------------------------


READ_ONLY = {"location": "/nonexistent/ro", "writable": False, "gc": False}


@pytest.mark.parametrize(
    ("stores", "words"),
    [
        ({"default": {"serve": {"listen": "8765"}}}, ["stores.default.serve.listen", "host:port"]),
        (
            {"default": {"serve": {"listen": "127.0.0.1:99999"}}},
            ["stores.default.serve.listen", "0..65535"],
        ),
        (
            {"default": {"serve": {"listen": "::1:8765"}}},
            ["stores.default.serve.listen", "brackets"],
        ),
        (
            {"default": {"serve": {"listen": "bad host!:8765"}}},
            ["stores.default.serve.listen", "host name"],
        ),
        (
            {"default": {"serve": {"listen": "0.0.0.0:8765", "auth": False}}},
            ["stores.default.serve.auth", "allow_open"],
        ),
        (
            {"default": {}, "ro": READ_ONLY | {"serve": {"writable": True}}},
            ["stores.ro.serve.writable", "read-only"],
        ),
        (
            {
                "default": {"serve": {"listen": "127.0.0.1:8765"}},
                "other": {"location": "/tmp/x", "serve": {"listen": "0.0.0.0:8765"}},
            },
            ["stores.other.serve.listen", "8765", "stores.default"],
        ),
        (
            {"default": {"serve": {"read_permission": ""}}},
            ["stores.default.serve.read_permission"],
        ),
        ({"default": {"serve": {"bogus": 1}}}, ["stores.default.serve.bogus", "unknown key"]),
        ({"default": {"serve": {"writable": "yes"}}}, ["stores.default.serve.writable"]),
    ],
)
async def test_bad_serve_settings_stop_the_start_naming_the_key(
    state: Path, stores: dict[str, Any], words: list[str]
) -> None:
    with pytest.raises(StartError) as caught:
        async with serving_node(state, storage_settings(stores=stores)):
            pass
    for word in ["services.aria_storage.", *words]:
        assert word in str(caught.value)


async def test_a_port_in_use_stops_the_start_naming_the_key(state: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(StartError) as caught:
            async with serving_node(state, served({"listen": f"127.0.0.1:{port}"})):
                pass
    message = str(caught.value)
    assert "services.aria_storage.stores.default.serve.listen" in message
    assert "cannot listen" in message


def test_what_the_serve_settings_accept() -> None:
    settings = load_settings(
        {
            "stores": {
                "default": {"serve": {}},
                "wide": {
                    "location": "/srv/wide",
                    "serve": {"listen": "0.0.0.0:9000", "auth": False, "allow_open": True},
                },
                "six": {"location": "/srv/six", "serve": {"listen": "[::1]:0", "auth": False}},
                "named": {"location": "/srv/named", "serve": {"listen": "localhost:0"}},
            }
        }
    )
    default = settings.stores["default"].serve
    assert default is not None
    assert (default.address, default.writable, default.auth) == (("127.0.0.1", 0), False, True)
    assert (default.read_permission, default.write_permission) == ("storage:read", "storage:write")
    assert parse_listen("[::1]:8765") == ("::1", 8765)
    assert parse_listen("storage.example.net:443") == ("storage.example.net", 443)
    assert all(map(is_loopback, ["127.0.0.2", "::1", "localhost"]))
    assert not any(map(is_loopback, ["0.0.0.0", "::", "storage.example.net"]))
    assert load_settings({}).stores["default"].serve is None
