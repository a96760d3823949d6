"""Two nodes sharing one OpenBao and one PostgreSQL database, as in production: a
token minted on one verifies on the other; revocation, refresh reuse, lockouts and
TOTP replay protection hold across them; the verification cache is bounded by
``revocation_cache``."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from aria_actors.services.auth import totp
from aria_actors.services.auth.client import Auth
from aria_actors.services.auth.errors import (
    LoginFailed,
    LoginThrottled,
    MfaFailed,
    RefreshReused,
    TokenRevoked,
)
from tests.servers.fixtures import PgDatabase
from tests.servers.openbao import OpenBaoServer

from .support import PASSWORD, auth_node, auth_settings, openbao_security, postgres_data

CACHE = 0.5


@contextlib.asynccontextmanager
async def two_nodes(
    tmp_path: Path, bao: OpenBaoServer, pg: PgDatabase, **auth: Any
) -> AsyncIterator[tuple[Auth, Auth]]:
    settings = auth_settings(revocation_cache=CACHE, **auth)
    security = openbao_security(bao, tmp_path)
    async with (
        auth_node(tmp_path / "a", settings, postgres_data(pg), security, name="a") as a,
        auth_node(tmp_path / "b", settings, postgres_data(pg), security, name="b") as b,
    ):
        yield Auth(a), Auth(b)


async def eventually_refused(auth: Auth, token: str, timeout: float = 10.0) -> float:
    """Seconds until ``token`` is refused as revoked on ``auth``'s node."""
    started = time.monotonic()
    while True:
        try:
            await auth.verify(token)
        except TokenRevoked:
            return time.monotonic() - started
        if time.monotonic() - started > timeout:
            raise AssertionError(f"still accepted after {timeout} s")
        await asyncio.sleep(0.05)


@pytest.fixture
async def nodes(
    tmp_path: Path, openbao: OpenBaoServer, pg_database: PgDatabase
) -> AsyncIterator[tuple[Auth, Auth]]:
    async with two_nodes(tmp_path, openbao, pg_database) as pair:
        a, _ = pair
        await a.create_user("carol", PASSWORD)
        yield pair


async def test_a_token_minted_on_one_node_verifies_on_the_other(
    nodes: tuple[Auth, Auth],
) -> None:
    a, b = nodes
    pair = await a.login("carol", PASSWORD)
    assert (await b.verify(pair.access)).principal == "carol"
    refreshed = await b.refresh(pair.refresh)
    await a.verify(refreshed.access)


async def test_a_revocation_reaches_the_other_node_within_the_cache_time(
    nodes: tuple[Auth, Auth],
) -> None:
    a, b = nodes
    pair = await a.login("carol", PASSWORD)
    await b.verify(pair.access)  # cached on b now
    await a.logout(pair.access)
    with pytest.raises(TokenRevoked):
        await a.verify(pair.access)  # at once where it was revoked
    waited = await eventually_refused(b, pair.access)
    assert waited <= CACHE + 5.0  # bounded by the cache, plus scheduling slack


async def test_refresh_reuse_is_caught_across_nodes(nodes: tuple[Auth, Auth]) -> None:
    a, b = nodes
    pair = await a.login("carol", PASSWORD)
    fresh = await a.refresh(pair.refresh)
    with pytest.raises(RefreshReused):
        await b.refresh(pair.refresh)
    await eventually_refused(a, fresh.access)
    await eventually_refused(b, fresh.access)


async def test_a_user_locked_out_on_one_node_is_locked_out_on_the_other(
    nodes: tuple[Auth, Auth],
) -> None:
    a, b = nodes
    for attempt in range(5):
        with pytest.raises(LoginFailed):
            await a.login("carol", "not the password", source=f"192.0.2.{attempt}")
    with pytest.raises(LoginThrottled):
        await b.login("carol", PASSWORD, source="198.51.100.1")


async def test_a_totp_code_used_on_one_node_is_refused_on_the_other(
    nodes: tuple[Auth, Auth],
) -> None:
    a, b = nodes
    enrolment = await a.enroll_mfa("carol")
    await b.confirm_mfa("carol", totp.code_at(enrolment.secret, time.time() - 30))
    code = totp.code_at(enrolment.secret, time.time())
    await a.login("carol", PASSWORD, code=code)
    with pytest.raises(MfaFailed):
        await b.login("carol", PASSWORD, code=code)
