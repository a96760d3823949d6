"""Service-to-service: a service's own token, and ``@authorized`` checking a message's
token (permission, audience, resource scope, confinement) before the handler runs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import msgspec
import pytest

from aria_actors import Actor, ActorRef, Node, handles
from aria_actors.services.auth import caveats as cv
from aria_actors.services.auth import macaroons
from aria_actors.services.auth.client import Auth, ServiceCredentials
from aria_actors.services.auth.errors import (
    CaveatUnmet,
    InvalidSignature,
    PermissionDenied,
    TokenRevoked,
)
from aria_actors.services.auth.guard import authorized, verified

from .support import PASSWORD, auth_node, auth_settings


class ReadChunk(msgspec.Struct, frozen=True, tag=True):
    path: str
    token: str = ""
    discharges: list[str] = msgspec.field(default_factory=list)
    ip: str = ""


class Stats(msgspec.Struct, frozen=True, tag=True):
    token: str = ""


class ChunkServer(Actor):
    """A stand-in for aria_storage: reads need ``storage:read`` on the path."""

    async def init(self) -> None:
        self.ran = 0

    @handles(ReadChunk)
    @authorized(
        "storage:read",
        resources=lambda m: {"storage": m.path},
        confined=lambda m: {"ip": m.ip},
        service="aria_storage",
    )
    async def read(self, message: ReadChunk) -> str:
        self.ran += 1
        return f"{verified().principal} read {message.path}"

    @handles(Stats)
    @authorized(service="aria_storage")
    def stats(self, message: Stats) -> int:  # a plain (sync) handler works too
        return self.ran


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[Node]:
    settings = auth_settings(
        roles={"reader": {"permissions": ["storage:read"]}},
        services={"aria_interface": {"permissions": ["storage:read"], "lifetime": 60}},
    )
    async with auth_node(tmp_path / "state", settings) as running:
        auth = Auth(running)
        await auth.create_user("dave", PASSWORD)
        await auth.assign_role("dave", "reader")
        await auth.create_user("erin", PASSWORD)
        yield running


@pytest.fixture
async def server(node: Node) -> ActorRef:
    return await node.spawn(ChunkServer, name="chunks")


async def test_a_user_token_with_the_permission_runs_the_handler(
    node: Node, server: ActorRef
) -> None:
    pair = await Auth(node).login("dave", PASSWORD)
    answer = await server.call(ReadChunk("/chars/hero/a", token=pair.access))
    assert answer == "dave read /chars/hero/a"
    assert await server.call(Stats(token=pair.access)) == 1


async def test_missing_wrong_or_weak_tokens_never_reach_the_handler(
    node: Node, server: ActorRef
) -> None:
    auth = Auth(node)
    erin = await auth.login("erin", PASSWORD)  # no role: no storage:read
    dave = await auth.login("dave", PASSWORD)
    with pytest.raises(PermissionDenied, match="needs a token"):
        await server.call(ReadChunk("/a"))
    with pytest.raises(PermissionDenied, match="storage:read"):
        await server.call(ReadChunk("/a", token=erin.access))
    elsewhere = macaroons.attenuate(dave.access, [cv.service("aria_data")])
    with pytest.raises(PermissionDenied, match="aria_data"):
        await server.call(ReadChunk("/a", token=elsewhere))
    scoped = macaroons.attenuate(dave.access, [cv.scope("storage", "/chars/hero")])
    assert await server.call(ReadChunk("/chars/hero/x", token=scoped))
    with pytest.raises(PermissionDenied, match="outside"):
        await server.call(ReadChunk("/chars/heroine/x", token=scoped))
    confined = macaroons.attenuate(dave.access, [cv.confine("ip", "10.0.0.7")])
    assert await server.call(ReadChunk("/a", token=confined, ip="10.0.0.7"))
    with pytest.raises(CaveatUnmet, match="confined"):
        await server.call(ReadChunk("/a", token=confined, ip="10.6.6.6"))
    with pytest.raises(InvalidSignature):
        await server.call(ReadChunk("/a", token=dave.access[:-4] + "AAAA"))
    await auth.logout(dave.access)
    with pytest.raises(TokenRevoked):
        await server.call(ReadChunk("/a", token=dave.access))
    fresh = await auth.login("dave", PASSWORD)
    assert server.is_alive()  # refusals are answers, not crashes
    assert await server.call(Stats(token=fresh.access)) == 2  # only the two allowed reads ran


async def test_a_service_calls_another_with_its_own_token(node: Node, server: ActorRef) -> None:
    credentials = ServiceCredentials(node, "aria_interface")
    token = await credentials.token()
    assert await credentials.token() == token  # cached until 80% of its life
    answer = await server.call(ReadChunk("/chars/hero/a", token=token))
    assert answer == "service:aria_interface read /chars/hero/a"


async def test_third_party_caveats_with_the_guard(node: Node, server: ActorRef) -> None:
    auth = Auth(node)
    dave = await auth.login("dave", PASSWORD)
    needs_role = await auth.third_party_caveat(dave.access, "role = reader")
    with pytest.raises(Exception, match="no discharge"):
        await server.call(ReadChunk("/a", token=needs_role))
    [caveat] = [c for c in macaroons.decode_all(needs_role)[0].caveats if c.vid]
    discharge = await auth.discharge(caveat.id, dave.access)
    bound = macaroons.prepare_for_request(needs_role, discharge)
    assert await server.call(ReadChunk("/a", token=needs_role, discharges=[bound]))
