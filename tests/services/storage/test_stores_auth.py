"""The chunk-server's aria_auth hook, with real tokens minted by a running aria_auth."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import anyio.to_thread
import pytest

from aria_actors import Node
from aria_actors.services.auth import caveats as cv
from aria_actors.services.auth import macaroons
from aria_actors.services.auth.client import Auth, ServiceCredentials
from aria_actors.services.storage.errors import StoreError
from aria_actors.services.storage.ids import ChunkId
from aria_actors.services.storage.stores.http import HttpStore
from aria_actors.services.storage.stores.local import LocalStore
from aria_actors.services.storage.stores.server import aria_auth_authorizer, serve
from tests.services.auth.support import PASSWORD, auth_node, auth_settings

from .stores_support import chunk


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[Node]:
    settings = auth_settings(
        roles={
            "reader": {"permissions": ["storage:read"]},
            "writer": {"permissions": ["storage:read", "storage:write"]},
        },
        services={"aria_make": {"permissions": ["storage:write", "storage:read"], "lifetime": 60}},
    )
    async with auth_node(tmp_path / "state", settings) as running:
        auth = Auth(running)
        for user, role in (("dave", "reader"), ("erin", "writer"), ("fred", None)):
            await auth.create_user(user, PASSWORD)
            if role:
                await auth.assign_role(user, role)
        yield running


async def call(func: Callable[..., Any], *args: Any) -> Any:
    return await anyio.to_thread.run_sync(func, *args)


async def test_tokens_decide_who_reads_and_who_writes(node: Node, tmp_path: Path) -> None:
    auth = Auth(node)
    backend = LocalStore(tmp_path / "store")
    chunk_id, blob, _ = chunk()
    backend.put(chunk_id, blob)
    server = await serve(backend, authorize=aria_auth_authorizer(auth))
    clients: list[HttpStore] = []

    def client(token: str | None) -> HttpStore:
        made = HttpStore(server.url, token=token, retries=0)
        clients.append(made)
        return made

    try:
        dave = (await auth.login("dave", PASSWORD)).access
        erin = (await auth.login("erin", PASSWORD)).access
        fred = (await auth.login("fred", PASSWORD)).access

        with pytest.raises(StoreError, match=r"unauthorized \(HTTP 401\)"):
            await call(client(None).get, chunk_id)

        reader = client(dave)
        assert await call(reader.get, chunk_id) == blob
        assert await call(reader.has, chunk_id)
        assert await call(lambda: list(reader.ids())) == [chunk_id]
        new_id, new_blob, _ = chunk()
        with pytest.raises(StoreError, match=r"forbidden \(HTTP 403\)"):
            await call(reader.put, new_id, new_blob)
        with pytest.raises(StoreError, match=r"forbidden \(HTTP 403\)"):
            await call(reader.remove, chunk_id)

        writer = client(erin)
        await call(writer.put, new_id, new_blob)
        assert backend.get(new_id) == new_blob

        with pytest.raises(StoreError, match="forbidden"):
            await call(client(fred).get, chunk_id)  # no role, no permission
        with pytest.raises(StoreError, match="forbidden"):
            await call(client(dave[:-4] + "AAAA").get, chunk_id)  # forged
        with pytest.raises(StoreError, match="forbidden"):
            await call(client("not a token").get, chunk_id)
        elsewhere = macaroons.attenuate(dave, [cv.service("aria_data")])
        with pytest.raises(StoreError, match="forbidden"):
            await call(client(elsewhere).get, chunk_id)  # another service's audience

        await auth.logout(dave)
        with pytest.raises(StoreError, match="forbidden"):
            await call(reader.get, chunk_id)  # revoked
    finally:
        for made in clients:
            made.close()
        await server.stop()


async def test_a_service_token_and_a_resource_scope(node: Node, tmp_path: Path) -> None:
    auth = Auth(node)
    backend = LocalStore(tmp_path / "store")

    def resource(method: str, chunk_id: ChunkId | None) -> str:
        return "/chunks" if chunk_id is None else f"/chunks/{chunk_id.hex()[:4]}"

    server = await serve(backend, authorize=aria_auth_authorizer(auth, resource=resource))
    try:
        token = await ServiceCredentials(node, "aria_make").token()
        service = HttpStore(server.url, token=token, retries=0)
        chunk_id, blob, _ = chunk()
        await call(service.put, chunk_id, blob)
        assert backend.has(chunk_id)
        prefix = chunk_id.hex()[:4]
        scoped = macaroons.attenuate(token, [cv.scope("storage", f"/chunks/{prefix}")])
        narrow = HttpStore(server.url, token=scoped, retries=0)
        assert await call(narrow.get, chunk_id) == blob
        other_id, other_blob, _ = chunk()
        while other_id.hex()[:4] == prefix:
            other_id, other_blob, _ = chunk()
        with pytest.raises(StoreError, match="forbidden"):
            await call(narrow.put, other_id, other_blob)
        service.close()
        narrow.close()
    finally:
        await server.stop()
