"""Helpers of the aria_auth service tests: nodes booted from supervisors/, settings."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from aria_actors import Node, NodeConfig, RuntimeConfig, load_services
from tests.servers.fixtures import PgDatabase
from tests.servers.openbao import OpenBaoServer

SUPERVISORS = Path(__file__).resolve().parents[3] / "supervisors"
SERVICES = load_services(SUPERVISORS)
PASSWORD = "correct horse battery staple"

CHEAP_ARGON2: dict[str, Any] = {
    "argon2_time_cost": 1,
    "argon2_memory_cost": 1024,
    "argon2_parallelism": 1,
}


def auth_settings(**more: Any) -> dict[str, Any]:
    """``[services.aria_auth]`` for tests: cheap argon2, plus ``more``."""
    return CHEAP_ARGON2 | more


def postgres_data(pg: PgDatabase) -> dict[str, Any]:
    """``[services.aria_data]`` on the test's PostgreSQL database."""
    main = {"backend": "postgres", "dsn": pg.tcp_dsn, "acquire_timeout": 5.0}
    return {"databases": {"main": main}}


def openbao_security(bao: OpenBaoServer, directory: Path) -> dict[str, Any]:
    """``[services.aria_security]`` on the OpenBao dev server (root token in a file),
    with a KV v2 mount and a transit engine of this test's own."""
    token_file = directory / "bao-token"
    token_file.write_text(bao.root_token + "\n")
    token_file.chmod(0o600)
    tag = secrets.token_hex(4)
    bao.enable_kv_v2(f"kv-{tag}")
    bao.enable_transit(f"transit-{tag}", key="aria")
    openbao = {
        "address": bao.address,
        "token_file": str(token_file),
        "timeout": 5.0,
        "mount": f"kv-{tag}",
        "transit_mount": f"transit-{tag}",
    }
    return {"backend": "openbao", "openbao": openbao}


@contextlib.asynccontextmanager
async def auth_node(
    state: Path,
    auth: dict[str, Any] | None = None,
    data: dict[str, Any] | None = None,
    security: dict[str, Any] | None = None,
    name: str = "auth-test",
) -> AsyncIterator[Node]:
    """A node running aria_security, aria_data and aria_auth (booted), stopped after."""
    services: dict[str, Any] = {"aria_auth": auth if auth is not None else auth_settings()}
    if data is not None:
        services["aria_data"] = data
    if security is not None:
        services["aria_security"] = security
    config = NodeConfig(runtime=RuntimeConfig(shutdown=5.0), services=services)
    async with asyncio.timeout(120), Node(name=name, config=config, state_dir=state) as node:
        await node.boot(SERVICES, only=["aria_auth"])
        yield node
